"""The partner's journey, as the article tells it: an onboarding that fails is
corrected and submitted again under the same legal name and is confirmed; the trace
a frontend starts runs through every event the onboarding causes, the confirmed one
included; the advice for small customers comes back as a note; and one status call
gives everything the confirmation page shows."""
import json
import sys
import uuid

from harness import check, decode, example, headers, http_get, onboarding_id, run, token, wait_for


def status(ns, oid, partner="partner-northwind"):
    """The status answer the partner's frontend gets, signed in as that partner."""
    code, body = http_get(ns.http["intake"] + "/v1/onboardings/" + oid, token=token(partner))
    return json.loads(body) if code == 200 else None


def final(ns, oid, partner="partner-northwind"):
    s = status(ns, oid, partner)
    return s if s and s["status"] in ("confirmed", "failed", "rejected") else None


def test_journey(ns):
    ns.start_all()

    # 1. A shortfall fails the onboarding; the partner corrects the user count and
    # resubmits under a new request id with the same legal name: confirmed.
    first = example("virtual-core.json", partner_id="partner-southwind")
    first["users"]["tier"] = 51
    first["submitted_by"] = "ops@southwind.example.com"
    ns.publish("onboarding.requested", first)
    s = wait_for("the first attempt fails", lambda: final(ns, onboarding_id(first), "partner-southwind"), timeout=60)
    check(s["status"] == "failed" and s["reasons"][0]["code"] == "INSUFFICIENT_USERS", s)
    check(s["account_status"] == "released", f"the failed onboarding released its account: {s['account_status']}")
    again = dict(first, request_id=str(uuid.uuid4()), users={"tier": 50, "cloud": 0, "sat": 0})
    ns.publish("onboarding.requested", again)
    s = wait_for("the corrected request", lambda: final(ns, onboarding_id(again), "partner-southwind"), timeout=90)
    check(s["status"] == "confirmed", f"resubmitted under the same legal name: {s['status']} {s['reasons']}")
    check(s["account_status"] == "active" and s["customer"]["legal_name"] == first["customer"]["legal_name"], s)
    # A third one with that name now finds it taken by the confirmed customer.
    third = dict(first, request_id=str(uuid.uuid4()), users={"tier": 1, "cloud": 0, "sat": 0})
    ns.publish("onboarding.requested", third)
    s = wait_for("a third with the name", lambda: final(ns, onboarding_id(third), "partner-southwind"), timeout=60)
    check(s["status"] == "rejected" and s["reasons"][0]["code"] == "LEGAL_NAME_TAKEN", s)

    # 2. The frontend's trace, through every event, whatever emitted it.
    phys = example("physical-complete.json")
    phys["users"]["tier"] = 6  # a small customer on a physical deployment: allowed, with the note
    trace = uuid.uuid4().hex
    ns.publish("onboarding.requested", phys, headers={
        "event_id": str(uuid.uuid4()), "event_type": "onboarding.requested", "correlation_id": phys["request_id"],
        "traceparent": f"00-{trace}-{uuid.uuid4().hex[:16]}-01"})
    oid = onboarding_id(phys)
    s = wait_for("the physical onboarding confirmed", lambda: final(ns, oid), timeout=90)
    check(s["status"] == "confirmed", s)
    # Events on different topics have no order between them: the shipment request
    # may land after the confirmation.
    ship = wait_for("the warehouse's shipment requests", lambda: [
        decode(m.value())[1] for m in ns.consume_all("shipment.requested") if m.key().decode() == oid], timeout=60)[0]
    ns.publish("shipment.dispatched", {"shipment_id": ship["shipment_id"], "carrier": "Purolator",
                                       "tracking_number": "PRL777", "dispatched_at": 0}, key=oid, headers={
        "event_id": str(uuid.uuid4()), "event_type": "shipment.dispatched", "correlation_id": phys["request_id"],
        "traceparent": f"00-{trace}-{uuid.uuid4().hex[:16]}-01"})
    wait_for("the dispatch in the status", lambda: any(x.get("tracking_number") == "PRL777"
                                                        for x in status(ns, oid)["shipments"]), timeout=60)
    wait_for("both mails' fates heard", lambda: all(m["status"] == "sent" for m in status(ns, oid)["mails"]),
             timeout=60)
    ns.wait_published()
    seen = {}
    for topic in ("onboarding.accepted", "onboarding.users-allocated", "onboarding.appliances-provisioned",
                  "shipment.requested", "onboarding.shipping-completed", "onboarding.confirmed",
                  "onboarding.shipment-dispatched", "onboarding.mail-settled"):
        for m in ns.consume_all(topic):
            if m.key().decode() == oid:
                h = headers(m)
                # At least once: a copy the sweeper sent again is the same event, same span.
                seen.setdefault(topic, {})[h["event_id"]] = h["traceparent"]
                # keyed by the onboarding; correlated by the frontend's request id
                check(h["correlation_id"] == phys["request_id"], f"{topic}: correlation id {h['correlation_id']}")
    check(len(seen) == 8, f"events of the onboarding on {sorted(seen)}")
    spans = set()
    for topic, tps in seen.items():
        for tp in tps.values():
            check(tp.split("-")[1] == trace, f"{topic} continues the frontend's trace: {tp}")
            spans.add(tp.split("-")[2])
    check(len(spans) == sum(len(v) for v in seen.values()), f"each event is a span of its own: {seen}")

    # 3. The advice, as a note in the accepted event and the status.
    acc = [decode(m.value())[1] for m in ns.consume_all("onboarding.accepted") if m.key().decode() == oid][0]
    check(any(w["code"] == "VIRTUAL_RECOMMENDED" for w in acc["warnings"]), acc["warnings"])
    check(any(w["code"] == "VIRTUAL_RECOMMENDED" for w in s["warnings"]), s["warnings"])

    # 4. The confirmation page, from one call, once the mails it names went out (the
    # confirmation came first).
    s = wait_for("the mails sent", lambda: (lambda x: x if all(m["status"] == "sent" for m in x["mails"]) else None)(
        status(ns, oid)), timeout=60)
    check(s["customer"]["legal_name"] == phys["customer"]["legal_name"] and s["customer"]["customer_id"], s["customer"])
    check(s["customer"]["portal_admin_email"] == phys["customer"]["portal_admin_email"], s["customer"])
    users = {u["product"]: u["users"] for u in s["users"]}
    check(users == {"MDR_COMPLETE": 6, "MDR_CLOUD": 25, "BEAUCERON_SAT": 120}, users)
    check(len(s["appliances"]) == 3 and all(a["serial"] for a in s["appliances"]), s["appliances"])
    check(len(s["shipments"]) == 2 and all(x["address"]["country"] == "CA" and x["items"] for x in s["shipments"]),
          s["shipments"])
    mails = {m["kind"]: m for m in s["mails"]}
    check(mails["confirmation"]["recipient"] == phys["submitted_by"] and mails["confirmation"]["status"] == "sent",
          mails)
    check(mails["invitation"]["recipient"] == phys["customer"]["portal_admin_email"], mails)


if __name__ == "__main__":
    sys.exit(run(test_journey))
