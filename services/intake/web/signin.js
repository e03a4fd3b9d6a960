/* Signing the partner in for the onboarding page: OpenID Connect's authorization code
 * flow with PKCE (S256) at the issuer GET /v1/form names, as its public client, and the
 * access token on every front-door call.
 *
 * Where things live:
 * - the tokens (access, refresh, ID) in this module's variables only: never in
 *   localStorage, sessionStorage or a cookie, so a reload or another tab signs in again
 *   (one click while the identity provider's own session lasts);
 * - the code verifier, state and nonce in sessionStorage only while the browser is at
 *   the identity provider, removed the moment the page is back, whatever the answer.
 *
 * The access token is refreshed with the refresh token shortly before it expires. A 401
 * from the front door gets one refresh and one retry; then the sign-in has ended and the
 * page asks to sign in again. "Sign out" forgets everything here first, then ends the
 * session at the identity provider, which sends the browser back to this page.
 *
 * The claims shown (username, email, partner) are decoded from the access token for
 * display only: the front door verifies the token and takes them from it itself. */

const PENDING = 'lmp.signin.pending'; // sessionStorage, only across the redirect
const EARLY_S = 30; // refresh this long before the access token expires
const RETRY_MS = 10000; // the identity provider out of reach: try the refresh again
const SIGNED_OUT = 'signed-out'; // the state the end of a session comes back with

const $ = (id) => document.getElementById(id);

let config = null; // {issuer, client_id}, from GET /v1/form
let discovered = null; // the issuer's openid-configuration
let tokens = null; // {access, refresh, id, expiresAt}: memory only
let claims = null; // {username, email, partner_id}: for display only
let timer = 0; // the next refresh
let refreshing = null; // the refresh under way, shared by whoever needs it
let generation = 0; // moves on whenever the tokens are forgotten
let unsaved = () => false; // whether the page holds answers a redirect would lose

/* ---- encoding -------------------------------------------------------------------- */

function base64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const random = (n) => base64url(crypto.getRandomValues(new Uint8Array(n)));

async function s256(verifier) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

/* A JWT's claims, unverified: for display, and the ID token's nonce. */
function payload(jwt) {
  try {
    const p = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(p + '==='.slice((p.length + 3) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)))) || {};
  } catch (e) {
    return {};
  }
}

/* ---- the identity provider -------------------------------------------------------- */

async function discover() {
  if (discovered) return discovered;
  const res = await fetch(`${config.issuer}/.well-known/openid-configuration`,
                          { headers: { Accept: 'application/json' } });
  if (!res.ok) throw new Error(`the sign-in service answered ${res.status}`);
  const d = await res.json();
  // OpenID Connect Discovery 4.3: the document must be the issuer's own.
  if (d.issuer !== config.issuer) throw new Error('the sign-in service names another issuer');
  if (!d.authorization_endpoint || !d.token_endpoint) throw new Error('the sign-in service names no endpoints');
  discovered = d;
  return d;
}

// The page itself, where the identity provider sends the browser back.
const redirectUri = () => `${location.origin}${location.pathname}`;

function tokenRequest(d, fields) {
  return fetch(d.token_endpoint, { method: 'POST', body: new URLSearchParams(fields),
                                   headers: { Accept: 'application/json' } });
}

/* Takes a token answer (of the code or of a refresh). */
function accept(t, nonce) {
  if (!t || typeof t.access_token !== 'string' || !/^bearer$/i.test(t.token_type || ''))
    throw new Error('the sign-in service gave no access token');
  if (nonce !== undefined && (!t.id_token || payload(t.id_token).nonce !== nonce))
    throw new Error('the sign-in answer was not for the sign-in this page started');
  const life = Number(t.expires_in) > 0 ? Number(t.expires_in) : 60;
  const old = tokens || {};
  tokens = { access: t.access_token, refresh: t.refresh_token || old.refresh || null, id: t.id_token || old.id || null,
             expiresAt: Date.now() + life * 1000 };
  const c = payload(t.access_token);
  claims = { username: String(c.preferred_username || c.sub || ''), email: String(c.email || ''),
             partner_id: String(c.partner_id || '') };
  clearTimeout(timer);
  if (tokens.refresh) timer = setTimeout(refresh, Math.max(life - EARLY_S, life / 2) * 1000);
}

function forget() {
  tokens = null;
  claims = null;
  generation++;
  clearTimeout(timer);
}

/* A new access token with the refresh token: true when there is one. Out of reach, it
 * is tried again soon; refused (the session ended), the sign-in has ended. */
function refresh() {
  if (refreshing) return refreshing;
  const mine = generation;
  refreshing = (async () => {
    if (!tokens || !tokens.refresh) return false;
    let res = null;
    let answer = null;
    try {
      const d = await discover();
      res = await tokenRequest(d, { grant_type: 'refresh_token', refresh_token: tokens.refresh,
                                    client_id: config.client_id });
      answer = await res.json().catch(() => null);
    } catch (e) {
      res = null;
    }
    if (mine !== generation) return false; // signed out meanwhile
    if (res && res.ok) {
      try {
        accept(answer);
        render();
        return true;
      } catch (e) {
        res = { status: 400 };
      }
    }
    if (res && (res.status === 400 || res.status === 401)) {
      ended();
      return false;
    }
    clearTimeout(timer);
    timer = setTimeout(refresh, RETRY_MS);
    return false;
  })().finally(() => { refreshing = null; });
  return refreshing;
}

/* ---- what the page shows ------------------------------------------------------------ */

let state = 'busy';

/* state: busy (finding out), signed-out, signed-in, ended (the sign-in ended while the
 * page was in use: what it shows stays, nothing more can be sent), unavailable. */
function show(next, problem = '', status = '') {
  state = next;
  $('signin-problem').textContent = problem;
  $('signin-status').textContent = status;
  render();
}

function render() {
  const signedIn = state === 'signed-in' && claims !== null;
  const partner = signedIn && claims.partner_id !== '';
  document.body.dataset.signin = signedIn ? (partner ? 'signed-in' : 'no-partner') : state;
  $('signin').hidden = signedIn;
  $('signin-button').hidden = state === 'busy' || state === 'unavailable';
  $('signin-button').textContent = state === 'ended' ? 'Sign in again' : 'Sign in';
  $('account').hidden = !signedIn;
  if (signedIn) {
    $('account-name').textContent = claims.username;
    $('account-email').textContent = claims.email;
    $('account-partner').textContent = partner ? claims.partner_id : 'no partner';
    if (!partner)
      $('account-note').textContent = `The account ${claims.username} acts for no partner, so it cannot onboard ` +
        'customers. Sign out and sign in with your partner account.';
  }
  // The form only for a partner; what was on the page stays when the sign-in ends.
  if (state !== 'ended') $('app').hidden = !partner;
}

function ended() {
  const lost = unsaved();
  forget();
  show('ended', lost
    ? 'Your sign-in has ended, so the request cannot be sent. Sign in again to go on. Signing in leaves this ' +
      'page, and it keeps nothing you entered: note down anything you need first, then fill in the form again.'
    : 'Your sign-in has ended. Sign in again to go on.');
  $('signin-title').focus();
}

/* ---- signing in and out ------------------------------------------------------------- */

/* To the identity provider's sign-in page; it sends the browser back with a code. */
export async function signIn() {
  try {
    const d = await discover();
    const pending = { state: random(32), verifier: random(32), nonce: random(16), redirect_uri: redirectUri(),
                      lost: unsaved() };
    const url = new URL(d.authorization_endpoint);
    url.search = new URLSearchParams({
      response_type: 'code', client_id: config.client_id, redirect_uri: pending.redirect_uri, scope: 'openid',
      state: pending.state, nonce: pending.nonce, code_challenge: await s256(pending.verifier),
      code_challenge_method: 'S256',
    }).toString();
    sessionStorage.setItem(PENDING, JSON.stringify(pending));
    forget();
    location.assign(url.href);
  } catch (e) {
    show(state === 'ended' ? 'ended' : 'signed-out', `Signing in could not start (${e.message}). Please try again.`);
  }
}

/* Back from the identity provider: the code for tokens, if the answer is the one this
 * page asked for. */
async function complete(params) {
  history.replaceState(null, '', location.pathname); // the code is used once, never again
  let pending = null;
  try {
    pending = JSON.parse(sessionStorage.getItem(PENDING));
  } catch (e) {
    pending = null;
  }
  sessionStorage.removeItem(PENDING);
  if (!pending || typeof pending.state !== 'string' || params.get('state') !== pending.state)
    throw new Error('the answer from the sign-in page does not belong to a sign-in this page started');
  const d = await discover();
  // RFC 9207: an answer naming an issuer must name this one.
  if (params.has('iss') && params.get('iss') !== config.issuer)
    throw new Error('the answer came from another sign-in service');
  if (params.has('error'))
    throw new Error(params.get('error_description') || params.get('error'));
  const res = await tokenRequest(d, { grant_type: 'authorization_code', code: params.get('code') || '',
                                      redirect_uri: pending.redirect_uri, client_id: config.client_id,
                                      code_verifier: pending.verifier });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(answer.error_description || `the sign-in service answered ${res.status}`);
  accept(answer, pending.nonce);
  return pending;
}

/* Forgets the tokens, then ends the session at the identity provider, which sends the
 * browser back here signed out. */
export async function signOut() {
  const idToken = tokens && tokens.id;
  forget();
  show('signed-out');
  let d = null;
  try {
    d = await discover();
  } catch (e) {
    d = null;
  }
  if (!d || !d.end_session_endpoint) {
    show('signed-out', '', 'You have signed out of this page.');
    return;
  }
  const url = new URL(d.end_session_endpoint);
  const q = { client_id: config.client_id, post_logout_redirect_uri: redirectUri(), state: SIGNED_OUT };
  if (idToken) q.id_token_hint = idToken;
  url.search = new URLSearchParams(q).toString();
  location.assign(url.href);
}

/* ---- for the form ------------------------------------------------------------------- */

/* Who is signed in ({username, email, partner_id}, decoded for display), or null. */
export function user() {
  return claims && state === 'signed-in' ? Object.assign({}, claims) : null;
}

/* fetch with the access token, refreshed first when it is about to expire. A 401 gets
 * one refresh and one retry (a front-door call is safe to send again: a repeat of a
 * request is answered the same); then the sign-in has ended. Signed out, nothing is
 * sent and the answer is a 401 of its own. */
export async function authFetch(url, init = {}) {
  if (tokens && Date.now() >= tokens.expiresAt - EARLY_S * 1000) await refresh();
  const withToken = () => Object.assign({}, init, {
    headers: Object.assign({}, init.headers, { Authorization: `Bearer ${tokens.access}` }) });
  if (!tokens) return notSignedIn();
  const mine = generation;
  let res = await fetch(url, withToken());
  if (res.status !== 401 || mine !== generation) return res;
  if ((await refresh()) && tokens) {
    res = await fetch(url, withToken());
    if (res.status !== 401) return res;
  }
  if (mine === generation) ended(); // else the refresh found the sign-in ended already
  return res;
}

function notSignedIn() {
  return new Response(JSON.stringify({ error: 'you are not signed in; sign in again' }),
                      { status: 401, headers: { 'Content-Type': 'application/json' } });
}

/* Starts with GET /v1/form's signin ({issuer, client_id}, or null): completes a sign-in
 * the identity provider sent the browser back from, or shows the way to sign in.
 * hooks.unsaved() says whether the page holds answers that leaving it would lose. */
export async function start(signin, hooks = {}) {
  if (hooks.unsaved) unsaved = hooks.unsaved;
  $('signin-button').addEventListener('click', () => signIn());
  $('signout-button').addEventListener('click', () => signOut());
  const params = new URLSearchParams(location.search);
  if (!signin || !signin.issuer || !signin.client_id) {
    show('unavailable', 'This server has no sign-in service configured, so no request can be sent from this page.');
    return;
  }
  config = { issuer: signin.issuer, client_id: signin.client_id };
  if (params.has('code') || params.has('error')) {
    show('busy', '', 'Signing you in.');
    let pending;
    try {
      pending = await complete(params);
    } catch (e) {
      forget();
      show('signed-out', `You are not signed in: ${e.message}. Please sign in again.`);
      return;
    }
    show('signed-in');
    $('account-note').textContent = pending.lost
      ? 'You have signed in again. The form starts over: this page keeps nothing you entered across signing in.'
      : '';
    $('live').textContent = `Signed in as ${claims.username} for ${claims.partner_id || 'no partner'}.`;
    return;
  }
  // Nothing stays from a sign-in that did not come back (the back button at the
  // identity provider).
  sessionStorage.removeItem(PENDING);
  if (params.get('state') === SIGNED_OUT) {
    history.replaceState(null, '', location.pathname);
    show('signed-out', '', 'You have signed out.');
    return;
  }
  show('signed-out');
}
