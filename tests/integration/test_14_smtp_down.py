"""The SMTP server down: mails wait and are retried with backoff, consumption goes
on (later onboardings still reach their last step), and once the server is back
every mail goes out once and the onboardings are confirmed."""
import email
import email.policy
import os
import subprocess
import sys

from harness import BUILD, check, example, free_port, run, wait_for


def test_smtp_down(ns):
    port = free_port()
    ns.start_all(LMP_NOTIFIER_SMTP_URL=f"smtp://127.0.0.1:{port}")
    first = example("virtual-core.json")
    ns.publish("onboarding.requested", first)
    wait_for("mails retried while the server is away", lambda: ns.sql(
        "SELECT min(attempts) FROM mails WHERE onboarding_id = %s", first["request_id"],
        service="notifier")[0][0] or None, timeout=60)
    err = ns.sql("SELECT last_error FROM mails WHERE onboarding_id = %s LIMIT 1", first["request_id"],
                 service="notifier")[0][0]
    check(err and ("connect" in err.lower() or "refused" in err.lower()), f"the SMTP error is kept: {err}")
    # Other onboardings are not held up: the next one is processed to its mails too.
    second = example("physical-complete.json")
    ns.publish("onboarding.requested", second)
    wait_for("the second onboarding at its last step", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", second["request_id"])
        == [("shipping_arranged",)], timeout=60)
    check(ns.sql("SELECT count(*) FROM onboardings WHERE status = 'confirmed'") == [(0,)], "none confirmed yet")

    maildir = os.path.join(BUILD, "Testing", ns.db + "-maildir")
    for d in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(maildir, d), exist_ok=True)
    smtp = subprocess.Popen(["/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                             "-c", "aiosmtpd.handlers.Mailbox", maildir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ids = [first["request_id"], second["request_id"]]
        wait_for("both confirmed once the server is back", lambda: ns.sql(
            "SELECT count(*) FROM onboardings WHERE status = 'confirmed' AND onboarding_id = ANY(%s)", ids)
            == [(2,)], timeout=120, interval=0.5)
        got = []
        for f in os.listdir(os.path.join(maildir, "new")):
            with open(os.path.join(maildir, "new", f), "rb") as fh:
                got.append(email.message_from_bytes(fh.read(), policy=email.policy.default)["Message-ID"])
        check(len(got) == 4 and len(set(got)) == 4, f"each mail once: {got}")
    finally:
        smtp.terminate()
        smtp.wait(10)


if __name__ == "__main__":
    sys.exit(run(test_smtp_down))
