"""A duplicate submission flows once: one allocation, one set of units, one pair of
mails. The warehouse's dispatch is recorded and leads to one tracking mail, however
often it is reported; a dispatch for an unknown shipment is dead-lettered."""
import sys

from harness import check, decode, example, headers, onboarding_id, run, wait_for


def test_duplicate_dispatch(ns):
    ns.start_all()
    r = example("physical-complete.json")
    oid = onboarding_id(r)
    ns.publish("onboarding.requested", r)
    ns.publish("onboarding.requested", r)
    wait_for("confirmed", lambda: ns.sql("SELECT status FROM onboardings WHERE onboarding_id = %s", oid)
             == [("confirmed",)], timeout=60)
    check(ns.sql("SELECT duplicates FROM onboardings WHERE onboarding_id = %s", oid) == [(1,)], "one duplicate")
    check(ns.sql("SELECT count(*) FROM allocations WHERE onboarding_id = %s", oid, service="allocation")[0][0] == 3,
          "allocated once")
    check(ns.sql("SELECT count(*) FROM units WHERE onboarding_id = %s", oid, service="appliance-fulfilment")[0][0] == 3,
          "three units, once")
    wait_for("two mails", lambda: len(ns.mails(oid)) >= 2)

    reqs = [decode(m.value())[1] for m in ns.consume("shipment.requested", 2)]
    check(len(reqs) == 2, f"{len(reqs)} shipment requests")
    ship = reqs[0]
    dispatched = {"shipment_id": ship["shipment_id"], "carrier": "Purolator", "tracking_number": "PRL123456789",
                  "dispatched_at": 1795800000000}
    ns.publish("shipment.dispatched", dispatched, key=oid)
    ns.publish("shipment.dispatched", dispatched, key=oid)  # the warehouse reports twice
    ns.publish("shipment.dispatched", dict(dispatched, shipment_id="00000000-0000-0000-0000-000000000000"), key=oid)

    wait_for("the tracking mail", lambda: len(ns.mails(oid)) >= 3)
    row = ns.sql("SELECT status, carrier, tracking_number FROM shipments WHERE shipment_id = %s",
                 ship["shipment_id"], service="shipping")
    check(row == [("dispatched", "Purolator", "PRL123456789")], row)
    wait_for("intake records the dispatch", lambda: ns.sql(
        "SELECT count(*) FROM onboarding_stages WHERE onboarding_id = %s AND stage = 'shipment-dispatched'",
        oid)[0][0] == 1)
    stages = ns.sql("SELECT detail->>'tracking_number' FROM onboarding_stages "
                    "WHERE onboarding_id = %s AND stage = 'shipment-dispatched'", oid)
    check(stages == [("PRL123456789",)], f"intake keeps the first dispatch's tracking number: {stages}")
    dl = ns.consume(ns.dlq, 1)
    check(len(dl) == 1 and headers(dl[0])["error_code"] == "HANDLER_REJECTED", "unknown shipment dead-lettered")
    mails = ns.mails(oid)
    tracking = [m for m in mails if "shipped" in m["Subject"]]
    check(len(mails) == 3 and len(tracking) == 1, [m["Subject"] for m in mails])
    check("PRL123456789" in tracking[0].get_content() and "Purolator" in tracking[0].get_content(), "tracking")
    check(ns.sql("SELECT count(*) FROM mails", service="notifier")[0][0] == 3, "three mails owed, three sent")


if __name__ == "__main__":
    sys.exit(run(test_duplicate_dispatch))
