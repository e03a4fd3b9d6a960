"""The fault test: a stream of mixed onboardings while daemons are SIGKILLed and
restarted, PostgreSQL and the broker restart once each, two instances of allocation
and fulfilment share their groups, and poison goes into every consumed topic. A
checker then proves from the daemons' tables, the topics and the SMTP server that
nothing was lost or done twice, and prints its figures.

    fault.py [--requests N] [--poison N] [--kill-every SECONDS] [--seed N]
             [--instances N] [--kill-leader]

Run by CTest in a short version; deploy/fault runs it at full size, and
deploy/cluster-test on a three-broker cluster: N instances of every daemon, and
instead of a broker restart, the leader of a partition SIGKILLed and restarted."""
import argparse
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import (ROOT, SERVICES, Failure, Namespace, check, decode, encode, example, headers, onboarding_id,
                     wait_for)

STACK = os.path.join(ROOT, "deploy", "stack")
GROUPS = {}    # daemon -> the event types it consumes
CONSUMED = []  # every consumed event type


def make_request(rng, i):
    """A mixed stream; returns (request, expected kind, distinct addresses)."""
    roll = rng.random()
    if roll < 0.35:
        return example("virtual-core.json"), "ok", 0
    if roll < 0.60:
        r = example("physical-complete.json")
        n = rng.randint(1, 4)
        r["deployment"]["appliances"] = [{"role": "PRIMARY" if k == 0 else "SENSOR",
                                          "sku": rng.choice(["NS-100", "NS-500"]),
                                          "ship_to": f"site-{k % n}" if k % n else "partner-default"}
                                         for k in range(n + rng.randint(0, 2))]
        r["deployment"]["addresses"] = [{"ref": f"site-{k}", "recipient": "IT", "line1": f"{k} Main St",
                                         "city": "Halifax", "postal_code": "B3J 1A1", "country": "CA"}
                                        for k in range(1, n)]
        return r, "ok", n
    if roll < 0.70:
        return example("cloud-only.json"), "ok", 0
    if roll < 0.80:
        return example("rejected-breach.json"), "rejected", 0
    if roll < 0.92:
        r = example("virtual-core.json", partner_id="partner-fault-short")
        r["users"]["tier"] = rng.randint(1, 5)
        return r, "maybe", 0
    r = example("physical-complete.json")
    r["deployment"]["appliances"][2]["sku"] = "NS-2000"
    return r, "maybe", 2


def poison_messages(rng, ns, n):
    """(topic, value, key, headers) of n poison messages over every consumed topic."""
    valid = encode("onboarding.requested", example("virtual-core.json"))
    other = encode("shipment.dispatched", {"shipment_id": "x", "carrier": "c", "tracking_number": "t",
                                           "dispatched_at": 0})
    out = []
    for i in range(n):
        topic = CONSUMED[i % len(CONSUMED)]
        kind = i % 4
        if kind == 0:
            value = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
        elif kind == 1:
            value = valid[: rng.randint(10, len(valid) - 1)]
        elif kind == 2:
            value = b"\xc3\x01" + struct.pack("<Q", rng.getrandbits(64)) + valid[10:]
        elif topic == "shipment.dispatched":
            # valid Avro, invalid values: no such shipment id
            value = encode("shipment.dispatched", {"shipment_id": "not-a-uuid", "carrier": "c",
                                                   "tracking_number": "t", "dispatched_at": 0})
        else:
            value = other  # valid Avro of an event type this topic does not carry
        out.append((topic, value, f"poison-key-{i}", {"event_id": f"poison-{i}", "event_type": topic}))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--poison", type=int, default=100)
    ap.add_argument("--kill-every", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rate", type=float, default=400.0, help="requests per second offered")
    ap.add_argument("--instances", type=int, default=0,
                    help="instances of every daemon (default: one each, two of allocation and fulfilment)")
    ap.add_argument("--kill-leader", action="store_true",
                    help="SIGKILL the broker leading a partition of the requests, and restart it (a cluster)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    ns = Namespace("fault")
    # What each daemon consumes, from its own route table.
    GROUPS.update({service: ns.routes(service) for service in SERVICES})
    CONSUMED[:] = sorted({t for topics in GROUPS.values() for t in topics})
    env = {"LMP_INTAKE_APPLIANCE_SKUS": "NS-100,NS-500,NS-1000,NS-2000", "LMP_RETRY_MAX_MS": "2000"}
    failure = None
    figures = {}
    try:
        ns.start_all(**env)
        if args.instances:
            for _ in range(args.instances - 1):
                for service in SERVICES:
                    ns.start(service, **env)
        else:
            ns.start("allocation", **env)
            ns.start("appliance-fulfilment", **env)
        for service, data in [("allocation", {
                "partners": [{"partner_id": "partner-fault-short", "name": "Short"}],
                "pools": [{"partner_id": "partner-northwind", "product": p, "total": 10_000_000}
                          for p in ("MDR_CORE", "MDR_COMPLETE", "MDR_CLOUD", "BEAUCERON_SAT")] +
                         [{"partner_id": "partner-fault-short", "product": "MDR_CORE", "total": 40}]}),
                ("appliance-fulfilment", {"skus": [{"sku": "NS-2000"}],
                                "inventory": [{"sku": "NS-100", "serial_prefix": "F100-", "count": 6 * args.requests},
                                              {"sku": "NS-500", "serial_prefix": "F500-", "count": 6 * args.requests},
                                              {"sku": "NS-2000", "serial_prefix": "F2000-", "count": 5}]})]:
            code, body = ns.admin_post(service, "/v1/admin/load", data)
            check(code == 200, f"{service}: {body}")

        # Both by onboarding id (lmp_onboarding_id of the partner and the request id);
        # each request is keyed by its request id on the topic, as a frontend sends it.
        acked, lock = {}, threading.Lock()
        expect = {}

        def on_delivery(err, msg, oid=None):
            if err is None and oid:
                with lock:
                    acked[oid] = True

        stop = threading.Event()
        chaos = {"kills": 0, "pg_restarts": 0, "kafka_restarts": 0}

        def broker_failure():
            """The whole broker down and up; in a cluster, the leader of the requests'
            partition 0 killed outright, and restarted a few seconds later."""
            if not args.kill_leader:
                subprocess.run([STACK, "kafka-down"], check=True, capture_output=True)
                time.sleep(3)
                subprocess.run([STACK, "kafka-up"], check=True, capture_output=True)
                return
            topic = ns.topic("onboarding.requested")
            leader = ns.producer.list_topics(topic, timeout=10).topics[topic].partitions[0].leader
            node = str(leader - 1)  # node ids count from 1, the stack's nodes from 0
            subprocess.run([STACK, "kafka-node-kill", node], check=True, capture_output=True)
            chaos["killed_leader_node"] = node
            time.sleep(5)
            subprocess.run([STACK, "kafka-node-up", node], check=True, capture_output=True)

        def chaos_loop(duration):
            t0 = time.time()
            did_pg = did_kafka = False
            while not stop.is_set():
                time.sleep(args.kill_every)
                if stop.is_set():
                    break
                live = [p for p in ns.procs if p.poll() is None]
                victim = rng.choice(live)
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                chaos["kills"] += 1
                ns.start(victim.service, wait_ready=False, **env)
                elapsed = time.time() - t0
                if not did_pg and elapsed > duration / 3:
                    subprocess.run([STACK, "pg-down"], check=True, capture_output=True)
                    time.sleep(3)
                    subprocess.run([STACK, "pg-up"], check=True, capture_output=True)
                    chaos["pg_restarts"] += 1
                    did_pg = True
                elif did_pg and not did_kafka and elapsed > 2 * duration / 3:
                    broker_failure()
                    chaos["kafka_restarts"] += 1
                    did_kafka = True

        duration = args.requests / args.rate
        chaos_thread = threading.Thread(target=chaos_loop, args=(max(duration, 12),), daemon=True)
        chaos_thread.start()
        poison = poison_messages(rng, ns, args.poison)
        t_start = time.time()
        for i in range(args.requests):
            r, kind, addrs = make_request(rng, i)
            expect[onboarding_id(r)] = (kind, addrs, r)
            value = encode("onboarding.requested", r)
            while True:
                try:
                    ns.producer.produce(ns.topic("onboarding.requested"), value=value, key=r["request_id"],
                                        headers=[("event_type", "onboarding.requested")],
                                        on_delivery=lambda e, m, oid=onboarding_id(r): on_delivery(e, m, oid))
                    break
                except BufferError:
                    ns.producer.poll(0.1)
            if poison and i % max(1, args.requests // max(1, len(poison))) == 0:
                topic, v, k, h = poison.pop()
                ns.producer.produce(ns.topic(topic), value=v, key=k, headers=list(h.items()))
            ns.producer.poll(0)
            behind = t_start + (i + 1) / args.rate - time.time()
            if behind > 0:
                time.sleep(behind)
        for topic, v, k, h in poison:
            ns.producer.produce(ns.topic(topic), value=v, key=k, headers=list(h.items()))
        while ns.producer.flush(5) > 0:
            pass
        t_sent = time.time()  # the last request is acknowledged: the drain starts
        # Keep the chaos going through most of the drain: until the planned restarts
        # happened and nine in ten requests have their outcome.
        def chaos_done():
            n = ns.sql("SELECT count(*) FROM onboardings WHERE status IN ('confirmed', 'rejected', 'failed')")[0][0]
            return chaos["kafka_restarts"] == 1 and n >= 0.9 * len(acked) or None
        wait_for("the planned restarts", chaos_done, timeout=900, interval=0.5)
        stop.set()
        chaos_thread.join()
        for p in ns.procs:
            if p.poll() is None:
                ns.wait_ready(p, timeout=120)

        def terminal():
            n = ns.sql("SELECT count(*) FROM onboardings WHERE status IN ('confirmed', 'rejected', 'failed')")[0][0]
            return n >= len(acked) or None
        wait_for("every acknowledged request to end", terminal, timeout=900, interval=1)

        # Compensation may still be under way (a killed member holds its partitions
        # until its session times out): the checks start once every group of every
        # daemon has consumed everything. A partition that stopped moving fails here.
        def lags():
            total = 0
            for service, topics in GROUPS.items():
                for t in topics:
                    total += ns.group_lag(f"lmp-{service}-" + ns.prefix, t)
            return total == 0 or None
        wait_for("every consumer group at the end of every partition", lags, timeout=300, interval=2)
        ns.wait_published()
        drained = time.time() - t_sent
        figures = check_all(ns, acked, expect, args)
        figures.update(chaos)
        figures["requests"] = args.requests
        figures["acknowledged"] = len(acked)
        figures["drain_seconds"] = round(drained, 1)  # from the last request acknowledged
        figures["total_seconds"] = round(time.time() - t_start, 1)
    except Failure as e:
        failure = str(e)
    except Exception:  # noqa: BLE001 - whatever broke, the daemons are stopped below
        import traceback
        failure = traceback.format_exc()
    problems = [p for p in ns.close() if "exit status" not in p or "SIGTERM" not in p] if failure else ns.close()
    for k, v in figures.items():
        print(f"  {k:<28} {v}")
    if failure is None and problems:
        failure = "; ".join(problems)
    if failure:
        print(f"FAIL fault test: {failure}")
        print("0 passed, 1 failed")
        return 1
    print("PASS fault test")
    return 0


def check_all(ns, acked, expect, args):
    f = {}
    status = dict(ns.sql("SELECT onboarding_id, status FROM onboardings"))
    lost = [rid for rid in acked if status.get(rid) not in ("confirmed", "rejected", "failed")]
    f["lost"] = len(lost)
    check(not lost, f"{len(lost)} acknowledged requests without a final state, e.g. {lost[:3]}")
    confirmed = {rid for rid, s in status.items() if s == "confirmed"}
    f["confirmed"] = len(confirmed)
    f["rejected"] = sum(1 for s in status.values() if s == "rejected")
    f["failed"] = sum(1 for s in status.values() if s == "failed")
    wrong = [rid for rid, (kind, _, _) in expect.items() if rid in acked and
             ((kind == "ok" and status[rid] != "confirmed") or (kind == "rejected" and status[rid] != "rejected"))]
    check(not wrong, f"{len(wrong)} onboardings with the wrong outcome, e.g. {[(w, status[w]) for w in wrong[:3]]}")
    dup = 0

    # Allocation: every pool holds exactly what the confirmed onboardings drew.
    allocs = ns.sql("SELECT onboarding_id, partner_id, product, users FROM allocations", service="allocation")
    sums = {}
    for oid, partner, product, users in allocs:
        if oid in confirmed:
            sums[(partner, product)] = sums.get((partner, product), 0) + users
    pools = {(p, pr): a for p, pr, a in ns.sql("SELECT partner_id, product, allocated FROM pools",
                                                service="allocation")}
    bad = {k: (v, sums.get(k, 0)) for k, v in pools.items() if v != sums.get(k, 0)}
    check(not bad, f"pools differ from the confirmed onboardings' allocations: {bad}")
    st = dict(ns.sql("SELECT onboarding_id, status FROM onboardings", service="allocation"))
    held = [oid for oid, s in st.items() if s == "allocated" and oid not in confirmed]
    check(not held, f"{len(held)} unconfirmed onboardings still hold users, e.g. {held[:3]}")

    # Fulfilment: every reserved unit belongs to a confirmed onboarding.
    units = ns.sql("SELECT onboarding_id, count(*) FROM units WHERE status = 'reserved' GROUP BY 1",
                   service="appliance-fulfilment")
    stray = [oid for oid, _ in units if oid not in confirmed]
    check(not stray, f"{len(stray)} onboardings hold units without being confirmed, e.g. {stray[:3]}")
    want_units = {rid: len(expect[rid][2]["deployment"]["appliances"]) for rid in confirmed
                  if expect[rid][1] > 0}
    have_units = dict(units)
    dup += sum(1 for rid, n in want_units.items() if have_units.get(rid, 0) != n)
    f["units_reserved"] = sum(have_units.values())

    # Shipping: one shipment per distinct address, no more.
    ships = dict(ns.sql("SELECT onboarding_id, count(*) FROM shipments GROUP BY 1", service="shipping"))
    dup += sum(1 for rid in confirmed if ships.get(rid, 0) != expect[rid][1])
    f["shipments"] = sum(ships.values())

    # Mail: one of each kind per onboarding, by Message-ID; a resend after a crash
    # carries the same Message-ID and is counted apart. The Message-ID is random, so
    # the notifier's table maps it back to its onboarding and kind; a mail whose
    # Message-ID is not in it is another namespace's.
    ids = ns.mail_ids()
    seen, raw = {}, 0
    for m in ns.mails():
        mid = str(m["Message-ID"] or "").strip()
        if mid in ids and ids[mid][0] in status:
            raw += 1
            seen[mid] = seen.get(mid, 0) + 1
    kinds = {}
    for mid in seen:
        oid, kind = ids[mid]
        kinds.setdefault(oid, []).append(kind)
    missing_mail = [rid for rid in confirmed if sorted(kinds.get(rid, [])) != ["confirmation", "invitation"]]
    check(not missing_mail, f"{len(missing_mail)} confirmed onboardings without exactly their two mails, "
                            f"e.g. {[(m, kinds.get(m)) for m in missing_mail[:3]]}")
    failed = {rid for rid, s in status.items() if s == "failed"}
    no_notice = [rid for rid in failed if kinds.get(rid) != ["failure"]]
    check(not no_notice, f"{len(no_notice)} failed onboardings without exactly one failure notice")
    f["mails"] = len(seen)
    f["mail_resent_same_message_id"] = raw - len(seen)

    # Events: one outcome event per onboarding (a republished copy has the same id).
    outcome = {}
    for t in ("onboarding.accepted", "onboarding.rejected"):
        for m in ns.consume_all(t):
            if headers(m).get("event_id", "").startswith("poison-"):
                continue
            name, ev = decode(m.value())
            check(name == t, f"{t} carries a {name}")
            outcome.setdefault(ev["onboarding_id"], set()).add(headers(m)["event_id"])
    dup += sum(1 for v in outcome.values() if len(v) != 1)
    f["duplicated"] = dup
    check(dup == 0, f"{dup} effects happened twice")

    # Poison: every message is in the dead-letter topic, with its error.
    dl = ns.consume_all(ns.dlq)
    found = {}
    for m in dl:
        h = headers(m)
        check(h.get("error_code") and h.get("error_message"), f"dead letter without its error: {h}")
        if h.get("event_id", "").startswith("poison-"):
            found[h["event_id"]] = h["error_code"]
    f["poison_sent"] = args.poison
    f["poison_found"] = len(found)
    check(len(found) == args.poison, f"{args.poison - len(found)} poison messages not dead-lettered")

    f["consumer_lag"] = 0  # waited for before the checks
    return f


if __name__ == "__main__":
    sys.exit(main())
