"""One daemon under valgrind (a build without sanitizers): it consumes, answers,
dead-letters, takes a signed-in partner's request at the front door (the access token
verified against the issuer's keys), refuses a forged token, and drains with no memory
error and nothing lost."""
import os
import signal
import sys

from harness import check, example, http_get, http_post, onboarding_id, run, token, wait_for

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
            ids.append(onboarding_id(r))
            ns.publish("onboarding.requested", r)
        ns.publish("onboarding.requested", raw=b"not avro")
        # The front door: a partner's token verified (the issuer's keys fetched), a
        # forged one refused, the status read back.
        door = example("virtual-core.json")
        code, body = http_post(p.http + "/v1/onboardings", door, token=token(), timeout=120)
        check(code == 202, f"front door: {code} {body}")
        ids.append(onboarding_id(door))
        head, payload, sig = token().split(".")
        code, body = http_post(p.http + "/v1/onboardings", example("virtual-core.json"),
                               token=f"{head}.{payload}.{sig[::-1]}", timeout=120)
        check(code == 401, f"a forged token: {code} {body}")
        wait_for("every request answered", lambda: ns.sql(
            "SELECT count(*) FROM onboardings WHERE onboarding_id = ANY(%s)", ids)[0][0] == 5, timeout=120)
        wait_for("the status of the front door's request", lambda: http_get(
            p.http + "/v1/onboardings/" + onboarding_id(door), token=token())[0] == 200, timeout=60)
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
