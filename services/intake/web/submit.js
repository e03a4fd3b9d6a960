/* Submitting: POST /v1/onboardings with the partner's token, and what each answer
 * means for the page. A submission whose outcome is unknown is sent again as it was,
 * so intake takes it once. */
import * as auth from './signin.js';
import { $, announce } from './dom.js';
import { clearErrors, readRequest, showReasons } from './checks.js';
import { setMode } from './render.js';
import { showSubmitted } from './follow.js';

let pending = null;     // {key, body}: a submission whose outcome is unknown, sent again as is
let busy = false;       // a POST is on its way

function newId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  // randomUUID needs a secure context (https or this machine); getRandomValues does not.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = Array.from(b, (v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/* ---- submitting ------------------------------------------------------------- */

export async function submit() {
  if (busy) return;
  const { request, problems } = readRequest();
  if (problems.length) {
    setMode('edit');
    showReasons(problems);
    return;
  }
  if (!request.confirmed) {
    showReasons([{ field: 'confirmed', message: 'Please check the confirmation box before you submit.' }]);
    return;
  }
  // A retry of the same submission sends the very same request, id and time
  // included, so intake takes it once; changed answers are a new submission.
  const key = JSON.stringify(request);
  if (!pending || pending.key !== key)
    pending = { key, body: JSON.stringify(Object.assign({ request_id: newId() }, request, { submitted_at: Date.now() })) };
  const sent = pending;
  clearErrors();
  busy = true;
  $('submit-button').setAttribute('aria-disabled', 'true');
  announce('Submitting the request.');
  let res = null;
  let answer = {};
  try {
    res = await auth.authFetch('/v1/onboardings', { method: 'POST', body: sent.body,
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' } });
    answer = await res.json().catch(() => ({}));
  } catch (e) {
    res = null;
    answer = { error: `no answer came (${e.message})` };
  } finally {
    busy = false;
    $('submit-button').removeAttribute('aria-disabled');
  }
  if (res && res.status === 202) {
    pending = null;
    showSubmitted(JSON.parse(sent.body), answer);
  } else if (res && res.status === 422) {
    pending = null; // nothing was recorded: a corrected request is a new submission
    setMode('edit');
    $('confirmed').checked = false;
    showReasons(answer.reasons || []);
  } else if (res && res.status === 401) {
    $('submit-problem').textContent = 'The request was not sent: you are not signed in any more. Sign in again ' +
      'at the top of the page.';
  } else if (res && res.status >= 400 && res.status < 500) {
    pending = null;
    $('submit-problem').textContent = `The request was not taken: ${answer.error || `the server answered ${res.status}`}.`;
  } else {
    // Unknown outcome (no answer, 503): the same request may be sent again safely.
    $('submit-problem').textContent = `The request was not confirmed as received: ${answer.error ||
      `the server answered ${res ? res.status : 'nothing'}`}. Press Submit to try again; the same request ` +
      'is sent again, so the customer cannot be onboarded twice.';
  }
}
