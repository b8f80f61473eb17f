#!/usr/bin/env python3
"""Aggregates the figures bench/run collected: tables, the results JSON, and gnuplot charts.

Python standard library only. The benchmark programs print one JSON object per line (see bench/fiber.c):
  {"type":"sample","workload":W,"contender":C,"round":R,"metric":M,"unit":U,"value":V,...}
  {"type":"failure","workload":W,"contender":C|"*","round":R,"reason":"..."}
  {"type":"meta",...}
bench/run appends them all to one raw file, then calls
  report.py table RAW WORKLOAD       after each workload: prints its table
  report.py finish RAW --json OUT --charts PREFIX [--mode M] [--started T] [--duration S] [--args "..."]
                                     at the end: writes the results JSON and one PNG per workload

Every figure is the median over rounds, with min–max; a ratio is taken pair by pair (the same round of
both contenders, run back to back) and the median of those ratios is shown. A contender listed in
WORKLOADS that has no figures is shown as failed, with the reason, never dropped.

To add a workload: add an entry to WORKLOADS (and a function to bench/run). A workload nobody described
yet still gets a table and a chart, made up from its records.

A meta record may carry "workload" and "note": the note is printed under that workload's table (what
the run's settings were, e.g. a smaller file in --quick).
"""
import argparse
import datetime
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap

# ----------------------------------------------------------------------------------------------------
# What each workload measures, who competes, what is compared with what, and the targets.
#   contenders: in table order; each is shown even when it produced nothing
#   metrics:    name -> label, better ("lower"/"higher"), chart (draw a panel in the PNG)
#   ratios:     reference contenders: a column "vs REF" = how many times faster than REF, per metric
#               whose better is set (lower: REF/contender; higher: contender/REF)
#   targets:    {contender, metric, and one of: at_most V, at_least V, faster_than REF + at_least X (X times
#               faster than REF), within X + of REF (no worse than X times REF's figure; shown as the
#               contender's figure over REF's, e.g. 1.05x)}
# ----------------------------------------------------------------------------------------------------
def net_metrics(request, client):
    """The metrics of a network workload (echo, http): what `request` is called, and the load generator
    that measures the rate and latency."""
    return {
        "req_per_s": {"label": f"{request}s per second ({client})", "short": "req/s", "better": "higher",
                      "chart": True},
        "server_cpu_us_per_req": {"label": f"server CPU time per {request}", "short": "CPU us/req",
                                  "better": "lower", "chart": True},
        "syscalls_per_req": {"label": f"server system calls per {request}", "short": "syscalls/req",
                             "better": "lower", "chart": True},
        **{f"{p}_us": {"label": f"latency {q} ({client})", "short": f"{q} us", "better": "lower", "chart": p == "p99"}
           for p, q in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"))},
        "server_cpu_util": {"label": "server CPU use", "short": "server CPU", "better": None, "percent": True},
    }


def files_spec(title, what, targets):
    """The files workloads (O_DIRECT and buffered): the same contenders, metrics and reference."""
    return {
        "title": title,
        "what": what,
        "split_qd": True,
        "contenders": ["weft-io_uring", "weft-io_uring-eager", "weft-epoll", "fio-io_uring", "fio-libaio", "fio-psync"],
        "labels": {"weft-io_uring": "weft\nio_uring", "weft-io_uring-eager": "weft io_uring\nsubmit 1,\npoll 200 µs",
                   "weft-epoll": "weft epoll\n(executor)",
                   "fio-io_uring": "fio\nio_uring", "fio-libaio": "fio\nlibaio", "fio-psync": "fio psync\n(≤4 jobs)"},
        "metrics": {
            **{f"iops_qd{q}": {"label": f"IOPS at QD {q}", "better": "higher", "chart": True} for q in (1, 32, 128)},
            **{f"syscalls_per_read_qd{q}": {"label": f"weft's syscalls per read, QD {q}", "better": "lower"}
               for q in (1, 32, 128)},
            **{f"cpu_us_per_read_qd{q}": {"label": f"CPU µs per read, QD {q} (process; fio: its usr+sys)",
                                          "short": f"CPU µs/read QD {q}", "better": "lower"}
               for q in (1, 32, 128)},
        },
        "ratios": ["fio-libaio"],
        "targets": targets,
    }


WORKLOADS = {
    "switch": {
        "title": "context switch",
        "what": "one context switch: ping-pong between the thread and one fiber",
        "contenders": ["weft", "fcontext", "swapcontext"],
        "labels": {"weft": "weft (weft__ctx_switch)", "fcontext": "boost.context fcontext",
                   "swapcontext": "glibc swapcontext"},
        "metrics": {"ns_per_switch": {"label": "ns per switch", "better": "lower", "chart": True}},
        "ratios": ["fcontext", "swapcontext"],
        "targets": [
            {"contender": "weft", "metric": "ns_per_switch", "faster_than": "fcontext", "at_least": 1.0,
             "text": "weft no slower than fcontext (>= 1.0x)"},
            {"contender": "weft", "metric": "ns_per_switch", "faster_than": "swapcontext", "at_least": 45,
             "text": "weft >= 45x faster than swapcontext"},
        ],
    },
    "yield": {
        "title": "yield through the scheduler",
        "what": "weft_yield between two tasks through the scheduler",
        "contenders": ["weft", "ctx-switch"],
        "labels": {"weft": "weft_yield", "ctx-switch": "bare weft__ctx_switch\n(no scheduler: reference)"},
        "metrics": {"ns_per_yield": {"label": "ns per yield", "better": "lower", "chart": True}},
        "ratios": ["ctx-switch"],
        "targets": [
            {"contender": "weft", "metric": "ns_per_yield", "at_most": 10, "text": "weft_yield <= 10 ns"},
        ],
    },
    "spawn": {
        "title": "spawn + join",
        "what": "spawn an empty task and join it",
        "contenders": ["weft", "pthread"],
        "labels": {"weft": "weft_spawn + weft_join", "pthread": "pthread_create + pthread_join"},
        "metrics": {"ns_per_spawn_join": {"label": "ns per spawn+join", "better": "lower", "chart": True}},
        "ratios": ["pthread"],
        "targets": [
            {"contender": "weft", "metric": "ns_per_spawn_join", "at_most": 60, "text": "weft spawn+join <= 60 ns"},
            {"contender": "weft", "metric": "ns_per_spawn_join", "faster_than": "pthread", "at_least": 300,
             "text": "weft >= 300x faster than pthread"},
        ],
    },
    "tasks": {
        "title": "1,000,000 live tasks",
        "what": "1M tasks alive at once (parked in weft_sleep, or in weft_await of a future never resolved)",
        "contenders": ["weft-sleep", "weft-await"],
        "labels": {"weft-sleep": "weft, tasks in weft_sleep", "weft-await": "weft, tasks in weft_await"},
        "metrics": {
            "create_ms": {"label": "create (spawn + first run), ms for all tasks", "better": "lower", "chart": True},
            "create_ns_per_task": {"label": "create, ns per task", "better": "lower"},
            "reap_ms": {"label": "reap (cancel + join), ms for all tasks", "better": "lower", "chart": True},
            "reap_ns_per_task": {"label": "reap, ns per task", "better": "lower"},
            "rss_kib_per_task": {"label": "RSS per task, KiB", "better": "lower", "chart": True},
            "pte_bytes_per_task": {"label": "page tables per task, bytes", "better": "lower", "chart": True},
            "vmas": {"label": "mappings (VMAs) with all alive", "better": "lower"},
            "stacks_mapped": {"label": "stacks mapped", "better": None},
            "tasks_peak": {"label": "peak live tasks", "better": None},
        },
        "ratios": [],
        "targets": [
            {"contender": "weft-sleep", "metric": "rss_kib_per_task", "at_most": 12, "text": "RSS <= 12 KiB/task (sleep)"},
            {"contender": "weft-await", "metric": "rss_kib_per_task", "at_most": 12, "text": "RSS <= 12 KiB/task (await)"},
        ],
    },
    "nop": {
        "title": "one trip through the ring",
        "what": "a NOP through weft (submit, park, CQE, resume) vs the same NOP on raw liburing, one submit-and-wait each",
        "contenders": ["weft", "liburing"],
        "labels": {"weft": "weft_nop in a task", "liburing": "raw liburing\nio_uring_submit_and_wait"},
        "metrics": {
            "ns_per_op": {"label": "ns per NOP", "better": "lower", "chart": True},
            "syscalls_per_op": {"label": "system calls per NOP (weft's counter)", "better": "lower"},
        },
        "ratios": ["liburing"],
        "targets": [
            {"contender": "weft", "metric": "ns_per_op", "within": 1.15, "of": "liburing",
             "text": "weft NOP <= 1.15x liburing's time"},
        ],
    },
    "deadline": {
        "title": "what a deadline adds to a call",
        "what": "a recv that goes async (its data comes from a send submitted with it), without and with a 10 s "
                "deadline: weft's timer in the loop's heap vs an IORING_OP_LINK_TIMEOUT SQE on raw liburing",
        "contenders": ["weft", "weft-deadline", "liburing", "liburing-linked"],
        "labels": {"weft": "weft\nno deadline", "weft-deadline": "weft\nweft_deadline_push",
                   "liburing": "raw liburing\nno timeout", "liburing-linked": "raw liburing\nlinked timeout"},
        "metrics": {
            "ns_per_op": {"label": "ns per recv + send", "better": "lower", "chart": True},
            "deadline_ns": {"label": "ns the deadline adds (with minus without, per round)", "short": "added ns",
                            "better": "lower", "chart": True},
        },
        "ratios": ["liburing"],
        "targets": [],
    },
    "files": files_spec(
        "4 KiB random reads, O_DIRECT",
        "4 KiB random reads, O_DIRECT, one thread: weft_read_async vs fio (io_uring, libaio, psync)",
        [{"contender": "weft-io_uring", "metric": "iops_qd32", "faster_than": "fio-libaio", "at_least": 1.0,
          "text": "weft (io_uring) >= 1.0x fio libaio at QD 32"},
         {"contender": "weft-io_uring-eager", "metric": "iops_qd32", "faster_than": "fio-libaio", "at_least": 1.0,
          "text": "weft (io_uring, submit_batch 1, idle poll 200 us) >= 1.0x fio libaio at QD 32"}]),
    "files-buffered": files_spec(
        "4 KiB random reads, buffered, file in the page cache",
        "4 KiB random reads through the page cache (file cached), one thread: weft vs fio",
        []),
    "executor": {
        "title": "executor: empty jobs",
        "placement": "loop (or calling thread) pinned to CPU 0, workers as labelled",
        "what": "an empty job on another thread: weft's executor (1 worker for latency, 1 per CPU for jobs/s) vs pthread code by hand",
        "contenders": ["weft-io_uring", "weft-epoll", "pthread"],
        "labels": {"weft-io_uring": "weft on io_uring", "weft-epoll": "weft on epoll",
                   "pthread": "pthread by hand\n(mutex + condvars)"},
        "metrics": {
            "rtt_p50": {"label": "round trip p50, worker on CPU 1", "better": "lower", "chart": True},
            "rtt_p99": {"label": "round trip p99, worker on CPU 1", "better": "lower"},
            "rtt_p50_same_cpu": {"label": "round trip p50, worker on CPU 0 too", "better": "lower", "chart": True},
            "rtt_p99_same_cpu": {"label": "round trip p99, worker on CPU 0 too", "better": "lower"},
            "jobs_per_s": {"label": "jobs/s, 256 in flight, workers on CPU 1", "better": "higher", "chart": True},
            "jobs_per_s_same_cpu": {"label": "jobs/s, 256 in flight, workers on CPU 0 too", "better": "higher",
                                    "chart": True},
            "syscalls_per_rtt": {"label": "weft loop syscalls per round trip (CPU 1)", "better": "lower"},
            "syscalls_per_job": {"label": "weft loop syscalls per job (jobs/s, CPU 1)", "better": "lower"},
        },
        "ratios": ["pthread"],
        "targets": [
            {"contender": "weft-io_uring", "metric": "rtt_p50", "within": 1.1, "of": "pthread",
             "text": "weft p50 <= 1.1x ping-pong's (worker on CPU 1)"},
            {"contender": "weft-io_uring", "metric": "rtt_p50_same_cpu", "within": 1.1, "of": "pthread",
             "text": "weft p50 <= 1.1x ping-pong's (worker on CPU 0)"},
        ],
    },
    "chan": {
        "title": "channel send + recv",
        "what": "weft_chan_send + weft_chan_recv between two tasks, per item",
        "contenders": ["cap0", "cap64"],
        "labels": {"cap0": "capacity 0\n(rendezvous)", "cap64": "capacity 64"},
        "metrics": {"ns_per_item": {"label": "ns per item", "better": "lower", "chart": True}},
        "ratios": [],
        "targets": [],
    },
    "mutex": {
        "title": "mutex lock + unlock",
        "what": "weft_mutex_lock + unlock: one task alone, and 4 tasks that yield while holding it",
        "contenders": ["uncontended", "contended", "yield-only"],
        "labels": {"uncontended": "uncontended\n(lock + unlock, 1 task)", "contended": "contended, per hand-off\n(4 tasks: lock, yield, unlock)",
                   "yield-only": "reference: the same 4 tasks\nwithout the mutex (yield)"},
        "metrics": {"ns_per_lock": {"label": "ns per lock", "better": "lower", "chart": True}},
        "ratios": [],
        "targets": [],
    },
    "watchdog": {
        "title": "cost of the slow-task watchdog",
        "what": "weft_yield between two tasks with the slow-task watchdog on (default) and off (slow_task_ns = UINT64_MAX)",
        "contenders": ["watchdog-on", "watchdog-off"],
        "labels": {"watchdog-on": "watchdog on\n(default, 100 ms)", "watchdog-off": "watchdog off\n(slow_task_ns = UINT64_MAX)"},
        "metrics": {"ns_per_yield": {"label": "ns per yield", "better": "lower", "chart": True}},
        "ratios": ["watchdog-off"],
        "targets": [],
    },
    "http": {
        "title": "HTTP/1.1 plaintext, keep-alive",
        "what": "HTTP/1.1 keep-alive GET / answered with \"Hello, World!\", wrk -t 1 -c 256: weft's "
                "examples/http_server (io_uring, epoll) vs nginx with one worker",
        "placement": "server pinned to CPU 0, wrk (1 thread, 256 connections) to CPU 1",
        "contenders": ["weft-io_uring", "weft-epoll", "nginx"],
        "labels": {"weft-io_uring": "weft http_server\nio_uring", "weft-epoll": "weft http_server\nepoll",
                   "nginx": "nginx\n(one worker)"},
        "metrics": {
            "req_per_s": {},  # (first: the panels' order)
            "req_per_cpu_s": {"label": "requests per server-CPU-second", "short": "req/CPU-s", "better": "higher",
                              "chart": True},
            **net_metrics("request", "wrk"),
            "server_cpu_us_per_req": {"label": "server CPU time per request", "short": "CPU us/req", "better": "lower"},
            "wrk_cpu_util": {"label": "wrk CPU use", "short": "wrk CPU", "better": None, "percent": True},
        },
        "ratios": ["nginx"],
        "table": {"ranges": ["req_per_s", "req_per_cpu_s"], "ratio_of": "req_per_cpu_s",
                  "singles": ["server_cpu_us_per_req", "syscalls_per_req", "p50_us", "p99_us", "server_cpu_util",
                              "wrk_cpu_util"]},
        "targets": [
            {"contender": "weft-io_uring", "metric": "req_per_cpu_s", "faster_than": "nginx", "at_least": 1.3,
             "text": "weft (io_uring) >= 1.3x nginx's req per server-CPU-s"},
        ],
    },
}
# Workloads named by their parameters, "<prefix><parameters>": the spec is made from the name.
PREFIXED = {}  # prefix -> function(name) returning a spec, or None if the name does not parse
# The order of the tables at the end; "echo" stands for every echo-* workload.
ORDER = [w for w in WORKLOADS if w != "http"] + ["echo", "http"]


def echo_spec(name):
    """echo-<S>B-<N>c-<closed|rate>, as bench/echo/drive.py names them."""
    m = re.match(r"^echo-(\d+)B-(\d+)c-(closed|rate)$", name)
    if not m:
        return None
    size, conns, mode = int(m.group(1)), int(m.group(2)), m.group(3)
    size_text = f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"
    how = "closed loop (each connection one message in flight): maximum rate" if mode == "closed" else \
        "fixed offered rate (the same for all, see the note): server CPU per message"
    return {
        "title": f"echo {size_text} x {conns:,} connection{'s' if conns != 1 else ''}, "
                 f"{'closed loop' if mode == 'closed' else 'fixed rate'}",
        "what": f"TCP echo of {size_text} messages over {conns:,} connection{'s' if conns != 1 else ''}, {how}; "
                f"weft (io_uring, epoll) vs hand-written epoll and liburing loops, Python asyncio and uvloop",
        "placement": "server pinned to CPU 0, the verifying load generator (bench/echo/loadgen) to CPU 1",
        "contenders": ["weft-io_uring", "weft-epoll", "epoll", "liburing", "asyncio", "uvloop"],
        "labels": {"weft-io_uring": "weft\nio_uring", "weft-epoll": "weft\nepoll", "epoll": "plain epoll\n(by hand)",
                   "liburing": "plain liburing\n(by hand)", "asyncio": "Python\nasyncio", "uvloop": "Python\nuvloop"},
        "metrics": {
            **net_metrics("round trip", "loadgen"),
            "loadgen_cpu_util": {"label": "load generator CPU use", "short": "loadgen CPU", "better": None,
                                 "percent": True},
        },
        # weft-epoll's reference is the epoll loop, weft-io_uring's the liburing one; both columns are shown
        "ratios": ["epoll", "liburing"],
        "table": {"ranges": ["req_per_s", "server_cpu_us_per_req"], "ratio_of": "server_cpu_us_per_req",
                  "singles": ["syscalls_per_req", "p99_us", "server_cpu_util", "loadgen_cpu_util"]},
        # The goals, for 64 B x 512 connections: server CPU per request against the hand-written loops.
        "targets": [
            {"contender": "weft-io_uring", "metric": "server_cpu_us_per_req", "within": 0.85, "of": "epoll",
             "text": "weft (io_uring) CPU/req <= 0.85x plain epoll's"},
            {"contender": "weft-io_uring", "metric": "server_cpu_us_per_req", "within": 1.05, "of": "liburing",
             "text": "weft (io_uring) CPU/req <= 1.05x plain liburing's"},
            {"contender": "weft-epoll", "metric": "server_cpu_us_per_req", "within": 1.05, "of": "epoll",
             "text": "weft (epoll) CPU/req <= 1.05x plain epoll's"},
        ] if (size, conns) == (64, 512) else [],
    }


PREFIXED["echo-"] = echo_spec


# ----------------------------------------------------------------------------------------------------
# Reading and summarising
# ----------------------------------------------------------------------------------------------------

KINDS = ("sample", "failure", "meta")  # the records read; a driver's own (type "echo", "http") are not


def read_records(path):
    recs = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass
    return recs


def spec_for(name, recs):
    """The WORKLOADS entry, or one made up from the records of a workload nobody described yet."""
    if name in WORKLOADS:
        return WORKLOADS[name]
    for prefix, make in PREFIXED.items():
        spec = make(name) if name.startswith(prefix) else None
        if spec:
            return spec
    contenders, metrics = [], {}
    for r in recs:
        if r.get("workload") != name:
            continue
        c = r.get("contender")
        if c and c != "*" and c not in contenders:
            contenders.append(c)
        if r.get("type") == "sample" and r["metric"] not in metrics:
            metrics[r["metric"]] = {"label": r["metric"], "better": "lower", "chart": True}
    return {"title": name, "what": name, "contenders": contenders, "labels": {}, "metrics": metrics,
            "ratios": [], "targets": [], "placement": "placement: see the workload's program"}


def normalise(name, spec, recs):
    """The records of workload name as its table wants them. With split_qd, a contender "X-qdN" becomes
    contender X and its metric M becomes M_qdN, so each queue depth is a group of rows (and a chart
    panel) with the same contenders; weft's syscalls_per_read (a field of its samples) becomes a metric
    of its own, and a failure keeps its queue depth (field "qd")."""
    mine = [r for r in recs if r.get("workload") == name]
    if not spec.get("split_qd"):
        return mine
    out = []
    for r in mine:
        m = re.match(r"^(.*)-qd(\d+)$", str(r.get("contender") or ""))
        if not m:
            out.append(r)
            continue
        c, q = m.group(1), int(m.group(2))
        r = dict(r, contender=c, qd=q)
        if r.get("type") == "sample":
            out.append(dict(r, metric=f"{r['metric']}_qd{q}"))
            if isinstance(r.get("syscalls_per_read"), (int, float)):
                out.append(dict(r, metric=f"syscalls_per_read_qd{q}", unit="calls", value=r["syscalls_per_read"]))
            if isinstance(r.get("cpu_us_per_read"), (int, float)):
                out.append(dict(r, metric=f"cpu_us_per_read_qd{q}", unit="us", value=r["cpu_us_per_read"]))
        elif r.get("type") == "failure":
            reason = str(r.get("reason", ""))
            if not reason.startswith(f"qd {q}"):
                reason = f"qd {q}: {reason}"
            out.append(dict(r, reason=reason))
        else:
            out.append(r)
    return out


def summarise(name, recs):
    spec = spec_for(name, recs)
    notes = [str(r["note"]) for r in recs if r.get("type") == "meta" and r.get("workload") == name and r.get("note")]
    mine = normalise(name, spec, recs)
    samples = [r for r in mine if r.get("type") == "sample"]
    failures = [r for r in mine if r.get("type") == "failure"]
    # A driver run on purpose with fewer contenders (echo in --quick) says which in a meta record: the
    # others were not left out by a failure.
    chosen = next((r["contenders"] for r in recs if r.get("type") == "meta" and r.get("workload") == name
                   and isinstance(r.get("contenders"), list)), None)
    contenders = [c for c in spec["contenders"] if chosen is None or c in chosen]
    if chosen is not None and len(contenders) < len(spec["contenders"]):
        notes.append("not run (left out on purpose): " +
                     ", ".join(c for c in spec["contenders"] if c not in contenders))
    for r in samples + failures:  # contenders the spec does not know yet still show
        c = r.get("contender")
        if c and c != "*" and c not in contenders:
            contenders.append(c)
    metrics = dict(spec["metrics"])
    for r in samples:
        metrics.setdefault(r["metric"], {"label": r["metric"], "better": "lower", "chart": True})

    out = {"title": spec["title"], "what": spec["what"], "contenders": {}, "targets": [], "notes": notes,
           "placement": spec.get("placement", "pinned to CPU 0"), "split_qd": bool(spec.get("split_qd"))}
    by = {}  # (contender, metric) -> {round: value}
    units = {}
    for r in samples:
        by.setdefault((r["contender"], r["metric"]), {})[r["round"]] = r["value"]
        units[r["metric"]] = r.get("unit", "")
    global_fail = [f["reason"] for f in failures if f.get("contender") == "*"]
    for c in contenders:
        fails = [{"round": f.get("round", 0), "reason": f["reason"], **({"qd": f["qd"]} if "qd" in f else {})}
                 for f in failures if f.get("contender") == c]
        have = any(k[0] == c for k in by)
        entry = {"label": spec["labels"].get(c, c), "failures": fails, "metrics": {}}
        if not have:
            reason = fails[0]["reason"] if fails else (global_fail[0] if global_fail else "no figures (did not run)")
            entry.update(status="failed", reason=reason)
        else:
            entry["status"] = "ok" if not fails else "partial"
        for m in metrics:
            vals = by.get((c, m))
            if not vals:
                continue
            v = [vals[k] for k in sorted(vals)]
            ms = {"unit": units.get(m, ""), "rounds": sorted(vals), "values": v,
                  "median": statistics.median(v), "min": min(v), "max": max(v), "ratios": {}}
            better = metrics[m].get("better")
            for ref in spec["ratios"]:
                rv = by.get((ref, m))
                if not rv or not better:
                    continue
                pairs = [(vals[k], rv[k]) for k in sorted(vals) if k in rv and vals[k] > 0 and rv[k] > 0]
                if not pairs:
                    continue
                rs = [(b / a) if better == "lower" else (a / b) for a, b in pairs]
                ms["ratios"][ref] = {"median": statistics.median(rs), "min": min(rs), "max": max(rs), "pairs": len(rs)}
            entry["metrics"][m] = ms
        out["contenders"][c] = entry
    out["metric_info"] = {m: {"label": metrics[m]["label"], "better": metrics[m].get("better"),
                              "chart": bool(metrics[m].get("chart")), "unit": units.get(m, ""),
                              "short": metrics[m].get("short", metrics[m]["label"]),
                              "percent": bool(metrics[m].get("percent"))} for m in metrics}
    out["ratios"] = list(spec["ratios"])
    if spec.get("table"):
        out["table"] = spec["table"]

    for t in spec["targets"]:
        c, m = t["contender"], t["metric"]
        cm = out["contenders"].get(c, {}).get("metrics", {}).get(m)
        res = dict(t)
        if "faster_than" in t:
            rr = cm["ratios"].get(t["faster_than"]) if cm else None
            value = rr["median"] if rr else None
            res["unit"] = "x"
        elif "within" in t:
            rr = cm["ratios"].get(t["of"]) if cm else None
            value = 1 / rr["median"] if rr else None
            res["unit"] = "x"
        else:
            value = cm["median"] if cm else None
            res["unit"] = cm["unit"] if cm else units.get(m, "")
        res["value"] = value
        if value is None:
            res["met"] = None
        elif "at_most" in t:
            res["met"] = value <= t["at_most"]
        elif "within" in t:
            res["met"] = value <= t["within"]
        else:
            res["met"] = value >= t["at_least"]
        out["targets"].append(res)
    return out


# ----------------------------------------------------------------------------------------------------
# Formatting
# ----------------------------------------------------------------------------------------------------

def fnum(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    a = abs(v)
    if isinstance(v, int) and a >= 10:
        return f"{v:,}"
    if a >= 100:  # thousands separated whether or not the figure is a whole number (9,100 - 9,100.4)
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fratio(r):
    if r is None:
        return "-"
    if r >= 100:
        return f"{r:.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    if r >= 0.1:
        return f"{r:.2f}x"
    return f"{r:.3f}x"


def target_desc(t):
    if "at_most" in t:
        return f"<= {fnum(t['at_most'])}"
    if "within" in t:
        return f"within {fnum(t['within'])}x of {t['of']}"
    if "faster_than" in t:
        return f">= {fnum(t['at_least'])}x faster than {t['faster_than']}"
    return f">= {fnum(t['at_least'])}"


def render_table(name, s):
    if s.get("table"):
        return render_wide(name, s)
    lines = []
    rounds = max((len(ms["values"]) for e in s["contenders"].values() for ms in e["metrics"].values()), default=0)
    how = f"{rounds} round{'s' if rounds != 1 else ''}; median, min-max"
    if s["ratios"]:
        how += "; vs X: times faster than X, median of per-round pairs"
    lines.append(f"{name}: {s['what']}  ({how})")
    metrics = [m for m in s["metric_info"] if any(m in e["metrics"] for e in s["contenders"].values())]
    if not metrics:
        metrics = list(s["metric_info"])
    multi = len(metrics) > 1 or bool(s.get("split_qd"))  # a queue depth is always named
    header = (["metric"] if multi else []) + ["contender", "median", "min-max", "n"] + [f"vs {r}" for r in s["ratios"]]
    rows = []  # a list of cells, or ("FAILED", metric cell, contender, reason)
    for mi, m in enumerate(metrics):
        info = s["metric_info"][m]
        unit = info["unit"]
        label = info["label"] if multi else None
        for c, e in s["contenders"].items():
            ms = e["metrics"].get(m)
            if not ms:
                qm = re.search(r"_qd(\d+)$", m)
                at_qd = [f for f in e["failures"] if qm and f.get("qd") == int(qm.group(1))]
                if e["status"] == "failed" and (mi == 0 or multi):
                    rows.append(("FAILED", label, c, at_qd[0]["reason"] if at_qd else e["reason"]))
                elif at_qd and multi:
                    rows.append(("FAILED", label, c, at_qd[0]["reason"]))
                continue
            row = ([label] if multi else []) + [c, f"{fnum(ms['median'])} {unit}".strip(),
                                                  f"{fnum(ms['min'])} - {fnum(ms['max'])}", str(len(ms["values"]))]
            for ref in s["ratios"]:
                rr = ms["ratios"].get(ref)
                row.append("1.00x (ref)" if c == ref and rr else (fratio(rr["median"]) if rr else "-"))
            rows.append(row)
    cells = [r for r in rows if not isinstance(r, tuple)]
    widths = [max([len(header[i])] + [len(r[i]) for r in cells]) for i in range(len(header))]
    if multi:
        widths[0] = max([widths[0]] + [len(r[1]) for r in rows if isinstance(r, tuple)])
    widths[1 if multi else 0] = max([widths[1 if multi else 0]] + [len(r[2]) for r in rows if isinstance(r, tuple)])

    def fmt_row(r):
        if isinstance(r, tuple):
            lead = [r[1].ljust(widths[0])] if multi else []
            return "  " + "  ".join(lead + [r[2].ljust(widths[1 if multi else 0]), f"FAILED: {r[3]}"])
        out = []
        for i, cell in enumerate(r):
            left = i == 0 or (multi and i == 1)
            out.append(cell.ljust(widths[i]) if left else cell.rjust(widths[i]))
        return "  " + "  ".join(out).rstrip()

    lines.append(fmt_row(header))
    lines.append("  " + "  ".join("-" * w for w in widths))
    prev = None
    for r in rows:
        if multi and r[0 if not isinstance(r, tuple) else 1] == prev:  # the metric once per group
            r = ("FAILED", "", r[2], r[3]) if isinstance(r, tuple) else [""] + r[1:]
        else:
            prev = r[0 if not isinstance(r, tuple) else 1]
        lines.append(fmt_row(r))
    return "\n".join(lines + table_footer(s))


def table_footer(s):
    """The lines under a table: rounds that failed, targets, notes."""
    lines = []
    for c, e in s["contenders"].items():
        if e["status"] == "partial":
            fl = "; ".join(f"round {f['round']}: {f['reason']}" for f in e["failures"][:3])
            lines.append(f"  {c}: {len(e['failures'])} round(s) failed - {fl}")
    for t in s["targets"]:
        val = "-" if t["value"] is None else (fratio(t["value"]) if t["unit"] == "x" else f"{fnum(t['value'])} {t['unit']}".strip())
        verdict = "n/a (no figure)" if t["met"] is None else ("met" if t["met"] else "NOT MET")
        lines.append(f"  target: {t['text']:<44} {val:>12}  {verdict}")
    for n in s.get("notes", []):
        lines.append(f"  note: {n}")
    return lines


def render_wide(name, s):
    """A row per contender (the spec's "table"): the "ranges" metrics as median and min-max, the ratio of
    "ratio_of" to each reference, then the medians of the "singles"."""
    t, info = s["table"], s["metric_info"]
    rounds = max((len(ms["values"]) for e in s["contenders"].values() for ms in e["metrics"].values()), default=0)
    ratio_m = t.get("ratio_of")
    lines = [f"{name}: {s['what']}"]
    how = f"  {rounds} round{'s' if rounds != 1 else ''}; median, min-max; one column: the median"
    if ratio_m and s["ratios"]:
        short = info[ratio_m]["short"]
        how += "; vs X: " + (f"X's {short} over this one's" if info[ratio_m]["better"] == "lower" else
                             f"this one's {short} over X's")
        how += " (above 1x: better than X), median of per-round pairs"
    lines.append(how)

    def one(m, v):
        if info[m].get("percent"):
            return f"{100 * v:.0f}%"
        return fnum(v)

    header, right = ["contender"], []
    for m in t["ranges"]:
        header += [info[m]["short"], "min-max"]
    header += [f"{info[ratio_m]['short'] if i == 0 else ''} vs {r}".strip() for i, r in enumerate(s["ratios"])] if ratio_m else []
    header += [info[m]["short"] for m in t["singles"]]
    header.append("n")
    rows = []
    for c, e in s["contenders"].items():
        if e["status"] == "failed":
            rows.append((c, e["reason"]))
            continue
        row = [c]
        for m in t["ranges"]:
            ms = e["metrics"].get(m)
            row += [one(m, ms["median"]), f"{one(m, ms['min'])} - {one(m, ms['max'])}"] if ms else ["-", "-"]
        if ratio_m:
            ms = e["metrics"].get(ratio_m)
            for ref in s["ratios"]:
                rr = ms["ratios"].get(ref) if ms else None
                row.append("1.00x (ref)" if c == ref and rr else (fratio(rr["median"]) if rr else "-"))
        for m in t["singles"]:
            ms = e["metrics"].get(m)
            row.append(one(m, ms["median"]) if ms else "-")
        row.append(str(max((len(ms["values"]) for ms in e["metrics"].values()), default=0)))
        rows.append(row)
    cells = [r for r in rows if isinstance(r, list)]
    widths = [max([len(header[i])] + [len(r[i]) for r in cells]) for i in range(len(header))]
    widths[0] = max([widths[0]] + [len(r[0]) for r in rows])
    lines.append("  " + "  ".join(h.ljust(widths[i]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header)).rstrip())
    lines.append("  " + "  ".join("-" * w for w in widths))
    for r in rows:
        if isinstance(r, tuple):
            lines.append(f"  {r[0].ljust(widths[0])}  FAILED: {r[1]}")
        else:
            lines.append("  " + "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                                          for i, cell in enumerate(r)).rstrip())
    return "\n".join(lines + table_footer(s))


# ----------------------------------------------------------------------------------------------------
# Machine and charts
# ----------------------------------------------------------------------------------------------------

def machine_info():
    info = {"nproc": len(os.sched_getaffinity(0)), "kernel": os.uname().release, "arch": os.uname().machine}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["mem_total_gib"] = round(int(line.split()[1]) / 1048576, 1)
    except OSError:
        pass
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    info["os"] = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return info


def gp_str(s):
    """A gnuplot double-quoted string; a newline in s becomes a line break."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def chart(name, s, machine, png, when):
    """One PNG per workload: a panel per charted metric, a bar per contender (median), whiskers min-max."""
    metrics = [m for m, i in s["metric_info"].items() if i["chart"]]
    if not metrics:
        return False
    contenders = list(s["contenders"])
    cols = min(len(metrics), 2)
    rows = math.ceil(len(metrics) / cols)
    width = max(900, 620 * cols)
    height = 470 * rows + 90
    rounds = max((len(ms["values"]) for e in s["contenders"].values() for ms in e["metrics"].values()), default=0)
    tmp = tempfile.mkdtemp(prefix="weft-chart-")
    try:
        script = [
            "set encoding utf8",
            f"set terminal pngcairo size {width},{height} font 'DejaVu Sans,10' noenhanced",
            f"set output {gp_str(png)}",
            "set style fill solid 0.75 border -1",
            "set boxwidth 0.55",
            "set grid ytics lc rgb '#dddddd'",
            "set key top left Left reverse box opaque font ',9'",
            "set tics nomirror",
            "set border 3",
            "set bmargin 5",
            "set style textbox opaque noborder",
        ]
        head = textwrap.fill(f"weft benchmark — {name}: {s['what']}", width=max(90, width // 8))
        title = (f"{head}\n"
                 f"{machine['nproc']} CPUs (nproc), Linux {machine['kernel']}"
                 f"{', ' + machine['cpu'] if machine.get('cpu') else ''}\n"
                 f"{when}; bars: median of {rounds} round{'s' if rounds != 1 else ''}, whiskers: min–max; "
                 f"{s.get('placement', 'pinned to CPU 0')}")
        for n in s.get("notes", [])[:2]:
            title += "\n" + textwrap.fill(n, width=max(90, width // 8))
        script.append(f"set multiplot layout {rows},{cols} title {gp_str(title)} font ',11'")
        for mi, m in enumerate(metrics):
            info = s["metric_info"][m]
            dat = os.path.join(tmp, f"{mi}.dat")
            vals = []
            with open(dat, "w") as f:
                for x, c in enumerate(contenders):
                    ms = s["contenders"][c]["metrics"].get(m)
                    if not ms:
                        continue
                    vals += [ms["median"], ms["min"], ms["max"]]
                    lab = f"{fnum(ms['median'])} {info['unit']}".strip()
                    f.write(f"{x} {ms['median']!r} {ms['min']!r} {ms['max']!r} {gp_str(lab)}\n")
            tics = []
            for x, c in enumerate(contenders):
                e = s["contenders"][c]
                lab = e["label"]
                if not e["metrics"].get(m):
                    # A contender that ran but has no such figure (a difference taken for others) is not a failure.
                    lab += "\n(FAILED)" if e.get("status") != "ok" else "\n(n/a)"
                tics.append(f"{gp_str(lab)} {x}")
            # targets drawn as horizontal lines on this metric's panel
            lines = []
            one = len({t["contender"] for t in s["targets"]}) <= 1
            for t in s["targets"]:
                if t["metric"] != m:
                    continue
                if "at_most" in t:
                    lines.append((t["at_most"], f"target{'' if one else ' for ' + t['contender']}: ≤ {fnum(t['at_most'])} {info['unit']}"))
                elif "faster_than" in t:
                    ref = s["contenders"].get(t["faster_than"], {}).get("metrics", {}).get(m)
                    if ref:
                        y = ref["median"] / t["at_least"]
                        if t["at_least"] == 1:
                            how = f"no slower than {t['faster_than']}"
                        else:
                            how = f"{t['at_least']:g}× faster than {t['faster_than']}"
                        if info.get("better") == "higher":
                            y = ref["median"] * t["at_least"]
                        cmp = "≥" if info.get("better") == "higher" else "≤"
                        lines.append((y, f"target{'' if one else ' for ' + t['contender']}: {how} ({cmp} {fnum(y)} {info['unit']})"))
                elif "within" in t:
                    ref = s["contenders"].get(t["of"], {}).get("metrics", {}).get(m)
                    if ref:
                        higher = info.get("better") == "higher"
                        y = ref["median"] / t["within"] if higher else ref["median"] * t["within"]
                        lines.append((y, f"target{'' if one else ' for ' + t['contender']}: within {t['within']:g}× of {t['of']} "
                                         f"({'≥' if higher else '≤'} {fnum(y)} {info['unit']})"))
            allv = [v for v in vals + [y for y, _ in lines] if v > 0]
            log = bool(allv) and max(allv) / min(allv) > 30
            unit = info["unit"]
            ylabel = info["label"] + (f" ({unit})" if unit and unit not in info["label"] else "")
            if info.get("better"):
                ylabel += f", {info['better']} is better"
            script += [
                f"set title {gp_str(info['label'])}",
                f"set ylabel {gp_str(ylabel)}",
                "unset xlabel",
                f"set xtics ({', '.join(tics)})",
                f"set xrange [-0.7:{len(contenders) - 0.3}]",
            ]
            # 1.5M rather than 1.5e+06 on the axis
            script.append("set format y '%.1s%c'" if allv and max(allv) >= 1e4 else "set format y '% h'")
            if log:
                script += ["set logscale y", f"set yrange [{min(allv) / 4!r}:{max(allv) * 8!r}]"]
            else:
                top = max(allv) * 1.3 if allv else 1
                script += ["unset logscale y", f"set yrange [0:{top!r}]"]
            plots = []
            if vals:
                d = gp_str(dat)
                plots += [f"{d} using 1:2 with boxes lc rgb '#4477aa' title 'median'",
                          f"{d} using 1:2:3:4 with yerrorbars lc rgb '#222222' pt 7 ps 0.4 lw 1.5 "
                          f"title 'min–max ({rounds} round{'s' if rounds != 1 else ''})'"]
            else:
                plots.append("NaN notitle")
                script.append("set label 1 'no figures: every contender failed' at graph 0.5,0.5 center")
            script.append("set key" if vals or lines else "unset key")
            colors = ["#cc3311", "#ee7733", "#009988"]
            for i, (y, lab) in enumerate(lines):
                plots.append(f"{y!r} with lines dt 2 lw 2 lc rgb '{colors[i % len(colors)]}' title {gp_str(lab)}")
            if vals:
                plots.append(f"{d} using 1:4:5 with labels boxed offset 0,0.9 font ',9' notitle")
            script.append("plot " + ", ".join(plots))
            script.append("unset label 1")
        script.append("unset multiplot")
        gpfile = os.path.join(tmp, "chart.gp")
        with open(gpfile, "w") as f:
            f.write("\n".join(script) + "\n")
        p = subprocess.run(["gnuplot", gpfile], capture_output=True, text=True)
        if p.returncode != 0 or not os.path.exists(png):
            sys.stderr.write(f"gnuplot failed for {name}:\n{p.stderr}\n")
            return False
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------------

def workloads_in(recs):
    names = []
    for r in recs:
        w = r.get("workload")
        if w and w not in names and r.get("type") in KINDS:
            names.append(w)
    def place(w):
        base = next((p[:-1] for p in PREFIXED if w.startswith(p)), w)
        return ORDER.index(base) if base in ORDER else len(ORDER)
    return sorted(names, key=lambda w: (place(w), names.index(w)))


def cmd_table(a):
    recs = read_records(a.raw)
    print(render_table(a.workload, summarise(a.workload, recs)))


def git_info(root):
    def run(*cmd):
        try:
            p = subprocess.run(["git", "-C", root, *cmd], capture_output=True, text=True, timeout=10)
            return p.stdout.strip() if p.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            return None
    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def cmd_finish(a):
    recs = read_records(a.raw)
    machine = machine_info()
    now = datetime.datetime.now(datetime.timezone.utc)
    when = now.strftime("%Y-%m-%d %H:%M UTC")
    names = workloads_in(recs)
    summary = {w: summarise(w, recs) for w in names}
    charts = {}
    have_gnuplot = shutil.which("gnuplot") is not None
    for w in names:
        if not have_gnuplot:
            break
        png = f"{a.charts}-{w}.png"
        if chart(w, summary[w], machine, png, when):
            charts[w] = os.path.relpath(png, a.root) if a.root else png
    doc = {
        "schema": 1,
        "started_utc": a.started,
        "finished_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": a.duration,
        "mode": a.mode,
        "args": a.args,
        "machine": machine,
        "git": git_info(a.root or "."),
        "meta": [r for r in recs if r.get("type") == "meta"],
        "workloads": summary,
        "charts": charts,
        "records": [r for r in recs if r.get("type") in ("sample", "failure")],
    }
    tmp = a.json + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, a.json)

    print(f"Targets ({machine['nproc']} CPUs, Linux {machine['kernel']}):")
    n_met = n_all = 0
    for w in names:
        for t in summary[w]["targets"]:
            n_all += 1
            n_met += bool(t["met"])
            val = "-" if t["value"] is None else (fratio(t["value"]) if t["unit"] == "x" else f"{fnum(t['value'])} {t['unit']}".strip())
            verdict = "n/a (no figure)" if t["met"] is None else ("met" if t["met"] else "NOT MET")
            print(f"  {w:<8} {t['text']:<44} {val:>12}  {verdict}")
    failed = [(w, c, e["reason"]) for w in names for c, e in summary[w]["contenders"].items() if e["status"] == "failed"]
    for w, c, reason in failed:
        print(f"  {w:<8} {c}: FAILED - {reason}")
    print(f"  {n_met} of {n_all} targets met" if n_all else "  (no targets for these workloads)")
    busy = [r for r in recs if r.get("type") == "meta" and "cpu_busy_pct" in r]
    if busy:
        print("CPUs busy without the benchmarks: " + ", ".join(f"{r['cpu_busy_pct']:.0f}% {r.get('when', '')}".strip()
                                                              for r in busy)
              + ("  (figures taken on a busy machine are noisy)" if any(r["cpu_busy_pct"] > 15 for r in busy) else ""))
    print(f"results: {os.path.relpath(a.json, a.root) if a.root else a.json}")
    for w, p in charts.items():
        print(f"chart:   {p}")
    if not have_gnuplot:
        print("charts:  not drawn (gnuplot is not installed)")


def cpu_times():
    """(busy, total) jiffies of all CPUs, and {pid: (name, busy jiffies)}."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    total, idle = sum(v[:8]), v[3] + (v[4] if len(v) > 4 else 0)
    procs = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                st = f.read()
            name = st[st.index("(") + 1:st.rindex(")")]
            fields = st[st.rindex(")") + 2:].split()
            procs[int(pid)] = (name, int(fields[11]) + int(fields[12]))
        except (OSError, ValueError, IndexError):
            pass
    return total - idle, total, procs


def cmd_busy(a):
    """Samples the CPUs for a.seconds while bench/run itself is idle: prints a meta line, and warns on
    stderr (with the busiest processes) when something else keeps them busy."""
    import time
    b0, t0, p0 = cpu_times()
    time.sleep(a.seconds)
    b1, t1, p1 = cpu_times()
    busy = 100.0 * (b1 - b0) / max(1, t1 - t0)
    hz = os.sysconf("SC_CLK_TCK")
    # By command name, so that many short processes (a test suite) show as one; a process born in the
    # window counts whole, one that came and went within it not at all.
    by_name = {}
    for p, (name, t) in p1.items():
        d = t - (p0[p][1] if p in p0 else 0)  # (a kworker's name changes with its work)
        if d > 0:
            by_name[name] = by_name.get(name, 0) + d
    top = sorted(((d * 100.0 / hz / a.seconds, n) for n, d in by_name.items()), reverse=True)[:4]
    print(json.dumps({"type": "meta", "when": a.when, "cpu_busy_pct": round(busy, 1),
                      "busiest": [{"name": n, "cpu_pct": round(c, 1)} for c, n in top]}))
    if busy > a.threshold:
        who = ", ".join(f"{n} {c:.0f}%" for c, n in top) or "processes this one cannot see"
        sys.stderr.write(f"warning: the CPUs are {busy:.0f}% busy {a.when} without the benchmarks (busiest: {who}; "
                         f"of one CPU each): figures will be noisy\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table", help="print the table of one workload")
    t.add_argument("raw")
    t.add_argument("workload")
    t.set_defaults(fn=cmd_table)
    f = sub.add_parser("finish", help="write the results JSON and the charts, print the targets")
    f.add_argument("raw")
    f.add_argument("--json", required=True)
    f.add_argument("--charts", required=True, help="path prefix of the PNGs: PREFIX-WORKLOAD.png")
    f.add_argument("--root", default=None)
    f.add_argument("--mode", default="default")
    f.add_argument("--started", default=None)
    f.add_argument("--duration", type=float, default=None)
    f.add_argument("--args", default="", help="the options bench/run was given, as one string")
    f.set_defaults(fn=cmd_finish)
    b = sub.add_parser("busy", help="sample how busy the CPUs are (a meta line; a warning on stderr)")
    b.add_argument("--when", default="")
    b.add_argument("--seconds", type=float, default=1.0)
    b.add_argument("--threshold", type=float, default=15.0, help="warn above this percentage of all CPUs")
    b.set_defaults(fn=cmd_busy)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
