"""Consumer lag as Burrow sees it. Burrow, started here with deploy/burrow/burrow.toml
against the stack, sees every daemon's group and rates each OK while the daemons keep
up under load; with allocation stopped under load it reports that group (WARN, ERR,
STALL or STOP) while intake's stays OK, and lmpctl lag shows the lag Burrow shows,
partition by partition, down to none once allocation is back.

Burrow 1.9.6, which deploy/setup builds from the Go module proxy: Kafka 4 no longer
answers the ListOffsets v0 requests of older Burrows (KIP-896), Debian 12's 1.2.1
among them."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys

from harness import BUILD, BROKERS, ROOT, SECRETS, SERVICES, Failure, Load, check, group, http_get, run, wait_for

TEMPLATE = os.path.join(ROOT, "deploy", "burrow", "burrow.toml")
# The daemons authenticate by certificate on the TLS listener, three ports up.
TLS_BROKERS = ",".join(f'"127.0.0.1:{int(b.rsplit(":", 1)[1]) + 3}"' for b in BROKERS.split(","))
BAD = ("WARN", "ERR", "STALL", "STOP")


def burrow_binary():
    """deploy/setup builds Burrow into .stack/burrow; LMP_BURROW may name another."""
    found = os.environ.get("LMP_BURROW") or os.path.join(ROOT, ".stack", "burrow", "Burrow")
    check(os.access(found, os.X_OK), f"no Burrow at {found}: run deploy/setup, or name one in LMP_BURROW")
    return found


class ZooKeeper:
    """A real ZooKeeper (deploy/setup resolves it from Maven Central), which Burrow
    needs to start: it elects there the one instance that sends notifications, and
    keeps no lag data there. On loopback, on a port it takes itself."""

    def __init__(self, ns):
        self.dir = os.path.join(BUILD, "Testing", f"{ns.db}-zookeeper")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(os.path.join(self.dir, "data"))
        cfg = os.path.join(self.dir, "zoo.cfg")
        with open(cfg, "w") as fh:
            fh.write(f"dataDir={self.dir}/data\nclientPortAddress=127.0.0.1\nclientPort=0\n"
                     "admin.enableServer=false\ntickTime=2000\n")
        self.log = open(os.path.join(self.dir, "zookeeper.log"), "w")
        lib = os.path.join(ROOT, ".stack", "zookeeper", "lib")
        check(os.path.isdir(lib), f"no ZooKeeper in {lib}: run deploy/setup")
        self.proc = subprocess.Popen(["java", "-Xmx64m", "-XX:+UseSerialGC", "-cp", f"{lib}/*",
                                      "org.apache.zookeeper.server.ZooKeeperServerMain", cfg],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        port = wait_for("ZooKeeper to listen", self._port, timeout=60)
        self.address = f"127.0.0.1:{port}"

    def _port(self):
        check(self.proc.poll() is None, f"ZooKeeper exited with {self.proc.returncode}; see {self.log.name}")
        ports = listening_ports(self.proc.pid)
        return ports[0] if len(ports) == 1 else None

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def listening_ports(pid):
    """The TCP ports a process listens on, from /proc: Burrow and ZooKeeper take a
    free port themselves and say which only there."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in list(fh)[1:]:
                f = line.split()
                if f[3] == "0A" and f[9] in inodes:
                    ports.append(int(f[1].rsplit(":", 1)[1], 16))
    return ports


class Burrow:
    def __init__(self, ns, zk):
        self.dir = os.path.join(BUILD, "Testing", f"{ns.db}-burrow")
        os.makedirs(self.dir, exist_ok=True)
        with open(TEMPLATE) as fh:
            conf = fh.read()
        groups = "^lmp-[a-z-]+-" + re.escape(ns.prefix) + "$"
        for name, value in (("DIR", self.dir), ("ZOOKEEPER", zk.address), ("SECRETS", SECRETS),
                            ("BROKERS", TLS_BROKERS), ("GROUPS", groups)):
            conf = conf.replace(f"@{name}@", value)
        check("@" not in re.sub(r"#.*", "", conf), f"a placeholder of {TEMPLATE} left unfilled")
        with open(os.path.join(self.dir, "burrow.toml"), "w") as fh:
            fh.write(conf)
        self.logfile = os.path.join(self.dir, "burrow.log")
        self.log = open(self.logfile, "w")
        self.proc = subprocess.Popen([burrow_binary(), "--config-dir", self.dir], stdout=self.log, stderr=self.log)
        self.url = None
        port = wait_for("Burrow to listen", self._port, timeout=60)
        self.url = f"http://127.0.0.1:{port}/v3/kafka/lmp"

    def _port(self):
        check(self.proc.poll() is None, f"Burrow exited with {self.proc.returncode}: {self.why()}")
        ports = listening_ports(self.proc.pid)
        return ports[0] if len(ports) == 1 else None

    def why(self):
        """Burrow's complaints, for a failure message."""
        with open(self.logfile, errors="replace") as fh:
            lines = [line.strip() for line in fh if '"level":"error"' in line or '"level":"panic"' in line]
        hint = (" (a Burrow older than 1.9.5 cannot read Kafka 4: it asks for end offsets with ListOffsets v0, "
                "which Kafka 4 no longer answers)" if any("fetch offsets" in line or "Unknown Kafka Version" in line
                                                          for line in lines) else "")
        return "; ".join(lines[-3:]) + hint

    def get(self, group, what):
        check(self.proc.poll() is None, f"Burrow exited with {self.proc.returncode}: {self.why()}")
        code, body = http_get(f"{self.url}/consumer/{group}/{what}")
        return json.loads(body)["status"] if code == 200 else None

    def status(self, group):
        s = self.get(group, "status")
        return s["status"] if s else "NOTFOUND"

    def lag(self, group):
        """The partitions the group committed to: {(topic, partition): lag}. Burrow
        also lists those it knows only from the group's assignments, without lag."""
        s = self.get(group, "lag")
        if s is None:
            return None
        check(all(p["current_lag"] == 0 for p in s["partitions"] if not p.get("end")), f"lag without commits: {s}")
        return {(p["topic"], p["partition"]): p["current_lag"] for p in s["partitions"] if p.get("end")}

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def lmpctl_lag(ns, g):
    """lmpctl lag --json for one group: {(topic, partition): lag}, its total, and the
    partitions it has committed."""
    out = json.loads(ns.lmpctl("lag", "--group", g, "--json").stdout)
    check(len(out) == 1 and out[0]["group"] == g, f"lmpctl lag --json: {out}")
    parts = {(p["topic"], p["partition"]): p for p in out[0]["partitions"]}
    check(out[0]["lag"] == sum(p["lag"] for p in parts.values()), f"total is not the sum: {out}")
    return {k: p["lag"] for k, p in parts.items()}, out[0]["lag"], {k for k, p in parts.items()
                                                                     if p["committed"] is not None}


def same_lag(ns, burrow, g):
    """lmpctl's lag and Burrow's, when they agree on every partition: the total."""
    mine, total, committed = lmpctl_lag(ns, g)
    theirs = burrow.lag(g)
    uncommitted = {k: v for k, v in mine.items() if k not in committed and v}
    if theirs is None or uncommitted or {k: mine[k] for k in committed} != theirs:
        return None
    return total, theirs


def test_lag_burrow(ns):
    ns.start_all()
    zk = ZooKeeper(ns)
    load, burrow = None, None
    try:
        load = Load(ns)
        burrow = Burrow(ns, zk)
        groups = [group(ns, s) for s in SERVICES]
        accepted = ns.topic("onboarding.accepted")
        # Every daemon commits under the load; allocation on every partition of its
        # input, so that a partition it never reached cannot stand in for lag later.
        wait_for("allocation to commit on every partition of onboarding.accepted", lambda: len(
            [k for k in lmpctl_lag(ns, groups[SERVICES.index("allocation")])[2] if k[0] == accepted]) == 6,
            timeout=90)
        try:
            wait_for("Burrow to rate every daemon's group OK under load", lambda: all(
                burrow.status(g) == "OK" and burrow.lag(g) for g in groups), timeout=90)
        except Failure as e:
            raise Failure(f"{e}: {({g: burrow.status(g) for g in groups})} {burrow.why()}")

        allocation = next(p for p in ns.procs if p.service == "allocation")
        allocation.send_signal(signal.SIGTERM)
        check(allocation.wait(30) == 0, "allocation did not drain on SIGTERM")
        reported = wait_for("Burrow to report allocation stopped under load", lambda: (
            lambda s: s if s in BAD else None)(burrow.status(group(ns, "allocation"))), timeout=90)
        check(burrow.status(group(ns, "intake")) == "OK", f"intake keeps up but is {burrow.status(group(ns, 'intake'))}")

        load.stop()
        ns.wait_published(["intake"])
        g = group(ns, "allocation")
        total, theirs = wait_for("lmpctl lag and Burrow to agree on allocation's lag",
                                 lambda: same_lag(ns, burrow, g), timeout=60)
        check(total > 0 and total == sum(theirs.values()), f"allocation's lag {total}, Burrow's {theirs}")
        table = ns.lmpctl("lag", "--group", g).stdout
        check(re.search(r"^\s+total\s+%d$" % total, table, re.M), f"the table's total is not {total}:\n{table}")
        print(f"allocation stopped under load: Burrow {reported}, lag {total} in both", flush=True)

        ns.start("allocation")
        wait_for("allocation to catch up", lambda: (lambda r: r and r[0] == 0)(same_lag(ns, burrow, g)), timeout=90)
        wait_for("Burrow to rate allocation OK again", lambda: burrow.status(g) == "OK", timeout=60)
    finally:
        if load and not load.stop_flag.is_set():
            load.stop()
        if burrow:
            burrow.close()
        zk.close()


if __name__ == "__main__":
    sys.exit(run(test_lag_burrow))
