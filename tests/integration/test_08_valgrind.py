"""One daemon under valgrind (a build without sanitizers): it consumes, answers,
dead-letters and drains with no memory error and nothing lost."""
import os
import signal
import sys

from harness import check, example, run, wait_for

PLAIN = os.environ.get("LMP_VALGRIND_BUILD", "")


def test_valgrind(ns):
    exe = os.path.join(PLAIN, "services", "intake", "lmp-intake")
    check(os.path.exists(exe), f"no plain build at {PLAIN}")
    p = ns.start("intake", exe=exe, wrapper=[
        "valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect,possible",
        "--errors-for-leak-kinds=definite,indirect,possible", "--error-exitcode=99", "--num-callers=30"])
    logname = p.logfile
    try:
        ids = []
        for name in ("virtual-core.json", "physical-complete.json", "cloud-only.json", "rejected-breach.json"):
            r = example(name)
            ids.append(r["request_id"])
            ns.publish("onboarding.requested", r)
        ns.publish("onboarding.requested", raw=b"not avro")
        wait_for("every request answered", lambda: ns.sql(
            "SELECT count(*) FROM onboardings WHERE onboarding_id = ANY(%s)", ids)[0][0] == 4, timeout=120)
        wait_for("the junk dead-lettered", lambda: len(ns.consume(ns.dlq, 1, timeout=5)) == 1, timeout=60)
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(120)
    text = open(logname).read()
    check("ERROR SUMMARY: 0 errors" in text, f"valgrind reported errors, see {logname}")
    check("definitely lost: 0 bytes" in text or "All heap blocks were freed" in text, f"leaks, see {logname}")
    check(rc == 0, f"exit status {rc} after SIGTERM, see {logname}")


if __name__ == "__main__":
    sys.exit(run(test_valgrind))
