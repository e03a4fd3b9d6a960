"""200 concurrent requests for one partner whose pool covers 150, with two allocation
instances in one consumer group: exactly 150 confirmed, 50 failed with the shortfall,
and the pool exactly full, never past it."""
import sys
import time

from harness import check, example, log, run, wait_for

N, POOL = 200, 150


def test_concurrency(ns):
    ns.start_all()
    ns.start("allocation")  # a second instance in the same group
    # Both share the group's partitions before any request flows, so each does a part.
    for p in ns.procs:
        if p.service == "allocation":
            ns.wait_assigned(p)
    code, body = ns.admin_post("allocation", "/v1/admin/load", {
        "partners": [{"partner_id": "partner-crowd", "name": "Crowd"}],
        "pools": [{"partner_id": "partner-crowd", "product": "MDR_CORE", "total": POOL}]})
    check(code == 200, body)
    ids = []
    t0 = time.time()
    for i in range(N):
        r = example("virtual-core.json", partner_id="partner-crowd")
        r["users"]["tier"] = 1
        ids.append(r["request_id"])
        ns.publish("onboarding.requested", r, flush=False)
    ns.producer.flush(30)

    def final():
        rows = dict(ns.sql("SELECT status, count(*) FROM onboardings WHERE partner_id = 'partner-crowd' "
                           "AND status IN ('confirmed', 'failed') GROUP BY 1"))
        return rows if sum(rows.values()) == N else None
    counts = wait_for("every request final", final, timeout=180, interval=0.5)
    log(f"{N} onboardings final in {time.time() - t0:.1f} s: {counts}")
    check(counts == {"confirmed": POOL, "failed": N - POOL}, counts)
    pool = ns.sql("SELECT total, allocated FROM pools WHERE partner_id = 'partner-crowd'", service="allocation")
    check(pool == [(POOL, POOL)], pool)
    reasons = ns.sql("SELECT DISTINCT reasons->0->>'code' FROM onboardings WHERE status = 'failed' "
                     "AND partner_id = 'partner-crowd'")
    check(reasons == [("INSUFFICIENT_USERS",)], reasons)
    # Both instances did part of the work.
    logs = [open(p.logfile).read() for p in ns.procs if p.service == "allocation"]
    check(all('"msg":"allocated' in text or "refused" in text for text in logs),
          "each allocation instance handled onboardings")


if __name__ == "__main__":
    sys.exit(run(test_concurrency))
