/* The onboarding form's behaviour: the choices from GET /v1/form, the sections each
 * answer opens, the review step, POST /v1/onboardings, and the confirmation page that
 * follows the onboarding with the status route's long poll. This entry module loads the
 * choices and wires the page's events to the modules that do the work:
 *
 *   dom.js     small helpers: elements, choices, counts, announcements
 *   state.js   the choices intake accepts, and the names of licenses
 *   partner.js what the signed-in partner holds: licenses, users available, address
 *   render.js  the sections each answer opens, sensors, addresses, the review summary
 *   checks.js  the request read from the fields, and the reasons shown at their fields
 *   submit.js  POST /v1/onboardings, sent again as is when its outcome is unknown
 *   follow.js  the confirmation page, following the onboarding and its emails
 *   views.js   the portal's views at their addresses: the form, the lists, an onboarding
 *   customer.js a customer's page: its users, and more added to it
 *
 * signin.js signs the partner in; every front-door call goes through its authFetch,
 * which sends the access token. The partner and the submitter are not in the request:
 * the front door takes them from the token. Modules, so strict. */
import * as auth from './signin.js';
import { $, announce, form } from './dom.js';
import { options, takeOptions } from './state.js';
import { addAddress, addSensor, addressBlocks, refresh, renderSummary, setMode } from './render.js';
import { clearErrors, readRequest, showReasons } from './checks.js';
import { submit } from './submit.js';
import { loadPartner } from './partner.js';
import { go, route, startViews } from './views.js';
import { outcome, stopFollowing } from './follow.js';

let touched = false; // answers were given that leaving the page would lose

/* ---- the choices intake accepts -------------------------------------------- */

async function loadOptions() {
  try {
    const res = await fetch('/v1/form', { headers: { Accept: 'application/json' } });
    if (!res.ok) throw new Error(`the server answered ${res.status}`);
    takeOptions(await res.json());
  } catch (e) {
    $('load-problem').textContent = `The choices of this form could not be loaded (${e.message}); ` +
      'please reload the page.';
    return;
  }
  if (options.incident_response) $('incident-contact').textContent = `Incident response: ${options.incident_response}.`;
  const offered = new Set(options.licenses.map((l) => l.code));
  for (const r of form.querySelectorAll('input[name="license"]')) r.disabled = !offered.has(r.value);
  refresh();
  form.dataset.ready = 'true';
  await auth.start(options.signin, { unsaved: () => touched && $('result').hidden });
  const who = auth.user();
  if (who && who.partner_id) {
    await loadPartner();
    refresh();
    startViews();
    await route();
  }
}

/* ---- wiring ----------------------------------------------------------------- */

form.addEventListener('input', () => {
  touched = true;
  refresh();
});
form.addEventListener('change', (e) => {
  touched = true;
  refresh();
  if (e.target.name === 'breach')
    announce(e.target.value === 'yes'
      ? 'Contact incident response first: a customer experiencing a breach or incident cannot be onboarded here.'
      : 'The rest of the form is shown below.');
  // Choosing custom addresses starts with one address to fill in.
  if (e.target.id === 'ship-custom' && !addressBlocks().length) addAddress(false);
});
$('add-sensor').addEventListener('click', addSensor);
$('add-address').addEventListener('click', () => addAddress(true));

$('review-button').addEventListener('click', () => {
  const { request, problems } = readRequest();
  if (problems.length) {
    showReasons(problems);
    return;
  }
  clearErrors();
  renderSummary(request);
  $('confirmed').checked = false;
  setMode('review');
  $('review-title').focus();
});
$('edit-button').addEventListener('click', () => {
  clearErrors();
  setMode('edit');
  $('review-button').focus();
});
form.addEventListener('submit', (e) => {
  e.preventDefault();
  // Enter in a field while editing sends nothing: the review comes first.
  if (!$('review').hidden) submit();
});
$('correct-button').addEventListener('click', () => {
  stopFollowing(); // stop following the old onboarding
  history.pushState(null, '', '/');
  setMode('edit');
  showReasons(outcome && outcome.reasons ? outcome.reasons : []);
  // What is available now: the failed onboarding gave its users back, and others may
  // have drawn some since the page loaded.
  loadPartner().then(refresh);
});
$('new-button').addEventListener('click', () => {
  stopFollowing();
  form.reset();
  touched = false;
  $('sensors').replaceChildren();
  $('addresses').replaceChildren();
  clearErrors();
  refresh();
  loadPartner().then(refresh);
  go('/');
  $('page-title').focus();
});

refresh();
loadOptions();
