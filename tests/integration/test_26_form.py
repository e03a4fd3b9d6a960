"""The onboarding form in a real browser: Debian's chromium, headless, driven through
chromedriver by Selenium. A partner fills in the article's form on intake's front door
and the page shows the outcome the backend reached:

1. a customer under attack gets the incident-response advice and no way to submit;
2. a refused request (no legal name, a bad administrator email) shows each reason at
   its field, announced, with the focus on the first; corrected, it is confirmed under
   a new request id;
3. a fully virtual onboarding done with the keyboard alone (Tab, Space, arrows, Enter),
   confirmed with the customer id, the users and where the mails went;
4. a physical MDR Complete onboarding with Beauceron SAT users, two custom addresses
   and three appliances, after checking that every control is reachable with Tab and
   labelled and that the page fits a phone's width. Its first answer is lost on the
   way back, so the page's retry must send the same request and be taken once.

What the page sent is compared with what was typed, with what intake stored, and with
the status API. A PNG of each step goes to <build dir>/Testing/26_form/."""
import base64
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from harness import BUILD, check, log, run, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = os.path.join(BUILD, "Testing", "26_form")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
PARTNER = "partner-northwind"
SUBMITTER = "alex.moreau@northwind-msp.example.com"

# Records every POST body the page sends; window.__drop > 0 loses that many answers
# after the server has handled the request, as a dropped connection would.
RECORDER = """
window.__sent = [];
window.__drop = 0;
const real = window.fetch.bind(window);
window.fetch = async (url, init) => {
  const post = !!init && init.method === 'POST';
  if (post) window.__sent.push(init.body);
  const res = await real(url, init);
  if (post && window.__drop > 0) {
    window.__drop--;
    await res.text();
    throw new TypeError('the answer was lost on the way back');
  }
  return res;
};
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


def status_of(ns, onboarding_id):
    with urllib.request.urlopen(f"{ns.http['intake']}/v1/onboardings/{onboarding_id}", timeout=30) as r:
        return json.load(r)


class Page:
    """The form's page in one browser, with the steps a person takes on it."""

    def __init__(self, driver, url):
        self.d = driver
        self.url = url
        self.shots = 0

    def open(self):
        self.d.get(self.url)
        self.wait("the form's choices loaded",
                  lambda: self.js("return document.getElementById('onboarding').dataset.ready === 'true'"), 30)
        self.js(RECORDER)

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

    def sent(self):
        return [json.loads(b) for b in self.js("return window.__sent")]

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

    def signed_in(self):
        self.type("partner_id", PARTNER)
        self.type("submitted_by", SUBMITTER)

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


def breach_yes(page):
    """"Yes" to the breach question: the article's advice, and nothing to submit."""
    page.open()
    page.signed_in()
    page.click("license-MDR_CORE")
    page.click("breach-yes")
    page.wait("the incident-response advice", lambda: page.shown("breach-advice"))
    check("incident response" in page.text("breach-advice"), page.text("breach-advice"))
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


def refused(page, ns):
    """Intake's reasons shown at their fields, then the corrected request confirmed."""
    page.open()
    page.signed_in()
    page.click("license-MDR_CORE")
    page.click("breach-no")
    page.type("portal_admin_email", "not-an-email")
    page.type("users_tier", "5")
    page.click("deploy-virtual")
    page.select("hosting_region", "ca-central-1")
    check("fewer than 10 users" in (page.text("virtual-advice") or ""), "no advice shown for 5 users")
    page.review_and_submit()
    page.wait("the reasons shown", lambda: page.js("return document.querySelectorAll('#errors li').length") > 0)
    page.shot("refused")
    body = page.sent()[-1]
    check_field_error(page, "legal_name", "legal name is required")
    check_field_error(page, "portal_admin_email", "email address is missing or not valid")
    listed = page.js("return Array.from(document.querySelectorAll('#errors li'), (li) => li.textContent)")
    check(len(listed) == 2, f"the summary lists {listed}")
    check(page.active()["id"] == "legal_name", f"the focus is on {page.active()}, not the first error")
    check(page.attr("errors", "role") == "alert", "the reasons are not announced")
    check(page.shown("legal_name") and not page.shown("submit-button"), "the form is not back for correcting")
    check(ns.sql("SELECT count(*) FROM onboardings WHERE onboarding_id = %s", body["request_id"]) == [(0,)],
          "a refused request was recorded")

    name = f"Harbourview Dental Clinic Inc. {uuid.uuid4().hex[:8]}"
    page.type("legal_name", name)
    page.type("portal_admin_email", "it@harbourview-dental.example.com")
    page.review_and_submit()
    check(page.outcome() == "confirmed", page.text("result"))
    page.shot("corrected-confirmed")
    again = page.sent()[-1]
    check(again["request_id"] != body["request_id"], "the corrected request reused the refused one's id")
    check(again["customer"]["legal_name"] == name, again["customer"])
    log("refused: both reasons at their fields, focus on the first; corrected, it is confirmed")


def keyboard_virtual(page, ns):
    """A fully virtual onboarding with the keyboard alone: Tab to each control, then
    type, Space, an arrow or Enter, as a person without a mouse does."""
    page.open()
    page.shot("empty")
    name = f"Lakeside Physiotherapy {uuid.uuid4().hex[:8]}"
    plan = {
        "partner_id": PARTNER,
        "submitted_by": SUBMITTER,
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
    check(UUID4.match(body["request_id"]) and t0 <= body["submitted_at"] <= t1, body)
    check(body["partner_id"] == PARTNER and body["submitted_by"] == SUBMITTER and body["license"] == "MDR_CORE"
          and body["breach_or_incident"] is False and body["confirmed"] is True, body)
    check(body["customer"] == {"legal_name": name, "web_site": "lakeside-physio.example.com", "sub_partner_id": None,
                               "portal_admin_email": "office@lakeside-physio.example.com"}, body["customer"])
    check(body["users"] == {"tier": 8, "cloud": 0, "sat": 0}, body["users"])
    check(body["deployment"] == {"kind": "VIRTUAL", "hosting_region": "eu-west-1", "appliances": [],
                                 "addresses": []}, body["deployment"])
    stored = ns.sql("SELECT request, customer_id::text FROM onboardings WHERE onboarding_id = %s", body["request_id"])
    check(len(stored) == 1 and stored[0][0] == body, f"intake stored {stored}, the page sent {body}")

    s = status_of(ns, body["request_id"])
    check(page.text("result-customer-id") == s["customer"]["customer_id"] == stored[0][1],
          f"the page shows customer {page.text('result-customer-id')}, intake has {stored[0][1]}")
    check(s["users"] == [{"product": "MDR_CORE", "users": 8}], s["users"])
    check(len(s["appliances"]) == 1 and s["appliances"][0]["hosting_region"] == "eu-west-1", s["appliances"])
    check(s["appliances"][0]["virtual_id"] in page.text("result-appliances"), page.text("result-appliances"))
    mails = {m["kind"]: m["recipient"] for m in s["mails"]}
    check(mails == {"confirmation": SUBMITTER, "invitation": "office@lakeside-physio.example.com"}, mails)
    for kind, to in mails.items():
        shown = page.js("const e = document.querySelector(`#result-mails [data-kind='${arguments[0]}']`);"
                        "return e ? e.textContent : ''", kind)
        check(to in shown and "sent" in shown, f"the page says of the {kind}: {shown!r}")
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


def physical(page, ns):
    """MDR Complete with SAT users, two custom addresses, three appliances; the first
    answer is lost, and the retry is the same request, taken once."""
    page.open()
    page.signed_in()
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
         "postal_code": "B3B 1G6", "country": "ca", "phone": ""},
    ]
    for ref, address in zip(refs, typed):
        for field, value in address.items():
            if value:
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
    check(UUID4.match(rid), rid)
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
    copies = len([m for m in ns.consume_all("onboarding.requested") if m.key() == rid.encode()])
    check(copies in (1, 2), f"{copies} requests on the broker for one submission sent twice")
    stored = wait_for("intake to absorb every copy", lambda: [r for r in ns.sql(
        "SELECT request, duplicates, conflicts FROM onboardings WHERE onboarding_id = %s", rid)
        if r[1] == copies - 1])
    check(len(stored) == 1 and stored[0][0] == body, f"intake stored {stored}, the page sent {body}")
    check(stored[0][2] == 0, "the retry was taken as a conflict")

    s = status_of(ns, rid)
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
    mails = {m["kind"]: (m["recipient"], m["status"]) for m in s["mails"]}
    check(mails == {"confirmation": (SUBMITTER, "sent"),
                    "invitation": ("security@maritime-freight.example.com", "sent")}, mails)
    check("security@maritime-freight.example.com" in page.text("result-mails"), page.text("result-mails"))
    shown = page.js("return [...document.querySelectorAll('#result-stages li')].map((e) => e.dataset.stage)")
    check(shown == [st["stage"] for st in s["stages"]] and shown[-1] == "confirmed",
          f"the page lists the stages {shown}, the status answer {[st['stage'] for st in s['stages']]}")
    log(f"physical: {n} controls reachable and labelled; the lost answer retried as the same request "
        f"({copies} on the broker), one onboarding; confirmed with serials {serials}")


def browser():
    profile = tempfile.mkdtemp(prefix="lmp-form-chromium-")
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
              "--window-size=1100,900", f"--user-data-dir={profile}"):
        o.add_argument(a)
    service = Service(CHROMEDRIVER, log_output=os.path.join(SHOTS, "chromedriver.log"))
    d = webdriver.Chrome(service=service, options=o)
    d.profile_dir = profile
    return d


def test_form(ns):
    ns.start_all()
    d = browser()
    page = Page(d, ns.http["intake"] + "/")
    try:
        breach_yes(page)
        refused(page, ns)
        keyboard_virtual(page, ns)
        physical(page, ns)
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
