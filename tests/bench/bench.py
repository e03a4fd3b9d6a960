"""The project's performance instrument. In one run on one machine it measures the
limits the flow is held against, then the flow itself, and prints a table of each
figure with its limit, their ratio and the target:

  limits   five Kafka hops with the daemons' client settings and no database
           (bench-relay, tests/bench/relay.c); PostgreSQL running the daemons'
           event transaction with pgbench; the SMTP server's acceptance rate;
  system   onboardings one at a time (latency, end to end and per daemon, from the
           Kafka timestamps of each topic's event); an open loop at fixed offered
           rates; a saturation run (N published at once: throughput per stage, each
           daemon's CPU seconds and peak memory); each daemon's time to ready.

Writes $LMP_BUILD_DIR/bench/results.md and latency.png as well.

    bench.py [--requests N] [--quick] [--traced]   (deploy/bench runs it on a plain build;
                                                    spans are off unless --traced)"""
import argparse
import glob
import json
import math
import os
import platform
import re
import smtplib
import ssl
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from harness import (BUILD, CONFIG, MAILDIR, PG_PORT, ROOT, SECRETS, SECURED, SERVICES, SMTP_PORT,  # noqa: E402
                     Failure, Namespace, check, decode, encode, example, http_get, kafka_conf, onboarding_id,
                     pg_connect, secret, wait_for)

OUT = os.path.join(BUILD, "bench")
# The flow's topics in order: each daemon consumes one and emits the next.
FLOW = ["onboarding.requested", "onboarding.accepted", "onboarding.users-allocated",
        "onboarding.appliances-provisioned", "onboarding.shipping-completed", "onboarding.confirmed"]
STAGE = dict(zip(FLOW[1:], ["accepted", "users allocated", "appliances provisioned", "shipping arranged",
                            "confirmed"]))
# Each onboarding's two mails, each announced once settled, after the confirmation.
MAILS = "onboarding.mail-settled"
HOP = dict(zip(FLOW[1:], SERVICES))
FULL = dict(relay_alone=200, relay_burst=50000, pg_seconds=8, mails=2000, alone=200,
            rates=(10, 25, 50, 100, 200), rate_seconds=15, requests=10000)
QUICK = dict(relay_alone=30, relay_burst=3000, pg_seconds=2, mails=200, alone=20,
             rates=(10, 50), rate_seconds=3, requests=300)
SMTP_CONNECTIONS = 4  # the notifier's senders (NOTIFIER_SENDERS), one connection each


def say(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def pct(xs, p):
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def spread(xs):
    return {p: pct(xs, p) for p in (50, 90, 99, 100)}


# ---- limits ---------------------------------------------------------------------------

def relay(alone, burst):
    """Five hops of consume and produce, no database: latency one message at a time
    (ms, Kafka timestamps first topic to last) and messages/s through all five."""
    exe = os.path.join(BUILD, "tests", "bench", "bench-relay")
    check(os.access(exe, os.X_OK), f"{exe} is not built")
    prefix = f"bench.relay.{uuid.uuid4().hex[:6]}."
    admin = AdminClient(kafka_conf())
    parts = int(os.environ.get("LMP_TOPIC_PARTITIONS", "6"))
    for f in admin.create_topics([NewTopic(f"{prefix}{i}", parts) for i in range(6)]).values():
        f.result()
    # The relay takes the operator's Kafka settings, not lmpctl's own (the daemons'
    # addresses and their CA), which it does not know.
    os.makedirs(OUT, exist_ok=True)
    conf = os.path.join(OUT, "relay.conf")
    with open(os.path.join(CONFIG, "lmpctl.conf")) as fh, open(conf, "w") as out_fh:
        out_fh.writelines(line for line in fh if not re.match(r"\s*(ctl\.ca_file|[a-z-]+\.(admin_)?url)\s*=", line))
    out = subprocess.run([exe, prefix, str(alone), str(burst)], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, LMP_CONFIG=conf))
    admin.delete_topics([f"{prefix}{i}" for i in range(6)])
    check(out.returncode == 0, f"bench-relay: {out.stderr[-2000:]}")
    lat = [int(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("latency_ms ")]
    n, ms = next(map(int, line.split()[1:]) for line in out.stdout.splitlines() if line.startswith("burst "))
    return spread(lat), n / (max(ms, 1) / 1000)


def pg_script(batch, request):
    """One batch of events as a daemon's transaction has it (common/src/runtime/txn.c and
    outbox.c): the previous batch's acknowledged outbox rows deleted, every event in
    the inbox in one statement, one domain row per event (intake's onboardings row),
    every emitted event (400 bytes, sent as data) in the outbox in one statement, commit."""
    req = json.dumps(request).replace("'", "''")
    values = ",\n  ".join(f"({k}, decode('{os.urandom(400).hex()}', 'hex'))" for k in range(1, batch + 1))
    return "\n".join([
        "\\set prev :cur", "\\set cur random(1, 9000000000000000000)", "BEGIN;",
        "DELETE FROM lmp_outbox WHERE event_id = ANY(ARRAY(SELECT :prev::text || '-' || k "
        f"FROM generate_series(1, {batch}) k));",
        "INSERT INTO lmp_inbox(event_id, topic, partition, \"offset\") SELECT 'in-' || :cur::text || '-' || k, "
        f"'bench.requested', k % 6, k FROM generate_series(1, {batch}) k ON CONFLICT DO NOTHING RETURNING event_id;",
        *("INSERT INTO onboardings(onboarding_id, partner_id, license, account_name, status, request, status_rank) "
          f"VALUES (:cur::text || '-{k}', 'partner-northwind', 'MDR_CORE', 'Account ' || :cur::text || '-{k}', "
          f"'accepted', '{req}', 0);" for k in range(1, batch + 1)),
        "INSERT INTO lmp_outbox(event_id, topic, key, value, header_names, header_values) "
        "SELECT id, 'bench.accepted', convert_to(id, 'UTF8'), v, '{correlation_id,event_id,event_type,traceparent}', "
        "ARRAY[convert_to(id, 'UTF8'), convert_to(id, 'UTF8'), convert_to('onboarding.accepted', 'UTF8'), "
        "convert_to('00-4abf804833774c3a8d4544658f54ac1f-0d3b6491c5e749c7-01', 'UTF8')] "
        f"FROM (SELECT :cur::text || '-' || k AS id, v FROM (VALUES\n  {values}) AS e(k, v)) AS rows;",
        "COMMIT;", ""])


def pgbench(seconds):
    """Events/s of the daemons' transaction on the stack's PostgreSQL, by events per
    commit and connections: {(batch, connections): events/s}."""
    exe = max(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), key=lambda p: int(p.split("/")[4]), default=None)
    check(exe is not None, "pgbench not found (Debian's postgresql package, deploy/setup)")
    db = f"bench_pg_{uuid.uuid4().hex[:6]}"
    with pg_connect("postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{db}"')
    # The runtime's and intake's own migrations: the same tables and indexes.
    with pg_connect(db, autocommit=True) as c:
        for f in sorted(glob.glob(os.path.join(ROOT, "common", "sql", "*.sql"))) + \
                sorted(glob.glob(os.path.join(ROOT, "services", "intake", "migrations", "*.sql"))):
            with open(f) as fh:
                c.execute(fh.read())
    env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(PG_PORT), PGUSER="lmp", PGSSLMODE="disable")
    if SECURED:
        env.update(PGPASSWORD=secret("pg-lmp.password"), PGSSLMODE="verify-full",
                   PGSSLROOTCERT=os.path.join(SECRETS, "ca.crt"))
    rates = {}
    for batch in (100, 1):
        script = os.path.join(OUT, f"pgbench-batch{batch}.sql")
        with open(script, "w") as fh:
            fh.write(pg_script(batch, example("virtual-core.json")))
        for conns in (1, 5):
            out = subprocess.run([exe, "-n", "-M", "extended", "-c", str(conns), "-j", str(conns), "-T", str(seconds),
                                  "-D", "cur=0", "-f", script, db], env=env, capture_output=True, text=True,
                                 timeout=seconds + 120)
            m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
            check(out.returncode == 0 and m, f"pgbench: {out.stderr[-2000:]}")
            rates[(batch, conns)] = float(m.group(1)) * batch
    with pg_connect("postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE "{db}"')
    return rates


def smtp_rate(n):
    """Mails/s the stack's SMTP server accepts from the notifier's number of connections."""
    body = ("Your onboarding is confirmed. " * 17).encode()
    errors = []

    def send(count):
        try:
            with smtplib.SMTP("127.0.0.1", SMTP_PORT, timeout=30) as s:
                # As the notifier speaks to the secured stack's server: STARTTLS with
                # the stack's CA, then AUTH as its user.
                if SECURED:
                    s.starttls(context=ssl.create_default_context(cafile=os.path.join(SECRETS, "ca.crt")))
                    s.login("lmp-notifier", secret("smtp-lmp-notifier.password"))
                for _ in range(count):
                    mail = (f"From: noreply@lmp.example.com\r\nTo: admin@bench.example.com\r\n"
                            f"Subject: Onboarding confirmed\r\nMessage-ID: <{uuid.uuid4()}@bench>\r\n\r\n").encode()
                    s.sendmail("noreply@lmp.example.com", ["admin@bench.example.com"], mail + body)
        except (OSError, smtplib.SMTPException) as e:
            errors.append(e)
    threads = [threading.Thread(target=send, args=(n // SMTP_CONNECTIONS,)) for _ in range(SMTP_CONNECTIONS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, f"SMTP: {errors[:1]}")
    return SMTP_CONNECTIONS * (n // SMTP_CONNECTIONS) / (time.monotonic() - t0)


# ---- the system ----------------------------------------------------------------------

def mixed(i):
    """The saturation mix: one in four physical (three appliances at two addresses)."""
    return example("physical-complete.json" if i % 4 == 0 else "virtual-core.json")


def stock(ns, n):
    """Pools and appliances for n onboardings of the mix, whatever else they drew."""
    ns.admin_post("allocation", "/v1/admin/load", {"pools": [
        {"partner_id": "partner-northwind", "product": p, "total": 100_000_000}
        for p in ("MDR_CORE", "MDR_COMPLETE", "MDR_CLOUD", "BEAUCERON_SAT")]})
    ns.admin_post("appliance-fulfilment", "/v1/admin/load", {"inventory": [
        {"sku": "NS-100", "serial_prefix": f"B100-{uuid.uuid4().hex[:6]}-", "count": 3 * n + 10},
        {"sku": "NS-500", "serial_prefix": f"B500-{uuid.uuid4().hex[:6]}-", "count": n + 10}]})


def send(ns, rid, value):
    """A request as a frontend publishes it; waits while the client's queue is full."""
    headers = [("event_id", str(uuid.uuid4())), ("event_type", "onboarding.requested"), ("correlation_id", rid),
               ("traceparent", f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01")]
    while True:
        try:
            ns.producer.produce(ns.topic("onboarding.requested"), value=value, key=rid, headers=headers)
            ns.producer.poll(0)
            return
        except BufferError:
            ns.producer.poll(0.05)


def encoded(records):
    """(request id, onboarding id, value) of each request: a frontend keys the request by
    its request id; every later event is keyed by the onboarding id intake gives it."""
    return [(r["request_id"], onboarding_id(r), encode("onboarding.requested", r)) for r in records]


class Confirmed:
    """Reads onboarding.confirmed from its end as it is now: which onboardings are done."""

    def __init__(self, ns):
        name = ns.topic("onboarding.confirmed")
        self.c = Consumer(kafka_conf(**{"group.id": f"bench-{uuid.uuid4()}", "enable.auto.commit": False,
                                        "log_level": 2}))
        parts = self.c.list_topics(name, timeout=30).topics[name].partitions
        self.c.assign([TopicPartition(name, p, self.c.get_watermark_offsets(TopicPartition(name, p), timeout=30)[1])
                       for p in parts])
        self.seen = set()

    def wait(self, ids, timeout):
        missing = set(ids) - self.seen
        deadline = time.monotonic() + timeout
        while missing:
            check(time.monotonic() < deadline,
                  f"{len(missing)} of {len(ids)} onboardings not confirmed in {timeout:.0f} s")
            m = self.c.poll(0.05)
            if m is not None and not m.error():
                self.seen.add(m.key().decode())
                missing.discard(m.key().decode())

    def close(self):
        self.c.close()


def stamps(ns, requests):
    """{onboarding id: {topic: Kafka timestamp in ms}} for every topic of the flow; the
    requests (keyed by request id) are found by requests, {request id: onboarding id}."""
    out = {}
    for topic in FLOW:
        for m in ns.consume_all(topic, timeout=300):
            key = m.key().decode()
            if topic == FLOW[0]:
                key = requests.get(key, key)
            out.setdefault(key, {}).setdefault(topic, m.timestamp()[1])
    # The later of an onboarding's two mails, once both are announced (a copy sent
    # again after a crash is the same mail).
    seen = {}
    for m in ns.consume_all(MAILS, timeout=300):
        kind = decode(m.value())[1]["kind"]
        seen.setdefault(m.key().decode(), {}).setdefault(kind, m.timestamp()[1])
    for key, at in seen.items():
        if len(at) == 2:
            out.setdefault(key, {})[MAILS] = max(at.values())
    return out


def e2e(ts, ids):
    return [ts[i][FLOW[-1]] - ts[i][FLOW[0]] for i in ids]


def latency_runs(sz):
    """One onboarding at a time, then the open loop; daemons of one namespace."""
    ns, finished = Namespace("benchlat"), False
    try:
        ns.start_all(**DAEMON_ENV)
        stock(ns, sum(r * sz["rate_seconds"] for r in sz["rates"]))
        confirmed = Confirmed(ns)
        alone, requests = [], {}
        say(f"{sz['alone']} onboardings one at a time (virtual-core), after 5 not counted")
        for i in range(sz["alone"] + 5):
            r = example("virtual-core.json")
            requests[r["request_id"]] = onboarding_id(r)
            ns.publish("onboarding.requested", r)
            confirmed.wait([onboarding_id(r)], 30)
            if i >= 5:
                alone.append(onboarding_id(r))
        # What the machine spends with the stack and the daemons up and nothing to do:
        # the floor under every open-loop rate's CPU.
        time.sleep(2)
        idle0 = machine_cpu()
        time.sleep(sz["rate_seconds"] / 3)
        idle1 = machine_cpu()
        idle = (idle1[0] - idle0[0]) / max(0.001, idle1[1] - idle0[1])
        names = {ns.dbname(s): s for s in SERVICES}
        rates = {}
        for rate in sz["rates"]:
            n = int(rate * sz["rate_seconds"])
            msgs = encoded(mixed(i) for i in range(n))
            say(f"open loop: {n} onboardings at {rate}/s")
            busy0, parts0 = machine_cpu(), parts_cpu(ns)
            with pg_connect("postgres", autocommit=True) as c:
                x0 = sum(pg_counts(c, names).values())
            t0 = time.monotonic()
            for i, (rid, oid, value) in enumerate(msgs):
                requests[rid] = oid
                time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
                send(ns, rid, value)
            ns.producer.flush(60)
            offered = n / (time.monotonic() - t0)
            confirmed.wait([oid for _, oid, _ in msgs], 120 + n / 10)
            busy1, parts1 = machine_cpu(), parts_cpu(ns)
            with pg_connect("postgres", autocommit=True) as c:
                x1 = sum(pg_counts(c, names).values())
            busy = (busy1[0] - busy0[0]) / max(0.001, busy1[1] - busy0[1])
            # Per onboarding: the machine's CPU, each part's, and the transactions.
            cost = {k: 1000 * (parts1[k] - parts0[k]) / n for k in parts1}
            cost["machine"] = 1000 * (busy1[0] - busy0[0]) / n
            cost["transactions"] = (x1 - x0) / n
            rates[rate] = ([oid for _, oid, _ in msgs], offered, busy, cost)
        confirmed.close()
        ts = stamps(ns, requests)
        hops = {t: spread([ts[i][t] - ts[i][p] for i in alone]) for p, t in zip(FLOW, FLOW[1:])}
        finished = True
        return spread(e2e(ts, alone)), hops, {r: (spread(e2e(ts, ids)), offered, busy, cost)
                                              for r, (ids, offered, busy, cost) in rates.items()}, idle
    finally:
        for problem in ns.close():
            say(f"warning: {problem}")
        drop(ns, finished)


def drop(ns, finished):
    """A finished run's databases and topics deleted; a failed run's stay to be read."""
    if not finished:
        return
    try:
        ns.drop()
    except Exception as e:  # the figures are measured: a leftover is only a warning
        say(f"warning: {ns.prefix} not deleted: {e}")


def start_timed(ns, service):
    """ms from starting the daemon (fresh database: migrations included) to its first
    200 on /readyz, watched every 2 ms beside the harness's own start."""
    port_file = os.path.join(BUILD, "Testing", f"{ns.db}-{service}-{len(ns.procs)}.port")
    t0 = time.monotonic()
    got = {}

    def watch():
        while time.monotonic() - t0 < 60:
            try:
                with open(port_file) as fh:
                    url = f"{'https' if SECURED else 'http'}://127.0.0.1:{json.load(fh)['http']}/readyz"
                break
            except (OSError, ValueError):
                time.sleep(0.001)
        while time.monotonic() - t0 < 60:
            if http_get(url)[0] == 200:
                got["ms"] = (time.monotonic() - t0) * 1000
                return
            time.sleep(0.002)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    ns.start(service, wait_ready=False, **DAEMON_ENV)
    watcher.join(60)
    check("ms" in got, f"{service} not ready in 60 s")
    return got["ms"]


def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def peak_mib(pid):
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmHWM:"))


def uss_mib(pid):
    """A process's private memory now (USS: pages no other process maps, so not the
    shared libraries' text), from /proc/<pid>/smaps_rollup."""
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        return sum(int(line.split()[1]) for line in fh if line.startswith(("Private_Clean:", "Private_Dirty:"))) / 1024


def machine_cpu():
    """Busy and total CPU seconds of the whole machine, from /proc/stat."""
    with open("/proc/stat") as fh:
        f = [int(x) for x in fh.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(f) - f[3] - f[4]) / hz, sum(f) / hz  # idle and iowait are not busy


STACK_PARTS = (("PostgreSQL", "postgres"), ("Kafka broker", "kafka.Kafka"), ("SMTP server", "deploy/smtp/server.py"),
               ("Jaeger", "jaeger.yaml"))
# The daemons' settings beyond the stack's: spans off, unless --traced (then every
# daemon exports every span to the stack's Jaeger, whose CPU counts as the stack's).
DAEMON_ENV = {"LMP_TRACING_ENDPOINT": ""}


def stack_cpu():
    """CPU seconds so far of the stack's servers, by part (PostgreSQL: every backend)."""
    got = dict.fromkeys((name for name, _ in STACK_PARTS), 0.0)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
            part = next((name for name, mark in STACK_PARTS if mark in cmd), None)
            if part:
                got[part] += cpu_s(pid)
        except OSError:
            continue  # ended meanwhile
    return got


def parts_cpu(ns):
    """CPU seconds so far of the daemons (all five together) and of each server of the stack."""
    got = stack_cpu()
    got["daemons"] = sum(cpu_s(p.pid) for p in ns.procs if p.poll() is None)
    return got


def pg_counts(c, names):
    """Transactions so far of each daemon's database (pg_stat_database)."""
    rows = c.execute("SELECT datname, xact_commit + xact_rollback FROM pg_stat_database WHERE datname = ANY(%s)",
                     (list(names),)).fetchall()
    return {names[d]: x for d, x in rows}


def pg_work_begin(ns):
    """pg_stat_statements emptied, and each daemon's transactions counted so far."""
    names = {ns.dbname(s): s for s in SERVICES}
    with pg_connect("postgres", autocommit=True) as c:
        c.execute("SELECT pg_stat_statements_reset()")
        return pg_counts(c, names)


def pg_work(ns, before, n):
    """Each daemon's PostgreSQL work per onboarding since pg_work_begin: transactions,
    statements and the time they executed, and the statements that took the most. Only
    the daemons' roles' statements (secured: each daemon has its own); the benchmark's
    own few queries are in the transaction counts."""
    names = {ns.dbname(s): s for s in SERVICES}
    time.sleep(1.5)  # the servers' statistics are flushed within a second
    with pg_connect("postgres", autocommit=True) as c:
        after = pg_counts(c, names)
        rows = c.execute("SELECT d.datname, s.query, s.calls, s.total_exec_time + s.total_plan_time "
                         "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                         "JOIN pg_roles r ON r.oid = s.userid "
                         "WHERE d.datname = ANY(%s) AND (r.rolname <> 'lmp' OR NOT %s)",
                         (list(names), SECURED)).fetchall()
    per = {s: {"xacts": (after.get(s, 0) - before.get(s, 0)) / n, "stmts": 0.0, "ms": 0.0} for s in SERVICES}
    top = []
    for db, query, calls, ms in rows:
        svc = names[db]
        per[svc]["stmts"] += calls / n
        per[svc]["ms"] += ms / n
        top.append((ms / n, calls / n, svc, " ".join(query.split())))
    top.sort(reverse=True)
    return per, top[:12]


def mails():
    return len(os.listdir(MAILDIR)) if os.path.isdir(MAILDIR) else 0


def saturation(n):
    """n onboardings of the mix published at once, on fresh daemons (timed to ready)."""
    ns, finished = Namespace("benchsat"), False
    try:
        ready = {s: start_timed(ns, s) for s in SERVICES}
        ns.load_reference_data()
        stock(ns, n)
        msgs = encoded(mixed(i) for i in range(n))
        confirmed = Confirmed(ns)
        cpu0, mails0 = {p.service: cpu_s(p.pid) for p in ns.procs}, mails()
        pg0 = pg_work_begin(ns)
        machine0, stack0 = machine_cpu(), stack_cpu()
        say(f"saturation: {n} onboardings at once")
        t0 = time.monotonic()
        for rid, _, value in msgs:
            send(ns, rid, value)
        ns.producer.flush(60)
        published = time.monotonic() - t0
        confirmed.wait([oid for _, oid, _ in msgs], 1800)
        confirmed.close()
        cpu = {p.service: cpu_s(p.pid) - cpu0[p.service] for p in ns.procs}
        machine1, stack1 = machine_cpu(), stack_cpu()
        busy = (machine1[0] - machine0[0], machine1[1] - machine0[1])
        servers = {k: stack1[k] - stack0[k] for k in stack1}
        rss = {p.service: peak_mib(p.pid) for p in ns.procs}
        # Confirmed first; the mails follow at the SMTP server's pace.
        deadline = time.monotonic() + 600
        while mails() - mails0 < 2 * n and time.monotonic() < deadline:
            time.sleep(0.2)
        got_mails = mails() - mails0
        busy_uss = {p.service: uss_mib(p.pid) for p in ns.procs}
        # Every settled mail announced, and on the broker.
        wait_for("the mails' fates announced", lambda: ns.sql(
            "SELECT count(*) FROM mails WHERE announced_at IS NULL AND status <> 'pending' "
            "AND kind IN ('confirmation', 'invitation')", service="notifier")[0][0] == 0, timeout=120)
        ns.wait_published(["notifier"])
        # The private memory the daemons keep for good: once intake has recorded every
        # mail's fate (until then it and the notifier are still at work) and each has
        # had the two quiet seconds after which it gives freed memory back (checked
        # once a second).
        announced = ns.sql("SELECT count(*) FROM mails WHERE announced_at IS NOT NULL "
                           "AND kind IN ('confirmation', 'invitation')", service="notifier")[0][0]
        wait_for("intake's record of the mails' fates", lambda: ns.sql(
            "SELECT count(*) FROM mail_fates", service="intake")[0][0] >= announced, timeout=120)
        time.sleep(4)
        uss = {p.service: uss_mib(p.pid) for p in ns.procs}
        pg_per, pg_top = pg_work(ns, pg0, n)
        ts = stamps(ns, {rid: oid for rid, oid, _ in msgs})
        first = min(ts[oid][FLOW[0]] for _, oid, _ in msgs)
        stages = {}
        for prev, topic in zip(FLOW, FLOW[1:]):
            at = [ts[oid][topic] for _, oid, _ in msgs if topic in ts[oid]]
            check(len(at) == n, f"{topic}: {len(at)} of {n} onboardings")
            # The stage's own pace (its first event to its last), when it was done, and
            # how long an onboarding waited for it (p99 after the stage before).
            waited = pct([ts[oid][topic] - ts[oid][prev] for _, oid, _ in msgs], 99)
            stages[topic] = (n / max(0.001, (max(at) - min(at)) / 1000), (max(at) - first) / 1000, waited)
        at = [ts[oid][MAILS] for _, oid, _ in msgs if MAILS in ts[oid]]
        after = [ts[oid][MAILS] - ts[oid][FLOW[-1]] for _, oid, _ in msgs if MAILS in ts[oid]]
        mail_pace = (len(at) / max(0.001, (max(at) - min(at)) / 1000) if at else 0.0,
                     (max(at) - first) / 1000 if at else 0.0, pct(after, 99) if after else 0, len(at))
        finished = True
        return dict(mail_pace=mail_pace, ready=ready, published=published, stages=stages, cpu=cpu, rss=rss,
                    mails=got_mails, busy=busy, servers=servers, pg=pg_per, pg_top=pg_top, uss=uss,
                    busy_uss=busy_uss)
    finally:
        for problem in ns.close():
            say(f"warning: {problem}")
        drop(ns, finished)


# ---- the report -------------------------------------------------------------------------

def machine():
    with open("/proc/cpuinfo") as fh:
        model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "?")
    with open("/proc/meminfo") as fh:
        ram = int(fh.readline().split()[1]) / 1024 / 1024
    commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip() or "?"
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return (f"nproc {nproc}, {model}, {ram:.1f} GiB RAM, Linux {platform.release()}; commit {commit}; "
            f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}")


def table(lim, alone, hops, loop, idle, sat, n):
    """Markdown: each figure, its limit, value / limit, the target and whether it is met."""
    rows = []

    def row(figure, value, limit="", ratio=None, target="", met=None):
        rows.append((figure, value, limit, "" if ratio is None else f"{ratio:.2f}", target,
                     "" if met is None else "yes" if met else "**no**"))

    def ms(s):
        return " / ".join(str(s[p]) for p in (50, 90, 99, 100)) + " ms"
    rl, relay_rate = lim["relay"]
    row("limit: Kafka relay, 5 hops, one message at a time, p50 / p90 / p99 / max", ms(rl))
    row("limit: Kafka relay, 5 hops, at saturation", f"{relay_rate:,.0f} messages/s")
    for (batch, conns), v in lim["pg"].items():
        row(f"limit: PostgreSQL, the daemons' transaction, {batch} event{'s' * (batch > 1)} per commit, "
            f"{conns} connection{'s' * (conns > 1)}",
            f"{v:,.0f} events/s")
    row(f"limit: SMTP server, {SMTP_CONNECTIONS} connections", f"{lim['smtp']:,.0f} mails/s")
    for p, target in ((50, 20), (99, 100)):
        row(f"one at a time: end to end p{p}", f"{alone[p]} ms", f"{rl[p]} ms (relay p{p})", alone[p] / rl[p],
            f"<= {target} ms", alone[p] <= target)
    row("one at a time: end to end p50 / p90 / p99 / max", ms(alone), ms(rl) + " (relay)", alone[50] / rl[50])
    hop = rl[50] / 5
    for topic, s in hops.items():
        row(f"one at a time: {HOP[topic]} (to {topic.split('.')[1]}) p50 / p90 / p99 / max", ms(s),
            f"{hop:.1f} ms (relay p50 / 5)", s[50] / hop)
    row("idle: the machine's CPU with the stack and the daemons up, nothing to do", f"{100 * idle:.0f}% busy")
    for rate, (s, offered, busy, cost) in loop.items():
        row(f"open loop at {rate}/s (offered {offered:.1f}/s; the machine {100 * busy:.0f}% busy until all "
            f"confirmed): end to end p50 / p90 / p99 / max", ms(s))
        if rate == 100:
            row(f"open loop at {rate}/s: end to end p99", f"{s[99]} ms", target="<= 100 ms", met=s[99] <= 100)
        parts = ", ".join(f"{k} {v:.1f}" for k, v in cost.items()
                          if k not in ("machine", "transactions") and v > 0)
        row(f"open loop at {rate}/s: CPU per onboarding until all confirmed (the machine's; by part)",
            f"{cost['machine']:.1f} ms ({parts} ms); {cost['transactions']:.1f} transactions")
    row(f"saturation: {n:,} onboardings published by the client in", f"{sat['published']:.2f} s")
    pg, smtp = lim["pg"][(100, 1)], lim["smtp"] / 2
    for topic, (rate, done, waited) in sat["stages"].items():
        name = (f"saturation: {STAGE[topic]} (all {done:.1f} s after the first request; "
                f"p99 {waited:,} ms after the stage before)")
        row(name, f"{rate:,.0f}/s", f"{pg:,.0f}/s (PostgreSQL, 100 per commit, 1 connection)", rate / pg,
            ">= 1,000/s", rate >= 1000)
    rate, done, after, settled = sat["mail_pace"]
    row(f"saturation: both mails settled (all {done:.1f} s after the first request; p99 {after:,} ms after "
        f"its confirmation; {settled:,} of {n:,} onboardings)", f"{rate:,.0f}/s", f"{smtp:,.0f}/s (SMTP mails/s / 2)",
        rate / smtp, ">= 0.80 of the limit", rate >= 0.8 * smtp)
    row("saturation: mails received", f"{sat['mails']:,} of {2 * n:,}", met=sat["mails"] >= 2 * n)
    for s in SERVICES:
        row(f"saturation: {s} CPU", f"{sat['cpu'][s]:.1f} s ({1000 * sat['cpu'][s] / n:.2f} ms per onboarding)")
    busy, total = sat["busy"]
    row("saturation: the machine's CPU busy until all confirmed",
        f"{busy:.0f} of {total:.0f} core-seconds ({100 * busy / max(total, 0.001):.0f}%), "
        f"{1000 * busy / n:.1f} ms per onboarding")
    for part, secs in sat["servers"].items():
        row(f"saturation: {part} CPU", f"{secs:.1f} s ({1000 * secs / n:.2f} ms per onboarding)")
    for s in SERVICES:
        w = sat["pg"][s]
        row(f"saturation: PostgreSQL work of {s}, per onboarding (pg_stat_statements, until every mail "
            f"is announced)", f"{w['xacts']:.1f} transactions, {w['stmts']:.1f} statements, "
            f"{w['ms']:.3f} ms executing")
    total = {k: sum(sat["pg"][s][k] for s in SERVICES) for k in ("xacts", "stmts", "ms")}
    row("saturation: PostgreSQL work of all daemons, per onboarding",
        f"{total['xacts']:.1f} transactions, {total['stmts']:.1f} statements, {total['ms']:.3f} ms executing")
    for s in SERVICES:
        row(f"saturation: {s} peak memory (VmHWM)", f"{sat['rss'][s]:.1f} MiB", target="<= 20 MiB",
            met=sat["rss"][s] <= 20)
    for s in SERVICES:
        row(f"saturation: {s} private memory (USS) as the last mail arrives (intake and the notifier still "
            f"recording the mails' fates)", f"{sat['busy_uss'][s]:.1f} MiB")
    for s in SERVICES:
        row(f"saturation: {s} private memory (USS) after {n:,} onboardings and their mails, once idle",
            f"{sat['uss'][s]:.1f} MiB", target="<= 12 MiB", met=sat["uss"][s] <= 12)
    for s in SERVICES:
        row(f"{s} ready after start (fresh database)", f"{sat['ready'][s]:.0f} ms", target="< 200 ms",
            met=sat["ready"][s] < 200)
    return "\n".join(["| figure | value | limit | ratio | target | met |", "|---|---|---|---|---|---|",
                      *("| " + " | ".join(r) + " |" for r in rows)])


RATES = (100, 1_000, 10_000)
BUSY = 0.7  # a daemon instance planned at 70% of its core: headroom for bursts and rebalances


def cores_text(c):
    return f"{c:,.2f}" if c < 10 else f"{c:,.1f}"


def capacity(sat, n):
    """Markdown: the capacity model this run's costs give. Each component's CPU per
    onboarding at saturation times the rate is the cores it needs; a daemon instance
    runs its consumer on one core, so it needs cores / BUSY instances, and each topic
    it consumes at least that many partitions (a group gives a partition to one member)."""
    parts = [(s, 1000 * sat["cpu"][s] / n, True) for s in SERVICES]
    parts += [(part, 1000 * secs / n, False) for part, secs in sat["servers"].items() if secs > 0]
    head = " | ".join(f"cores at {r:,}/s" for r in RATES)
    lines = [f"Capacity model from this run's CPU per onboarding at saturation (each component's cores at a "
             f"rate = rate x its ms per onboarding / 1000; daemon instances at {BUSY:.0%} of a core each, and at "
             f"least that many partitions on each topic the daemon consumes):", "",
             f"| component | ms per onboarding | {head} | instances at {RATES[-1]:,}/s |",
             "|---|---|" + "---|" * len(RATES) + "---|"]
    total = 0.0
    for name, ms, daemon in sorted(parts, key=lambda p: -p[1]):
        total += ms
        cores = [r * ms / 1000 for r in RATES]
        inst = math.ceil(cores[-1] / BUSY) if daemon else ""
        lines.append(f"| {name} | {ms:.2f} | " + " | ".join(map(cores_text, cores)) + f" | {inst} |")
    lines.append(f"| all of the above | {total:.2f} | " + " | ".join(cores_text(r * total / 1000) for r in RATES) +
                 " |  |")
    return "\n".join(lines)


def top_statements(top):
    """Markdown: the statements that took PostgreSQL the most time, per onboarding."""
    lines = ["Statements by PostgreSQL time at saturation, per onboarding (execution and planning):", "",
             "| daemon | ms | calls | statement |", "|---|---|---|---|"]
    for ms, calls, svc, query in top:
        q = query if len(query) <= 110 else query[:107] + "..."
        lines.append(f"| {svc} | {ms:.3f} | {calls:.2f} | `{q.replace('|', '¦')}` |")
    return "\n".join(lines)


def plot(loop, relay_p50, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
    fig, ax = plt.subplots(figsize=(7, 4.5))
    rates = sorted(loop)
    for p in (50, 90, 99):
        ax.plot(rates, [max(1, loop[r][0][p]) for r in rates], marker="o", label=f"p{p}")
    ax.axhline(20, color="grey", linestyle="--", linewidth=0.8, label="target p50 (one at a time)")
    ax.axhline(100, color="grey", linestyle=":", linewidth=0.8, label="target p99 (one at a time)")
    ax.axhline(max(1, relay_p50), color="black", linewidth=0.8, label="Kafka relay p50, 5 hops")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())
    ax.set_xticks(rates)
    ax.set_xlabel("offered load, open loop (onboardings/s)")
    ax.set_ylabel("end to end latency (ms)")
    ax.set_title("Requested to confirmed, from the Kafka timestamps")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, help="onboardings of the saturation run (default 10000, 300 quick)")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--traced", action="store_true", help="every span exported to the stack's Jaeger")
    args = ap.parse_args()
    if args.traced:
        DAEMON_ENV.clear()
    sz = dict(QUICK if args.quick else FULL)
    n = args.requests or sz["requests"]
    os.makedirs(OUT, exist_ok=True)
    started = time.monotonic()
    try:
        say("warming the broker up (a relay run not counted), then limits: Kafka relay")
        relay(sz["relay_alone"] // 4, sz["relay_burst"] // 2)
        lim = {"relay": relay(sz["relay_alone"], sz["relay_burst"])}
        say("limits: PostgreSQL (pgbench)")
        lim["pg"] = pgbench(sz["pg_seconds"])
        say("limits: SMTP")
        lim["smtp"] = smtp_rate(sz["mails"])
        alone, hops, loop, idle = latency_runs(sz)
        sat = saturation(n)
    except Failure as e:
        print(f"FAIL bench: {e}")
        return 1
    took = time.monotonic() - started
    text = table(lim, alone, hops, loop, idle, sat, n) + "\n\n" + top_statements(sat["pg_top"]) + "\n\n" + \
        capacity(sat, n)
    print(text)
    command = "deploy/bench" + "".join(f" {a}" for a in sys.argv[1:])
    with open(os.path.join(OUT, "results.md"), "w") as fh:
        fh.write(f"# deploy/bench\n\n`{command}`, {took / 60:.1f} min of measuring.\n\n"
                 f"Machine: {machine()}.\n\nratio = value / limit. Latencies from the Kafka timestamps of each "
                 f"topic's event; the relay's the same way.\n\n{text}\n\n![latency](latency.png)\n")
    plot(loop, lim["relay"][0][50], os.path.join(OUT, "latency.png"))
    say(f"measured in {took:.0f} s; wrote {OUT}/results.md and latency.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
