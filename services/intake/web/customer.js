/* A customer account's page (/customers/<id>): its license, users per product and
 * every addition (GET /v1/customers/<id>), and a form that asks for more users (POST
 * /v1/customers/<id>/users), followed until allocation added or refused them. A
 * request keeps its id while it is retried, so a lost answer never adds twice. */
import * as auth from './signin.js';
import { $, count, h } from './dom.js';
import { LICENSE_NAMES } from './state.js';

const PRODUCT_NAMES = Object.assign({ BEAUCERON_SAT: 'Beauceron SAT' }, LICENSE_NAMES);
const ADDITION_STATES = { accepted: 'being added', added: 'added', refused: 'refused', rejected: 'refused' };
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let shown = null; // the account shown
let pending = null; // {request_id, users}: the request being sent, kept for a retry

async function load(id) {
  const res = await auth.authFetch(`/v1/customers/${id}`, { headers: { Accept: 'application/json' }, cache: 'no-store' });
  if (res.status === 404) return null;
  if (!res.ok) throw new Error(`the server answered ${res.status}`);
  return res.json();
}

function additionText(a) {
  const asked = [['tier', 'users of its tier'], ['cloud', 'MDR Cloud users'], ['sat', 'Beauceron SAT users']]
    .filter(([k]) => a.users[k] > 0).map(([k, t]) => `${a.users[k]} ${t}`).join(', ');
  const why = a.reasons && a.reasons.length ? `: ${a.reasons.map((r) => r.message).join(' ')}` : '';
  return `${new Date(a.created_at).toLocaleString()}: ${asked}, ${ADDITION_STATES[a.status] || a.status}${why}`;
}

function render(c) {
  shown = c;
  $('customer-title').textContent = c.account_name;
  const dl = $('customer-summary');
  dl.replaceChildren();
  for (const [term, value] of [['Customer id', c.customer_id], ['License', LICENSE_NAMES[c.license] || c.license],
                               ['Status', c.status]])
    dl.append(h('dt', { text: term }), h('dd', { text: value }));
  $('customer-users').querySelector('tbody').replaceChildren(...c.users.map((u) =>
    h('tr', { 'data-product': u.product }, h('td', { text: PRODUCT_NAMES[u.product] || u.product }),
      h('td', { text: String(u.users) }))));
  $('customer-additions').replaceChildren(...c.additions.map((a) =>
    h('li', { 'data-addition-id': a.addition_id, 'data-status': a.status, text: additionText(a) })));
  $('add-tier-field').hidden = c.license === 'MDR_CLOUD';
  $('add_tier-label').textContent = `${LICENSE_NAMES[c.license] || 'MDR'} users`;
  $('add-sat-field').hidden = c.license !== 'MDR_COMPLETE';
  $('add-users-form').hidden = c.status !== 'active';
}

export async function openCustomer(id) {
  $('customer-problem').textContent = '';
  $('add-users-problem').textContent = '';
  $('add-users-progress').textContent = '';
  try {
    const c = await load(id);
    if (c === null) {
      $('customer-title').textContent = 'No such customer';
      $('customer-problem').textContent = 'None of your customer accounts has this address.';
      $('add-users-form').hidden = true;
      return;
    }
    render(c);
  } catch (e) {
    $('customer-problem').textContent = `The customer could not be loaded (${e.message}); try again.`;
  }
  $('customer-title').focus();
}

/* Sends the request (again, as is, when its answer was lost), then follows the
 * account until allocation answered the addition. */
async function addUsers(e) {
  e.preventDefault();
  if (!shown) return;
  const users = {
    tier: shown.license === 'MDR_CLOUD' ? 0 : count($('add_tier').value),
    cloud: count($('add_cloud').value),
    sat: shown.license === 'MDR_COMPLETE' ? count($('add_sat').value) : 0,
  };
  if (Object.values(users).some(Number.isNaN)) {
    $('add-users-problem').textContent = 'Enter each number of users as a whole number, such as 5 (0 for none).';
    return;
  }
  if (!pending || JSON.stringify(pending.users) !== JSON.stringify(users))
    pending = { request_id: crypto.randomUUID(), users };
  $('add-users-problem').textContent = '';
  $('add-users-progress').textContent = 'Sending.';
  $('add-users-button').disabled = true;
  try {
    const res = await auth.authFetch(`/v1/customers/${shown.customer_id}/users`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(pending) });
    const answer = await res.json().catch(() => ({}));
    if (res.status === 422) {
      pending = null;
      $('add-users-progress').textContent = '';
      $('add-users-problem').textContent = answer.reasons.map((r) => r.message).join(' ');
      return;
    }
    if (res.status !== 202) throw new Error(answer.error || `the server answered ${res.status}`);
    pending = null;
    $('add-users-progress').textContent = 'Adding the users.';
    for (let i = 0; i < 60; i++) {
      const c = await load(shown.customer_id);
      const a = c && c.additions.find((x) => x.addition_id === answer.addition_id);
      if (a && a.status !== 'accepted') {
        render(c);
        $('add-users-progress').textContent = a.status === 'added' ? 'The users were added.' : '';
        if (a.status !== 'added') $('add-users-problem').textContent = a.reasons.map((r) => r.message).join(' ');
        return;
      }
      await delay(1000);
    }
    $('add-users-progress').textContent = 'The users are still being added; this page shows them when you open it again.';
  } catch (err) {
    $('add-users-progress').textContent = '';
    $('add-users-problem').textContent = `The request could not be sent (${err.message}); send it again: it is the ` +
      'same request, and adds the users once.';
  } finally {
    $('add-users-button').disabled = false;
  }
}

export function startCustomer() {
  $('add-users-form').addEventListener('submit', addUsers);
}
