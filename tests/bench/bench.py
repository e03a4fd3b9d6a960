"""Throughput and memory of the whole flow: N virtual and physical onboardings
published at once, timed to accepted (intake alone) and to confirmed (all five
daemons, mails included), with each daemon's peak memory. Prints its figures.

    bench.py [--requests N]        (deploy/bench runs it on a plain build)"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Failure, Namespace, encode, example, wait_for


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=5000)
    args = ap.parse_args()
    ns = Namespace("bench")
    try:
        ns.start_all()
        ns.admin_post("allocation", "/v1/admin/load", {"pools": [
            {"partner_id": "partner-northwind", "product": p, "total": 100_000_000}
            for p in ("MDR_CORE", "MDR_COMPLETE", "MDR_CLOUD", "BEAUCERON_SAT")]})
        ns.admin_post("appliance-fulfilment", "/v1/admin/load", {"inventory": [
            {"sku": "NS-100", "serial_prefix": "B100-", "count": 3 * args.requests},
            {"sku": "NS-500", "serial_prefix": "B500-", "count": args.requests}]})
        msgs = []
        for i in range(args.requests):
            r = example("physical-complete.json" if i % 4 == 0 else "virtual-core.json")
            msgs.append((r["request_id"], encode("onboarding.requested", r)))
        t0 = time.time()
        for rid, value in msgs:
            while True:
                try:
                    ns.producer.produce(ns.topic("onboarding.requested"), value=value, key=rid)
                    break
                except BufferError:
                    ns.producer.poll(0.05)
        ns.producer.flush(60)
        t_pub = time.time() - t0
        count = lambda status: ns.sql("SELECT count(*) FROM onboardings WHERE status <> 'rejected'")[0][0] \
            if status is None else ns.sql("SELECT count(*) FROM onboardings WHERE status = %s", status)[0][0]
        wait_for("all accepted by intake", lambda: count(None) >= args.requests, timeout=900, interval=0.1)
        t_acc = time.time() - t0
        arranged = lambda: ns.sql("SELECT count(*) FROM onboardings WHERE status IN "
                                  "('shipping_arranged', 'confirmed')")[0][0]
        wait_for("all through shipping", lambda: arranged() >= args.requests, timeout=1800, interval=0.1)
        t_ship = time.time() - t0
        wait_for("all confirmed", lambda: count("confirmed") >= args.requests, timeout=1800, interval=0.2)
        t_conf = time.time() - t0
        n = args.requests
        print(f"  requests                       {n} (one in four physical, three appliances at two addresses)")
        print(f"  published by the client        {t_pub:.1f} s")
        print(f"  all accepted by intake         {t_acc:.1f} s   {n / t_acc:.0f} onboardings/s")
        print(f"  all through shipping          {t_ship:.1f} s   {n / t_ship:.0f} onboardings/s (four daemons)")
        print(f"  all confirmed, mails sent      {t_conf:.1f} s   {n / t_conf:.0f} onboardings/s end to end")
        for p in ns.procs:
            print(f"  peak memory {p.service:<18} {peak_rss_mb(p.pid):.1f} MiB")
    except Failure as e:
        print(f"FAIL bench: {e}")
        ns.close()
        return 1
    ns.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
