"""A frontend upgraded to the next version of onboarding.requested (one more field,
with a default) is understood by an intake given that version's file, and only then;
a version intake cannot read keeps it from starting, with the reason."""
import io
import json
import os
import subprocess
import sys

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from harness import BUILD, ROOT, _collect, _expand, check, example, headers, onboarding_id, run, wait_for


def next_version(extra_field):
    with open(os.path.join(ROOT, "schemas", "onboarding.requested.avsc")) as fh:
        s = json.load(fh)
    s["fields"].append(extra_field)
    return s


def frame(schema_json, record):
    defs = {}
    for f in os.listdir(os.path.join(ROOT, "schemas")):
        with open(os.path.join(ROOT, "schemas", f)) as fh:
            _collect(json.load(fh), "", defs)
    _collect(schema_json, "", defs)
    parsed = parse_schema(_expand(schema_json, "", defs, set()), _write_hint=False)
    fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + fp)
    fastavro.schemaless_writer(buf, parsed, record)
    return buf.getvalue()


def test_evolution(ns):
    versions = os.path.join(BUILD, "Testing", ns.db + "-schemas")
    os.makedirs(versions, exist_ok=True)
    nxt = next_version({"name": "referral_code", "type": ["null", "string"], "default": None})
    with open(os.path.join(versions, "onboarding.requested.v2.avsc"), "w") as fh:
        json.dump(nxt, fh)

    # An intake that knows only the current version dead-letters the newer message...
    old = ns.start("intake", LMP_KAFKA_GROUP_ID="old-" + ns.prefix)
    r = example("virtual-core.json")
    r2 = dict(r, referral_code="SPRING-26")
    ns.publish("onboarding.requested", key=r["request_id"], raw=frame(nxt, r2))
    dl = ns.consume(ns.dlq, 1)
    check(len(dl) == 1 and headers(dl[0])["error_code"] == "UNKNOWN_SCHEMA", "old intake: unknown schema")
    old.terminate()
    old.wait(30)

    # ...one given the version reads it into the current schema and accepts it.
    ns.start("intake", LMP_SCHEMAS_EXTRA_DIR=versions)
    wait_for("the newer request accepted", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(r)) == [("accepted",)], timeout=60)
    stored = ns.sql("SELECT request->'customer'->>'legal_name', request ? 'referral_code' FROM onboardings "
                    "WHERE onboarding_id = %s", onboarding_id(r))
    check(stored == [(r["customer"]["legal_name"], False)], f"read into the current schema: {stored}")

    # A version the current reader cannot read is refused at start-up.
    bad = os.path.join(BUILD, "Testing", ns.db + "-bad")
    os.makedirs(bad, exist_ok=True)
    with open(os.path.join(bad, "onboarding.requested.v9.avsc"), "w") as fh:
        json.dump(next_version({"name": "partner_id", "type": "int"}) | {"fields": [
            f for f in nxt["fields"] if f["name"] != "partner_id"] + [{"name": "partner_id", "type": "int"}]}, fh)
    out = subprocess.run([os.path.join(BUILD, "services", "intake", "lmp-intake")],
                         env=ns.env(LMP_SCHEMAS_EXTRA_DIR=bad), capture_output=True, text=True, timeout=30)
    check(out.returncode == 2 and "cannot read this version" in out.stderr, out.stderr)


if __name__ == "__main__":
    sys.exit(run(test_evolution))
