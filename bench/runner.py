#!/usr/bin/env python3
"""runner.py — the engine of bench/run: runs the workloads of bench/workloads.py in interleaved rounds,
reruns what other processes disturbed, and writes one report per run. bench/run builds first and
calls it; it takes the same arguments:

    bench/run [--quick|--full] [WORKLOAD...]         the mode's workloads, or those named (see --list)
    bench/run --baseline DIR|REV [WORKLOAD...]       before/after: the same workloads from two builds,
                                                     interleaved (default: yield spawn nop echo)
    bench/run --compare echo[:PORT] -- CMD ARG...    your server on WEFT_BACKEND=io_uring and =epoll
    bench/run --compare http[:PORT] -- CMD ARG...    under the echo or the HTTP load

Rounds. A round runs every contender once, in an order that turns by one each round (and in a
before/after run, both builds' programs). Each mode's plan in workloads.py gives a workload at least
min_rounds rounds; more rounds follow, up to max_rounds and within budget_s seconds, while an interval
that a verdict or a target rests on is still undecided and wider than the plan's precision.

Disturbance. Around every run (a program's round, one server under load) runner.py takes the CPUs'
busy time from /proc/stat and subtracts what its own process tree and the kernel threads its I/O
keeps busy (ksoftirqd, kblockd's workers) used: the rest is what other processes took. A run during
which they took more than --max-other-cpu CPUs is run again, up to --retries times; one still
disturbed is kept, marked, and left out of the intervals when enough undisturbed rounds remain
(report.py). Every rerun is counted in the report.

Output: bench/results/<UTC timestamp>/ with raw.jsonl (every record), results.json (the summaries),
report.md and the PNG charts. Python standard library only.
"""
import argparse
import datetime
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import cpu_profile  # noqa: E402
import machine  # noqa: E402
import report  # noqa: E402
import workloads as W  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "echo"))
import drive as echo  # noqa: E402

import importlib.util  # noqa: E402

_spec = importlib.util.spec_from_file_location("http_drive", os.path.join(HERE, "http", "drive.py"))
http = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(http)
_spec = importlib.util.spec_from_file_location("kv_drive", os.path.join(HERE, "kv", "drive.py"))
kv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kv)

BASELINE_DEFAULT = ["yield", "spawn", "nop", "echo"]
BINARIES = ["bench/fiber", "bench/fiber-baselines", "bench/io", "bench/exec", "bench/exec-baselines", "bench/sync", "bench/fixed",
            "bench/echo/loadgen", "bench/baselines/echo_epoll", "bench/baselines/echo_uring", "examples/echo_server",
            "examples/http_server", "examples/kv_server", "examples/group_commit", "bench/baselines/commit_pthread"]
TWINS = {"fiber": "fiber-baselines", "exec": "exec-baselines"}  # run the baselines when weft did not build
TIMEOUTS = {"fiber": 120, "io": 120, "exec": 300, "sync": 120, "fixed": 120}

if sys.stderr.isatty():
    BOLD, RESET, YELLOW = "\033[1m", "\033[0m", "\033[33m"
else:
    BOLD = RESET = YELLOW = ""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def say(msg=""):
    print(msg, flush=True)


def warn(msg):
    log("%swarning:%s %s" % (YELLOW, RESET, msg))


def short(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1e6:
        return "%.2fM" % (v / 1e6)
    if a >= 1e4:
        return "%.1fk" % (v / 1e3)
    return "%.3g" % v


# ---- builds -----------------------------------------------------------------------------------------

class Build:
    """One weft build whose programs compete: the current one (tag "") or a baseline (tag "@baseline").
    Its binaries are copied to a private directory first, so a rebuild while the run goes on (another
    checkout's bench/run, an editor's ninja) cannot pull a program out from under a measurement."""

    def __init__(self, dir, tag="", name="current", rev=None):
        self.dir, self.tag, self.name, self.rev = dir, tag, name, rev
        self.stage = None
        self.source = None
        info = machine.read(os.path.join(dir, "meson-info", "meson-info.json"))
        if info:
            try:
                self.source = json.loads(info)["directories"]["source"]
            except (ValueError, KeyError):
                pass

    def copy(self, root):
        self.stage = os.path.join(root, self.name)
        for rel in BINARIES:
            src = os.path.join(self.dir, rel)
            if os.path.isfile(src) and os.access(src, os.X_OK):
                dst = os.path.join(self.stage, rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy2(src, dst)

    def program(self, prog):
        """(path, None) or (None, why not)."""
        p = os.path.join(self.stage, "bench", prog)
        if os.access(p, os.X_OK):
            return p, None
        twin = TWINS.get(prog)
        if twin and os.access(os.path.join(self.stage, "bench", twin), os.X_OK):
            return os.path.join(self.stage, "bench", twin), None
        return None, "bench/%s was not built in %s (see its build log)" % (prog, self.dir)


def baseline_build(spec, root):
    """A Build for --baseline: a build directory, a checkout (built out of tree), or a git revision
    (archived and built into build/baseline-<rev>). Returns (Build, None) or (None, why)."""
    if os.path.isdir(spec):
        d = os.path.abspath(spec)
        if os.path.isfile(os.path.join(d, "build.ninja")):
            return Build(d, "@baseline", "baseline"), None
        if os.path.isfile(os.path.join(d, "meson.build")):
            h = hashlib.sha1(d.encode()).hexdigest()[:8]
            out = os.path.join(root, "build", "baseline-%s-%s" % (os.path.basename(d.rstrip("/")), h))
            why = meson_build(d, out)
            return (Build(out, "@baseline", "baseline"), None) if not why else (None, why)
        return None, "%s is neither a build directory (build.ninja) nor a checkout (meson.build)" % spec
    p = subprocess.run(["git", "-C", root, "rev-parse", "--verify", "--quiet", spec + "^{commit}"], capture_output=True,
                       text=True)
    if p.returncode != 0:
        return None, "%s is not a directory nor a git revision of %s" % (spec, root)
    sha = p.stdout.strip()
    base = os.path.join(root, "build", "baseline-%s" % sha[:12])
    src, out = os.path.join(base, "src"), os.path.join(base, "build")
    if not os.path.isfile(os.path.join(src, "meson.build")):
        os.makedirs(src, exist_ok=True)
        log("  unpacking %s (%s) into %s" % (spec, sha[:12], src))
        a = subprocess.Popen(["git", "-C", root, "archive", sha], stdout=subprocess.PIPE)
        t = subprocess.run(["tar", "-x", "-C", src], stdin=a.stdout)
        a.wait()
        if a.returncode or t.returncode:
            return None, "git archive %s failed" % sha[:12]
    why = meson_build(src, out)
    return (Build(out, "@baseline", "baseline", rev=sha), None) if not why else (None, why)


def meson_build(src, out):
    logf = out + ".log"
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(logf, "a") as lf:
        if not os.path.isfile(os.path.join(out, "build.ninja")):
            log("  configuring %s (release) from %s; log: %s" % (out, src, logf))
            ok = False
            # Static, as bench/run builds the current tree: the programs are copied away before they
            # run, and a baseline and the current build then differ only in their sources.
            for opts in (["-Dtests=false", "-Dbench=true"], []):
                r = subprocess.run(["meson", "setup", out, src, "--buildtype=release", "-Ddefault_library=static"] + opts, stdout=lf, stderr=lf)
                if r.returncode == 0:
                    ok = True
                    break
                shutil.rmtree(out, ignore_errors=True)
            if not ok:
                return "meson setup of %s failed (see %s)" % (src, logf)
        log("  building %s" % out)
        r = subprocess.run(["ninja", "-j%d" % len(os.sched_getaffinity(0)), "-C", out], stdout=lf, stderr=lf)
    if r.returncode != 0:
        warn("the baseline build had errors (see %s): what built still runs" % logf)
    return None


# ---- the run ----------------------------------------------------------------------------------------

class Bench:
    def __init__(self, a, builds, outdir):
        self.a, self.mode, self.builds, self.outdir = a, a.mode, builds, outdir
        self.records = []
        self.raw = open(os.path.join(outdir, "raw.jsonl"), "w")
        self.threshold, self.retries = a.max_other_cpu, a.retries
        self.state = {"port": 20000 + os.getpid() % 5000}
        self.tmp = tempfile.mkdtemp(prefix="weft-bench-")
        self.started = time.monotonic()
        self.wl_deadline = float("inf")
        self.uring_seen = {}  # (table, contender) -> [runs whose server held an io_uring fd, runs]
        self.profile_ok = None

    def emit(self, rec):
        self.records.append(rec)
        self.raw.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.raw.flush()

    def note(self, table, text):
        self.emit({"type": "note", "table": table, "note": text})

    # -- units and rounds --

    def unit(self, table, rnd, what, fn):
        """Runs fn() -> (records, other CPUs) and records its records; runs it again while other
        processes used more than the threshold, up to --retries times. Returns (records, disturbed)."""
        for attempt in range(1, self.retries + 2):
            recs, other = fn()
            disturbed = other is not None and other > self.threshold
            # No rerun once the workload's time is up: a run that cannot be redone is kept and marked.
            if disturbed and attempt <= self.retries and time.monotonic() < self.wl_deadline:
                self.emit({"type": "rerun", "table": table, "round": rnd, "what": what, "other_cpu": round(other, 3),
                           "attempt": attempt})
                for r in recs:
                    r["discarded"] = "rerun: other processes used %.2f CPUs" % other
                    self.emit(r)
                log("    %s: other processes used %.0f%% of a CPU: running it again" % (what, 100 * other))
                continue
            for r in recs:
                r["other_cpu"] = round(other, 3) if other is not None else None
                r["disturbed"] = disturbed
                r["attempt"] = attempt
                self.emit(r)
            return recs, disturbed

    def rounds(self, plan, tables, do_round, minr=None, maxr=None, deadline=None, what=""):
        """Rounds 1, 2, ... of do_round(r): at least minr (the plan's min_rounds), at most maxr, more
        while an interval of the tables is unsettled and another round fits before the deadline (the
        workload's share of the mode's time by default). Below minr a round that would end well past
        the deadline is not started either, once two are in: a busy machine costs rounds, not time."""
        minr = plan.min_rounds if minr is None else minr
        maxr = plan.max_rounds if maxr is None else maxr
        deadline = self.wl_deadline if deadline is None else deadline
        t0 = time.monotonic()
        span = max(1.0, deadline - t0)
        r = 0
        while True:
            r += 1
            do_round(r)
            now = time.monotonic()
            per = (now - t0) / r
            if r >= maxr:
                break
            if r < minr:
                if r >= 2 and now + per > deadline + 0.3 * span:
                    log("    %s: out of time after %d of its %d rounds (the machine is busy or slow)" % (what, r, minr))
                    break
                continue
            if now + per > deadline:
                log("    %s: stopping after %d rounds (its time is up)" % (what or "rounds", r))
                break
            if all(report.settled(report.summarize(t, self.records), plan.precision) for t in tables):
                break
        return r

    def show(self, table):
        say("")
        say(report.render_table(report.summarize(table, self.records)))

    # -- program workloads --

    def program_args(self, wl, plan, prog):
        mode = {"quick": ["--quick"], "full": ["--full"]}.get(self.mode, [])
        args = list(wl.program[1])
        extra = list(plan.get("args", []))
        if prog == "io":
            return args + ["--rounds", "1"] + (["--quick"] if self.mode == "quick" or "--quick" in extra else [])
        if prog == "fiber":
            return mode + ["--rounds", "1", "--task-rounds", "1"] + extra + args
        return mode + ["--rounds", "1"] + extra + args

    def program_unit(self, wl, plan, build, rnd):
        prog = wl.program[0]
        path, why = build.program(prog)
        names = [c for c, _ in wl.contenders]
        if not path:
            return [{"type": "failure", "table": wl.name, "contender": c + build.tag, "round": rnd, "reason": why}
                    for c in names], None
        argv = [path] + self.program_args(wl, plan, prog)
        env = dict(os.environ, BENCH_ROUND=str(rnd))
        u = machine.Usage().start()
        try:
            p = subprocess.run(argv, capture_output=True, text=True, errors="replace", env=env,
                               timeout=TIMEOUTS.get(prog, 120) * (3 if self.mode == "full" else 1))
            out, err, rc = p.stdout, p.stderr, p.returncode
        except subprocess.TimeoutExpired as e:
            out, err, rc = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""), \
                "", "timeout"
        other = u.stop()
        recs, seen = [], set()
        for line in out.splitlines():
            if not line.startswith("{"):
                continue
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("type") not in ("sample", "failure") or r.get("workload") != wl.name:
                continue
            c = r["contender"] + build.tag
            seen.add(r["contender"])
            rec = {"type": r["type"], "table": wl.name, "contender": c, "round": rnd}
            if r["type"] == "sample":
                rec.update(metric=r["metric"], unit=r.get("unit", ""), value=r["value"])
            else:
                rec["reason"] = r.get("reason", "failed")
            recs.append(rec)
        if rc != 0 or not seen:
            why = ("timed out" if rc == "timeout" else "exited with status %s" % rc) if rc != 0 else "printed no figure"
            tail = (err.strip().splitlines() or [""])[-1][:200]
            for c in names:
                if c not in seen:
                    recs.append({"type": "failure", "table": wl.name, "contender": c + build.tag, "round": rnd,
                                 "reason": "%s %s%s" % (prog, why, ": " + tail if tail else "")})
        # The progress line: the first figure of each contender.
        firsts = {}
        for r in recs:
            if r["type"] == "sample":
                firsts.setdefault(r["contender"], r["value"])
            else:
                firsts.setdefault(r["contender"], None)
        self._progress.append("  ".join("%s %s" % (c, short(v) if v is not None else "FAILED") for c, v in firsts.items()))
        return recs, other

    def wl_program(self, wl, plan):
        contenders = [c + b.tag for c, _ in wl.contenders for b in self.builds]
        self.emit({"type": "contenders", "table": wl.name, "contenders": contenders})
        if plan.get("note"):
            self.note(wl.name, plan.get("note"))

        def one_round(r):
            self._progress = []
            order = self.builds[(r - 1) % len(self.builds):] + self.builds[:(r - 1) % len(self.builds)]
            for b in order:
                self.unit(wl.name, r, "%s round %d%s" % (wl.name, r, b.tag),
                          lambda b=b: self.program_unit(wl, plan, b, r))
            log("  %-8s round %d: %s" % (wl.name, r, "   ".join(self._progress)))
        self.rounds(plan, [wl.name], one_round, what=wl.name)
        self.show(wl.name)

    # -- files --

    def ensure_file(self, size):
        d = self.a.data
        os.makedirs(d, exist_ok=True)
        f = os.path.join(d, "files-%dm.dat" % (size >> 20))
        if os.path.isfile(f) and os.path.getsize(f) == size:
            return f, None
        log("  laying out %s (%d MiB) ..." % (f, size >> 20))
        io, why = self.builds[0].program("io")
        if io:
            r = subprocess.run([io, "mkfile", "--file", f, "--size", str(size)], stderr=subprocess.PIPE, text=True)
            if r.returncode != 0:
                return None, "io mkfile failed: %s" % r.stderr.strip()[-200:]
        else:
            with open("/dev/urandom", "rb") as src, open(f, "wb") as dst:
                left = size
                while left:
                    chunk = src.read(min(left, 1 << 20))
                    dst.write(chunk)
                    left -= len(chunk)
        return f, None

    def files_unit(self, wl, plan, contender, build, qd, rnd, path):
        buffered = bool(plan.get("buffered"))
        seconds = plan.get("seconds", 0.5)
        table, name = wl.name, contender + build.tag
        if contender.startswith("weft-"):
            io, why = build.program("io")
            if not io:
                return [{"type": "failure", "table": table, "contender": name, "round": rnd, "reason": "qd %d: %s" % (qd, why)}], None
            # weft-BACKEND[-eager|-fixed]
            be, _, variant = contender[len("weft-"):].partition("-")
            argv = [io, "files", "--file", path, "--qd", str(qd), "--seconds", str(seconds), "--round", str(rnd)]
            argv += (["--buffered"] if buffered else []) + (["--" + variant] if variant else [])
            env = dict(os.environ, WEFT_BACKEND=be)
        else:
            # fio-ENGINE[-fixed]
            engine, _, variant = contender[len("fio-"):].partition("-")
            argv = [sys.executable, os.path.join(HERE, "fio.py"), "--file", path, "--engine", engine,
                    "--qd", str(qd), "--seconds", str(seconds), "--round", str(rnd)] + (["--buffered"] if buffered else [])
            argv += ["--fixedbufs"] if variant == "fixed" else []
            env = None
        u = machine.Usage(unbound=plan.get("device") == "loop").start()
        try:
            p = subprocess.run(argv, capture_output=True, text=True, errors="replace", env=env, timeout=90 + 3 * seconds)
            out, err, rc = p.stdout, p.stderr, p.returncode
        except subprocess.TimeoutExpired:
            out, err, rc = "", "", "timeout"
        other = u.stop()
        recs = []
        for line in out.splitlines():
            if not line.startswith("{"):
                continue
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("type") == "sample" and r.get("metric") == "iops":
                base = {"type": "sample", "table": table, "contender": name, "round": rnd}
                recs.append(dict(base, metric="iops_qd%d" % qd, unit="IOPS", value=r["value"]))
                for k, unit in (("cpu_us_per_read", "us"), ("syscalls_per_read", "calls")):
                    if isinstance(r.get(k), (int, float)):
                        recs.append(dict(base, metric="%s_qd%d" % (k, qd), unit=unit, value=r[k]))
            elif r.get("type") == "failure":
                reason = str(r.get("reason", "failed"))
                recs.append({"type": "failure", "table": table, "contender": name, "round": rnd,
                             "reason": reason if reason.startswith("qd ") else "qd %d: %s" % (qd, reason)})
        if not recs:
            why = "timed out" if rc == "timeout" else "exited with status %s: %s" % (rc, (err.strip().splitlines() or [""])[-1][:200])
            recs.append({"type": "failure", "table": table, "contender": name, "round": rnd, "reason": "qd %d: %s" % (qd, why)})
        v = next((r["value"] for r in recs if r["type"] == "sample"), None)
        self._progress.append("%s %s" % (name, short(v) if v is not None else "FAILED"))
        return recs, other

    def loop_device(self, size):
        """A loop device over a file of size bytes in tmpfs (/dev/shm): a device faster than the
        submitter, where a read is a copy by the loop driver's worker. (path, cleanup, None), or
        (None, None, why): it needs root (losetup) and the memory."""
        shm = "/dev/shm"
        fs = subprocess.run(["stat", "-f", "-c", "%T", shm], capture_output=True, text=True).stdout.strip()
        if fs != "tmpfs":
            return None, None, "%s is not a tmpfs (%s)" % (shm, fs or "missing")
        if not shutil.which("losetup"):
            return None, None, "losetup is missing (util-linux)"
        img = os.path.join(shm, "weft-bench-%d.img" % os.getpid())
        io, why = self.builds[0].program("io")
        if not io:
            return None, None, why
        r = subprocess.run([io, "mkfile", "--file", img, "--size", str(size)], stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            if os.path.exists(img):
                os.unlink(img)
            return None, None, "io mkfile %s failed: %s" % (img, r.stderr.strip()[-200:])
        r = subprocess.run(["losetup", "-f", "--show", img], capture_output=True, text=True)
        if r.returncode != 0:
            os.unlink(img)
            return None, None, "losetup failed (it needs root): %s" % r.stderr.strip()[-200:]
        dev = r.stdout.strip()

        def cleanup():
            subprocess.run(["losetup", "-d", dev], stderr=subprocess.DEVNULL)
            os.unlink(img)
        return dev, cleanup, None

    def wl_files(self, wl, plan):
        size = plan.get("size_mib", 1024) << 20
        if plan.get("device") == "loop":
            path, cleanup, why = self.loop_device(size)
            try:
                self.files_on(wl, plan, size, path, why)
            finally:
                if cleanup:
                    cleanup()
            return
        path, why = self.ensure_file(size)
        self.files_on(wl, plan, size, path, why)

    def files_on(self, wl, plan, size, path, why):
        base = list(plan.get("contenders", [c for c, _ in wl.contenders]))
        if self.a.baseline_active:
            base = ["weft-io_uring", "weft-epoll", "fio-io_uring"]
        units = [(c, b) for c in base for b in (self.builds if c.startswith("weft-") else self.builds[:1])]
        self.emit({"type": "contenders", "table": wl.name, "contenders": [c + b.tag for c, b in units]})
        if not path:
            for c, b in units:
                self.emit({"type": "failure", "table": wl.name, "contender": c + b.tag, "round": 0, "reason": why})
            self.show(wl.name)
            return
        qds = plan.get("qds", [32])
        if plan.get("device") == "loop":
            where = "%s, a loop device over a %d MiB file in tmpfs" % (path, size >> 20)
        else:
            fs = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", path], capture_output=True,
                                text=True).stdout.strip()
            where = "%d MiB file %s%s" % (size >> 20, path, " (%s)" % fs if fs else "")
        self.note(wl.name, "%s; %.2g s windows per contender and QD (%s); weft and fio pinned to CPU 0" % (
            where, plan.get("seconds", 0.5), ", ".join("QD %d" % q for q in qds)))
        self.note(wl.name, "fio: --rw=randread --bs=4k, its defaults otherwise; psync: iodepth 1, numjobs=min(QD,4) "
                           "(QD = threads); weft-epoll: reads run on weft's executor")
        if plan.get("buffered"):
            subprocess.run(["cat", path], stdout=subprocess.DEVNULL)
            self.note(wl.name, "file read into the page cache first (cat); fio with --invalidate=0")
        elif plan.get("device") != "loop":
            # The VM's disk is a file on the host, whose cache warms as it is read: one sequential pass first,
            # or whoever runs first meets a colder disk.
            subprocess.run(["dd", "if=" + path, "of=/dev/null", "bs=1M", "iflag=direct", "status=none"],
                           stderr=subprocess.DEVNULL)
            self.note(wl.name, "the file was read once with O_DIRECT before the rounds (warms the host's cache of "
                               "the virtual disk)")

        def one_round(r):
            for qd in qds:
                self._progress = []
                k = (r - 1) % len(units)
                for c, b in units[k:] + units[:k]:
                    self.unit(wl.name, r, "%s qd %d %s%s round %d" % (wl.name, qd, c, b.tag, r),
                              lambda c=c, b=b: self.files_unit(wl, plan, c, b, qd, r, path))
                log("  %-8s round %d qd %d: %s" % (wl.name, r, qd, "  ".join(self._progress)))
        self.rounds(plan, [wl.name], one_round, what=wl.name)
        self.show(wl.name)

    # -- durable logs --

    def wl_commit(self, wl, plan):
        """Group commit (weft, pthreads) against a sync per record (fio --fdatasync=1), interleaved round by
        round; the log lives where the files workloads' data does, on the disk under test."""
        d = self.a.data
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "commit.log")
        writers, records, size = plan.get("writers", 64), plan.get("records", 100), plan.get("size", 128)
        units = [(c, b) for c, _ in wl.contenders for b in (self.builds if c.startswith("weft-") else self.builds[:1])]
        self.emit({"type": "contenders", "table": wl.name, "contenders": [c + b.tag for c, b in units]})
        fs = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", d], capture_output=True, text=True).stdout.strip()
        self.note(wl.name, "%d writers x %d records of %d B to one log in %s%s; every program pinned to CPU 0; the "
                           "weft and pthread programs check the log afterwards, record by record"
                  % (writers, records, size, d, " (%s)" % fs if fs else ""))

        def one(contender, build, rnd):
            argv = [sys.executable, os.path.join(HERE, "commit.py"), "--contender", contender, "--build", build.stage,
                    "--file", path, "--writers", str(writers), "--records", str(records), "--size", str(size),
                    "--round", str(rnd)]
            u = machine.Usage().start()
            try:
                p = subprocess.run(["taskset", "-c", "0"] + argv, capture_output=True, text=True, timeout=180)
                out = p.stdout
            except subprocess.TimeoutExpired:
                out = ""
            other = u.stop()
            recs = []
            for line in out.splitlines():
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                r = dict(r, table=wl.name, contender=contender + build.tag)
                r.pop("workload", None)
                recs.append(r)
            if not recs:
                recs = [{"type": "failure", "table": wl.name, "contender": contender + build.tag, "round": rnd,
                         "reason": "commit.py printed nothing"}]
            v = next((r["value"] for r in recs if r.get("metric") == "records_per_s"), None)
            self._progress.append("%s%s %s" % (contender, build.tag, short(v) if v is not None else "FAILED"))
            return recs, other

        def one_round(r):
            self._progress = []
            k = (r - 1) % len(units)
            for c, b in units[k:] + units[:k]:
                self.unit(wl.name, r, "%s %s%s round %d" % (wl.name, c, b.tag, r), lambda c=c, b=b: one(c, b, r))
            log("  %-8s round %d: %s" % (wl.name, r, "  ".join(self._progress)))
        self.rounds(plan, [wl.name], one_round, what=wl.name)
        self.show(wl.name)

    # -- servers under load --

    def net_samples(self, table, contender, rnd, rec, metrics):
        if rec.get("uses_io_uring") is not None:
            seen = self.uring_seen.setdefault((table, contender), [0, 0])
            seen[0] += bool(rec["uses_io_uring"])
            seen[1] += 1
        if not rec.get("ok"):
            return [{"type": "failure", "table": table, "contender": contender, "round": rnd,
                     "reason": rec.get("reason", "failed")}]
        out = []
        for m, info in metrics.items():
            v = rec.get(m)
            if isinstance(v, (int, float)):
                out.append({"type": "sample", "table": table, "contender": contender, "round": rnd, "metric": m,
                            "unit": info.unit, "value": v})
        return out

    def profile_run(self, table, contender, run):
        """One run under perf record: run(perf_file) -> (record, program path). Emits the breakdown."""
        if self.profile_ok is None:
            self.profile_ok = cpu_profile.check()
            if self.profile_ok:
                warn("no CPU breakdown: " + self.profile_ok)
        if self.profile_ok:
            self.emit({"type": "profile", "table": table, "contender": contender, "error": self.profile_ok})
            return
        data = os.path.join(self.tmp, "perf-%s-%s.data" % (table, contender.replace("@", "_")))
        for attempt in range(1, self.retries + 2):
            rec, program = run(data)
            other = rec.get("other_cpu_util")
            if (rec.get("ok") and other is not None and other > self.threshold and attempt <= self.retries
                    and time.monotonic() < self.wl_deadline):
                self.emit({"type": "rerun", "table": table, "round": 0, "what": "profile %s" % contender,
                           "other_cpu": other, "attempt": attempt})
                log("    profile %s: other processes used %.0f%% of a CPU: running it again" % (contender, 100 * other))
                continue
            break
        if not rec.get("ok"):
            out = {"error": rec.get("reason", "the run failed")}
        else:
            out = cpu_profile.breakdown(data, rec.get("perf_window_requests"), rec.get("perf_window_server_cpu_s"),
                                        program)
        try:
            os.unlink(data)
        except OSError:
            pass
        self.emit(dict(out, type="profile", table=table, contender=contender, other_cpu=rec.get("other_cpu_util"),
                       disturbed=bool(rec.get("other_cpu_util") and rec["other_cpu_util"] > self.threshold),
                       load=rec.get("load"), offered_rate=rec.get("offered_rate"), req_per_s=rec.get("req_per_s")))
        if out.get("error"):
            log("    profile %s: %s" % (contender, out["error"]))
        else:
            top = sorted(out["us_per_req"].items(), key=lambda kv: -kv[1])[:3]
            log("    profile %-24s %s us/req: %s" % (contender, short(out.get("cpu_us_per_req")),
                                                     ", ".join("%s %s" % (k, short(v)) for k, v in top)))

    def echo_servers(self, contenders):
        """[(contender name, argv, why not, build)] for the echo servers of every build."""
        out = []
        per = [(b, echo.commands(b.stage)) for b in self.builds]
        for c in contenders:
            for b, cmds in per:
                if b.tag and not c.startswith("weft-"):
                    continue  # the baselines are the same programs in both builds
                argv, why = cmds[c]
                out.append((c + b.tag, argv, why, b))
        return out

    def loadgen(self):
        return os.path.join(self.builds[0].stage, "bench", "echo", "loadgen")

    def wl_echo(self, wl, plan):
        contenders = list(plan.get("contenders", [c for c, _ in wl.contenders]))
        if self.a.baseline_active:
            contenders = [c for c in contenders if c.startswith("weft-")]
        configs = plan.get("configs", [(512, 64)])
        for i, (conns, size) in enumerate(configs):
            servers = self.echo_servers(contenders)
            log("  %d B x %d connections: %s" % (size, conns, ", ".join(s[0] for s in servers)))
            self.echo_config(wl, plan, conns, size, servers, len(configs) - i)

    def echo_config(self, wl, plan, conns, size, servers, nconfigs_left, user=None):
        """The closed-loop rounds, the fixed-rate rounds at a rate all sustain, then the profiles."""
        phases = plan.get("phases", ["closed", "rate"])
        tables = {load: (W.echo_table(conns, size, load, wl.name) if not user else "compare-echo-%s" % load)
                  for load in phases}
        for t in tables.values():
            self.emit({"type": "contenders", "table": t, "contenders": [s[0] for s in servers]})
        warmup = plan.get("warmup", 0.2) * (2 if conns >= 10000 else 1)
        window = plan.get("syscall_window", 0.25)
        lg = self.loadgen()
        metrics = wl.metrics

        def run_one(table, name, argv, why, load, rate, rnd, env=None, perf=None):
            if why:
                return {"ok": False, "reason": why, "other_cpu_util": None}
            # System calls per request are the fixed rate's figure; the closed loop skips that window.
            kw = dict(syscalls=load == "rate", perf_record=perf, env=env, state=self.state,
                      server_cls=echo.server_class(W.base_contender(name)))
            if user:
                kw.update(server_cls=echo.UserServer, ready="port")
            dur = plan.get("rate_duration", 0.6) if load == "rate" else plan.get("duration", 0.4)
            if perf:
                dur = 0.1
                window_s = plan.get("profile_window", 0.8)
            else:
                window_s = window
            return echo.measure(lg, argv, conns, size, load, rate, warmup, dur, window_s, **kw)

        def phase(load, rate, minr, maxr, deadline, show=True, chosen=None):
            table = tables[load]
            if load == "rate":
                self.note(table, "fixed rate %s msg/s (%s); %.2g s measured after %.2g s of warmup per run; syscalls "
                                 "counted by perf over a separate %.2g s window right after"
                          % ("{:,.0f}".format(rate), chosen, plan.get("rate_duration", 0.6), warmup, window))
            else:
                self.note(table, "closed loop (each connection keeps one message outstanding): the maximum rate; "
                                 "%.2g s measured after %.2g s of warmup per run (no syscall window: that figure is "
                                 "the fixed rate's)" % (plan.get("duration", 0.4), warmup))

            def one_round(r):
                prog = []
                k = (r - 1) % len(servers)
                for name, argv, why, b in servers[k:] + servers[:k]:
                    env = user_env(name) if user else None

                    def fn(name=name, argv=argv, why=why, env=env):
                        rec = run_one(table, name, argv, why, load, rate, r, env)
                        return self.net_samples(table, name, r, rec, metrics), rec.get("other_cpu_util")
                    recs, _ = self.unit(table, r, "%s %s round %d" % (load, name, r), fn)
                    cpu = next((x["value"] for x in recs if x.get("metric") == "server_cpu_us_per_req"), None)
                    rps = next((x["value"] for x in recs if x.get("metric") == "req_per_s"), None)
                    prog.append("%s %s/s %s us" % (name, short(rps), short(cpu)) if rps else "%s FAILED" % name)
                log("  %-22s round %d: %s" % (table, r, "  ".join(prog)))
            self.rounds(plan, [table], one_round, minr, maxr, deadline, what=table)
            if show:
                self.show(table)

        def user_env(name):
            return dict(os.environ, WEFT_BACKEND=name)

        t0 = time.monotonic()
        # This configuration's share of the workload's time; the closed loop gets a third of it, the
        # profiles what their runs take (about 1.5 s each plus the window).
        end = t0 + (self.wl_deadline - t0) / max(1, nconfigs_left)
        nprof = 0 if (self.a.no_profile or (self.a.baseline_active and not self.a.profile)) else (
            len(servers) if user else len([s for s in servers if W.base_contender(s[0]) in plan.get("profile", [])])
            if configs_profiled(plan, conns, size) else 0)
        rate, why_rate = None, None
        if "closed" in phases:
            n = plan.get("closed_rounds", 3)
            phase("closed", None, n, n, t0 + (end - t0) / 3)
            rate, why_rate = pick_rate(self.records, tables["closed"], plan.get("rate_fraction", 0.6), plan.get("rate"))
        if "rate" in phases:
            if rate is None and plan.get("rate"):
                rate, why_rate = plan.get("rate"), "the workload's own"
            if rate is None:
                for name, _, _, _ in servers:
                    self.emit({"type": "failure", "table": tables["rate"], "contender": name, "round": 0,
                               "reason": "no closed-loop figure to pick the fixed rate from"})
                self.show(tables["rate"])
            else:
                log("  fixed rate: %s msg/s" % "{:,.0f}".format(rate))
                phase("rate", rate, plan.min_rounds, plan.max_rounds,
                      end - nprof * (1.7 + plan.get("profile_window", 0.8)), show=not nprof, chosen=why_rate)
        if self.a.no_profile or (self.a.baseline_active and not self.a.profile):
            return
        if configs_profiled(plan, conns, size) or user:
            load = "rate" if rate else "closed"
            table = tables.get(load) or list(tables.values())[0]
            self.note(table, "CPU breakdown: perf record -e cpu-clock -c 100000 -g over a %.2g s window of a separate "
                             "run of each server at the %s" % (plan.get("profile_window", 0.8),
                                                               "same fixed rate" if rate else "closed loop"))
            want = plan.get("profile", [s[0] for s in servers]) if not user else [s[0] for s in servers]
            for name, argv, why, b in servers:
                if W.base_contender(name) not in want and name not in want:
                    continue
                env = user_env(name) if user else None
                prog = os.path.realpath(shutil.which(argv[0]) or argv[0])
                self.profile_run(table, name, lambda data, name=name, argv=argv, why=why, env=env:
                                 (run_one(table, name, argv, why, load, rate, 0, env, perf=data), prog))
            self.show(table)

    def http_servers(self, wl, root=None):
        """(name, argv, why, class) of the workload's contenders, from each build (a baseline's weft only);
        with root, serving that directory's files."""
        servers = []
        for b in self.builds:
            cmds = http.commands(b.stage, root)
            for c, _ in wl.contenders:
                if (b.tag or self.a.baseline_active) and not c.startswith("weft-"):
                    continue
                argv, cls, why = cmds[c]
                servers.append((c + b.tag, argv, why, cls))
        return servers

    def wl_http(self, wl, plan, user=None):
        if user:
            servers = [(be, user, None, echo.UserServer) for be in ("io_uring", "epoll")]
        else:
            servers = self.http_servers(wl)
        self.http_table(wl.name if not user else "compare-http", wl, plan, servers, user=user)

    def wl_http_files(self, wl, plan):
        """One table a file size: every server serving the same directory, wrk fetching one file."""
        sizes = plan.get("sizes", [1024])
        root = tempfile.mkdtemp(prefix="weft-www-", dir=self.tmp)
        os.chmod(root, 0o755)  # nginx's worker runs as nobody
        os.chmod(self.tmp, 0o755)
        bodies = {}
        for size in sizes:
            name = W.http_files_table(size)[len("http-files-"):]
            with open(os.path.join(root, name), "wb") as f:
                f.write(os.urandom(size))
            os.chmod(os.path.join(root, name), 0o644)
            bodies[size] = name
        t0 = time.monotonic()
        for i, size in enumerate(sizes):
            with open(os.path.join(root, bodies[size]), "rb") as f:
                body = f.read()
            end = t0 + (self.wl_deadline - t0) * (i + 1) / len(sizes)
            self.http_table(W.http_files_table(size), wl, plan, self.http_servers(wl, root), path="/" + bodies[size],
                            body=body, deadline=end)
            t0 = time.monotonic()
        shutil.rmtree(root, ignore_errors=True)

    def http_table(self, table, wl, plan, servers, user=None, path="/", body=http.BODY, deadline=None):
        """The rounds of one HTTP table (wrk against each server in turn), then the CPU profiles."""
        deadline = self.wl_deadline if deadline is None else deadline
        self.emit({"type": "contenders", "table": table, "contenders": [s[0] for s in servers]})
        wrk = shutil.which("wrk")
        if not wrk:
            for s in servers:
                self.emit({"type": "failure", "table": table, "contender": s[0], "round": 0,
                           "reason": "wrk not installed (apt-get install wrk)"})
            self.show(table)
            return
        warmup, duration, window = plan.get("warmup", 1), plan.get("duration", 1), plan.get("syscall_window", 1)
        sys_rounds = plan.get("syscall_rounds", 3)
        self.note(table, "wrk -t 1 -c %d (keep-alive GET %s) on CPU 1, server on CPU 0%s; %d s measured after a %d s "
                         "warmup run; server CPU: every thread's run time over the measured wrk run; syscalls/req: perf "
                         "over a separate %d s wrk run in the first %d rounds"
                  % (http.CONNS, path, " (the 2-loop and 2-worker servers on CPUs 0 and 1: their second loop shares "
                                       "CPU 1 with wrk)" if any(s[3].cpus != "0" for s in servers) else "",
                     duration, warmup, window, sys_rounds))

        def run_one(name, argv, why, cls, rnd, perf=None):
            if why:
                return {"ok": False, "reason": why, "other_cpu_util": None}
            env = dict(os.environ, WEFT_BACKEND=name) if user else None
            kw = dict(env=env, state=self.state, perf_record=perf, wrk_bin=wrk, syscalls=rnd <= sys_rounds, path=path,
                      body=body)
            if user:
                kw.update(ready="port", body=None)
            elif issubclass(cls, http.Nginx):
                kw.update(ready="port")
            if perf:
                return http.measure(argv, cls, warmup, 1, plan.get("profile_window", 1), **kw)
            return http.measure(argv, cls, warmup, duration, window, **kw)

        def one_round(r):
            prog = []
            k = (r - 1) % len(servers)
            for name, argv, why, cls in servers[k:] + servers[:k]:
                def fn(name=name, argv=argv, why=why, cls=cls):
                    rec = run_one(name, argv, why, cls, r)
                    return self.net_samples(table, name, r, rec, wl.metrics), rec.get("other_cpu_util")
                recs, _ = self.unit(table, r, "%s round %d" % (name, r), fn)
                cpu = next((x["value"] for x in recs if x.get("metric") == "server_cpu_us_per_req"), None)
                rps = next((x["value"] for x in recs if x.get("metric") == "req_per_s"), None)
                prog.append("%s %s/s %s us" % (name, short(rps), short(cpu)) if rps else "%s FAILED" % name)
            log("  %-8s round %d: %s" % (table, r, "  ".join(prog)))
        want = plan.get("profile", [s[0] for s in servers])
        nprof = len([s for s in servers if user or W.base_contender(s[0]) in want]) if (
            not self.a.no_profile and (not self.a.baseline_active or self.a.profile)) else 0
        self.rounds(plan, [table], one_round, deadline=deadline - nprof * (warmup + plan.get("profile_window", 1) + 1.5),
                    what=table)
        if nprof:
            self.note(table, "CPU breakdown: perf record -e cpu-clock -c 100000 -g over a separate %d s wrk run of "
                             "each server" % plan.get("profile_window", 1))
            for name, argv, why, cls in servers:
                if not user and W.base_contender(name) not in want:
                    continue
                prog = os.path.realpath(shutil.which(argv[0]) or argv[0])
                self.profile_run(table, name, lambda data, name=name, argv=argv, why=why, cls=cls:
                                 (run_one(name, argv, why, cls, 1, perf=data), prog))
        self.show(table)

    # -- the Redis protocol --

    def wl_kv(self, wl, plan):
        """Each configuration (clients, pipeline) is a table: its rounds run every server once, in an order
        that turns; then, in --full, the memory table."""
        servers = []
        for b in self.builds:
            cmds = kv.commands(b.stage)
            for c in plan.get("contenders", [c for c, _ in wl.contenders]):
                if b.tag and not c.startswith("weft-"):
                    continue  # redis-server is the same program for both builds
                if self.a.baseline_active and not c.startswith("weft-"):
                    continue
                argv, cls, why = cmds[c]
                servers.append((c + b.tag, argv, why, cls))
        tool = shutil.which("redis-benchmark")
        configs = plan.get("configs", [(50, 1)])
        tables = [W.kv_table(c, p) for c, p in configs]
        memory = plan.get("memory") and not self.a.baseline_active
        for t in tables + (["kv-memory"] if memory else []):
            spec = W.table_spec(t)
            self.emit({"type": "contenders", "table": t,
                       "contenders": [s[0] for s in servers if W.base_contender(s[0]) in spec.labels]})
        if not tool:
            for t in tables:
                for s in servers:
                    self.emit({"type": "failure", "table": t, "contender": s[0], "round": 0,
                               "reason": "redis-benchmark not installed (apt-get install redis-tools)"})
                self.show(t)
            return
        seconds, sys_rounds = plan.get("seconds", 1.0), plan.get("syscall_rounds", 1)
        for t in tables:
            self.note(t, "redis-benchmark pinned to CPU 1, a fresh server per run; each run: a warmup (which sets "
                         "how many requests make the measured run about %.2g s), the measured run, and in the first "
                         "%d rounds a separate run under perf counting the server's system calls" % (seconds, sys_rounds))

        def run_one(name, argv, why, cls, clients, pipeline, rnd):
            if why:
                return {"ok": False, "reason": why, "other_cpu_util": None}
            return kv.measure(argv, cls, clients, pipeline, seconds, syscalls=rnd <= sys_rounds, state=self.state,
                              ready="port" if cls is kv.Redis else "stdout", tool=tool)

        t0 = time.monotonic()
        share = (self.wl_deadline - t0) * (0.8 if memory else 1.0)
        for i, (clients, pipeline) in enumerate(configs):
            table = tables[i]
            end = t0 + share * (i + 1) / len(configs)

            def one_round(r, table=table, clients=clients, pipeline=pipeline):
                prog = []
                k = (r - 1) % len(servers)
                for name, argv, why, cls in servers[k:] + servers[:k]:
                    def fn(name=name, argv=argv, why=why, cls=cls):
                        rec = run_one(name, argv, why, cls, clients, pipeline, r)
                        return self.net_samples(table, name, r, rec, wl.metrics), rec.get("other_cpu_util")
                    recs, _ = self.unit(table, r, "%s %s round %d" % (table, name, r), fn)
                    per_cpu = next((x["value"] for x in recs if x.get("metric") == "req_per_cpu_s"), None)
                    rps = next((x["value"] for x in recs if x.get("metric") == "req_per_s"), None)
                    prog.append("%s %s/s %s/CPU-s" % (name, short(rps), short(per_cpu)) if rps else "%s FAILED" % name)
                log("  %-14s round %d: %s" % (table, r, "  ".join(prog)))
            self.rounds(plan, [table], one_round, deadline=end, what=table)
            self.show(table)
        if memory:
            spec = W.table_spec("kv-memory")
            mem_servers = [s for s in servers if W.base_contender(s[0]) in spec.labels]
            self.note("kv-memory", "a fresh server, then a million pipelined SETs of 16-byte keys (key:%012d) to "
                                   "16-byte values, every reply checked; RSS from /proc/PID/statm before and after")

            def memory_round(r):
                prog = []
                for name, argv, why, cls in mem_servers:
                    def fn(name=name, argv=argv, why=why, cls=cls):
                        rec = ({"ok": False, "reason": why, "other_cpu_util": None} if why else
                               kv.measure_memory(argv, cls, state=self.state,
                                                 ready="port" if cls is kv.Redis else "stdout"))
                        return self.net_samples("kv-memory", name, r, rec, spec.metrics), rec.get("other_cpu_util")
                    recs, _ = self.unit("kv-memory", r, "kv-memory %s round %d" % (name, r), fn)
                    v = next((x["value"] for x in recs if x.get("metric") == "rss_bytes_per_key"), None)
                    prog.append("%s %s B/key" % (name, short(v)) if v else "%s FAILED" % name)
                log("  %-14s round %d: %s" % ("kv-memory", r, "  ".join(prog)))
            n = plan.get("memory_rounds", 3)
            self.rounds(plan, ["kv-memory"], memory_round, n, n, what="kv-memory")
            self.show("kv-memory")

    # -- the user's server --

    def wl_compare(self, load, port, argv):
        plan = W.COMPARE.plan(self.mode)
        wl = W.COMPARE
        if port:
            self.state["fixed"] = port
        if load == "echo":
            servers = [(be, argv, None, self.builds[0]) for be in ("io_uring", "epoll")]
            self.echo_config(wl, plan_with(plan, profile=["io_uring", "epoll"]), self.a.conns, self.a.size, servers, 1,
                             user=argv)
            self.uring_note(["compare-echo-closed", "compare-echo-rate"])
        else:
            self.wl_http(wl, plan_with(plan, warmup=1, duration=1, syscall_window=1, profile_window=1), user=argv)
            self.uring_note(["compare-http"])

    def uring_note(self, tables):
        """For a server of the user's: whether WEFT_BACKEND took effect (an io_uring instance on io_uring,
        none on epoll), so a program that ignores it is not reported as a comparison of backends."""
        for t in tables:
            u = self.uring_seen.get((t, "io_uring"), [0, 0])
            e = self.uring_seen.get((t, "epoll"), [0, 0])
            if not u[1]:
                continue
            self.note(t, "the server held an io_uring instance in %d of %d runs with WEFT_BACKEND=io_uring and in %d of "
                         "%d with =epoll" % (u[0], u[1], e[0], e[1]))
            if u[0] == 0:
                warn("your server never opened an io_uring with WEFT_BACKEND=io_uring: it does not seem to be a weft "
                     "program (or ignores the variable), so both runs measured the same thing")

    def close(self):
        self.raw.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def plan_with(plan, **kw):
    p = W.Plan(plan.min_rounds, plan.max_rounds, plan.budget_s, plan.precision, **dict(plan.kw, **kw))
    return p


def configs_profiled(plan, conns, size):
    want = plan.get("profile_configs")
    return bool(plan.get("profile")) and (want is None or (conns, size) in [tuple(x) for x in want])


# The most of the slowest contender's median closed-loop rate a plan's own rate may be: above it, some
# contender would be near its limit, and its CPU per request would measure its queueing.
PLAN_RATE_MAX = 0.8


def pick_rate(records, table, fraction, planned=None):
    """The fixed rate, and why it was chosen, from the table's closed-loop medians: the plan's rate when
    every contender's median is at least 1/PLAN_RATE_MAX of it (the same rate in every run, so that two
    runs measure the same thing: a rate that followed the closed loop moved 87,000 to 100,000 msg/s
    between back-to-back runs, and the ratios with it); otherwise fraction times the slowest median,
    rounded down to two significant digits. (None, None) without closed-loop figures."""
    s = report.summarize(table, records)
    meds = {c: v["req_per_s"]["median"] for c, v in s["values"].items() if "req_per_s" in v}
    if not meds:
        return None, None
    slowest = min(meds, key=meds.get)
    if planned and planned <= PLAN_RATE_MAX * meds[slowest]:
        return planned, ("the plan's rate, the same in every run; the slowest contender, %s, reached %s msg/s in "
                         "the closed loop" % (slowest, "{:,.0f}".format(meds[slowest])))
    rate = fraction * meds[slowest]
    step = 10 ** max(0, len(str(int(rate))) - 2)
    why = "%g x the median closed-loop rate of the slowest contender, %s" % (fraction, slowest)
    if planned:
        why += " (the plan's %s msg/s is more than %g x that)" % ("{:,.0f}".format(planned), PLAN_RATE_MAX)
    return max(step, int(rate // step) * step), why


def sysinfo(bench, builds, compare_argv=None):
    """The machine, and what io_uring setup each io_uring server got on this kernel."""
    m = machine.info()
    bench.emit(dict(m, type="machine"))
    for b in builds:
        srv = os.path.join(b.stage, "examples", "echo_server")
        if os.access(srv, os.X_OK):
            bench.emit({"type": "uring", "who": "weft (examples/echo_server%s)" % (" " + b.tag if b.tag else ""),
                        "calls": machine.uring_setup([srv, "--port", "0", "--host", "127.0.0.1", "--backend", "io_uring"],
                                                     ready="ready")})
    base = os.path.join(builds[0].stage, "bench", "baselines", "echo_uring")
    if os.access(base, os.X_OK):
        bench.emit({"type": "uring", "who": "plain liburing (bench/baselines/echo_uring)",
                    "calls": machine.uring_setup([base, "--port", "0", "--host", "127.0.0.1"], seconds=0.4)})
    if compare_argv:
        port = str(bench.state.get("fixed") or echo.free_port(dict(bench.state)))
        env = dict(os.environ, WEFT_BACKEND="io_uring", PORT=port)
        bench.emit({"type": "uring", "who": "your server (WEFT_BACKEND=io_uring)",
                    "calls": machine.uring_setup([a.replace("{port}", port) for a in compare_argv], env=env, seconds=1.0)})


def parse(argv):
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    else:
        rest = []
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workloads", nargs="*")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="mode", action="store_const", const="quick")
    g.add_argument("--full", dest="mode", action="store_const", const="full")
    ap.set_defaults(mode="default")
    ap.add_argument("--list", action="store_true", help="the workloads and the modes that run them")
    ap.add_argument("--baseline", metavar="DIR|REV", help="compare with another build: a build directory, a checkout "
                                                          "or a git revision (built into build/baseline-REV)")
    ap.add_argument("--compare", metavar="echo|http[:PORT]", help="run the command after -- on WEFT_BACKEND=io_uring and "
                                                                 "=epoll under this load ({port} / $PORT: its port)")
    ap.add_argument("--conns", type=int, default=512, help="--compare echo: connections (default 512)")
    ap.add_argument("--size", type=int, default=64, help="--compare echo: message size (default 64)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "bench"), help="the weft build to measure")
    ap.add_argument("--data", default=None, help="where the files workloads keep their test file (default BUILD/data)")
    ap.add_argument("--results", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--max-other-cpu", type=float, default=0.2, metavar="CPUS",
                    help="a run during which other processes used more CPU than this is run again (default 0.2)")
    ap.add_argument("--retries", type=int, default=None, help="reruns of a disturbed run (default 1; 0 in --quick)")
    ap.add_argument("--no-profile", action="store_true", help="skip the CPU breakdowns")
    ap.add_argument("--profile", action="store_true", help="take the CPU breakdowns in a --baseline run too")
    ap.add_argument("--command", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.rest = rest
    if a.compare and not rest:
        ap.error("--compare needs the server's command after --")
    if rest and not a.compare:
        ap.error("a command after -- is for --compare")
    if a.retries is None:
        a.retries = 0 if a.mode == "quick" else 1
    a.data = a.data or os.path.join(a.build, "data")
    return a


def list_workloads():
    for w in W.WORKLOADS:
        modes = [m for m in ("quick", "default", "full") if m in w.plans]
        say("%-15s %s  [%s]" % (w.name, w.desc, ", ".join(modes) or "only when named"))
    say("")
    say("aliases: " + "; ".join("%s = %s" % (k, " ".join(v)) for k, v in W.ALIASES.items()))
    for m, text in W.MODES.items():
        say("%-8s %s" % ("--" + m if m != "default" else "(none)", text))


def main(argv):
    a = parse(argv)
    if a.list:
        list_workloads()
        return 0
    a.baseline_active = bool(a.baseline)
    try:
        names = W.resolve(a.workloads) if a.workloads else (
            [] if a.compare else (W.resolve(BASELINE_DEFAULT) if a.baseline else W.in_mode(a.mode)))
    except KeyError as e:
        log("bench/run: unknown workload %s (see --list)" % e)
        return 2
    builds = [Build(os.path.abspath(a.build))]
    if a.baseline:
        b, why = baseline_build(a.baseline, ROOT)
        if not b:
            log("bench/run: --baseline: %s" % why)
            return 2
        builds.append(b)
    compare = None
    if a.compare:
        load, _, port = a.compare.partition(":")
        if load not in ("echo", "http") or (port and not port.isdigit()):
            log("bench/run: --compare takes echo or http, optionally :PORT (e.g. --compare echo:7000)")
            return 2
        compare = (load, int(port) if port else None, a.rest)

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    outdir = os.path.join(a.results, stamp + ("-" + a.mode if a.mode != "default" else "") +
                          ("-baseline" if a.baseline else "") + ("-compare" if compare else ""))
    os.makedirs(outdir, exist_ok=True)
    bench = Bench(a, builds, outdir)
    if compare and compare[1]:
        bench.state["fixed"] = compare[1]
    stage = tempfile.mkdtemp(prefix="weft-bench-bin-")
    try:
        for b in builds:
            b.copy(stage)
        run = {"type": "run", "mode": a.mode, "command": a.command or "bench/run " + " ".join(shlex.quote(x) for x in argv),
               "started_utc": stamp, "workloads": names, "max_other_cpu": a.max_other_cpu, "retries": a.retries,
               "git": report.git_info(ROOT), "builds": [{"dir": b.dir, "tag": b.tag, "rev": b.rev, "source": b.source}
                                                        for b in builds]}
        if a.baseline:
            run["baseline"] = {"dir": builds[1].dir, "rev": builds[1].rev, "source": builds[1].source}
            run["title"] = "before/after (%s vs %s)" % (os.path.relpath(builds[0].dir, ROOT), a.baseline)
            differ = bench_sources_differ(builds[1].source)
            if differ:
                warn("the baseline's bench programs differ from this tree's (%s): each build is measured by its "
                     "own" % ", ".join(differ))
                run["baseline"]["bench_sources_differ"] = differ
        if compare:
            run["title"] = "your server (%s) on io_uring and epoll, %s load" % (" ".join(compare[2]), compare[0])
            run["compare"] = {"load": compare[0], "port": compare[1], "command": compare[2]}
        bench.emit(run)
        say("%sweft benchmarks%s: %d CPUs, Linux %s, %s mode; results in %s" % (
            BOLD, RESET, len(os.sched_getaffinity(0)), os.uname().release, a.mode, os.path.relpath(outdir, ROOT)))
        sysinfo(bench, builds, compare[2] if compare else None)
        busy(bench, "at the start")
        total = len(names) + (1 if compare else 0)
        plans = [W.BY_NAME[n].plan(a.mode) for n in names] + ([W.COMPARE.plan(a.mode)] if compare else [])
        # The mode's time, shared out by budget; a run named by hand or comparing builds gets the sum of its
        # plans' budgets (twice for two builds), the report a few seconds at the end.
        limit = W.LIMITS[a.mode] if not (a.workloads or a.baseline or compare) else \
            sum(p.budget_s for p in plans) * len(builds) + 5
        limit -= time.monotonic() - bench.started
        t_start = time.monotonic()
        for i, name in enumerate(names, 1):
            wl = W.BY_NAME[name]
            plan = wl.plan(a.mode)
            t0 = time.monotonic()
            left = limit - (t0 - t_start)
            bench.wl_deadline = t0 + max(plan.budget_s * 0.25, left * plan.budget_s / sum(p.budget_s for p in plans[i - 1:]))
            say("")
            say("%s==> [%d/%d] %s: %s%s" % (BOLD, i, total, name, wl.desc, RESET))
            for n in wl.notes:
                bench.note(name, n)
            getattr(bench, "wl_" + wl.kind)(wl, plan)
            say("  (%.0f s)" % (time.monotonic() - t0))
        if compare:
            say("")
            say("%s==> your server: %s under the %s load%s" % (BOLD, " ".join(compare[2]), compare[0], RESET))
            bench.wl_deadline = time.monotonic() + max(W.COMPARE.plan(a.mode).budget_s * 0.25,
                                                       limit - (time.monotonic() - t_start))
            bench.wl_compare(*compare)
        busy(bench, "after the run")
        run["duration_s"] = round(time.monotonic() - bench.started)
        run["finished_utc"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        bench.emit(dict(run, type="run-end"))
        for r in bench.records:
            if r.get("type") == "run":
                r["duration_s"] = run["duration_s"]
        say("")
        say("%s==> results%s" % (BOLD, RESET))
        report.finish(outdir, bench.records)
        say("bench/run took %d s" % run["duration_s"])
    except KeyboardInterrupt:
        echo.kill_children()
        warn("interrupted: the records so far are in %s" % os.path.join(outdir, "raw.jsonl"))
        return 130
    finally:
        bench.close()
        shutil.rmtree(stage, ignore_errors=True)
    return 0


def bench_sources_differ(source):
    if not source:
        return []
    out = []
    for rel in ("bench/fiber.c", "bench/io.c", "bench/exec.c", "bench/sync.c", "bench/harness.h", "bench/echo/loadgen.c"):
        mine, theirs = machine.read(os.path.join(ROOT, rel)), machine.read(os.path.join(source, rel))
        if mine != theirs:
            out.append(rel)
    return out


def busy(bench, when):
    cpus, top = machine.busy_now(0.5 if bench.mode == "quick" else 1.0)
    bench.emit({"type": "busy", "when": when, "cpus": cpus, "busiest": top})
    if cpus > 0.15:
        warn("the CPUs are %.0f%% busy %s without the benchmarks (busiest: %s; of one CPU each): expect reruns and "
             "wider intervals" % (100 * cpus / max(1, len(os.sched_getaffinity(0))), when,
                                  ", ".join("%s %.0f%%" % (t["name"], 100 * t["cpus"]) for t in top) or "short-lived processes"))


def interrupted(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupted)
    sys.exit(main(sys.argv[1:]))
