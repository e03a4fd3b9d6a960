"""Schemathesis, the fuzzer API users run against the APIs they integrate with, over
every public route of intake as docs/openapi.yaml states it, against the real stack:
all its phases (the document's examples, its coverage of each constraint's edges,
fuzzing with data that fits the schema and data that breaks it, and the stateful
phase that follows the document's links from a submission to its status), every
check, signed in as a partner that holds licenses and as one that holds none. Zero
failures: the server takes what the document says it takes, refuses what it
refuses, and answers only what it documents. A fixed seed and a random one, both
printed, so any failure can be replayed (`st run ... --seed N`). The rules no schema
can say are taught in schemathesis_hooks.py (a case meant to fit the schema keeps
them, one meant to break it is never changed), which also shortens long polls to
2 s; the test checks that onboardings of every kind reached intake."""
import os
import random
import subprocess
import sys

from harness import BUILD, ROOT, SECRETS, SECURED, check, log, run, token

HERE = os.path.dirname(os.path.abspath(__file__))

DOC = os.path.join(ROOT, "docs", "openapi.yaml")
ST = os.path.join(ROOT, ".stack", "venv", "bin", "schemathesis")
HOOKS = HERE
REPORTS = os.path.join(BUILD, "Testing", "41_schemathesis")
NORTH, EAST = "partner-northwind", "partner-eastwind"
PHASES = "examples,coverage,fuzzing,stateful"


def fuzz(ns, partner, seed, examples, seconds):
    """One Schemathesis run as partner; its summary lines, and whether it passed."""
    args = [ST, "run", DOC, "--url", ns.http["intake"], "--include-tag", "public",
            "-H", "Authorization: Bearer " + token(partner),
            "--phases", PHASES, "--checks", "all", "--seed", str(seed), "--max-examples", str(examples),
            "--max-time", str(seconds), "--request-timeout", "15", "--workers", "1",
            "--suppress-health-check", "filter_too_much,too_slow",
            "--report", "junit,ndjson", "--report-dir", os.path.join(REPORTS, f"{partner}-{seed}"),
            "--no-color"]
    if SECURED:
        args += ["--tls-verify", os.path.join(SECRETS, "ca.crt")]
    args += os.environ.get("LMP_ST_ARGS", "").split()  # e.g. --include-operation-id getOnboarding
    env = dict(os.environ, SCHEMATHESIS_HOOKS="schemathesis_hooks", PYTHONPATH=HOOKS, LMP_ST_PARTNER=partner)
    log(f"schemathesis as {partner}, seed {seed}, {examples} examples an operation, at most {seconds} s")
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=seconds + 240)
    out = r.stdout + r.stderr
    with open(os.path.join(REPORTS, f"{partner}-{seed}.txt"), "w") as fh:
        fh.write(out)
    summary = out[out.rfind("=== SUMMARY ==="):] if "=== SUMMARY ===" in out else out[-4000:]
    return r.returncode, out, summary


def test_schemathesis(ns):
    # The rate limits are the front door's own test's (integration.25): here they would
    # only turn the fuzzer's cases into 429s.
    ns.start_all(LMP_INTAKE_SUBMISSIONS_PER_PARTNER_PER_MIN=100000, LMP_INTAKE_SUBMISSIONS_PER_ADDRESS_PER_MIN=100000)
    os.makedirs(REPORTS, exist_ok=True)
    second = int(os.environ.get("LMP_ST_SEED") or random.SystemRandom().randrange(1, 2 ** 31))
    # Bounded in time (the stateful phase repeats until its share is spent): about
    # three minutes in all, the fixed seed longest.
    runs = [(NORTH, 7, 10, 100), (NORTH, second, 10, 60), (EAST, 7, 5, 30)]
    if os.environ.get("LMP_ST_QUICK"):
        runs = [(NORTH, second, 5, 60)]
    failed = []
    for partner, seed, examples, seconds in runs:
        rc, out, summary = fuzz(ns, partner, seed, examples, seconds)
        print(summary, flush=True)
        if rc != 0:
            failed.append(f"{partner} seed {seed}")
            print(out[:30000], flush=True)
    check(not failed, f"schemathesis found failures ({', '.join(failed)}); replay with LMP_ST_SEED=<seed>")
    # The fuzzer reached the flow: onboardings of each kind were taken, not only refused.
    taken = dict(ns.sql("SELECT coalesce(request->'deployment'->>'kind', 'none'), count(*) FROM onboardings "
                        "GROUP BY 1"))
    log(f"onboardings the fuzzer had taken, by deployment: {taken}")
    check(all(taken.get(k, 0) >= 3 for k in ("VIRTUAL", "NETWORK_SENSORS", "none")),
          f"too few requests of some kind reached intake: {taken}")
    log(f"schemathesis: no failure as {NORTH} (seeds 7 and {second}) and as {EAST} (seed 7); reports in {REPORTS}")


if __name__ == "__main__":
    sys.exit(run(test_schemathesis))
