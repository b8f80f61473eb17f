#!/usr/bin/env python3
"""drive.py — one HTTP measurement: a fresh server pinned to CPU 0, wrk on CPU 1 (see the shared BENCH.md).

bench/run (runner.py) calls measure() once per contender per round; the workload is declared in
bench/workloads.py. The servers, all answering GET / with "Hello, World!" and the same headers:

    weft-io_uring   examples/http_server --backend io_uring
    weft-epoll      examples/http_server --backend epoll
    nginx           nginx (Debian nginx-light) with ONE worker, bench/http/nginx.conf
    (--compare)     any command of the user's, given its port by {port} in its arguments or $PORT

A run checks the answer (two GETs on one keep-alive connection: 200, the body), then runs wrk pinned to
CPU 1 (wrk -t 1 -c 256, bench/http/wrk.lua) three times: --warmup seconds unmeasured; --duration seconds
measured (requests/s and latency from wrk, the server's CPU time from /proc/PID/task/*/schedstat read
right before wrk starts and right after it exits); and a separate window under perf, which either
counts the server's system calls (`perf stat -e raw_syscalls:sys_enter`) or, in a profile run, samples
its CPU with call chains (`perf record -e cpu-clock -g`), enabled and disabled through perf's control
pipe so the window is wrk's. Then the answer is checked again and the server stopped (SIGTERM). For
nginx the server is the worker and the master together (the master only supervises).

A run fails, with the reason, if the server does not start or answers wrongly, if wrk reports a socket
error or a non-2xx response, or if wrk fails: a broken server cannot win.

    bench/http/drive.py --contender nginx --duration 2
prints the record of one run (JSON). Python standard library only.
"""
import http.client
import importlib.util
import json
import os
import resource
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
sys.path.insert(0, os.path.dirname(HERE))
import machine  # noqa: E402


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


echo = load("echo_drive", os.path.join(ROOT, "bench", "echo", "drive.py"))
BODY = b"Hello, World!"
CONNS = 256


# ---- servers ---------------------------------------------------------------------------------------

class Nginx(echo.Server):
    """nginx in the foreground from a scratch prefix holding bench/http/nginx.conf with the port filled in
    (the config's header says how). It prints nothing when ready: ready is when its worker exists and
    the port takes connections."""

    workers = 1
    conf = "nginx.conf"
    root = None  # the directory the files configuration serves

    def __init__(self, argv, port, env=None, ready="port"):
        self.prefix = tempfile.mkdtemp(prefix="weft-nginx-")
        os.chmod(self.prefix, 0o755)  # run as root, the worker is "nobody" and keeps its temp paths here
        with open(os.path.join(HERE, self.conf)) as f:
            conf = f.read().replace("@PORT@", str(port)).replace("@ROOT@", self.root or "")
        if self.workers > 1:
            # One worker per CPU, each bound to its own and with a listening socket of its own
            # (SO_REUSEPORT), as weft's loops are.
            conf = conf.replace("worker_processes 1;", "worker_processes %d;\nworker_cpu_affinity auto;" % self.workers)
            conf = conf.replace("backlog=4096;", "backlog=4096 reuseport;")
        with open(os.path.join(self.prefix, "nginx.conf"), "w") as f:
            f.write(conf)
        self.worker_pids = []
        # -e stderr: without it nginx opens its compiled-in error log before reading the config.
        super().__init__(argv + ["-p", self.prefix + "/", "-c", os.path.join(self.prefix, "nginx.conf"),
                                 "-e", "stderr"], port, env=env, ready="port")

    def command(self, argv, port):
        return argv

    def workers_running(self):
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                st = machine.read("/proc/%s/stat" % d)
                if st and int(st[st.rindex(")") + 2:].split()[1]) == self.p.pid:
                    out.append(int(d))
        return sorted(out)

    def pids(self):
        return self.worker_pids + [self.p.pid]  # the workers first: they do the work

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                return "exited with status %s before ready: %s" % (self.p.returncode, self.stderr_tail())
            self.worker_pids = self.workers_running()
            if len(self.worker_pids) >= self.workers:
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


class Nginx2(Nginx):
    """nginx with two workers, on CPUs 0 and 1."""
    workers = 2
    cpus = "0,1"


def nginx_files(root):
    """nginx serving the files of root with sendfile on (bench/http/nginx-files.conf)."""
    return type("NginxFiles", (Nginx,), {"conf": "nginx-files.conf", "root": root})


def find_nginx():
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)),
                                         None)


def commands(build, root=None):
    """contender -> (argv, server class, why it cannot run or None); with root, the servers serve that
    directory's files (http_server --root, nginx with sendfile on) instead of answering hello."""
    server = os.path.join(build, "examples", "http_server")
    why = None if os.access(server, os.X_OK) else "%s not built or not executable" % server
    nginx = find_nginx()
    files = ["--root", root] if root else []
    return {
        "weft-io_uring": ([server, "--host", "127.0.0.1", "--backend", "io_uring"] + files, echo.Server, why),
        "weft-epoll": ([server, "--host", "127.0.0.1", "--backend", "epoll"] + files, echo.Server, why),
        "nginx": ([nginx or "nginx"], nginx_files(root) if root else Nginx,
                  None if nginx else "nginx not installed (apt-get install nginx-light)"),
        # The scaling workload's: two loops, two workers.
        "weft-io_uring-2": ([server, "--host", "127.0.0.1", "--backend", "io_uring", "--threads", "2"], echo.Spread, why),
        "weft-epoll-2": ([server, "--host", "127.0.0.1", "--backend", "epoll", "--threads", "2"], echo.Spread, why),
        "nginx-2": ([nginx or "nginx"], Nginx2, None if nginx else "nginx not installed (apt-get install nginx-light)"),
    }


# ---- measuring -------------------------------------------------------------------------------------

def check_answer(port, path="/", want=BODY):
    """Two GETs of path on one keep-alive connection; None if both answer 200 with the body want (None:
    any), else what is wrong."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for i in range(2):
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                return "GET %s #%d: status %d %s" % (path, i + 1, r.status, r.reason)
            if want is not None and body != want:
                return "GET %s #%d: body %r (%d bytes), not the %d expected" % (path, i + 1, body[:60], len(body),
                                                                                len(want))
            if r.will_close:
                return "GET %s #%d: the server closes a keep-alive connection" % (path, i + 1)
        conn.close()
        return None
    except (OSError, http.client.HTTPException) as e:
        return "GET %s: %s: %s" % (path, type(e).__name__, e)


def wrk(port, seconds, wrk_bin="wrk", path="/"):
    """Runs wrk pinned to CPU 1 against path; returns (its JSON result or None, why not)."""
    cmd = ["taskset", "-c", "1", wrk_bin, "-t", "1", "-c", str(CONNS), "-d", "%ds" % seconds, "--timeout", "2s",
           "-s", os.path.join(HERE, "wrk.lua"), "http://127.0.0.1:%d%s" % (port, path)]
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


def perf_window(pids, fn, record=None, period_ns=100000):
    """Runs fn() with perf attached to pids, enabled and disabled through perf's control pipe
    (acknowledged, so the window is fn's): counting system calls, or with record=FILE sampling cpu-clock
    with call chains into FILE. Returns (fn's result, syscall count or None, the server's CPU seconds in
    the window, why perf gave nothing or None)."""
    if shutil.which("perf") is None:
        return fn(), None, None, "perf not installed"
    ctl_r, ctl_w = os.pipe()
    ack_r, ack_w = os.pipe()
    out = tempfile.NamedTemporaryFile(prefix="weft-perf-", suffix=".csv", delete=False)
    out.close()
    if record:
        cmd = ["perf", "record", "-q", "-D", "-1", "--control", "fd:%d,%d" % (ctl_r, ack_w), "-e", "cpu-clock",
               "-c", str(period_ns), "-g", "--no-buildid", "-o", record, "-p", ",".join(map(str, pids))]
    else:
        cmd = ["perf", "stat", "-D", "-1", "--control", "fd:%d,%d" % (ctl_r, ack_w), "-x", ",", "-o", out.name,
               "-e", "raw_syscalls:sys_enter", "-p", ",".join(map(str, pids))]
    p = subprocess.Popen(cmd, pass_fds=(ctl_r, ack_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    echo.CHILDREN.add(p)
    os.close(ctl_r)
    os.close(ack_w)

    def command(c):
        os.write(ctl_w, c)
        r, _, _ = select.select([ack_r], [], [], 10)
        return bool(r) and b"ack" in os.read(ack_r, 64)

    try:
        if not command(b"enable\n"):
            why = p.stderr.read().decode(errors="replace").strip()[-300:] if p.poll() is not None else "no answer"
            return fn(), None, None, "perf did not start: %s" % why
        cpu0 = machine.thread_cpu_seconds(pids)
        result = fn()
        cpu1 = machine.thread_cpu_seconds(pids)
        command(b"disable\n")
        p.send_signal(signal.SIGINT)
        p.wait(30)
        cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
        if record:
            return result, None, cpu, None if os.path.exists(record) else "perf record wrote nothing"
        with open(out.name) as f:
            for line in f:
                fields = line.strip().split(",")
                if len(fields) > 2 and fields[2].startswith("raw_syscalls:sys_enter"):
                    if fields[0].isdigit():
                        return result, int(fields[0]), cpu, None
                    return result, None, cpu, "perf: %s" % fields[0]
        return result, None, cpu, "perf wrote no count"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        echo.CHILDREN.discard(p)
        os.close(ctl_w)
        os.close(ack_r)
        os.unlink(out.name)


def measure(argv, server_cls, warmup=1, duration=1, window=1, syscalls=True, perf_record=None, env=None,
            state=None, ready="stdout", ready_timeout=10, wrk_bin=None, body=BODY, perf_period_ns=100000, path="/"):
    """One HTTP run, wrk fetching path, whose body must be body (None: any); returns its record (figures,
    other_cpu_util, ok/status/reason)."""
    state = state if state is not None else {"port": 20000 + (os.getpid() + 2500) % 5000}
    wrk_bin = wrk_bin or shutil.which("wrk") or "wrk"
    rec = {"type": "http", "conns": CONNS, "load": "closed", "path": path}
    port = echo.free_port(state)
    usage = machine.Usage().start()
    srv = server_cls(argv, port, env=env, ready=ready)
    reason = srv.wait_ready(ready_timeout)
    reason = reason and "server " + reason
    reason = reason or check_answer(port, path, body)
    if not reason:
        rec["uses_io_uring"] = machine.uses_io_uring(srv.pids()[0])
    if not reason and warmup:
        _, reason = wrk(port, warmup, wrk_bin, path)
    if not reason:
        pids = srv.pids()
        cpu0, master0 = machine.thread_cpu_seconds(pids), machine.thread_cpu_seconds(pids[1:])
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        res, reason = wrk(port, duration, wrk_bin, path)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu1, master1 = machine.thread_cpu_seconds(pids), machine.thread_cpu_seconds(pids[1:])
        if res:
            secs = res["duration_us"] / 1e6
            rec.update(requests=res["requests"], seconds=round(secs, 4), req_per_s=round(res["requests"] / secs, 1),
                       p50_us=res["p50_us"], p99_us=res["p99_us"], p999_us=res["p999_us"], mean_us=res["mean_us"],
                       wrk_errors=res["errors"],
                       # wrk is the one child reaped meanwhile: its share of CPU 1 tells which side saturated.
                       wrk_cpu_util=round((ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / secs, 3))
            if cpu0 is not None and cpu1 is not None and cpu1 > cpu0 and res["requests"]:
                cpu = cpu1 - cpu0
                rec.update(server_cpu_s=round(cpu, 6), server_cpu_util=round(cpu / secs, 3),
                           server_cpu_us_per_req=round(cpu * 1e6 / res["requests"], 4),
                           req_per_cpu_s=round(res["requests"] / cpu, 1))
                if len(pids) > 1:
                    rec["master_cpu_share"] = round((master1 - master0) / cpu, 5)
            elif not reason:
                reason = "could not read the server's CPU time"
    if not reason and (syscalls or perf_record):
        (res, why), count, cpu, perf_why = perf_window(srv.pids(), lambda: wrk(port, window, wrk_bin, path),
                                                       record=perf_record, period_ns=perf_period_ns)
        reason = why
        if res and res["requests"]:
            if perf_record:
                rec.update(perf_record=perf_record, perf_period_ns=perf_period_ns, perf_window_requests=res["requests"],
                           perf_window_seconds=res["duration_us"] / 1e6, perf_window_server_cpu_s=cpu)
                if perf_why:
                    reason = reason or "perf: " + perf_why
            elif count is not None:
                rec.update(syscalls=count, syscall_window_requests=res["requests"],
                           syscalls_per_req=round(count / res["requests"], 4))
            elif perf_why:
                rec["syscalls_error"] = perf_why
    if not reason:
        why = check_answer(port, path, body)
        reason = why and "after the load: " + why
    stopped = srv.stop()
    rec["other_cpu_util"] = round(usage.stop(), 3)
    return echo.settle(rec, reason, srv, stopped)


def main():
    ap = echo.driver_parser(__doc__)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--duration", type=int, default=2)
    ap.add_argument("--window", type=int, default=1)
    ap.add_argument("--perf-record", metavar="FILE")
    a = ap.parse_args()
    argv, cls = echo.pick(commands(a.build), a.contender)
    rec = measure(argv, cls, a.warmup, a.duration, a.window, perf_record=a.perf_record)
    return echo.finish(rec)


if __name__ == "__main__":
    echo.run_main(main)
