"""The onboarding form in a real browser: Debian's chromium, headless, driven through
chromedriver by Selenium. A partner signs in at the stack's Keycloak, fills in the
article's form on intake's front door, and the page shows the outcome the backend
reached:

0. signed out, the page shows no form, only a way to sign in; an answer with a state it
   did not send is refused before any code is redeemed; signing in goes through
   Keycloak's own login page (authorization code with PKCE S256: the verifier the page
   redeems is the one whose challenge it sent), and back on the page it shows the user,
   their email and their partner from the access token, with nothing of the sign-in
   left in the address, sessionStorage, localStorage or cookies;
1. a customer under attack gets the incident-response advice and no way to submit;
2. a faulty request (no legal name, a web site and an administrator email that are
   not ones) shows each reason at its field before the review step, from the rules
   GET /v1/form publishes, with nothing sent; on a page without those rules intake's
   422 shows the same sentences at the same fields, announced, with the focus on the
   first; corrected, it is confirmed under a new request id;
3. a fully virtual onboarding done with the keyboard alone (Tab, Space, arrows, Enter),
   confirmed with the customer id, the users and where the mails went;
4. a physical MDR Complete onboarding with Beauceron SAT users, two custom addresses
   and three appliances, after checking that every control is reachable with Tab and
   labelled and that the page fits a phone's width. Its first answer is lost on the
   way back, so the page's retry must send the same request and be taken once;
5. the front door refusing the token mid-form (the page's bearer header taken away on
   the way): one refresh, one retry, then the page says the sign-in ended and that
   signing in again keeps nothing entered; signing in again starts the form over;
6. Sign out: back on the signed-out page through Keycloak's end-session endpoint,
   nothing kept, a front-door call from the page refused, and Keycloak asking for the
   password again.

Every front-door call the page makes carries `Authorization: Bearer` with an access
token of the signed-in partner; the requests carry no partner_id or submitted_by (the
front door fills them from the token), and the confirmation mail goes to the user's
email. Before one submission the page's clock is moved to 30 s before the token
expires, so the page refreshes it first. Chromium trusts the stack's CA through an
NSS database of its own profile (HOME), never --ignore-certificate-errors. No
Content-Security-Policy violation may happen on the page. What the page sent is
compared with what was typed, with what intake stored, and with the status API. A PNG
of each step goes to <build dir>/Testing/26_form/."""
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from harness import (BUILD, ISSUER, SECRETS, SECURED, allow_page, check, demo_logins, log, onboarding_id, run,
                     tls_context, token, wait_for)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = os.path.join(BUILD, "Testing", "26_form")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
PARTNER = "partner-northwind"

# Put into every document of the page's origin before its own scripts run: records
# every fetch the page makes (url, method, headers, body, status) in window.__calls,
# and every Content-Security-Policy violation in window.__csp. window.__drop > 0 loses
# that many front-door POST answers after the server has handled the request, as a
# dropped connection would; window.__unauth > 0 takes the Authorization header off
# that many front-door calls, so the front door refuses them as it would a token it
# no longer accepts.
RECORDER = """
(() => {
  if (location.origin !== %s) return;
  window.__calls = [];
  window.__csp = [];
  window.__drop = 0;
  window.__unauth = 0;
  document.addEventListener('securitypolicyviolation',
    (e) => window.__csp.push(`${e.effectiveDirective} ${e.blockedURI}`));
  const real = window.fetch.bind(window);
  window.fetch = async (url, init) => {
    init = init || {};
    const where = new URL(String(url), location.href);
    const door = where.origin === location.origin && where.pathname.startsWith('/v1/onboardings');
    const call = { url: where.href, method: init.method || 'GET',
                   headers: Object.fromEntries(new Headers(init.headers || {})),
                   body: init.body === undefined || init.body === null ? null : String(init.body) };
    window.__calls.push(call);
    if (door && window.__unauth > 0) {
      window.__unauth--;
      const h = new Headers(init.headers || {});
      h.delete('Authorization');
      init = Object.assign({}, init, { headers: h });
      call.stripped = true;
    }
    const res = await real(url, init);
    call.status = res.status;
    if (door && call.method === 'POST' && window.__drop > 0) {
      window.__drop--;
      await res.text();
      throw new TypeError('the answer was lost on the way back');
    }
    return res;
  };
})();
"""

# A page holding none of intake's rules: GET /v1/form answered without its fields and
# the licenses' counts, as a page loaded before intake published them would be.
STALE_RULES = """
(() => {
  const real = window.fetch;
  window.fetch = async (url, init) => {
    const res = await real(url, init);
    if (new URL(String(url), location.href).pathname !== '/v1/form') return res;
    const o = await res.json();
    delete o.fields;
    for (const l of o.licenses) delete l.counts;
    return new Response(JSON.stringify(o), { status: res.status, headers: res.headers });
  };
})();
"""

# What assistive technology would announce for a control: its label, aria-label(ledby),
# or a button's text.
DESCRIBE = """
const name = (e) => {
  if (e.getAttribute('aria-label')) return e.getAttribute('aria-label').trim();
  if (e.getAttribute('aria-labelledby'))
    return e.getAttribute('aria-labelledby').split(/\\s+/)
      .map((i) => (document.getElementById(i) || {}).textContent || '').join(' ').trim();
  if (e.tagName === 'BUTTON' || e.tagName === 'A') return e.textContent.trim();
  return Array.from(e.labels || [], (l) => l.textContent).join(' ').trim();
};
const describe = (e) => e && ({id: e.id, tag: e.tagName, type: e.type || '', name: e.name || '', label: name(e)});
"""


def claims_of(jwt):
    """A JWT's claims, unverified (tokens this test got from the stack itself)."""
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def status_of(ns, oid):
    req = urllib.request.Request(f"{ns.http['intake']}/v1/onboardings/{oid}",
                                 headers={"Authorization": f"Bearer {token(PARTNER)}"})
    with urllib.request.urlopen(req, timeout=30, context=tls_context(req.full_url)) as r:
        return json.load(r)


def s256(verifier):
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class Page:
    """The form's page in one browser, with the steps a person takes on it."""

    def __init__(self, driver, url, login):
        self.d = driver
        self.url = url
        self.origin = url.rstrip("/")
        self.username, self.password = login
        self.shots = 0
        self.d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                               {"source": RECORDER % json.dumps(self.origin)})

    def signin_state(self):
        """signed-out, signed-in, ended, ... on the page; None elsewhere (Keycloak)."""
        try:
            if not self.d.current_url.startswith(self.origin + "/"):
                return None
            return self.js("return document.body ? document.body.dataset.signin || null : null")
        except WebDriverException:
            return None  # between two pages

    def load(self):
        """The page as a new visit sees it: signed out, since it keeps no token."""
        self.d.get(self.url)
        self.wait("the page knows whether it is signed in", lambda: self.signin_state() in ("signed-out",
                                                                                               "signed-in"), 30)

    def sign_in(self, login_shot=None):
        """Sign in at Keycloak's own page; while Keycloak's session lasts it sends the
        browser straight back. Returns the authorization request's parameters."""
        self.click("signin-button")
        self.wait("Keycloak or the page", lambda: self.d.current_url.startswith(ISSUER) and self.present("username")
                  or self.signin_state() == "signed-in", 30)
        if self.signin_state() == "signed-in":
            return None
        asked = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.d.current_url).query))
        if login_shot:
            self.shot(login_shot)
        self.type("username", self.username)
        self.type("password", self.password)
        self.click("kc-login")
        self.wait("back on the page, signed in", lambda: self.signin_state() == "signed-in", 30)
        return asked

    def open(self):
        self.load()
        if self.signin_state() != "signed-in":
            self.sign_in()
        self.wait("the form's choices loaded",
                  lambda: self.js("return document.getElementById('onboarding').dataset.ready === 'true'"), 30)

    def present(self, id_):
        try:
            return self.js("return !!document.getElementById(arguments[0])", id_)
        except WebDriverException:
            return False

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def el(self, id_):
        return self.d.find_element(By.ID, id_)

    def type(self, id_, text):
        e = self.el(id_)
        e.clear()
        e.send_keys(text)

    def click(self, id_):
        self.el(id_).click()

    def select(self, id_, value):
        Select(self.el(id_)).select_by_value(value)

    def keys(self, *keys):
        ActionChains(self.d).send_keys(*keys).perform()

    def active(self):
        return self.js(DESCRIBE + "return describe(document.activeElement);")

    def shown(self, id_):
        return self.js("const e = document.getElementById(arguments[0]); return !!e && e.getClientRects().length > 0",
                       id_)

    def text(self, id_):
        return self.js("const e = document.getElementById(arguments[0]); return e ? e.textContent : null", id_)

    def attr(self, id_, name):
        return self.el(id_).get_attribute(name)

    def wait(self, what, fn, timeout=60):
        WebDriverWait(self.d, timeout, poll_frequency=0.2).until(lambda _: fn(), message=f"timed out: {what}")

    def calls(self):
        return self.js("return window.__calls")

    def posts(self):
        """The front door POSTs the page made, each {url, method, headers, body, status}."""
        return [c for c in self.calls() if c["method"] == "POST" and c["url"] == self.origin + "/v1/onboardings"]

    def grants(self):
        """The requests the page made at the token endpoint (in this document), as
        their form fields and the answer's status."""
        return [dict(urllib.parse.parse_qsl(c["body"] or ""), status=c.get("status")) for c in self.calls()
                if c["url"] == f"{ISSUER}/protocol/openid-connect/token"]

    def sent(self):
        return [json.loads(c["body"]) for c in self.posts()]

    def bearer(self, call):
        """The access token a call carried, checked to be one of the signed-in partner."""
        auth = call["headers"].get("authorization", "")
        check(auth.startswith("Bearer "), f"{call['method']} {call['url']} carried no bearer token: {call['headers']}")
        c = claims_of(auth[len("Bearer "):])
        check(c.get("partner_id") == PARTNER and c.get("azp") == "lmp-portal",
              f"{call['url']}: the token is not the page's for {PARTNER}: {c}")
        return auth

    def check_front_door_calls(self):
        """Every call to the front door carried the partner's bearer token; no CSP
        violation happened."""
        door = [c for c in self.calls() if c["url"].startswith(self.origin + "/v1/onboardings")]
        for c in door:
            if not c.get("stripped"):
                self.bearer(c)
        csp = self.js("return window.__csp")
        check(csp == [], f"Content-Security-Policy violations: {csp}")
        return door

    def check_nothing_stored(self):
        kept = self.js("return {session: sessionStorage.length, local: localStorage.length, cookie: document.cookie}")
        check(kept == {"session": 0, "local": 0, "cookie": ""}, f"the page keeps something: {kept}")

    def outcome(self, timeout=90):
        """The final status the page shows: confirmed, rejected or failed."""
        final = ("confirmed", "rejected", "failed")
        self.wait("the page's outcome", lambda: self.js(
            "return document.getElementById('result').dataset.status") in final, timeout)
        return self.js("return document.getElementById('result').dataset.status")

    def shot(self, name):
        """A PNG of the whole page, not only what the window shows."""
        self.shots += 1
        m = self.d.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = m["cssContentSize"]
        png = self.d.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
        path = os.path.join(SHOTS, f"{self.shots:02d}-{name}.png")
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(png["data"]))
        return path

    def review_and_submit(self):
        self.click("review-button")
        self.wait("the review step", lambda: self.shown("summary") and not self.shown("legal_name"))
        self.click("confirmed")
        self.click("submit-button")


def check_field_error(page, id_, says):
    """A reason shown at its field: marked invalid, its message tied to the control
    (aria-describedby), and saying what intake said."""
    check(page.attr(id_, "aria-invalid") == "true", f"{id_} is not marked invalid")
    described = (page.attr(id_, "aria-describedby") or "").split()
    check(f"{id_}-error" in described, f"{id_}: the error is not tied to it: aria-describedby={described}")
    message = page.text(f"{id_}-error") or ""
    check(says in message and page.shown(f"{id_}-error"), f"{id_}: the error says {message!r}, not {says!r}")


def signing_in(page, who):
    """Signed out, the page offers only signing in; through Keycloak's login page with
    PKCE, back on the page it shows who is signed in, for which partner, and keeps
    nothing of the sign-in anywhere but in memory."""
    page.load()
    check(page.signin_state() == "signed-out", f"a new visit is {page.signin_state()}")
    check(page.shown("signin-button") and not page.shown("onboarding") and not page.shown("account"),
          "signed out, the page shows the form or an account, or no way to sign in")
    for gone in ("partner_id", "submitted_by", "fs-partner"):
        check(not page.present(gone), f"the page still has #{gone}")
    check("has no login" not in page.text("main"), "the page still says it has no login")
    page.shot("signed-out")

    # An answer the page did not ask for (a forged or replayed state) is refused
    # before any code is redeemed.
    page.d.get(page.url + "?" + urllib.parse.urlencode({"state": "forged", "code": "forged", "iss": ISSUER}))
    page.wait("the forged answer refused", lambda: page.signin_state() == "signed-out", 30)
    check("does not belong to a sign-in this page started" in page.text("signin-problem"),
          f"the page says {page.text('signin-problem')!r}")
    check(page.grants() == [] and page.d.current_url == page.url and not page.shown("onboarding"),
          f"a forged answer was redeemed or kept: {page.grants()}, {page.d.current_url}")
    page.shot("forged-answer")

    asked = page.sign_in(login_shot="keycloak-login")
    check(asked is not None, "Keycloak did not ask for a password at the first sign-in")
    check(asked.get("response_type") == "code" and asked.get("client_id") == "lmp-portal"
          and asked.get("code_challenge_method") == "S256" and asked.get("redirect_uri") == page.url
          and "openid" in asked.get("scope", "").split() and len(asked.get("state", "")) >= 32
          and asked.get("nonce") and re.fullmatch(r"[A-Za-z0-9_-]{43}", asked.get("code_challenge", "")),
          f"the authorization request: {asked}")
    page.wait("the form's choices loaded",
              lambda: page.js("return document.getElementById('onboarding').dataset.ready === 'true'"), 30)
    check(page.d.current_url == page.url, f"the code stays in the address: {page.d.current_url}")
    page.check_nothing_stored()

    # The page redeemed the code with the verifier of the challenge it sent, as a
    # public client (no secret), at the token endpoint of the issuer it discovered.
    calls = page.calls()
    discovery = [c for c in calls if c["url"] == f"{ISSUER}/.well-known/openid-configuration"]
    check(len(discovery) == 1 and discovery[0]["status"] == 200, f"discovery: {discovery}")
    grants = page.grants()
    check(len(grants) == 1, f"{len(grants)} token requests at the sign-in: {grants}")
    g = grants[0]
    check(g["grant_type"] == "authorization_code" and g["client_id"] == "lmp-portal" and g["status"] == 200
          and g["redirect_uri"] == page.url and "client_secret" not in g, g)
    check(s256(g["code_verifier"]) == asked["code_challenge"] and 43 <= len(g["code_verifier"]) <= 128,
          "the code verifier is not the one of the challenge sent")

    shown = {k: page.text(f"account-{k}") for k in ("name", "email", "partner")}
    check(shown == {"name": who["preferred_username"], "email": who["email"], "partner": PARTNER},
          f"the page shows {shown}, the token says {who}")
    check(page.shown("account") and page.shown("signout-button") and page.shown("onboarding")
          and not page.shown("signin"), "signed in, the page does not show the form and the account")
    page.shot("signed-in")
    page.check_front_door_calls()
    log(f"sign-in: Keycloak's login page, PKCE S256 verified, {who['preferred_username']} of {PARTNER} shown, "
        "nothing stored")


def breach_yes(page):
    """"Yes" to the breach question: the article's advice, and nothing to submit."""
    page.open()
    page.click("license-MDR_CORE")
    page.click("breach-yes")
    page.wait("the incident-response advice", lambda: page.shown("breach-advice"))
    check("incident response" in page.text("breach-advice") and
          page.text("incident-contact").startswith("Incident response: call "), page.text("breach-advice"))
    for hidden in ("rest", "legal_name", "review-button", "submit-button"):
        check(not page.shown(hidden), f"{hidden} is shown to a customer under attack")
    check(not page.js("return Array.from(document.querySelectorAll('button[type=submit], input[type=submit]'))"
                      ".some((e) => e.getClientRects().length > 0)"), "a submit button is shown")
    page.shot("breach-yes")
    check(page.sent() == [], "something was sent")
    # The answer can be changed: "No" shows the rest of the form.
    page.click("breach-no")
    page.wait("the rest of the form", lambda: page.shown("legal_name") and not page.shown("breach-advice"))
    log("breach: the advice to contact incident response, no submit; 'no' opens the form")


def fill_faulty(page):
    """A request with three faults the page can find alone: no legal name, a web site
    that is not one, an administrator email that is not one."""
    page.click("license-MDR_CORE")
    page.click("breach-no")
    page.type("web_site", "ftp://files.example.com")
    page.type("portal_admin_email", "not-an-email")
    page.type("users_tier", "5")
    page.click("deploy-virtual")
    page.select("hosting_region", "ca-central-1")


FAULTY = [("legal_name", "legal name is required"), ("web_site", "must be an http(s) address"),
          ("portal_admin_email", "email address is not valid")]


def check_reasons(page, first):
    for id_, says in FAULTY:
        check_field_error(page, id_, says)
    listed = page.js("return Array.from(document.querySelectorAll('#errors li'), (li) => li.textContent)")
    check(len(listed) == len(FAULTY), f"the summary lists {listed}")
    check(page.active()["id"] == first, f"the focus is on {page.active()}, not the first error")
    check(page.attr("errors", "role") == "alert", "the reasons are not announced")
    check(page.shown("legal_name") and not page.shown("submit-button"), "the form is not back for correcting")
    return [page.text(f"{id_}-error") for id_, _ in FAULTY]


def refused(page, ns, who):
    """Intake's rules checked by the page at each field before the review step, from
    what GET /v1/form publishes: nothing sent. Then a page holding no rules (one loaded
    before intake published them): intake's 422 shows the same sentences at the same
    fields, and the corrected request is confirmed; the page's clock moved near the
    token's expiry first, so it refreshes the token before sending."""
    page.open()
    fill_faulty(page)
    check("fewer than 10 users" in (page.text("virtual-advice") or ""), "no advice shown for 5 users")
    page.click("review-button")
    page.wait("the reasons shown", lambda: page.js("return document.querySelectorAll('#errors li').length") > 0)
    page.shot("refused-at-fields")
    own = check_reasons(page, "legal_name")
    check(not page.posts(), f"the page sent a request it could check itself: {page.posts()}")

    # The same request on a page whose GET /v1/form answer lost its rules.
    stale = page.d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": STALE_RULES})
    page.open()
    page.d.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", stale)
    fill_faulty(page)
    page.review_and_submit()
    page.wait("the reasons shown", lambda: page.js("return document.querySelectorAll('#errors li').length") > 0)
    page.shot("refused")
    body = page.sent()[-1]
    check(page.posts()[-1]["status"] == 422, f"intake answered {page.posts()[-1]['status']}, not 422")
    said = check_reasons(page, "legal_name")
    check(said == own, f"intake's sentences {said} are not the page's {own}")
    check(ns.sql("SELECT count(*) FROM onboardings WHERE onboarding_id = %s",
                 onboarding_id(PARTNER, body["request_id"])) == [(0,)], "a refused request was recorded")
    first = page.bearer(page.posts()[-1])

    name = f"Harbourview Dental Clinic Inc. {uuid.uuid4().hex[:8]}"
    page.type("legal_name", name)
    page.type("web_site", "harbourview-dental.example.com")
    page.type("portal_admin_email", "it@harbourview-dental.example.com")
    # 30 s before the access token expires (Keycloak's 300 s) on the page's clock.
    page.js("const real = Date.now.bind(Date); window.__realNow = real; Date.now = () => real() + 275000;")
    page.review_and_submit()
    page.wait("the corrected request sent", lambda: len(page.posts()) == 2)
    page.js("Date.now = window.__realNow;")
    check(page.outcome() == "confirmed", page.text("result"))
    page.shot("corrected-confirmed")
    again = page.sent()[-1]
    check(again["request_id"] != body["request_id"], "the corrected request reused the refused one's id")
    check(again["customer"]["legal_name"] == name, again["customer"])
    refreshes = [g for g in page.grants() if g["grant_type"] == "refresh_token"]
    check(len(refreshes) == 1 and refreshes[0]["status"] == 200 and refreshes[0]["client_id"] == "lmp-portal",
          f"refreshes: {refreshes}")
    second = page.bearer(page.posts()[-1])
    check(second != first, "the token was not refreshed before it expired")
    check(page.text("account-email") == who["email"], "the account changed with the refresh")
    page.check_front_door_calls()
    log("refused: the page's own checks and intake's 422 in the same words at the same fields, focus on the "
        "first; corrected, sent with a refreshed token, confirmed")


def keyboard_virtual(page, ns, who):
    """A fully virtual onboarding with the keyboard alone: Tab to each control, then
    type, Space, an arrow or Enter, as a person without a mouse does."""
    page.open()
    page.shot("empty")
    name = f"Lakeside Physiotherapy {uuid.uuid4().hex[:8]}"
    plan = {
        "license-MDR_CORE": Keys.SPACE,
        "breach-yes": Keys.ARROW_DOWN,  # moves to "No" and selects it
        "legal_name": name,
        "web_site": "lakeside-physio.example.com",
        "portal_admin_email": "office@lakeside-physio.example.com",
        "users_tier": "8",
        "deploy-virtual": Keys.SPACE,
        "hosting_region": "eu-west-1",  # a select's type-ahead picks the region
        "review-button": Keys.ENTER,
        "confirmed": Keys.SPACE,
        "submit-button": Keys.ENTER,
    }
    page.js("document.getElementById('page-title').focus()")
    # What the page says on the way: the submitted step does not last long.
    page.js("window.__intros = []; const e = document.getElementById('result-intro');"
            "new MutationObserver(() => window.__intros.push(e.textContent)).observe(e, {childList: true});")
    t0 = int(time.time() * 1000)
    done, path = set(), []
    for _ in range(150):
        page.keys(Keys.TAB)
        here = page.active()["id"]
        path.append(here)
        if here not in plan or here in done:
            continue
        done.add(here)
        if here == "review-button":
            check("fewer than 10 users" in (page.text("virtual-advice") or ""), "no advice shown for 8 users")
            check(page.js("return document.getElementById('hosting_region').value") == "eu-west-1",
                  "the region was not chosen by typing")
            page.shot("keyboard-filled")
        if here == "submit-button":
            summary = page.text("summary")
            check(f"Partner{PARTNER}" in summary and f"Submitted by{who['email']}" in summary,
                  f"the review does not show the signed-in partner and email: {summary}")
            page.shot("keyboard-review")
        page.keys(plan[here])
        if here == "submit-button":
            break
    check(done == set(plan), f"not reached with Tab: {set(plan) - done}; went through {path}")
    check(page.outcome() == "confirmed", page.text("result"))
    t1 = int(time.time() * 1000)
    page.shot("keyboard-confirmed")

    sent = page.sent()
    check(len(sent) == 1, f"{len(sent)} requests sent")
    body = sent[0]
    page.bearer(page.posts()[0])
    check(UUID4.match(body["request_id"]) and t0 <= body["submitted_at"] <= t1, body)
    check("partner_id" not in body and "submitted_by" not in body, f"the page sent who it is: {body}")
    check(body["license"] == "MDR_CORE" and body["breach_or_incident"] is False and body["confirmed"] is True, body)
    check(body["customer"] == {"legal_name": name, "web_site": "lakeside-physio.example.com", "sub_partner_id": None,
                               "portal_admin_email": "office@lakeside-physio.example.com"}, body["customer"])
    check(body["users"] == {"tier": 8, "cloud": 0, "sat": 0}, body["users"])
    check(body["deployment"] == {"kind": "VIRTUAL", "hosting_region": "eu-west-1", "appliances": [],
                                 "addresses": []}, body["deployment"])
    oid = onboarding_id(PARTNER, body["request_id"])
    followed = page.attr("result", "data-onboarding-id")
    check(followed == oid, f"the page follows {followed}, not the onboarding id {oid}")
    intros = page.js("return window.__intros")
    check(any(f"An email will be sent to you at {who['email']} " in t for t in intros),
          f"the submitted page said {intros}")
    stored = ns.sql("SELECT request, customer_id::text FROM onboardings WHERE onboarding_id = %s", oid)
    want = dict(body, partner_id=PARTNER, submitted_by=who["email"])  # the front door's, from the token
    check(len(stored) == 1 and stored[0][0] == want, f"intake stored {stored}, the page sent {body}")

    s = status_of(ns, oid)
    check(page.text("result-customer-id") == s["customer"]["customer_id"] == stored[0][1],
          f"the page shows customer {page.text('result-customer-id')}, intake has {stored[0][1]}")
    check(s["users"] == [{"product": "MDR_CORE", "users": 8}], s["users"])
    check(len(s["appliances"]) == 1 and s["appliances"][0]["hosting_region"] == "eu-west-1", s["appliances"])
    check(s["appliances"][0]["virtual_id"] in page.text("result-appliances"), page.text("result-appliances"))
    mails = {m["kind"]: m["recipient"] for m in s["mails"]}
    check(mails == {"confirmation": who["email"], "invitation": "office@lakeside-physio.example.com"}, mails)
    # Confirmed first; the page then follows each email until it is sent.
    for kind, to in mails.items():
        def shown(kind=kind):
            return page.js("const e = document.querySelector(`#result-mails [data-kind='${arguments[0]}']`);"
                           "return e ? e.textContent : ''", kind)
        page.wait(f"the page to say the {kind} was sent", lambda: shown().endswith(", sent"), 60)
        check(to in shown() and "will be sent" not in shown(), f"the page says of the {kind}: {shown()!r}")
    page.check_front_door_calls()
    log(f"keyboard: {len(path)} Tabs, confirmed as customer {stored[0][1]}")


def check_reach_and_labels(page):
    """Every shown control of the filled-in form is reached with Tab (a radio group
    once, its radios by arrows) and has a name assistive technology can read; every
    group is a fieldset with a legend."""
    page.js("document.getElementById('page-title').focus()")
    seen = []
    for _ in range(200):
        page.keys(Keys.TAB)
        seen.append(page.active())
        if seen[-1]["id"] == "review-button":
            break
    check(seen[-1]["id"] == "review-button", f"Tab never reached the review button: {[s['id'] for s in seen]}")
    controls = page.js(DESCRIBE + """
      return Array.from(document.querySelectorAll('input, select, textarea, button, a[href]'))
        .filter((e) => e.getClientRects().length > 0 && !e.disabled).map(describe);""")
    group = lambda c: f"radio:{c['name']}" if c["type"] == "radio" else c["id"]  # noqa: E731
    reached = {group(c) for c in seen}
    for c in controls:
        check(group(c) in reached, f"{c} is not reached with Tab")
        check(c["label"], f"{c} has no label")
    for c in seen:
        check(c["label"], f"{c} is reached with Tab but has no label")
    bare = page.js("return Array.from(document.querySelectorAll('fieldset')).filter((f) => {"
                   "  const l = f.querySelector(':scope > legend'); return !l || !l.textContent.trim(); })"
                   ".map((f) => f.id)")
    check(bare == [], f"fieldsets without a legend: {bare}")
    return len(controls)


def physical(page, ns, who):
    """MDR Complete with SAT users, two custom addresses, three appliances; the first
    answer is lost, and the retry is the same request, taken once."""
    page.open()
    name = f"Maritime Freight Logistics Ltd. {uuid.uuid4().hex[:8]}"
    page.click("license-MDR_COMPLETE")
    page.click("breach-no")
    page.type("legal_name", name)
    page.type("web_site", "maritime-freight.example.com")
    page.type("portal_admin_email", "security@maritime-freight.example.com")
    page.type("users_tier", "120")
    page.type("users_cloud", "25")
    page.type("users_sat", "120")
    page.click("deploy-sensors")
    page.select("primary_sku", "NS-500")
    page.click("add-sensor")
    page.click("add-sensor")
    sensors = page.js("return Array.from(document.querySelectorAll('#sensors select'), (s) => s.id)")
    check(len(sensors) == 2, sensors)
    for s in sensors:
        page.select(s, "NS-100")
    page.click("ship-custom")  # starts with one address
    page.wait("the first address", lambda: page.js("return document.querySelectorAll('#addresses > fieldset').length") == 1)
    page.click("add-address")
    refs = page.js("return Array.from(document.querySelectorAll('#addresses > fieldset'), (f) => f.dataset.key)")
    check(len(refs) == 2, refs)
    typed = [
        {"recipient": "IT Department", "line1": "1800 Lower Water St", "line2": "Suite 400", "city": "Halifax",
         "region": "NS", "postal_code": "B3J 3P5", "country": "CA", "phone": "+1 902 555 0100"},
        {"recipient": "Receiving", "line1": "40 Wright Ave", "line2": "", "city": "Dartmouth", "region": "NS",
         "postal_code": "B3B 1G6", "country": "CA", "phone": ""},
    ]
    for ref, address in zip(refs, typed):
        for field, value in address.items():
            if field == "country":  # chosen from the list, each country by its name
                check("Canada (CA)" in page.js("return Array.from(document.getElementById(arguments[0]).options, "
                                               "(o) => o.textContent)", f"{ref}-country"), "no Canada to choose")
                page.select(f"{ref}-country", value.upper())
            elif value:
                page.type(f"{ref}-{field}", value)
    # The head office takes the primary and the first sensor, the warehouse the second.
    assign = page.js("return Array.from(document.querySelectorAll('#assignments select'), (s) => s.id)")
    check(len(assign) == 3, assign)
    for select, ref in zip(assign, [refs[0], refs[0], refs[1]]):
        page.select(select, ref)
    page.shot("physical-filled")

    n = check_reach_and_labels(page)
    page.d.set_window_size(390, 844)
    page.wait("the narrow layout", lambda: page.js("return window.innerWidth") <= 420)
    overflow = page.js("return document.documentElement.scrollWidth - window.innerWidth")
    check(overflow <= 0, f"on a phone's width the page scrolls sideways by {overflow} px")
    page.shot("physical-phone")
    page.d.set_window_size(1100, 900)

    page.click("review-button")
    page.wait("the review step", lambda: page.shown("summary"))
    summary = page.text("summary")
    for want in (name, "1800 Lower Water St", "40 Wright Ave", "NS-500", "Beauceron SAT users"):
        check(want in summary, f"the review does not show {want!r}: {summary}")
    page.shot("physical-review")
    page.click("confirmed")
    page.js("window.__drop = 1")
    page.click("submit-button")
    page.wait("the retry advice", lambda: "try again" in (page.text("submit-problem") or ""))
    check(page.shown("submit-button"), "no way to retry")
    page.shot("physical-answer-lost")
    page.click("submit-button")
    check(page.outcome() == "confirmed", page.text("result"))
    page.shot("physical-confirmed")

    sent = page.sent()
    check(len(sent) == 2 and sent[0] == sent[1], f"the retry was not the same request: {sent}")
    body = sent[0]
    rid = body["request_id"]
    oid = onboarding_id(PARTNER, rid)
    check(UUID4.match(rid), rid)
    check("partner_id" not in body and "submitted_by" not in body, f"the page sent who it is: {body}")
    check(body["license"] == "MDR_COMPLETE" and body["users"] == {"tier": 120, "cloud": 25, "sat": 120}, body)
    check(body["customer"] == {"legal_name": name, "web_site": "maritime-freight.example.com",
                               "sub_partner_id": None, "portal_admin_email": "security@maritime-freight.example.com"},
          body["customer"])
    d = body["deployment"]
    check(d["kind"] == "NETWORK_SENSORS" and d["hosting_region"] is None, d)
    check(d["appliances"] == [{"role": "PRIMARY", "sku": "NS-500", "ship_to": refs[0]},
                              {"role": "SENSOR", "sku": "NS-100", "ship_to": refs[0]},
                              {"role": "SENSOR", "sku": "NS-100", "ship_to": refs[1]}], d["appliances"])
    want = [dict({k: v or None for k, v in a.items()}, ref=ref, country=a["country"].upper())
            for ref, a in zip(refs, typed)]
    check(d["addresses"] == want, f"sent {d['addresses']}, typed {want}")

    # Taken once: one onboarding, stored as the page sent it. The front door answers a
    # repeat without publishing it once intake has recorded the first; a retry quicker
    # than that is published again, and intake counts it as a duplicate, never as a
    # second onboarding or a conflict. Both copies were on the broker before the 202.
    copies = len([m for m in ns.consume_all("onboarding.requested") if m.key() == oid.encode()])
    check(copies in (1, 2), f"{copies} requests on the broker for one submission sent twice")
    stored = wait_for("intake to absorb every copy", lambda: [r for r in ns.sql(
        "SELECT request, duplicates, conflicts FROM onboardings WHERE onboarding_id = %s", oid)
        if r[1] == copies - 1])
    want = dict(body, partner_id=PARTNER, submitted_by=who["email"])
    check(len(stored) == 1 and stored[0][0] == want, f"intake stored {stored}, the page sent {body}")
    check(stored[0][2] == 0, "the retry was taken as a conflict")

    s = status_of(ns, oid)
    check(s["status"] == "confirmed" and page.text("result-customer-id") == s["customer"]["customer_id"], s["status"])
    check(sorted((u["product"], u["users"]) for u in s["users"]) ==
          [("BEAUCERON_SAT", 120), ("MDR_CLOUD", 25), ("MDR_COMPLETE", 120)], s["users"])
    serials = [a["serial"] for a in s["appliances"]]
    check(len(serials) == 3 and all(serials), s["appliances"])
    for serial in serials:
        check(serial in page.text("result-appliances"), f"{serial} not on the confirmation page")
    by_city = {sh["address"]["city"]: sorted(i["sku"] for i in sh["items"]) for sh in s["shipments"]}
    check(by_city == {"Halifax": ["NS-100", "NS-500"], "Dartmouth": ["NS-100"]}, by_city)
    check(page.js("return document.querySelectorAll('#result-shipments li').length") == 2, page.text("result"))
    # Confirmed first, the mails after: the status answer and the page follow them.
    s = wait_for("both mails sent", lambda: (lambda x: x if all(m["status"] == "sent" for m in x["mails"]) else None)(
        status_of(ns, oid)), timeout=60)
    mails = {m["kind"]: (m["recipient"], m["status"]) for m in s["mails"]}
    check(mails == {"confirmation": (who["email"], "sent"),
                    "invitation": ("security@maritime-freight.example.com", "sent")}, mails)
    page.wait("the page to say both mails were sent", lambda: page.js(
        "return [...document.querySelectorAll('#result-mails li')].map((e) => e.dataset.status).join(',')")
        == "sent,sent", 60)
    check("security@maritime-freight.example.com" in page.text("result-mails"), page.text("result-mails"))
    shown = page.js("return [...document.querySelectorAll('#result-stages li')].map((e) => e.dataset.stage)")
    check(shown == [st["stage"] for st in s["stages"]] and shown[-1] == "confirmed",
          f"the page lists the stages {shown}, the status answer {[st['stage'] for st in s['stages']]}")
    for c in page.posts():
        page.bearer(c)
    page.check_front_door_calls()
    log(f"physical: {n} controls reachable and labelled; the lost answer retried as the same request "
        f"({copies} on the broker), one onboarding; confirmed with serials {serials}")
    return oid


def ended_mid_form(page):
    """The front door refuses the page's token while a request is being sent: one
    refresh and one retry, then the page says the sign-in ended, keeps what is shown,
    and says that signing in again keeps nothing entered; signing in again (Keycloak's
    session still on, so no password) starts the form over."""
    page.open()
    page.click("license-MDR_CLOUD")
    page.click("breach-no")
    page.type("legal_name", f"Northshore Accounting LLP {uuid.uuid4().hex[:8]}")
    page.type("portal_admin_email", "it@northshore-accounting.example.com")
    page.type("users_cloud", "12")
    page.click("review-button")
    page.wait("the review step", lambda: page.shown("summary"))
    page.click("confirmed")
    page.js("window.__unauth = 2")
    page.click("submit-button")
    page.wait("the sign-in ended", lambda: page.signin_state() == "ended")
    posts = page.posts()
    check(len(posts) == 2 and all(c.get("stripped") and c["status"] == 401 for c in posts),
          f"the refused POST was not retried once: {posts}")
    grants = [g["grant_type"] for g in page.grants()]
    check(grants == ["authorization_code", "refresh_token"], f"no refresh between the tries: {grants}")
    problem = page.text("signin-problem")
    check("sign-in has ended" in problem and "keeps nothing you entered" in problem, problem)
    check("not sent" in page.text("submit-problem"), page.text("submit-problem"))
    check(page.shown("summary") and page.shown("signin-button") and not page.shown("account"),
          "the page does not keep what it showed, or offers no way to sign in again")
    check(page.text("signin-button") == "Sign in again" and page.active()["id"] == "signin-title",
          f"the focus is on {page.active()}")
    page.shot("ended-mid-form")

    check(page.sign_in() is None, "Keycloak asked for the password again while its session lasted")
    page.wait("the form's choices loaded",
              lambda: page.js("return document.getElementById('onboarding').dataset.ready === 'true'"), 30)
    check("starts over" in page.text("account-note"), page.text("account-note"))
    check(page.js("return !document.querySelector('#onboarding input:checked')"
                  " && document.getElementById('legal_name').value === ''") and page.shown("license-MDR_CORE"),
          "signed in again, the form does not start over")
    page.check_nothing_stored()
    page.check_front_door_calls()
    page.shot("signed-in-again")
    log("ended: a refused token refreshed and retried once, then the page says so and that nothing is kept")


def signing_out(page, ns, oid):
    """Sign out: the end-session endpoint with the ID token (without it Keycloak would
    ask to confirm) sends the browser back to the page, signed out, keeping nothing;
    a front-door call from it is refused, and Keycloak asks for the password again."""
    check(page.signin_state() == "signed-in", page.signin_state())
    page.click("signout-button")
    page.wait("back on the page, signed out", lambda: page.signin_state() == "signed-out", 30)
    check(page.d.current_url == page.url, f"signed out at {page.d.current_url}")
    check("You have signed out" in page.text("signin-status"), page.text("signin-status"))
    check(not page.shown("onboarding") and not page.shown("account") and page.shown("signin-button"),
          "signed out, the page still shows the form or the account")
    page.check_nothing_stored()
    page.shot("signed-out-again")
    # The page has no token left to send; the front door refuses a call without one.
    answer = page.js("""return fetch(arguments[0], {headers: {Accept: 'application/json'}})
                          .then((r) => ({status: r.status, challenge: r.headers.get('WWW-Authenticate')}))""",
                     f"/v1/onboardings/{oid}")
    check(answer["status"] == 401 and (answer["challenge"] or "").startswith("Bearer"),
          f"a front-door call from the signed-out page: {answer}")
    check(all("authorization" not in c["headers"] for c in page.calls()), "the signed-out page sent a token")
    page.click("signin-button")
    page.wait("Keycloak's login page", lambda: page.d.current_url.startswith(ISSUER) and page.present("username"), 30)
    page.shot("signin-after-signout")
    log("sign-out: back on the signed-out page, nothing kept, the front door refuses, Keycloak asks again")


def browser():
    """Chromium with a profile of its own, which trusts the stack's CA for Keycloak's
    HTTPS: Chromium on Linux reads trust anchors from the NSS database under $HOME, so
    the profile directory is its HOME and holds one with the CA, and nothing else on
    the machine is touched."""
    profile = tempfile.mkdtemp(prefix="lmp-form-chromium-")
    if SECURED:
        check(shutil.which("certutil"), "certutil is missing: deploy/setup installs it (libnss3-tools)")
        nssdb = os.path.join(profile, ".pki", "nssdb")
        os.makedirs(nssdb)
        for cmd in (["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"],
                    ["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "lmp-stack-ca",
                     "-i", os.path.join(SECRETS, "ca.crt")]):
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            check(out.returncode == 0, f"{' '.join(cmd)}: {out.stderr}")
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
              "--window-size=1100,900", f"--user-data-dir={profile}"):
        o.add_argument(a)
    service = Service(CHROMEDRIVER, log_output=os.path.join(SHOTS, "chromedriver.log"),
                      env=dict(os.environ, HOME=profile))
    d = webdriver.Chrome(service=service, options=o)
    d.profile_dir = profile
    return d


def test_form(ns):
    ns.start_all()
    user, password = demo_logins()[PARTNER]
    who = claims_of(token(PARTNER))  # the same user's token, for what the page must show
    check(who["preferred_username"] == user and who["partner_id"] == PARTNER and who["email"], who)
    allow_page(ns.http["intake"])  # https:// on a port of the moment (the secured stack)
    form = ns.http["intake"] + "/v1/form"
    with urllib.request.urlopen(form, timeout=10, context=tls_context(form)) as r:
        signin = json.load(r)["signin"]
    check(signin == {"issuer": ISSUER, "client_id": "lmp-portal"}, f"/v1/form signs in with {signin}")
    d = browser()
    page = Page(d, ns.http["intake"] + "/", (user, password))
    try:
        signing_in(page, who)
        breach_yes(page)
        refused(page, ns, who)
        keyboard_virtual(page, ns, who)
        oid = physical(page, ns, who)
        ended_mid_form(page)
        signing_out(page, ns, oid)
    except Exception:
        log(f"the page when it failed: {page.shot('failure')}")
        raise
    finally:
        d.quit()
        shutil.rmtree(d.profile_dir, ignore_errors=True)


if __name__ == "__main__":
    shutil.rmtree(SHOTS, ignore_errors=True)
    os.makedirs(SHOTS)
    sys.exit(run(test_form))
