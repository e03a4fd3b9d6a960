"""Poison never blocks a partition: garbage, truncated Avro, an unknown schema and
the wrong event type go to the dead-letter topic with the error in headers, and the
valid request behind them on the same partition is still processed. An event the
broker refuses for good is parked with a copy in the dead-letter topic, and what
comes after it flows."""
import struct
import sys


from harness import cap_message_bytes, check, encode, example, headers, http_get, onboarding_id, run, wait_for


def test_dead_letter(ns):
    ns.start()
    key = "same-partition-key"
    good = example("virtual-core.json")
    valid = encode("onboarding.requested", good)
    unknown = b"\xc3\x01" + struct.pack("<Q", 0x0123456789ABCDEF) + valid[10:]
    accepted_schema = encode("onboarding.rejected", {
        "onboarding_id": "x", "partner_id": "p", "reasons": [], "rejected_at": 0})
    poison = {
        "BAD_FRAMING": b"this is not avro at all",
        "UNDECODABLE": valid[: len(valid) // 2],
        "UNKNOWN_SCHEMA": unknown,
        "WRONG_TOPIC": accepted_schema,
        "TOO_LARGE": b"\xc3\x01" + b"\x00" * (1024 * 1024 + 100),
    }
    for code, raw in poison.items():
        ns.publish("onboarding.requested", raw=raw, key=key,
                   headers={"event_id": "poison-" + code, "x-origin": "test"})
    ns.publish("onboarding.requested", raw=b"", key=key, headers={})
    ns.publish("onboarding.requested", raw=valid, key=key)

    dl = ns.consume(ns.dlq, len(poison) + 1)
    check(len(dl) == len(poison) + 1, f"{len(dl)} dead letters, want {len(poison) + 1}")
    found = {}
    for m in dl:
        h = headers(m)
        found.setdefault(h["error_code"], []).append(h)
        check(h["source_topic"] == ns.topic("onboarding.requested"), h)
        check(h["source_service"] == "intake", h)
        check(int(h["source_offset"]) >= 0 and h["error_message"], h)
        check(m.key().decode() == key, "the key is kept")
        if h.get("event_id", "").startswith("poison-"):
            check(h["x-origin"] == "test", "original headers are kept")
            orig = poison[h["error_code"]]
            if "dlq_truncated_from" in h:
                check(int(h["dlq_truncated_from"]) == len(orig) and orig.startswith(m.value()),
                      "an oversized copy is cut and says its size")
            else:
                check(m.value() == orig, "the original bytes are kept")
    for code in poison:
        check(code in found, f"{code} not dead-lettered: {sorted(found)}")
    check(len(found["BAD_FRAMING"]) == 2, "the empty message is dead-lettered too")

    wait_for("the valid request behind the poison", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(good)) == [("accepted",)])
    # A redelivery of the same poison is recognised by its position: one dead letter each.
    check(ns.sql("SELECT count(*) FROM lmp_inbox")[0][0] == len(poison) + 2, "inbox rows")

    # An event the broker refuses for good is parked, not retried forever: the
    # accepted topic takes no message over 400 bytes, an accepted event is larger.
    # What intake answered so far is on the broker first.
    ns.wait_published(["intake"])
    cap_message_bytes(ns, "onboarding.accepted", 400)
    big = example("physical-complete.json")
    ns.publish("onboarding.requested", big, key=key)
    after = example("rejected-breach.json")  # a small answer on another topic, behind it
    ns.publish("onboarding.requested", after, key=key)
    parked = wait_for("the refused event parked", lambda: ns.sql(
        "SELECT topic, reason FROM lmp_outbox_parked"), timeout=120)
    check(parked[0][0] == ns.topic("onboarding.accepted") and "too large" in parked[0][1].lower(), parked)
    wait_for("the outbox empty again", lambda: ns.sql("SELECT count(*) FROM lmp_outbox")[0][0] == 0, timeout=60)
    wait_for("the request behind it answered", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(after)) == [("rejected",)])
    copies = [headers(m) for m in ns.consume_all(ns.dlq) if headers(m).get("error_code") == "PUBLISH_REFUSED"]
    check(len(copies) == 1 and copies[0]["source_topic"] == ns.topic("onboarding.accepted") and
          copies[0]["event_type"] == "onboarding.accepted", f"one copy of the parked event: {copies}")
    m = wait_for("the parked counter", lambda: (lambda t: "lmp_outbox_parked_total{service=\"intake\"} 1" in t)(
        http_get(ns.http["intake"] + "/metrics")[1]))


if __name__ == "__main__":
    sys.exit(run(test_dead_letter))
