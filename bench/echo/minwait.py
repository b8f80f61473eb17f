#!/usr/bin/env python3
"""minwait.py — the batched wait (weft_config.min_wait_ns) against the plain one, swept, on the echo load.

For each fixed offered rate, examples/echo_server on io_uring runs with each minimum wait in turn
(--min-wait-us; 0 is the plain wait), interleaved round by round in an order that turns each round,
a fresh server per run (drive.measure: server on CPU 0, the verifying loadgen on CPU 1). Printed per
rate and wait: the medians and min–max over the rounds of server CPU per message, loadgen's p50 and
p99 latency, server system calls per message (perf, in the window after the measured one), the rate
reached, and each wait's CPU and p99 ratio to the plain wait's, pair by pair (same round).

    bench/echo/minwait.py [--build build/rel] [--rates 20000,60000] [--waits 0,20,50,100,200]
                          [--rounds 5] [--conns 512] [--size 64] [--duration 0.6] [--json FILE]

bench/run shows one chosen wait beside the plain one: `bench/run batched-wait`. Runs are only as good
as the machine is quiet: as bench/run does, a run during which other processes used more than
--max-other-cpu CPUs is run again (--retries times); one still disturbed is kept and counted in the
table's last column. The load average is printed before and after, and every record (other_cpu_util
included) goes to --json.
"""
import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import drive  # noqa: E402


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def spread(xs):
    return "%.2f-%.2f" % (min(xs), max(xs)) if xs else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--rates", default="20000,60000")
    ap.add_argument("--waits", default="0,20,50,100,200", help="minimum waits in microseconds; 0 = plain")
    ap.add_argument("--batch", type=int, default=0, help="wait_batch (WEFT_WAIT_BATCH); 0 = weft's default")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--conns", type=int, default=512)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--warmup", type=float, default=0.2)
    ap.add_argument("--duration", type=float, default=0.6)
    ap.add_argument("--window", type=float, default=0.25)
    ap.add_argument("--max-other-cpu", type=float, default=0.2, metavar="CPUS")
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--json", metavar="FILE", help="every run's record, one JSON line each")
    a = ap.parse_args()
    argv, why = drive.commands(a.build)["weft-io_uring"]
    if why:
        sys.exit("minwait.py: " + why)
    loadgen = os.path.join(a.build, "bench", "echo", "loadgen")
    rates = [float(r) for r in a.rates.split(",")]
    waits = [int(w) for w in a.waits.split(",")]
    # A batch means something only with a minimum wait (weft refuses it alone): the plain runs go without.
    plain_env = dict(os.environ)
    plain_env.pop("WEFT_WAIT_BATCH", None)
    batch_env = dict(plain_env, WEFT_WAIT_BATCH=str(a.batch)) if a.batch else plain_env
    out = open(a.json, "w") if a.json else None
    state = {"port": 20000 + os.getpid() % 5000}
    print("load average before: %s" % loadavg(), flush=True)
    for rate in rates:
        runs = {w: [] for w in waits}
        for r in range(a.rounds):
            order = waits[r % len(waits):] + waits[:r % len(waits)]
            for w in order:
                cmd = argv + (["--min-wait-us", str(w)] if w else [])
                env = batch_env if w else plain_env
                for attempt in range(a.retries + 1):
                    rec = drive.measure(loadgen, cmd, a.conns, a.size, "rate", rate, a.warmup, a.duration,
                                        a.window, syscalls=True, env=env, state=state)
                    rec.update(round=r, min_wait_us=w, rate=rate, attempt=attempt)
                    rec["disturbed"] = (rec.get("other_cpu_util") or 0) > a.max_other_cpu
                    if not rec["disturbed"]:
                        break
                    if out:
                        out.write(json.dumps(rec) + "\n")
                if out:
                    out.write(json.dumps(rec) + "\n")
                if not rec.get("ok"):
                    print("  rate %.0f wait %d round %d FAILED: %s" % (rate, w, r, rec.get("reason")), flush=True)
                runs[w].append(rec if rec.get("ok") else None)
        print("\nrate %s msg/s, %d connections x %d B, %d rounds (medians, min-max)" % (
            "{:,.0f}".format(rate), a.conns, a.size, a.rounds))
        print("%8s %10s %12s %8s %8s %12s %10s %10s %17s %17s %5s" % (
            "wait us", "CPU us/msg", "(min-max)", "p50 us", "p99 us", "(min-max)", "sys/msg", "msg/s",
            "CPU vs plain", "p99 vs plain", "dist"))
        base = runs.get(0)
        for w in waits:
            ok = [x for x in runs[w] if x]
            if not ok:
                print("%8d  all runs failed" % w)
                continue

            def med(k):
                vals = [x[k] for x in ok if isinstance(x.get(k), (int, float))]
                return (statistics.median(vals), vals) if vals else (float("nan"), [])
            cpu, cpus = med("server_cpu_us_per_req")
            p50, _ = med("p50_us")
            p99, p99s = med("p99_us")
            sysc, _ = med("syscalls_per_req")
            rps, _ = med("req_per_s")
            rc, rp = [], []
            if base and w:
                for x, b in zip(runs[w], base):
                    if x and b:
                        rc.append(x["server_cpu_us_per_req"] / b["server_cpu_us_per_req"])
                        rp.append(x["p99_us"] / b["p99_us"])
            rcs = "%.2f (%s)" % (statistics.median(rc), spread(rc)) if rc else "-"
            rps_ = "%.2f (%s)" % (statistics.median(rp), spread(rp)) if rp else "-"
            dist = sum(1 for x in ok if x.get("disturbed"))
            print("%8d %10.2f %12s %8.0f %8.0f %12s %10.3f %10.0f %17s %17s %5d" % (
                w, cpu, spread(cpus), p50, p99, "%.0f-%.0f" % (min(p99s), max(p99s)), sysc, rps, rcs, rps_, dist))
        sys.stdout.flush()
    print("\nload average after: %s" % loadavg())
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        drive.kill_children()
        sys.exit(130)
