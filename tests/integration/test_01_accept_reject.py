"""A valid request becomes accepted, a bad one rejected with every reason; the tables
and the emitted events say so, and a rejected request holds no customer account."""
import sys

from harness import check, decode, example, headers, onboarding_id, run, wait_for


def test_accept_reject(ns):
    ns.start()
    good = example("physical-complete.json")
    bad = example("rejected-breach.json")
    bad["customer"]["legal_name"] = "   "
    ns.publish("onboarding.requested", good)
    ns.publish("onboarding.requested", bad)

    acc = ns.consume("onboarding.accepted", 1)
    rej = ns.consume("onboarding.rejected", 1)
    check(len(acc) == 1 and len(rej) == 1, f"events: {len(acc)} accepted, {len(rej)} rejected")

    m = acc[0]
    name, ev = decode(m.value())
    h = headers(m)
    check(name == "onboarding.accepted", name)
    check(m.key().decode() == onboarding_id(good), "accepted is keyed by the onboarding id")
    check(ev["onboarding_id"] == onboarding_id(good), "onboarding id")
    check(ev["request"]["customer"]["legal_name"] == good["customer"]["legal_name"], "request carried")
    check(len(ev["request"]["deployment"]["appliances"]) == 3, "appliances carried")
    check(h["event_type"] == "onboarding.accepted", h)
    check(h["correlation_id"] == good["request_id"], h)
    check(len(h["event_id"]) == 36 and h["traceparent"].startswith("00-"), h)

    name, ev = decode(rej[0].value())
    codes = [r["code"] for r in ev["reasons"]]
    for want in ["BREACH_OR_INCIDENT", "NOT_CONFIRMED", "LEGAL_NAME_REQUIRED", "BAD_WEB_SITE",
                 "BAD_ADMIN_EMAIL", "NEGATIVE_COUNT", "SAT_REQUIRES_COMPLETE", "UNKNOWN_SKU",
                 "APPLIANCE_WITHOUT_ADDRESS"]:
        check(want in codes, f"{want} missing from {codes}")
    check(all(r["message"] for r in ev["reasons"]), "every reason has a message")

    rows = ns.sql("SELECT onboarding_id, status, customer_id IS NOT NULL FROM onboardings ORDER BY status")
    check(rows == [(onboarding_id(good), "accepted", True), (onboarding_id(bad), "rejected", False)], rows)
    accounts = ns.sql("SELECT onboarding_id, account_name FROM customer_accounts")
    check(accounts == [(onboarding_id(good), good["customer"]["legal_name"])], accounts)
    stages = ns.sql("SELECT stage FROM onboarding_stages WHERE onboarding_id = %s", onboarding_id(good))
    check(stages == [("accepted",)], stages)
    # Everything published: the outbox is empty once the broker acknowledged.
    wait_for("outbox drained", lambda: ns.sql("SELECT count(*) FROM lmp_outbox")[0][0] == 0)


if __name__ == "__main__":
    sys.exit(run(test_accept_reject))
