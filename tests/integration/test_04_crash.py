"""Intake killed with SIGKILL in the middle of batches and restarted loses nothing and
duplicates nothing; SIGTERM drains and exits cleanly."""
import random
import signal
import sys

from harness import check, decode, example, headers, log, onboarding_id, run, wait_for

N = 600


def test_crash(ns):
    ids = []
    p = ns.start(LMP_BATCH_MAX=50)
    for i in range(N):
        r = example(random.choice(["virtual-core.json", "physical-complete.json", "cloud-only.json",
                                   "rejected-breach.json"]))
        ids.append(onboarding_id(r))
        ns.publish("onboarding.requested", r, flush=False)
    ns.producer.flush(30)

    kills, prev = 0, 0
    for _ in range(3):
        # Kill once this instance has made progress and work is left.
        def progressed():
            n = ns.sql("SELECT count(*) FROM onboardings")[0][0]
            return n if n > prev or n >= N else None
        done = wait_for("progress", progressed, timeout=60, interval=0.01)
        prev = done
        if done >= N:
            break
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills += 1
        log(f"killed intake after {done} onboardings")
        p = ns.start(LMP_BATCH_MAX=50)

    wait_for("every request processed", lambda: ns.sql("SELECT count(*) FROM onboardings")[0][0] == N,
             timeout=120)
    check(kills >= 1, "the test killed intake at least once mid-run")
    rows = ns.sql("SELECT count(DISTINCT onboarding_id), count(*) FROM onboardings")
    check(rows == [(N, N)], rows)
    check(ns.sql("SELECT count(*) FROM lmp_inbox")[0][0] == N, "each event applied once")

    # Every onboarding has exactly one outcome event id, though a crash between
    # publish and outbox clean-up may publish that same event twice.
    ns.wait_published(["intake"])
    acc = ns.consume_all("onboarding.accepted")
    rej = ns.consume_all("onboarding.rejected")
    outcome = {}
    for m in acc + rej:
        oid = decode(m.value())[1]["onboarding_id"]
        outcome.setdefault(oid, set()).add(headers(m)["event_id"])
    check(sorted(outcome) == sorted(ids), f"{len(outcome)} onboardings have an outcome, want {N}")
    multi = [k for k, v in outcome.items() if len(v) != 1]
    check(not multi, f"onboardings with two different outcome events: {multi[:5]}")
    log(f"{N} requests, {kills} kills, {len(acc) + len(rej)} outcome messages for {N} events")

    # Drain: SIGTERM ends the daemon cleanly and commits what it consumed.
    wait_for("offsets committed", lambda: ns.group_lag("lmp-intake-" + ns.prefix, "onboarding.requested") == 0,
             timeout=30)
    p.send_signal(signal.SIGTERM)
    check(p.wait(30) == 0, f"SIGTERM exit status {p.returncode}")
    with open(p.logfile) as fh:
        text = fh.read()
    check('"msg":"stopped"' in text, "the daemon logged its stop")


if __name__ == "__main__":
    sys.exit(run(test_crash))
