"""The machine a benchmark ran on, and how busy others kept it. Python standard library only.

    info()            CPU model, CPUs, kernel, memory, OS, the CPU vulnerabilities' mitigations in force
    uring_setup(argv) what a program's io_uring_setup calls asked for and got (flags, features), read
                      from the outside with strace, so it says what a build actually used on this kernel
    liburing()        the liburing version built against
    Usage             CPU time of both CPUs, of this process tree and of the kernel threads its I/O
                      keeps busy (ksoftirqd, kblockd), to tell how much of a measurement's window other
                      processes took
"""
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time

# io_uring_setup flags and features (include/uapi/linux/io_uring.h), for the bits strace 6.1 prints as
# hexadecimal because it predates them.
SETUP_FLAGS = ["IOPOLL", "SQPOLL", "SQ_AFF", "CQSIZE", "CLAMP", "ATTACH_WQ", "R_DISABLED", "SUBMIT_ALL",
               "COOP_TASKRUN", "TASKRUN_FLAG", "SQE128", "CQE32", "SINGLE_ISSUER", "DEFER_TASKRUN", "NO_MMAP",
               "REGISTERED_FD_ONLY", "NO_SQARRAY", "HYBRID_IOPOLL", "CQE_MIXED"]
FEATURES = ["SINGLE_MMAP", "NODROP", "SUBMIT_STABLE", "RW_CUR_POS", "CUR_PERSONALITY", "FAST_POLL", "POLL_32BITS",
            "SQPOLL_NONFIXED", "EXT_ARG", "NATIVE_WORKERS", "RSRC_TAGS", "CQE_SKIP", "LINKED_FILE", "REG_REG_RING",
            "RECVSEND_BUNDLE", "MIN_TIMEOUT", "RW_ATTR", "NO_IOWAIT"]


def read(path, default=None):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def mitigations():
    """{vulnerability: what the kernel says} from /sys/devices/system/cpu/vulnerabilities."""
    d = "/sys/devices/system/cpu/vulnerabilities"
    out = {}
    try:
        for name in sorted(os.listdir(d)):
            out[name] = read(os.path.join(d, name), "?")
    except OSError:
        pass
    return out


def info():
    m = {"nproc": len(os.sched_getaffinity(0)), "kernel": os.uname().release, "arch": os.uname().machine}
    cpuinfo = read("/proc/cpuinfo", "")
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            m["cpu"] = line.split(":", 1)[1].strip()
            break
    flags = next((l.split(":", 1)[1].split() for l in cpuinfo.splitlines() if l.startswith("flags")), [])
    m["hypervisor"] = "hypervisor" in flags
    mem = read("/proc/meminfo", "")
    for line in mem.splitlines():
        if line.startswith("MemTotal:"):
            m["mem_total_gib"] = round(int(line.split()[1]) / 1048576, 1)
    for line in (read("/etc/os-release", "") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            m["os"] = line.split("=", 1)[1].strip().strip('"')
    m["cmdline_mitigations"] = next((w for w in (read("/proc/cmdline", "") or "").split()
                                     if w.startswith("mitigations=")), None)
    m["vulnerabilities"] = mitigations()
    m["io_uring_disabled"] = read("/proc/sys/kernel/io_uring_disabled")
    m["perf_event_paranoid"] = read("/proc/sys/kernel/perf_event_paranoid")
    m["liburing"] = liburing()
    gov = read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if gov:
        m["governor"] = gov
    return m


def mitigation_summary(vulns):
    """Which mitigations are in force ("name (how)"), then the vulnerabilities the kernel leaves open."""
    on, open_ = [], []
    for name, text in vulns.items():
        if text.startswith("Mitigation"):
            on.append("%s (%s)" % (name, text.split(":", 1)[1].strip() if ":" in text else text))
        elif text.startswith("Vulnerable"):
            open_.append(name + (" (%s)" % text[len("Vulnerable"):].strip(" :;") if text != "Vulnerable" else ""))
    if open_:
        on.append("not mitigated: " + ", ".join(open_))
    return on


def liburing():
    for cmd in (["pkg-config", "--modversion", "liburing"], ["dpkg-query", "-W", "-f=${Version}", "liburing-dev"]):
        if shutil.which(cmd[0]):
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode == 0 and p.stdout.strip():
                return p.stdout.strip()
    return None


def decode(text, names, prefix):
    """A flags field as strace prints it ("IORING_SETUP_CQSIZE|...|0x3000"): the names, hex bits named."""
    out = []
    for part in text.split("|"):
        part = part.strip()
        if part.startswith("0x"):
            v = int(part, 16)
            for bit in range(64):
                if v >> bit & 1:
                    out.append(names[bit] if bit < len(names) else "bit%d" % bit)
        elif part and part != "0":
            out.append(part.replace(prefix, ""))
    return out


SETUP_RE = re.compile(r"io_uring_setup\((\d+), \{flags=([^,]*),.*?cq_entries=(\d+), features=([^,]*),.*\}\) = (-?\d+|\?)"
                      r"(?: (E\w+))?")
SETUP_FAIL_RE = re.compile(r"io_uring_setup\((\d+), \{flags=([^,]*),.*\) = -1 (E\w+)")


def uring_setup(argv, env=None, seconds=0.6, ready=None):
    """Runs argv under strace for about `seconds` (or until it prints `ready`), then stops it, and returns
    [{"entries", "flags": [...], "features": [...], "result": fd or errno name}] for each io_uring_setup
    call, failed attempts (a flag the kernel refused) included; or {"error": why}."""
    if shutil.which("strace") is None:
        return {"error": "strace is not installed (apt-get install strace)"}
    log = tempfile.NamedTemporaryFile(prefix="weft-strace-", suffix=".txt", delete=False)
    log.close()
    try:
        p = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=io_uring_setup", "-e", "signal=none", "-o",
                              log.name] + list(argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + max(seconds, 5.0 if ready else seconds)
        if ready:
            buf = b""
            os.set_blocking(p.stdout.fileno(), False)
            while time.monotonic() < deadline and p.poll() is None and ready.encode() not in buf:
                try:
                    chunk = p.stdout.read()
                except (BlockingIOError, OSError):
                    chunk = None
                if chunk:
                    buf += chunk
                time.sleep(0.02)
        else:
            while time.monotonic() < deadline and p.poll() is None:
                time.sleep(0.02)
        # strace and the program share a process group of their own: stopping strace alone would leave
        # the program running, detached.
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        with open(log.name) as f:
            text = f.read()
    except OSError as e:
        return {"error": "could not run %s under strace: %s" % (argv[0], e)}
    finally:
        try:
            os.unlink(log.name)
        except OSError:
            pass
    calls = []
    for line in text.splitlines():
        m = SETUP_RE.search(line)
        if m:
            calls.append({"entries": int(m.group(1)), "flags": decode(m.group(2), SETUP_FLAGS, "IORING_SETUP_"),
                          "cq_entries": int(m.group(3)), "features": decode(m.group(4), FEATURES, "IORING_FEAT_"),
                          "result": m.group(6) or m.group(5)})
            continue
        m = SETUP_FAIL_RE.search(line)
        if m:
            calls.append({"entries": int(m.group(1)), "flags": decode(m.group(2), SETUP_FLAGS, "IORING_SETUP_"),
                          "result": m.group(3)})
    return calls


def uses_io_uring(pid):
    """Whether process pid holds an io_uring instance (an fd on anon_inode:[io_uring])."""
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if "io_uring" in os.readlink("/proc/%d/fd/%s" % (pid, fd)):
                    return True
            except OSError:
                pass
    except OSError:
        return None
    return False


# ---- CPU accounting -----------------------------------------------------------------------------

def cpu_busy_seconds():
    """Busy time (all but idle and iowait) of every CPU together, from /proc/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    return (sum(vals[:8]) - vals[3] - vals[4]) / tick


def proc_user_sys(pid):
    """(user, system) CPU seconds of a process, all its threads, from /proc/PID/stat (clock ticks: 10 ms
    grains), or None."""
    st = read("/proc/%d/stat" % pid)
    if not st:
        return None
    f = st[st.rindex(")") + 2:].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(f[11]) / tck, int(f[12]) / tck


def proc_cpu_seconds(pid):
    """utime + stime of a process (clock ticks), or None."""
    us = proc_user_sys(pid)
    return sum(us) if us else None


def user_sys_seconds(pids):
    """(user, system) CPU time of the processes (a share over a fraction of a second is a few percent
    coarse: clock ticks), or None if one is gone."""
    user = system = 0.0
    for pid in pids:
        us = proc_user_sys(pid)
        if not us:
            return None
        user += us[0]
        system += us[1]
    return user, system


def thread_cpu_seconds(pids):
    """On-CPU time of every thread of the processes, from /proc/PID/task/*/schedstat (nanoseconds), or
    /proc/PID/stat's clock ticks where schedstat is missing; None if a process is gone."""
    total = 0.0
    for pid in pids:
        try:
            for tid in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    total += int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            t = proc_cpu_seconds(pid)
            if t is None:
                return None
            total += t
    return total


def kernel_worker_pids(unbound=False):
    """The kernel threads a benchmark's own I/O keeps busy: ksoftirqd (network and block completions
    under load) and the high-priority workqueue workers (kworker/N:MH), among them kblockd's, which
    dispatch a disk's requests (0.11-0.13 of a CPU at 120,000 O_DIRECT reads/s here). Their time is
    the benchmark's, not another job's. With unbound, the unbound workers (kworker/uN:M) too: a loop
    device's reads run on them."""
    pattern = re.compile(r"ksoftirqd/|kworker/\d+:\d+H" + (r"|kworker/u\d+:" if unbound else ""))
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit() and pattern.match(read("/proc/%s/comm" % d, "") or ""):
            pids.append(int(d))
    return pids


class Usage:
    """What other processes took of the CPUs while a measurement ran: all the CPUs' busy time
    (/proc/stat) minus this process's, its reaped children's (the benchmark programs, servers, load
    generators, perf) and the kernel threads' of kernel_worker_pids(). (Softirq time taken while a CPU
    was idle, completions arriving at an idle CPU, belongs to no process and stays in: /proc/stat
    cannot tell it from the softirq time inside other processes, which it also counts in theirs.)
    start() before, stop() once the children are reaped; extra seconds of children not reaped yet can
    be given to stop(). unbound: the unbound workqueue workers are the benchmark's too (a loop
    device's)."""

    def __init__(self, unbound=False):
        self.unbound = unbound

    def start(self):
        self.kernel = kernel_worker_pids(self.unbound)
        self.t0 = time.monotonic()
        self.busy0 = cpu_busy_seconds()
        self.self0 = self._own()
        self.kern0 = [proc_cpu_seconds(p) for p in self.kernel]
        return self

    @staticmethod
    def _own():
        a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    def stop(self, unreaped_s=0.0):
        self.elapsed = max(1e-6, time.monotonic() - self.t0)
        busy = cpu_busy_seconds()
        own = self._own() - self.self0 + unreaped_s
        # A worker gone since start() is left out (its time cannot be read any more).
        kern = sum(t1 - t0 for t0, t1 in zip(self.kern0, (proc_cpu_seconds(p) for p in self.kernel))
                   if t0 is not None and t1 is not None and t1 >= t0)
        self.own_util = own / self.elapsed
        self.other_util = max(0.0, busy - self.busy0 - own - kern) / self.elapsed
        return self.other_util


def busy_now(seconds=1.0):
    """How busy the CPUs are without the benchmarks over `seconds`, in CPUs, and the busiest commands."""
    def snap():
        procs = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                st = read("/proc/%s/stat" % d)
                if st:
                    try:
                        f = st[st.rindex(")") + 2:].split()
                        procs[int(d)] = (st[st.index("(") + 1:st.rindex(")")], int(f[11]) + int(f[12]))
                    except (ValueError, IndexError):
                        pass
        return cpu_busy_seconds(), procs
    b0, p0 = snap()
    time.sleep(seconds)
    b1, p1 = snap()
    hz = os.sysconf("SC_CLK_TCK")
    by = {}
    for pid, (name, t) in p1.items():
        d = t - (p0[pid][1] if pid in p0 else 0)
        if d > 0 and pid != os.getpid():
            by[name] = by.get(name, 0) + d
    top = sorted(((d / hz / seconds, n) for n, d in by.items()), reverse=True)[:4]
    return round((b1 - b0) / seconds, 3), [{"name": n, "cpus": round(c, 2)} for c, n in top]
