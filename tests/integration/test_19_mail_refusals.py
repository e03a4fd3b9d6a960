"""Nothing from an event reaches a mail header or an SMTP command unchecked, and a
mail that cannot go is given up, not retried forever: an invitation to "not an email
at all" fails at once and the partner is told; an event whose text was built to
smuggle a second message or a Bcc header is dead-lettered, never mailed; a server
that refuses with 5xx fails the mail at once; a server that never answers fails it after
notifier.max_attempts. Each is recorded, counted, and the onboarding confirmed with
its mails' status. A failure the database will not record sends no other mail twice."""
import re
import sys
import uuid

from harness import (Namespace, SmtpGate, check, decode, example, headers, http_get, onboarding_id, pg_connect, run,
                     wait_for)

SMUGGLE = ("Evil Corp\r\n.\r\nMAIL FROM:<eve@evil.example>\r\nRCPT TO:<eve@evil.example>\r\nDATA\r\n"
           "Subject: smuggled\r\nBcc: eve@evil.example\r\n\r\nhi\r\n.\r\nQUIT\r\n")


def shipping_completed(admin_email, account_name):
    """A forged shipping-completed, as any producer on the topic could send today."""
    req = example("virtual-core.json")
    req["customer"]["portal_admin_email"] = admin_email
    oid = onboarding_id(req)
    return oid, {"onboarding_id": oid, "onboarding": {
        "onboarding_id": oid, "customer_id": str(uuid.uuid4()), "account_name": account_name, "request": req,
        "warnings": [], "accepted_at": 0}, "allocations": [], "appliances": [], "shipments": [], "completed_at": 0}


def metric(url, name):
    m = re.search(rf'^{name}{{service="notifier"}} (\d+)', http_get(url + "/metrics")[1], re.M)
    return int(m.group(1)) if m else None


def mails(ns, oid):
    return {k: (st, a, err) for k, st, a, err in ns.sql(
        "SELECT kind, status, attempts, last_error FROM mails WHERE onboarding_id = %s", oid, service="notifier")}


def test_mail_refusals(ns):
    ns.start_all()
    notifier = ns.http["notifier"]
    oid, ev = shipping_completed("not an email at all", "Evil Corp. MAIL FROM:<eve@evil.example> Bcc: eve")
    ns.publish("onboarding.shipping-completed", ev, key=oid)
    # Control characters in an event's text refuse the event before the notifier sees
    # it (the runtime's BAD_TEXT; services/notifier/notifier.c checks again).
    smuggler, sev = shipping_completed("it@example.com", SMUGGLE)
    ns.publish("onboarding.shipping-completed", sev, key=smuggler)
    wait_for("the onboarding confirmed", lambda: ns.sql(
        "SELECT confirmed_at IS NOT NULL FROM confirmations WHERE onboarding_id = %s", oid,
        service="notifier") == [(True,)], timeout=60)
    m = wait_for("its mails settled", lambda: (lambda x: x if x.get("invitation", ("",))[0] == "failed" and
                                               x.get("confirmation", ("",))[0] == "sent" else None)(mails(ns, oid)))
    check(m["invitation"][0] == "failed" and "not a usable address" in m["invitation"][2], m)
    check(m["confirmation"][0] == "sent", m)
    # Its fate is announced once: failed, with the reason, without the address.
    fate = wait_for("the invitation's fate announced", lambda: [
        e for e in (decode(x.value())[1] for x in ns.consume_all("onboarding.mail-settled"))
        if e["onboarding_id"] == oid and e["kind"] == "invitation"])
    check(len(fate) == 1 and fate[0]["status"] == "failed" and
          fate[0]["reason"] == "the address is not one a mail can be sent to", fate)
    wait_for("the partner told", lambda: mails(ns, oid).get("undeliverable:invitation", ("",))[0] == "sent")
    check(metric(notifier, "lmp_mails_failed_total") == 1, "the failed invitation is counted")
    received = ns.mails(oid)
    ids = ns.mail_ids(oid)
    kinds = sorted(ids[str(x["Message-ID"])][1] for x in received)
    check(kinds == ["confirmation", "undeliverable:invitation"], f"the mails received: {kinds}")
    for x in received:
        check(x["Bcc"] is None and "\n" not in str(x["Subject"]), f"one header each: {x.items()}")
        check(x["To"].addresses[0].addr_spec == ev["onboarding"]["request"]["submitted_by"], x["To"])
    for x in ns.mails():
        check("eve@evil.example" not in str(x.get("X-RcptTo", "")) and x["Subject"] != "smuggled",
              f"a smuggled message reached the server: {x.items()}")
    ns.wait_published(["notifier"])
    dead = [headers(m) for m in ns.consume_all(ns.dead_letters("notifier"))]
    check([h["error_code"] for h in dead] == ["BAD_TEXT"] and
          "onboarding.account_name contains a control character" in dead[0]["error_message"], dead)
    check(mails(ns, smuggler) == {}, "the smuggling event owed no mail")
    confirmed = ns.consume_all("onboarding.confirmed")
    check(len(confirmed) == 1, f"confirmed once, not {len(confirmed)} times")

    # A server that refuses with 5xx, and one that never answers, each with a notifier
    # of its own (a namespace of its own, so the others' events do not reach it).
    for kind in ("refuse", "silent"):
        gate = SmtpGate()
        gate.refuse = kind == "refuse"
        other = Namespace("mail_" + kind)
        try:
            p = other.start("notifier", LMP_NOTIFIER_SMTP_URL=gate.url, LMP_NOTIFIER_MAX_ATTEMPTS=2)
            oid2, ev2 = shipping_completed("it@example.com", "Plain Corp")
            other.publish("onboarding.shipping-completed", ev2, key=oid2)
            wait_for(f"{kind}: both mails given up", lambda: [mails(other, oid2).get(k, ("",))[0] for k in
                                                              ("confirmation", "invitation")] == ["failed", "failed"],
                     timeout=90)
            for k in ("confirmation", "invitation"):
                st, attempts, err = mails(other, oid2)[k]
                want = 1 if kind == "refuse" else 2
                check(attempts == want, f"{kind}: {k} given up after {attempts} attempts, want {want}: {err}")
            check(metric(p.http, "lmp_mails_failed_total") >= 2, f"{kind}: counted")
            check(other.sql("SELECT confirmed_at IS NOT NULL FROM confirmations WHERE onboarding_id = %s", oid2,
                            service="notifier") == [(True,)], f"{kind}: confirmed")
            # Each fate announced once, in the notifier's words, not the server's.
            want = "the mail server refused it (SMTP 5" if kind == "refuse" else "no mail server took it in 2 attempts"
            fates = wait_for(f"{kind}: both fates announced", lambda: (lambda f: f if len(f) >= 2 else None)(
                [decode(x.value())[1] for x in other.consume_all("onboarding.mail-settled")]))
            check(sorted(f["kind"] for f in fates) == ["confirmation", "invitation"] and
                  all(f["status"] == "failed" and f["reason"].startswith(want) for f in fates), f"{kind}: {fates}")
        finally:
            problems = other.close()
            gate.close()
        check(not problems, "; ".join(problems))

    # A failure the database will not record (a trigger of the test's refuses it), in
    # a sender's batch beside a mail that went out: the sent one is recorded all the
    # same, so it goes once however often the refusal repeats; the other stays pending,
    # its attempts untouched, and is given up once the database takes it.
    other = Namespace("mail_unrecorded")
    try:
        p = other.start("notifier")
        with pg_connect(other.dbname("notifier"), autocommit=True) as c:
            c.execute("CREATE FUNCTION refuse_failed() RETURNS trigger LANGUAGE plpgsql AS "
                      "$$ BEGIN RAISE EXCEPTION 'the test refuses to record a failure'; END $$")
            c.execute("CREATE TRIGGER refuse_failed BEFORE UPDATE ON mails FOR EACH ROW "
                      "WHEN (NEW.status = 'failed') EXECUTE FUNCTION refuse_failed()")
        oid3, ev3 = shipping_completed("not an email at all", "Unrecorded Ltd")
        other.publish("onboarding.shipping-completed", ev3, key=oid3)
        wait_for("the refusal to record met three times", lambda: open(p.logfile).read().count(
            "its failure could not be recorded") >= 3, timeout=60)
        m = mails(other, oid3)
        check(m["confirmation"][0] == "sent" and m["invitation"][:2] == ("pending", 0), m)
        sent = [str(x["Message-ID"]) for x in other.mails(oid3)]
        check(len(sent) == 1, f"the confirmation reached the server {len(sent)} times")
        with pg_connect(other.dbname("notifier"), autocommit=True) as c:
            c.execute("DROP TRIGGER refuse_failed ON mails")
        wait_for("the invitation given up", lambda: mails(other, oid3)["invitation"][0] == "failed")
        wait_for("the partner told", lambda: mails(other, oid3).get("undeliverable:invitation", ("",))[0] == "sent")
        sent = sorted(other.mail_ids(oid3)[str(x["Message-ID"])][1] for x in other.mails(oid3))
        check(sent == ["confirmation", "undeliverable:invitation"], f"the mails received: {sent}")
    finally:
        problems = other.close()
    check(not problems, "; ".join(problems))


if __name__ == "__main__":
    sys.exit(run(test_mail_refusals))
