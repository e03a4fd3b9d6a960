"""What a daemon's credential can make others do through dead letters: nothing. Each
daemon may write only its own dead-letter topic and read only its own replay topic;
the replay principal may read dead letters and write replays, nothing else; lmpctl
replays a letter only to the daemon whose topic it is on, which handles it by its own
routes. So the notifier's credential, which once could have a replay publish
onboarding.accepted as the super user (security review H3), now gets a forged
acceptance dead-lettered by the notifier, and allocation draws nothing."""
import os
import subprocess
import sys
import uuid

from confluent_kafka import Producer

from harness import (BUILD, CONFIG, SECURED, check, decode, deliver, encode, example, headers, kafka_conf, log,
                     onboarding_id, run, wait_for)


def refused(err, what):
    check(err is not None and err.name() == "TOPIC_AUTHORIZATION_FAILED", f"{what}: {err}")


def replay_ctl(ns, *args):
    """lmpctl as the replay principal, in this namespace."""
    return subprocess.run([os.path.join(BUILD, "tools", "lmpctl"), *args], input="", capture_output=True, text=True,
                          timeout=120, env=ns.ctl_env(LMP_CONFIG=os.path.join(CONFIG, "replay.conf")))


def letter(ns, value, key, source_service, dlq_event_id):
    return {"event_id": str(uuid.uuid4()), "event_type": "onboarding.accepted", "correlation_id": key,
            "dlq_event_id": dlq_event_id, "error_code": "RETRIES_EXHAUSTED", "error_message": "try again",
            "source_topic": ns.topic("onboarding.accepted"), "source_partition": "0", "source_offset": "0",
            "source_service": source_service}


def drawn(ns):
    return ns.sql("SELECT COALESCE(sum(allocated), 0) FROM pools", service="allocation")[0][0]


def test_replay_bounds(ns):
    check(SECURED, "the test stack runs secured (deploy/stack up without LMP_STACK_SECURITY=plaintext)")
    ns.start_all()
    ns.lmpctl("acls", "apply", "User:replay", input=ns.lmpctl("dlq", "acls").stdout)

    # A real acceptance, to forge another from: the same request under a new id.
    r = example("virtual-core.json")
    ns.publish("onboarding.requested", r)
    wait_for("the real onboarding confirmed", lambda: ns.sql(
        "SELECT status FROM onboardings WHERE onboarding_id = %s", onboarding_id(r)) == [("confirmed",)], timeout=120)
    accepted = decode(ns.consume("onboarding.accepted", 1)[0].value())[1]
    forged_id = str(uuid.uuid4())
    forged = dict(accepted, onboarding_id=forged_id, customer_id=str(uuid.uuid4()),
                  account_name=accepted["account_name"] + " forged")
    value = encode("onboarding.accepted", forged)
    before = drawn(ns)

    # The notifier's credential reaches no other daemon's dead letters or replays, and
    # no topic it does not emit.
    notifier = Producer(kafka_conf("lmp-notifier", **{"log_level": 2}))
    for topic in (ns.dead_letters("allocation"), ns.replays("allocation"), ns.replays("notifier"),
                  ns.topic("onboarding.accepted")):
        refused(deliver(notifier, topic, value, forged_id), f"the notifier wrote {topic}")
    # Nor does the replay principal's: it writes replays only.
    replayer = Producer(kafka_conf("replay", **{"log_level": 2}))
    for topic in (ns.topic("onboarding.accepted"), ns.dead_letters("notifier")):
        refused(deliver(replayer, topic, value, forged_id), f"the replay principal wrote {topic}")
    log("a daemon's credential writes its own dead letters only; the replay principal replays only")

    # On its own dead-letter topic the notifier may write what it likes. A letter that
    # claims to be allocation's is refused by lmpctl...
    lying = str(uuid.uuid4())
    check(deliver(notifier, ns.dead_letters("notifier"), value, forged_id,
                  letter(ns, value, forged_id, "allocation", lying)) is None, "the notifier's own dead letter")
    out = replay_ctl(ns, "dlq", "replay", lying)
    check(out.returncode == 1 and "names allocation as its source_service" in out.stderr and
          "replayed" not in out.stdout, f"a letter naming another daemon: {out.returncode} {out.stderr!r}")
    # ...and one that says it is the notifier's goes back to the notifier alone, which
    # has no route for onboarding.accepted and dead-letters it.
    honest = str(uuid.uuid4())
    check(deliver(notifier, ns.dead_letters("notifier"), value, forged_id,
                  letter(ns, value, forged_id, "notifier", honest)) is None, "the notifier's own dead letter")
    out = replay_ctl(ns, "dlq", "replay", honest)
    check(out.returncode == 0 and f"to {ns.replays('notifier')}" in out.stdout, f"replay: {out.stdout!r} {out.stderr!r}")
    wrong = wait_for("the notifier to dead-letter the replayed acceptance", lambda: [
        m for m in ns.consume_all(ns.dead_letters("notifier"))
        if headers(m).get("error_code") == "WRONG_TOPIC" and headers(m).get("event_id") == "replay:" + honest],
        timeout=60)
    check(headers(wrong[0])["source_topic"] == ns.topic("onboarding.accepted"), headers(wrong[0]))
    ns.wait_published()
    check(not [m for m in ns.consume_all("onboarding.accepted") if m.key() == forged_id.encode()],
          "the forged acceptance reached onboarding.accepted")
    check(not [m for m in ns.consume_all("onboarding.users-allocated") if m.key() == forged_id.encode()],
          "users were allocated for the forged acceptance")
    check(ns.sql("SELECT count(*) FROM onboardings WHERE onboarding_id = %s", forged_id, service="allocation") == [(0,)]
          and drawn(ns) == before, "allocation acted on the notifier's letter")
    log("a forged acceptance in the notifier's dead letters went back to the notifier alone; allocation drew nothing")


if __name__ == "__main__":
    sys.exit(run(test_replay_bounds))
