/* The confirmation page: it follows the onboarding with the status route's long poll
 * until it is confirmed, refused or failed, then asks how its emails went until each is
 * settled. */
import * as auth from './signin.js';
import { $, addressText, announce, h } from './dom.js';
import { LICENSE_NAMES } from './state.js';
import { entry, setMode } from './render.js';

const FINAL = new Set(['confirmed', 'rejected', 'failed']);
const PRODUCT_NAMES = Object.assign({ BEAUCERON_SAT: 'Beauceron SAT' }, LICENSE_NAMES);
// Wording only: the order of statuses and stages is the server's. Intake moves the status
// only forward and lists the stages in the order of the flow, whatever order it heard of
// them, so the page shows them as given and never sorts them itself.
const STATUS_TEXT = {
  submitted: 'Submitted; waiting for intake to check it.',
  accepted: 'Accepted; allocating the users.',
  users_allocated: 'Users allocated; provisioning the appliances.',
  appliances_provisioned: 'Appliances provisioned; arranging the shipping.',
  shipping_arranged: 'Shipping arranged; confirming.',
};
// Seconds each status request may wait for the outcome (the route takes 1 to 60).
const LONG_POLL_S = 20;
// Once confirmed, how often the page asks how its emails went while one is still to
// be sent, and for how long at most (the notifier retries for about 15 minutes).
const MAIL_POLL_MS = 3000;
const MAIL_POLL_FOR_MS = 20 * 60 * 1000;

let following = 0; // the long poll of this generation runs; a newer one ends it
// The page shows an onboarding opened by its address, not one just submitted from the
// form: there is no request in the form to correct, and an unknown id is not waited for.
let opened = false;
// The final status shown on the result page; form.js reads it (a live binding) to
// show its reasons when the request is corrected.
export let outcome = null;

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/* Stops the long poll under way: it ends at its next answer. */
export function stopFollowing() {
  following++;
  // The page shows that onboarding no more: its outcome is not the page's any longer
  // (until the next one's answer comes, the page has none).
  const result = $('result');
  result.dataset.status = '';
  delete result.dataset.onboardingId;
}

/* ---- the confirmation page -------------------------------------------------- */

export function showSubmitted(request, answer) {
  const email = (auth.user() || {}).email || 'your email address'; // the front door's submitter
  outcome = null;
  setMode('result');
  const result = $('result');
  result.dataset.status = 'submitted';
  result.dataset.onboardingId = answer.onboarding_id;
  $('result-title').textContent = 'Onboarding request submitted';
  $('result-intro').textContent = `We are confirming your new customer, ${request.customer.legal_name}, and ` +
    `their users. An email will be sent to you at ${email} when the onboarding is ` +
    `complete, and ${request.customer.portal_admin_email} will be invited to the MDR Portal.`;
  $('result-progress').textContent = STATUS_TEXT.submitted;
  $('result-body').replaceChildren(...advice(answer.warnings));
  $('correct-button').hidden = true;
  $('result-title').focus();
  opened = false;
  // The confirmation page's own address: a reload or a bookmark opens it again.
  history.pushState(null, '', `/onboardings/${answer.onboarding_id}`);
  follow(answer.status_url || `/v1/onboardings/${answer.onboarding_id}`);
}

/* The confirmation page of an onboarding opened by its address (a reload, a bookmark,
 * a list): what the status answer says, followed as after a submission. */
export function openOnboarding(id) {
  outcome = null;
  opened = true;
  setMode('result');
  const result = $('result');
  result.dataset.status = '';
  result.dataset.onboardingId = id;
  $('result-title').textContent = 'Onboarding';
  $('result-intro').textContent = '';
  $('result-progress').textContent = 'Loading the onboarding.';
  $('result-body').replaceChildren();
  $('correct-button').hidden = true;
  $('result-title').focus();
  follow(`/v1/onboardings/${id}`);
}

function advice(warnings) {
  if (!warnings || !warnings.length) return [];
  return [h('h3', { text: 'Advice' }), h('ul', { id: 'result-warnings' }, ...warnings.map((w) => h('li', { text: w.message })))];
}

/* Follows the onboarding with the long poll until it is confirmed, refused or failed;
 * a lost connection is tried again. */
async function follow(url) {
  const mine = ++following;
  let mailsSince = 0;
  for (;;) {
    let res = null;
    let status = null;
    try {
      res = await auth.authFetch(`${url}?wait=${LONG_POLL_S}`, { headers: { Accept: 'application/json' },
                                                                 cache: 'no-store' });
      if (res.status === 200) status = await res.json();
    } catch (e) {
      res = null;
    }
    if (mine !== following) return;
    if (res && res.status === 401) {
      $('result-progress').textContent = outcome && outcome.status === 'confirmed'
        ? 'You are not signed in any more, so this page stopped following the emails. They are sent all the same.'
        : 'You are not signed in any more, so this page stopped following the ' +
          'onboarding. It goes on, and the email is sent to you when it is complete.';
      return;
    }
    if (status && FINAL.has(status.status)) {
      if (outcome && outcome.onboarding_id === status.onboarding_id) showMails(status);
      else showOutcome(status);
      // Confirmed with an email still to be sent: asked again until each is settled,
      // while the page is in view.
      if (!mailsPending(status)) return;
      if (!mailsSince) mailsSince = Date.now();
      if (Date.now() - mailsSince > MAIL_POLL_FOR_MS) {
        $('result-progress').textContent = 'This page stopped following the emails; they are still being ' +
          'sent. Their outcome shows here when you open the onboarding again.';
        return;
      }
      do await delay(MAIL_POLL_MS); while (document.hidden && mine === following);
      continue;
    }
    if (status) {
      $('result-progress').textContent = STATUS_TEXT[status.status] || `Status: ${status.status}.`;
    } else if (res && res.status === 404 && opened) {
      $('result-title').textContent = 'No such onboarding';
      $('result-progress').textContent = 'None of your partner account\'s onboardings has this address. ' +
        'Your onboardings are listed under Onboardings.';
      return;
    } else if (!res || res.status !== 404) {
      // 404: intake has not recorded it yet, and the long poll has waited already.
      $('result-progress').textContent = 'Waiting for the server to answer.';
      await delay(2000);
    }
  }
}

function table(id, head, rows) {
  return h('table', { id },
    h('thead', {}, h('tr', {}, ...head.map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, ...rows.map((r) => h('tr', {}, ...r.map((c) => h('td', { text: c === null ? '' : String(c) }))))));
}

const STAGE_TEXT = {
  accepted: 'Accepted', rejected: 'Refused', 'users-allocated': 'Users allocated',
  'appliances-provisioned': 'Appliances provisioned', 'shipping-completed': 'Shipping arranged',
  'shipment-dispatched': 'Shipment dispatched', confirmed: 'Confirmed', failed: 'Could not be completed',
};

/* The stages in the order the status answer gives them: the flow's, with when each
 * happened at its own stage. */
function stageList(stages) {
  if (!stages || !stages.length) return [];
  return [h('h3', { text: 'Progress' }), h('ol', { id: 'result-stages' }, ...stages.map((st) =>
    h('li', { 'data-stage': st.stage, text: `${STAGE_TEXT[st.stage] || st.stage}: ` +
                                           `${new Date(st.happened_at || st.at).toLocaleString()}` })))];
}

const MAIL_KINDS = { confirmation: 'Confirmation to you', invitation: 'MDR Portal invitation' };
const MAIL_STATES = { pending: 'will be sent', sent: 'sent', failed: 'could not be delivered' };

function mailsPending(s) {
  return s.status === 'confirmed' && (s.mails || []).some((m) => m.status === 'pending');
}

function mailItems(mails) {
  return mails.map((m) => h('li', { 'data-kind': m.kind, 'data-status': m.status,
    text: `${MAIL_KINDS[m.kind] || m.kind}: ${m.recipient}, ${MAIL_STATES[m.status] || m.status}` }));
}

/* The confirmation page shown already: only its emails change, and only a change is
 * written (the list is a live region: each write is read out). */
function showMails(s) {
  const list = $('result-mails');
  const was = (outcome.mails || []).map((m) => m.status).join();
  $('result-progress').textContent = '';
  if (list && (s.mails || []).map((m) => m.status).join() !== was) list.replaceChildren(...mailItems(s.mails || []));
  outcome = s;
}

function showOutcome(s) {
  outcome = s;
  const result = $('result');
  result.dataset.status = s.status;
  $('result-progress').textContent = '';
  const body = [];
  if (s.status === 'confirmed') {
    $('result-title').textContent = 'Customer onboarded';
    $('result-intro').textContent = `Your new customer, ${s.customer.legal_name}, and their users are confirmed. ` +
      'The emails below go out now; each says here when it is sent.';
    const dl = h('dl', { class: 'summary', id: 'result-customer' });
    entry(dl, 'Customer id', h('span', { id: 'result-customer-id', text: s.customer.customer_id }));
    entry(dl, 'Legal name', s.customer.legal_name);
    entry(dl, 'License', LICENSE_NAMES[s.license] || s.license);
    entry(dl, 'Web site', s.customer.web_site);
    entry(dl, 'Sub-partner', s.customer.sub_partner_id);
    entry(dl, 'MDR Portal administrator', s.customer.portal_admin_email);
    body.push(h('h3', { text: 'Customer' }), dl);
    body.push(h('h3', { text: 'Users' }),
      table('result-users', ['Product', 'Users'], s.users.map((u) => [PRODUCT_NAMES[u.product] || u.product, u.users])));
    if (s.appliances.length)
      body.push(h('h3', { text: 'Appliances' }), table('result-appliances', ['Appliance', 'Model', 'Serial or virtual appliance'],
        s.appliances.map((a) => [a.role === 'PRIMARY' ? 'Primary' : 'Sensor', a.sku,
          a.serial || `${a.virtual_id} in ${a.hosting_region}`])));
    if (s.shipments.length)
      body.push(h('h3', { text: 'Shipments' }), h('ul', { id: 'result-shipments' }, ...s.shipments.map((sh) =>
        h('li', { text: `To ${addressText(sh.address)}: ${sh.items.map((i) => `${i.sku} ${i.serial}`).join(', ')}. ` +
                        (sh.tracking_number ? `Shipped by ${sh.carrier}, tracking ${sh.tracking_number}.`
                          : 'The tracking number will be emailed to you when it ships.') }))));
    body.push(h('h3', { text: 'Emails' }), h('ul', { id: 'result-mails', 'aria-live': 'polite' },
      ...mailItems(s.mails)));
    body.push(...advice(s.warnings));
    $('correct-button').hidden = true;
  } else {
    const refused = s.status === 'rejected';
    $('result-title').textContent = refused ? 'The onboarding request was refused'
      : 'The onboarding could not be completed';
    $('result-intro').textContent = refused
      ? 'Nothing was allocated. Correct the request and submit it again.'
      : 'Everything held for it was released: the users went back to your license and no appliance is ' +
        'reserved. An email with the reasons was sent to you. Correct the request and submit it again.';
    body.push(h('h3', { text: 'Reasons' }), h('ul', { id: 'result-reasons' }, ...(s.reasons || []).map((r) =>
      h('li', { 'data-code': r.code, text: r.message }))));
    $('correct-button').hidden = opened;
  }
  body.push(...stageList(s.stages));
  $('result-body').replaceChildren(...body);
  $('result-title').focus();
  announce($('result-title').textContent);
}
