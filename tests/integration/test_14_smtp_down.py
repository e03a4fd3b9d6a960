"""The SMTP server down delays no confirmation: onboardings are confirmed in the usual
time with their mails recorded to be sent (the status answer says pending), the mails
wait and are retried with growing delays, the error of each attempt is kept, and once
the server is back every mail goes out once, each one's fate is announced once
(onboarding.mail-settled) and the status answer says sent. The server's address is a
listener this test holds for its whole run, so no other process can take it."""
import json
import sys
from datetime import datetime

from harness import SmtpGate, check, decode, example, onboarding_id, run, wait_for


def test_smtp_down(ns):
    gate = SmtpGate()
    try:
        run_with_gate(ns, gate)
    finally:
        gate.close()


def run_with_gate(ns, gate):
    ns.start_all(LMP_NOTIFIER_SMTP_URL=gate.url)
    first = example("virtual-core.json")
    ns.publish("onboarding.requested", first)

    # Each attempt is recorded with its error and the time of the next one; the
    # times are watched until three attempts of one mail were made.
    seen = {}

    def three_attempts():
        for attempts, next_at, err in ns.sql(
                "SELECT attempts, extract(epoch FROM next_attempt_at)::float8, last_error FROM mails "
                "WHERE onboarding_id = %s AND kind = 'confirmation'", onboarding_id(first), service="notifier"):
            if attempts:
                seen.setdefault(attempts, (next_at, err))
        return seen if len(seen) >= 3 else None
    wait_for("three attempts at the confirmation", three_attempts, timeout=90, interval=0.1)
    check(all(err for _, err in seen.values()), f"every failed attempt keeps its error: {seen}")
    (n1, _), (n2, _), (n3, _) = (seen[k] for k in sorted(seen)[:3])
    check(n3 - n2 > n2 - n1 > 0, f"the delays grow: next attempts at {n1:.2f}, {n2:.2f}, {n3:.2f}")
    check(gate.refused >= 3, f"the server was tried and hung up on: {gate.refused}")

    # Both onboardings are confirmed with the server down, in the usual time: the first
    # already, the second as soon as its stages are done; their mails wait.
    second = example("physical-complete.json")
    ns.publish("onboarding.requested", second)
    ids = [onboarding_id(first), onboarding_id(second)]
    wait_for("both confirmed with the mail server down", lambda: ns.sql(
        "SELECT count(*) FROM onboardings WHERE status = 'confirmed' AND onboarding_id = ANY(%s)", ids)
        == [(2,)], timeout=90)
    for i in ids:
        answer = json.loads(ns.admin_get("intake", f"/v1/onboardings/{i}")[1])
        states = sorted((m["kind"], m["status"]) for m in answer["mails"])
        check(states == [("confirmation", "pending"), ("invitation", "pending")], f"{i}: the mails {states}")
        # Confirmed by the notifier as soon as shipping completed it, by their own times.
        when = {st["stage"]: datetime.fromisoformat(st["happened_at"].replace("Z", "+00:00"))
                for st in answer["stages"]}
        took = (when["confirmed"] - when["shipping-completed"]).total_seconds()
        check(0 <= took < 5, f"{i}: confirmed {took:.1f} s after shipping completed, with the mail server down")
    check(ns.sql("SELECT count(*) FROM mails WHERE status = 'sent'", service="notifier") == [(0,)],
          "no mail counted as sent while the server is down")
    check(ns.consume_all("onboarding.mail-settled") == [], "a mail announced as settled while the server is down")

    gate.open = True
    wait_for("every mail sent once the server is back", lambda: ns.sql(
        "SELECT status, count(*) FROM mails GROUP BY 1", service="notifier") == [("sent", 4)],
        timeout=120, interval=0.5)
    for i in ids:
        got = [m["Message-ID"] for m in ns.mails(i)]
        check(len(got) == 2 and len(set(got)) == 2, f"{i}: each mail received once: {got}")

    def said_sent(i):
        answer = json.loads(ns.admin_get("intake", f"/v1/onboardings/{i}")[1])
        return all(m["status"] == "sent" and m["settled_at"] for m in answer["mails"]) and len(answer["mails"]) == 2
    wait_for("the status answers say sent", lambda: all(said_sent(i) for i in ids), timeout=60)
    settled = [decode(m.value())[1] for m in ns.consume_all("onboarding.mail-settled")]
    got = sorted((e["onboarding_id"], e["kind"], e["status"]) for e in settled)
    want = sorted((i, k, "sent") for i in ids for k in ("confirmation", "invitation"))
    check(got == want, f"each mail's fate announced once: {got}")


if __name__ == "__main__":
    sys.exit(run(test_smtp_down))
