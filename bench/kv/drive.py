#!/usr/bin/env python3
"""drive.py — one key-value measurement: a fresh server pinned to CPU 0, redis-benchmark on CPU 1.

bench/run (runner.py) calls measure() once per contender per round and configuration; the workload
is declared in bench/workloads.py (kv). The servers, all speaking RESP2 on loopback:

    weft-io_uring     examples/kv_server --backend io_uring         (weft-kv, one loop)
    weft-epoll        examples/kv_server --backend epoll
    weft-io_uring-2   examples/kv_server --backend io_uring --threads 2, on CPUs 0 and 1
    redis             redis-server (Debian's redis-server 7.0) with persistence off (--save '' --appendonly
                      no), started by this script and stopped by it: never a system service

A run checks the answers (SET of a random 16-byte value, GET of it, MGET, DEL: the bytes must come back),
then runs redis-benchmark pinned to CPU 1, `-t set,get -P P -c C -d 16 -r 100000 --csv`, three times:
a warmup, which also tells how many requests make --seconds a test at this machine's rate; the measured
run (SET's and GET's requests/s and latency from redis-benchmark, the server's CPU time from
/proc/PID/task/*/schedstat read right before redis-benchmark starts and right after it exits, and the
kernel's share of it from /proc/PID/stat's system and user times); and, when
asked, a separate run under perf counting the server's system calls. Then the answers are checked
again and the server stopped (SIGTERM; redis-server too). Requests per server-CPU-second is the
figure the targets are on; requests/s says which side saturated first (redis-benchmark's CPU use is
beside it).

The memory run (--memory) loads a million 16-byte keys with 16-byte values (pipelined SETs, every
reply checked) and takes the server's RSS before and after: bytes per key.

A run fails, with the reason, if the server does not start or answers wrongly, if redis-benchmark
prints an error or fails, or if the keys it wrote are not there: a broken server cannot win.

    bench/kv/drive.py --contender redis --pipeline 16 --clients 50
prints the record of one run (JSON). Python standard library only.
"""
import importlib.util
import os
import resource
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
import machine  # noqa: E402

# The HTTP driver's perf window and its two-CPU server; it loads the echo driver's Server and helpers.
_spec = importlib.util.spec_from_file_location("http_drive", os.path.join(ROOT, "bench", "http", "drive.py"))
http = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(http)
echo = http.echo

KEYSPACE = 100000
VALUE_SIZE = 16


# ---- servers ---------------------------------------------------------------------------------------

class Redis(echo.Server):
    """redis-server in the foreground, persistence off, one database (as weft-kv), pinned to CPU 0."""

    def command(self, argv, port):
        return argv + ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                       "--databases", "1", "--dir", os.environ.get("TMPDIR", "/tmp"), "--logfile", ""]


def find(name):
    return shutil.which(name) or next((p for p in ("/usr/bin/" + name, "/usr/sbin/" + name) if os.access(p, os.X_OK)),
                                      None)


def commands(build):
    """contender -> (argv, server class, why it cannot run or None)."""
    server = os.path.join(build, "examples", "kv_server")
    why = None if os.access(server, os.X_OK) else "%s not built or not executable" % server
    redis = find("redis-server")
    return {
        "weft-io_uring": ([server, "--host", "127.0.0.1", "--backend", "io_uring"], echo.Server, why),
        "weft-epoll": ([server, "--host", "127.0.0.1", "--backend", "epoll"], echo.Server, why),
        "weft-io_uring-2": ([server, "--host", "127.0.0.1", "--backend", "io_uring", "--threads", "2"], echo.Spread,
                            why),
        "redis": ([redis or "redis-server"], Redis, None if redis else "redis-server not installed "
                                                                      "(apt-get install redis-server)"),
    }


# ---- a client ---------------------------------------------------------------------------------------

class Client:
    """A blocking RESP2 connection that checks what it reads."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def close(self):
        self.s.close()

    def send(self, *args):
        self.s.sendall(encode(args))

    def reply(self):
        while True:
            r, n = parse(self.buf)
            if n:
                self.buf = self.buf[n:]
                return r
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise OSError("the server closed the connection")
            self.buf += chunk


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def parse(buf, at=0):
    """(reply, bytes used) of the reply at buf[at:], or (None, 0) while incomplete. Errors as ("ERR", text)."""
    end = buf.find(b"\r\n", at)
    if end < 0:
        return None, 0
    kind, line, after = buf[at:at + 1], buf[at + 1:end], end + 2
    if kind == b"+":
        return line.decode(), after - at
    if kind == b"-":
        return ("ERR", line.decode(errors="replace")), after - at
    if kind == b":":
        return int(line), after - at
    if kind == b"$":
        n = int(line)
        if n < 0:
            return None, after - at
        if len(buf) < after + n + 2:
            return None, 0
        return buf[after:after + n], after + n + 2 - at
    if kind == b"*":
        items, pos = [], after
        for _ in range(int(line)):
            item, used = parse(buf, pos)
            if not used:
                return None, 0
            items.append(item)
            pos += used
        return items, pos - at
    raise ValueError("not RESP2: %r" % buf[at:at + 40])


def check_answer(port):
    """None if the server stores and returns bytes correctly, else what is wrong."""
    try:
        c = Client(port)
        value = os.urandom(VALUE_SIZE)
        c.send("SET", "kv-check", value)
        c.send("GET", "kv-check")
        c.send("MGET", "kv-check", "kv-check-absent")
        c.send("DEL", "kv-check")
        got = [c.reply() for _ in range(4)]
        c.close()
        want = ["OK", value, [value, None], 1]
        return None if got == want else "answers %r, want %r" % (got, want)
    except (OSError, ValueError) as e:
        return "checking the answers: %s: %s" % (type(e).__name__, e)


def check_keys(port, expect_some):
    """After a benchmark: its keys are there, each with a 16-byte value. None, or what is wrong."""
    try:
        c = Client(port)
        c.send("DBSIZE")
        keys = c.reply()
        names = ["key:%012d" % i for i in range(0, KEYSPACE, KEYSPACE // 100)]
        c.send("MGET", *names)
        values = c.reply()
        c.close()
        if expect_some and not (isinstance(keys, int) and 1000 < keys <= KEYSPACE):
            return "DBSIZE %r after SETs over %d random keys" % (keys, KEYSPACE)
        bad = [v for v in values if v is not None and len(v) != VALUE_SIZE]
        if bad or (expect_some and not any(values)):
            return "the benchmark's keys hold %r" % values[:5]
        return None
    except (OSError, ValueError) as e:
        return "checking the keys: %s: %s" % (type(e).__name__, e)


# ---- redis-benchmark ---------------------------------------------------------------------------------

def bench(port, clients, pipeline, requests, tool="redis-benchmark"):
    """redis-benchmark -t set,get pinned to CPU 1: ({"SET": row, "GET": row}, why not). A row holds rps
    and the latencies in ms (avg, min, p50, p95, p99, max)."""
    cmd = ["taskset", "-c", "1", tool, "-h", "127.0.0.1", "-p", str(port), "-t", "set,get", "-n", str(requests),
           "-c", str(clients), "-P", str(pipeline), "-d", str(VALUE_SIZE), "-r", str(KEYSPACE), "--csv"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    echo.CHILDREN.add(p)
    try:
        out, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return None, "redis-benchmark did not finish within 120 s"
    finally:
        echo.CHILDREN.discard(p)
    err = err.decode(errors="replace")
    rows = {}
    for line in out.decode(errors="replace").splitlines():
        cells = [c.strip('"') for c in line.strip().split(",")]
        if len(cells) == 8 and cells[0] in ("SET", "GET"):
            try:
                rows[cells[0]] = dict(zip(("rps", "avg", "min", "p50", "p95", "p99", "max"), map(float, cells[1:])))
            except ValueError:
                pass
    if p.returncode != 0 or "error" in err.lower() or "warning" in err.lower():
        return rows or None, "redis-benchmark exited with status %d: %s" % (p.returncode, err.strip()[-300:])
    if set(rows) != {"SET", "GET"}:
        return None, "redis-benchmark printed no SET and GET figures: %s" % out.decode(errors="replace")[-300:]
    return rows, None


def start(argv, server_cls, env, state, ready, ready_timeout):
    """A fresh server on a free port, its answers checked: (server, port, machine.Usage started, why not
    or None)."""
    state = state if state is not None else {"port": 20000 + (os.getpid() + 3500) % 5000}
    port = echo.free_port(state)
    usage = machine.Usage().start()
    srv = server_cls(argv, port, env=env, ready=ready)
    reason = srv.wait_ready(ready_timeout)
    reason = reason and "server " + reason
    return srv, port, usage, reason or check_answer(port)


def stop(srv, usage, rec, reason):
    """Stops the server and settles the run's record: what other processes used meanwhile, ok or why not."""
    stopped = srv.stop()
    rec["other_cpu_util"] = round(usage.stop(), 3)
    return echo.settle(rec, reason, srv, stopped)


def measure(argv, server_cls, clients, pipeline, seconds=1.0, syscalls=False, env=None, state=None,
            ready="stdout", ready_timeout=10, tool=None):
    """One run; returns its record (figures, other_cpu_util, ok/status/reason)."""
    tool = tool or find("redis-benchmark") or "redis-benchmark"
    rec = {"type": "kv", "clients": clients, "pipeline": pipeline}
    srv, port, usage, reason = start(argv, server_cls, env, state, ready, ready_timeout)
    if not reason:
        rec["uses_io_uring"] = machine.uses_io_uring(srv.pids()[0])
        # The warmup fills the keyspace (the measured GETs find their keys) and gives the rate.
        rows, reason = bench(port, clients, pipeline, 20000 * min(pipeline, 8), tool)
    if not reason:
        rate = min(rows["SET"]["rps"], rows["GET"]["rps"])
        requests = max(10000, int(rate * seconds / 2))
        pids = srv.pids()
        cpu0 = machine.thread_cpu_seconds(pids)
        us0 = machine.user_sys_seconds(pids)
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        rows, reason = bench(port, clients, pipeline, requests, tool)
        wall = time.monotonic() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu1 = machine.thread_cpu_seconds(pids)
        us1 = machine.user_sys_seconds(pids)
        if rows and not reason:
            total = 2 * requests
            secs = requests / rows["SET"]["rps"] + requests / rows["GET"]["rps"]
            rec.update(requests=total, seconds=round(secs, 4), req_per_s=round(total / secs, 1),
                       set_req_per_s=rows["SET"]["rps"], get_req_per_s=rows["GET"]["rps"],
                       p50_us=round(1000 * max(rows["SET"]["p50"], rows["GET"]["p50"]), 1),
                       p99_us=round(1000 * max(rows["SET"]["p99"], rows["GET"]["p99"]), 1),
                       # redis-benchmark is the one child reaped meanwhile: which side saturated.
                       bench_cpu_util=round((ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / wall, 3))
            if cpu0 is not None and cpu1 is not None and cpu1 > cpu0:
                cpu = cpu1 - cpu0
                rec.update(server_cpu_s=round(cpu, 6), server_cpu_util=round(cpu / wall, 3),
                           server_cpu_us_per_req=round(cpu * 1e6 / total, 4), req_per_cpu_s=round(total / cpu, 1))
                # The kernel's part of it (system calls, io_uring's work, the TCP stack and the wakeups
                # it causes): the server's share of system time, applied to the exact CPU time.
                if us0 and us1 and sum(us1) > sum(us0):
                    share = (us1[1] - us0[1]) / (sum(us1) - sum(us0))
                    rec.update(server_kernel_share=round(share, 3),
                               server_kernel_us_per_req=round(share * cpu * 1e6 / total, 4))
            else:
                reason = "could not read the server's CPU time"
    if not reason and syscalls:
        n = max(10000, int(rec["req_per_s"] * 0.25))
        (rows, why), count, _, perf_why = http.perf_window(srv.pids(), lambda: bench(port, clients, pipeline, n, tool))
        reason = why
        if count is not None and rows:
            rec.update(syscalls=count, syscall_window_requests=2 * n, syscalls_per_req=round(count / (2 * n), 4))
        elif perf_why:
            rec["syscalls_error"] = perf_why
    if not reason:
        reason = check_keys(port, True) or check_answer(port)
        reason = reason and "after the load: " + reason
    return stop(srv, usage, rec, reason)


# ---- memory per key -----------------------------------------------------------------------------------

def rss_bytes(pids):
    total = 0
    for pid in pids:
        text = machine.read("/proc/%d/statm" % pid)
        if not text:
            return None
        total += int(text.split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return total


def load_keys(port, count, batch=10000):
    """SETs count 16-byte keys (key:%012d) to 16-byte values, pipelined, every reply checked. None or why."""
    c = Client(port)
    try:
        for start in range(0, count, batch):
            n = min(batch, count - start)
            c.s.sendall(b"".join(encode(("SET", "key:%012d" % i, "value-%010d" % i)) for i in range(start, start + n)))
            for _ in range(n):
                r = c.reply()
                if r != "OK":
                    return "SET answered %r" % (r,)
        c.send("DBSIZE")
        keys = c.reply()
        return None if keys == count else "DBSIZE %r after %d SETs" % (keys, count)
    finally:
        c.close()


def measure_memory(argv, server_cls, keys=1000000, env=None, state=None, ready="stdout", ready_timeout=10):
    """A fresh server's RSS before and after keys keys: the bytes each key costs."""
    rec = {"type": "kv-memory", "keys": keys}
    srv, port, usage, reason = start(argv, server_cls, env, state, ready, ready_timeout)
    if not reason:
        before = rss_bytes(srv.pids())
        t0 = time.monotonic()
        reason = load_keys(port, keys)
        rec["load_seconds"] = round(time.monotonic() - t0, 3)
        after = rss_bytes(srv.pids())
        if not reason and before and after:
            rec.update(rss_before=before, rss_after=after, rss_bytes_per_key=round((after - before) / keys, 2))
        elif not reason:
            reason = "could not read the server's RSS"
    return stop(srv, usage, rec, reason)


def main():
    ap = echo.driver_parser(__doc__)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--pipeline", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=1.0, help="about how long the measured run takes")
    ap.add_argument("--syscalls", action="store_true", help="count the server's system calls in another run")
    ap.add_argument("--memory", action="store_true", help="RSS per key over a million keys instead")
    a = ap.parse_args()
    argv, cls = echo.pick(commands(a.build), a.contender)
    ready = "port" if cls is Redis else "stdout"
    if a.memory:
        rec = measure_memory(argv, cls, ready=ready)
    else:
        rec = measure(argv, cls, a.clients, a.pipeline, a.seconds, a.syscalls, ready=ready)
    return echo.finish(rec)


if __name__ == "__main__":
    echo.run_main(main)
