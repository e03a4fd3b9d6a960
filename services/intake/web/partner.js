/* The signed-in partner's view (GET /v1/partner): the licenses it holds with the users
 * available for each count, the partners that share its license, and its default
 * address. The page offers only the licenses the partner holds, shows the users
 * available beside each count and refuses more at the field, shows the default
 * address and asks for its confirmation, and offers the sharing partners as the
 * sub-partner's choices. Allocation's all-or-nothing check stays the authority: the
 * view may trail a change by a moment, and a race is still a clean failure. Until the
 * view is loaded (or if it cannot be), the form offers everything, as intake does. */
import * as auth from './signin.js';
import { $, addressText, form, h } from './dom.js';
import { LICENSE_NAMES } from './state.js';

let view = null; // GET /v1/partner's answer, once loaded

export async function loadPartner() {
  try {
    const res = await auth.authFetch('/v1/partner', { headers: { Accept: 'application/json' } });
    if (!res.ok) throw new Error(`the server answered ${res.status}`);
    view = await res.json();
    $('partner-problem').textContent = '';
  } catch (e) {
    view = null;
    $('partner-problem').textContent = `What your partner account holds could not be loaded (${e.message}): ` +
      'the form still offers everything, and every count is checked when the request is sent.';
  }
}

const held = (license) => (view ? view.licenses.find((l) => l.license === license) || null : null);

/* The users available for a count ('tier', 'cloud' or 'sat') under a license, or null
 * when the view does not say (not loaded, or the count is not offered with it). */
function available(license, which) {
  const l = held(license);
  return l && which in l.users_available ? l.users_available[which] : null;
}

const COUNTS = [['users_tier', 'tier', 'users.tier'], ['users_cloud', 'cloud', 'users.cloud'],
                ['users_sat', 'sat', 'users.sat']];

/* What the view changes on the page, for the license and shipping choices made. */
export function showPartner(license, shipping) {
  if (view === null) return;
  for (const r of form.querySelectorAll('input[name="license"]')) {
    const l = held(r.value);
    if (!l) r.disabled = true;
    const main = l ? l.users_available[r.value === 'MDR_CLOUD' ? 'cloud' : 'tier'] : null;
    $(`license-${r.value}-available`).textContent = l ? `, ${main} users available` : ', not held by your account';
  }
  $('license-none').hidden = view.licenses.length > 0;
  for (const [id, which] of COUNTS) {
    const n = license ? available(license, which) : null;
    $(`${id}-available`).textContent = n === null ? ''
      : which === 'tier' ? `${n} available on your ${LICENSE_NAMES[license]} license.`
      : `${n} ${which === 'cloud' ? 'MDR Cloud' : 'Beauceron SAT'} users available.`;
  }
  const a = view.default_address;
  $('default-address').textContent = a ? addressText(a) : '';
  $('default-address-box').hidden = !a || shipping !== 'default';
  $('ship-default').disabled = !a;
  $('no-default-address').hidden = !!a;
  const choices = view.sub_partners.map((p) => [p.partner_id, p.name ? `${p.name} (${p.partner_id})` : p.partner_id]);
  const list = $('sub-partners');
  if (list.children.length !== choices.length)
    list.replaceChildren(...choices.map(([v, t]) => h('option', { value: v, label: t })));
  $('sub_partner_id-choices').textContent = choices.length
    ? `Partners that share your license: ${choices.map(([, t]) => t).join('; ')}.`
    : 'No partner shares your volume license, so leave this empty.';
}

/* What the view says is wrong with a request, each at its field: a count above the
 * users available, the default address when none is on file or not confirmed, a
 * sub-partner that does not share the license. */
export function partnerProblems(req) {
  if (view === null || !req.license) return [];
  const out = [];
  for (const [, which, field] of COUNTS) {
    const n = available(req.license, which), want = req.users[which];
    if (n !== null && want > n) {
      const what = which === 'tier' ? `${LICENSE_NAMES[req.license]} users` :
        which === 'cloud' ? 'MDR Cloud users' : 'Beauceron SAT users';
      out.push({ field, message: `${what}: ${want} requested, ${n} available on your license.` });
    }
  }
  const d = req.deployment;
  if (d && d.kind === 'NETWORK_SENSORS' && $('ship-default').checked) {
    if (!view.default_address)
      out.push({ field: 'shipping', message: 'No default address is on file for your partner account: ship to ' +
                 'custom addresses.' });
    else if (!$('default-address-ok').checked)
      out.push({ field: 'shipping', message: 'Confirm that the appliances go to the default address shown, or ' +
                 'ship to custom addresses.' });
  }
  const sub = req.customer.sub_partner_id;
  if (sub && !view.sub_partners.some((p) => p.partner_id === sub))
    out.push({ field: 'customer.sub_partner_id', message: `'${sub}' is not a partner that shares your volume ` +
               'license: choose one from the list, or leave it empty.' });
  return out;
}
