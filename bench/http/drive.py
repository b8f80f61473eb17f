#!/usr/bin/env python3
"""drive.py — the HTTP workload: weft's examples/http_server against nginx, loaded by wrk (see the shared
BENCH.md).

Contenders, in this order in every round:
    weft-io_uring   examples/http_server --backend io_uring
    weft-epoll      examples/http_server --backend epoll
    nginx           nginx (Debian nginx-light) with ONE worker, bench/http/nginx.conf: the reference

All answer GET / with "Hello, World!" and the same headers. Rounds are interleaved (A B C A B C ...).
Each run starts the server fresh pinned to CPU 0 (taskset -c 0) and checks its answer (two GETs on one
keep-alive connection: 200, Content-Length 13, "Hello, World!"); then wrk, pinned to CPU 1, runs three
times, each with 256 keep-alive connections from one thread (wrk -t 1 -c 256, bench/http/wrk.lua):
    1. --warmup seconds, not measured;
    2. --duration seconds, measured: requests/s from wrk; the server's CPU time from the kernel's
       per-thread run time (/proc/PID/task/*/schedstat, nanoseconds; /proc/PID/stat's clock ticks if
       absent) read right before wrk starts and right after it exits; latency percentiles from wrk;
    3. --syscall-window seconds under `perf stat -e raw_syscalls:sys_enter -p SERVER`: system calls per
       request (this run's 256 connects and closes included). A separate run, because perf's tracepoint
       makes every system call of the server slower.
The answer is checked again after the load and the server stopped (SIGTERM). For nginx the server is
the worker and the master together (the master only supervises; its share is noted).

A run fails, with the reason, if the server does not start or answers wrongly, if wrk reports a single
socket error or a non-2xx response, or if wrk fails: a broken server cannot win. A failed contender is
shown as failed, never dropped.

Figures: req/s, server CPU us per request, requests per server-CPU-second (the target's unit), syscalls
per request, p50/p99/p99.9 latency, and the server's and wrk's CPU use (which side saturated).

    bench/http/drive.py                              5 rounds of 3 s runs, a summary table on stderr
    bench/http/drive.py --rounds 7 --duration 5 --contenders weft-io_uring,nginx

On a shared machine it waits for quiet CPUs and reruns disturbed runs as bench/echo/drive.py does (the
same options; the machinery is imported from it).

Output: one JSON object per contender per round on stdout, a progress line per run on stderr, then a
summary table (bench/report.py's). With --samples, also report.py's sample/failure/meta lines and no
summary: bench/run tabulates. Python standard library only.
"""
import argparse
import http.client
import importlib.util
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


echo = load("echo_drive", os.path.join(ROOT, "bench", "echo", "drive.py"))
log, emit, fmt = echo.log, echo.emit, echo.fmt

WORKLOAD = "http"
ALL_CONTENDERS = ["weft-io_uring", "weft-epoll", "nginx"]
BODY = b"Hello, World!"
CONNS = 256
METRICS = [  # record field, unit (report.py's spec says the rest)
    ("req_per_s", "req/s"),
    ("server_cpu_us_per_req", "us"),
    ("req_per_cpu_s", "req/CPU-s"),
    ("syscalls_per_req", "syscalls"),
    ("p50_us", "us"),
    ("p99_us", "us"),
    ("p999_us", "us"),
    ("server_cpu_util", "CPUs"),
    ("wrk_cpu_util", "CPUs"),
]


# ---- servers ---------------------------------------------------------------------------------------

class Weft(echo.Server):
    def pids(self):
        return [self.p.pid]


class Nginx(echo.Server):
    """nginx in the foreground from a scratch prefix holding bench/http/nginx.conf with the port filled in
    (the config's header says how). It prints nothing when ready: ready is when its worker exists and
    the port takes connections."""

    def __init__(self, nginx, port):
        self.port = port
        self.prefix = tempfile.mkdtemp(prefix="weft-nginx-")
        os.chmod(self.prefix, 0o755)  # run as root, the worker is "nobody" and keeps its temp paths here
        with open(os.path.join(HERE, "nginx.conf")) as f:
            conf = f.read().replace("@PORT@", str(port))
        with open(os.path.join(self.prefix, "nginx.conf"), "w") as f:
            f.write(conf)
        # -e stderr: without it nginx opens its compiled-in error log before reading the config.
        super().__init__([nginx, "-p", self.prefix + "/", "-c", os.path.join(self.prefix, "nginx.conf"),
                          "-e", "stderr"], None)

    def command(self, argv, port):
        return argv

    def worker(self):
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d) as f:
                        st = f.read()
                except OSError:
                    continue
                if int(st[st.rindex(")") + 2:].split()[1]) == self.p.pid:
                    return int(d)
        return None

    def pids(self):
        return [self.worker_pid, self.p.pid]  # the worker first: it does the work

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                return "exited with status %s before ready: %s" % (self.p.returncode, self.stderr_tail())
            self.worker_pid = self.worker()
            if self.worker_pid:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return None
                except OSError:
                    pass
            time.sleep(0.02)
        return "not ready after %.0f s: %s" % (timeout, self.stderr_tail())

    def stop(self):
        try:
            return super().stop()
        finally:
            shutil.rmtree(self.prefix, ignore_errors=True)


def find_nginx():
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)),
                                         None)


def contenders_available(a):
    """name -> (function port -> server, or None; why not available)."""
    out = {}
    for be in ("io_uring", "epoll"):
        why = None if os.access(a.http_server, os.X_OK) else "%s not built or not executable" % a.http_server
        out["weft-" + be] = ((lambda port, be=be: Weft([a.http_server, "--host", "127.0.0.1", "--backend", be],
                                                        port)), why)
    nginx = find_nginx()
    out["nginx"] = ((lambda port: Nginx(nginx, port)),
                    None if nginx else "nginx not installed (apt-get install nginx-light)")
    return out


# ---- measuring -------------------------------------------------------------------------------------

def cpu_seconds(pids):
    """CPU time of every thread of the processes: the scheduler's run time in nanoseconds
    (/proc/PID/task/TID/schedstat) where the kernel has it, else /proc/PID/stat (10 ms clock ticks)."""
    total = 0.0
    for pid in pids:
        try:
            tids = os.listdir("/proc/%d/task" % pid)
            for tid in tids:
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    total += int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            t = echo.proc_cpu_seconds(pid)
            if t is None:
                return None
            total += t
    return total


def check_answer(port):
    """Two GETs on one keep-alive connection; None if both answer 200 with the body, else what is wrong."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for i in range(2):
            conn.request("GET", "/")
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                return "GET / #%d: status %d %s" % (i + 1, r.status, r.reason)
            if body != BODY:
                return "GET / #%d: body %r, not %r" % (i + 1, body[:60], BODY)
            if r.getheader("Content-Length") != str(len(BODY)):
                return "GET / #%d: Content-Length %s" % (i + 1, r.getheader("Content-Length"))
            if r.will_close:
                return "GET / #%d: the server closes a keep-alive connection" % (i + 1)
        conn.close()
        return None
    except (OSError, http.client.HTTPException) as e:
        return "GET /: %s: %s" % (type(e).__name__, e)


def wrk(a, port, seconds):
    """Runs wrk pinned to CPU 1; returns (its JSON result or None, why not)."""
    cmd = ["taskset", "-c", "1", a.wrk, "-t", "1", "-c", str(CONNS), "-d", "%ds" % seconds, "--timeout", "2s",
           "-s", os.path.join(HERE, "wrk.lua"), "http://127.0.0.1:%d/" % port]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    echo.CHILDREN.add(p)
    try:
        out, err = p.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return None, "wrk did not finish within %d s" % (seconds + 30)
    finally:
        echo.CHILDREN.discard(p)
    res = None
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                res = json.loads(line)
            except ValueError:
                pass
    if p.returncode != 0 or res is None:
        return None, "wrk exited with status %d: %s" % (p.returncode, err.decode(errors="replace").strip()[-300:])
    e = res["errors"]
    sock = e["connect"] + e["read"] + e["write"] + e["timeout"]
    if sock or e["status"]:
        return res, ("wrk: %d socket errors (connect %d, read %d, write %d, timeout %d), %d non-2xx/3xx responses"
                     % (sock, e["connect"], e["read"], e["write"], e["timeout"], e["status"]))
    if not res["requests"]:
        return res, "wrk: no request completed"
    return res, None


def count_syscalls(pids, fn):
    """Runs fn() with perf counting the system calls of pids, enabled and disabled through perf's control
    pipe (acknowledged, so the window is fn's). Returns (fn's result, count or None, why not)."""
    if shutil.which("perf") is None:
        return fn(), None, "perf not installed"
    ctl_r, ctl_w = os.pipe()
    ack_r, ack_w = os.pipe()
    out = tempfile.NamedTemporaryFile(prefix="weft-perf-", suffix=".csv", delete=False)
    out.close()
    p = subprocess.Popen(["perf", "stat", "-D", "-1", "--control", "fd:%d,%d" % (ctl_r, ack_w), "-x", ",",
                          "-o", out.name, "-e", "raw_syscalls:sys_enter", "-p", ",".join(map(str, pids))],
                         pass_fds=(ctl_r, ack_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    echo.CHILDREN.add(p)
    os.close(ctl_r)
    os.close(ack_w)

    def command(cmd):
        os.write(ctl_w, cmd)
        r, _, _ = select.select([ack_r], [], [], 10)
        return bool(r) and b"ack" in os.read(ack_r, 64)

    try:
        if not command(b"enable\n"):
            why = p.stderr.read().decode(errors="replace").strip()[-300:] if p.poll() is not None else "no answer"
            return fn(), None, "perf did not start counting: %s" % why
        result = fn()
        command(b"disable\n")
        p.send_signal(signal.SIGINT)
        p.wait(10)
        with open(out.name) as f:
            for line in f:
                fields = line.strip().split(",")
                if len(fields) > 2 and fields[2].startswith("raw_syscalls:sys_enter"):
                    if fields[0].isdigit():
                        return result, int(fields[0]), None
                    return result, None, "perf: %s" % fields[0]
        return result, None, "perf wrote no count"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        echo.CHILDREN.discard(p)
        os.close(ctl_w)
        os.close(ack_r)
        os.unlink(out.name)


def run_one(a, name, start, rnd, state):
    rec = {"type": "http", "workload": WORKLOAD, "contender": name, "round": rnd, "conns": CONNS}
    port = echo.free_port(state)
    srv = start(port)
    reason = srv.wait_ready(a.ready_timeout)
    reason = reason and "server " + reason
    reason = reason or check_answer(port)
    if not reason and a.warmup:
        _, reason = wrk(a, port, a.warmup)
    if not reason:
        pids = srv.pids()
        watch = echo.OtherCpu(state)
        cpu0, master0 = cpu_seconds(pids), cpu_seconds(pids[1:])
        res, reason = wrk(a, port, a.duration)
        cpu1, master1 = cpu_seconds(pids), cpu_seconds(pids[1:])
        watch.stop()
        if res:
            secs = res["duration_us"] / 1e6
            rec.update(requests=res["requests"], seconds=round(secs, 4), req_per_s=round(res["requests"] / secs, 1),
                       p50_us=res["p50_us"], p99_us=res["p99_us"], p999_us=res["p999_us"], mean_us=res["mean_us"],
                       wrk_errors=res["errors"],
                       wrk_cpu_util=round(watch.reaped / secs, 3))  # wrk is the one child reaped
            if cpu0 is not None and cpu1 is not None and cpu1 > cpu0 and res["requests"]:
                cpu = cpu1 - cpu0
                rec.update(server_cpu_s=round(cpu, 6), server_cpu_util=round(cpu / secs, 3),
                           server_cpu_us_per_req=round(cpu * 1e6 / res["requests"], 4),
                           req_per_cpu_s=round(res["requests"] / cpu, 1))
                if len(pids) > 1:
                    rec["master_cpu_share"] = round((master1 - master0) / cpu, 5)
                rec.update(watch.figures(cpu))
            elif not reason:
                reason = "could not read the server's CPU time"
    if not reason and a.syscalls:
        (res, why), count, perf_why = count_syscalls(srv.pids(), lambda: wrk(a, port, a.syscall_window))
        reason = why
        if count is not None and res and res["requests"]:
            rec.update(syscalls=count, syscall_window_requests=res["requests"],
                       syscalls_per_req=round(count / res["requests"], 4))
        elif perf_why:
            rec["syscalls_error"] = perf_why
    if not reason:
        why = check_answer(port)
        reason = why and "after the load: " + why
    return echo.settle(rec, reason, srv, srv.stop())


# ---- output ----------------------------------------------------------------------------------------

def samples_for(rec):
    if not rec.get("ok"):
        return [{"type": "failure", "workload": WORKLOAD, "contender": rec["contender"], "round": rec["round"],
                 "reason": rec.get("reason", "failed")}]
    return [{"type": "sample", "workload": WORKLOAD, "contender": rec["contender"], "round": rec["round"],
             "metric": key, "unit": unit, "value": rec[key]} for key, unit in METRICS if rec.get(key) is not None]


def notes(a, records):
    out = ["wrk -t 1 -c %d (keep-alive GET /) on CPU 1, server on CPU 0; %d s measured after a %d s warmup run; "
           "server CPU: every thread's run time over the measured wrk run" % (CONNS, a.duration, a.warmup)]
    shares = [r["master_cpu_share"] for r in records if r.get("ok") and "master_cpu_share" in r]
    if shares:
        out.append("nginx's CPU is the worker's plus the master's (the master's share: %.2f%% at most)"
                   % (100 * max(shares)))
    if a.syscalls:
        out.append("syscalls/req: perf over a separate %d s wrk run (its %d connects and closes included)"
                   % (a.syscall_window, CONNS))
    out += echo.suspect_note(a, records)
    return [{"type": "meta", "workload": WORKLOAD, "note": n} for n in out]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=3, help="measured seconds per run (wrk takes whole seconds)")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of the wrk run before the measured one (0: none)")
    ap.add_argument("--no-syscalls", dest="syscalls", action="store_false",
                    help="skip the wrk run under perf that counts the server's system calls")
    ap.add_argument("--syscall-window", type=int, default=1, help="seconds of the wrk run under perf")
    ap.add_argument("--contenders", default=",".join(ALL_CONTENDERS),
                    help="comma-separated subset of: " + ", ".join(ALL_CONTENDERS))
    ap.add_argument("--http-server", help="weft's server (default BUILD/examples/http_server)")
    ap.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    echo.add_run_args(ap)
    a = ap.parse_args()
    a.http_server = a.http_server or os.path.join(a.build, "examples", "http_server")
    contenders = [c.strip() for c in a.contenders.split(",") if c.strip()]
    for c in contenders:
        if c not in ALL_CONTENDERS:
            ap.error("unknown contender %s" % c)
    if a.duration < 1 or a.syscall_window < 1:
        ap.error("wrk runs for whole seconds: --duration and --syscall-window are at least 1")
    echo.check_machine(a.syscalls)
    no_wrk = None if shutil.which(a.wrk) else "wrk not installed (apt-get install wrk)"

    avail = contenders_available(a)
    records = []
    state = {"port": 20000 + (os.getpid() + 2500) % 5000, "ksoftirqd": echo.ksoftirqd_pids()}
    total = a.rounds * len(contenders)
    n = 0
    for rnd in range(1, a.rounds + 1):
        for name in contenders:
            n += 1
            start, why = avail[name]
            why = why or no_wrk
            if why:
                rec = {"type": "http", "workload": WORKLOAD, "contender": name, "round": rnd, "ok": False,
                       "status": "unavailable", "reason": why}
            else:
                rec = echo.run_undisturbed(a, lambda: run_one(a, name, start, rnd, state))
            echo.keep(a, records, rec, samples_for)
            if rec.get("ok"):
                log("[%d/%d] round %d %-13s %10s req/s  %6s us CPU/req  %8s req/CPU-s  %5s syscalls/req  "
                    "p99 %s us  CPU server/wrk %.0f%%/%.0f%%%s" % (
                        n, total, rnd, name, fmt(rec.get("req_per_s")), fmt(rec.get("server_cpu_us_per_req")),
                        fmt(rec.get("req_per_cpu_s")), fmt(rec.get("syscalls_per_req")), fmt(rec.get("p99_us")),
                        100 * rec.get("server_cpu_util", 0), 100 * rec.get("wrk_cpu_util", 0),
                        "  (other CPU use %.0f%%)" % (100 * rec["other_cpu_util"])
                        if rec.get("other_cpu_util", 0) > 0.05 else ""))
            else:
                log("[%d/%d] round %d %-13s %s: %s" % (n, total, rnd, name, rec["status"].upper(), rec.get("reason")))
    meta = [{"type": "meta", "workload": WORKLOAD, "contenders": contenders}] + notes(a, records)
    if a.samples:
        for m in meta:
            emit(m)
        return 0
    report = load("report", os.path.join(ROOT, "bench", "report.py"))
    recs = [s for r in records for s in samples_for(r)] + meta
    log("\n" + report.render_table(WORKLOAD, report.summarise(WORKLOAD, recs)))
    return 0 if all(r.get("ok") or r.get("status") == "unavailable" for r in records) else 1


if __name__ == "__main__":
    echo.run_main(main)
