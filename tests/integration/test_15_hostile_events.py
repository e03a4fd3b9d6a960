"""No message can stop a daemon: every hostile class of message is sent to every
consumed topic, each followed on the same partition by a valid message, and each time
the valid message is applied while the hostile one is dead-lettered once with its
error, also across a SIGKILL and restart of every daemon halfway. Hostile text in a
request is a rejection with reasons, never a dead letter, and every event the
daemons write is valid UTF-8 that an off-the-shelf Avro reader takes."""
import random
import re
import signal
import struct
import sys
import uuid

from harness import SERVICES, check, decode, encode, example, headers, log, onboarding_id, run, wait_for

CONSUMERS = {}  # topic -> the daemons that read it, from their route tables
PARTITION = 2


def corrupt(value, bad):
    """The same Avro message with 8 bytes of a string replaced (same length, so the
    body still decodes): text that is not text. The string is a UUID (an onboarding's
    id), or for an event that has none (a partner's), a partner id."""
    m = re.search(rb"[0-9a-f]{8}-[0-9a-f]{4}-", value[10:]) or re.search(rb"partner-[a-z]", value[10:])
    check(m is not None, "a string to corrupt")
    at = 10 + m.start()
    return value[:at] + bad + value[at + len(bad):]


def classes(topic, valid, h):
    """(name, key, value, headers, expected error code) of each hostile class."""
    other = encode("shipment.dispatched", {"shipment_id": "x", "carrier": "c", "tracking_number": "t",
                                          "dispatched_at": 0}) if topic != "shipment.dispatched" else \
        encode("onboarding.confirmed", {"onboarding_id": "x", "customer_id": "c", "partner_id": "p",
                                        "account_name": "a", "shipments": 0, "mails": [], "confirmed_at": 0})
    out = [
        ("event_id_not_utf8", b"k1", valid, dict(h, event_id=b"\xff\xfe\xfd"), "BAD_HEADER"),
        ("event_id_huge", b"k2", valid, dict(h, event_id=b"e" * 1_200_000), "BAD_HEADER"),
        ("correlation_nul", b"k3", valid, dict(h, correlation_id=b"a\x00b"), "BAD_HEADER"),
        ("key_not_utf8", b"\xc3\x28", valid, dict(h), "BAD_KEY"),
        ("key_huge", b"k" * 1_200_000, valid, dict(h), "BAD_KEY"),
        ("key_control", b"abc\r\nDATA", valid, dict(h), "BAD_KEY"),
        ("wrong_topic", b"k7", other, dict(h), "WRONG_TOPIC"),
        ("type_mismatch", b"k8", valid, dict(h, event_type=b"onboarding.confirmed" if topic != "onboarding.confirmed"
                                              else b"onboarding.failed"), "EVENT_TYPE_MISMATCH"),
        ("too_large", b"k9", valid[:10] + bytes(1_100_000), dict(h), "TOO_LARGE"),
        # Random bytes behind a first byte that is neither framing's magic (C3 for
        # single-object, 00 for a registry's): with either, it would be another case.
        ("garbage", b"k10", b"\x7f" + bytes(random.getrandbits(8) for _ in range(49)), dict(h), "BAD_FRAMING"),
        ("unknown_schema", b"k11", b"\xc3\x01" + struct.pack("<Q", 0x0123456789ABCDEF) + valid[10:], dict(h),
         "UNKNOWN_SCHEMA"),
        ("truncated", b"k12", valid[: len(valid) // 2], dict(h), "UNDECODABLE"),
    ]
    if topic != "onboarding.requested":  # intake answers bad text in a request with a rejection
        out.append(("text_not_utf8", b"k13", corrupt(valid, b"\xff\xc0\xaf\xed\xa0\x80ab"), dict(h), "BAD_TEXT"))
        out.append(("text_nul", b"k14", corrupt(valid, b"ab\x00cdefg"), dict(h), "BAD_TEXT"))
    return out


def send(ns, topic, key, value, hdrs):
    ns.producer.produce(ns.topic(topic), value=value, key=key, partition=PARTITION,
                        headers=[(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in hdrs.items()])


def real_events(ns):
    """Events of a real physical onboarding (dispatched by the warehouse) and of a
    failed one, as the daemons wrote them."""
    phys = example("physical-complete.json")
    short = example("virtual-core.json", partner_id="partner-southwind")
    short["users"]["tier"] = 51
    ns.publish("onboarding.requested", phys)
    ns.publish("onboarding.requested", short)
    wait_for("the physical onboarding confirmed", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(phys)) == [("confirmed",)], timeout=90)
    wait_for("the short one failed", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(short)) == [("failed",)], timeout=90)
    ship = decode(ns.consume("shipment.requested", 1)[0].value())[1]
    ns.publish("shipment.dispatched", {"shipment_id": ship["shipment_id"], "carrier": "Purolator",
                                       "tracking_number": "PRL1", "dispatched_at": 0}, key=onboarding_id(phys))
    wait_for("the dispatch recorded", lambda: ns.sql(
        "SELECT count(*) FROM onboarding_stages WHERE stage = 'shipment-dispatched'")[0][0] == 1, timeout=60)
    # Its two mails' fates follow the confirmation, once the mails are sent.
    wait_for("both mails' fates heard", lambda: ns.sql(
        "SELECT count(*) FROM mail_fates WHERE onboarding_id = %s", onboarding_id(phys))[0][0] == 2, timeout=60)
    # Users added to the physical onboarding's customer, and a shortfall refused.
    cid = ns.sql("SELECT customer_id::text FROM onboardings WHERE onboarding_id = %s", onboarding_id(phys))[0][0]
    for tier in (1, 10 ** 6):
        ns.publish("customer.users-requested", {"request_id": str(uuid.uuid4()), "partner_id": phys["partner_id"],
                                                "submitted_by": phys["submitted_by"], "customer_id": cid,
                                                "users": {"tier": tier, "cloud": 0, "sat": 0}, "submitted_at": 0},
                   key=cid)
    wait_for("one addition added, one refused", lambda: ns.sql(
        "SELECT status FROM user_additions ORDER BY status") == [("added",), ("refused",)], timeout=60)
    ns.wait_published()
    events = {}
    for topic in CONSUMERS:
        if topic == "onboarding.requested":
            continue
        for m in ns.consume_all(topic):
            events.setdefault(topic, (m.key(), m.value(), headers(m)))
    check(sorted(events) == sorted(t for t in CONSUMERS if t != "onboarding.requested"), sorted(events))
    return events


def valid_message(topic, events):
    """A valid message for the topic: a new request, or a real event under a new
    event id (each daemon's handler is idempotent, so it applies and changes nothing);
    for a request, the onboarding id intake gives it too."""
    if topic == "onboarding.requested":
        r = example("virtual-core.json")
        h = {"event_id": str(uuid.uuid4()), "event_type": topic, "correlation_id": r["request_id"]}
        return r["request_id"].encode(), encode(topic, r), h, onboarding_id(r)
    key, value, h = events[topic]
    h = {"event_id": str(uuid.uuid4()), "event_type": topic, "correlation_id": h["correlation_id"]}
    return key, value, h, None


def test_hostile_events(ns):
    for service in SERVICES:
        for event_type in ns.routes(service):
            CONSUMERS.setdefault(event_type, []).append(service)
    check(len(CONSUMERS) == 16, f"sixteen consumed topics: {sorted(CONSUMERS)}")
    ns.start_all()
    hostile_requests(ns)
    events = real_events(ns)
    base = {t: valid_message(t, events)[2] for t in CONSUMERS}
    sent, valid = [], []  # (topic, probe, code); (topic, event_id, onboarding id of a request)
    plan = {t: classes(t, valid_message(t, events)[1], base[t]) for t in CONSUMERS}
    half = max(len(c) for c in plan.values()) // 2
    for part in (0, 1):
        for topic, cls in plan.items():
            for name, key, value, hdrs, code in (cls[:half] if part == 0 else cls[half:]):
                probe = f"{topic}/{name}"
                send(ns, topic, key, value, dict(hdrs, **{"x-probe": probe}))
                sent.append((topic, probe, code))
                k, v, h, rid = valid_message(topic, events)
                send(ns, topic, k, v, h)
                valid.append((topic, h["event_id"], rid))
        check(ns.producer.flush(60) == 0, "hostile messages acknowledged by the broker")
        if part == 0:
            # Halfway: every daemon killed in whatever it is doing, and started again.
            for p in list(ns.procs):
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                    p.wait()
            for service in SERVICES:
                ns.start(service, wait_ready=False)
            log(f"{len(sent)} hostile messages sent, every daemon killed and restarted")

    # Each valid message behind the hostile ones was applied by every daemon that
    # reads its topic: its event id is in the inbox.
    for topic, event_id, rid in valid:
        for service in CONSUMERS[topic]:
            wait_for(f"{service} applies the valid {topic} {event_id}", lambda service=service, event_id=event_id:
                     ns.sql("SELECT count(*) FROM lmp_inbox WHERE event_id = %s", event_id, service=service)[0][0]
                     == 1, timeout=120)
        if rid:
            wait_for("the valid request accepted", lambda rid=rid: ns.sql(
                "SELECT status NOT IN ('rejected', 'failed') FROM onboardings WHERE onboarding_id = %s", rid)
                == [(True,)], timeout=60)
    ns.wait_published()

    # Each hostile message dead-lettered once by each daemon that reads its topic,
    # with its code; none of the valid ones.
    seen = {}
    for m in ns.consume_all(ns.dlq):
        h = {k: (v or b"").decode(errors="replace") for k, v in (m.headers() or [])}
        check(h.get("error_code") and h.get("error_message") and h.get("source_service"), f"dead letter {h}")
        probe = h.get("x-probe")
        check(probe is not None, f"a valid message was dead-lettered: {h}")
        seen.setdefault((probe, h["source_service"]), set()).add((h["dlq_event_id"], h["error_code"]))
    for topic, probe, code in sent:
        for service in CONSUMERS[topic]:
            got = seen.get((probe, service), set())
            check(len(got) == 1, f"{probe} by {service}: dead-lettered {len(got)} times")
            check(next(iter(got))[1] == code, f"{probe} by {service}: {next(iter(got))[1]}, want {code}")
    log(f"{len(sent)} hostile messages, {sum(len(CONSUMERS[t]) for t, _, _ in sent)} dead letters, "
        f"{len(valid)} valid messages applied")
    for service in CONSUMERS["onboarding.failed"] + ["shipping"]:
        check(ns.sql("SELECT count(*) FROM lmp_outbox_parked", service=service) == [(0,)], f"{service}: nothing parked")


def request_with_bytes(name, path, placeholder, raw, **changes):
    """A request whose field at path holds raw bytes (not text) where the placeholder
    was: encoded by fastavro, then the bytes swapped in place."""
    r = example(name, **changes)
    node = r
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = placeholder
    value = encode("onboarding.requested", r)
    check(len(raw) == len(placeholder.encode()), "same length")
    return r, value.replace(placeholder.encode(), raw, 1)


def hostile_requests(ns):
    """Text that is not text in a request is a rejection with its field, not a dead
    letter; a long non-Latin name is refused with a message that is valid UTF-8; a
    virtual deployment with hundreds of addresses is refused, not carried."""
    cases = []
    r, v = request_with_bytes("virtual-core.json", ["customer", "legal_name"], "PLACEHOLDER-1", b"Acme \xff\xfe Corp!")
    cases.append((r, v, "customer.legal_name"))
    r, v = request_with_bytes("physical-complete.json", ["deployment", "addresses", 0, "city"], "PLACEHOLDER-2",
                              b"Hali\x00fax\x00\x00\x00\x00\x00")
    cases.append((r, v, "deployment.addresses[0].city"))
    r, v = request_with_bytes("virtual-core.json", ["submitted_by"], "PLACEHOLDER-3", b"a\xc0\xaf@exampl.co")
    cases.append((r, v, "submitted_by"))
    for r, v, _ in cases:
        ns.publish("onboarding.requested", raw=v, key=r["request_id"])
    name = "\u65e5\u672c\u306e\u9867\u5ba2" * 40  # 200 characters, 600 bytes
    first = example("virtual-core.json")
    first["customer"]["legal_name"] = name
    twin = example("virtual-core.json")
    twin["customer"]["legal_name"] = name
    ns.publish("onboarding.requested", first)
    # Accepted, and maybe further along already: it holds the name either way.
    wait_for("the first of two long names accepted", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(first)) in (
        [(s,)] for s in ("accepted", "users_allocated", "appliances_provisioned", "shipping_arranged", "confirmed")),
        show=lambda: ns.sql("SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(first)))
    ns.publish("onboarding.requested", twin)
    many = example("virtual-core.json")
    many["deployment"]["addresses"] = [{"ref": f"a{i}", "recipient": "R" * 200, "line1": "L" * 200, "city": "C" * 200,
                                        "postal_code": "P" * 200, "country": "CA"} for i in range(255)]
    ns.publish("onboarding.requested", many)

    def reasons(rid):
        rows = ns.sql("SELECT status, reasons FROM onboardings WHERE onboarding_id = %s", rid)
        return rows[0] if rows and rows[0][0] == "rejected" else None
    for r, _, field in cases:
        st, rs = wait_for(f"{field} answered", lambda r=r: reasons(onboarding_id(r)), timeout=60)
        check(any(x["code"] == "INVALID_TEXT" and x["field"] == field for x in rs), f"{field}: {rs}")
    st, rs = wait_for("the twin answered", lambda: reasons(onboarding_id(twin)), timeout=60)
    check(rs[0]["code"] == "LEGAL_NAME_TAKEN" and name[:50] in rs[0]["message"], rs)
    st, rs = wait_for("the many addresses answered", lambda: reasons(onboarding_id(many)), timeout=60)
    check([x["code"] for x in rs] == ["ADDRESSES_NOT_APPLICABLE"], rs)
    ns.wait_published(["intake"])
    answered = {onboarding_id(r) for r, _, _ in cases} | {onboarding_id(twin), onboarding_id(many)}
    # A request is keyed by its frontend's request id on onboarding.requested.
    request_keys = {r["request_id"] for r, _, _ in cases} | {twin["request_id"], many["request_id"]}
    found = set()
    for m in ns.consume_all("onboarding.rejected"):
        ev = decode(m.value())[1]  # fastavro refuses strings that are not UTF-8
        found.add(ev["onboarding_id"])
        check(ev["reasons"], "a rejection has its reasons")
    check(answered <= found, f"rejections missing for {answered - found}")
    for m in ns.consume_all(ns.dlq):
        check((m.key() or b"").decode(errors="replace") not in request_keys, "a request was dead-lettered")


if __name__ == "__main__":
    sys.exit(run(test_hostile_events))
