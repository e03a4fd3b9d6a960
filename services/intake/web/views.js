/* The portal's views, each at its own address: the form (/), the partner's onboardings
 * (/onboardings), one onboarding's confirmation page (/onboardings/<id>), the
 * partner's customers (/customers) and one customer's page (/customers/<id>). The page moves between them without reloading
 * (history.pushState); a reload, a bookmark or a new tab opens the same view once the
 * partner has signed in. The lists come from GET /v1/onboardings and GET
 * /v1/customers, a page at a time. */
import * as auth from './signin.js';
import { $, form, h } from './dom.js';
import { LICENSE_NAMES } from './state.js';
import { setMode } from './render.js';
import { openOnboarding, stopFollowing } from './follow.js';
import { openCustomer, startCustomer } from './customer.js';

const UUID = '([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})';
const ONBOARDING = new RegExp(`^/onboardings/${UUID}$`);
const CUSTOMER = new RegExp(`^/customers/${UUID}$`);
const PRODUCT_NAMES = Object.assign({ BEAUCERON_SAT: 'Beauceron SAT' }, LICENSE_NAMES);
const STATUS_NAMES = {
  accepted: 'Accepted', rejected: 'Refused', users_allocated: 'Users allocated',
  appliances_provisioned: 'Appliances provisioned', shipping_arranged: 'Shipping arranged',
  confirmed: 'Confirmed', failed: 'Could not be completed',
  reserved: 'Reserved (onboarding in progress)', active: 'Active', released: 'Released',
};

const TITLES = { onboardings: 'Your onboardings and customers', customers: 'Your onboardings and customers',
                 customer: 'Your onboardings and customers' };

function show(view) {
  const title = TITLES[view] || 'Onboard a new customer';
  $('page-title').textContent = title;
  document.title = `${title} - License Management Portal`;
  $('onboardings-view').hidden = view !== 'onboardings';
  $('customers-view').hidden = view !== 'customers';
  $('customer-view').hidden = view !== 'customer';
  for (const a of $('views').querySelectorAll('a'))
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  if (view === 'onboardings' || view === 'customers' || view === 'customer') {
    stopFollowing();
    form.hidden = true;
    $('result').hidden = true;
    $('errors').replaceChildren();
  }
}

/* A link of the page's own: opens its view without reloading. */
function link(text, href) {
  const a = h('a', { href, text });
  a.addEventListener('click', (e) => {
    e.preventDefault();
    go(href);
  });
  return a;
}

const when = (t) => new Date(t).toLocaleString();
const users = (list) => list.map((u) => `${PRODUCT_NAMES[u.product] || u.product} ${u.users}`).join(', ') || '-';

/* One list: GET url a page at a time into the table; "Show more" asks for the next. */
async function fill(kind, url, row) {
  const body = $(`${kind}-table`).querySelector('tbody');
  const more = $(`${kind}-more`);
  let cursor = null;
  body.replaceChildren();
  const next = async () => {
    more.hidden = true;
    try {
      const sep = url.includes('?') ? '&' : '?';
      const res = await auth.authFetch(cursor ? `${url}${sep}cursor=${encodeURIComponent(cursor)}` : url,
                                       { headers: { Accept: 'application/json' }, cache: 'no-store' });
      if (!res.ok) throw new Error(`the server answered ${res.status}`);
      const page = await res.json();
      body.append(...page[kind].map(row));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      $(`${kind}-empty`).hidden = body.children.length > 0;
      $(`${kind}-problem`).textContent = '';
    } catch (e) {
      $(`${kind}-problem`).textContent = `The list could not be loaded (${e.message}); try again.`;
    }
  };
  more.onclick = next;
  await next();
}

function onboardingRow(o) {
  return h('tr', { 'data-onboarding-id': o.onboarding_id },
    h('td', {}, link(o.account_name || o.onboarding_id, o.page_url)),
    h('td', { text: LICENSE_NAMES[o.license] || o.license }),
    h('td', { 'data-status': o.status, text: STATUS_NAMES[o.status] || o.status }),
    h('td', { text: when(o.created_at) }));
}

function customerRow(c) {
  return h('tr', { 'data-customer-id': c.customer_id },
    h('td', {}, link(c.account_name, `/customers/${c.customer_id}`)),
    h('td', { text: LICENSE_NAMES[c.license] || c.license }),
    h('td', { text: users(c.users) }),
    h('td', { 'data-status': c.status, text: STATUS_NAMES[c.status] || c.status }));
}

function onboardings() {
  const status = $('onboardings-status').value;
  return fill('onboardings', `/v1/onboardings${status ? `?status=${status}` : ''}`, onboardingRow);
}

/* Shows the view of the page's address. */
export async function route() {
  const path = location.pathname;
  const one = ONBOARDING.exec(path);
  if (path === '/onboardings') {
    show('onboardings');
    await onboardings();
    $('onboardings-title').focus();
  } else if (path === '/customers') {
    show('customers');
    await fill('customers', '/v1/customers', customerRow);
    $('customers-title').focus();
  } else if (CUSTOMER.exec(path)) {
    show('customer');
    await openCustomer(CUSTOMER.exec(path)[1]);
  } else if (one) {
    show('onboarding');
    openOnboarding(one[1]);
  } else {
    show('form');
    setMode('edit');
  }
}

/* Moves to a view of the page, as a link would, without reloading. */
export function go(path) {
  if (location.pathname !== path) history.pushState(null, '', path);
  return route();
}

export function startViews() {
  for (const a of $('views').querySelectorAll('a'))
    a.addEventListener('click', (e) => {
      e.preventDefault();
      go(a.getAttribute('href'));
    });
  $('onboardings-status').addEventListener('change', onboardings);
  startCustomer();
  window.addEventListener('popstate', route);
}
