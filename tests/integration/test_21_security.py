"""Every trust boundary, tried with the real broker and PostgreSQL of the secured
stack: a daemon without credentials, with credentials the servers do not know, or
facing a server it cannot verify is turned away, says why in its log, and /readyz
says so; a principal that may not write a topic cannot forge its events; a daemon's
role reaches only its own database and nothing of the server's; admin routes need a
token, log who used them, take rotated tokens, and refuse hostile reference data
without changing anything; secrets appear in no log and no printed configuration;
retention purges every copy of a person's data from every daemon and keeps the
onboarding's facts."""
import json
import os
import re
import subprocess
import sys
import uuid

import psycopg
from confluent_kafka import Consumer, Producer

from harness import (BUILD, CONFIG, ROOT, SECRETS, SECURED, SERVICES, check, decode, deliver, encode, example,
                     http_get, http_post, kafka_conf, log, onboarding_id, owner_role, pg_connect, role, run, secret,
                     stack_conf, token, wait_for)


def work(ns, name):
    return os.path.join(BUILD, "Testing", f"{ns.db}-{name}")


def write(path, text):
    with open(path, "w") as fh:
        fh.write(text)
    return path


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def rogue_ca(base):
    """A CA nobody trusts, and a client certificate it signed for User:lmp-intake."""
    openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=rogue CA", "-keyout", base + "-ca.key", "-out", base + "-ca.crt")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
            "/CN=lmp-intake", "-keyout", base + "-client.key", "-out", base + "-client.csr")
    openssl("x509", "-req", "-in", base + "-client.csr", "-CA", base + "-ca.crt", "-CAkey", base + "-ca.key",
            "-CAcreateserial", "-days", "2", "-out", base + "-client.crt")
    return base + "-ca.crt", base + "-client.crt", base + "-client.key"


def readyz(p):
    code, body = http_get(p.http + "/readyz")
    return json.loads(body) if body else {}


def turned_away(ns, what, field, state, says, conf=None, **env):
    """An intake that the servers turn away: not ready, /readyz names the side, the
    log says why; it keeps running (and trying) until stopped."""
    if conf is not None:
        path = write(work(ns, re.sub(r"\W+", "-", what) + ".conf"),
                     "".join(f"{k} = {v}\n" for k, v in conf.items()))
        env["LMP_CONFIG"] = path
    p = ns.start("intake", wait_ready=False, **env)
    r = wait_for(f"{what}: /readyz says {field} {state}", lambda: (lambda r: r if r.get(field) == state else None)(
        readyz(p)), timeout=60)
    check(r["ready"] is False, f"{what}: ready anyway: {r}")
    wait_for(f"{what}: the log says '{says}'", lambda: says in open(p.logfile, errors="replace").read(), timeout=30)
    p.terminate()
    p.wait(30)
    for urls, url in ((ns.http, p.http), (ns.admin, p.admin)):
        if urls.get("intake") == url:
            del urls["intake"]  # the intake of the flow is started later
    log(f"{what}: refused, /readyz {field}={state}, log says '{says}'")


def test_security(ns):
    check(SECURED, "the test stack runs secured (deploy/stack up without LMP_STACK_SECURITY=plaintext)")
    ca, client_crt, client_key = rogue_ca(work(ns, "rogue"))

    # 1. Kafka turns away a daemon without credentials, with a certificate it did not
    # sign, or that cannot verify the broker; PostgreSQL one with a wrong password, one
    # that cannot verify the server, one without TLS, one at another daemon's database.
    good = stack_conf("intake")
    no_cert = {k: v for k, v in good.items() if "certificate" not in k and "ssl.key" not in k}
    turned_away(ns, "Kafka without a client certificate", "kafka", "unauthenticated", "no authenticated session with Kafka",
                conf=no_cert)
    turned_away(ns, "Kafka with a certificate of another CA", "kafka", "unauthenticated", "no authenticated session with Kafka",
                conf=dict(good, **{"kafka.property.ssl.certificate.location": client_crt,
                                   "kafka.property.ssl.key.location": client_key}))
    turned_away(ns, "Kafka broker it cannot verify", "kafka", "unauthenticated", "certificate verify failed",
                conf=dict(good, **{"kafka.property.ssl.ca.location": ca}))
    wrong = write(work(ns, "wrong.password"), "not-the-password\n")
    turned_away(ns, "PostgreSQL with a wrong password", "database", "refused", "password authentication failed",
                LMP_PG_PASSWORD_FILE=wrong)
    turned_away(ns, "PostgreSQL server it cannot verify", "database", "refused", "certificate verify failed",
                LMP_PG_SSLROOTCERT=ca)
    turned_away(ns, "PostgreSQL without TLS", "database", "refused", "no pg_hba.conf entry", LMP_PG_SSLMODE="disable",
                LMP_PG_ALLOW_INSECURE="true")
    turned_away(ns, "PostgreSQL at another daemon's database", "database", "refused", "permission denied",
                LMP_PG_DATABASE=ns.dbname("allocation"))
    for env, says in [({"LMP_PG_PASSWORD_FILE": "/nonexistent/pg.password"},
                       "pg.password_file: cannot read /nonexistent/pg.password"),
                      ({"LMP_KAFKA_PROPERTY_ENABLE_AUTO_COMMIT": "true"},
                       "kafka.property.enable.auto.commit: the runtime sets this itself"),
                      ({"LMP_KAFKA_PROPERTY_SSL_KEY_PASSWORD_FILE": "/nonexistent/key.password"},
                       "kafka.property.ssl.key.password_file: cannot read")]:
        out = subprocess.run([os.path.join(BUILD, "services", "intake", "lmp-intake"), "--check-config"],
                             env=ns.env("intake", **env), capture_output=True, text=True)
        check(out.returncode == 2 and says in out.stderr, f"{env}: {out.returncode} {out.stderr}")

    # 2. The broker's ACLs: frontends, warehouses and daemons write only their topics.
    acls = {}
    for who in ("frontend", "warehouse"):
        acls[who] = subprocess.run([os.path.join(ROOT, "deploy", "stack"), "acls", who, ns.prefix],
                                   capture_output=True, text=True, check=True).stdout
        ns.lmpctl("acls", "apply", f"User:{who}", input=acls[who])
    ns.start_all(LMP_RETENTION_DAYS=1, LMP_RETENTION_INTERVAL_S=1)
    frontend = Producer(kafka_conf("frontend", **{"log_level": 2}))
    r = example("virtual-core.json")
    check(deliver(frontend, ns.topic("onboarding.requested"), encode("onboarding.requested", r),
                  r["request_id"]) is None, "the frontend may submit requests")
    ask = {"request_id": str(uuid.uuid4()), "partner_id": r["partner_id"], "submitted_by": r["submitted_by"],
           "customer_id": str(uuid.uuid4()), "users": {"tier": 1, "cloud": 0, "sat": 0}, "submitted_at": 0}
    check(deliver(frontend, ns.topic("customer.users-requested"), encode("customer.users-requested", ask),
                  ask["request_id"]) is None, "the frontend may ask for more users")
    forged = str(uuid.uuid4())
    for topic in ("onboarding.accepted", "onboarding.failed", "shipment.dispatched", "onboarding.mail-settled",
                  "partner.balance", "partner.address", "customer.users-accepted", "customer.users-added"):
        err = deliver(frontend, ns.topic(topic), b"forged", forged)
        check(err is not None and err.name() == "TOPIC_AUTHORIZATION_FAILED", f"frontend wrote {topic}: {err}")
    warehouse = Producer(kafka_conf("warehouse", **{"log_level": 2}))
    err = deliver(warehouse, ns.topic("onboarding.failed"), b"forged", forged)
    check(err is not None and err.name() == "TOPIC_AUTHORIZATION_FAILED", f"warehouse wrote onboarding.failed: {err}")
    # A daemon's principal, with its own password: allocation may not say what intake says.
    allocation = Producer(kafka_conf("lmp-allocation", **{"log_level": 2}))
    err = deliver(allocation, ns.topic("onboarding.accepted"), b"forged", forged)
    check(err is not None and err.name() == "TOPIC_AUTHORIZATION_FAILED", f"allocation wrote accepted: {err}")
    # Each stage writes its own failures only: allocation cannot say that shipping
    # failed, nor fulfilment that allocation did.
    for who, other in (("lmp-allocation", "shipping"), ("lmp-appliance-fulfilment", "allocation")):
        p = Producer(kafka_conf(who, **{"log_level": 2}))
        err = deliver(p, ns.topic("onboarding.failed", other), b"forged", forged)
        check(err is not None and err.name() == "TOPIC_AUTHORIZATION_FAILED", f"{who} wrote {other}'s failures: {err}")
    reader = Consumer(kafka_conf("lmp-allocation", **{"group.id": f"lmp-allocation-{ns.prefix}",
                                                      "auto.offset.reset": "earliest", "log_level": 2}))
    reader.subscribe([ns.topic("onboarding.requested")])
    denied = None
    for _ in range(40):
        m = reader.poll(0.5)
        if m is not None and m.error():
            denied = m.error()
            break
    reader.close()
    check(denied is not None and denied.name() == "TOPIC_AUTHORIZATION_FAILED",
          f"allocation read the requests: {denied}")
    # A password the broker does not know gets no session at all.
    errors = []
    impostor = Producer(kafka_conf("frontend", **{"sasl.password": "guess", "log_level": 0,
                                                  "error_cb": lambda e: errors.append(e)}))
    impostor.produce(ns.topic("onboarding.requested"), value=b"x")

    def impostor_refused():
        impostor.poll(0.2)
        return any(e.name() == "_AUTHENTICATION" for e in errors)
    wait_for("the impostor refused", impostor_refused, timeout=30)
    check(impostor.flush(5) == 1, "the impostor's message was not delivered")
    wait_for("the real request confirmed", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(r)) == [("confirmed",)], timeout=90)
    for topic in ("onboarding.accepted", "onboarding.failed", "shipment.dispatched"):
        keys = [m.key() for m in ns.consume_all(topic)]
        check(forged.encode() not in keys, f"a forged event on {topic}")
    log("ACLs: frontend, warehouse and a daemon's principal refused every topic not theirs")

    # 3. PostgreSQL: a daemon's role reaches its own database only, and nothing of the
    # server's files or roles.
    me = role("allocation")
    with pg_connect(ns.dbname("allocation"), me, autocommit=True) as c:
        check(c.execute("SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
                        ).fetchone() == (False, False, False), "a plain role")
        # L4: it reads and writes rows; the tables are its owner's, who migrated them.
        c.execute("SELECT count(*) FROM pools").fetchone()
        owners = {o for (o,) in c.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")}
        check(owners == {owner_role("allocation")}, f"the tables belong to {owners}")
        for sql in ("SELECT pg_read_file('/etc/passwd')", "CREATE DATABASE intruder", "CREATE ROLE intruder",
                    "COPY (SELECT 1) TO PROGRAM 'true'", "CREATE TABLE intruder (x int)",
                    "ALTER TABLE pools ADD COLUMN intruder int", "DROP TABLE allocations",
                    "TRUNCATE onboardings", "CREATE FUNCTION intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
                    "DELETE FROM lmp_schema_migrations", "INSERT INTO lmp_schema_migrations(name) VALUES ('x')"):
            try:
                c.execute(sql)
                raise AssertionError(f"{me} may run {sql}")
            except psycopg.errors.InsufficientPrivilege:
                pass
    for db in (ns.dbname("intake"), ns.dbname("notifier")):
        try:
            pg_connect(db, me).close()
            check(False, f"{me} connected to {db}")
        except psycopg.OperationalError as e:
            check("permission denied" in str(e), str(e))
    try:
        psycopg.connect(host="127.0.0.1", port=int(os.environ.get("LMP_PG_PORT", "25432")), user=me,
                        password=secret(f"pg-{me}.password"), dbname=ns.dbname("allocation"), sslmode="disable").close()
        check(False, "a connection without TLS")
    except psycopg.OperationalError as e:
        check("no pg_hba.conf entry" in str(e), str(e))
    log("PostgreSQL: each role owns one database; no file, role, database or program is within reach")

    # 4. Admin routes: the token, the audit line, rotation, hostile reference data.
    tokens = work(ns, "tokens")
    alice_1, alice_2 = uuid.uuid4().hex, uuid.uuid4().hex
    write(tokens, f"operator {secret('admin-token')}\nalice {alice_1}\n")
    p = ns.start("allocation", LMP_ADMIN_TOKENS_FILE=tokens)
    pools = lambda: http_get(p.admin + "/v1/pools/partner-northwind", token=secret("admin-token"))  # noqa: E731
    before = pools()
    check(before[0] == 200, before)
    raise_total = {"pools": [{"partner_id": "partner-northwind", "product": "MDR_CORE", "total": 99}]}
    for bad in (None, "", uuid.uuid4().hex, alice_1[:-1], alice_1 + "0"):
        code, body = http_post(p.admin + "/v1/admin/load", raise_total, token=bad)
        check(code == 401 and json.loads(body)["error"], f"token {bad!r}: {code} {body}")
    check(pools() == before, "nothing changed without a valid token")
    code, body = http_post(p.admin + "/v1/admin/load", raise_total, token=alice_1)
    check(code == 200, body)
    wait_for("the audit line", lambda: '"audit: token:alice from 127.0.0.1: POST /v1/admin/load -> 200' in
             open(p.logfile).read())
    check("refused: no valid bearer token" in open(p.logfile).read(), "refusals are logged")
    # Reads are audited too, with the caller and where from.
    check('"audit: token:operator from 127.0.0.1: GET /v1/pools/partner-northwind -> 200' in open(p.logfile).read(),
          "a read is audited")
    write(tokens + ".new", f"operator {secret('admin-token')}\nalice {alice_2}\n")
    os.utime(tokens + ".new", (1, 1))  # a different time than the file it replaces
    os.replace(tokens + ".new", tokens)
    check(http_post(p.admin + "/v1/admin/load", raise_total, token=alice_1)[0] == 401, "the old token is gone")
    check(http_post(p.admin + "/v1/admin/load", raise_total, token=alice_2)[0] == 200, "the new token works")
    after = pools()
    for name, service, body, says in [
        ("a total past the bound", "allocation",
         {"pools": [{"partner_id": "partner-northwind", "product": "MDR_CORE", "total": 2147483647}]},
         "pools[0].total: must be an integer in 0..100000000"),
        ("an unknown section", "allocation", {"pool": []}, "'pool' is not a field"),
        ("a control character in an id", "allocation",
         {"partners": [{"partner_id": "partner-\u001b[31m", "name": "x"}]}, "partners[0].partner_id"),
        ("a share that is not an id", "allocation",
         {"partners": [{"partner_id": "partner-x", "shares_with": [7]}]}, "partners[0].shares_with[0]: must be text"),
        ("too many rows", "allocation",
         {"pools": [{"partner_id": f"p{i}", "product": "MDR_CORE", "total": 1} for i in range(10001)]},
         "at most 10000 rows per load"),
        ("a country that is not one", "shipping", {"partner_addresses": [{"partner_id": "partner-northwind", "address": {
            "recipient": "R", "line1": "1 St", "city": "C", "postal_code": "P", "country": "XX"}}]},
         "address.country: 'XX' is not an ISO 3166-1"),
        ("a header smuggled in an address", "shipping", {"partner_addresses": [{
            "partner_id": "partner-northwind", "address": {"recipient": "R\r\nBcc: eve@evil.example", "line1": "1 St",
                                                           "city": "C", "postal_code": "P", "country": "CA"}}]},
         "address.recipient"),
        ("an address without a city", "shipping", {"partner_addresses": [{"partner_id": "partner-northwind",
                                                                          "address": {"recipient": "R", "line1": "1",
                                                                                      "postal_code": "P",
                                                                                      "country": "CA"}}]},
         "address.city: is required"),
        ("a count past the bound", "appliance-fulfilment",
         {"inventory": [{"sku": "NS-100", "serial_prefix": "X-", "count": 5000000}]}, "inventory[0].count"),
        ("a serial with a space", "appliance-fulfilment",
         {"inventory": [{"sku": "NS-100", "serials": ["A 1"]}]}, "inventory[0].serials[0]"),
    ]:
        code, text = ns.admin_post(service, "/v1/admin/load", body)
        check(code == 400 and says in json.loads(text)["error"], f"{name}: {code} {text}")
    check(pools() == after, "refused loads changed nothing")
    log("admin: 401 without a valid token, audit lines name who, a rotated token takes over, "
        "hostile reference data refused whole")

    # 5. No secret in any log or printed configuration.
    out = subprocess.run([os.path.join(BUILD, "services", "intake", "lmp-intake"), "--check-config"],
                         env=ns.env("intake", LMP_PG_PASSWORD="pg-pass-in-env",
                                    LMP_KAFKA_PROPERTY_SASL_PASSWORD="kafka-pass-in-env"),
                         capture_output=True, text=True)
    check(out.returncode == 0, out.stderr)
    check("pg.password = ********" in out.stdout and "kafka.property.sasl.password = ********" in out.stdout,
          out.stdout)
    # The partner's access token the status route was read with below counts too: it
    # is read first, so it is in the daemons' hands before the logs are searched.
    partner_token = token("partner-northwind")
    check(http_get(ns.http["intake"] + "/v1/onboardings/" + onboarding_id(r), token=partner_token)[0] == 200,
          "the partner reads the onboarding")
    secrets = {"pg-pass-in-env", "kafka-pass-in-env", alice_1, alice_2, partner_token}
    for f in os.listdir(SECRETS):
        if f.endswith(".password") or f.startswith("admin-token"):
            secrets.update(line.split()[-1] for line in open(os.path.join(SECRETS, f)) if line.strip())
    printed = out.stdout + out.stderr + subprocess.run(
        [os.path.join(BUILD, "services", "intake", "lmp-intake"), "--print-config"], capture_output=True,
        text=True).stdout
    for proc in ns.procs:
        printed += open(proc.logfile, errors="replace").read()
    leaked = [s[:6] + "..." for s in secrets if s in printed]
    check(not leaked, f"secrets in logs or printed settings: {leaked}")
    log(f"none of {len(secrets)} secrets in {len(ns.procs)} daemons' logs or the printed settings")

    # 6. Retention (retention.days = 1 here): an onboarding finished two days ago loses
    # its request body, its processed inbox rows and its mail bodies; its facts stay. A
    # recent one keeps everything.
    old, oid = r, onboarding_id(r)
    stages = ns.sql("SELECT count(*) FROM onboarding_stages WHERE onboarding_id = %s", oid)
    wait_for("the old onboarding's mails sent", lambda: ns.sql(
        "SELECT count(*) FROM mails WHERE onboarding_id = %s AND status = 'sent'", oid, service="notifier")[0][0] >= 2)
    recent = example("virtual-core.json")
    ns.publish("onboarding.requested", recent)
    wait_for("the recent one confirmed", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(recent)) == [("confirmed",)],
        timeout=90)
    ns.sql("UPDATE onboardings SET updated_at = now() - interval '2 days' WHERE onboarding_id = %s RETURNING 1", oid)
    ns.sql("UPDATE lmp_inbox SET processed_at = now() - interval '2 days' WHERE event_id IN (SELECT event_id "
           "FROM lmp_inbox ORDER BY processed_at LIMIT 1) RETURNING 1")
    ns.sql("UPDATE mails SET created_at = now() - interval '2 days' WHERE onboarding_id = %s RETURNING 1", oid,
           service="notifier")
    wait_for("the old request body purged", lambda: ns.sql(
        "SELECT request FROM onboardings WHERE onboarding_id = %s", oid) == [({"purged": True},)], timeout=30)
    wait_for("the old mail bodies purged", lambda: ns.sql(
        "SELECT bool_and(body = '' AND subject = '') FROM mails WHERE onboarding_id = %s", oid,
        service="notifier") == [(True,)], timeout=30)
    check(ns.sql("SELECT count(*) FROM lmp_inbox WHERE processed_at < now() - interval '1 day'") == [(0,)],
          "old inbox rows purged")
    code, body = http_get(ns.http["intake"] + "/v1/onboardings/" + oid, token=token("partner-northwind"))
    facts = json.loads(body)
    check(code == 200 and facts["status"] == "confirmed" and facts["customer"]["legal_name"] ==
          old["customer"]["legal_name"] and facts["customer"]["portal_admin_email"] is None, facts)
    check(ns.sql("SELECT count(*) FROM onboarding_stages WHERE onboarding_id = %s", oid) == stages, "stages kept")
    check(ns.sql("SELECT status FROM mails WHERE onboarding_id = %s AND kind = 'invitation'", oid,
                 service="notifier") == [("sent",)], "the mail's fact kept")
    check(ns.sql("SELECT request->'customer'->>'portal_admin_email' FROM onboardings WHERE onboarding_id = %s",
                 onboarding_id(recent)) == [(recent["customer"]["portal_admin_email"],)], "the recent request kept")
    check(ns.sql("SELECT bool_and(body <> '') FROM mails WHERE onboarding_id = %s", onboarding_id(recent),
                 service="notifier") == [(True,)], "the recent mails kept")
    log("retention: the old onboarding's request body, inbox rows and mail bodies purged; its facts kept")
    every_copy_purged(ns)


def every_copy_purged(ns):
    """Retention on a physical onboarding, dispatched: past retention.days no value a
    person could be found by (the emails, every address line, postal code and phone)
    is left in the status answer or in any table of any daemon; the partner's default
    address, reference data, is not the person's. Its facts stay."""
    tag = uuid.uuid4().hex[:8]
    r = example("physical-complete.json")
    r["submitted_by"] = f"ops-{tag}@northwind-msp.example.com"
    r["customer"]["portal_admin_email"] = f"it-{tag}@maritime-freight.example.com"
    for a in r["deployment"]["addresses"]:
        a["line1"] = f"{tag} {a['line1']}"
        a["line2"] = f"Suite {tag}"
        a["recipient"] = f"{a['recipient']} {tag}"
        a["phone"] = f"+1 902 555 {tag[:4]}"
    personal = [r["submitted_by"], r["customer"]["portal_admin_email"]] + [
        a[k] for a in r["deployment"]["addresses"] for k in ("line1", "line2", "recipient", "phone")]
    oid = onboarding_id(r)
    ns.publish("onboarding.requested", r)
    wait_for("the physical onboarding confirmed", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", oid) == [("confirmed",)], timeout=120)
    for m in [m for m in ns.consume_all("shipment.requested") if m.key() == oid.encode()]:
        sid = decode(m.value())[1]["shipment_id"]
        ns.publish("shipment.dispatched", {"shipment_id": sid, "carrier": "Purolator", "tracking_number": "PRL" + tag,
                                           "dispatched_at": 1795800000000}, key=oid)
    wait_for("both shipments dispatched", lambda: ns.sql(
        "SELECT count(*) FROM shipments WHERE onboarding_id = %s AND status = 'dispatched'", oid,
        service="shipping") == [(2,)], timeout=60)
    wait_for("the mails sent", lambda: ns.sql(
        "SELECT count(*) FROM mails WHERE onboarding_id = %s AND status = 'sent'", oid, service="notifier")[0][0] >= 4,
        timeout=60)
    ns.sql("UPDATE onboardings SET updated_at = now() - interval '2 days' WHERE onboarding_id = %s RETURNING 1", oid)
    ns.sql("UPDATE shipments SET dispatched_at = now() - interval '2 days' WHERE onboarding_id = %s RETURNING 1", oid,
           service="shipping")
    ns.sql("UPDATE mails SET created_at = now() - interval '2 days' WHERE onboarding_id = %s RETURNING 1", oid,
           service="notifier")
    ns.sql("UPDATE confirmations SET confirmed_at = now() - interval '2 days' WHERE onboarding_id = %s RETURNING 1",
           oid, service="notifier")

    def left():
        code, body = http_get(ns.http["intake"] + "/v1/onboardings/" + oid, token=token("partner-northwind"))
        found = [v for v in personal if v in body]
        for service in SERVICES:
            with pg_connect(ns.dbname(service)) as c:
                tables = [t for (t,) in c.execute("SELECT table_name FROM information_schema.tables WHERE "
                                                  "table_schema = 'public' AND table_type = 'BASE TABLE'")]
                for t in tables:
                    if t == "partner_addresses":
                        continue
                    text = " ".join(row for (row,) in c.execute(f'SELECT t::text FROM "{t}" t'))
                    found += [f"{service}.{t}: {v}" for v in personal if v in text]
        return found
    wait_for("every copy of the person's data purged", lambda: not left(), timeout=60, show=left)
    code, body = http_get(ns.http["intake"] + "/v1/onboardings/" + oid, token=token("partner-northwind"))
    facts = json.loads(body)
    check(code == 200 and facts["status"] == "confirmed" and len(facts["shipments"]) == 2 and
          all(sh["tracking_number"] == "PRL" + tag for sh in facts["shipments"]), f"the facts kept: {facts}")
    log(f"retention: none of {len(personal)} personal values of a dispatched physical onboarding left in the "
        f"status answer or any daemon's tables; its facts kept")


if __name__ == "__main__":
    sys.exit(run(test_security))
