"""Health, readiness and metrics endpoints; a bad setting stops the daemon with a
clear message; an unreachable database turns readiness off and is logged."""
import os
import re
import subprocess
import sys

from harness import (BUILD, SECURED, SERVICES, check, create_database, example, http_get, owner_role, pg_connect,
                     run, token, wait_for)


def test_health_config(ns):
    exe = os.path.join(BUILD, "services", "intake", "lmp-intake")
    for env, want in [({"LMP_HTTP_PORT": "70000"}, "http.port: 70000 is not in 0..65535"),
                      ({"LMP_BATCH_MAX": "lots"}, "batch.max: 'lots' is not an integer"),
                      ({"LMP_LOG_LEVEL": "loud"}, "log.level"),
                      ({"LMP_INTAKE_HOSTING_REGIONS": ""}, "intake.hosting_regions: needs 1..100")]:
        out = subprocess.run([exe], env=ns.env(**env), capture_output=True, text=True, timeout=10)
        check(out.returncode == 2, f"{env}: exit {out.returncode}")
        check(want in out.stderr, f"{env}: stderr {out.stderr!r} lacks {want!r}")
    # The portal's settings: names as code=name, text without control characters,
    # links that are http(s) without spaces (a mail shows them).
    for service, env, want in [
            ("intake", {"LMP_INTAKE_APPLIANCE_NAMES": "NS-100"}, "intake.appliance_names: 'NS-100' is not code=name"),
            ("intake", {"LMP_INTAKE_HOSTING_REGION_NAMES": "ca-central-1=Can\x1bada"},
             "intake.hosting_region_names: 'ca-central-1=Can?ada' is not code=name"),
            ("intake", {"LMP_INTAKE_INCIDENT_RESPONSE": "call\r\nBcc: x"},
             "intake.incident_response: must be UTF-8 text without control characters"),
            ("notifier", {"LMP_NOTIFIER_PORTAL_URL": "javascript:alert(1)"},
             "notifier.portal_url: 'javascript:alert(1)' is not an https:// or http:// address"),
            ("notifier", {"LMP_NOTIFIER_PAGE_URL": "https://a.example/ x"},
             "notifier.page_url: 'https://a.example/ x' is not an https:// or http:// address"),
            ("notifier", {"LMP_NOTIFIER_SEND_BATCH": "0"}, "notifier.send_batch: 0 is not in 1..100"),
            ("notifier", {"LMP_NOTIFIER_SEND_BATCH": "8x"}, "notifier.send_batch: '8x'"),
            ("allocation", {"LMP_KAFKA_COMMIT_INTERVAL_MS": "-1"}, "kafka.commit_interval_ms: -1 is not in 0..60000"),
            ("shipping", {"LMP_KAFKA_COMMIT_INTERVAL_MS": "1s"}, "kafka.commit_interval_ms: '1s'"),
            # Hostile bytes are refused and quoted harmless: a terminal's escape shown as
            # '?', bytes that are not UTF-8 cut off, a flood cut at 40 characters.
            ("shipping", {"LMP_KAFKA_COMMIT_INTERVAL_MS": "10\x1b[2J"},
             "kafka.commit_interval_ms: '10?[2J' is not an integer"),
            ("intake", {"LMP_KAFKA_COMMIT_INTERVAL_MS": "\udcff\udcfe"},
             "kafka.commit_interval_ms: '...' is not an integer"),
            ("notifier", {"LMP_KAFKA_COMMIT_INTERVAL_MS": "9" * 5000},
             "kafka.commit_interval_ms: '" + "9" * 40 + "...' is not an integer")]:
        out = subprocess.run([os.path.join(BUILD, "services", service, f"lmp-{service}"), "--check-config"],
                             env=ns.env(service, **env), capture_output=True, text=True)
        check(out.returncode == 2 and want in out.stderr and "\x1b" not in out.stderr and len(out.stderr) < 1000,
              f"{service} {env}: {out.returncode} {out.stderr[:2000]!r}")
    out = subprocess.run([exe, "-c", "/nonexistent.conf"], env=ns.env(), capture_output=True, text=True)
    check(out.returncode == 2 and "cannot open" in out.stderr, out.stderr)
    out = subprocess.run([exe, "--print-config"], capture_output=True, text=True)
    check(out.returncode == 0 and "# kafka.brokers = 127.0.0.1:19092" in out.stdout, "example config")
    for service in SERVICES:
        printed = subprocess.run([os.path.join(BUILD, "services", service, f"lmp-{service}"), "--print-config"],
                                 capture_output=True, text=True).stdout
        example_file = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "config",
                                    f"{service}.conf.example")
        with open(example_file) as fh:
            check(fh.read() == printed, f"deploy/config/{service}.conf.example is stale: regenerate it "
                                        f"with lmp-{service} --print-config")
    # The example file, uncommented, is a valid configuration.
    conf = os.path.join(BUILD, "Testing", ns.db + ".conf")
    with open(conf, "w") as fh:
        fh.write(re.sub(r"(?m)^# ([a-z_]+\.[a-z_.]+ = )", r"\1", out.stdout))
    out = subprocess.run([exe, "-c", conf, "--check-config"], capture_output=True, text=True)
    check(out.returncode == 0 and "valid" in out.stdout, f"uncommented example: {out.stderr}")
    with open(conf, "a") as fh:
        fh.write("intake.max_appliances = 0\n")
    out = subprocess.run([exe, "-c", conf, "--check-config"], capture_output=True, text=True)
    check(out.returncode == 2 and "intake.max_appliances: 0 is not in 1..1000" in out.stderr, out.stderr)

    # The port file is written under a name nobody can foresee: a link left where a
    # temporary file could be expected (<file>.tmp) is not written through.
    base = os.path.join(BUILD, "Testing", f"{ns.db}-intake-{len(ns.procs)}")
    victim = base + ".victim"
    with open(victim, "w") as fh:
        fh.write("keep me\n")
    if os.path.lexists(base + ".port.tmp"):
        os.unlink(base + ".port.tmp")
    os.symlink(victim, base + ".port.tmp")
    p = ns.start()
    check(open(victim).read() == "keep me\n" and os.path.islink(base + ".port.tmp"),
          "the daemon wrote its port file through a link left beside it")
    check(http_get(p.http + "/healthz")[0] == 200, "healthz")
    code, body = http_get(p.http + "/readyz")
    check(code == 200 and '"ready":true' in body, body)
    ns.publish("onboarding.requested", example("virtual-core.json"))
    ns.publish("onboarding.requested", raw=b"junk")

    def metrics():
        code, text = http_get(p.http + "/metrics")
        vals = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                vals[k] = float(v)
        return vals if vals.get('lmp_consumed_total{service="intake"}', 0) >= 2 and \
            vals.get('lmp_produced_total{service="intake"}', 0) >= 2 and \
            vals.get('lmp_dead_lettered_total{service="intake"}', 0) >= 1 and \
            vals.get('lmp_applied_total{service="intake"}', 0) >= 1 else None
    m = wait_for("metrics to count both messages", metrics)
    check(m['lmp_dead_lettered_total{service="intake"}'] == 1, m)
    check(m['lmp_applied_total{service="intake"}'] == 1, m)
    check(m['lmp_batch_duration_seconds_count{service="intake"}'] >= 1, m)
    check('lmp_consumer_lag{service="intake"}' in m, m)
    code, body = http_get(p.http + "/v1/onboardings/nope", token=token())
    check(code == 404, f"unknown onboarding: {code}")

    # A database that cannot be reached: not ready, and said so in the log.
    q = ns.start(wait_ready=False, LMP_PG_PORT=1, LMP_KAFKA_GROUP_ID="other-" + ns.prefix)
    wait_for("not-ready on a dead database", lambda: http_get(q.http + "/readyz")[0] == 503)
    code, body = http_get(q.http + "/readyz")
    check('"database":"unreachable"' in body, body)
    with open(q.logfile) as fh:
        wait_for("a log line naming the database", lambda: "database" in open(q.logfile).read())

    # A daemon that may not migrate (pg.migrate_on_start false, as where an init step
    # holds the owner's password): unready on a database nobody migrated, saying what
    # to run, and ready once lmp-intake --migrate has run.
    db = ns.db + "_unmigrated"
    with pg_connect("postgres", autocommit=True) as c:
        create_database(c, db, "intake")
    env = {"LMP_PG_DATABASE": db, "LMP_PG_MIGRATE_ON_START": "false", "LMP_KAFKA_GROUP_ID": "unmigrated-" + ns.prefix}
    u = ns.start(wait_ready=False, **env)
    wait_for("a log line asking for --migrate", lambda: "run lmp-intake --migrate" in open(u.logfile).read())
    code, body = http_get(u.http + "/readyz")
    check(code == 503 and '"database":"migrating"' in body, f"unmigrated: {code} {body}")
    out = subprocess.run([exe, "--migrate"], env=ns.env(**env), capture_output=True, text=True, timeout=60)
    by = f" by {owner_role('intake')}" if SECURED else ""
    check(out.returncode == 0 and out.stdout == f"lmp-intake: database {db} is migrated{by}\n",
          f"--migrate: {out.returncode} {out.stdout!r} {out.stderr!r}")
    wait_for("ready once migrated", lambda: http_get(u.http + "/readyz")[0] == 200, timeout=90)
    out = subprocess.run([exe, "--migrate"], env=ns.env(**env, LMP_PG_PORT="1"), capture_output=True, text=True,
                         timeout=60)
    check(out.returncode == 1 and f"lmp-intake: migrating database {db}:" in out.stderr,
          f"--migrate on no database: {out.returncode} {out.stderr!r}")


if __name__ == "__main__":
    sys.exit(run(test_health_config))
