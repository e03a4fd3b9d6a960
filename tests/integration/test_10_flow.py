"""Whole onboardings through all five daemons: a virtual MDR Core, a physical MDR
Complete with SAT and cloud users and three appliances at two addresses, and an MDR
Cloud one. Every daemon's tables, the events on the topics and the mails received
by the SMTP server are checked."""
import json
import sys

from harness import check, decode, example, headers, http_get, onboarding_id, run, stack_conf, token, wait_for


def status(ns, oid):
    rows = ns.sql("SELECT status FROM onboardings WHERE onboarding_id = %s", oid)
    return rows[0][0] if rows else None


def test_flow(ns):
    ns.start_all()
    # The notifier names the partner as allocation announced it (partner.balance).
    wait_for("the partner's name heard by the notifier", lambda: ns.sql(
        "SELECT name FROM partner_names WHERE partner_id = 'partner-northwind'", service="notifier") ==
        [("Northwind MSP",)], timeout=60)
    virt = example("virtual-core.json")
    phys = example("physical-complete.json")
    cloud = example("cloud-only.json")
    for r in (virt, phys, cloud):
        ns.publish("onboarding.requested", r)
    ids = [onboarding_id(r) for r in (virt, phys, cloud)]
    wait_for("three confirmed onboardings",
             lambda: all(status(ns, i) == "confirmed" for i in ids), timeout=90)

    # intake: every stage in the order of the flow, as the status answer gives it: each
    # stage's event comes on its own topic, so intake may hear of them in any order
    for i in ids:
        code, body = http_get(ns.http["intake"] + "/v1/onboardings/" + i, token=token("partner-northwind"))
        check(code == 200, f"{i}: status {code}")
        answer = json.loads(body)
        stages = [s["stage"] for s in answer["stages"]]
        check(stages == ["accepted", "users-allocated", "appliances-provisioned", "shipping-completed",
                         "confirmed"], f"{i}: {stages}")
        # one daemon's stage caused the next, so their own times follow the flow too
        times = [s["happened_at"] for s in answer["stages"]]
        check(times == sorted(times), f"{i}: own times out of the flow's order: {answer['stages']}")
        check(answer["status"] == "confirmed" and answer["account_status"] == "active", answer["status"])

    # allocation: what each drew, and the pools
    allocs = ns.sql("SELECT onboarding_id, product, users FROM allocations ORDER BY 1, 2", service="allocation")
    want = sorted([(onboarding_id(virt), "MDR_CORE", 8), (onboarding_id(phys), "BEAUCERON_SAT", 120),
                   (onboarding_id(phys), "MDR_CLOUD", 25), (onboarding_id(phys), "MDR_COMPLETE", 120),
                   (onboarding_id(cloud), "MDR_CLOUD", 40)])
    check(sorted(allocs) == want, allocs)
    pools = dict(ns.sql("SELECT product, allocated FROM pools WHERE partner_id = 'partner-northwind'",
                        service="allocation"))
    check(pools == {"MDR_CORE": 8, "MDR_COMPLETE": 120, "MDR_CLOUD": 65, "BEAUCERON_SAT": 120}, pools)

    # fulfilment: one virtual appliance, three reserved units
    va = ns.sql("SELECT onboarding_id, region, status FROM virtual_appliances", service="appliance-fulfilment")
    check(va == [(onboarding_id(virt), "ca-central-1", "provisioned")], va)
    units = ns.sql("SELECT sku, onboarding_id FROM units WHERE status = 'reserved' ORDER BY sku",
                   service="appliance-fulfilment")
    check(sorted(units) == sorted([("NS-100", onboarding_id(phys)), ("NS-100", onboarding_id(phys)),
                                   ("NS-500", onboarding_id(phys))]), units)

    # shipping: two shipments for the physical one (head office: 2 units, warehouse: 1)
    ships = ns.sql("SELECT s.address->>'city', count(*) FROM shipments s JOIN shipment_items i USING (shipment_id) "
                   "GROUP BY 1 ORDER BY 1", service="shipping")
    check(ships == [("Dartmouth", 1), ("Halifax", 2)], ships)
    reqs = ns.consume("shipment.requested", 2)
    check(len(reqs) == 2, f"{len(reqs)} shipment requests for the warehouse")
    for m in reqs:
        name, ev = decode(m.value())
        check(name == "shipment.requested" and ev["onboarding_id"] == onboarding_id(phys), ev)
        check(all(it["serial"] for it in ev["items"]) and ev["address"]["country"] == "CA", ev)
        check(m.key().decode() == onboarding_id(phys), "keyed by onboarding")
        check(headers(m)["correlation_id"] == phys["request_id"], "the frontend's request id carried through")

    # notifier and the SMTP server: a confirmation and an invitation each, nothing else
    for r in (virt, phys, cloud):
        i = onboarding_id(r)
        mails = wait_for(f"two mails for {i}", lambda: (lambda m: m if len(m) >= 2 else None)(ns.mails(i)))
        by_to = {m["To"].addresses[0].addr_spec: m for m in mails}
        check(len(mails) == 2, f"{i}: {len(mails)} mails")
        check(set(by_to) == {r["submitted_by"], r["customer"]["portal_admin_email"]}, list(by_to))
        conf = by_to[r["submitted_by"]]
        check(r["customer"]["legal_name"] in conf["Subject"], conf["Subject"])
        check(i in conf.get_content(), "the confirmation names the onboarding")
        # The onboarding id is the key to its status route: no header of any mail
        # carries it (the Message-ID is random, stored with the mail, and the admin
        # answer gives it), and the administrator's invitation does not show it.
        for m in mails:
            check(not [(k, v) for k, v in m.items() if i in str(v)], f"{i} in the headers: {m.items()}")
        inv = by_to[r["customer"]["portal_admin_email"]]
        check(i not in inv.get_content() and i not in inv.as_string(), "the invitation shows the onboarding id")
        # Mails that fit the onboarding: tracking and the Help Center's appliances only
        # with hardware; the partner by its name; the MDR Portal and the page linked.
        text, shipped = conf.get_content(), r is phys
        check(("tracking details" in text) == shipped and ("Help Center chapter on appliances" in text) == shipped
              and ("Nothing is shipped" in text) != shipped, f"{i}: the confirmation's shipping lines: {text}")
        page = stack_conf("notifier").get("notifier.page_url")
        check(page is None or f"{page}/onboardings/{i}" in text, f"{i}: the confirmation lacks its page: {text}")
        invitation = inv.get_content()
        check("Northwind MSP has onboarded" in invitation and "https://portal.mdr.example.com" in invitation,
              f"the invitation: {invitation}")
        mids = ns.mail_ids(i)
        check(sorted(mids[str(m["Message-ID"])][1] for m in mails) == ["confirmation", "invitation"], mids)
        answer = json.loads(ns.admin_get("notifier", f"/v1/onboardings/{i}")[1])
        check({f"<{x['message_id']}@lmp-onboarding>" for x in answer} == {str(m["Message-ID"]) for m in mails},
              f"the admin answer's message ids: {answer}")
    # A mail is received before the notifier's commit says it was sent.
    wait_for("six mails recorded as sent", lambda: ns.sql(
        "SELECT kind, count(*) FROM mails WHERE status = 'sent' GROUP BY 1 ORDER BY 1", service="notifier")
        == [("confirmation", 3), ("invitation", 3)])
    confirmed = ns.consume("onboarding.confirmed", 3)
    check(sorted(decode(m.value())[1]["onboarding_id"] for m in confirmed) == sorted(ids), "confirmed events")
    # Confirmed when the work was done, the mails named to be sent; each mail's fate
    # follows once, and the status answer says so.
    for m in confirmed:
        mails = sorted((x["kind"], x["status"]) for x in decode(m.value())[1]["mails"])
        check(mails == [("confirmation", "pending"), ("invitation", "pending")], f"the confirmation's mails: {mails}")
    for i in ids:
        wait_for(f"{i}: the status answer says both mails sent", lambda i=i: all(
            x["status"] == "sent" for x in json.loads(ns.admin_get("intake", f"/v1/onboardings/{i}")[1])["mails"]))
    # Each fate announced once (intake has heard them all: they are on the topic).
    got = sorted((e["onboarding_id"], e["kind"], e["status"]) for e in
                 (decode(m.value())[1] for m in ns.consume_all("onboarding.mail-settled")))
    check(got == sorted((i, k, "sent") for i in ids for k in ("confirmation", "invitation")), got)
    check(ns.consume_all(ns.dlq) == [], "nothing dead-lettered")


if __name__ == "__main__":
    sys.exit(run(test_flow))
