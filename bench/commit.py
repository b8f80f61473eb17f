#!/usr/bin/env python3
"""One durable-log measurement as bench/report.py sample lines (or a failure line), for bench/run.

  commit.py --contender C --build DIR --file PATH --writers N --records M --size B --round R

Records of B bytes appended to one log file PATH (on the disk under test), each durable before its
writer appends the next. The contenders:

    weft-io_uring, weft-epoll   examples/group_commit --backend ...: N tasks, one committer task
                                gathering what is pending into each weft_write_durable (a write and
                                an fdatasync, linked on io_uring)
    weft-io_uring-nobatch       examples/group_commit --no-batch: every task syncs each record itself
                                (N durable writes in flight)
    pthread                     bench/baselines/commit_pthread: the same group commit with N threads,
                                a mutex and condition variables
    fio                         fio --rw=write --bs=B --fdatasync=1 --ioengine=sync, one job writing
                                N x M records: a logger that syncs every record, the disk's sync rate

Prints sample lines (metrics records_per_s, syncs_per_record, p50_us, p99_us, cpu_us_per_record; fio's
latency percentiles are its write's plus its sync's) and exits 0 either way. Every program but fio checks the log it wrote
record by record and fails the run if one is missing, damaged or out of order.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

METRICS = (("records_per_s", "records/s"), ("syncs_per_record", "syncs"), ("p50_us", "us"), ("p99_us", "us"),
           ("cpu_us_per_record", "us"))


def emit(rec):
    print(json.dumps(rec, separators=(",", ":")), flush=True)


def run_program(argv, timeout):
    """The JSON object the program printed, or (None, why)."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "did not finish within %d s" % timeout
    except OSError as e:
        return None, "could not run %s: %s" % (argv[0], e)
    if p.returncode != 0:
        return None, "exited with status %d: %s" % (p.returncode, (p.stderr.strip().splitlines() or [""])[-1][:300])
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line), None
    return None, "printed no figures"


def run_fio(a, timeout):
    fio = shutil.which("fio")
    if not fio:
        return None, "fio is not installed (apt-get install fio)"
    total = a.writers * a.records * a.size
    cmd = [fio, "--name=log", "--filename=" + a.file, "--rw=write", "--bs=%d" % a.size, "--fdatasync=1",
           "--ioengine=sync", "--size=%d" % total, "--output-format=json"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "fio did not finish within %d s" % timeout
    if p.returncode != 0:
        return None, "fio exited with status %d: %s" % (p.returncode, (p.stderr.strip().splitlines() or [""])[-1])
    try:
        job = json.loads(p.stdout[p.stdout.find("{"):])["jobs"][0]
        w, sync = job["write"], job["sync"]
        n = int(w["total_ios"])
        secs = float(job["job_runtime"]) / 1000
        # A record's latency: its write's completion latency plus its sync's (the percentiles of each,
        # added: an estimate, as fio keeps no percentile of the pair).
        write_pct, sync_pct = w["clat_ns"]["percentile"], sync["lat_ns"]["percentile"]
        return {"records": n, "records_per_s": n / secs, "syncs_per_record": int(sync["lat_ns"]["N"]) / n,
                "p50_us": (float(write_pct["50.000000"]) + float(sync_pct["50.000000"])) / 1e3,
                "p99_us": (float(write_pct["99.000000"]) + float(sync_pct["99.000000"])) / 1e3,
                "cpu_us_per_record": (float(job["usr_cpu"]) + float(job["sys_cpu"])) / 100 * secs * 1e6 / n}, None
    except (ValueError, KeyError, IndexError, TypeError, ZeroDivisionError) as e:
        return None, "could not read fio's JSON output (%s: %s)" % (e.__class__.__name__, e)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--contender", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--writers", type=int, default=64)
    ap.add_argument("--records", type=int, default=100)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--round", type=int, required=True)
    ap.add_argument("--workload", default="commit")
    a = ap.parse_args()
    base = {"workload": a.workload, "contender": a.contender, "round": a.round}
    shape = ["--writers", str(a.writers), "--records", str(a.records), "--size", str(a.size), "--json", a.file]
    timeout = 120
    if a.contender == "fio":
        res, why = run_fio(a, timeout)
    elif a.contender == "pthread":
        res, why = run_program([os.path.join(a.build, "bench", "baselines", "commit_pthread")] + shape, timeout)
    elif a.contender.startswith("weft-"):
        backend, _, variant = a.contender[len("weft-"):].partition("-")
        argv = [os.path.join(a.build, "examples", "group_commit"), "--backend", backend]
        res, why = run_program(argv + (["--no-batch"] if variant == "nobatch" else []) + shape, timeout)
    else:
        res, why = None, "unknown contender %s" % a.contender
    try:
        os.unlink(a.file)
    except OSError:
        pass
    if res is None:
        emit(dict(base, type="failure", reason=why))
        return 0
    for metric, unit in METRICS:
        emit(dict(base, type="sample", metric=metric, unit=unit, value=round(float(res[metric]), 4),
                  records=res.get("records")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
