"""Consumer lag where operators look: the broker's own consumer-groups tool lists every
daemon's group; a daemon's /metrics gives its lag per topic and partition; lmpctl lag
prints committed offset, end offset and lag per group and partition. With allocation
stopped under load, lmpctl lag and the broker's tool agree partition by partition on
the lag it left, and both fall to none once it is back. lmpctl lag refuses malformed
arguments with exit status 2."""
import json
import os
import re
import signal
import subprocess
import sys

from harness import ROOT, SERVICES, Load, check, group, http_get, run, wait_for

GROUPS_TOOL = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


def kafka_tool(*args):
    out = subprocess.run([os.path.join(ROOT, "deploy", "stack"), "kafka-tool", GROUPS_TOOL, *args],
                         capture_output=True, text=True, timeout=120)
    check(out.returncode == 0, f"kafka-consumer-groups {args}: exit {out.returncode}: {out.stderr[-2000:]}")
    return out.stdout


def broker_lag(g):
    """The broker's consumer-groups tool: {(topic, partition): (committed, end, lag)}
    for the partitions the group has committed to."""
    rows = {}
    for line in kafka_tool("--describe", "--group", g).splitlines():
        f = line.split()
        if len(f) >= 6 and f[0] == g and f[2].isdigit() and f[3].isdigit():
            rows[(f[1], int(f[2]))] = (int(f[3]), int(f[4]), int(f[5]))
    return rows


def lmpctl_lag(ns, g):
    """lmpctl lag --json for one group: {(topic, partition): (committed, end, lag)} of
    the partitions it has committed to, and its total."""
    out = json.loads(ns.lmpctl("lag", "--group", g, "--json").stdout)
    check(len(out) == 1 and out[0]["group"] == g, f"lmpctl lag --json: {out}")
    parts = out[0]["partitions"]
    check(out[0]["lag"] == sum(p["lag"] for p in parts), f"total is not the sum: {out}")
    return {(p["topic"], p["partition"]): (p["committed"], p["end"], p["lag"])
            for p in parts if p["committed"] is not None}, out[0]["lag"]


def partition_lag(p):
    """A daemon's /metrics: {(topic, partition): lag}."""
    code, body = http_get(p.http + "/metrics")
    check(code == 200, f"/metrics answered {code}")
    return {(m[1], int(m[2])): int(m[3]) for m in re.finditer(
        r'^lmp_consumer_partition_lag\{service="[^"]+",topic="([^"]+)",partition="(\d+)"\} (-?\d+)$', body, re.M)}


def check_arguments(ns):
    default = ns.lmpctl("lag").stdout
    for service in SERVICES:
        check(f"group lmp-{service}\n" in default, f"lmpctl lag does not report lmp-{service}:\n{default}")
    cases = [
        (("lag", "--group", ""), "--group '' is not a group id"),
        (("lag", "--group", "a b"), "--group 'a b' is not a group id"),
        (("lag", "--group", "x\x1b[2J"), "--group 'x?[2J' is not a group id"),
        (("lag", "--group", "g" * 256), "is not a group id"),
        (("lag", "--group"), "option --group needs a value"),
        (("lag", *sum((("--group", f"g{i}") for i in range(17)), ())), "at most 16 --group options"),
        (("lag", "extra"), "lag takes 0 arguments"),
        (("lag", "--verbose"), "unknown option '--verbose'"),
    ]
    for args, expect in cases:
        out = ns.lmpctl(*args, check_rc=False)
        check(out.returncode == 2 and expect in out.stderr and out.stdout == "",
              f"lmpctl {args[:3]}: exit {out.returncode}, {out.stderr!r}, {out.stdout!r}")


def test_lag(ns):
    check_arguments(ns)
    ns.start_all()
    load = Load(ns)
    try:
        groups = [group(ns, s) for s in SERVICES]
        accepted = ns.topic("onboarding.accepted")
        g = group(ns, "allocation")
        # Allocation commits on every partition of its input, so that a partition it
        # never reached cannot stand in for lag later.
        wait_for("allocation to commit on every partition of onboarding.accepted", lambda: len(
            [k for k in lmpctl_lag(ns, g)[0] if k[0] == accepted]) == 6, timeout=90, show=lambda: lmpctl_lag(ns, g))
        listed = kafka_tool("--list").split()
        check(all(x in listed for x in groups), f"the broker's tool lists {listed}, not every daemon's group")
        allocation = next(p for p in ns.procs if p.service == "allocation")
        # librdkafka's statistics (once a second) know a partition's lag once it has fetched there.
        wait_for(f"allocation's /metrics to give the lag of each partition of {accepted}", lambda: {
            k for k in partition_lag(allocation) if k[0] == accepted} == {(accepted, i) for i in range(6)},
            timeout=30, show=lambda: partition_lag(allocation))

        allocation.send_signal(signal.SIGTERM)
        check(allocation.wait(30) == 0, "allocation did not drain on SIGTERM")
        wait_for("lag to build up behind allocation", lambda: lmpctl_lag(ns, g)[1] >= 8, timeout=60)
        load.stop()
        ns.wait_published(["intake"])
        mine, total = lmpctl_lag(ns, g)
        theirs = broker_lag(g)
        check(mine == theirs, f"lmpctl lag and the broker's tool disagree:\n{mine}\n{theirs}")
        check(total > 0 and total == sum(v[2] for v in theirs.values()), f"allocation's lag {total}, the tool's {theirs}")
        table = ns.lmpctl("lag", "--group", g).stdout
        check(re.search(r"^\s+total\s+%d$" % total, table, re.M), f"the table's total is not {total}:\n{table}")
        print(f"allocation stopped under load: lag {total} in lmpctl and in the broker's tool", flush=True)

        allocation = ns.start("allocation")
        wait_for("allocation to catch up", lambda: lmpctl_lag(ns, g)[1] == 0, timeout=90,
                 show=lambda: lmpctl_lag(ns, g))
        check(all(v[2] == 0 for v in broker_lag(g).values()), f"the broker's tool still sees lag: {broker_lag(g)}")
        wait_for("allocation's /metrics to show no lag on its partitions", lambda: (
            lambda m: m and all(v == 0 for v in m.values()))(partition_lag(allocation)), timeout=30,
            show=lambda: partition_lag(allocation))
    finally:
        load.stop()


if __name__ == "__main__":
    sys.exit(run(test_lag))
