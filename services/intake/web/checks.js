/* What the page checks itself, and how every reason is shown. The rules are intake's:
 * GET /v1/form publishes each field's (required, longest, patterns, when they apply)
 * and each license's counts, with the sentence intake answers for each fault, and the
 * page checks them all before the review step. Beside them the page refuses what it
 * could not put into a request at all (no license, a user count that is not a number)
 * and what the partner's view says cannot be had (partner.js), and shows each reason,
 * its own or intake's, at the field it names. */
import { $, checked, count, form, h } from './dom.js';
import { LICENSE_NAMES, PARTNER_DEFAULT, options } from './state.js';
import { addressBlocks, appliances } from './render.js';
import { partnerProblems } from './partner.js';

const text = (id) => $(id).value.trim();
const optional = (id) => text(id) || null;
const shown = (el) => el.getClientRects().length > 0;

/* ---- intake's rules ---------------------------------------------------------- */

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/; // what intake calls control characters

/* The values at a rule's path ("deployment.addresses[].city": each address's city),
 * each with its own path ("deployment.addresses[1].city"). */
function valuesAt(value, path) {
  let nodes = [['', value]];
  for (const part of path.split('.')) {
    const each = part.endsWith('[]');
    const key = each ? part.slice(0, -2) : part;
    nodes = nodes.flatMap(([p, v]) => {
      const child = v === null || v === undefined ? undefined : v[key];
      const at = p ? `${p}.${key}` : key;
      if (!each) return [[at, child]];
      return Array.isArray(child) ? child.map((c, i) => [`${at}[${i}]`, c]) : [];
    });
  }
  return nodes;
}

/* The fault a value has under a rule, as intake finds it: 'required', 'invalid',
 * 'too_long' or null. */
function fault(rule, value) {
  const s = value === null || value === undefined ? '' : String(value).trim();
  if (s === '') return rule.required ? 'required' : null;
  if (CONTROL.test(s)) return 'invalid';
  if (rule.max_length !== undefined && [...s].length > rule.max_length) return 'too_long';
  if (rule.patterns.some((p) => !new RegExp(p).test(s))) return 'invalid';
  if (rule.one_of && !(options[rule.one_of] || []).includes(s)) return 'invalid';
  return null;
}

function fieldProblems(request) {
  const out = [];
  for (const rule of options.fields || []) {
    const when = rule.when ? valuesAt(request, rule.when.field)[0][1] : null;
    if (rule.when && !rule.when.in.includes(when)) continue;
    for (const [field, value] of valuesAt(request, rule.field)) {
      const f = fault(rule, value);
      if (f) out.push({ field, message: rule.messages[f] });
    }
  }
  return out;
}

/* A count against its license's least and largest. */
function countProblem(license, which, n) {
  const l = (options.licenses || []).find((x) => x.code === license);
  const rule = l && l.counts ? l.counts[which] : null;
  if (!rule) return null;
  if (n < rule.min) return rule.messages.below_min;
  if (n > rule.max) return rule.messages.over_max;
  return null;
}

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
 * present, without request_id and submitted_at; and every reason intake would refuse
 * it for that the page can find alone, each at its field. */
export function readRequest() {
  const problems = [];
  const license = checked('license');
  if (!license) problems.push({ field: 'license', message: 'Choose the license to add the customer to.' });
  const users = { tier: 0, cloud: 0, sat: 0 };
  const users_of = (which, what) => {
    const field = `users.${which}`;
    const n = count($(`users_${which}`).value);
    const problem = Number.isNaN(n) ? `Enter the number of ${what} as a whole number, such as 25 (0 for none).`
      : countProblem(license, which, n);
    if (problem) problems.push({ field, message: problem });
    return Number.isNaN(n) ? 0 : n;
  };
  if (license !== 'MDR_CLOUD') users.tier = users_of('tier', `${LICENSE_NAMES[license] || 'MDR'} users`);
  users.cloud = users_of('cloud', 'MDR Cloud users');
  if (license === 'MDR_COMPLETE') users.sat = users_of('sat', 'Beauceron SAT users');
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
  problems.push(...fieldProblems(request));
  // What the partner's view refuses, where the field is otherwise right.
  problems.push(...partnerProblems(request).filter((p) => !problems.some((q) => q.field === p.field)));
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
  const said = new Set(); // a reason said once at its element (every sensor without an address)
  const items = reasons.flatMap((r) => {
    const el = r.field ? elementFor(r.field) : null;
    const key = `${el ? el.id : ''}\n${r.message}`;
    if (said.has(key)) return [];
    said.add(key);
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
  const n = items.length;
  $('errors').replaceChildren(
    h('h2', { text: 'There is a problem' }),
    h('p', { text: n === 1 ? 'Please correct this and submit again:' : `Please correct these ${n} things and submit again:` }),
    h('ul', {}, ...items));
  marked.sort((a, b) => (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
  if (marked.length) focusTarget(marked[0]).focus();
  else $('errors').focus();
}
