"""Traces in the stack's real Jaeger: an onboarding taken at the front door is one
trace there, with the door's publish as its root, a span from each daemon in the
order of the flow (each handling under the publish that carried its event, each
publish under the handling that emitted it) and the notifier's two SMTP sends; an
onboarding that fails has the failing stage's span marked as an error with the
reason, as has a message dead-lettered, whose dead letter adds no span; a daemon killed and started again mid-onboarding leaves the trace whole;
a collector that is away costs nothing but counted drops (the onboarding confirms as
fast, /metrics counts the spans dropped) and spans flow again once it is back; one
that takes the connection and never answers costs each request tracing.timeout_ms on
the exporter's thread, drops counted, the log saying so once, and stops stay prompt.
deploy/trace prints the trace by its id or the onboarding's, a line per span, the
failed stage with its error, and refuses what is neither id."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

from harness import (JAEGER_OTLP_PORT, JAEGER_URL, ROOT, SECURED, TcpGate, check, example, log, onboarding_id, run, tls_context,
                     token, wait_for)

FLOW = ["lmp-intake", "lmp-allocation", "lmp-appliance-fulfilment", "lmp-shipping", "lmp-notifier"]


def submit(ns, r):
    """POSTs r through the front door, signed in as its partner's demo user: the 202's
    trace id."""
    url = ns.http["intake"] + "/v1/onboardings"
    req = urllib.request.Request(url, data=json.dumps(r).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": "Bearer " + token(r["partner_id"])})
    with urllib.request.urlopen(req, timeout=60, context=tls_context(url)) as a:
        answer = json.load(a)
    check(a.status == 202 and len(answer.get("trace_id", "")) == 32, f"{a.status} {answer}")
    return answer["trace_id"]


def status(ns, oid):
    rows = ns.sql("SELECT status FROM onboardings WHERE onboarding_id = %s", oid)
    return rows[0][0] if rows else None


def final(ns, oid, timeout=90):
    return wait_for(f"{oid} final", lambda: status(ns, oid) in ("confirmed", "failed", "rejected") and status(ns, oid),
                    timeout=timeout)


def trace(trace_id):
    """The trace as Jaeger's query API answers it: spans with their service, parent,
    start (microseconds) and tags; [] while it has none."""
    try:
        with urllib.request.urlopen(f"{JAEGER_URL}/api/traces/{trace_id}", timeout=10) as a:
            data = json.load(a)["data"]
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return []
        raise
    spans = []
    for t in data:
        for s in t["spans"]:
            parents = [r["spanID"] for r in s.get("references", []) if r["refType"] == "CHILD_OF"]
            spans.append({"id": s["spanID"], "name": s["operationName"], "parent": parents[0] if parents else None,
                          "service": t["processes"][s["processID"]]["serviceName"], "start": s["startTime"],
                          "end": s["startTime"] + s["duration"], "tags": {g["key"]: g["value"] for g in s["tags"]}})
    return sorted(spans, key=lambda s: s["start"])


def whole(trace_id, mails=2):
    """Waits for the trace to hold every daemon's spans, the SMTP sends, and the parent
    of every span: each daemon sends its own spans when it will, so a handling's span
    can reach Jaeger before the publish it hangs under."""
    def done():
        spans = trace(trace_id)
        services = {s["service"] for s in spans}
        sends = [s for s in spans if s["name"] == "smtp send"]
        ids = {s["id"] for s in spans}
        parents = all(s["parent"] is None or s["parent"] in ids for s in spans)
        return spans if set(FLOW) <= services and len(sends) >= mails and parents else None
    return wait_for(f"trace {trace_id} whole", done, timeout=60,
                    show=lambda: sorted((s["service"], s["name"]) for s in trace(trace_id)))


def view(ident):
    """deploy/trace against the test stack's Jaeger."""
    return subprocess.run([os.path.join(ROOT, "deploy", "trace"), ident], capture_output=True, text=True, timeout=60,
                          errors="replace",
                          env={**os.environ, "LMP_JAEGER_URL": JAEGER_URL})


def check_causal(spans):
    """Each span's parent is in the trace (the root's none), and starts no later than
    it does; each daemon's first span comes after the previous daemon's."""
    by_id = {s["id"]: s for s in spans}
    roots = [s for s in spans if s["parent"] is None]
    check(len(roots) == 1 and roots[0]["service"] == "lmp-intake" and
          roots[0]["name"] == "send onboarding.requested", f"one root, the door's publish: {roots}")
    for s in spans:
        if s["parent"] is None:
            continue
        check(s["parent"] in by_id, f"{s['service']} {s['name']}: its parent {s['parent']} is not in the trace")
        p = by_id[s["parent"]]
        check(p["start"] <= s["start"] + 1000, f"{s['name']} starts before its parent {p['name']}")
        if s["name"].startswith("process "):  # a handling hangs under the publish of its event
            check(p["name"] == "send " + s["name"][len("process "):], f"{s['name']} under {p['name']}")
    firsts = [min(s["start"] for s in spans if s["service"] == svc) for svc in FLOW]
    check(firsts == sorted(firsts), f"the daemons' first spans out of the flow's order: {list(zip(FLOW, firsts))}")


def dropped(p):
    with urllib.request.urlopen(p.http + "/metrics", timeout=10, context=tls_context(p.http)) as a:
        text = a.read().decode()
    return {k: int(float(line.split()[-1])) for line in text.splitlines() for k in ("dropped", "exported")
            if line.startswith(f"lmp_trace_spans_{k}_total{{")}


def restart(ns, **env):
    """Every daemon stopped, and started again with env."""
    for p in list(ns.procs):
        if p.poll() is None:
            p.terminate()
            check(p.wait(30) == 0, f"{p.service} exited with {p.returncode}")
    ns.procs.clear()
    ns.http.clear()
    ns.admin.clear()
    ns.start_all(load=None, LMP_TRACING_INTERVAL_MS=200, **env)


def test_tracing(ns):
    ns.start_all(LMP_TRACING_INTERVAL_MS=200)

    # 1. One onboarding, one trace: every daemon's spans in the flow's order.
    r = example("physical-complete.json")
    tid = submit(ns, r)
    check(final(ns, onboarding_id(r)) == "confirmed", "the onboarding confirms")
    spans = whole(tid)
    check_causal(spans)
    handled = {(s["service"], s["name"]) for s in spans}
    for want in [("lmp-allocation", "process onboarding.accepted"),
                 ("lmp-appliance-fulfilment", "process onboarding.users-allocated"),
                 ("lmp-notifier", "process onboarding.shipping-completed")]:
        check(want in handled, f"{want} missing from {sorted(handled)}")
    proc = next(s for s in spans if s["name"] == "process onboarding.accepted")
    check(proc["tags"].get("lmp.onboarding_id") == onboarding_id(r) and proc["tags"].get("lmp.outcome") == "applied"
          and proc["tags"].get("messaging.destination.name", "").startswith(ns.prefix)
          and "messaging.kafka.offset" in proc["tags"], f"the handling span's attributes: {proc['tags']}")
    sends = [s for s in spans if s["name"] == "smtp send"]
    check({s["tags"].get("lmp.mail.kind") for s in sends} == {"confirmation", "invitation"} and
          all(s["tags"].get("lmp.outcome") == "sent" and not s["tags"].get("error") for s in sends),
          f"the SMTP sends: {[s['tags'] for s in sends]}")
    check(not any(s["tags"].get("error") for s in spans), "no span of a confirmed onboarding is an error")
    log(f"trace {tid}: {len(spans)} spans from {len({s['service'] for s in spans})} daemons")

    # 1b. deploy/trace, the stack's way to read a trace (its Jaeger has no UI): a line
    # per span, found by the trace id and by the onboarding id alike.
    by_trace, by_onboarding = view(tid), view(onboarding_id(r))
    for shown in (by_trace, by_onboarding):  # the mails' settling spans may still be arriving
        lines = shown.stdout.splitlines()
        count = int(lines[0].split()[2]) if shown.returncode == 0 and lines else 0
        check(lines and lines[0].startswith(f"trace {tid}: {count} spans of ") and count >= len(spans)
              and len(lines) == count + 1 and all(any(f" {d} " in l for l in lines[1:]) for d in FLOW)
              and "ERROR" not in shown.stdout, f"deploy/trace: {shown}")
    # Hostile bytes too: not UTF-8, oversized, another kind of body, control characters;
    # the refusal quotes at most 80 bytes of it, escaped, never a terminal's escape.
    for bad in ["", "0" * 31, tid.upper(), f"{tid}; ls", "../" + tid, b"\xff\xfe" + tid.encode(), "a" * 100_000,
                json.dumps({"onboarding_id": onboarding_id(r)}), f"\x1b[31m{tid}", f"{tid}\n", f"{tid}\r"]:
        refused = view(bad)
        check(refused.returncode == 2 and refused.stdout == "" and "deploy/trace" in refused.stderr
              and "\x1b" not in refused.stderr and len(refused.stderr) < 400, f"{bad!r:.120}: {refused!r:.400}")
    absent = view("0" * 32)
    check(absent.returncode == 1 and "holds no trace" in absent.stderr, f"an unknown trace: {absent}")

    # 2. A failing onboarding: the stage that failed is marked, with the reason.
    short = example("virtual-core.json", partner_id="partner-southwind")
    short["users"]["tier"] = 51
    tid = submit(ns, short)
    check(final(ns, onboarding_id(short)) == "failed", "the shortfall fails")

    def failed_span():
        bad = [s for s in trace(tid) if s["tags"].get("error") is True]
        return bad or None
    bad = wait_for("the failing stage's span", failed_span, timeout=30)
    check(len(bad) == 1 and bad[0]["service"] == "lmp-allocation" and bad[0]["name"] == "process onboarding.accepted"
          and bad[0]["tags"].get("lmp.outcome") == "failed" and bad[0]["tags"].get("otel.status_code") == "ERROR"
          and "users requested" in bad[0]["tags"].get("otel.status_description", ""), f"marked: {bad}")
    shown = view(tid).stdout
    check(any(" lmp-allocation " in l and "process onboarding.accepted  ERROR " in l and "users requested" in l
              for l in shown.splitlines()), f"deploy/trace shows the failed stage: {shown}")

    # 2b. A message no daemon can read: each consumer's span of it is an error, and a
    # dead letter adds no span of its own (it carries the original's traceparent).
    tp = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    ns.publish("onboarding.accepted", raw=b"\x00 not an event", key="poison",
               headers={"event_id": str(uuid.uuid4()), "event_type": "onboarding.accepted", "traceparent": tp})
    tid = tp[3:35]

    def dead_spans():
        got = [s for s in trace(tid) if s["tags"].get("lmp.outcome") == "dead-lettered"]
        return got or None
    dead = wait_for("the dead-lettered message's spans", dead_spans, timeout=30)
    time.sleep(2)  # ten export intervals: a span of the dead letter's publish would be in by now
    spans = trace(tid)
    check(all(s["tags"].get("error") is True and s["name"] == "process message" and  # no schema read it
              s["parent"] == tp[36:52] and "UNKNOWN_SCHEMA" in s["tags"].get("otel.status_description", "")
              for s in dead), f"dead-lettered spans: {dead}")
    check(len({s["id"] for s in spans}) == len(spans) and not any(s["name"].startswith("send ") for s in spans),
          f"no publish span for a dead letter, no span id twice: {[(s['name'], s['id']) for s in spans]}")

    # 3. Shipping killed, and started again while the onboarding waits for it: one
    # trace, whole, its handling under fulfilment's publish.
    shipping = next(p for p in ns.procs if p.service == "shipping")
    shipping.send_signal(signal.SIGKILL)
    shipping.wait(10)
    r = example("physical-complete.json")
    tid = submit(ns, r)
    wait_for("appliances provisioned", lambda: any(s["name"] == "send onboarding.appliances-provisioned"
                                                   for s in trace(tid)), timeout=60)
    check(status(ns, onboarding_id(r)) != "confirmed", "nothing confirms while shipping is down")
    ns.start("shipping", LMP_TRACING_INTERVAL_MS=200)
    check(final(ns, onboarding_id(r)) == "confirmed", "the onboarding confirms once shipping is back")
    spans = whole(tid)
    check_causal(spans)

    # 4. The collector away: the onboarding goes through as before, every span is
    # dropped and counted; back, the spans flow again.
    gate = TcpGate(JAEGER_OTLP_PORT, open=False)
    gated = f"{'https' if SECURED else 'http'}://127.0.0.1:{gate.port}"
    restart(ns, LMP_TRACING_ENDPOINT=gated)
    r = example("physical-complete.json")
    started = time.time()
    tid = submit(ns, r)
    check(final(ns, onboarding_id(r)) == "confirmed", "confirmed with the collector away")
    took = time.time() - started
    counts = wait_for("drops counted", lambda: all(dropped(p)["dropped"] > 0 for p in ns.procs) and
                      [dropped(p) for p in ns.procs], timeout=30)
    check(all(c["exported"] == 0 for c in counts), f"nothing exported while the collector is away: {counts}")
    check(gate.refused > 0, "the daemons tried the collector")
    check(trace(tid) == [], "no span of it reached Jaeger")
    log(f"collector away: confirmed in {took:.1f} s; counted {counts}")
    gate.open = True
    r = example("virtual-core.json")
    tid = submit(ns, r)
    check(final(ns, onboarding_id(r)) == "confirmed", "confirmed with the collector back")
    wait_for("spans again", lambda: {s["service"] for s in trace(tid)} >= {"lmp-intake", "lmp-notifier"}, timeout=60)
    gate.close()

    # 5. A collector that takes the connection and never answers: each request gives up
    # after tracing.timeout_ms, its spans counted as dropped; the onboarding confirms
    # and every daemon still stops at once.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    held = []
    threading.Thread(target=lambda: [held.append(silent.accept()) for _ in iter(int, 1)], daemon=True).start()
    restart(ns, LMP_TRACING_ENDPOINT=f"http://127.0.0.1:{silent.getsockname()[1]}", LMP_TRACING_TIMEOUT_MS=300)
    r = example("physical-complete.json")
    submit(ns, r)
    check(final(ns, onboarding_id(r)) == "confirmed", "confirmed with a silent collector")
    counts = wait_for("drops counted", lambda: all(dropped(p)["dropped"] > 0 for p in ns.procs) and
                      [dropped(p) for p in ns.procs], timeout=30)
    check(held, "the daemons reached the silent collector")
    for p in ns.procs:
        started = time.time()
        p.terminate()
        check(p.wait(15) == 0, f"{p.service} exited with {p.returncode}")
        check(time.time() - started < 5, f"{p.service} took {time.time() - started:.1f} s to stop")
        with open(p.logfile) as fh:
            check(fh.read().count("tracing: ") <= 3, f"{p.service} logs the collector's failure once, not per batch")
    log(f"silent collector: counted {counts}")
    silent.close()


if __name__ == "__main__":
    sys.exit(run(test_tracing))
