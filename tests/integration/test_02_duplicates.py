"""The same request twice is one onboarding; the same event redelivered is applied
once; the same id with other content is refused; legal names are unique per partner
regardless of case."""
import copy
import sys

from harness import check, decode, example, onboarding_id, run, wait_for


def test_duplicates(ns):
    ns.start()
    r = example("virtual-core.json")
    # A frontend retry: same request, new event id.
    ns.publish("onboarding.requested", r)
    ns.publish("onboarding.requested", r)
    # A redelivery of the very same event (same event id header).
    h = ns.publish("onboarding.requested", r)
    ns.publish("onboarding.requested", r, headers=h)
    # Same id, different content.
    other = copy.deepcopy(r)
    other["users"]["tier"] = 9
    ns.publish("onboarding.requested", other)
    # Another onboarding whose legal name differs only by case and spaces. It goes to
    # another partition, so it is sent once the first holds the name: otherwise either
    # could win it.
    wait_for("the first request accepted", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(r)) == [("accepted",)])
    twin = example("virtual-core.json")
    twin["customer"]["legal_name"] = "  " + r["customer"]["legal_name"].upper() + " "
    ns.publish("onboarding.requested", twin)

    # Six messages, five distinct events: the redelivery never reaches the handler.
    wait_for("all five events applied", lambda: ns.sql(
        "SELECT count(*) FROM lmp_inbox")[0][0] == 5)
    wait_for("the twin answered", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(twin)) == [("rejected",)])
    rows = ns.sql("SELECT status, duplicates, conflicts FROM onboardings WHERE onboarding_id = %s",
                  onboarding_id(r))
    check(rows == [("accepted", 2, 1)], f"one onboarding, two duplicates ignored, one conflict: {rows}")
    check(ns.sql("SELECT count(*) FROM customer_accounts")[0][0] == 1, "one account")

    ns.wait_published(["intake"])
    acc = ns.consume_all("onboarding.accepted")
    check(len(acc) == 1, f"exactly one accepted event, got {len(acc)}")
    # The twin is rejected as an outcome of its own onboarding. The conflicting re-send
    # is answered on a topic of its own: the original onboarding has no rejection.
    rej = ns.consume_all("onboarding.rejected")
    reasons = [(decode(m.value())[1]["onboarding_id"], decode(m.value())[1]["reasons"][0]["code"]) for m in rej]
    check(reasons == [(onboarding_id(twin), "LEGAL_NAME_TAKEN")], reasons)
    conflicts = ns.consume_all("onboarding.request-conflict")
    check(len(conflicts) == 1, f"one conflict answer, got {len(conflicts)}")
    name, ev = decode(conflicts[0].value())
    check(name == "onboarding.request-conflict" and ev["request_id"] == r["request_id"] and
          ev["reasons"][0]["code"] == "REQUEST_ID_CONFLICT", ev)
    # Keyed by the onboarding id it conflicts with; its request_id is the frontend's.
    check(conflicts[0].key().decode() == onboarding_id(r), "keyed by the onboarding id")
    # The conflict did not change the original onboarding.
    stored = ns.sql("SELECT request->'users'->>'tier' FROM onboardings WHERE onboarding_id = %s",
                    onboarding_id(r))
    check(stored == [("8",)], stored)


if __name__ == "__main__":
    sys.exit(run(test_duplicates))
