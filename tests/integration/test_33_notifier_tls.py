"""The notifier and its SMTP server, and what it keeps (M5, M2, M6 of the security
review). Real SMTP servers of the test's own (Debian's aiosmtpd, as the stack runs
it) with certificates made here by openssl, and a real notifier:

- notifier.smtp_tls = required (the default) and a server that offers no STARTTLS:
  no mail goes in clear; each is retried with its error, never delivered;
- the same mails, once the server offers STARTTLS and wants AUTH: delivered once
  each, over TLS, after the server saw the notifier's login;
- a server whose certificate another CA signed: refused, not delivered;
- a wrong password: the server refuses the login, the mail waits (retried, not
  given up as the mail's fault);
- smtp_tls = none: plaintext works, as the setting says;
- events whose onboarding id or partner id carry the review's CR LF payload are
  dead-lettered with the field named, and nothing is owed or mailed, even by a
  notifier whose server would take anything;
- retention.days: once a confirmed onboarding's mails are past it, no email, name,
  address or phone submitted with it is in any of the notifier's tables, nor in its
  admin answer for the onboarding."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

from harness import BUILD, check, example, headers, http_get, log, onboarding_id, run, secret, wait_for

PASSWORD = "s3cret-" + uuid.uuid4().hex[:12]
# The review's payload (M2): headers of its own and a replaced body.
PAYLOAD = "x>\r\nBcc: eve@evil.example\r\nContent-Type: text/html\r\n\r\n<a href=http://evil>pay</a>\r\nX: <y"

SERVER = r'''
import asyncio, json, os, socket, ssl, sys, time
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

mode, certs, out = sys.argv[1], sys.argv[2], sys.argv[3]
log = open(os.path.join(out, "events"), "a", buffering=1)
with open(os.path.join(certs, "password")) as fh:
    password = fh.read().strip().encode()


class Handler:
    async def handle_DATA(self, server, session, envelope):
        with open(os.path.join(out, "%d.eml" % time.time_ns()), "wb") as fh:
            fh.write(envelope.original_content or envelope.content)
        log.write(json.dumps({"event": "mail", "tls": session.ssl is not None,
                              "authenticated": bool(session.authenticated), "rcpt": envelope.rcpt_tos}) + "\n")
        return "250 2.0.0 OK"


def authenticator(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == b"lmp-notifier" and data.password == password
    log.write(json.dumps({"event": "auth", "ok": ok, "mechanism": mechanism, "tls": session.ssl is not None}) + "\n")
    return AuthResult(success=ok, handled=False)  # a refusal answers 535


kw = {}
if mode == "starttls":
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.path.join(certs, "server.crt"), os.path.join(certs, "server.key"))
    kw = dict(tls_context=ctx, require_starttls=True, auth_required=True, auth_require_tls=True,
              authenticator=authenticator)
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(16)
loop = asyncio.new_event_loop()
loop.run_until_complete(loop.create_server(lambda: SMTP(Handler(), hostname="mail.test", **kw), sock=sock))
print(sock.getsockname()[1], flush=True)
loop.run_forever()
'''


def openssl(*args):
    out = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30)
    check(out.returncode == 0, f"openssl {args[0]}: {out.stderr}")


def make_certs(d):
    """A CA and a server certificate for 127.0.0.1 it signs; another CA that signs nothing."""
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-subj", f"/CN=test 33 {ca}", "-keyout", f"{d}/{ca}.key", "-out", f"{d}/{ca}.crt",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr")
    with open(f"{d}/server.ext", "w") as fh:
        fh.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                 "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{d}/server.ext", "-out", f"{d}/server.crt")
    for name, text in (("password", PASSWORD), ("wrong-password", "not-" + PASSWORD)):
        with open(f"{d}/{name}", "w") as fh:
            fh.write(text + "\n")  # a trailing newline, as an editor leaves it
        os.chmod(f"{d}/{name}", 0o600)


class Smtp:
    """One SMTP server of the test's own: plaintext only, or STARTTLS required with AUTH."""

    def __init__(self, mode, certs, base):
        self.out = tempfile.mkdtemp(prefix=f"smtp-{mode}-", dir=base)
        self.proc = subprocess.Popen(["/usr/bin/python3", "-c", SERVER, mode, certs, self.out],
                                     stdout=subprocess.PIPE, stderr=open(os.path.join(self.out, "log"), "w"), text=True)
        line = self.proc.stdout.readline()
        check(line.strip().isdigit(), f"the {mode} SMTP server did not start: see {self.out}/log")
        self.url = f"smtp://127.0.0.1:{int(line)}"

    def events(self, kind=None):
        path = os.path.join(self.out, "events")
        if not os.path.exists(path):
            return []
        with open(path) as fh:
            return [e for e in map(json.loads, fh) if kind is None or e["event"] == kind]

    def message_ids(self):
        import email
        import email.policy
        ids = []
        for f in sorted(os.listdir(self.out)):
            if f.endswith(".eml"):
                with open(os.path.join(self.out, f), "rb") as fh:
                    ids.append(str(email.message_from_bytes(fh.read(), policy=email.policy.default)["Message-ID"]))
        return ids

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.out, ignore_errors=True)


def completed(request):
    """A shipping-completed for a request (physical: its addresses and phone)."""
    oid = onboarding_id(request)
    return oid, {"onboarding_id": oid, "onboarding": {
        "onboarding_id": oid, "customer_id": str(uuid.uuid4()), "account_name": request["customer"]["legal_name"],
        "request": request, "warnings": [], "accepted_at": 0}, "allocations": [], "appliances": [], "shipments": [],
        "completed_at": 0}


def dispatched(request, oid):
    """The tracking of one shipment of a request, to its first address."""
    a = request["deployment"]["addresses"][0]
    return {"onboarding_id": oid, "shipment_id": str(uuid.uuid4()), "partner_id": request["partner_id"],
            "partner_email": request["submitted_by"], "account_name": request["customer"]["legal_name"],
            "carrier": "Purolator", "tracking_number": "PRL" + uuid.uuid4().hex[:8],
            "address": {k: a.get(k) for k in ("ref", "recipient", "line1", "line2", "city", "region", "postal_code",
                                              "country", "phone")},
            "items": [], "dispatched_at": 0}


def mails(ns, oid):
    return {k: (st, n, err) for k, st, n, err in ns.sql(
        "SELECT kind, status, attempts, last_error FROM mails WHERE onboarding_id = %s", oid, service="notifier")}


def owe(ns, request):
    oid, ev = completed(request)
    ns.publish("onboarding.shipping-completed", ev, key=oid)
    wait_for(f"{oid}: two mails owed", lambda: len(mails(ns, oid)) == 2, timeout=60)
    return oid


def notifier(ns, smtp, certs, tls="required", ca="ca.crt", password="password", **env):
    """A notifier on smtp with the given settings; mails retried within 2 s."""
    settings = {"LMP_NOTIFIER_SMTP_URL": smtp.url, "LMP_NOTIFIER_SMTP_TLS": tls, "LMP_NOTIFIER_RETRY_MAX_S": 2,
                "LMP_NOTIFIER_SMTP_TIMEOUT_S": 5, "LMP_NOTIFIER_SMTP_CA_FILE": f"{certs}/{ca}" if ca else "",
                "LMP_NOTIFIER_SMTP_USERNAME": "lmp-notifier" if password else "",
                "LMP_NOTIFIER_SMTP_PASSWORD_FILE": f"{certs}/{password}" if password else ""}
    settings.update(env)
    return ns.start("notifier", **settings)


def stop(p):
    p.send_signal(signal.SIGTERM)
    check(p.wait(30) == 0, f"the notifier stopped with {p.returncode}, see {p.logfile}")


def retried_not_sent(ns, smtp, oid, delivered_before, what, error_has):
    """Both mails of oid attempted at least twice, still pending, each error naming
    the cause; and the server received no mail since delivered_before."""
    def attempts():
        m = mails(ns, oid)
        return m if all(n >= 2 and st == "pending" for st, n, _ in m.values()) else None
    m = wait_for(f"{what}: the mails retried", attempts, timeout=60, show=lambda: mails(ns, oid))
    for kind, (st, n, err) in m.items():
        check(any(w.lower() in (err or "").lower() for w in error_has), f"{what}: {kind}'s error: {err!r}")
    check(len(smtp.events("mail")) == delivered_before, f"{what}: the server received a mail: {smtp.events()}")
    log(f"{what}: not sent, retried: {next(iter(m.values()))[2]}")


def test_notifier_tls(ns):
    base = os.path.join(BUILD, "Testing")
    certs = tempfile.mkdtemp(prefix=f"{ns.db}-certs-", dir=base)
    servers = []
    try:
        make_certs(certs)
        plain, tls = Smtp("plain", certs, base), Smtp("starttls", certs, base)
        servers += [plain, tls]
        run_all(ns, certs, plain, tls)
    finally:
        for s in servers:
            s.close()
        shutil.rmtree(certs, ignore_errors=True)


def run_all(ns, certs, plain, tls):
    # 1. TLS required (the default), a server without STARTTLS: nothing goes in clear.
    p = notifier(ns, plain, certs, ca="", password="")
    o1 = owe(ns, example("physical-complete.json"))
    retried_not_sent(ns, plain, o1, 0, "required, no STARTTLS", ("STARTTLS", "SSL", "TLS"))
    stop(p)

    # 2. The same mails, once the server offers STARTTLS and wants AUTH: each sent once,
    # over TLS, after the login.
    p = notifier(ns, tls, certs)
    wait_for("the waiting mails sent over TLS", lambda: [st for st, _, _ in mails(ns, o1).values()] == ["sent"] * 2,
             timeout=60, show=lambda: mails(ns, o1))
    got = tls.events("mail")
    check(len(got) == 2 and all(e["tls"] and e["authenticated"] for e in got), f"delivered over TLS, logged in: {got}")
    auth = tls.events("auth")
    check(auth and all(a["ok"] and a["tls"] for a in auth), f"the server saw the login, over TLS: {auth}")
    ids = sorted(ns.mail_ids(o1))
    check(sorted(tls.message_ids()) == ids, f"each mail received once: {tls.message_ids()} vs {ids}")
    stop(p)
    log(f"STARTTLS and AUTH ({auth[0]['mechanism']}): both mails delivered once")

    # 3. A server whose certificate another CA signed: refused.
    p = notifier(ns, tls, certs, ca="other-ca.crt")
    o3 = owe(ns, example("physical-complete.json"))
    before = len(tls.events("mail"))
    retried_not_sent(ns, tls, o3, before, "another CA", ("certificate", "SSL", "verify"))
    stop(p)

    # 4. A wrong password: the server refuses the login; the mail waits.
    p = notifier(ns, tls, certs, password="wrong-password")
    o4 = owe(ns, example("physical-complete.json"))
    retried_not_sent(ns, tls, o4, before, "a wrong password", ("Login denied", "535", "login"))
    check(any(not a["ok"] for a in tls.events("auth")), "the server refused a login")
    stop(p)

    # 5. smtp_tls = none: plaintext, as asked. Retention is short here (section 7).
    p = notifier(ns, plain, certs, tls="none", ca="", password="", LMP_RETENTION_DAYS=1,
                 LMP_RETENTION_INTERVAL_S=1)
    mine = personal(example("physical-complete.json"))
    o5 = owe(ns, mine)
    wait_for("plaintext: both mails sent", lambda: [st for st, _, _ in mails(ns, o5).values()] == ["sent"] * 2,
             timeout=60, show=lambda: mails(ns, o5))
    check(any(not e["tls"] for e in plain.events("mail")), "plaintext delivery")
    # The mails 3 and 4 left waiting go too, in plaintext as asked; then nothing is owed.
    wait_for("every mail settled", lambda: ns.sql("SELECT count(*) FROM mails WHERE status = 'pending'",
                                                  service="notifier") == [(0,)], timeout=60)
    log("smtp_tls = none: delivered in plaintext")

    # 6. The review's payload in an onboarding id: dead-lettered by the runtime with the
    # field named (BAD_TEXT); a partner id of the wrong syntax deeper in the event, by
    # the notifier's own check (HANDLER_REJECTED); nothing owed, nothing mailed.
    sent_before = len(plain.events("mail"))
    bad = []
    for field in ("onboarding_id", "partner_id"):
        r = example("physical-complete.json")
        oid, ev = completed(r)
        if field == "onboarding_id":
            ev["onboarding_id"] = oid + PAYLOAD
            want = ("BAD_TEXT", "onboarding_id contains a control character")
        else:
            ev["onboarding"]["request"]["partner_id"] = r["partner_id"] + "><a href=https://evil.example>"
            want = ("HANDLER_REJECTED", "onboarding.request.partner_id is not a partner id")
        key = str(uuid.uuid4())
        ns.publish("onboarding.shipping-completed", ev, key=key)
        bad.append((key, oid, want))
    ns.wait_published(["notifier"])

    def dead():
        out = {(m.key() or b"").decode(errors="replace"): headers(m)
               for m in ns.consume_all(ns.dead_letters("notifier"))}
        return out if all(k in out for k, _, _ in bad) else None
    letters = wait_for("both dead-lettered", dead, timeout=60)
    for key, oid, want in bad:
        h = letters[key]
        check(h["error_code"] == want[0] and want[1] in h["error_message"], f"dead letter {h}")
        check(ns.sql("SELECT count(*) FROM mails WHERE onboarding_id LIKE %s", oid + "%", service="notifier")
              == [(0,)], f"{oid}: no mail owed")
    time.sleep(2)  # a sender would have taken anything owed by now
    check(len(plain.events("mail")) == sent_before, "nothing mailed for a refused event")
    check(all("eve@evil.example" not in e["rcpt"] for e in plain.events("mail")), "no mail to the payload's Bcc")
    log("CR LF in an onboarding id, markup in a partner id: dead-lettered, nothing mailed")

    # 7. Retention: the dispatch mail too, then every mail past retention.days.
    ns.publish("onboarding.shipment-dispatched", dispatched(mine, o5), key=o5)
    wait_for("the tracking mail sent", lambda: [st for k, (st, _, _) in mails(ns, o5).items()
                                                if k.startswith("dispatch:")] == ["sent"], timeout=60)
    wait_for("o5 confirmed", lambda: ns.sql("SELECT confirmed_at IS NOT NULL FROM confirmations WHERE "
                                            "onboarding_id = %s", o5, service="notifier") == [(True,)], timeout=60)
    ns.wait_published(["notifier"])
    route = f"{p.admin}/v1/onboardings/{o5}"
    code, before_purge = http_get(route, token=secret("admin-token"))
    check(code == 200 and mine["submitted_by"] in before_purge, f"the recipients shown before: {code}")
    ns.sql("UPDATE mails SET created_at = now() - interval '2 days' WHERE onboarding_id = %s RETURNING 1", o5,
           service="notifier")
    ns.sql("UPDATE confirmations SET confirmed_at = now() - interval '2 days' WHERE onboarding_id = %s RETURNING 1",
           o5, service="notifier")
    wait_for("o5's mails purged", lambda: ns.sql(
        "SELECT bool_and(recipient IS NULL AND body = '') FROM mails WHERE onboarding_id = %s", o5,
        service="notifier") == [(True,)], timeout=30)
    wait_for("o5's partner address purged", lambda: ns.sql(
        "SELECT partner_email FROM confirmations WHERE onboarding_id = %s", o5, service="notifier") == [(None,)],
        timeout=30)
    pii = submitted(mine)
    found = [(t, v) for t, values in tables(ns) for v in pii if v.lower() in values.lower()]
    check(not found, f"submitted values left in the notifier's tables: {found}")
    code, answer = http_get(route, token=secret("admin-token"))
    check(code == 200 and not [v for v in pii if v.lower() in answer.lower()], f"the admin answer: {answer}")
    check(all(m["recipient"] is None and m["status"] == "sent" for m in json.loads(answer)),
          f"the mails' facts kept, their recipients gone: {answer}")
    stop(p)
    log(f"retention: none of {len(pii)} submitted values in {len(tables(ns))} tables or the admin answer")


def personal(request):
    """The request with personal values of its own (the examples share theirs), so a
    value found in a table can only be this onboarding's."""
    tag = uuid.uuid4().hex[:8]
    request["submitted_by"] = f"ops-{tag}@northwind-msp.example.com"
    request["customer"]["portal_admin_email"] = f"admin-{tag}@maritime-freight.example.com"
    for i, a in enumerate(request["deployment"]["addresses"]):
        a.update(recipient=f"Pat Doe {tag}{i}", line1=f"{i + 1} {tag} Street", phone=f"+1 902 555 {tag[:4]}")
    return request


def submitted(request):
    """Every personal value of a request: emails, names, addresses, phones."""
    out = [request["submitted_by"], request["customer"]["portal_admin_email"]]
    for a in request["deployment"]["addresses"]:
        out += [a[k] for k in ("recipient", "line1", "phone")]
    return out


def text(v):
    return bytes(v).decode("utf-8", "replace") if isinstance(v, (bytes, memoryview)) else str(v)


def tables(ns):
    """Each table of the notifier's database, as (name, all its values as text)."""
    names = [t for (t,) in ns.sql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
                                  service="notifier")]
    return [(t, " ".join(text(v) for row in ns.sql(f'SELECT * FROM "{t}"', service="notifier") for v in row))
            for t in names]


if __name__ == "__main__":
    sys.exit(run(test_notifier_tls))
