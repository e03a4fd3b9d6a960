"""The database or the broker away, at start-up or mid-run: a clear log line,
/readyz not ready, work paused, then resumed by itself with nothing skipped.
Runs alone (it stops the shared test stack's servers)."""
import os
import signal
import subprocess
import sys
import time

from harness import ROOT, Failure, check, example, http_get, log, onboarding_id, run, wait_for

STACK = os.path.join(ROOT, "deploy", "stack")


def stack(cmd):
    subprocess.run([STACK, cmd], check=True, capture_output=True, timeout=120)


def readyz(p):
    code, body = http_get(p.http + "/readyz")
    return code, body


def test_outages(ns):
    # 1. Database down at start-up.
    stack("pg-down")
    try:
        # A short max.poll.interval.ms: the outage below outlasts it, so the consumer
        # only keeps its partitions by pausing and polling while its batch waits.
        p = ns.start("intake", wait_ready=False, LMP_KAFKA_MAX_POLL_INTERVAL_MS=10000)
        wait_for("intake up but not ready", lambda: readyz(p)[0] == 503, timeout=30)
        check('"database":"unreachable"' in readyz(p)[1], readyz(p))
        wait_for("a log line naming the database", lambda: "database: " in open(p.logfile).read(), timeout=30)
    finally:
        stack("pg-up")
    ns.wait_ready(p, timeout=60)

    # 2. Database restart mid-run: requests published meanwhile all get their outcome.
    stack("pg-down")
    ids = []
    try:
        for _ in range(30):
            r = example("virtual-core.json")
            ids.append(onboarding_id(r))
            ns.publish("onboarding.requested", r, flush=False)
        ns.producer.flush(30)
        wait_for("not ready while the database is away", lambda: readyz(p)[0] == 503, timeout=30)
        time.sleep(5)
        for _ in range(10):
            r = example("virtual-core.json")
            ids.append(onboarding_id(r))
            ns.publish("onboarding.requested", r, flush=False)
        ns.producer.flush(30)
        time.sleep(10)  # longer than max.poll.interval.ms
        check(p.poll() is None, "intake keeps running without its database")
    finally:
        stack("pg-up")
    wait_for("every request answered after the database came back", lambda: ns.sql(
        "SELECT count(*) FROM onboardings WHERE onboarding_id = ANY(%s)", ids)[0][0] == 40, timeout=90)
    log_text = open(p.logfile).read()
    check("fetching paused" in log_text, "a long wait pauses fetching")
    check("revoked" not in log_text, "the consumer kept its partitions through the outage")
    wait_for("ready again", lambda: readyz(p)[0] == 200, timeout=30)
    log_text = open(p.logfile).read()
    check("rolled back" in log_text and "retrying in" in log_text, "the pause is logged with its backoff")

    # 3. Broker down at start-up of another daemon, and for the running one.
    stack("kafka-down")
    try:
        q = ns.start("allocation", wait_ready=False)
        wait_for("allocation not ready without a broker", lambda: readyz(q)[0] == 503, timeout=60,
                 show=lambda: readyz(q))
        wait_for("intake notices the broker is gone", lambda: '"kafka":"unreachable"' in readyz(p)[1], timeout=60,
                 show=lambda: (readyz(p), [l for l in http_get(p.http + "/metrics")[1].splitlines() if "_up" in l or "lag" in l]))
    finally:
        stack("kafka-up")
    ns.wait_ready(q, timeout=120)
    wait_for("intake ready again", lambda: readyz(p)[0] == 200, timeout=120)
    r = example("virtual-core.json")
    ns.publish("onboarding.requested", r)
    # Allocation has no reference data here, so it refuses the onboarding: the
    # failure coming back proves the whole path through the restarted broker.
    wait_for("a request after the broker came back, through intake and allocation", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(r)) == [("failed",)], timeout=60)
    # Nothing skipped: every request is in the inbox once.
    check(ns.sql("SELECT count(*) FROM lmp_inbox WHERE topic = %s", ns.topic("onboarding.requested"))[0][0] == 41,
          "41 requests, each applied once")

    # 4. A drain cut short while the database is away and a batch is held: a second
    # signal, or the drain deadline, ends the daemon at once; nothing waits forever on
    # the messages it held.
    a = ns.start("intake", LMP_KAFKA_GROUP_ID="second-" + ns.prefix)
    b = ns.start("intake", LMP_KAFKA_GROUP_ID="deadline-" + ns.prefix, LMP_SHUTDOWN_TIMEOUT_MS=2000)
    stack("pg-down")
    try:
        for _ in range(5):
            ns.publish("onboarding.requested", example("virtual-core.json"), flush=False)
        ns.producer.flush(30)
        for p in (a, b):
            wait_for("a batch held while the database is away", lambda p=p: "rolled back" in open(p.logfile).read(),
                     timeout=60)
        a.send_signal(signal.SIGTERM)
        b.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        check(a.poll() is None, "the first signal drains: it waits for the batch")
        a.send_signal(signal.SIGTERM)
        t0 = time.time()
        for p, why in ((a, "second signal"), (b, "drain took longer")):
            try:
                rc = p.wait(15)
            except subprocess.TimeoutExpired:
                raise Failure(f"{p.logfile}: still running 15 s after the {why}")
            check(rc == 1, f"{p.logfile}: exit status {rc} after the {why}, want 1 (work left uncommitted)")
            check(why in open(p.logfile).read(), f"{p.logfile}: the log says '{why}'")
        log(f"both ended {time.time() - t0:.1f} s after the second signal")
    finally:
        stack("pg-up")


if __name__ == "__main__":
    sys.exit(run(test_outages))
