/* What the form shows follows its answers: the sections each answer opens, the
 * additional sensors and the shipping addresses added and removed, the "which address
 * is each appliance for" selects, the mode (edit, review, result) and the review's
 * summary. */
import * as auth from './signin.js';
import { $, addressText, announce, checked, count, form, h } from './dom.js';
import { showPartner } from './partner.js';
import { LICENSE_NAMES, PARTNER_DEFAULT, options } from './state.js';

let seq = 0; // stable keys of added sensors and addresses

/* Replaces a select's options when they changed (so a select being used keeps its
 * state), keeping the chosen value when it is still offered. */
function setOptions(select, placeholder, items) {
  const want = [['', placeholder]].concat(items);
  const have = Array.from(select.options, (o) => [o.value, o.textContent]);
  if (JSON.stringify(want) === JSON.stringify(have)) return;
  const value = select.value;
  select.replaceChildren(...want.map(([v, t]) => h('option', { value: v, text: t })));
  select.value = items.some(([v]) => v === value) ? value : '';
}

// Regions and models by their names, countries by theirs in the browser's language.
const skuItems = () => (options.appliance_models || options.appliance_skus.map((s) => ({ sku: s, name: s })))
  .map((m) => [m.sku, m.name]);
const regionItems = () => (options.regions || options.hosting_regions.map((c) => ({ code: c, name: c })))
  .map((x) => [x.code, x.name]);
let countryNames = null;
function countryItems() {
  if (!countryNames) {
    let names = null;
    try {
      names = new Intl.DisplayNames([navigator.language || 'en', 'en'], { type: 'region' });
    } catch (e) {
      names = null;
    }
    countryNames = (options.countries || []).map((c) => [c, names ? `${names.of(c)} (${c})` : c])
      .sort((a, b) => a[1].localeCompare(b[1]));
  }
  return countryNames;
}

/* ---- appliances and addresses ----------------------------------------------- */

/* The appliances in request order: the primary first, then each additional sensor. */
export function appliances() {
  const list = [{ key: 'primary', role: 'PRIMARY', select: $('primary_sku') }];
  for (const li of $('sensors').children)
    list.push({ key: li.dataset.key, role: 'SENSOR', select: li.querySelector('select') });
  return list.map((a, i) => Object.assign(a, { index: i, name: i ? `Additional sensor ${i}` : 'Primary appliance' }));
}

export const addressBlocks = () => Array.from($('addresses').children);

export function addSensor() {
  const key = `sensor-${++seq}`;
  const id = `sku-${key}`;
  const select = h('select', { id, class: 'sku' });
  const remove = h('button', { type: 'button', class: 'secondary remove' });
  const li = h('li', { 'data-key': key }, h('div', { class: 'field' }, h('label', { for: id }), select), remove);
  remove.addEventListener('click', () => {
    li.remove();
    refresh();
    $('add-sensor').focus();
    announce('Sensor removed.');
  });
  $('sensors').append(li);
  refresh();
  select.focus();
}

// Each address field: its name in the request, label, whether optional, and more.
const ADDRESS_FIELDS = [
  ['recipient', 'Recipient (person or department)', { wide: true, autocomplete: 'shipping name' }],
  ['line1', 'Street address', { wide: true, autocomplete: 'shipping address-line1' }],
  ['line2', 'Address line 2 (optional)', { wide: true, autocomplete: 'shipping address-line2' }],
  ['city', 'City', { autocomplete: 'shipping address-level2' }],
  ['region', 'Province or state (optional)', { autocomplete: 'shipping address-level1' }],
  ['postal_code', 'Postal code', { autocomplete: 'shipping postal-code' }],
  ['country', 'Country', { autocomplete: 'shipping country', select: true }],
  ['phone', 'Phone (optional)', { type: 'tel', autocomplete: 'shipping tel' }],
];

export function addAddress(focus) {
  const key = `address-${++seq}`; // also its ref in the request
  const grid = h('div', { class: 'grid' });
  for (const [name, label, o] of ADDRESS_FIELDS) {
    const id = `${key}-${name}`;
    const hintId = o.hint ? `${id}-hint` : null;
    grid.append(h('div', { class: o.wide ? 'field wide' : 'field' },
      h('label', { for: id, text: label }),
      o.hint ? h('p', { class: 'hint', id: hintId, text: o.hint }) : null,
      o.select ? h('select', { id, 'data-name': name, autocomplete: o.autocomplete })
        : h('input', { id, type: o.type || 'text', 'data-name': name, autocomplete: o.autocomplete,
                       maxlength: o.maxlength, class: o.short ? 'short' : null, 'aria-describedby': hintId })));
  }
  const remove = h('button', { type: 'button', class: 'secondary remove' });
  const block = h('fieldset', { id: `fs-${key}`, class: 'address', 'data-key': key }, h('legend'), grid, remove);
  remove.addEventListener('click', () => {
    block.remove();
    refresh();
    $('add-address').focus();
    announce('Address removed.');
  });
  $('addresses').append(block);
  refresh();
  if (focus) block.querySelector('input').focus();
}

function addressName(block, i) {
  const v = (name) => block.querySelector(`[data-name="${name}"]`).value.trim();
  const what = [v('recipient'), v('city')].filter(Boolean).join(', ');
  return `Address ${i + 1}${what ? `: ${what}` : ''}`;
}

/* The "which address is each appliance for" selects, one per appliance, kept in
 * step with the appliances and the addresses without losing what was chosen. */
function syncAssignments() {
  const box = $('assignments');
  const rows = new Map(Array.from(box.children, (d) => [d.dataset.key, d]));
  const items = addressBlocks().map((b, i) => [b.dataset.key, addressName(b, i)]);
  appliances().forEach((a, i) => {
    let row = rows.get(a.key);
    if (!row) {
      const id = `ship_to-${a.key}`;
      row = h('div', { class: 'field', 'data-key': a.key }, h('label', { for: id }), h('select', { id }));
    }
    rows.delete(a.key);
    if (box.children[i] !== row) box.insertBefore(row, box.children[i] || null);
    row.querySelector('label').textContent = a.name + (a.select.value ? ` (${a.select.value})` : '');
    const select = row.querySelector('select');
    select.dataset.field = `deployment.appliances[${i}].ship_to`;
    setOptions(select, 'Choose an address', items);
  });
  for (const row of rows.values()) row.remove();
}

/* ---- what is shown follows the answers -------------------------------------- */

export function refresh() {
  const license = checked('license');
  const breach = checked('breach');
  const cloud = license === 'MDR_CLOUD';
  $('breach-advice').hidden = breach !== 'yes';
  $('rest').hidden = breach !== 'no';
  $('tier-field').hidden = cloud;
  $('users_tier-label').textContent = `${license ? LICENSE_NAMES[license] : 'MDR'} users`;
  $('sat-field').hidden = license !== 'MDR_COMPLETE';
  $('fs-deployment').hidden = cloud; // MDR Cloud has no appliance
  const kind = checked('deployment_kind');
  $('virtual-fields').hidden = kind !== 'VIRTUAL';
  $('sensor-fields').hidden = kind !== 'NETWORK_SENSORS';
  $('fs-shipping').hidden = cloud || kind !== 'NETWORK_SENSORS';
  $('custom-fields').hidden = checked('shipping') !== 'custom';

  setOptions($('hosting_region'), 'Choose a hosting region', regionItems());
  for (const s of form.querySelectorAll('select[data-name="country"]')) setOptions(s, 'Choose a country', countryItems());
  for (const s of form.querySelectorAll('select.sku')) setOptions(s, 'Choose a model', skuItems());
  Array.from($('sensors').children).forEach((li, i) => {
    li.querySelector('label').textContent = `Additional sensor ${i + 1}`;
    li.querySelector('select').dataset.field = `deployment.appliances[${i + 1}].sku`;
    li.querySelector('button').textContent = `Remove additional sensor ${i + 1}`;
  });
  addressBlocks().forEach((b, i) => {
    b.dataset.field = `deployment.addresses[${i}]`;
    b.querySelector('legend').textContent = `Address ${i + 1}`;
    for (const input of b.querySelectorAll('[data-name]'))
      input.dataset.field = `deployment.addresses[${i}].${input.dataset.name}`;
    b.querySelector('button.remove').textContent = `Remove address ${i + 1}`;
  });
  syncAssignments();

  // The article's advice: below 10 users the fully virtual solution is appropriate.
  const tier = count($('users_tier').value);
  const below = options.virtual_recommended_below || 10;
  const advice = !cloud && tier > 0 && tier < below
    ? `With fewer than ${below} users the fully virtual solution is appropriate, unless the customer ` +
      'needs network packet analysis.'
    : '';
  if ($('virtual-advice').textContent !== advice) $('virtual-advice').textContent = advice;

  showPartner(license, checked('shipping'));

  $('add-sensor').disabled = appliances().length >= options.max_appliances;
  $('add-address').disabled = addressBlocks().length >= options.max_appliances;
}

export function setMode(mode) {
  $('edit').hidden = mode !== 'edit';
  $('review').hidden = mode !== 'review';
  form.hidden = mode === 'result';
  $('result').hidden = mode !== 'result';
}

/* ---- review ----------------------------------------------------------------- */

export function entry(dl, term, value) {
  dl.append(h('dt', { text: term }), h('dd', {}, value === null || value === '' ? 'None' : value));
}

export function renderSummary(req) {
  const dl = $('summary');
  dl.replaceChildren();
  const who = auth.user() || {};
  entry(dl, 'Partner', who.partner_id || '');
  entry(dl, 'Submitted by', who.email || '');
  entry(dl, 'License', LICENSE_NAMES[req.license]);
  entry(dl, 'Breach or incident', req.breach_or_incident ? 'Yes' : 'No');
  entry(dl, 'Customer legal name', req.customer.legal_name);
  entry(dl, 'Web site', req.customer.web_site);
  entry(dl, 'Sub-partner', req.customer.sub_partner_id);
  entry(dl, 'MDR Portal administrator', req.customer.portal_admin_email);
  if (req.license !== 'MDR_CLOUD') entry(dl, `${LICENSE_NAMES[req.license]} users`, String(req.users.tier));
  entry(dl, 'MDR Cloud users', String(req.users.cloud));
  if (req.license === 'MDR_COMPLETE') entry(dl, 'Beauceron SAT users', String(req.users.sat));
  const d = req.deployment;
  if (req.license === 'MDR_CLOUD') {
    entry(dl, 'Deployment', 'None: MDR Cloud has no appliance');
  } else if (d === null) {
    entry(dl, 'Deployment', 'Not chosen');
  } else if (d.kind === 'VIRTUAL') {
    entry(dl, 'Deployment', `Fully virtual, hosted in ${d.hosting_region || '(no region chosen)'}`);
  } else {
    entry(dl, 'Deployment', 'Network sensors');
    const names = new Map(d.addresses.map((a, i) => [a.ref, `Address ${i + 1}`]));
    const where = (to) => (to === PARTNER_DEFAULT ? 'our default partner address'
      : to === null ? 'no address chosen' : names.get(to) || to);
    entry(dl, 'Appliances', h('ul', {}, ...d.appliances.map((a, i) =>
      h('li', { text: `${i ? `Additional sensor ${i}` : 'Primary appliance'}: ${a.sku || '(no model chosen)'}, ` +
                      `shipped to ${where(a.ship_to)}` }))));
    if (d.addresses.length)
      entry(dl, 'Shipping addresses', h('ul', {}, ...d.addresses.map((a, i) =>
        h('li', { text: `Address ${i + 1}: ${addressText(a)}` }))));
  }
}
