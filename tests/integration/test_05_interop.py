"""Another language reads and writes our events: fastavro computes the same Parsing
Canonical Form and fingerprint for every schema, a Python frontend's request is
answered, and a request sent by lmpctl (C) is read back by Python, and its status by
lmpctl."""
import json
import os
import sys

from harness import SCHEMAS, check, decode, example, headers, onboarding_id, run, wait_for


def lmpctl(ns, *args):
    return ns.lmpctl(*args, check_rc=False, timeout=60)


def test_interop(ns):
    # 1. Same canonical form and fingerprint as an independent implementation.
    for name, s in SCHEMAS.items():
        out = lmpctl(ns, "schema", name)
        check(out.returncode == 0, out.stderr)
        lines = dict(l.split(": ", 1) for l in out.stderr.strip().splitlines())
        check(lines["canonical"] == s["canonical"], f"{name}: canonical form differs from fastavro's")
        check(int(lines["fingerprint"], 16) == s["fp"], f"{name}: fingerprint differs from fastavro's")

    ns.start()
    # 2. A Python frontend publishes; Python reads intake's answer.
    r = example("physical-complete.json")
    ns.publish("onboarding.requested", r)
    msgs = ns.consume("onboarding.accepted", 1)
    check(len(msgs) == 1, "accepted event read by Python")
    name, ev = decode(msgs[0].value())
    check(ev["request"]["request_id"] == r["request_id"], ev["request"]["request_id"])
    check(ev["request"]["deployment"]["addresses"][1]["country"] == "CA", "nested records survive")

    # 3. lmpctl (the C encoder) submits; Python decodes the request as sent.
    out = lmpctl(ns, "submit", os.path.join(os.path.dirname(__file__), "..", "..", "deploy",
                                            "examples", "cloud-only.json"), "--new-id")
    check(out.returncode == 0, out.stderr)
    rid = out.stdout.strip()
    sent = [m for m in ns.consume("onboarding.requested", 2) if onboarding_id(decode(m.value())[1]) == rid]
    check(len(sent) == 1, "lmpctl's request found")
    name, req = decode(sent[0].value())
    h = headers(sent[0])
    check(name == "onboarding.requested" and req["license"] == "MDR_CLOUD", req)
    # Keyed by its request id, as a frontend does; that is every later event's correlation id.
    check(sent[0].key().decode() == req["request_id"], sent[0].key())
    check(h["event_type"] == "onboarding.requested" and h["correlation_id"] == req["request_id"], h)
    wait_for("intake answers lmpctl's request", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", rid) == [("accepted",)])
    # The id lmpctl printed is the onboarding's (scoped to its partner), and the
    # operator reads it back on intake's admin listener.
    check(rid == onboarding_id(req), f"lmpctl printed {rid}, not the onboarding id")
    out = lmpctl(ns, "status", rid, "--json")
    check(out.returncode == 0 and json.loads(out.stdout)["status"] == "accepted", f"{out.stdout} {out.stderr}")


if __name__ == "__main__":
    sys.exit(run(test_interop))
