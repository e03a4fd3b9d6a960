"""The SMTP server down: mails wait and are retried with growing delays, the error of
each attempt is kept, consumption goes on (later onboardings still reach their last
step), and once the server is back every mail goes out once and the onboardings are
confirmed. The server's address is a listener this test holds for its whole run, so
no other process can take it."""
import sys

from harness import SmtpGate, check, example, onboarding_id, run, wait_for


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

    # Other onboardings are not held up: the next one is processed to its mails too.
    second = example("physical-complete.json")
    ns.publish("onboarding.requested", second)
    wait_for("the second onboarding at its last step", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(second))
        == [("shipping_arranged",)], timeout=90)
    wait_for("the second onboarding's mails owed", lambda: ns.sql(
        "SELECT count(*) FROM mails WHERE onboarding_id = %s", onboarding_id(second),
        service="notifier")[0][0] == 2, timeout=90)
    check(ns.sql("SELECT count(*) FROM onboardings WHERE status = 'confirmed'") == [(0,)], "none confirmed yet")
    check(ns.sql("SELECT count(*) FROM mails WHERE status = 'sent'", service="notifier") == [(0,)],
          "no mail counted as sent while the server is down")

    gate.open = True
    ids = [onboarding_id(first), onboarding_id(second)]
    wait_for("both confirmed once the server is back", lambda: ns.sql(
        "SELECT count(*) FROM onboardings WHERE status = 'confirmed' AND onboarding_id = ANY(%s)", ids)
        == [(2,)], timeout=120, interval=0.5)
    for i in ids:
        got = [m["Message-ID"] for m in ns.mails(i)]
        check(len(got) == 2 and len(set(got)) == 2, f"{i}: each mail received once: {got}")
    rows = ns.sql("SELECT status, count(*) FROM mails GROUP BY 1", service="notifier")
    check(rows == [("sent", 4)], f"four mails, each sent: {rows}")


if __name__ == "__main__":
    sys.exit(run(test_smtp_down))
