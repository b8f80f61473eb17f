#!/usr/bin/env python3
"""drive.py — one echo measurement: a fresh server pinned to CPU 0, bench/echo/loadgen on CPU 1.

bench/run (runner.py) calls measure() once per contender per round, in rounds it interleaves and
repeats; the workload, its contenders and figures are declared in bench/workloads.py. The servers:

    weft-io_uring   examples/echo_server --backend io_uring
    weft-epoll      examples/echo_server --backend epoll
    weft-io_uring-minwait  the same on io_uring with the batched wait: --min-wait-us MINWAIT_US
    weft-io_uring-trace, weft-epoll-trace  the same with the timeline trace on: --trace FILE (in the
                    temporary directory, written when the server stops, after the measurement)
    epoll           bench/baselines/echo_epoll     (plain epoll, by hand)
    liburing        bench/baselines/echo_uring     (plain liburing, by hand)
    asyncio         bench/baselines/echo_asyncio.py on /usr/bin/python3
    uvloop          the same with --uvloop (python3-uvloop)
    (--compare)     any command of the user's, given its port by {port} in its arguments or $PORT

A run: start the server (taskset -c 0), wait until it is ready ("ready" on its stdout, or for a user's
command, its port taking connections), run loadgen (closed loop, or a fixed rate) pinned to CPU 1 with
--warmup, the measured --duration and then a separate window in which perf either counts the server's
system calls or (a profile run) samples its CPU with call chains; stop the server (SIGTERM). loadgen
verifies every echoed byte: one wrong byte fails the run, and a failed run is reported, never dropped.
The record carries what other processes used of the CPUs meanwhile (machine.Usage), so the caller can
run a disturbed run again.

    bench/echo/drive.py --contender weft-io_uring --conns 512 --size 64 --rate 30000
    bench/echo/drive.py --contender liburing --closed --perf-record /tmp/p.data
prints the record of one run (JSON). Python standard library only.
"""
import argparse
import json
import os
import select
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

# The minimum wait the weft-io_uring-minwait contender runs with (docs/batched-wait.md: the sweep of
# bench/echo/minwait.py that chose it).
MINWAIT_US = 200

CHILDREN = set()  # servers and load generators running now: killed if the run is interrupted


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- servers ---------------------------------------------------------------------------------------

class Server:
    """A server started pinned to CPU 0 (or to Server.cpus). ready is "stdout" (it prints "ready") or "port" (its port takes
    connections: a command of the user's that prints nothing)."""

    cpus = "0"  # the CPUs it is pinned to (a server with a loop per CPU takes "0,1")

    def __init__(self, argv, port, env=None, ready="stdout", pin=True):
        self.port, self.ready = port, ready
        self.errf = tempfile.TemporaryFile(mode="w+")
        self.p = subprocess.Popen((["taskset", "-c", self.cpus] if pin else []) + self.command(argv, port),
                                  stdout=subprocess.PIPE if ready == "stdout" else subprocess.DEVNULL,
                                  stderr=self.errf, stdin=subprocess.DEVNULL, env=self.environment(env, port))
        CHILDREN.add(self.p)

    def command(self, argv, port):
        """The server's command line (a server configured otherwise overrides it)."""
        return argv + ["--port", str(port)]

    def environment(self, env, port):
        return env

    def pids(self):
        return [self.p.pid]

    def wait_ready(self, timeout):
        """None once ready, else why not."""
        deadline = time.monotonic() + timeout
        if self.ready == "port":
            while time.monotonic() < deadline:
                if self.p.poll() is not None:
                    break
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                    return None
                except OSError:
                    time.sleep(0.02)
        else:
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
        if self.p.stdout:
            self.p.stdout.close()
        CHILDREN.discard(self.p)
        return died_before, self.p.returncode

    def stderr_text(self):
        self.errf.seek(0)
        return self.errf.read()

    def stderr_tail(self, n=400):
        t = self.stderr_text().strip().replace("\n", " | ")
        return t[-n:] if t else "(no stderr)"


class UserServer(Server):
    """A command of the user's: {port} in its arguments becomes the port, and $PORT holds it too."""

    def command(self, argv, port):
        return [a.replace("{port}", str(port)) for a in argv]

    def environment(self, env, port):
        return dict(env if env is not None else os.environ, PORT=str(port))


class Spread(Server):
    """A server with a loop per CPU (--threads 2), pinned to CPUs 0 and 1: weft pins loop i to the i-th
    CPU of that mask. The load generator on CPU 1 then shares it with the second loop."""
    cpus = "0,1"


def server_class(contender):
    """The Server class a contender runs as: the scaling workloads' 2-loop servers spread over CPUs 0 and 1."""
    return Spread if contender.endswith("-2") else Server


def free_port(state):
    """A port below the ephemeral range, free for listening (so no client socket takes it); the one in
    state["fixed"] when the server's port is given."""
    if state.get("fixed"):
        return state["fixed"]
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


def commands(build, python="/usr/bin/python3"):
    """contender -> (argv without --port, why it cannot run or None), from a build directory."""
    script = os.path.join(ROOT, "bench", "baselines", "echo_asyncio.py")
    cmds = {
        "weft-io_uring": [os.path.join(build, "examples", "echo_server"), "--host", "127.0.0.1", "--backend", "io_uring"],
        "weft-epoll": [os.path.join(build, "examples", "echo_server"), "--host", "127.0.0.1", "--backend", "epoll"],
        "weft-io_uring-minwait": [os.path.join(build, "examples", "echo_server"), "--host", "127.0.0.1", "--backend",
                                  "io_uring", "--min-wait-us", str(MINWAIT_US)],
        "weft-io_uring-trace": [os.path.join(build, "examples", "echo_server"), "--host", "127.0.0.1", "--backend",
                                "io_uring", "--trace", os.path.join(tempfile.gettempdir(), "weft-echo-io_uring.json")],
        "weft-epoll-trace": [os.path.join(build, "examples", "echo_server"), "--host", "127.0.0.1", "--backend", "epoll",
                             "--trace", os.path.join(tempfile.gettempdir(), "weft-echo-epoll.json")],
        # The scaling workload's: two loops, each with its SO_REUSEPORT listener (server_class: CPUs 0, 1).
        "weft-io_uring-2": [os.path.join(build, "examples", "echo_server"), "--host", "127.0.0.1", "--backend",
                            "io_uring", "--threads", "2"],
        "weft-epoll-2": [os.path.join(build, "examples", "echo_server"), "--host", "127.0.0.1", "--backend", "epoll",
                         "--threads", "2"],
        "epoll": [os.path.join(build, "bench", "baselines", "echo_epoll"), "--host", "127.0.0.1"],
        "liburing": [os.path.join(build, "bench", "baselines", "echo_uring"), "--host", "127.0.0.1"],
        "asyncio": [python, script, "--host", "127.0.0.1"],
        "uvloop": [python, script, "--host", "127.0.0.1", "--uvloop"],
    }
    out = {}
    for name, argv in cmds.items():
        why = None
        if not (os.path.isfile(argv[0]) and os.access(argv[0], os.X_OK)):
            why = "%s not built or not executable" % argv[0]
        elif name == "uvloop":
            r = subprocess.run([python, "-c", "import uvloop"], capture_output=True)
            if r.returncode != 0:
                why = "uvloop not installed for %s (apt-get install python3-uvloop)" % python
        out[name] = (argv, why)
    return out


# ---- one run ---------------------------------------------------------------------------------------

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


def measure(loadgen, argv, conns, size, load, rate=None, warmup=0.2, duration=0.5, window=0.25, syscalls=True,
            perf_record=None, env=None, state=None, server_cls=Server, ready="stdout", ready_timeout=10,
            tick_us=0, perf_period_ns=100000):
    """One echo run. load is "closed" or "rate" (then rate msg/s in total). The window after the measured
    one counts system calls (syscalls) or, with perf_record=FILE, samples the server's CPU into FILE.
    Returns the record: loadgen's figures, other_cpu_util (other processes, in CPUs), ok/status/reason."""
    state = state if state is not None else {"port": 20000 + os.getpid() % 5000}
    rec = {"type": "echo", "conns": conns, "size": size, "load": load, "offered_rate": rate if load == "rate" else None}
    port = free_port(state)
    usage = machine.Usage().start()
    srv = server_cls(argv, port, env=env, ready=ready)
    why = srv.wait_ready(ready_timeout)
    if why:
        srv.stop()
        usage.stop()
        rec.update(ok=False, status="failed", reason="server " + why)
        return rec
    lg = [loadgen, "--host", "127.0.0.1", "--port", str(port), "--conns", str(conns), "--size", str(size),
          "--warmup", str(warmup), "--duration", str(duration), "--server-pid", str(srv.p.pid),
          "--cpu", "1", "--quiet"]
    lg += ["--closed"] if load == "closed" else ["--rate", str(rate), "--tick-us", str(tick_us)]
    if perf_record:
        lg += ["--perf-record", perf_record, "--perf-period-ns", str(perf_period_ns), "--syscall-window", str(window)]
    elif syscalls:
        lg += ["--count-syscalls", "--syscall-window", str(window)]
    limit = 60 + warmup + duration + window + 40
    rec["uses_io_uring"] = machine.uses_io_uring(srv.p.pid)
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
    stopped = srv.stop()
    rec["other_cpu_util"] = round(usage.stop(), 3)
    stderr = srv.stderr_text()

    result = None
    for line in out.decode(errors="replace").splitlines():
        if line.strip().startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                pass
    if result:
        rec.update({k: v for k, v in result.items() if k not in ("mode", "conns", "size", "offered_rate")})
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
    elif perf_record and result.get("perf_error"):
        reason = "perf: " + result["perf_error"]
    if load == "rate" and result and result.get("req_per_s"):
        rec["sustained"] = result["req_per_s"] >= 0.98 * rate
    return settle(rec, reason, srv, stopped)


def kill_children():
    for p in list(CHILDREN):
        try:
            p.kill()
            p.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass


def driver_parser(doc):
    """The command line every driver starts from: which contender, and the build its programs are in."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contender", default="weft-io_uring")
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "bench"))
    return ap


def pick(table, contender):
    """The entry of a driver's commands() table for contender, without its last field (why it cannot
    run, None if it can): exits saying why when it cannot."""
    *entry, why = table[contender]
    if why:
        sys.exit("drive.py: %s" % why)
    return entry


def finish(rec):
    """A driver's last step: its record on stdout, and its exit status."""
    print(json.dumps(rec))
    return 0 if rec["ok"] else 1


def run_main(main):
    """Runs a driver's main; ^C ends the servers it started."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        kill_children()
        sys.exit(130)


def main():
    ap = driver_parser(__doc__)
    ap.add_argument("--conns", type=int, default=512)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--closed", action="store_true", help="closed loop (default: a fixed rate)")
    ap.add_argument("--rate", type=float, default=30000)
    ap.add_argument("--warmup", type=float, default=0.2)
    ap.add_argument("--duration", type=float, default=1.0)
    ap.add_argument("--window", type=float, default=0.5, help="seconds of the perf window after the measured one")
    ap.add_argument("--perf-record", metavar="FILE", help="sample the server's CPU in the window into FILE")
    a = ap.parse_args()
    (argv,) = pick(commands(a.build), a.contender)
    rec = measure(os.path.join(a.build, "bench", "echo", "loadgen"), argv, a.conns, a.size,
                  "closed" if a.closed else "rate", a.rate, a.warmup, a.duration, a.window, perf_record=a.perf_record,
                  server_cls=server_class(a.contender))
    return finish(rec)


if __name__ == "__main__":
    run_main(main)
