"""The partner's portal around the form, in Chromium, signed in at the stack's
Keycloak: the page offers only the licenses the partner holds and shows the users
available beside each count, refuses a count above them at its field before anything
is sent, offers the partners that share the license as the sub-partner's choices and
refuses another, shows the default address and ships there only once it is
confirmed; a failed onboarding is corrected against the users available now and
confirmed; an MDR Cloud onboarding goes through; a partner that holds nothing is told
so and offered no license. Screenshots of each step are kept in Testing/37_portal."""
import os
import shutil
import sys
import uuid

import test_26_form as form
from harness import allow_page, check, demo_logins, log, run, token, wait_for
from test_26_form import Page, browser, check_field_error

SHOTS = os.path.join(form.BUILD, "Testing", "37_portal")
NORTH, EAST = "partner-northwind", "partner-eastwind"


def ready(ns, partner):
    """Until intake has heard the partner's balance: the page loads it once."""
    import json
    import urllib.request
    url = ns.http["intake"] + "/v1/partner"

    def heard():
        req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token(partner)})
        with urllib.request.urlopen(req, timeout=10, context=form.tls_context(url)) as r:
            return json.load(r)["balance_as_of"] is not None
    wait_for(f"{partner}'s balance heard", heard, timeout=60)


def no_posts(page):
    check(page.posts() == [], f"the page sent a request it should have refused: {page.sent()}")


def holdings(page):
    """Core and the counts beside it; a count above them, and a sub-partner that does
    not share the license, refused at their fields with nothing sent."""
    page.open()
    page.wait("the partner's view on the page",
              lambda: (page.text("license-MDR_CORE-available") or "").startswith(", "))
    for code, n in (("MDR_CORE", 500), ("MDR_COMPLETE", 1000), ("MDR_CLOUD", 400)):
        check(page.text(f"license-{code}-available") == f", {n} users available",
              f"{code}: {page.text(f'license-{code}-available')!r}")
    page.click("license-MDR_CORE")
    page.click("breach-no")
    check(page.text("users_tier-available") == "500 available on your MDR Core license.",
          page.text("users_tier-available"))
    check(page.text("users_cloud-available") == "400 MDR Cloud users available.",
          page.text("users_cloud-available"))
    check(page.js("return Array.from(document.querySelectorAll('#sub-partners option'), (o) => o.value)") == [EAST],
          "the sub-partner's choices")
    check("Eastwind IT (partner-eastwind)" in page.text("sub_partner_id-choices"), page.text("sub_partner_id-choices"))
    page.type("legal_name", f"Bayside Veterinary Hospital {uuid.uuid4().hex[:8]}")
    page.type("portal_admin_email", "it@bayside-vet.example.com")
    page.type("users_tier", "501")
    page.type("sub_partner_id", "partner-southwind")
    page.click("deploy-virtual")
    page.select("hosting_region", "ca-central-1")
    chosen = "const s = document.getElementById(arguments[0]); return s.options[s.selectedIndex].textContent"
    check(page.js(chosen, "hosting_region") == "Canada (Central)", "the region is not shown by its name")
    page.click("review-button")
    page.wait("the reasons at their fields", lambda: page.attr("users_tier", "aria-invalid") == "true")
    page.shot("count-above-available")
    check_field_error(page, "users_tier", "MDR Core users: 501 requested, 500 available on your license.")
    check_field_error(page, "sub_partner_id", "'partner-southwind' is not a partner that shares your volume license")
    check(page.shown("legal_name"), "the form moved on to the review with the reasons")
    no_posts(page)
    # Corrected: the sub-partner from the list, a count within what is available.
    page.type("users_tier", "12")
    page.type("sub_partner_id", EAST)
    page.review_and_submit()
    check(page.outcome() == "confirmed", page.text("result"))
    check(page.sent()[-1]["customer"]["sub_partner_id"] == EAST, page.sent()[-1]["customer"])
    page.shot("sub-partner-confirmed")
    log("holdings: counts and sub-partners from the view; above them refused at the field; corrected, confirmed")


def core_customer(page, name, email, users):
    """A fresh page, signed in, once the partner's view is on it: an MDR Core customer
    not under attack, its name, administrator and users typed."""
    page.open()
    page.wait("the partner's view on the page",
              lambda: (page.text("license-MDR_CORE-available") or "").startswith(", "))
    page.click("license-MDR_CORE")
    page.click("breach-no")
    page.type("legal_name", f"{name} {uuid.uuid4().hex[:8]}")
    page.type("portal_admin_email", email)
    page.type("users_tier", users)


def default_address(page):
    """Network sensors to the default address: shown, refused until confirmed, then
    shipped there."""
    core_customer(page, "Cove Road Pharmacy", "owner@coveroad-pharmacy.example.com", "20")
    page.click("deploy-sensors")
    page.select("primary_sku", "NS-500")
    chosen = "const s = document.getElementById(arguments[0]); return s.options[s.selectedIndex].textContent"
    check(page.js(chosen, "primary_sku") == "NS-500 network sensor (mid-size site)", "the model is not shown by its name")
    check(not page.shown("default-address-box"), "the default address shown before it was chosen")
    page.click("ship-default")
    page.wait("the default address", lambda: page.shown("default-address-box"))
    shown = page.text("default-address")
    check("200 Waterfront Dr" in shown and "Bedford" in shown and "CA" in shown, shown)
    page.shot("default-address-shown")
    page.click("review-button")
    page.wait("the reason at the shipping choice", lambda: page.shown("fs-shipping-error"))
    check("Confirm that the appliances go to the default address" in page.text("fs-shipping-error"),
          page.text("fs-shipping-error"))
    no_posts(page)
    page.click("default-address-ok")
    page.review_and_submit()
    check(page.outcome() == "confirmed", page.text("result"))
    sent = page.sent()[-1]
    check(sent["deployment"]["appliances"][0]["ship_to"] == "partner-default", sent["deployment"])
    check("Bedford" in page.text("result"), "the confirmation does not show the default address")
    page.shot("default-address-confirmed")
    log("default address: shown, refused unconfirmed, confirmed and shipped there")


def failed_then_corrected(page, ns):
    """A failed onboarding, not a refused one: the partner's pool is lowered after the
    page loaded (another frontend or an operator drew on it), so the page's view
    still offers more than allocation has. The failure shows its reason, the form comes
    back with the reason at the users and the users available as they now are, and the
    corrected request is confirmed."""
    import test_36_partner_view as pv
    core_customer(page, "Millbrook Family Dental", "office@millbrook-dental.example.com", "40")
    page.click("deploy-virtual")
    page.select("hosting_region", "us-east-1")
    total = 500
    left = pv.available(pv.settled(ns, "the view", lambda v: True), "MDR_CORE")["tier"]
    code, body = ns.admin_post("allocation", "/v1/admin/load",
                               {"pools": [{"partner_id": NORTH, "product": "MDR_CORE", "total": total - left + 30}]})
    check(code == 200, body)
    pv.settled(ns, "the lowered pool", lambda v: pv.available(v, "MDR_CORE")["tier"] == 30)
    page.review_and_submit()
    check(page.outcome() == "failed", page.text("result"))
    reasons = page.js("return Array.from(document.querySelectorAll('#result-reasons li'), (li) => li.dataset.code)")
    check(reasons == ["INSUFFICIENT_USERS"], f"the failure's reasons: {reasons}")
    check(page.shown("correct-button"), "a failed onboarding offers no way to correct it")
    page.shot("failed")
    page.click("correct-button")
    page.wait("the form back, the users available as they are now",
              lambda: page.shown("legal_name") and
              page.text("users_tier-available") == "30 available on your MDR Core license.")
    check(page.d.current_url == f"{page.origin}/", page.d.current_url)
    check(page.js("return document.getElementById('result').dataset.status") == "",
          "the page still holds the failed onboarding's outcome while correcting it")
    check("40 users requested, 30 available" in (page.text("fs-users-error") or ""), page.text("fs-users-error"))
    page.shot("failed-correcting")
    failed, posts = page.sent()[-1], len(page.posts())
    page.type("users_tier", "31")
    page.click("review-button")
    page.wait("the count above refused", lambda: page.attr("users_tier", "aria-invalid") == "true")
    check(len(page.posts()) == posts, "a count above the users available now was sent")
    page.type("users_tier", "25")
    page.review_and_submit()
    check(page.outcome() == "confirmed", page.text("result"))
    again = page.sent()[-1]
    check(again["request_id"] != failed["request_id"] and again["users"]["tier"] == 25,
          f"the corrected request: {again}")
    page.shot("failed-corrected-confirmed")
    code, body = ns.admin_post("allocation", "/v1/admin/load",
                               {"pools": [{"partner_id": NORTH, "product": "MDR_CORE", "total": total}]})
    check(code == 200, body)
    log("a failed onboarding: its reason shown, corrected against the users available now, confirmed")


def cloud(page):
    """An MDR Cloud onboarding: cloud users only, no appliance."""
    page.open()
    page.wait("the partner's view on the page",
              lambda: (page.text("license-MDR_CLOUD-available") or "").startswith(", "))
    page.click("license-MDR_CLOUD")
    page.click("breach-no")
    check(not page.shown("users_tier") and not page.shown("fs-deployment"), "MDR Cloud offers a tier or appliances")
    check(page.text("users_cloud-available") == "400 MDR Cloud users available.",
          page.text("users_cloud-available"))
    page.type("legal_name", f"Northshore Accounting {uuid.uuid4().hex[:8]}")
    page.type("portal_admin_email", "admin@northshore-accounting.example.com")
    page.type("users_cloud", "15")
    page.review_and_submit()
    check(page.outcome() == "confirmed", page.text("result"))
    sent = page.sent()[-1]
    check(sent["license"] == "MDR_CLOUD" and sent["users"] == {"tier": 0, "cloud": 15, "sat": 0} and
          sent["deployment"] is None, sent)
    page.shot("cloud-confirmed")
    log("MDR Cloud: cloud users only, confirmed")


def lists_and_addresses(page, ns):
    """The confirmation page at its own address survives a reload (after signing in
    again: the page keeps no token); the lists show the partner's onboardings and
    customers, newest first, and open each; an address of no onboarding says so."""
    oid = page.js("return document.getElementById('result').dataset.onboardingId")
    check(page.d.current_url == f"{page.origin}/onboardings/{oid}", f"the confirmation's address: {page.d.current_url}")
    page.d.refresh()
    page.wait("the reloaded page", lambda: page.signin_state() in ("signed-out", "signed-in"), 30)
    if page.signin_state() != "signed-in":
        page.sign_in()
    check(page.d.current_url.split("?")[0] == f"{page.origin}/onboardings/{oid}", page.d.current_url)
    check(page.outcome() == "confirmed", page.text("result"))
    check(page.shown("result-customer-id") and not page.shown("correct-button"), "the reloaded confirmation")
    page.shot("confirmation-reloaded")

    page.click_link("Onboardings")
    page.wait("the onboardings listed", lambda: page.js(
        "return document.querySelectorAll('#onboardings-table tbody tr').length") >= 3)
    check(page.d.current_url == f"{page.origin}/onboardings", page.d.current_url)
    first = page.js("return document.querySelector('#onboardings-table tbody tr').dataset.onboardingId")
    check(first == oid, f"the newest onboarding is not first: {first} != {oid}")
    page.shot("onboardings-list")
    page.select("onboardings-status", "confirmed")
    page.wait("only confirmed ones", lambda: page.js(
        "const s = Array.from(document.querySelectorAll('#onboardings-table tbody td[data-status]'), (t) => "
        "t.dataset.status); return s.length > 0 && s.every((x) => x === 'confirmed')"))

    page.click_link("Customers")
    page.wait("the customers listed", lambda: page.js(
        "return document.querySelectorAll('#customers-table tbody tr').length") >= 3)
    row = page.js("const r = document.querySelector('#customers-table tbody tr'); "
                  "return Array.from(r.cells, (c) => c.textContent)")
    check(row[1] == "MDR Cloud" and row[2] == "MDR Cloud 15" and row[3] == "Active", row)
    page.shot("customers-list")
    # The customer's page: its users, and more added to it.
    cid = page.js("return document.querySelector('#customers-table tbody tr').dataset.customerId")
    page.js("document.querySelector('#customers-table tbody tr a').click()")
    page.wait("the customer's page", lambda: page.d.current_url == f"{page.origin}/customers/{cid}" and
              page.js("return document.querySelectorAll('#customer-users tbody tr').length") == 1)
    users = "return Array.from(document.querySelectorAll('#customer-users tbody tr'), (r) => r.cells[1].textContent)"
    check(page.js(users) == ["15"] and not page.shown("add_tier") and not page.shown("add_sat"),
          "an MDR Cloud account offers only cloud users")
    page.type("add_cloud", "2")
    page.click("add-users-button")
    page.wait("the users added", lambda: page.text("add-users-progress") == "The users were added.")
    check(page.js(users) == ["17"], page.js(users))
    check(page.js("return document.querySelector('#customer-additions li').dataset.status") == "added",
          page.text("customer-additions"))
    page.shot("users-added")
    page.type("add_cloud", "100000")
    page.click("add-users-button")
    page.wait("the shortfall named", lambda: "100000 users requested" in (page.text("add-users-problem") or ""))
    check(page.js(users) == ["17"], "a refused addition changed the totals")
    page.shot("users-refused")

    page.d.get(f"{page.origin}/onboardings/{uuid.uuid4()}")
    page.wait("the reloaded page", lambda: page.signin_state() in ("signed-out", "signed-in"), 30)
    if page.signin_state() != "signed-in":
        page.sign_in()
    page.wait("no such onboarding", lambda: page.text("result-title") == "No such onboarding")
    page.shot("no-such-onboarding")
    log("lists and addresses: a reloaded confirmation, both lists, a customer's page with users added and a "
        "shortfall refused, an unknown address")


def holds_nothing(page):
    """Eastwind holds no license and has no address: no license is offered."""
    page.open()
    page.wait("the partner's view on the page", lambda: page.shown("license-none"))
    disabled = page.js("return Array.from(document.querySelectorAll('input[name=license]'), (r) => r.disabled)")
    check(disabled == [True, True, True], f"licenses offered to a partner that holds none: {disabled}")
    check(page.text("license-MDR_CORE-available") == ", not held by your account", page.text("license-MDR_CORE-available"))
    page.shot("holds-nothing")
    log("a partner that holds nothing: told so, no license offered")


def test_portal(ns):
    ns.start_all()
    allow_page(ns.http["intake"])
    logins = demo_logins()
    ready(ns, NORTH)
    ready(ns, EAST)
    for who, steps in ((NORTH, (holdings, default_address, lambda p: failed_then_corrected(p, ns), cloud,
                                lambda p: lists_and_addresses(p, ns))),
                       (EAST, (holds_nothing,))):
        d = browser()
        page = Page(d, ns.http["intake"] + "/", logins[who])
        try:
            for step in steps:
                step(page)
        except Exception:
            log(f"the page when it failed: {page.shot('failure')}")
            raise
        finally:
            d.quit()
            shutil.rmtree(d.profile_dir, ignore_errors=True)


def click_link(self, text):
    self.d.find_element(form.By.LINK_TEXT, text).click()


Page.click_link = click_link

if __name__ == "__main__":
    shutil.rmtree(SHOTS, ignore_errors=True)
    os.makedirs(SHOTS)
    form.SHOTS = SHOTS  # the form test's page and browser keep their files here
    sys.exit(run(test_portal))
