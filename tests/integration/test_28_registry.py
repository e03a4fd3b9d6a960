"""Schema registry framing against a real registry (Apicurio Registry's Confluent-
compatible API) and clients no one here wrote: a Python frontend publishes with
confluent-kafka's AvroSerializer and reads the outcome with its AvroDeserializer; a
Python warehouse reads shipment requests and reports a dispatch the same way; the
daemons register their schemas under <topic>-value with BACKWARD compatibility,
frame what they emit with the ids, and read both framings; an id nobody knows is
dead-lettered, an id that cannot be resolved because the registry is away waits for
it; kcat lists and reads the topics."""
import json
import subprocess
import sys

from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from harness import (KAFKA_PORT, REGISTRY_PORT, REGISTRY_URL, SCHEMAS, SECRETS, SECURED, Namespace, check,
                     TcpGate, example, headers, log, onboarding_id, registry_client, registry_env, run, wait_for)


def ctx(ns, event_type):
    return SerializationContext(ns.topic(event_type), MessageField.VALUE)


def of(ns, event_type, key):
    return [m for m in ns.consume_all(event_type) if m.key() == key.encode()]


def test_registry(ns):
    src = registry_client()
    ns.start_all(**registry_env())

    # 1. A frontend with AvroSerializer: the request is confirmed through all five daemons.
    serialize = AvroSerializer(src, SCHEMAS["onboarding.requested"]["json"])
    r = example("physical-complete.json")
    value = serialize(r, ctx(ns, "onboarding.requested"))
    check(value[0] == 0, "the serializer frames with a registry id")
    ns.publish("onboarding.requested", raw=value, key=r["request_id"])
    oid = onboarding_id(r)
    wait_for("confirmed from a registry-framed request", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", oid) == [("confirmed",)], timeout=120)

    # 2. What the daemons emitted is registry-framed, under subjects they registered
    # with BACKWARD compatibility, and AvroDeserializer reads it.
    deserialize = AvroDeserializer(src)
    ns.wait_published()
    for event_type in ("onboarding.accepted", "onboarding.users-allocated", "onboarding.appliances-provisioned",
                       "onboarding.shipping-completed", "onboarding.confirmed"):
        msgs = of(ns, event_type, oid)
        check(msgs, f"{event_type}: no event")
        check(msgs[0].value()[0] == 0 and headers(msgs[0])["content_type"] == "application/vnd.apache.avro+registry",
              f"{event_type}: framed {msgs[0].value()[:5]!r}")
        v = deserialize(msgs[0].value(), ctx(ns, event_type))
        check(isinstance(v, dict) and v.get("onboarding_id", oid) == oid, f"{event_type}: {v}")
        subject = ns.topic(event_type) + "-value"
        check(src.get_compatibility(subject) == "BACKWARD", f"{subject}: compatibility")
    confirmed = deserialize(of(ns, "onboarding.confirmed", oid)[0].value(), ctx(ns, "onboarding.confirmed"))
    check({m["kind"] for m in confirmed["mails"]} == {"confirmation", "invitation"}, confirmed)

    # 3. A warehouse: reads its shipment requests, reports one dispatched.
    ship = deserialize(of(ns, "shipment.requested", oid)[0].value(), ctx(ns, "shipment.requested"))
    dispatched = {"shipment_id": ship["shipment_id"], "carrier": "Purolator", "tracking_number": "PRL-REG-1",
                  "dispatched_at": 0}
    report = AvroSerializer(src, SCHEMAS["shipment.dispatched"]["json"])
    ns.publish("shipment.dispatched", raw=report(dispatched, ctx(ns, "shipment.dispatched")), key=oid)
    wait_for("the dispatch recorded", lambda: ns.sql(
        "SELECT tracking_number FROM shipments WHERE shipment_id = %s", ship["shipment_id"],
        service="shipping") == [("PRL-REG-1",)], timeout=60)
    log("Python's AvroSerializer and AvroDeserializer: a frontend and a warehouse through the registry")

    # 4. Both framings are read whatever the setting: a single-object request too.
    plain = example("virtual-core.json")
    ns.publish("onboarding.requested", plain)
    wait_for("a single-object request confirmed", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(plain)) == [("confirmed",)],
        timeout=120)

    # 5. An id the registry does not know is the message's fault: dead-lettered.
    body = value[5:]
    ns.publish("onboarding.requested", raw=b"\x00\x7f\xff\xff\xf0" + body, key="unknown-id")
    dl = wait_for("the unknown id dead-lettered", lambda: [
        m for m in ns.consume_all(ns.dlq) if m.key() == b"unknown-id"], timeout=60)
    check(headers(dl[0])["error_code"] == "UNKNOWN_SCHEMA" and "2147483632" in headers(dl[0])["error_message"],
          headers(dl[0]))

    # 6. A daemon without a registry reads single-object only; a registry-framed
    # message says so in its dead letter.
    other = Namespace("noregistry")
    gate = TcpGate(REGISTRY_PORT)
    try:
        plain_intake = other.start("intake")
        req2 = example("virtual-core.json")
        v2 = serialize(req2, ctx(other, "onboarding.requested"))
        other.publish("onboarding.requested", raw=v2, key=req2["request_id"])
        dl = wait_for("dead-lettered without a registry", lambda: [
            m for m in other.consume_all(other.dlq) if m.key() == req2["request_id"].encode()], timeout=60)
        check("no schema_registry.url is set" in headers(dl[0])["error_message"], headers(dl[0]))
        plain_intake.terminate()
        check(plain_intake.wait(30) == 0, "the intake without a registry drained")

        # 7. A registry away is no fault of the message: an id not yet known waits
        # for it, and is applied when it is back. A new version of the request (one
        # more optional field) has an id this intake has not met.
        via_gate = registry_env(REGISTRY_URL.replace(str(REGISTRY_PORT), str(gate.port)))
        p = other.start("intake", LMP_KAFKA_GROUP_ID="gated-" + other.prefix, **via_gate)
        # The same request, read from the start by an intake that has the registry.
        wait_for("the registry-framed request applied with a registry", lambda: other.sql(
            "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(req2)) == [("accepted",)],
            timeout=60)
        newer = json.loads(SCHEMAS["onboarding.requested"]["json"])
        newer["fields"].append({"name": "campaign", "type": ["null", "string"], "default": None})
        later = example("cloud-only.json")
        later["campaign"] = "spring"
        v3 = AvroSerializer(src, json.dumps(newer))(later, ctx(other, "onboarding.requested"))
        gate.open = False
        other.publish("onboarding.requested", raw=v3, key=later["request_id"])
        wait_for("the gated intake retrying", lambda: any(
            "rolled back" in line and "schema registry" in line for line in open(p.logfile)), timeout=60)
        check(gate.refused > 0, "the intake asked the registry while it was away")
        check(not [m for m in other.consume_all(other.dlq) if m.key() == later["request_id"].encode()],
              "not dead-lettered while the registry is away")
        gate.open = True
        wait_for("applied when the registry is back", lambda: other.sql(
            "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(later)) == [("accepted",)],
            timeout=90)
        log(f"registry away: {gate.refused} connections refused, the message waited, then applied")
    finally:
        gate.close()
        problems = other.close()
        check(not problems, "; ".join(problems))

    # 8. kcat lists the topics and reads one.
    tls = ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={SECRETS}/ca.crt",
           "-X", f"ssl.certificate.location={SECRETS}/kafka-admin.crt",
           "-X", f"ssl.key.location={SECRETS}/kafka-admin.key"] if SECURED else []
    broker = f"127.0.0.1:{KAFKA_PORT + 3 if SECURED else KAFKA_PORT}"
    out = subprocess.run(["kcat", "-b", broker, *tls, "-L", "-J"], capture_output=True, text=True, timeout=60)
    check(out.returncode == 0, out.stderr)
    topics = {t["topic"] for t in json.loads(out.stdout)["topics"]}
    check(ns.topic("onboarding.confirmed") in topics and set(ns.dlq) <= topics, "kcat lists our topics")
    out = subprocess.run(["kcat", "-b", broker, *tls, "-C", "-t", ns.topic("onboarding.confirmed"), "-o", "beginning",
                          "-e", "-q", "-f", "%k %h\n"], capture_output=True, text=True, timeout=60)
    check(out.returncode == 0 and oid in out.stdout and "event_type=onboarding.confirmed" in out.stdout,
          f"kcat reads the confirmed events: {out.stdout[:300]} {out.stderr[:300]}")
    log("kcat lists the topics and reads keys and headers")


if __name__ == "__main__":
    sys.exit(run(test_registry))
