/* What the page checks itself, and how every reason is shown. The rules live in intake:
 * the page reads the request from what was typed, refuses what it could not put into a
 * request at all (no license, a user count that is not a number) and what the
 * partner's view says cannot be had (partner.js), and shows each reason, its own or
 * intake's, at the field it names. */
import { $, checked, count, form, h } from './dom.js';
import { LICENSE_NAMES, PARTNER_DEFAULT } from './state.js';
import { addressBlocks, appliances } from './render.js';
import { partnerProblems } from './partner.js';

const text = (id) => $(id).value.trim();
const optional = (id) => text(id) || null;
const shown = (el) => el.getClientRects().length > 0;

/* ---- the request ------------------------------------------------------------ */

function readAddress(block) {
  const v = (name) => block.querySelector(`[data-name="${name}"]`).value.trim();
  return { ref: block.dataset.key, recipient: v('recipient'), line1: v('line1'), line2: v('line2') || null,
           city: v('city'), region: v('region') || null, postal_code: v('postal_code'),
           country: v('country').toUpperCase(), phone: v('phone') || null };
}

function readDeployment() {
  const kind = checked('deployment_kind');
  if (kind === null) return null; // intake names it: a deployment is required
  if (kind === 'VIRTUAL')
    return { kind, hosting_region: $('hosting_region').value || null, appliances: [], addresses: [] };
  const shipping = checked('shipping');
  const assigned = (a) => {
    if (shipping === 'default') return PARTNER_DEFAULT;
    if (shipping !== 'custom') return null;
    return $(`ship_to-${a.key}`).value || null;
  };
  return {
    kind, hosting_region: null,
    appliances: appliances().map((a) => ({ role: a.role, sku: a.select.value, ship_to: assigned(a) })),
    addresses: shipping === 'custom' ? addressBlocks().map(readAddress) : [],
  };
}

/* The request as intake takes it (schemas/onboarding.requested.avsc), every field
 * present, without request_id and submitted_at; and what cannot be sent at all. */
export function readRequest() {
  const problems = [];
  const license = checked('license');
  if (!license) problems.push({ field: 'license', message: 'Choose the license to add the customer to.' });
  const users = { tier: 0, cloud: 0, sat: 0 };
  const users_of = (id, field, what) => {
    const n = count($(id).value);
    if (!Number.isNaN(n)) return n;
    problems.push({ field, message: `Enter the number of ${what} as a whole number, such as 25 (0 for none).` });
    return 0;
  };
  if (license !== 'MDR_CLOUD') users.tier = users_of('users_tier', 'users.tier', `${LICENSE_NAMES[license] || 'MDR'} users`);
  users.cloud = users_of('users_cloud', 'users.cloud', 'MDR Cloud users');
  if (license === 'MDR_COMPLETE') users.sat = users_of('users_sat', 'users.sat', 'Beauceron SAT users');
  const breach = checked('breach');
  const request = {
    license,
    breach_or_incident: breach === null ? null : breach === 'yes',
    customer: { legal_name: text('legal_name'), web_site: optional('web_site'),
                sub_partner_id: optional('sub_partner_id'), portal_admin_email: text('portal_admin_email') },
    users,
    deployment: license === 'MDR_CLOUD' ? null : readDeployment(),
    confirmed: $('confirmed').checked,
  };
  if (!problems.length) problems.push(...partnerProblems(request));
  return { request, problems };
}

/* ---- reasons at their fields ------------------------------------------------ */

export function clearErrors() {
  for (const p of document.querySelectorAll('.error')) p.remove();
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  for (const el of form.querySelectorAll('.field-invalid, .group-invalid'))
    el.classList.remove('field-invalid', 'group-invalid');
  for (const el of form.querySelectorAll('[aria-describedby]')) {
    const ids = el.getAttribute('aria-describedby').split(/\s+/).filter((x) => x && !x.endsWith('-error'));
    if (ids.length) el.setAttribute('aria-describedby', ids.join(' '));
    else el.removeAttribute('aria-describedby');
  }
  $('errors').replaceChildren();
  $('submit-problem').textContent = '';
}

// "deployment.addresses[1].city" -> "deployment.addresses[1]" -> "deployment.addresses" -> ...
const parentField = (f) => {
  const m = /^(.*?)(\.[^.[\]]+|\[\d+\])$/.exec(f);
  return m ? m[1] : '';
};

/* The shown element a reason's field path names, or the nearest shown group that
 * holds it; null when none is on the page (the reason is then listed only). */
function elementFor(field) {
  for (let f = field; f; f = parentField(f)) {
    const el = Array.from(form.querySelectorAll('[data-field]')).find((e) => e.dataset.field === f && shown(e));
    if (el) return el;
    // An appliance without an address: the shipping choice is what is missing.
    if (/^deployment\.appliances\[\d+\]\.ship_to$/.test(f) && shown($('fs-shipping'))) return $('fs-shipping');
  }
  return null;
}

const isGroup = (el) => !el.matches('input, select, textarea');

function focusTarget(el) {
  if (!isGroup(el)) return el;
  return el.querySelector('input:checked') ||
    Array.from(el.querySelectorAll('input, select, button')).find((c) => shown(c) && !c.disabled) || el;
}

function describe(el, id) {
  const ids = (el.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean);
  if (!ids.includes(id)) el.setAttribute('aria-describedby', ids.concat(id).join(' '));
}

function markError(el, message) {
  const id = `${el.id}-error`;
  let p = document.getElementById(id);
  if (p) {
    p.append(` ${message}`); // a second reason for the same field
    return;
  }
  p = h('p', { class: 'error', id }, h('span', { class: 'visually-hidden', text: 'Error: ' }), message);
  if (isGroup(el)) {
    el.classList.add('group-invalid');
    const legend = el.querySelector(':scope > legend');
    if (legend) legend.after(p); else el.prepend(p);
    describe(el, id);
    // A radio group's error is read with each of its radios.
    for (const r of el.querySelectorAll(':scope > .radio > input')) {
      r.setAttribute('aria-invalid', 'true');
      describe(r, id);
    }
  } else {
    el.setAttribute('aria-invalid', 'true');
    describe(el, id);
    const wrap = el.closest('.field');
    if (wrap) wrap.classList.add('field-invalid');
    // Above the control, after its label and hint; a checkbox has its label beside it.
    (el.type === 'checkbox' && wrap ? wrap : el).before(p);
  }
}

/* Shows every reason at its field, lists them all at the top (each a link to its
 * field), and moves the focus to the first field in page order. */
export function showReasons(reasons) {
  clearErrors();
  const marked = [];
  const items = reasons.map((r) => {
    const el = r.field ? elementFor(r.field) : null;
    if (!el) return h('li', { text: r.message });
    markError(el, r.message);
    marked.push(el);
    const target = focusTarget(el);
    const a = h('a', { href: `#${target.id}`, text: r.message });
    a.addEventListener('click', (e) => {
      e.preventDefault();
      target.focus();
    });
    return h('li', {}, a);
  });
  const n = reasons.length;
  $('errors').replaceChildren(
    h('h2', { text: 'There is a problem' }),
    h('p', { text: n === 1 ? 'Please correct this and submit again:' : `Please correct these ${n} things and submit again:` }),
    h('ul', {}, ...items));
  marked.sort((a, b) => (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
  if (marked.length) focusTarget(marked[0]).focus();
  else $('errors').focus();
}
