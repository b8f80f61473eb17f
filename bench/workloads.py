"""The one registry of weft's benchmark workloads: what each measures, who competes, what is compared
with what, the targets, and how long each mode runs it. bench/run (through runner.py), the report
(report.py) and the drivers (echo/drive.py, http/drive.py) all read it; nothing else declares a workload.

A workload has
    name, desc          the name bench/run takes and a line for --list
    title, what         for the report
    kind                how runner.py runs it: "program" (a C program under bench/ that prints sample
                        lines, one invocation per round), "files" (weft vs fio, one process per
                        contender), "echo", "http", "kv" (servers under load, one fresh server per run)
    contenders          [(name, label)] in table order; each is shown even when it produced nothing
    metrics             {name: Metric}
    compare             [(contender, reference)]: each pair's ratio gets an interval and a verdict, on
                        every metric of `compared` (the verdict table at the top of report.md lists the
                        pairs of `headline`)
    targets             [Target]: ratios to a contender of the same run (or, for sizes, a value)
    plans               {mode: Plan}: a mode without a plan leaves the workload out unless it is named
                        (then it runs with the default plan); a workload with only a "named" plan runs
                        only when named, in any mode

A table is what gets one table and one chart: a workload, or for echo one per message size, connection
count and load (echo-64B-512c-rate), for kv one per pipeline depth and client count (kv-P16-50c) and
its memory table (kv-memory); table_spec() gives any table's spec by name.
"""
import re


class Metric:
    def __init__(self, label, unit="", better="lower", chart=False, short=None, percent=False, words=None):
        self.label, self.unit, self.better, self.chart = label, unit, better, chart
        self.short = short or label
        self.percent = percent
        # The verdict words when this figure is better / worse than the reference's.
        self.words = words or ("faster", "slower")


class Target:
    """A target on `metric` of `contender`:
        form "ratio"    contender's figure / ref's figure  op bound   (e.g. <= 1.15: at most 15% more time)
        form "speedup"  how many times faster than ref      op bound   (ref/contender when lower is better)
        form "value"    the contender's own figure          op bound   (sizes only: never a time)
    ref_metric: the reference's metric when it differs (a spawn+join against one bare switch).
    level: a ">=" ratio target to reach the reference where both meet the same ceiling, also met as
    level when short of the bound by less than the noise band (stats.target_verdict)."""

    def __init__(self, contender, metric, op, bound, text, ref=None, form="ratio", ref_metric=None, table=None,
                 level=False):
        self.contender, self.metric, self.op, self.bound, self.text = contender, metric, op, bound, text
        self.ref, self.form, self.ref_metric, self.table = ref, form, ref_metric or metric, table
        self.level = level


class Plan:
    """How long one mode runs a workload: at least min_rounds rounds, more (up to max_rounds) while an
    interval the workload's verdicts or targets depend on is still undecided and wider than +-precision,
    and no more once budget_s seconds have gone. Other fields are the kind's own (see runner.py)."""

    def __init__(self, min_rounds=5, max_rounds=12, budget_s=20.0, precision=0.02, **kw):
        self.min_rounds, self.max_rounds, self.budget_s, self.precision = min_rounds, max_rounds, budget_s, precision
        self.kw = kw

    def get(self, key, default=None):
        return self.kw.get(key, default)


class Workload:
    def __init__(self, name, desc, title, what, kind, contenders, metrics, compare=(), compared=None,
                 headline=None, targets=(), plans=None, program=None, placement="pinned to CPU 0",
                 notes=(), profile=False, headline_metrics=None, within=()):
        self.name, self.desc, self.title, self.what, self.kind = name, desc, title, what, kind
        self.contenders = list(contenders)
        self.labels = dict(contenders)
        self.metrics = metrics
        self.compare = list(compare)
        self.compared = list(compared) if compared is not None else [
            m for m, i in metrics.items() if i.better and i.chart]
        self.headline = list(headline) if headline is not None else list(self.compare)
        self.targets = list(targets)
        self.plans = plans or {}
        self.program = program
        self.placement = placement
        self.notes = list(notes)
        self.profile = profile
        self.headline_metrics = headline_metrics
        # Comparisons of two figures one contender's program measured side by side in the same process:
        # (contender, metric, ref_metric, the reference's name, in the verdict table?).
        self.within = list(within)

    def plan(self, mode):
        """The mode's plan, else the default one, else the plan of a workload that runs only when named."""
        return self.plans.get(mode) or self.plans.get("default") or self.plans.get("named")


def ns(label, chart=True, short=None):
    return Metric(label, "ns", "lower", chart, short)


def micro_plans(quick=(3, 6, 2.0), default=(5, 12, 5.0), full=(10, 20, 15.0)):
    return {"quick": Plan(*quick), "default": Plan(*default), "full": Plan(*full)}


def net_metrics(request, client):
    """The figures of a network workload (echo, http): `request` is what one is called, `client` the
    load generator that measures rate and latency."""
    return {
        "server_cpu_us_per_req": Metric("server CPU time per %s" % request, "us", "lower", True, "CPU us/req"),
        "req_per_s": Metric("%ss per second (%s)" % (request, client), "req/s", "higher", True, "req/s"),
        "syscalls_per_req": Metric("server system calls per %s" % request, "calls", "lower", True, "syscalls/req",
                                   words=("fewer", "more")),
        "p50_us": Metric("latency p50 (%s)" % client, "us", "lower", False, "p50 us"),
        "p99_us": Metric("latency p99 (%s)" % client, "us", "lower", True, "p99 us"),
        "p999_us": Metric("latency p99.9 (%s)" % client, "us", "lower", False, "p99.9 us"),
        "server_cpu_util": Metric("server CPU use", "CPUs", None, False, "server CPU", percent=True),
    }


def echo_metrics():
    """The echo workloads' figures: a network workload's, what the load generator used, and the server's
    memory per connection (its RSS with every connection open, less its RSS before the first)."""
    return dict(net_metrics("round trip", "loadgen"),
                loadgen_cpu_util=Metric("load generator CPU use", "CPUs", None, False, "loadgen CPU", percent=True),
                server_rss_kib_per_conn=Metric("server RSS per connection", "KiB", "lower", False, "RSS KiB/conn",
                                               words=("smaller", "larger")))


FILE_CONTENDERS = [
    ("weft-io_uring", "weft io_uring"), ("weft-io_uring-eager", "weft io_uring, submit 1, poll 200 us"),
    ("weft-io_uring-fixed", "weft io_uring, registered buffers"),
    ("weft-epoll", "weft epoll (executor)"), ("fio-io_uring", "fio io_uring"),
    ("fio-io_uring-fixed", "fio io_uring, fixedbufs"), ("fio-libaio", "fio libaio"),
    ("fio-psync", "fio psync (<= 4 jobs)")]


def files_metrics():
    m = {}
    for q in (1, 32, 128):
        m["iops_qd%d" % q] = Metric("IOPS at QD %d" % q, "IOPS", "higher", True, "IOPS QD %d" % q)
        m["cpu_us_per_read_qd%d" % q] = Metric("CPU us per read, QD %d (process; fio: its usr+sys)" % q, "us",
                                               "lower", False, "CPU us/read QD %d" % q)
        m["syscalls_per_read_qd%d" % q] = Metric("weft's syscalls per read, QD %d" % q, "calls", "lower", False,
                                                 words=("fewer", "more"))
    return m


FILE_COMPARE = [("weft-io_uring", "fio-io_uring"), ("weft-io_uring", "fio-libaio"), ("weft-io_uring-eager", "fio-libaio"),
                ("weft-io_uring-fixed", "fio-io_uring-fixed"), ("weft-io_uring-fixed", "weft-io_uring"),
                ("weft-io_uring", "weft-epoll"), ("fio-io_uring", "fio-libaio"), ("fio-io_uring-fixed", "fio-io_uring")]

# ---- the workloads ----------------------------------------------------------------------------------

WORKLOADS = [
    Workload(
        "switch", "one context switch: weft vs boost.context fcontext vs glibc swapcontext",
        "context switch", "one context switch: ping-pong between the thread and one fiber", "program",
        [("weft", "weft (weft__ctx_switch)"), ("fcontext", "boost.context fcontext"), ("swapcontext", "glibc swapcontext")],
        {"ns_per_switch": ns("ns per switch", short="ns/switch")},
        compare=[("weft", "fcontext"), ("weft", "swapcontext")],
        targets=[Target("weft", "ns_per_switch", ">=", 1.0, "weft no slower than fcontext", "fcontext", "speedup"),
                 Target("weft", "ns_per_switch", ">=", 45, "weft >= 45x faster than swapcontext", "swapcontext",
                        "speedup")],
        plans=dict(micro_plans(), quick=Plan(3, 5, 3.0)), program=("fiber", ["switch"])),
    Workload(
        "yield", "weft_yield between two tasks through the scheduler, against one bare switch",
        "yield through the scheduler", "weft_yield between two tasks through the scheduler, next to the bare "
        "weft__ctx_switch it is built on (same metric: ns per yield / per switch)", "program",
        [("weft", "weft_yield"), ("ctx-switch", "bare weft__ctx_switch (reference)")],
        {"ns_per_yield": ns("ns per yield (ctx-switch: per switch)", short="ns/yield")},
        compare=[("weft", "ctx-switch")],
        # Was "<= 10 ns" when a bare switch took about 2.5 ns: the scheduler may cost at most 4 switches.
        targets=[Target("weft", "ns_per_yield", "<=", 4.0, "weft_yield <= 4x one bare context switch", "ctx-switch")],
        plans=micro_plans(), program=("fiber", ["yield"])),
    Workload(
        "spawn", "spawn + join of an empty task: weft vs pthread, and in bare switches",
        "spawn + join", "spawn an empty task and join it; pthread_create + join; one bare weft__ctx_switch",
        "program",
        [("weft", "weft_spawn + weft_join"), ("pthread", "pthread_create + pthread_join"),
         ("ctx-switch", "one bare weft__ctx_switch")],
        {"ns_per_spawn_join": ns("ns per spawn+join", short="ns/spawn+join"),
         "ns_per_switch": ns("ns per switch (reference)", chart=False, short="ns/switch")},
        compare=[("weft", "pthread")], compared=["ns_per_spawn_join"],
        # Was "<= 60 ns" against a 2.5 ns switch: at most 24 switches' time, and >= 300x pthread.
        targets=[Target("weft", "ns_per_spawn_join", ">=", 300, "weft >= 300x faster than pthread", "pthread", "speedup"),
                 Target("weft", "ns_per_spawn_join", "<=", 24, "weft spawn+join <= 24x one bare switch", "ctx-switch",
                        ref_metric="ns_per_switch")],
        plans=micro_plans(), program=("fiber", ["spawn"])),
    Workload(
        "tasks", "1,000,000 live tasks: time to create and reap, RSS and page tables per task",
        "1,000,000 live tasks", "1M tasks alive at once (parked in weft_sleep, or in weft_await of a future "
        "never resolved)", "program",
        [("weft-sleep", "weft, tasks in weft_sleep"), ("weft-await", "weft, tasks in weft_await")],
        {"create_ns_per_task": Metric("create (spawn + first run), ns per task", "ns", "lower", True),
         "reap_ns_per_task": Metric("reap (cancel + join), ns per task", "ns", "lower", True),
         "rss_kib_per_task": Metric("RSS per task", "KiB", "lower", True, words=("smaller", "larger")),
         "pte_bytes_per_task": Metric("page tables per task", "B", "lower", True, words=("smaller", "larger")),
         "create_ms": Metric("create, ms for all tasks", "ms", "lower"),
         "reap_ms": Metric("reap, ms for all tasks", "ms", "lower"),
         "vmas": Metric("mappings (VMAs) with all alive", "", "lower"),
         "stacks_mapped": Metric("stacks mapped", "", None), "tasks_peak": Metric("peak live tasks", "", None)},
        compare=[("weft-await", "weft-sleep")], headline=[],
        # Sizes, not times: they do not move with the machine's speed, so the bound stays absolute.
        targets=[Target("weft-sleep", "rss_kib_per_task", "<=", 12, "RSS <= 12 KiB/task (sleep)", form="value"),
                 Target("weft-await", "rss_kib_per_task", "<=", 12, "RSS <= 12 KiB/task (await)", form="value")],
        plans={"quick": Plan(2, 2, 8, args=["--tasks", "200000"], note="200,000 tasks in --quick"),
               "default": Plan(3, 3, 18, args=["--tasks", "300000"], note="300,000 tasks by default; "
                               "1,000,000 in --full"),
               "full": Plan(3, 5, 60)},
        program=("fiber", ["tasks"])),
    Workload(
        "nop", "one NOP through weft (submit, park, CQE, resume) vs the same NOP on raw liburing",
        "one trip through the ring", "a NOP through weft (submit, park, CQE, resume) vs the same NOP on raw "
        "liburing, one submit-and-wait each", "program",
        [("weft", "weft_nop in a task"), ("liburing", "raw liburing io_uring_submit_and_wait")],
        {"ns_per_op": ns("ns per NOP", short="ns/NOP"),
         "syscalls_per_op": Metric("system calls per NOP (weft's counter)", "calls", "lower", words=("fewer", "more"))},
        compare=[("weft", "liburing")],
        targets=[Target("weft", "ns_per_op", "<=", 1.15, "weft NOP <= 1.15x liburing's time", "liburing")],
        plans=dict(micro_plans(), default=Plan(5, 12, 5.0, args=["--quick"])), program=("io", ["nop"])),
    Workload(
        "deadline", "what a deadline adds to a call: weft's loop timer vs a linked timeout SQE on raw liburing",
        "what a deadline adds to a call", "a recv that goes async (its data comes from a send submitted with "
        "it), without and with a 10 s deadline: weft's timer in the loop's heap vs IORING_OP_LINK_TIMEOUT on raw "
        "liburing", "program",
        [("weft", "weft, no deadline"), ("weft-deadline", "weft, weft_deadline_push"),
         ("liburing", "raw liburing, no timeout"), ("liburing-linked", "raw liburing, linked timeout")],
        {"ns_per_op": ns("ns per recv + send", short="ns/op"),
         "deadline_ns": Metric("ns the deadline adds (with minus without, per round)", "ns", None, True, "added ns")},
        compare=[("weft-deadline", "weft"), ("liburing-linked", "liburing"), ("weft", "liburing"),
                 ("weft-deadline", "liburing-linked")],
        headline=[("weft-deadline", "weft"), ("liburing-linked", "liburing")],
        plans=dict(micro_plans(), default=Plan(5, 12, 5.0, args=["--quick"])), program=("io", ["deadline"])),
    Workload(
        "files", "4 KiB random reads, O_DIRECT: weft (io_uring, epoll) vs fio io_uring/libaio/psync, with and without "
        "registered buffers",
        "4 KiB random reads, O_DIRECT", "4 KiB random reads, O_DIRECT, one thread: weft_read_async (and "
        "weft_read_fixed_async through registered buffers) vs fio (io_uring, with and without fixedbufs, libaio, psync)", "files", FILE_CONTENDERS, files_metrics(),
        compare=FILE_COMPARE, compared=["iops_qd1", "iops_qd32", "iops_qd128"],
        headline=[("weft-io_uring", "fio-io_uring"), ("weft-io_uring", "fio-libaio")],
        headline_metrics=["iops_qd32"],
        targets=[Target("weft-io_uring-eager", "iops_qd32", ">=", 1.0,
                        "weft (io_uring, submit_batch 1, idle poll 200 us) >= 1.0x fio libaio at QD 32", "fio-libaio")],
        plans={"quick": Plan(3, 3, 8, qds=[32], seconds=0.25, size_mib=256,
                             contenders=["weft-io_uring", "weft-epoll", "fio-io_uring", "fio-libaio"]),
               "default": Plan(4, 6, 24, qds=[32], seconds=0.4, size_mib=1024),
               "full": Plan(5, 8, 160, qds=[1, 32, 128], seconds=0.5, size_mib=1024)}),
    Workload(
        "files-parity", "weft's default against fio libaio alone, O_DIRECT 4 KiB random reads at QD 1, 32 and 128, "
        "in rounds until the ratio is known to +-1.5%",
        "weft's default against fio libaio, O_DIRECT", "4 KiB random reads, O_DIRECT, one thread: weft_read_async "
        "with weft's defaults against fio libaio, the two alone, 1 s each per depth and round, for as many rounds "
        "as it takes to pin the ratio down (the disk's IOPS move 5 to 15% from one window to the next, so the "
        "files table's few rounds leave a wide interval)", "files",
        [("weft-io_uring", "weft io_uring"), ("fio-libaio", "fio libaio")], files_metrics(),
        compare=[("weft-io_uring", "fio-libaio")], compared=["iops_qd1", "iops_qd32", "iops_qd128"], headline=[],
        # Both sleep between completions on the same disk: at QD 128 both saturate it (fio reads no more at
        # QD 256), at QD 1 and 32 both wait on it and on a halted CPU's wake-up (only a submitter that polls,
        # at 2.5x the CPU, reads more: docs/files.md). Equal is the most a sleeping submitter can be, so
        # reaching fio is met when level with it (stats.target_verdict).
        targets=[Target("weft-io_uring", "iops_qd%d" % qd, ">=", 1.0, "weft (io_uring) >= 1.0x fio libaio at QD %d" % qd,
                        "fio-libaio", level=True) for qd in (1, 32, 128)],
        plans=dict.fromkeys(("named", "full"), Plan(15, 80, 420, precision=0.015, qds=[1, 32, 128], seconds=1.0,
                                                    size_mib=1024, contenders=["weft-io_uring", "fio-libaio"]))),
    Workload(
        "files-fast", "the same O_DIRECT reads from a device faster than the submitter: a loop device over a "
        "file in tmpfs (needs root)",
        "4 KiB random reads, O_DIRECT, from a loop device over tmpfs", "4 KiB random reads, O_DIRECT, one thread, "
        "from a loop device over a file in tmpfs (a read is a copy by the loop driver's worker, 15 us at QD 1)"
        ": what each submitter costs, which the virtual disk's 118 us a read hides", "files",
        [("weft-io_uring", "weft io_uring"), ("fio-io_uring", "fio io_uring"), ("fio-libaio", "fio libaio")],
        files_metrics(), compare=[("weft-io_uring", "fio-libaio"), ("weft-io_uring", "fio-io_uring")],
        compared=["iops_qd%d" % q for q in (1, 32, 128)] + ["cpu_us_per_read_qd%d" % q for q in (1, 32, 128)],
        headline=[],
        plans=dict.fromkeys(("named", "full"), Plan(6, 20, 150, qds=[1, 32, 128], seconds=1.0, size_mib=1024,
                                                    device="loop"))),
    Workload(
        "files-buffered", "the same reads through the page cache, the file cached first",
        "4 KiB random reads, buffered, file in the page cache", "4 KiB random reads through the page cache "
        "(file cached), one thread: weft vs fio", "files", FILE_CONTENDERS, files_metrics(),
        compare=FILE_COMPARE, compared=["iops_qd1", "iops_qd32", "iops_qd128"], headline=[],
        plans={"full": Plan(5, 8, 160, qds=[1, 32, 128], seconds=0.5, size_mib=1024, buffered=True)}),
    Workload(
        "fixed", "registered (direct) descriptors vs plain fds on raw liburing, and what registering one costs",
        "registered descriptors", "a 64 B send and its recv over loopback TCP, submitted together, on plain fds and "
        "on the ring's registered-file table (IOSQE_FIXED_FILE); and one connection's registration (a files "
        "update into a slot and back), raw liburing", "program",
        [("plain", "plain fds"), ("fixed", "registered files (IOSQE_FIXED_FILE)"),
         ("plain-eagain", "plain fds, recv of an empty socket"), ("fixed-eagain", "registered, recv of an empty socket"),
         ("register", "register + unregister one fd (per connection)")],
        {"ns_per_op": ns("ns per send + recv", short="ns/op"),
         "ns_per_lookup": ns("ns per recv failing with EAGAIN (the lookup's share is largest)", short="ns/recv EAGAIN"),
         "ns_per_register": ns("ns per register + unregister", short="ns/register")},
        compare=[("fixed", "plain"), ("fixed-eagain", "plain-eagain")], compared=["ns_per_op", "ns_per_lookup"],
        plans={"named": Plan(5, 12, 10), "full": Plan(10, 20, 30)}, program=("fixed", ["fixed"])),
    Workload(
        "commit", "durable log appends: weft's group commit (io_uring, epoll) vs a pthread group commit vs a sync "
        "per record (fio --fdatasync=1)",
        "durable log appends", "many writers appending records to one log file, each waiting until its record is "
        "durable: weft's examples/group_commit (tasks and one committer gathering each batch into one "
        "weft_write_durable), the same with a sync per record (--no-batch), bench/baselines/commit_pthread (the group "
        "commit with threads, a mutex and condition variables), and fio --fdatasync=1 (one job syncing every record)",
        "commit",
        [("weft-io_uring", "weft group commit, io_uring"), ("weft-epoll", "weft group commit, epoll"),
         ("weft-io_uring-nobatch", "weft, a sync per record (64 in flight)"), ("pthread", "pthread group commit"),
         ("fio", "fio --fdatasync=1 (a sync per record)")],
        {"records_per_s": Metric("durable records per second", "records/s", "higher", True, "records/s"),
         "syncs_per_record": Metric("syncs per record", "syncs", "lower", True, "syncs/record", words=("fewer", "more")),
         "p50_us": Metric("latency p50, append to durable", "us", "lower", False, "p50 us"),
         "p99_us": Metric("latency p99, append to durable", "us", "lower", True, "p99 us"),
         "cpu_us_per_record": Metric("CPU per record (process; fio: its usr+sys)", "us", "lower", True, "CPU us/record")},
        compare=[("weft-io_uring", "pthread"), ("weft-io_uring", "fio"), ("weft-epoll", "pthread"),
                 ("weft-io_uring", "weft-epoll"), ("weft-io_uring", "weft-io_uring-nobatch"), ("pthread", "fio")],
        headline=[("weft-io_uring", "pthread"), ("weft-io_uring", "fio")],
        headline_metrics=["records_per_s"],
        plans={"named": Plan(5, 8, 40, writers=64, records=100, size=128),
               "full": Plan(5, 10, 60, writers=64, records=200, size=128)},
        placement="each program pinned to CPU 0"),
    Workload(
        "executor", "empty jobs on the executor: round trip vs a pthread ping-pong, jobs/s vs a pthread pool",
        "executor: empty jobs", "an empty job on another thread: weft's executor (1 worker for latency, 1 per CPU "
        "for jobs/s) vs pthread code by hand", "program",
        [("weft-io_uring", "weft on io_uring"), ("weft-epoll", "weft on epoll"), ("pthread", "pthread by hand")],
        {"rtt_p50": Metric("round trip p50, worker on CPU 1", "ns", "lower", True),
         "rtt_p50_pingpong": Metric("the ping-pong's round trip p50 in weft's process, interleaved with weft's "
                                    "(worker on CPU 1)", "ns", "lower", False, "ping-pong p50 beside"),
         "rtt_p99": Metric("round trip p99, worker on CPU 1", "ns", "lower"),
         "rtt_p50_same_cpu": Metric("round trip p50, worker on CPU 0 too", "ns", "lower", True),
         "rtt_p99_same_cpu": Metric("round trip p99, worker on CPU 0 too", "ns", "lower"),
         "jobs_per_s": Metric("jobs/s, 256 in flight, workers on CPU 1", "jobs/s", "higher", True),
         "jobs_per_s_same_cpu": Metric("jobs/s, 256 in flight, workers on CPU 0 too", "jobs/s", "higher", True),
         "syscalls_per_rtt": Metric("weft loop syscalls per round trip (CPU 1)", "calls", "lower", words=("fewer", "more")),
         "syscalls_per_job": Metric("weft loop syscalls per job (jobs/s, CPU 1)", "calls", "lower", words=("fewer", "more"))},
        compare=[("weft-io_uring", "pthread"), ("weft-epoll", "pthread"), ("weft-io_uring", "weft-epoll")],
        headline=[("weft-io_uring", "pthread")],
        # Across CPUs the verdict is on the ping-pong measured in weft's own process, interleaved with
        # weft's round trips (bench/exec.c): the wake-up of an idle virtual CPU moves by 10% or more
        # between the moments separate processes measure, and the paired ratio by about 1%.
        headline_metrics=["rtt_p50_same_cpu", "jobs_per_s", "jobs_per_s_same_cpu"],
        within=[("weft-io_uring", "rtt_p50", "rtt_p50_pingpong", "pthread interleaved", True),
                ("weft-epoll", "rtt_p50", "rtt_p50_pingpong", "pthread interleaved", False)],
        targets=[Target("weft-io_uring", "rtt_p50", "<=", 1.1, "weft p50 <= 1.1x ping-pong's (worker on CPU 1, "
                        "interleaved in one process)", "weft-io_uring", ref_metric="rtt_p50_pingpong"),
                 Target("weft-io_uring", "rtt_p50_same_cpu", "<=", 1.1, "weft p50 <= 1.1x ping-pong's (worker on CPU 0)",
                        "pthread")],
        plans={"quick": Plan(3, 4, 5, args=["--target-ms", "15"]), "default": Plan(3, 16, 14, args=["--target-ms", "25"]),
               "full": Plan(8, 24, 60, args=["--target-ms", "150"])},
        placement="loop (or calling thread) pinned to CPU 0, workers as labelled", program=("exec", ["executor"])),
    Workload(
        "submit", "weft_submit_to round trip between two loops (idle, and both busy) vs a pthread mutex+condvar "
        "hand-off between the same two CPUs", "weft_submit_to between two loops",
        "an empty task run on loop 1 (CPU 1) by weft_submit_to from loop 0 (CPU 0) of weft_run_cores(2), call by "
        "call; idle loops sleep between messages, busy ones each run a task that yields in a loop; against the "
        "executor workload's pthread mutex+condvar ping-pong across the same two CPUs", "program",
        [("weft-io_uring", "weft io_uring, idle loops"), ("weft-epoll", "weft epoll, idle loops"),
         ("weft-io_uring-busy", "weft io_uring, busy loops"), ("weft-epoll-busy", "weft epoll, busy loops"),
         ("pthread", "pthread mutex+condvar ping-pong")],
        {"rtt_p50": Metric("round trip p50", "ns", "lower", True), "rtt_p99": Metric("round trip p99", "ns", "lower", True)},
        compare=[("weft-io_uring", "pthread"), ("weft-epoll", "pthread"), ("weft-io_uring-busy", "pthread"),
                 ("weft-epoll-busy", "pthread"), ("weft-io_uring", "weft-epoll")],
        headline=[("weft-io_uring", "pthread"), ("weft-io_uring-busy", "pthread")],
        plans={"named": Plan(3, 8, 14, args=["--target-ms", "25"]), "full": Plan(8, 15, 40, args=["--target-ms", "100"])},
        placement="loop 0 (or the pinging thread) on CPU 0, loop 1 (or the ponging thread) on CPU 1",
        program=("exec", ["submit"])),
    Workload(
        "chan", "channel send + recv between two tasks, capacity 0 and 64", "channel send + recv",
        "weft_chan_send + weft_chan_recv between two tasks, per item", "program",
        [("cap0", "capacity 0 (rendezvous)"), ("cap64", "capacity 64")], {"ns_per_item": ns("ns per item")},
        compare=[("cap64", "cap0")], headline=[], plans=micro_plans(), program=("sync", ["chan"])),
    Workload(
        "mutex", "mutex lock + unlock, uncontended and handed between 4 tasks", "mutex lock + unlock",
        "weft_mutex_lock + unlock: one task alone, and 4 tasks that yield while holding it", "program",
        [("uncontended", "uncontended (1 task)"), ("contended", "contended, per hand-off (4 tasks)"),
         ("yield-only", "the same 4 tasks without the mutex (yield)")], {"ns_per_lock": ns("ns per lock")},
        compare=[("contended", "yield-only")], headline=[], plans=micro_plans(), program=("sync", ["mutex"])),
    Workload(
        "watchdog", "weft_yield with the slow-task watchdog on and off", "cost of the slow-task watchdog",
        "weft_yield between two tasks with the slow-task watchdog on (default) and off", "program",
        [("watchdog-on", "watchdog on (default, 100 ms)"), ("watchdog-off", "watchdog off")],
        {"ns_per_yield": ns("ns per yield")}, compare=[("watchdog-on", "watchdog-off")],
        plans=micro_plans(), program=("sync", ["watchdog"])),
    Workload(
        "trace-yield", "weft_yield between two tasks with the timeline trace off and on (its cost when recording)",
        "cost of the timeline trace: yield", "weft_yield between two tasks on a loop without a trace and on one "
        "recording a trace (trace_path set, a ring of 65536 events, the file written after the timing); each "
        "yield records the end of one task's run and the start of the next's. The trace's cost when off is the "
        "yield workload against a build without it (bench/run --baseline REV yield echo)", "program",
        [("trace-off", "trace off (the default)"), ("trace-on", "trace on (WEFT_TRACE)")],
        {"ns_per_yield": ns("ns per yield")}, compare=[("trace-on", "trace-off")],
        plans={"named": micro_plans()["default"], "full": micro_plans()["full"]}, program=("sync", ["trace-yield"])),
    Workload(
        "echo", "TCP echo at a fixed rate (server CPU per message) and closed loop (max rate), with where the "
        "CPU goes: weft (io_uring, epoll) vs plain epoll, plain liburing, asyncio, uvloop",
        "TCP echo", "TCP echo", "echo",
        [("weft-io_uring", "weft io_uring"), ("weft-epoll", "weft epoll"), ("epoll", "plain epoll (by hand)"),
         ("liburing", "plain liburing (by hand)"), ("asyncio", "Python asyncio"), ("uvloop", "Python uvloop")],
        echo_metrics(),
        compare=[("weft-io_uring", "weft-epoll"), ("liburing", "epoll"), ("weft-io_uring", "liburing"),
                 ("weft-epoll", "epoll"), ("weft-io_uring", "epoll"), ("asyncio", "weft-epoll"),
                 ("uvloop", "weft-epoll")],
        compared=["server_cpu_us_per_req", "req_per_s", "p99_us", "syscalls_per_req"],
        headline=[("weft-io_uring", "weft-epoll"), ("liburing", "epoll"), ("weft-io_uring", "liburing"),
                  ("weft-epoll", "epoll")],
        # The goals for 64 B x 512 connections at a fixed rate (table_spec keeps them there).
        targets=[Target("weft-io_uring", "server_cpu_us_per_req", "<=", 0.85, "weft (io_uring) CPU/req <= 0.85x plain epoll's",
                        "epoll", table="echo-64B-512c-rate"),
                 Target("weft-io_uring", "server_cpu_us_per_req", "<=", 1.05,
                        "weft (io_uring) CPU/req <= 1.05x plain liburing's", "liburing", table="echo-64B-512c-rate"),
                 Target("weft-epoll", "server_cpu_us_per_req", "<=", 1.05, "weft (epoll) CPU/req <= 1.05x plain epoll's",
                        "epoll", table="echo-64B-512c-rate")],
        plans={
            "quick": Plan(3, 4, 18, configs=[(512, 64)], phases=["closed", "rate"],
                          contenders=["weft-io_uring", "weft-epoll", "epoll", "liburing"], closed_rounds=3,
                          warmup=0.15, duration=0.25, rate_duration=0.3, syscall_window=0.15, rate=80000,
                          rate_fraction=0.6, profile=["weft-io_uring", "weft-epoll"], profile_window=0.3),
            "default": Plan(4, 8, 60, configs=[(512, 64)], phases=["closed", "rate"],
                            contenders=["weft-io_uring", "weft-epoll", "epoll", "liburing", "asyncio", "uvloop"],
                            closed_rounds=3, warmup=0.15, duration=0.3, rate_duration=0.5, syscall_window=0.2,
                            rate=80000, rate_fraction=0.6, profile=["weft-io_uring", "weft-epoll", "epoll", "liburing"],
                            profile_window=0.8),
            "full": Plan(5, 8, 700, configs=[(c, s) for c in (1, 64, 512, 10000) for s in (64, 4096)],
                         phases=["closed", "rate"], closed_rounds=4,
                         contenders=["weft-io_uring", "weft-epoll", "epoll", "liburing", "asyncio", "uvloop"],
                         warmup=0.2, duration=0.5, rate_duration=0.8, syscall_window=0.25, rate_fraction=0.6,
                         profile=["weft-io_uring", "weft-epoll", "epoll", "liburing", "asyncio", "uvloop"],
                         profile_window=1.0, profile_configs=[(512, 64), (10000, 64)]),
        },
        placement="server pinned to CPU 0, the verifying load generator (bench/echo/loadgen) to CPU 1",
        profile=True),
    Workload(
        "batched-wait", "TCP echo at a fixed rate: weft on io_uring with and without the batched wait (min_wait_ns)",
        "TCP echo, batched wait", "TCP echo at a fixed rate, weft's echo_server on io_uring with the plain wait and "
        "with a minimum wait (--min-wait-us, bench/echo/drive.py's MINWAIT_US; the sweep over waits and rates is "
        "bench/echo/minwait.py, docs/batched-wait.md)", "echo",
        [("weft-io_uring", "weft io_uring, plain wait"), ("weft-io_uring-minwait", "weft io_uring, minimum wait"),
         ("liburing", "plain liburing (by hand)")],
        echo_metrics(),
        compare=[("weft-io_uring-minwait", "weft-io_uring"), ("weft-io_uring-minwait", "liburing")],
        compared=["server_cpu_us_per_req", "p99_us", "syscalls_per_req"],
        headline=[("weft-io_uring-minwait", "weft-io_uring")],
        # Only when named (bench/run batched-wait): the plain echo workload already measures the default.
        plans={"named": Plan(5, 8, 60, configs=[(512, 64)], phases=["closed", "rate"], closed_rounds=3,
                             warmup=0.2, duration=0.3, rate_duration=0.6, syscall_window=0.25, rate_fraction=0.6)},
        placement="server pinned to CPU 0, the verifying load generator (bench/echo/loadgen) to CPU 1"),
    Workload(
        "trace-echo", "TCP echo at a fixed rate: weft's echo_server with the timeline trace off and on, both backends",
        "cost of the timeline trace: TCP echo", "TCP echo of 64 B over 512 connections, examples/echo_server without "
        "and with --trace FILE (a ring of 65536 events, written when the server stops, after the measurement): "
        "server CPU per message while recording every request, park, wake and poll", "echo",
        [("weft-io_uring", "weft io_uring, trace off"), ("weft-io_uring-trace", "weft io_uring, trace on"),
         ("weft-epoll", "weft epoll, trace off"), ("weft-epoll-trace", "weft epoll, trace on")],
        echo_metrics(),
        compare=[("weft-io_uring-trace", "weft-io_uring"), ("weft-epoll-trace", "weft-epoll")],
        compared=["server_cpu_us_per_req", "req_per_s", "p99_us", "syscalls_per_req"],
        headline=[("weft-io_uring-trace", "weft-io_uring"), ("weft-epoll-trace", "weft-epoll")],
        plans={"named": Plan(5, 8, 60, configs=[(512, 64)], phases=["closed", "rate"], closed_rounds=3,
                             warmup=0.2, duration=0.3, rate_duration=0.6, syscall_window=0.25, rate_fraction=0.6)},
        placement="server pinned to CPU 0, the verifying load generator (bench/echo/loadgen) to CPU 1"),
    Workload(
        "idle", "10,000 connections at a low fixed rate: the server's memory per connection (most are idle at "
        "any moment), weft (io_uring, epoll) vs plain epoll and plain liburing",
        "TCP echo, 10,000 mostly idle connections", "TCP echo of 64 B over 10,000 connections at 5,000 msg/s in "
        "all (each connection sends about every 2 s): the server's RSS with every connection open, less its RSS "
        "before the first, per connection, taken at the end of the measured window; CPU per message beside it",
        "echo",
        [("weft-io_uring", "weft io_uring"), ("weft-epoll", "weft epoll"), ("epoll", "plain epoll (by hand)"),
         ("liburing", "plain liburing (by hand)")],
        echo_metrics(),
        compare=[("weft-io_uring", "weft-epoll"), ("weft-io_uring", "epoll"), ("weft-epoll", "epoll"),
                 ("weft-io_uring", "liburing")],
        compared=["server_rss_kib_per_conn", "server_cpu_us_per_req"],
        headline=[("weft-io_uring", "epoll"), ("weft-epoll", "epoll")],
        # Only when named (bench/run idle), and in --full.
        plans={"named": Plan(3, 5, 90, configs=[(10000, 64)], phases=["rate"], rate=5000, warmup=0.5,
                             rate_duration=1.0, syscall_window=0.25),
               "full": Plan(3, 5, 90, configs=[(10000, 64)], phases=["rate"], rate=5000, warmup=0.5,
                            rate_duration=1.0, syscall_window=0.25)},
        placement="server pinned to CPU 0, the verifying load generator (bench/echo/loadgen) to CPU 1"),
    Workload(
        "http", "HTTP/1.1 keep-alive, wrk -c 256: weft's http_server (io_uring, epoll) vs nginx with one worker, "
        "with where the CPU goes",
        "HTTP/1.1 plaintext, keep-alive", "HTTP/1.1 keep-alive GET / answered with \"Hello, World!\", wrk -t 1 "
        "-c 256 (closed loop: wrk has no fixed rate): weft's examples/http_server (io_uring, epoll) vs nginx with "
        "one worker", "http",
        [("weft-io_uring", "weft http_server io_uring"), ("weft-epoll", "weft http_server epoll"),
         ("nginx", "nginx (one worker)")],
        dict(net_metrics("request", "wrk"),
             req_per_cpu_s=Metric("requests per server-CPU-second", "req/CPU-s", "higher", False, "req/CPU-s"),
             wrk_cpu_util=Metric("wrk CPU use", "CPUs", None, False, "wrk CPU", percent=True)),
        compare=[("weft-io_uring", "weft-epoll"), ("weft-io_uring", "nginx"), ("weft-epoll", "nginx")],
        compared=["server_cpu_us_per_req", "req_per_s", "p99_us", "syscalls_per_req"],
        # CPU per request is the primary figure; req/s is wrk's closed loop (wrk saturates first).
        headline_metrics=["server_cpu_us_per_req"],
        # Was ">= 1.3x nginx's requests per server-CPU-second": the same as <= 1/1.3 of its CPU per request.
        targets=[Target("weft-io_uring", "server_cpu_us_per_req", "<=", round(1 / 1.3, 4),
                        "weft (io_uring) CPU/req <= 0.77x nginx's (1.3x its req per CPU-s)", "nginx")],
        # Not in --quick: wrk runs for whole seconds, so each run of a server takes 3 s at least.
        plans={"default": Plan(3, 6, 45, warmup=1, duration=1, syscall_window=1, profile_window=1, syscall_rounds=2,
                               profile=["weft-io_uring", "weft-epoll", "nginx"]),
               "full": Plan(5, 8, 120, warmup=1, duration=2, syscall_window=1, profile_window=2,
                            profile=["weft-io_uring", "weft-epoll", "nginx"])},
        placement="server pinned to CPU 0, wrk (1 thread, 256 connections) to CPU 1", profile=True),
    Workload(
        "kv", "Redis protocol, redis-benchmark -t set,get at -P 1 and -P 16: weft-kv (io_uring, epoll) vs "
        "redis-server, requests per server-CPU-second",
        "Redis protocol: SET and GET", "redis-benchmark -t set,get -d 16 -r 100000 (closed loop) against "
        "examples/kv_server (weft-kv, io_uring and epoll) and redis-server 7.0 with persistence off; in --full also "
        "weft-kv with 2 loops and the servers' memory per key", "kv",
        [("weft-io_uring", "weft-kv io_uring"), ("weft-epoll", "weft-kv epoll"), ("redis", "redis-server 7.0"),
         ("weft-io_uring-2", "weft-kv io_uring, 2 loops")],
        {"req_per_cpu_s": Metric("requests per server-CPU-second", "req/CPU-s", "higher", True, "req/CPU-s"),
         "server_cpu_us_per_req": Metric("server CPU time per request", "us", "lower", True, "CPU us/req"),
         "server_kernel_us_per_req": Metric("server CPU time per request spent in the kernel", "us", "lower", False,
                                            "kernel us/req"),
         "req_per_s": Metric("requests per second, SET and GET (redis-benchmark)", "req/s", "higher", True, "req/s"),
         "set_req_per_s": Metric("SET requests per second", "req/s", "higher", False, "SET req/s"),
         "get_req_per_s": Metric("GET requests per second", "req/s", "higher", False, "GET req/s"),
         "syscalls_per_req": Metric("server system calls per request", "calls", "lower", True, "syscalls/req",
                                    words=("fewer", "more")),
         "p50_us": Metric("latency p50, the larger of SET's and GET's (redis-benchmark)", "us", "lower", False, "p50 us"),
         "p99_us": Metric("latency p99, the larger of SET's and GET's (redis-benchmark)", "us", "lower", True, "p99 us"),
         "server_cpu_util": Metric("server CPU use", "CPUs", None, False, "server CPU", percent=True),
         "bench_cpu_util": Metric("redis-benchmark CPU use", "CPUs", None, False, "bench CPU", percent=True),
         "rss_bytes_per_key": Metric("server RSS per key (a million 16-byte keys, 16-byte values)", "B", "lower",
                                     True, "RSS B/key", words=("smaller", "larger"))},
        compare=[("weft-io_uring", "redis"), ("weft-epoll", "redis"), ("weft-io_uring", "weft-epoll"),
                 ("weft-io_uring-2", "weft-io_uring")],
        compared=["req_per_cpu_s", "server_kernel_us_per_req", "req_per_s", "p99_us", "syscalls_per_req"],
        headline=[("weft-io_uring", "redis"), ("weft-epoll", "redis")],
        headline_metrics=["req_per_cpu_s"],
        # The goals, on requests per server-CPU-second, one loop, 50 clients.
        targets=[Target("weft-io_uring", "req_per_cpu_s", ">=", 1.5,
                        "weft-kv (io_uring) >= 1.5x redis-server's requests per CPU-second at -P 1", "redis",
                        table="kv-P1-50c"),
                 Target("weft-io_uring", "req_per_cpu_s", ">=", 1.0,
                        "weft-kv (io_uring) >= 1.0x redis-server's requests per CPU-second at -P 16", "redis",
                        table="kv-P16-50c"),
                 Target("weft-epoll", "req_per_cpu_s", ">=", 1.0,
                        "weft-kv (epoll) >= 1.0x redis-server's requests per CPU-second at -P 1", "redis",
                        table="kv-P1-50c")],
        notes=["redis-benchmark runs SET then GET in one invocation, each for about half the measured time; the "
               "server's CPU time covers both (and the clients' connections), so per-request figures are over SET "
               "and GET together. It does not check the values it reads: each run checks a SET/GET/MGET/DEL of "
               "random bytes before and after the load and samples the benchmark's keys after it."],
        plans={"default": Plan(3, 6, 36, configs=[(50, 1), (50, 16)], seconds=0.6, syscall_rounds=1,
                               contenders=["weft-io_uring", "weft-epoll", "redis"]),
               "full": Plan(5, 8, 200, configs=[(c, p) for c in (50, 1000) for p in (1, 16)], seconds=1.0,
                            syscall_rounds=2, memory=True, memory_rounds=3,
                            contenders=["weft-io_uring", "weft-epoll", "redis", "weft-io_uring-2"])},
        placement="one-loop servers pinned to CPU 0, the 2-loop weft-kv to CPUs 0 and 1, redis-benchmark to CPU 1"),
    Workload(
        "http-files", "HTTP/1.1 static files of 1 KiB, 64 KiB and 1 MiB, wrk -c 256: weft's http_server --root "
        "(weft_sendfile: splices on io_uring, sendfile(2) on epoll) vs nginx with sendfile on",
        "HTTP/1.1 static files", "HTTP/1.1 keep-alive GET of one file from a directory, wrk -t 1 -c 256: weft's "
        "examples/http_server --root (io_uring, epoll; the body sent with weft_sendfile) vs nginx with one worker "
        "and sendfile on (bench/http/nginx-files.conf); every server opens, stats and closes the file per request",
        "http_files",
        [("weft-io_uring", "weft http_server --root io_uring"), ("weft-epoll", "weft http_server --root epoll"),
         ("nginx", "nginx, sendfile on (one worker)")],
        dict(net_metrics("request", "wrk"),
             req_per_cpu_s=Metric("requests per server-CPU-second", "req/CPU-s", "higher", True, "req/CPU-s"),
             wrk_cpu_util=Metric("wrk CPU use", "CPUs", None, False, "wrk CPU", percent=True)),
        compare=[("weft-io_uring", "nginx"), ("weft-epoll", "nginx"), ("weft-io_uring", "weft-epoll")],
        compared=["req_per_cpu_s", "server_cpu_us_per_req", "req_per_s", "p99_us", "syscalls_per_req"],
        headline_metrics=["req_per_cpu_s"],
        # Only when named (bench/run http-files), and in --full: 3 sizes x 3 servers, whole seconds of wrk each.
        plans={"named": Plan(3, 5, 100, sizes=[1024, 65536, 1 << 20], warmup=1, duration=1, syscall_window=1,
                             syscall_rounds=2, profile=[]),
               "full": Plan(4, 6, 150, sizes=[1024, 65536, 1 << 20], warmup=1, duration=2, syscall_window=1,
                            syscall_rounds=2, profile=[])},
        placement="server pinned to CPU 0, wrk (1 thread, 256 connections) to CPU 1"),
    Workload(
        "scaling", "HTTP keep-alive with 1 and 2 server loops (weft --threads 2) against nginx with 1 and 2 workers",
        "scaling over cores: HTTP/1.1 keep-alive", "the HTTP workload's GET / with wrk -t 1 -c 256, served by one loop "
        "or worker on CPU 0, or by two on CPUs 0 and 1 (weft's examples/http_server --threads 2: a loop per CPU, "
        "each with its own SO_REUSEPORT listener; nginx with 2 workers, worker_cpu_affinity auto, listen reuseport)",
        "http",
        [("weft-io_uring", "weft io_uring, 1 loop"), ("weft-io_uring-2", "weft io_uring, 2 loops"),
         ("weft-epoll", "weft epoll, 1 loop"), ("weft-epoll-2", "weft epoll, 2 loops"),
         ("nginx", "nginx, 1 worker"), ("nginx-2", "nginx, 2 workers")],
        dict(net_metrics("request", "wrk"),
             req_per_cpu_s=Metric("requests per server-CPU-second", "req/CPU-s", "higher", False, "req/CPU-s"),
             wrk_cpu_util=Metric("wrk CPU use", "CPUs", None, False, "wrk CPU", percent=True)),
        compare=[("weft-io_uring-2", "weft-io_uring"), ("weft-epoll-2", "weft-epoll"), ("nginx-2", "nginx"),
                 ("weft-io_uring-2", "nginx-2"), ("weft-epoll-2", "nginx-2")],
        compared=["server_cpu_us_per_req", "req_per_s", "p99_us"],
        headline_metrics=["server_cpu_us_per_req", "req_per_s"],
        targets=[Target("weft-io_uring-2", "req_per_s", ">=", 1.8,
                        "2 loops >= 1.8x the req/s of 1 loop (io_uring; needs a load generator that is not the "
                        "bottleneck)", "weft-io_uring"),
                 Target("weft-io_uring-2", "server_cpu_us_per_req", "<=", 1.05,
                        "CPU/req rises <= 5% from 1 to 2 loops (io_uring)", "weft-io_uring"),
                 Target("weft-io_uring-2", "server_cpu_us_per_req", "<=", round(1 / 1.5, 4),
                        "2 loops CPU/req <= 0.67x nginx 2 workers' (1.5x its req per CPU-s)", "nginx-2")],
        notes=["This machine has 2 CPUs: a 2-loop server and wrk share CPU 1, so the 2-loop req/s measure a server "
               "competing with its client for a CPU (see wrk CPU use: near 1.0 means wrk, not the server, set the "
               "rate), and the 1.8x target cannot be established here; CPU per request and req per server-CPU-second "
               "are the figures that transfer."],
        plans={"named": Plan(3, 6, 60, warmup=1, duration=1, syscall_window=1, syscall_rounds=1),
               "full": Plan(4, 6, 90, warmup=1, duration=2, syscall_window=1, syscall_rounds=1)},
        placement="1-loop servers pinned to CPU 0, 2-loop servers to CPUs 0 and 1, wrk (1 thread, 256 connections) "
                  "to CPU 1"),
    Workload(
        "scaling-echo", "TCP echo with 1 and 2 server loops (weft --threads 2), beside the plain epoll server",
        "scaling over cores: TCP echo", "the echo workload's 64 B messages over 512 connections, served by one loop on "
        "CPU 0 or by two on CPUs 0 and 1 (examples/echo_server --threads 2: a loop per CPU, each with its own "
        "SO_REUSEPORT listener); the one-thread plain epoll server as the reference. nginx has no echo (nginx-light "
        "lacks the stream module), so the 2-worker comparison is the HTTP scaling workload's", "echo",
        [("weft-io_uring", "weft io_uring, 1 loop"), ("weft-io_uring-2", "weft io_uring, 2 loops"),
         ("weft-epoll", "weft epoll, 1 loop"), ("weft-epoll-2", "weft epoll, 2 loops"),
         ("epoll", "plain epoll (by hand, 1 thread)")],
        echo_metrics(),
        compare=[("weft-io_uring-2", "weft-io_uring"), ("weft-epoll-2", "weft-epoll"), ("weft-io_uring-2", "epoll"),
                 ("weft-io_uring", "epoll")],
        compared=["server_cpu_us_per_req", "req_per_s", "p99_us", "syscalls_per_req"],
        headline=[("weft-io_uring-2", "weft-io_uring"), ("weft-epoll-2", "weft-epoll")],
        targets=[Target("weft-io_uring-2", "req_per_s", ">=", 1.8,
                        "2 loops >= 1.8x the msg/s of 1 loop (io_uring; needs a load generator that is not the "
                        "bottleneck)", "weft-io_uring", table="scaling-echo-64B-512c-closed"),
                 Target("weft-io_uring-2", "server_cpu_us_per_req", "<=", 1.05,
                        "CPU/msg rises <= 5% from 1 to 2 loops (io_uring)", "weft-io_uring",
                        table="scaling-echo-64B-512c-rate")],
        notes=["This machine has 2 CPUs: a 2-loop server and the load generator share CPU 1, so the 2-loop closed-loop "
               "rates measure a server competing with its client for a CPU (see loadgen CPU use), and the 1.8x target "
               "cannot be established here; CPU per message at the fixed rate is the figure that transfers."],
        # Only when named (bench/run scaling, or scaling-echo), and in --full.
        plans={"named": Plan(4, 8, 50, configs=[(512, 64)], phases=["closed", "rate"], closed_rounds=3, warmup=0.2,
                             duration=0.4, rate_duration=0.6, syscall_window=0.25, rate_fraction=0.6),
               "full": Plan(5, 8, 80, configs=[(512, 64)], phases=["closed", "rate"], closed_rounds=4, warmup=0.2,
                            duration=0.5, rate_duration=0.8, syscall_window=0.25, rate_fraction=0.6)},
        placement="1-loop servers (and plain epoll) pinned to CPU 0, 2-loop servers to CPUs 0 and 1, the verifying "
                  "load generator (bench/echo/loadgen) to CPU 1"),
]

BY_NAME = {w.name: w for w in WORKLOADS}

# Names that stand for one or more workloads.
ALIASES = {"scaling": ["scaling", "scaling-echo"], "spawn+join": ["spawn"], "1m": ["tasks"], "1M": ["tasks"],
           "sync": ["chan", "mutex", "watchdog"], "exec": ["executor"], "io": ["nop", "deadline", "files", "files-parity", "files-fast", "files-buffered"],
           "fibers": ["switch", "yield", "spawn"], "trace": ["trace-yield", "trace-echo"]}

# What each mode may take in all (seconds, from the build's end to the report's): runner.py shares it out
# among the workloads by their budgets, so a busy machine (reruns, slower runs) costs rounds, not time.
LIMITS = {"quick": 45, "default": 236, "full": 1910}

MODES = {
    "quick": "under a minute: the microbenchmarks' shortest plans, 200,000 tasks, files at QD 32 on 256 MiB, echo "
             "64 B x 512 (weft both backends, plain epoll, plain liburing) closed loop and fixed rate with the CPU "
             "breakdown of weft's two backends; no HTTP (wrk runs whole seconds), no kv",
    "default": "about 4 minutes: every workload but files-parity, files-fast and files-buffered, echo 64 B x 512 with all six contenders, "
               "HTTP against nginx, weft-kv against redis-server at -P 1 and -P 16 (50 clients), the CPU breakdowns",
    "full": "every workload at its longest plan, echo at 1/64/512/10,000 connections x 64 B/4 KiB, kv at 50 and "
            "1,000 clients x -P 1/16 with 2 loops and memory per key (about 32 min)",
}


def resolve(names):
    """Workload names (aliases expanded) in registry order; raises KeyError on an unknown name."""
    want = []
    for n in names:
        for w in ALIASES.get(n, [n]):
            if w not in BY_NAME:
                raise KeyError(n)
            if w not in want:
                want.append(w)
    return [w for w in BY_NAME if w in want]


def in_mode(mode):
    """The workloads a mode runs when none is named."""
    return [w.name for w in WORKLOADS if mode in w.plans]


# ---- tables ---------------------------------------------------------------------------------------

def echo_table(conns, size, load, workload="echo"):
    return "%s-%dB-%dc-%s" % (workload, size, conns, load)


def table_workload(name):
    """The workload a table name belongs to (an echo-, kv- or static-file table's name starts with its
    workload's)."""
    for w in WORKLOADS:
        if w.kind in ("echo", "kv", "http_files") and name.startswith(w.name + "-"):
            return w.name
    return "compare" if name.startswith("compare-") else name


def kv_table(clients, pipeline):
    return "kv-P%d-%dc" % (pipeline, clients)


def compare_table(load):
    return "compare-%s" % load


# How far each table's ratios of a figure move from one run to the next beyond what a run's own rounds
# show: the standard deviation of their logarithms, which the intervals allow for (bench/stats.py). From the
# eight default runs of 2026-12-07 taken in pairs between 02:59 and 05:42 (four kept in bench/results/kept:
# 20261207T025950Z, 030337Z, 042439Z, 042824Z): bench/report.py --between over them. A table not here gets
# none: its rounds and the noise band cover it.
BETWEEN_RUNS = {
    "deadline": {"ns_per_op": 0.007},
    "echo-64B-512c-closed": {"p99_us": 0.007, "req_per_s": 0.020, "server_cpu_us_per_req": 0.024},
    "echo-64B-512c-rate": {"p99_us": 0.128, "server_cpu_us_per_req": 0.016, "syscalls_per_req": 0.033},
    "executor": {"jobs_per_s": 0.023, "rtt_p50": 0.003, "rtt_p50_same_cpu": 0.004},
    "files": {"iops_qd32": 0.022},
    # files-parity: three runs back to back on 2026-12-07 (07:14, 11:24, 11:39 UTC).
    "files-parity": {"iops_qd32": 0.011},
    "http": {"p99_us": 0.147, "req_per_s": 0.004, "syscalls_per_req": 0.058},
    "kv-P1-50c": {"p99_us": 0.026, "req_per_cpu_s": 0.010, "req_per_s": 0.009},
    "kv-P16-50c": {"p99_us": 0.033, "req_per_cpu_s": 0.031, "req_per_s": 0.028},
    "mutex": {"ns_per_lock": 0.017},
    "spawn": {"ns_per_spawn_join": 0.028},
    "switch": {"ns_per_switch": 0.016},
    "tasks": {"reap_ns_per_task": 0.035},
}


class Table:
    """What one table (and chart) shows: its workload's spec, narrowed to the table."""

    def __init__(self, name, wl, title, what, targets, contenders=None, compared=None, compare=None, metrics=None,
                 headline_metrics=None):
        self.name, self.workload, self.title, self.what = name, wl, title, what
        self.targets = targets
        self.contenders = contenders if contenders is not None else list(wl.contenders)
        self.labels = dict(self.contenders)
        self.metrics = metrics if metrics is not None else wl.metrics
        self.compared = compared if compared is not None else wl.compared
        self.compare = compare if compare is not None else wl.compare
        self.headline = [p for p in wl.headline if p in self.compare]
        # The figures whose headline pairs go to the verdict table at the top of the report.
        self.headline_metrics = headline_metrics if headline_metrics is not None else (
            wl.headline_metrics if wl.headline_metrics is not None else self.compared)
        self.placement = wl.placement
        self.between = BETWEEN_RUNS.get(name, {})  # metric -> between-run sd of its ratios' logarithms
        self.within = wl.within


def http_files_table(size):
    """The table (and file) name of the static-file workload for one file size: http-files-64KiB."""
    return "http-files-%s" % ("%dMiB" % (size >> 20) if size % (1 << 20) == 0 else
                              "%dKiB" % (size >> 10) if size % 1024 == 0 else "%dB" % size)


def table_spec(name):
    """The Table for a table name, or None for a name no workload makes."""
    m = re.match(r"^(echo|batched-wait|trace-echo|scaling-echo)-(\d+)B-(\d+)c-(closed|rate)$", name)
    if m:
        size, conns, load = int(m.group(2)), int(m.group(3)), m.group(4)
        wl = BY_NAME[m.group(1)]
        st = "%d KiB" % (size // 1024) if size % 1024 == 0 else "%d B" % size
        plural = "s" if conns != 1 else ""
        how = ("closed loop (each connection one message in flight): the maximum rate" if load == "closed" else
               "a fixed offered rate, the same for all (see the notes): server CPU per message")
        compared = (["req_per_s", "server_cpu_us_per_req", "p99_us"] if load == "closed" else
                    ["server_cpu_us_per_req", "syscalls_per_req", "p99_us"])
        return Table(name, wl, "%s %s x %s connection%s, %s" % (wl.title if wl.name != "echo" else "echo", st,
                                                                   "{:,}".format(conns), plural,
                                                                   "closed loop" if load == "closed" else "fixed rate"),
                     "TCP echo of %s messages over %s connection%s, %s" % (st, "{:,}".format(conns), plural, how),
                     [t for t in wl.targets if t.table == name], compared=compared,
                     # The verdict table takes the primary figure, CPU per message at the fixed rate; the
                     # closed loop's maximum rate (3 rounds) is judged in its own table.
                     headline_metrics=[] if load == "closed" else ["server_cpu_us_per_req"])
    m = re.match(r"^kv-P(\d+)-(\d+)c$", name)
    if m:
        pipeline, clients = int(m.group(1)), int(m.group(2))
        wl = BY_NAME["kv"]
        return Table(name, wl, "Redis protocol, -P %d, %s clients" % (pipeline, "{:,}".format(clients)),
                     "redis-benchmark -t set,get -P %d -c %d -d 16 -r 100000" % (pipeline, clients),
                     [t for t in wl.targets if t.table == name],
                     metrics={k: v for k, v in wl.metrics.items() if k != "rss_bytes_per_key"})
    if name == "kv-memory":
        wl = BY_NAME["kv"]
        return Table(name, wl, "Redis protocol: memory per key", "the server's RSS after SETs of a million "
                     "16-byte keys to 16-byte values, less its RSS before, per key (a fresh server each run)", [],
                     contenders=[c for c in wl.contenders if c[0] in ("weft-io_uring", "redis")],
                     compared=["rss_bytes_per_key"], compare=[("weft-io_uring", "redis")],
                     metrics={"rss_bytes_per_key": wl.metrics["rss_bytes_per_key"]},
                     headline_metrics=["rss_bytes_per_key"])
    m = re.match(r"^compare-(echo|http)(?:-(closed|rate))?$", name)
    if m:
        load, mode = m.group(1), m.group(2)
        wl = COMPARE
        return Table(name, wl, "your server under the %s load%s" % (load, ", " + mode if mode else ""),
                     "the command given to --compare, run with WEFT_BACKEND=io_uring and =epoll side by side",
                     [], compared=["server_cpu_us_per_req", "req_per_s", "p99_us", "syscalls_per_req"],
                     headline_metrics=(["req_per_s"] if mode == "closed" else ["server_cpu_us_per_req"] if mode else
                                       ["server_cpu_us_per_req", "req_per_s"]))
    m = re.match(r"^http-files-(\d+)(B|KiB|MiB)$", name)
    if m:
        wl = BY_NAME["http-files"]
        return Table(name, wl, "%s, %s %s files" % (wl.title, m.group(1), m.group(2)),
                     "%s; the file is %s %s" % (wl.what, m.group(1), m.group(2)), [])
    wl = BY_NAME.get(name)
    if wl:
        return Table(name, wl, wl.title, wl.what, [t for t in wl.targets if not t.table or t.table == name])
    return None


# The user's own server (bench/run --compare): two contenders, the same command on each backend.
COMPARE = Workload(
    "compare", "your server command on WEFT_BACKEND=io_uring and =epoll", "your server", "your server", "compare",
    [("io_uring", "WEFT_BACKEND=io_uring"), ("epoll", "WEFT_BACKEND=epoll")],
    dict(net_metrics("request", "load generator")), compare=[("io_uring", "epoll")],
    compared=["server_cpu_us_per_req", "req_per_s", "p99_us", "syscalls_per_req"],
    plans={"quick": Plan(3, 5, 25, warmup=0.2, duration=0.4, rate_duration=0.6, syscall_window=0.2, closed_rounds=2,
                         rate_fraction=0.6, profile_window=0.6),
           "default": Plan(5, 10, 60, warmup=0.2, duration=0.5, rate_duration=0.8, syscall_window=0.25, closed_rounds=3,
                           rate_fraction=0.6, profile_window=1.0),
           "full": Plan(8, 15, 150, warmup=0.3, duration=1.0, rate_duration=1.0, syscall_window=0.3, closed_rounds=4,
                        rate_fraction=0.6, profile_window=1.0)},
    placement="server pinned to CPU 0, the load generator to CPU 1", profile=True)


def base_contender(name):
    """A contender's name without the build it ran from ("weft@baseline" -> "weft")."""
    return name.split("@", 1)[0]


def label(table, contender):
    base, _, build = contender.partition("@")
    text = table.labels.get(base, base) if table else base
    return text + (" @" + build if build else "")
