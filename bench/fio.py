#!/usr/bin/env python3
"""One fio measurement as a bench/report.py sample line (or a failure line), for bench/run.

  fio.py --file PATH --engine io_uring|libaio|psync --qd Q --seconds S --round R [--buffered] [--fixedbufs]

Runs, pinned to CPU 0 like weft's side (bench/io.c):
  fio --name=r --filename=PATH --rw=randread --bs=4k --direct=1 --ioengine=E --iodepth=Q
      --runtime=S --time_based --output-format=json
fio's defaults otherwise (one submission per I/O, no fixed buffers or registered files, no polling).
psync has no queue: it runs iodepth 1 with numjobs=min(Q,4) and group_reporting (Q threads of blocking
pread at most 4), so "QD" means threads there. --buffered: --direct=0 --invalidate=0, so fio reads
the page cache as it is (bench/run warms it first) rather than dropping the file from it.
--fixedbufs (io_uring only): fio registers its buffers with the ring (IORING_OP_READ_FIXED); the
contender is then fio-io_uring-fixed.

Prints {"type":"sample","workload":"files"|"files-buffered","contender":"fio-E-qdQ","metric":"iops",...}
with qd, numjobs, reads, and fio's usr/sys CPU; exits 0 either way (a failure is a line too).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys


def emit(rec):
    print(json.dumps(rec, separators=(",", ":")), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", required=True)
    ap.add_argument("--engine", required=True, choices=["io_uring", "libaio", "psync"])
    ap.add_argument("--qd", type=int, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--round", type=int, required=True)
    ap.add_argument("--buffered", action="store_true")
    ap.add_argument("--fixedbufs", action="store_true")
    ap.add_argument("--cpu", type=int, default=0, help="pin fio to this CPU (-1: do not pin)")
    a = ap.parse_args()

    workload = "files-buffered" if a.buffered else "files"
    if a.fixedbufs and a.engine != "io_uring":
        ap.error("--fixedbufs is an option of the io_uring engine")
    contender = f"fio-{a.engine}{'-fixed' if a.fixedbufs else ''}-qd{a.qd}"
    base = {"workload": workload, "contender": contender, "round": a.round}

    def failure(reason):
        emit({"type": "failure", **base, "reason": f"qd {a.qd}: {reason}"})
        return 0

    fio = shutil.which("fio")
    if not fio:
        return failure("fio is not installed (apt-get install fio)")
    ms = max(1, int(round(a.seconds * 1000)))
    cmd = [fio, "--name=r", f"--filename={a.file}", "--rw=randread", "--bs=4k",
           f"--direct={0 if a.buffered else 1}", f"--ioengine={a.engine}", f"--runtime={ms}ms",
           "--time_based", "--output-format=json"]
    numjobs = 1
    if a.engine == "psync":
        numjobs = min(a.qd, 4)
        cmd += ["--iodepth=1", f"--numjobs={numjobs}", "--group_reporting"]
    else:
        cmd += [f"--iodepth={a.qd}"]
    if a.buffered:
        cmd += ["--invalidate=0"]
    if a.fixedbufs:
        cmd += ["--fixedbufs"]
    if a.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        pre = lambda: os.sched_setaffinity(0, {a.cpu})  # noqa: E731
    else:
        pre = None
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.seconds + 60, preexec_fn=pre)
    except subprocess.TimeoutExpired:
        return failure(f"fio did not finish within {a.seconds + 60:.0f} s")
    except OSError as e:
        return failure(f"could not run fio: {e}")
    if p.returncode != 0:
        err = (p.stderr.strip().splitlines() or [f"status {p.returncode}"])[-1]
        return failure(f"fio exited with status {p.returncode}: {err}")
    out = p.stdout
    # fio may print notes before the JSON document.
    start = out.find("{")
    try:
        doc = json.loads(out[start:]) if start >= 0 else None
        job = doc["jobs"][0]
        rd = job["read"]
        iops = float(rd["iops"])
        reads = int(rd["total_ios"])
        errors = int(job.get("error", 0))
    except (ValueError, KeyError, IndexError, TypeError) as e:
        return failure(f"could not read fio's JSON output ({e.__class__.__name__}: {e})")
    if errors:
        return failure(f"fio reported error {errors} ({os.strerror(errors)})")
    if reads <= 0 or iops <= 0:
        return failure("fio completed no reads")
    extra = {}
    try:
        # fio's usr_cpu and sys_cpu are percentages of the job's runtime (ms); one job only, as
        # psync's several jobs report theirs grouped.
        if numjobs == 1:
            cpu_s = (float(job["usr_cpu"]) + float(job["sys_cpu"])) / 100 * float(job["job_runtime"]) / 1000
            extra["cpu_us_per_read"] = round(cpu_s * 1e6 / reads, 3)
    except (KeyError, TypeError, ValueError):
        pass
    emit({"type": "sample", **base, "metric": "iops", "unit": "IOPS", "value": round(iops, 3), "qd": a.qd,
          "numjobs": numjobs, "reads": reads, "usr_cpu": job.get("usr_cpu"), "sys_cpu": job.get("sys_cpu"),
          **extra, "fio_version": doc.get("fio version")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
