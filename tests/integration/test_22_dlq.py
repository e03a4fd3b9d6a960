"""An operator's dead letters: lmpctl dlq list (with each filter), show (a body that
decodes and one that does not), and replay. A warehouse's dispatch that shipping
refused because it had lost the shipment's record is replayed once the record is back
and then applies; a second replay of it applies nothing more; a dry run sends
nothing; a truncated dead letter, a parked event (PUBLISH_REFUSED) and one from a
foreign topic are refused. Each daemon's dead letters are on its own topic, and a
replay goes to that daemon's replay topic; a replay by filters shows its plan and sends
only with --yes. Every malformed argument is refused with exit status 2."""
import datetime
import json
import re
import sys
import uuid

from harness import (cap_message_bytes, check, decode, example, headers, http_get, onboarding_id, pg_connect, run,
                     wait_for)

GARBAGE = b"\x01\x07not avro at all, and never will be"


def dead_letters(ns):
    return {pos(m): m for m in ns.consume_all(ns.dlq)}


def one_with(ns, code, count=1):
    """The dead letters with an error code, once there are count of them."""
    found = wait_for(f"{count} dead letter(s) {code}", lambda: (lambda ms: ms if len(ms) >= count else None)(
        [m for m in ns.consume_all(ns.dlq) if headers(m).get("error_code") == code]), timeout=120)
    check(len(found) == count, f"{len(found)} dead letters {code}, want {count}")
    return found


def daemon_of(m):
    """The daemon whose dead-letter topic a message is on."""
    return m.topic().rsplit("dead-letter.", 1)[1]


def pos(m):
    """A dead letter's position as lmpctl shows and takes it."""
    return f"{daemon_of(m)}/{m.partition()}:{m.offset()}"


def rfc3339(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat(timespec="milliseconds")


def ctl_json(ns, *args):
    out = ns.lmpctl(*args, "--json")
    return json.loads(out.stdout)


def duplicates(ns, service):
    text = http_get(ns.http[service] + "/metrics")[1]
    m = re.search(r'^lmp_duplicates_total\{service="%s"\} (\d+)$' % service, text, re.M)
    check(m, f"no lmp_duplicates_total in {service}'s metrics")
    return int(m.group(1))


def shipping_rows(ns, sid):
    """A shipment's rows in shipping's database, as JSON, to put back later."""
    with pg_connect(ns.dbname("shipping")) as c:
        ship = c.execute("SELECT row_to_json(s)::text FROM shipments s WHERE shipment_id = %s", (sid,)).fetchall()
        items = c.execute("SELECT row_to_json(i)::text FROM shipment_items i WHERE shipment_id = %s",
                          (sid,)).fetchall()
    return ship[0][0], [i[0] for i in items]


def lose_shipment(ns, sid):
    with pg_connect(ns.dbname("shipping")) as c:
        c.execute("DELETE FROM shipment_items WHERE shipment_id = %s", (sid,))
        c.execute("DELETE FROM shipments WHERE shipment_id = %s", (sid,))


def restore_shipment(ns, ship, items):
    with pg_connect(ns.dbname("shipping")) as c:
        c.execute("INSERT INTO shipments SELECT * FROM json_populate_record(NULL::shipments, %s::json)", (ship,))
        for i in items:
            c.execute("INSERT INTO shipment_items SELECT * FROM json_populate_record(NULL::shipment_items, %s::json)",
                      (i,))


def refuse_rejections(ns):
    """The rejected topic takes no message over 400 bytes: intake's next rejection is
    refused by the broker for good, parked, and copied as PUBLISH_REFUSED."""
    cap_message_bytes(ns, "onboarding.rejected", 400)


def check_usage_errors(ns, garbage):
    """Every malformed argument: exit status 2 and a sentence naming what is wrong."""
    cases = [
        (("dlq", "show", "abc"), "not DAEMON/PARTITION:OFFSET nor a dlq_event_id"),
        (("dlq", "show", "1:5"), "names no daemon"),
        (("dlq", "show", "shipping/1:"), "not DAEMON/PARTITION:OFFSET"),
        (("dlq", "show", "shipping/:5"), "not DAEMON/PARTITION:OFFSET"),
        (("dlq", "show", "shipping/1:x"), "not DAEMON/PARTITION:OFFSET"),
        (("dlq", "show", "shipping/1:2:3"), "not DAEMON/PARTITION:OFFSET"),
        (("dlq", "show", "shipping/99999999999:0"), "not DAEMON/PARTITION:OFFSET"),
        (("dlq", "show", "shipping/0:99999999999999999999"), "not DAEMON/PARTITION:OFFSET"),
        (("dlq", "show", "shipping/15"), "two whole numbers after the daemon"),
        (("dlq", "show", "nobody/0:1"), "'nobody' is not a daemon of the flow"),
        (("dlq", "show", "\x1b[31m/0:1"), "is not a daemon of the flow"),
        (("dlq", "show", "-1:5"), "unknown option '-1:5'"),
        (("dlq", "show", "0123e4567-e89b-12d3-a456-426614174000"), "nor a dlq_event_id"),
        (("dlq", "show", "123e4567-e89b-12d3-a456-42661417400g"), "nor a dlq_event_id"),
        (("dlq", "show", "\x1b[31m"), "nor a dlq_event_id"),
        (("dlq", "list", "--daemon", "nobody"), "'nobody' is not a daemon of the flow"),
        (("dlq", "list", "--daemon"), "option --daemon needs a value"),
        (("dlq", "show"), "dlq show takes 1 argument"),
        (("dlq", "show", "0:1", "0:2"), "dlq show takes 1 argument"),
        (("dlq", "replay"), "dlq replay needs dead letters"),
        (("dlq", "replay", garbage, "--code", "BAD_FRAMING"), "selectors or filters"),
        (("dlq", "replay", garbage, "--limit", "1"), "selectors or filters"),
        (("dlq", "replay", garbage, "nonsense"), "nor a dlq_event_id"),
        (("dlq", "replay", garbage, "--daemon", "intake"), "selectors or filters"),
        (("dlq", "list", "--since", "yesterday"), "--since 'yesterday' is neither"),
        (("dlq", "list", "--since", "2h5"), "--since '2h5' is neither"),
        (("dlq", "list", "--since", "5x"), "--since '5x' is neither"),
        (("dlq", "list", "--since", "h"), "--since 'h' is neither"),
        (("dlq", "list", "--since", ""), "--since '' is neither"),
        (("dlq", "list", "--since", "99999999999999d"), "is neither"),
        (("dlq", "list", "--since", "2026-13-01T00:00:00Z"), "is neither"),
        (("dlq", "list", "--since", "2026-02-29T00:00:00Z"), "is neither"),
        (("dlq", "list", "--since", "2026-11-28T25:00:00Z"), "is neither"),
        (("dlq", "list", "--since", "2026-11-28T10:00:00"), "is neither"),
        (("dlq", "list", "--since", "2026-11-28T10:00:00+5"), "is neither"),
        (("dlq", "list", "--since", "2026-11-28"), "is neither"),
        (("dlq", "list", "--since"), "option --since needs a value"),
        (("dlq", "list", "--limit", "0"), "--limit must be a whole number from 1"),
        (("dlq", "list", "--limit", "-3"), "--limit must be a whole number from 1"),
        (("dlq", "list", "--limit", "10x"), "--limit must be a whole number from 1"),
        (("dlq", "list", "--limit", "99999999999"), "--limit must be a whole number from 1"),
        (("dlq", "list", "--limit"), "option --limit needs a value"),
        (("dlq", "list", "--code", "bad code"), "--code 'bad code' is not an error code"),
        (("dlq", "list", "--code", "handler_rejected"), "is not an error code"),
        (("dlq", "list", "--topic", "bad/topic"), "--topic 'bad/topic' is not a topic name"),
        (("dlq", "list", "--topic", ""), "is not a topic name"),
        (("dlq", "list", "--bogus"), "unknown option '--bogus'"),
        (("dlq", "list", "extra"), "dlq list takes 0 arguments"),
        (("dlq", "replay", garbage, "--dry-run", "--force"), "unknown option '--force'"),
    ]
    for args, expect in cases:
        out = ns.lmpctl(*args, check_rc=False)
        check(out.returncode == 2, f"lmpctl {args}: exit {out.returncode}, want 2: {out.stderr!r}")
        check(expect in out.stderr, f"lmpctl {args}: {out.stderr!r} does not say {expect!r}")
        check("\x1b" not in out.stderr, f"lmpctl {args} echoed an escape sequence")
        check(out.stdout == "", f"lmpctl {args} printed {out.stdout!r}")


def check_list(ns, dl, by_code, t_mid):
    """Every dead letter once, with its coordinates; then each filter."""
    listed = ctl_json(ns, "dlq", "list")
    check(len(listed) == len(dl), f"dlq list: {len(listed)} entries, the topic holds {len(dl)}")
    for e in listed:
        h = headers(dl[f"{e['daemon']}/{e['partition']}:{e['offset']}"])
        for f in ("error_code", "error_message", "source_topic", "source_service", "dlq_event_id"):
            check(e[f] == h.get(f), f"dlq list {f}: {e[f]!r} != {h.get(f)!r}")
        src = h.get("source_partition")
        check(e["source_partition"] == (int(src) if src else None) and
              e["source_offset"] == (int(h["source_offset"]) if src else None), e)
    times = [e["time"] for e in listed]
    check(times == sorted(times), f"dlq list is not in time order: {times}")

    table = ns.lmpctl("dlq", "list").stdout.splitlines()
    check(len(table) == len(dl) + 1, f"dlq list table: {table}")
    for code, m in by_code.items():
        line = [row for row in table if row.startswith(pos(m) + " ")]
        check(len(line) == 1 and code in line[0], f"{code} at {pos(m)} not in the table: {table}")

    def listed_codes(*args):
        return sorted(e["error_code"] for e in ctl_json(ns, "dlq", "list", *args))

    check(listed_codes("--code", "HANDLER_REJECTED") == ["HANDLER_REJECTED"], "--code")
    dispatched = ns.topic("shipment.dispatched")
    check(listed_codes("--topic", dispatched) == ["HANDLER_REJECTED"], "--topic with the full name")
    check(listed_codes("--topic", "shipment.dispatched") == ["HANDLER_REJECTED"], "--topic with the event type")
    check(listed_codes("--topic", ns.topic("onboarding.requested")) == ["BAD_FRAMING", "TOO_LARGE"],
          "--topic onboarding.requested")
    check(listed_codes("--topic", "no.such.topic") == [], "--topic matching nothing")
    check(listed_codes("--daemon", "shipping") == ["HANDLER_REJECTED"], "--daemon shipping")
    check(listed_codes("--daemon", "intake", "--code", "TOO_LARGE") == ["TOO_LARGE"], "--daemon and --code")
    check(listed_codes("--since", "1h") == sorted(by_code), "--since 1h takes all")
    check(listed_codes("--since", "2020-01-01T02:00:00+02:00") == sorted(by_code), "--since with an offset")
    later = sorted(c for c in by_code if c != "BAD_FRAMING")
    check(listed_codes("--since", t_mid) == later, f"--since {t_mid}: {listed_codes('--since', t_mid)}")
    check(listed_codes("--since", t_mid, "--code", "BAD_FRAMING") == [], "--since and --code together")
    check(listed_codes("--since", "1h", "--code", "BAD_FRAMING") == ["BAD_FRAMING"], "--since 1h and --code")
    newest = sorted(listed, key=lambda e: e["time"])[-2:]
    check(ctl_json(ns, "dlq", "list", "--limit", "2") == newest, "--limit 2 lists the newest two")


def check_show(ns, rejected, garbage, dispatch, event_id):
    shown = ctl_json(ns, "dlq", "show", pos(rejected))
    h = headers(rejected)
    check(shown["event_type"] == "shipment.dispatched" and shown["value"] == dispatch, f"decoded body: {shown}")
    names = [x["name"] for x in shown["headers"]]
    check(names == list(h), f"every header, in order: {names} vs {list(h)}")
    check({x["name"]: x["value"] for x in shown["headers"]}["event_id"] == event_id, "the original event_id")
    check(shown["error_code"] == "HANDLER_REJECTED" and dispatch["shipment_id"] in shown["error_message"], shown)
    by_id = ctl_json(ns, "dlq", "show", h["dlq_event_id"].upper())
    check(by_id == shown, "show by dlq_event_id is show by position")
    text = ns.lmpctl("dlq", "show", pos(rejected)).stdout
    for part in ("HANDLER_REJECTED", "shipment.dispatched", dispatch["tracking_number"], "x-warehouse = north-1",
                 "dead-lettered by shipping"):
        check(part in text, f"dlq show does not print {part!r}:\n{text}")

    bad = ctl_json(ns, "dlq", "show", pos(garbage))
    check(bad["value"] is None and bad["event_type"] is None and bad["value_hex"] == GARBAGE.hex() and
          "marker" in bad["value_error"], f"undecodable body: {bad}")
    text = ns.lmpctl("dlq", "show", pos(garbage)).stdout
    check("does not decode" in text and "01 07 6e 6f 74 20 61 76" in text and "|..not avro at al|" in text,
          f"no hex dump:\n{text}")

    for sel, why in (("shipping/0:999999", "no dead letter at shipping/0:999999"),
                     ("shipping/977:0", "has partitions 0 to"),
                     (str(uuid.uuid4()), "no dead letter with dlq_event_id")):
        out = ns.lmpctl("dlq", "show", sel, check_rc=False)
        check(out.returncode == 1 and why in out.stderr, f"dlq show {sel}: {out.returncode} {out.stderr!r}")


def check_refusals(ns, truncated, parked, foreign, garbage):
    before = {t: len(ns.consume_all(t)) for t in ("onboarding.requested", "onboarding.rejected")}
    for m, why in ((truncated, "was cut from"), (parked, "parked event (PUBLISH_REFUSED)"),
                   (foreign, "is not an event topic of this flow"), (garbage, "BAD_FRAMING is the sender's bug")):
        for extra in ((), ("--dry-run",)):
            out = ns.lmpctl("dlq", "replay", pos(m), *extra, check_rc=False)
            check(out.returncode == 1 and why in out.stderr and "replayed" not in out.stdout,
                  f"replay of {headers(m)['error_code']} {extra}: {out.returncode} {out.stderr!r}")
    after = {t: len(ns.consume_all(t)) for t in before}
    check(after == before, f"a refused replay produced something: {before} -> {after}")


def test_dlq(ns):
    ns.start_all()
    r = example("physical-complete.json")
    oid = onboarding_id(r)
    ns.publish("onboarding.requested", r)
    wait_for("confirmed", lambda: ns.sql("SELECT status FROM onboardings WHERE onboarding_id = %s", oid)
             == [("confirmed",)], timeout=120)
    wait_for("two mails", lambda: len(ns.mails(oid)) >= 2, timeout=60)
    sid = decode(ns.consume("shipment.requested", 1)[0].value())[1]["shipment_id"]

    # Dead letters of each kind; the first alone, so --since can fall between.
    ns.publish("onboarding.requested", raw=GARBAGE, key="garbage", headers={"event_id": "garbage-1"})
    garbage = one_with(ns, "BAD_FRAMING")[0]
    t_mid = rfc3339(garbage.timestamp()[1] + 1)

    # Shipping loses the shipment's record (a restore from an older backup, say), so
    # the warehouse's dispatch is refused and dead-lettered.
    ship, items = shipping_rows(ns, sid)
    lose_shipment(ns, sid)
    dispatch = {"shipment_id": sid, "carrier": "Purolator", "tracking_number": "PRL22000001",
                "dispatched_at": 1795800000000}
    event_id = str(uuid.uuid4())
    ns.publish("shipment.dispatched", dispatch, key=oid, headers={
        "event_id": event_id, "event_type": "shipment.dispatched", "correlation_id": r["request_id"],
        "x-warehouse": "north-1"})
    rejected = one_with(ns, "HANDLER_REJECTED")[0]

    ns.publish("onboarding.requested", raw=b"\xc3\x01" + b"\x00" * (1024 * 1024 + 100), key="huge")
    truncated = one_with(ns, "TOO_LARGE")[0]
    check("dlq_truncated_from" in headers(truncated), "the oversized value is cut")
    refuse_rejections(ns)
    ns.publish("onboarding.requested", example("rejected-breach.json"))
    parked = one_with(ns, "PUBLISH_REFUSED")[0]
    # A dead letter an operator wrote by hand, from a topic that is not the flow's.
    ns.publish(ns.dead_letters("intake"), raw=b"foreign", key="k", headers={
        "event_id": "f-1", "dlq_event_id": str(uuid.uuid4()), "error_code": "RETRIES_EXHAUSTED",
        "error_message": "elsewhere", "source_topic": "other.system.events", "source_partition": "0",
        "source_offset": "7", "source_service": "intake"})
    foreign = wait_for("the hand-made dead letter", lambda: [
        m for m in ns.consume_all(ns.dlq) if headers(m).get("source_topic") == "other.system.events"])[0]

    dl = dead_letters(ns)
    by_code = {"BAD_FRAMING": garbage, "HANDLER_REJECTED": rejected, "TOO_LARGE": truncated,
               "PUBLISH_REFUSED": parked}
    check(len(dl) == 5, f"{len(dl)} dead letters, want 5: {[headers(m)['error_code'] for m in dl.values()]}")
    check_list(ns, dl, dict(by_code, RETRIES_EXHAUSTED=foreign), t_mid)
    check_show(ns, rejected, garbage, dispatch, event_id)
    check_usage_errors(ns, pos(garbage))
    check_refusals(ns, truncated, parked, foreign, garbage)

    # A dry run prints what it would send and sends nothing.
    dispatched_before = len(ns.consume_all("shipment.dispatched"))
    dry = ns.lmpctl("dlq", "replay", pos(rejected), "--dry-run")
    replay_id = "replay:" + headers(rejected)["dlq_event_id"]
    check(f"would replay {pos(rejected)}" in dry.stdout and replay_id in dry.stdout and "x-warehouse=north-1" in
          dry.stdout and "nothing sent" in dry.stderr, f"dry run: {dry.stdout!r} {dry.stderr!r}")
    check(len(ns.lmpctl("dlq", "replay", "--code", "HANDLER_REJECTED", "--dry-run").stdout.splitlines()) == 1,
          "a dry run by filter plans every match")
    check(len(ns.consume_all("shipment.dispatched")) == dispatched_before, "the dry run sent something")
    # By filters, without --yes and not at a terminal: the plan, and nothing sent.
    unsure = ns.lmpctl("dlq", "replay", "--code", "HANDLER_REJECTED", input="", check_rc=False)
    check(unsure.returncode == 1 and f"would replay {pos(rejected)}" in unsure.stdout and "--yes" in unsure.stderr
          and "1 dead letter not sent" in unsure.stderr, f"replay by filter without --yes: {unsure!r}")
    check(ns.consume_all(ns.replays("shipping")) == [], "a replay by filters sent without --yes")

    # The cause fixed, the replay applies: the dispatch is recorded and mailed.
    restore_shipment(ns, ship, items)
    out = ns.lmpctl("dlq", "replay", pos(rejected))
    check(f"replayed {pos(rejected)} to {ns.replays('shipping')}" in out.stdout, out.stdout)
    wait_for("the dispatch recorded", lambda: ns.sql(
        "SELECT status, carrier, tracking_number FROM shipments WHERE shipment_id = %s", sid, service="shipping")
        == [("dispatched", "Purolator", "PRL22000001")], timeout=60)
    wait_for("the tracking mail", lambda: len(ns.mails(oid)) == 3, timeout=60)
    sent = [m for m in ns.consume_all(ns.replays("shipping")) if headers(m).get("event_id") == replay_id]
    check(len(sent) == 1, f"{len(sent)} replays on shipping's replay topic")
    check(not [m for m in ns.consume_all("shipment.dispatched") if headers(m).get("event_id") == replay_id],
          "a replay went to the source topic, where every reader sees it")
    h = headers(sent[0])
    check(sent[0].value() == rejected.value() and sent[0].key() == rejected.key(), "the original key and value")
    check(h["x-warehouse"] == "north-1" and h["correlation_id"] == r["request_id"] and
          h["replay_of_event_id"] == event_id and h["source_topic"] == ns.topic("shipment.dispatched") and
          h["replay_dlq_position"] == f"{ns.dead_letters('shipping')}/{rejected.partition()}/{rejected.offset()}"
          and not any(k.startswith("dlq_") or k == "error_code" for k in h), f"replay headers: {h}")

    # Replayed again (by its dlq_event_id): the inbox knows it, nothing more happens.
    dups = duplicates(ns, "shipping")
    out = ns.lmpctl("dlq", "replay", headers(rejected)["dlq_event_id"])
    check(f"as event_id {replay_id}" in out.stdout, out.stdout)
    wait_for("shipping to skip the second replay", lambda: duplicates(ns, "shipping") == dups + 1, timeout=60)
    check(len([m for m in ns.consume_all(ns.replays("shipping")) if headers(m).get("event_id") == replay_id]) == 2,
          "both replays on the topic")
    check(len(ns.consume_all("onboarding.shipment-dispatched")) == 1, "one shipment-dispatched event")
    check(ns.sql("SELECT count(*) FROM lmp_inbox WHERE event_id = %s", replay_id, service="shipping") == [(1,)],
          "one inbox row for the replay")
    check(len(ns.mails(oid)) == 3, "no second tracking mail")
    check(len(dead_letters(ns)) == 5, "no new dead letter")

    # A replay_for_service header means nothing any more (it once made every daemon
    # but the one it named skip the message): whatever it says, intake applies a
    # request, and the header cannot hide one from it.
    for hostile in (b"allocation", b"\xff\xfeintake", b"intake\r\n", b"i" * 300_000):
        other = example("virtual-core.json")
        ns.publish("onboarding.requested", other, headers={
            "event_id": str(uuid.uuid4()), "replay_for_service": hostile})
        wait_for("intake to apply a request whatever its replay_for_service says", lambda: ns.sql(
            "SELECT count(*) FROM onboardings WHERE onboarding_id = %s", onboarding_id(other)) == [(1,)], timeout=60)


if __name__ == "__main__":
    sys.exit(run(test_dlq))
