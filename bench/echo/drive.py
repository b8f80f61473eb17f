#!/usr/bin/env python3
"""drive.py — runs one echo workload against every contender side by side (see the shared BENCH.md).

Contenders, in this order in every round:
    weft-io_uring   examples/echo_server --backend io_uring
    weft-epoll      examples/echo_server --backend epoll
    epoll           bench/baselines/echo_epoll     (plain epoll, the reference for weft-epoll)
    liburing        bench/baselines/echo_uring     (plain liburing, the reference for weft-io_uring)
    asyncio         bench/baselines/echo_asyncio.py on /usr/bin/python3
    uvloop          the same with --uvloop (only if python3-uvloop is installed)

Rounds are interleaved (A B C ... A B C ...). Each run starts the server fresh pinned to CPU 0
(taskset -c 0), waits for its "ready", runs bench/echo/loadgen pinned to CPU 1, then stops the server
(SIGTERM). A contender that cannot start, crashes, or returns one wrong byte is reported as failed with
the reason, never dropped.

    bench/echo/drive.py --conns 512 --size 64               both modes, 5 rounds
    bench/echo/drive.py --mode rate --rate 50000 --rounds 7
    bench/echo/drive.py --rate auto:0.6                     closed loop first, then a rate all sustain
    bench/echo/drive.py --conns 10000 --contenders weft-io_uring,liburing

On a shared machine: before each run the driver waits (up to --wait-quiet seconds) for both CPUs to be
idle, and a run during which other processes used more than --max-other-cpu of a CPU (from /proc/stat,
minus the server's and the load generator's own time) is run again, up to --retries times; one still
disturbed is kept and marked "suspect".

Modes: "rate" (fixed offered rate: the primary figure, the server's CPU time per request), "closed"
(closed loop: the maximum rate), "both" (default: each round runs closed then rate). With --rate auto:F
the rate is not given but picked: every closed-loop round runs first, then the rate rounds at F times the
slowest contender's median closed-loop rate (one every contender sustains, on any machine).

Output: one JSON object per contender per round (and mode) on stdout; a progress line per run and a
summary table (medians, min-max, ratios to the hand-written baselines taken round by round) on stderr.
With --samples, also bench/report.py's "sample"/"failure" lines (workload "echo-<S>B-<N>c-<mode>") and
"meta" notes (the settings, the rate picked, runs that fell short), and no summary: bench/run tabulates.
bench/http/drive.py imports this file for the machinery (servers, CPU accounting, quiet-machine checks).
Python standard library only.
"""
import argparse
import json
import math
import os
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

ALL_CONTENDERS = ["weft-io_uring", "weft-epoll", "epoll", "liburing", "asyncio", "uvloop"]
REFERENCE = {"weft-io_uring": "liburing", "weft-epoll": "epoll"}
METRICS = [  # name, label, unit, better
    ("req_per_s", "req/s", "req/s", "higher"),
    ("server_cpu_us_per_req", "server CPU us/req", "us", "lower"),
    ("syscalls_per_req", "syscalls/req", "syscalls", "lower"),
    ("p50_us", "p50 us", "us", "lower"),
    ("p99_us", "p99 us", "us", "lower"),
    ("p999_us", "p99.9 us", "us", "lower"),
    ("server_cpu_util", "server CPU", "CPUs", None),
    ("loadgen_cpu_util", "loadgen CPU", "CPUs", None),
]


CHILDREN = set()  # servers and load generators running now: killed if the driver is interrupted


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def emit(obj):
    print(json.dumps(obj, separators=(",", ":")), flush=True)


# ---- machine ---------------------------------------------------------------------------------------

CPUS = ["cpu0", "cpu1"]  # the server's and the load generator's


def cpu_busy_seconds(cpus):
    """Busy time (everything but idle and iowait) of the given CPUs, from /proc/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    busy = 0
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] in cpus:
                vals = [int(v) for v in parts[1:]]
                busy += sum(vals) - vals[3] - vals[4]
    return busy / tick


def proc_cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_quiet(limit):
    """Waits (up to limit seconds) until the two CPUs are idle for a second: another job running on this
    shared machine would distort the figures. Returns the busy fraction seen last (in CPUs)."""
    deadline = time.monotonic() + limit
    said = False
    while True:
        b0, t0 = cpu_busy_seconds(CPUS), time.monotonic()
        time.sleep(1.0)
        busy = (cpu_busy_seconds(CPUS) - b0) / (time.monotonic() - t0)
        if busy < 0.1 or time.monotonic() >= deadline:
            if said:
                log("  ... %s (other processes use %.0f%% of a CPU)" % (
                    "quiet" if busy < 0.1 else "giving up waiting", 100 * busy))
            return busy
        if not said:
            log("  waiting for the machine to be quiet (other processes use %.0f%% of a CPU) ..." % (100 * busy))
            said = True


def ksoftirqd_pids():
    """The kernel threads that take over network processing under load: their time is reported apart,
    not counted as another job's."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/comm" % d) as f:
                    if f.read().strip() in ("ksoftirqd/0", "ksoftirqd/1"):
                        pids.append(int(d))
            except OSError:
                pass
    return pids


def cpu_of(pids):
    return sum(proc_cpu_seconds(p) or 0.0 for p in pids)


class OtherCpu:
    """What other processes used of the two CPUs while a run was measured: all the time the CPUs were
    busy (/proc/stat), minus the server's, the load generator's (the children this process reaps
    meanwhile) and ksoftirqd's (network processing the load itself causes). Create it just before the
    load starts, stop() it once the load generator has been reaped."""

    def __init__(self, state):
        self.ksoftirqd = state["ksoftirqd"]
        self.busy0, self.t0 = cpu_busy_seconds(CPUS), time.monotonic()
        self.sirq0 = cpu_of(self.ksoftirqd)
        self.ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)

    def stop(self):
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.busy = cpu_busy_seconds(CPUS) - self.busy0
        self.elapsed = time.monotonic() - self.t0
        self.sirq = cpu_of(self.ksoftirqd) - self.sirq0
        self.reaped = (ru1.ru_utime + ru1.ru_stime) - (self.ru0.ru_utime + self.ru0.ru_stime)

    def figures(self, server_cpu):
        """A record's other_cpu_util and ksoftirqd_cpu_util (in CPUs), given the server's CPU seconds."""
        return {"other_cpu_util": round(max(0.0, self.busy - server_cpu - self.reaped - self.sirq) / self.elapsed, 3),
                "ksoftirqd_cpu_util": round(self.sirq / self.elapsed, 3)}


def run_undisturbed(a, run):
    """run() -> record, after waiting (up to a.wait_quiet s) for a quiet machine; run again, up to
    a.retries times, while other processes used more than a.max_other_cpu of a CPU during it (the
    record's other_cpu_util). A run still disturbed after that is kept, marked "suspect"."""
    for attempt in range(a.retries + 1):
        busy = wait_quiet(a.wait_quiet) if a.wait_quiet > 0 else None
        rec = run()
        if busy is not None:
            rec["busy_before"] = round(busy, 3)
        rec["attempt"] = attempt + 1
        if rec.get("other_cpu_util", 0) <= a.max_other_cpu or not rec.get("ok"):
            break
        if attempt < a.retries:
            log("  other processes used %.0f%% of a CPU during the run: running it again" % (
                100 * rec["other_cpu_util"]))
    rec["suspect"] = rec.get("other_cpu_util", 0) > a.max_other_cpu
    return rec


def free_port(state):
    """A port below the ephemeral range, free for listening (so no client socket takes it)."""
    for _ in range(10000):
        state["port"] = 20000 + (state["port"] - 20000 + 1) % 10000
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", state["port"]))
            return state["port"]
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port in 20000-29999")


# ---- contenders ------------------------------------------------------------------------------------

def contender_commands(a):
    """name -> (argv without --port, or None, why not available)."""
    py = a.python
    cmds = {
        "weft-io_uring": [a.echo_server, "--host", "127.0.0.1", "--backend", "io_uring"],
        "weft-epoll": [a.echo_server, "--host", "127.0.0.1", "--backend", "epoll"],
        "epoll": [a.echo_epoll, "--host", "127.0.0.1"],
        "liburing": [a.echo_uring, "--host", "127.0.0.1"],
        "asyncio": [py, a.asyncio_script, "--host", "127.0.0.1"],
        "uvloop": [py, a.asyncio_script, "--host", "127.0.0.1", "--uvloop"],
    }
    out = {}
    for name, argv in cmds.items():
        why = None
        if not (os.path.isfile(argv[0]) and os.access(argv[0], os.X_OK)):
            why = "%s not built or not executable" % argv[0]
        elif name in ("asyncio", "uvloop") and not os.path.isfile(a.asyncio_script):
            why = "%s missing" % a.asyncio_script
        elif name == "uvloop":
            r = subprocess.run([py, "-c", "import uvloop"], capture_output=True)
            if r.returncode != 0:
                why = "uvloop not installed for %s (apt-get install python3-uvloop)" % py
        out[name] = (argv, why)
    return out


class Server:
    def __init__(self, argv, port):
        self.errf = tempfile.TemporaryFile(mode="w+")
        self.p = subprocess.Popen(["taskset", "-c", "0"] + self.command(argv, port),
                                  stdout=subprocess.PIPE, stderr=self.errf, stdin=subprocess.DEVNULL)
        CHILDREN.add(self.p)

    def command(self, argv, port):
        """The server's command line (a server configured otherwise overrides it)."""
        return argv + ["--port", str(port)]

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        buf = b""
        fd = self.p.stdout.fileno()
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.05)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
                if b"ready" in buf:
                    return None
            elif self.p.poll() is not None:
                break
        if self.p.poll() is not None:
            return "exited with status %s before ready: %s" % (self.p.returncode, self.stderr_tail())
        return "not ready after %.0f s: %s" % (timeout, self.stderr_tail())

    def stop(self):
        """SIGTERM, then SIGKILL after 5 s. Returns (died_before, returncode)."""
        died_before = self.p.poll() is not None
        if not died_before:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.p.stdout.close()
        CHILDREN.discard(self.p)
        return died_before, self.p.returncode

    def stderr_text(self):
        self.errf.seek(0)
        return self.errf.read()

    def stderr_tail(self, n=400):
        t = self.stderr_text().strip().replace("\n", " | ")
        return t[-n:] if t else "(no stderr)"


def run_one(a, name, argv, mode, rnd, state):
    rec = {"type": "echo", "workload": "echo", "contender": name, "round": rnd, "mode": mode,
           "conns": a.conns, "size": a.size, "offered_rate": a.rate if mode == "rate" else None}
    port = free_port(state)
    srv = Server(argv, port)
    why = srv.wait_ready(a.ready_timeout)
    if why:
        srv.stop()
        rec.update(ok=False, status="failed", reason="server " + why)
        return rec
    duration = a.rate_duration if mode == "rate" and a.rate_duration else a.duration
    lg = [a.loadgen, "--host", "127.0.0.1", "--port", str(port), "--conns", str(a.conns), "--size", str(a.size),
          "--warmup", str(a.warmup), "--duration", str(duration), "--server-pid", str(srv.p.pid),
          "--cpu", "1", "--quiet"]
    lg += ["--closed"] if mode == "closed" else ["--rate", str(a.rate), "--tick-us", str(a.tick_us)]
    if a.syscalls:
        lg += ["--count-syscalls", "--syscall-window", str(a.syscall_window)]
    limit = 60 + a.warmup + duration + (a.syscall_window + 10 if a.syscalls else 0) + 10 + 30
    watch = OtherCpu(state)
    srv0 = proc_cpu_seconds(srv.p.pid)
    lgp = subprocess.Popen(lg, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    CHILDREN.add(lgp)
    try:
        out, err = lgp.communicate(timeout=limit)
        timed_out = False
    except subprocess.TimeoutExpired:
        lgp.kill()
        out, err = lgp.communicate()
        timed_out = True
    CHILDREN.discard(lgp)
    srv1 = proc_cpu_seconds(srv.p.pid)
    watch.stop()
    stopped = srv.stop()
    stderr = srv.stderr_text()

    result = None
    for line in out.decode(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                pass
    if result:
        rec.update({k: v for k, v in result.items() if k not in ("mode", "conns", "size", "offered_rate")})
    # Everything else that ran on the two CPUs meanwhile: another benchmark would make this run suspect.
    if srv0 is not None and srv1 is not None:
        rec.update(watch.figures(srv1 - srv0))
    # weft's own counters: the last JSON line on the server's stderr.
    for line in stderr.splitlines():
        if line.startswith("{"):
            try:
                rec["server_stats"] = json.loads(line)
            except ValueError:
                pass
    notes = [l for l in stderr.splitlines() if l.strip() and not l.startswith("{")]
    if notes:
        rec["server_stderr"] = notes[:20]

    reason = None
    if timed_out:
        reason = "loadgen timed out after %.0f s" % limit
    elif result is None:
        reason = "loadgen printed no result (exit %s): %s" % (lgp.returncode, err.decode(errors="replace")[-300:])
    elif not result.get("ok"):
        reason = "loadgen: " + str(result.get("error"))
    elif lgp.returncode != 0:
        reason = "loadgen exited with status %d" % lgp.returncode
    if mode == "rate" and result and result.get("req_per_s"):
        rec["sustained"] = result["req_per_s"] >= 0.98 * a.rate
    return settle(rec, reason, srv, stopped)


def settle(rec, reason, srv, stopped):
    """Marks a run's record ok, or failed with its reason (None if none) and the server's death if it
    died during the run; stopped is what srv.stop() returned."""
    died_before, rc = stopped
    if died_before:
        reason = (reason + "; " if reason else "") + "server exited with status %s during the run: %s" % (
            rc, srv.stderr_tail())
    rec["ok"] = reason is None
    rec["status"] = "ok" if reason is None else "failed"
    if reason:
        rec["reason"] = reason
    return rec


def keep(a, records, rec, samples_for):
    """Records a run: its record on stdout, and with --samples report.py's lines for it."""
    records.append(rec)
    emit(rec)
    if a.samples:
        for s in samples_for(rec):
            emit(s)


# ---- summary ---------------------------------------------------------------------------------------

def fmt(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 10000:
        return "{:,.0f}".format(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    return "%.2f" % v


def summarize(records, contenders, out=sys.stderr):
    """Medians over rounds (min-max for the main figures) and CPU per request relative to the
    hand-written baseline of the same mechanism, as the median of round-by-round ratios."""
    def med(vals):
        return statistics.median(vals) if vals else None

    def rng(vals):
        return "%s (%s-%s)" % (fmt(med(vals)), fmt(min(vals)), fmt(max(vals))) if vals else "-"

    modes = []
    for r in records:
        if r["mode"] not in modes:
            modes.append(r["mode"])
    for mode in modes:
        recs = [r for r in records if r["mode"] == mode]
        r0 = recs[0]
        print("\necho %d B x %d connections, %s, %d rounds: medians (min-max)" % (
            r0["size"], r0["conns"], "closed loop" if mode == "closed"
            else "fixed rate %s msg/s%s" % (fmt(r0["offered_rate"]), ", in bursts every %g us" % r0["tick_us"]
                                            if r0.get("tick_us") else ""),
            max(r["round"] for r in recs)), file=out)
        hdr = "%-14s %-4s %-28s %-22s %-21s %-9s %-8s %-9s %-9s %-9s" % (
            "contender", "ok", "req/s", "server CPU us/req", "CPU/req vs baseline", "sysc/req", "p50 us",
            "p99 us", "p99.9 us", "CPU% s/lg")
        print(hdr, file=out)
        print("-" * len(hdr), file=out)
        for c in contenders:
            mine = [r for r in recs if r["contender"] == c]
            good = [r for r in mine if r.get("ok")]

            def vals(key):
                return [r[key] for r in good if r.get(key) is not None]
            ratio = "-"
            ref = REFERENCE.get(c)
            if ref:
                ratios = []
                for r in good:
                    mate = [x for x in recs if x["contender"] == ref and x["round"] == r["round"] and x.get("ok")]
                    if mate and r.get("server_cpu_us_per_req") and mate[0].get("server_cpu_us_per_req"):
                        ratios.append(r["server_cpu_us_per_req"] / mate[0]["server_cpu_us_per_req"])
                if ratios:
                    ratio = "%.2fx %s" % (med(ratios), ref)
            util = "-"
            if vals("server_cpu_util") and vals("loadgen_cpu_util"):
                util = "%.0f/%.0f" % (100 * med(vals("server_cpu_util")), 100 * med(vals("loadgen_cpu_util")))
            print("%-14s %-4s %-28s %-22s %-21s %-9s %-8s %-9s %-9s %-9s" % (
                c, "%d/%d" % (len(good), len(mine)), rng(vals("req_per_s")), rng(vals("server_cpu_us_per_req")),
                ratio, fmt(med(vals("syscalls_per_req"))), fmt(med(vals("p50_us"))), fmt(med(vals("p99_us"))),
                fmt(med(vals("p999_us"))), util), file=out)
            for r in mine:
                if not r.get("ok"):
                    print("    round %s %s: %s" % (r["round"], r.get("status", "failed").upper(), r.get("reason")),
                          file=out)
        short = [r for r in recs if r.get("ok") and r.get("sustained") is False]
        if short:
            print("note: the offered rate was not reached in %d run(s) (%s): the server or the load generator "
                  "saturated" % (len(short), ", ".join(sorted(set(r["contender"] for r in short)))), file=out)
        suspect = [r for r in recs if r.get("suspect")]
        if suspect:
            print("note: %d run(s) were disturbed by other processes even after retries (suspect: true; up to "
                  "%.0f%% of a CPU): medians absorb a few" % (
                      len(suspect), 100 * max(r["other_cpu_util"] for r in suspect)), file=out)
    out.flush()


def samples_for(rec):
    wl = workload_name(rec["size"], rec["conns"], rec["mode"])
    if not rec.get("ok"):
        return [{"type": "failure", "workload": wl, "contender": rec["contender"], "round": rec["round"],
                 "reason": rec.get("reason", "failed")}]
    out = []
    for key, _, unit, _ in METRICS:
        if rec.get(key) is not None:
            out.append({"type": "sample", "workload": wl, "contender": rec["contender"], "round": rec["round"],
                        "metric": key, "unit": unit, "value": rec[key]})
    return out


# ---- main ------------------------------------------------------------------------------------------

def add_run_args(ap):
    """The options every driver (this one, bench/http/drive.py) has: rounds, binaries, machine checks."""
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "bench"),
                    help="meson build directory holding the binaries (default build/bench)")
    ap.add_argument("--ready-timeout", type=float, default=10)
    ap.add_argument("--max-other-cpu", type=float, default=0.2, metavar="CPUS",
                    help="a run during which other processes used more CPU than this is run again")
    ap.add_argument("--retries", type=int, default=2, help="how many times a disturbed run is run again")
    ap.add_argument("--wait-quiet", type=float, default=60, metavar="SEC",
                    help="before each run, wait up to SEC seconds for both CPUs to be idle (0: do not wait)")
    ap.add_argument("--samples", action="store_true",
                    help="print bench/report.py sample/failure/meta lines too, and no summary (bench/run "
                         "tabulates them); exit 0 once every run is recorded, failed or not")


def check_machine(need_perf):
    if shutil.which("taskset") is None:
        sys.exit("%s: taskset (util-linux) is needed to pin the server" % os.path.basename(sys.argv[0]))
    if os.cpu_count() < 2:
        log("warning: fewer than 2 CPUs: server and load generator share one")
    if need_perf and shutil.which("perf") is None:
        log("perf not found (apt-get install linux-perf): syscalls/req will be null")


def parse_rate(text):
    """--rate: a number of messages/s, or "auto" / "auto:F" (F times the slowest closed-loop median)."""
    if text == "auto" or text.startswith("auto:"):
        f = float(text[5:]) if text.startswith("auto:") else 0.6
        if not 0 < f <= 1:
            raise argparse.ArgumentTypeError("the fraction in auto:F is in (0, 1]")
        return ("auto", f)
    v = float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError("the rate is positive")
    return ("fixed", v)


def pick_rate(records, fraction):
    """fraction times the lowest median closed-loop rate among the contenders, rounded down to two
    significant digits: a rate every contender sustains, with room for the extra CPU a server spends at
    a lower rate (fewer messages per wakeup). Returns (rate, slowest contender) or (None, None)."""
    rates = {}
    for r in records:
        if r["mode"] == "closed" and r.get("ok") and r.get("req_per_s"):
            rates.setdefault(r["contender"], []).append(r["req_per_s"])
    if not rates:
        return None, None
    slowest = min(rates, key=lambda c: statistics.median(rates[c]))
    rate = fraction * statistics.median(rates[slowest])
    step = 10 ** max(0, math.floor(math.log10(rate)) - 1)
    return max(step, math.floor(rate / step) * step), slowest


def workload_name(size, conns, mode):
    return "echo-%dB-%dc-%s" % (size, conns, mode)


def notes_for(a, mode, records, picked_from=None):
    """bench/report.py meta notes for one mode's table: the settings, and what went short of them."""
    wl = workload_name(a.size, a.conns, mode)
    recs = [r for r in records if r["mode"] == mode]
    duration = a.rate_duration if mode == "rate" and a.rate_duration else a.duration
    how = "%g s measured after %g s of warmup per run" % (duration, a.warmup)
    if a.syscalls:
        how += "; syscalls counted by perf over a separate %g s window right after" % a.syscall_window
    if mode == "closed":
        notes = ["closed loop (each connection keeps one message outstanding): the maximum rate; " + how]
    else:
        src = (" (%g x the median closed-loop rate of the slowest contender, %s)" % (a.rate_fraction, picked_from)
               if picked_from else "")
        notes = ["fixed rate %s msg/s%s; %s" % ("{:,.0f}".format(a.rate) if a.rate else "-", src, how)]
        short = sorted(set(r["contender"] for r in recs if r.get("ok") and r.get("sustained") is False))
        if short:
            notes.append("offered rate not reached by %s in %d run(s): the server or the load generator saturated"
                         % (", ".join(short), sum(1 for r in recs if r.get("sustained") is False)))
    notes += suspect_note(a, recs)
    return [{"type": "meta", "workload": wl, "note": n} for n in notes]


def suspect_note(a, records):
    """[a note on the runs other processes disturbed even after the retries], or []."""
    suspect = [r for r in records if r.get("suspect")]
    if not suspect:
        return []
    return ["%d run(s) disturbed by other processes even after %d retries (up to %.0f%% of a CPU)" % (
        len(suspect), a.retries, 100 * max(r["other_cpu_util"] for r in suspect))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conns", type=int, default=512)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--mode", choices=["closed", "rate", "both"], default="both")
    ap.add_argument("--rate", type=parse_rate, default=("fixed", 50000), metavar="R|auto[:F]",
                    help="offered messages/s in total for --mode rate (default 50000: every C contender "
                         "sustains it on one core here); auto[:F] (with --mode both): every closed-loop round "
                         "first, then the fixed rate at F (default 0.6) times the slowest contender's median")
    ap.add_argument("--tick-us", type=float, default=0,
                    help="rate mode: send the schedule in bursts, one per tick of this many microseconds "
                         "(default 0: every message at its own time)")
    ap.add_argument("--duration", type=float, default=5, help="measured seconds per run")
    ap.add_argument("--rate-duration", type=float, default=None, metavar="SEC",
                    help="measured seconds per fixed-rate run (default: --duration); a server is less busy "
                         "there, and its CPU time is read in clock ticks (10 ms)")
    ap.add_argument("--warmup", type=float, default=2, help="seconds before the measured window")
    ap.add_argument("--no-syscalls", dest="syscalls", action="store_false",
                    help="skip the perf window that counts the server's system calls")
    ap.add_argument("--syscall-window", type=float, default=2,
                    help="seconds of the perf window after the measured one")
    ap.add_argument("--contenders", default=",".join(ALL_CONTENDERS),
                    help="comma-separated subset of: " + ", ".join(ALL_CONTENDERS))
    ap.add_argument("--loadgen")
    ap.add_argument("--echo-server")
    ap.add_argument("--echo-epoll")
    ap.add_argument("--echo-uring")
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter for asyncio and uvloop")
    ap.add_argument("--asyncio-script", default=os.path.join(ROOT, "bench", "baselines", "echo_asyncio.py"))
    add_run_args(ap)
    a = ap.parse_args()
    (rate_kind, rate_value) = a.rate
    a.rate, a.rate_fraction = (None, rate_value) if rate_kind == "auto" else (rate_value, None)
    if a.rate is None and a.mode != "both":
        ap.error("--rate auto picks the rate from the closed-loop runs: it needs --mode both")
    a.loadgen = a.loadgen or os.path.join(a.build, "bench", "echo", "loadgen")
    a.echo_server = a.echo_server or os.path.join(a.build, "examples", "echo_server")
    a.echo_epoll = a.echo_epoll or os.path.join(a.build, "bench", "baselines", "echo_epoll")
    a.echo_uring = a.echo_uring or os.path.join(a.build, "bench", "baselines", "echo_uring")
    contenders = [c.strip() for c in a.contenders.split(",") if c.strip()]
    for c in contenders:
        if c not in ALL_CONTENDERS:
            ap.error("unknown contender %s" % c)
    if not os.access(a.loadgen, os.X_OK):
        sys.exit("drive.py: no load generator at %s (build it: ninja -C %s)" % (a.loadgen, a.build))
    check_machine(a.syscalls)

    # Rounds interleave the contenders, and (with a fixed rate) the two modes. An automatic rate is
    # picked from the closed-loop figures, so every closed-loop round runs first.
    if a.mode != "both":
        phases = [[a.mode]]
    else:
        phases = [["closed", "rate"]] if a.rate else [["closed"], ["rate"]]
    avail = contender_commands(a)
    records = []
    state = {"port": 20000 + os.getpid() % 5000, "ksoftirqd": ksoftirqd_pids()}
    total = a.rounds * sum(len(p) for p in phases) * len(contenders)
    n = 0
    picked_from = None
    for phase in phases:
        no_rate = None
        if "rate" in phase and a.rate is None:
            a.rate, picked_from = pick_rate(records, a.rate_fraction)
            if a.rate is None:
                no_rate = "no contender has a closed-loop figure to pick the fixed rate from"
            else:
                log("fixed rate: %s msg/s (%g x the median closed-loop rate of %s, the slowest)" % (
                    "{:,.0f}".format(a.rate), a.rate_fraction, picked_from))
        for rnd in range(1, a.rounds + 1):
            for mode in phase:
                for name in contenders:
                    n += 1
                    argv, why = avail[name]
                    if why or (mode == "rate" and no_rate):
                        rec = {"type": "echo", "workload": "echo", "contender": name, "round": rnd, "mode": mode,
                               "conns": a.conns, "size": a.size, "offered_rate": a.rate if mode == "rate" else None,
                               "ok": False, "status": "unavailable" if why else "failed", "reason": why or no_rate}
                    else:
                        # Another job on the machine during the run distorts it: run it again (same round).
                        rec = run_undisturbed(a, lambda: run_one(a, name, argv, mode, rnd, state))
                    keep(a, records, rec, samples_for)
                    if rec.get("ok"):
                        log("[%d/%d] round %d %-6s %-13s %10s req/s  %6s us CPU/req  %5s syscalls/req  p99 %s us%s" % (
                            n, total, rnd, mode, name, fmt(rec.get("req_per_s")),
                            fmt(rec.get("server_cpu_us_per_req")), fmt(rec.get("syscalls_per_req")),
                            fmt(rec.get("p99_us")),
                            ("  (other CPU use %.0f%%)" % (100 * rec["other_cpu_util"])
                             if rec.get("other_cpu_util", 0) > 0.05 else "") +
                            ("  (offered rate not reached)" if rec.get("sustained") is False else "")))
                    else:
                        log("[%d/%d] round %d %-6s %-13s %s: %s" % (n, total, rnd, mode, name,
                                                                     rec["status"].upper(), rec.get("reason")))
    if a.samples:
        for mode in [m for p in phases for m in p]:
            emit({"type": "meta", "workload": workload_name(a.size, a.conns, mode), "contenders": contenders})
            for meta in notes_for(a, mode, records, picked_from):
                emit(meta)
        return 0
    summarize(records, contenders)
    return 0 if all(r.get("ok") or r.get("status") == "unavailable" for r in records) else 1


def interrupted(signum, frame):
    raise KeyboardInterrupt


def run_main(main):
    """Runs main() as the program; on SIGTERM or ^C, kills the servers and load generators running."""
    signal.signal(signal.SIGTERM, interrupted)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        for p in list(CHILDREN):
            try:
                p.kill()
                p.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        log("%s: interrupted" % os.path.basename(sys.argv[0]))
        sys.exit(130)


if __name__ == "__main__":
    run_main(main)
