"""A real Prometheus scraping real daemons, with the shipped alert rules
(deploy/prometheus/alerts.yml) loaded: every metric the rules and the Grafana
dashboard read is served and moves with the flow; every rule evaluates without
error; poison makes LmpDeadLetters fire for the daemon that dead-lettered it and
no other; a daemon stopped with SIGTERM makes LmpTargetDown fire, a daemon whose
database is away LmpDaemonNotReady and LmpBatchesFailing; and every query of
deploy/grafana/lmp-onboarding.json is accepted by Prometheus and answers.

The `for:` durations of the shipped rules are minutes, which no test should wait
for: Prometheus loads a test-only copy in which every `for:` is 3s and nothing else
differs (the test checks that line by line), so the expressions, labels and
annotations are the shipped ones. promtool's unit tests (deploy/prometheus/check)
hold the real durations."""
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.parse

from harness import BUILD, ROOT, SECRETS, SERVICES, Failure, check, example, http_get, log, run, wait_for

PROMETHEUS = os.environ.get("LMP_PROMETHEUS", "/usr/bin/prometheus")
RULES = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "lmp-onboarding.json")
SHORT_FOR = "3s"
ONBOARDINGS = 4


def shortened_rules(path):
    """The shipped rules with every `for:` made SHORT_FOR, and proof that nothing else changed."""
    with open(RULES) as fh:
        shipped = fh.read()
    short, n = re.subn(r"(?m)^([ \t]+for:[ \t]*)\S+[ \t]*$", r"\g<1>" + SHORT_FOR, shipped)
    check(n >= 5, f"only {n} for: lines found in {RULES}")
    a, b = shipped.splitlines(), short.splitlines()
    check(len(a) == len(b), "the copy has other lines")
    for x, y in zip(a, b):
        check(x == y or (re.match(r"[ \t]+for:", x) and y.split("for:")[0] == x.split("for:")[0]),
              f"the copy differs beyond for: {x!r} -> {y!r}")
    with open(path, "w") as fh:
        fh.write(short)
    return shipped


def _die_with_parent():
    """Prometheus gets SIGTERM if this test dies, even by SIGKILL (CTest's timeout):
    nothing it started outlives it."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def scrape(job, url):
    """A job scraping the daemon at url: over HTTPS verified by the stack's CA when it
    serves TLS (the secured stack)."""
    host = url.split("//", 1)[1]
    if not url.startswith("https://"):
        return {"job_name": job, "static_configs": [{"targets": [host]}]}
    return {"job_name": job, "scheme": "https", "tls_config": {"ca_file": os.path.join(SECRETS, "ca.crt")},
            "static_configs": [{"targets": [host]}]}


class Prometheus:
    def __init__(self, base, config):
        self.dir = base
        shutil.rmtree(base, ignore_errors=True)
        os.makedirs(base)
        conf = os.path.join(base, "prometheus.yml")
        with open(conf, "w") as fh:
            json.dump(config, fh, indent=1)  # YAML is a superset of JSON
        self.logfile = base + ".log"
        logf = open(self.logfile, "w")
        # Port 0: Prometheus binds a free port itself and logs which, so no port is
        # picked here and raced for by a parallel test.
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={conf}", f"--storage.tsdb.path={os.path.join(base, 'data')}",
             "--web.listen-address=127.0.0.1:0", "--storage.tsdb.retention.time=1h"],
            stdout=logf, stderr=logf, preexec_fn=_die_with_parent)
        logf.close()

        def listening():
            check(self.proc.poll() is None, f"prometheus exited with {self.proc.returncode}, see {self.logfile}")
            with open(self.logfile, errors="replace") as fh:
                m = re.search(r'msg="Listening on" address=127\.0\.0\.1:(\d+)', fh.read())
            return m and int(m.group(1))
        self.url = f"http://127.0.0.1:{wait_for('prometheus to listen', listening, timeout=60)}"
        wait_for("prometheus to be ready", lambda: http_get(self.url + "/-/ready")[0] == 200, timeout=60)

    def api(self, path, **params):
        url = f"{self.url}/api/v1/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
        code, body = http_get(url)
        check(code == 200, f"GET {url}: {code} {body[:500]}")
        answer = json.loads(body)
        check(answer.get("status") == "success", f"GET {url}: {answer}")
        return answer["data"]

    def query(self, expr):
        """An instant query's result: [(labels, value)]."""
        data = self.api("query", query=expr)
        check(data["resultType"] in ("vector", "scalar"), f"{expr}: {data['resultType']}")
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def by(self, expr, label):
        return {labels.get(label): v for labels, v in self.query(expr)}

    def alerts(self, name, state="firing"):
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name and a["state"] == state]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def tail(self):
        with open(self.logfile, errors="replace") as fh:
            return "".join(fh.readlines()[-30:])


def names_in(text):
    """The lmp_ metric names PromQL text reads (recording rules' names hold colons and
    are not metrics a daemon serves)."""
    return set(re.findall(r"(?<![\w:])lmp_[a-z_]+(?![\w:])", text))


def dashboard_queries():
    with open(DASHBOARD) as fh:
        d = json.load(fh)
    exprs = [(p["title"], t["refId"], t["expr"]) for p in d["panels"] for t in p.get("targets", [])]
    # Grafana's label_values(METRIC, LABEL) is no PromQL; its PromQL equivalent is asked.
    for v in d["templating"]["list"]:
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", v["definition"])
        check(m, f"variable {v['name']}: {v['definition']}")
        exprs.append((f"variable {v['name']}", "", f"group by ({m.group(2)}) ({m.group(1)})"))
    return exprs


def grafana_vars(expr):
    """What Grafana puts in place of its variables: every job and daemon selected,
    the rate interval it would choose for a 1 s scrape, a 5-minute range."""
    for var, value in [("$__rate_interval", "1m"), ("$__range", "5m"), ("$job", ".+"), ("$service", ".+")]:
        expr = expr.replace(var, value)
    check("$" not in expr, f"a Grafana variable the test does not know: {expr}")
    return expr


def test_prometheus(ns):
    check(os.access(PROMETHEUS, os.X_OK), f"{PROMETHEUS} not found (apt-get install prometheus)")
    ns.start_all()
    # A daemon whose database is away: it runs and serves /metrics, and is not ready.
    dbaway = ns.start("intake", wait_ready=False, LMP_PG_PORT=1, LMP_KAFKA_GROUP_ID="dbaway-" + ns.prefix)
    jobs = {p: f"lmp-{p.service}" for p in ns.procs if p is not dbaway}
    jobs[dbaway] = "lmp-intake-dbaway"
    addr = {p: p.http.split("//", 1)[1] for p in ns.procs}

    base = os.path.join(BUILD, "Testing", f"{ns.db}-prometheus")
    os.makedirs(os.path.dirname(base), exist_ok=True)
    rules = base + "-alerts.yml"
    shipped = shortened_rules(rules)
    prom = Prometheus(base, {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [rules],
        "scrape_configs": [scrape(jobs[p], p.http) for p in ns.procs],
    })
    try:
        check_prometheus(ns, prom, jobs, addr, dbaway, shipped)
    except Failure:
        log(f"--- {prom.logfile} (tail)\n{prom.tail()}")
        raise
    finally:
        prom.stop()
        os.unlink(rules)


def check_prometheus(ns, prom, jobs, addr, dbaway, shipped):
    # Every daemon scraped, the one whose database is away included.
    def health():
        return {t["labels"]["job"]: t["health"] for t in prom.api("targets")["activeTargets"]}
    try:
        wait_for("every daemon scraped", lambda: health() == {j: "up" for j in jobs.values()}, timeout=60)
    except Failure as e:
        raise Failure(f"{e}: targets {health()}")

    # Every rule of the shipped file is loaded, and each evaluates without error.
    want = set(re.findall(r"(?m)^\s+- (?:alert|record): (\S+)", shipped))
    loaded = {r["name"]: r for g in prom.api("rules")["groups"] for r in g["rules"]}
    check(set(loaded) == want, f"rules loaded {sorted(loaded)}, want {sorted(want)}")

    def evaluated():
        rs = {r["name"]: r for g in prom.api("rules")["groups"] for r in g["rules"]}
        bad = {n: r.get("lastError") for n, r in rs.items() if r.get("health") == "err"}
        check(not bad, f"rules that fail to evaluate: {bad}")
        return all(r.get("health") == "ok" for r in rs.values())
    wait_for("every rule evaluated", evaluated, timeout=30)

    # The daemon whose database is away: not ready, and its rolled-back batches (the
    # outbox sweep fails every second) make LmpBatchesFailing fire.
    def fired(name, job):
        return [a for a in prom.alerts(name) if a["labels"].get("job") == job]
    a = wait_for("LmpDaemonNotReady for the daemon whose database is away",
                 lambda: fired("LmpDaemonNotReady", jobs[dbaway]), timeout=60)[0]
    check(a["labels"]["instance"] == addr[dbaway] and a["labels"]["service"] == "intake"
          and a["labels"]["severity"] == "critical", a)
    check('section "A daemon not ready"' in a["annotations"]["description"] and
          a["annotations"]["runbook_url"] == "docs/runbook.md#a-daemon-not-ready", a)
    check(prom.by(f'lmp_ready{{job="{jobs[dbaway]}"}}', "job") == {jobs[dbaway]: 0}, "lmp_ready of dbaway")
    wait_for("LmpBatchesFailing for the daemon whose database is away",
             lambda: fired("LmpBatchesFailing", jobs[dbaway]), timeout=90)
    # The healthy daemons, idle: no alert at all, not even pending.
    others = [x["labels"] for x in prom.api("alerts")["alerts"] if x["labels"].get("job") != jobs[dbaway]]
    check(not others, f"alerts for healthy idle daemons: {others}")
    ready = prom.by('lmp_ready{job=~"lmp-.+",job!="%s"}' % jobs[dbaway], "service")
    check(ready == {s: 1 for s in SERVICES}, f"lmp_ready of the healthy daemons: {ready}")

    # The flow moves the counters, as Prometheus sees them.
    def counters(name):
        return prom.by(f'sum by (service) ({name}{{job=~"lmp-.+",job!="{jobs[dbaway]}"}})', "service")
    before = {n: counters(n) for n in ("lmp_consumed_total", "lmp_applied_total", "lmp_produced_total")}
    check(set(before["lmp_consumed_total"]) == set(SERVICES), f"consumed of {sorted(before['lmp_consumed_total'])}")
    sent_before = counters("lmp_mails_sent_total").get("notifier", 0)
    for _ in range(ONBOARDINGS):
        ns.publish("onboarding.requested", example("virtual-core.json"))

    def moved():
        now = {n: counters(n) for n in before}
        short = {f"{n} {s}": (before[n].get(s), now[n].get(s)) for n in before for s in SERVICES
                 if now[n].get(s, 0) < before[n].get(s, 0) + ONBOARDINGS}
        return now if not short else None
    now = wait_for(f"every daemon to consume, apply and produce {ONBOARDINGS} more", moved, timeout=90)
    log(f"counters after {ONBOARDINGS} onboardings: {now}")
    wait_for("the notifier's mails counted", lambda: counters("lmp_mails_sent_total").get("notifier", 0)
             >= sent_before + 2 * ONBOARDINGS, timeout=60)
    # Caught up, every daemon's lag is back to 0 (not merely unknown): an idle daemon
    # does not look like LmpConsumerStalled's "messages waiting, nothing consumed".
    wait_for("every daemon's consumer lag back to 0", lambda: prom.by(
        'sum by (service) (lmp_consumer_lag{job=~"lmp-.+",job!="%s"} >= 0)' % jobs[dbaway], "service")
        == {s: 0 for s in SERVICES}, timeout=60)
    rates = prom.by('sum by (service) (rate(lmp_applied_total{job=~"lmp-.+",job!="%s"}[1m])) > 0' % jobs[dbaway],
                    "service")
    check(set(rates) == set(SERVICES), f"applied rate above zero only for {sorted(rates)}")

    # Every metric the rules (as Prometheus loaded them) and the dashboard's queries
    # read is served by some daemon: a misspelt name makes a rule that never fires or
    # a panel that stays empty, and both are valid PromQL. lmp_consumer_partition_lag
    # appears once a partition has a committed offset, which the flow above made.
    served = set(prom.api("label/__name__/values"))
    rule_exprs = " ".join(r["query"] for g in prom.api("rules")["groups"] for r in g["rules"])
    for what, text in (("alerts.yml", rule_exprs), ("the dashboard", " ".join(q for _, _, q in dashboard_queries()))):
        missing = names_in(text) - served
        check(not missing, f"{what} reads metrics no daemon serves: {sorted(missing)}")
    check({"lmp_consumer_partition_lag", "lmp_ready", "lmp_mails_sent_total"} <= names_in(rule_exprs + " ".join(
        q for _, _, q in dashboard_queries())), "the check above looked at the queries")

    # Poison: two messages for intake, one for allocation. LmpDeadLetters fires for
    # those two daemons and no other, with what the operator needs to read.
    for _ in range(2):
        ns.publish("onboarding.requested", raw=b"junk")
    ns.publish("onboarding.accepted", raw=b"junk")

    wait_for("the dead letters counted", lambda: counters("lmp_dead_lettered_total") ==
             {"intake": 2, "allocation": 1, "appliance-fulfilment": 0, "shipping": 0, "notifier": 0}, timeout=60)

    def dead_letter_alerts():
        got = {x["labels"]["service"]: x for x in prom.alerts("LmpDeadLetters")
               if x["labels"]["job"] != jobs[dbaway]}
        # The annotations are rendered at each evaluation: until both of intake's are
        # in, its summary may say 1.
        return got if {"intake", "allocation"} <= set(got) and "(2 in" in got["intake"]["annotations"]["summary"] \
            else None
    got = wait_for("LmpDeadLetters for intake and allocation", dead_letter_alerts, timeout=60)
    check(set(got) == {"intake", "allocation"}, f"LmpDeadLetters for {sorted(got)}")
    intake = got["intake"]
    check(intake["labels"] == {"alertname": "LmpDeadLetters", "job": "lmp-intake", "service": "intake",
                               "severity": "warning"}, intake["labels"])
    check(intake["annotations"]["summary"] == "intake dead-letters messages (2 in the last 10 minutes)",
          intake["annotations"])
    check("lmpctl dlq list" in intake["annotations"]["description"] and
          'section "Dead letters"' in intake["annotations"]["description"] and
          intake["annotations"]["runbook_url"] == "docs/runbook.md#dead-letters", intake["annotations"])

    # A daemon stopped: LmpTargetDown for its job, for no other.
    shipping = next(p for p in ns.procs if p.service == "shipping")
    shipping.send_signal(signal.SIGTERM)
    check(shipping.wait(30) == 0, f"shipping exited {shipping.returncode} on SIGTERM, see {shipping.logfile}")
    a = wait_for("LmpTargetDown for shipping", lambda: [
        x for x in prom.alerts("LmpTargetDown") if x["labels"]["job"] == "lmp-shipping"], timeout=60)[0]
    check(a["labels"] == {"alertname": "LmpTargetDown", "job": "lmp-shipping", "instance": addr[shipping],
                          "severity": "critical"}, a["labels"])
    check(a["annotations"]["runbook_url"] == "docs/runbook.md#a-daemon-not-ready", a["annotations"])
    others = [x["labels"] for x in prom.alerts("LmpTargetDown") + prom.alerts("LmpTargetDown", "pending")
              if x["labels"]["job"] != "lmp-shipping"]
    check(not others, f"LmpTargetDown for daemons that run: {others}")

    # Every query of the dashboard is PromQL Prometheus accepts, and answers with data:
    # each figure it shows exists (the alerts table has LmpDeadLetters to show).
    queries = dashboard_queries()
    check(len(queries) >= 20, f"only {len(queries)} queries in the dashboard")
    empty = []
    for title, ref, expr in queries:
        if not prom.query(grafana_vars(expr)):  # query() fails the test on a refused query
            empty.append(f"{title} {ref}: {expr}")
    check(not empty, "dashboard queries without data: " + "; ".join(empty))
    log(f"{len(queries)} dashboard queries accepted and answered; {len(loaded)} rules evaluated")

    # Still no rule in error after all that happened.
    evaluated()


if __name__ == "__main__":
    sys.exit(run(test_prometheus))
