#!/usr/bin/env python3
"""trace_png.py — draws a weft trace (WEFT_TRACE=file, docs/trace.md) as a PNG timeline.

    bench/trace_png.py TRACE.json [-o OUT.png] [--title TEXT] [--from-ms A] [--to-ms B] [--max-tasks N]

A row per task (named as in the trace), then the loop's row and one per executor thread that ran a job:

    task rows      blue while the task runs; a thin grey line while it waits (for what: Perfetto
                   shows the name), a thin orange line while it is ready but not yet running; its I/O
                   requests as coloured bars under the row, from submission to completion, one colour
                   per opcode; a run during which the watchdog reported a stall in red, with a red
                   mark where the report came
    loop           dark grey where it polls the kernel without waiting, light grey where it sleeps in
                   the kernel for lack of anything to run, purple for callbacks
    executor       green for each job, from its start on that thread to its end

Times are milliseconds from the first event drawn. With more than --max-tasks tasks (default 24) the
rows of the tasks that ran longest are kept and the rest counted in the title. Prints one line saying
what it drew. Needs matplotlib (Debian's python3-matplotlib, installed here when missing and run as
root, as bench/run installs what it needs).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys


def need_matplotlib():
    """matplotlib.pyplot with the Agg backend: from this interpreter, Debian's (/usr/bin/python3, where
    python3-matplotlib puts it), or after installing python3-matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        pass
    system = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(system) and os.access(system, os.X_OK):
        if subprocess.run([system, "-c", "import matplotlib"], capture_output=True).returncode == 0:
            os.execv(system, [system] + sys.argv)
    if not os.environ.get("TRACE_PNG_INSTALLED") and shutil.which("apt-get"):
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        print("trace_png: installing python3-matplotlib", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if subprocess.run(sudo + ["apt-get", "install", "-y", "-q", "--no-install-recommends", "python3-matplotlib"],
                          env=env, stdout=subprocess.DEVNULL).returncode != 0:
            subprocess.run(sudo + ["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
            subprocess.run(sudo + ["apt-get", "install", "-y", "-q", "--no-install-recommends", "python3-matplotlib"],
                           env=env, stdout=subprocess.DEVNULL)
        os.environ["TRACE_PNG_INSTALLED"] = "1"
        os.execv(system if os.access(system, os.X_OK) else sys.executable,
                 [system if os.access(system, os.X_OK) else sys.executable] + sys.argv)
    sys.exit("trace_png: matplotlib is missing: apt-get install python3-matplotlib")


IO_COLOURS = ["#1f77b4", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#aec7e8"]
RUN, STALLED, WAIT, READY = "#3b6fb6", "#d62728", "#b0b0b0", "#f0a030"
POLL, SLEEP, CALLBACK, JOB = "#555555", "#d9d9d9", "#9467bd", "#2ca02c"


class Row:
    def __init__(self, name, kind, order):
        self.name, self.kind, self.order = name, kind, order
        self.slices = []   # (cat, name, start, dur, args)
        self.io = []       # (opcode, start, end)
        self.stalls = []   # times
        self.run_time = 0.0


def load(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    rows, sort = {}, {}
    events = doc["traceEvents"]
    for e in events:
        if e["ph"] == "M" and e["name"] == "thread_name":
            name = e["args"]["name"]
            kind = "task" if name.startswith("task ") else "loop" if name == "loop" else "executor"
            rows[e["tid"]] = Row(name, kind, 0)
        elif e["ph"] == "M" and e["name"] == "thread_sort_index":
            sort[e["tid"]] = e["args"]["sort_index"]
    for tid, r in rows.items():
        r.order = sort.get(tid, 0)
    begins = {}
    for e in events:
        ph = e["ph"]
        if ph == "M":
            continue
        r = rows.get(e["tid"])
        if ph == "X" and r:
            r.slices.append((e.get("cat"), e["name"], e["ts"], e["dur"], e.get("args", {})))
            if e.get("cat") == "run":
                r.run_time += e["dur"]
        elif ph == "i" and e.get("cat") == "stall" and r:
            r.stalls.append(e["ts"])
        elif ph == "b":
            begins[(e["cat"], e["id"])] = e
        elif ph == "e":
            b = begins.pop((e["cat"], e["id"]), None)
            if b and rows.get(b["tid"]):
                rows[b["tid"]].io.append((b["name"], b["ts"], e["ts"]))
    return doc, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace")
    ap.add_argument("-o", "--out", help="the PNG (default: the trace's name with .png)")
    ap.add_argument("--title")
    ap.add_argument("--from-ms", type=float, default=None, help="start of the window, ms from the first event")
    ap.add_argument("--to-ms", type=float, default=None, help="end of the window, ms from the first event")
    ap.add_argument("--max-tasks", type=int, default=24)
    ap.add_argument("--width", type=float, default=12.0, help="inches, at 120 dpi")
    a = ap.parse_args()
    plt = need_matplotlib()
    from matplotlib.patches import Patch
    from matplotlib.lines import Line2D

    try:
        doc, rows = load(a.trace)
    except (OSError, ValueError, KeyError) as e:
        sys.exit("trace_png: cannot read %s as a weft trace: %s" % (a.trace, e))
    starts = [s[2] for r in rows.values() for s in r.slices] + [t for r in rows.values() for _, t, _ in r.io]
    if not starts:
        sys.exit("trace_png: %s has no events to draw" % a.trace)
    t0 = min(starts)
    lo = a.from_ms if a.from_ms is not None else 0.0
    ends = [s[2] + s[3] for r in rows.values() for s in r.slices] + [t for r in rows.values() for _, _, t in r.io]
    hi = a.to_ms if a.to_ms is not None else (max(ends) - t0) / 1000.0

    def ms(us):
        return (us - t0) / 1000.0

    tasks = sorted((r for r in rows.values() if r.kind == "task"), key=lambda r: r.order)
    hidden = 0
    if len(tasks) > a.max_tasks:
        keep = set(id(r) for r in sorted(tasks, key=lambda r: -r.run_time)[:a.max_tasks])
        hidden = len(tasks) - a.max_tasks
        tasks = [r for r in tasks if id(r) in keep]
    shown = tasks + [r for r in rows.values() if r.kind == "loop"] + sorted(
        (r for r in rows.values() if r.kind == "executor"), key=lambda r: r.order)
    opcodes = sorted({op for r in shown for op, _, _ in r.io})
    colour = {op: IO_COLOURS[i % len(IO_COLOURS)] for i, op in enumerate(opcodes)}

    fig, ax = plt.subplots(figsize=(a.width, 0.55 * len(shown) + 1.8), dpi=120)
    stalls_drawn = 0
    for y, r in enumerate(reversed(shown)):
        bars = {}
        for cat, name, ts, dur, _ in r.slices:
            start, width = ms(ts), dur / 1000.0
            if start + width < lo or start > hi:
                continue
            if cat == "run":
                stalled = any(ts <= s <= ts + dur for s in r.stalls)
                bars.setdefault(STALLED if stalled else RUN, []).append((start, width, 0.3))
            elif cat == "wait":
                bars.setdefault(WAIT, []).append((start, width, 0.04))
            elif cat == "ready":
                bars.setdefault(READY, []).append((start, width, 0.06))
            elif cat == "loop":
                key = CALLBACK if name == "callback" else SLEEP if name == "sleep" else POLL
                bars.setdefault(key, []).append((start, width, 0.3))
            elif cat == "job":
                bars.setdefault(JOB, []).append((start, width, 0.3))
        for col, spans in bars.items():
            for half in sorted({h for _, _, h in spans}):
                ax.broken_barh([(s, max(w, (hi - lo) / 1000.0)) for s, w, h in spans if h == half],
                               (y - half, 2 * half), facecolors=col, edgecolors="none")
        for op, b, e in r.io:
            if ms(e) < lo or ms(b) > hi:
                continue
            ax.broken_barh([(ms(b), max((e - b) / 1000.0, (hi - lo) / 1000.0))], (y - 0.45, 0.12),
                           facecolors=colour[op], edgecolors="none")
        for s in r.stalls:
            if lo <= ms(s) <= hi:
                ax.plot([ms(s)], [y + 0.38], marker="v", color=STALLED, markersize=9)
                ax.annotate("stall", (ms(s), y + 0.38), xytext=(6, -3), textcoords="offset points", color=STALLED,
                            fontsize=8)
                stalls_drawn += 1
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels([r.name for r in reversed(shown)], fontsize=8)
    ax.set_ylim(-0.8, len(shown) - 0.2)
    ax.set_xlim(lo, hi)
    ax.set_xlabel("ms since the first event")
    other = doc.get("otherData", {})
    title = a.title or "weft trace: %s (%s)" % (os.path.basename(a.trace), other.get("backend", "?"))
    notes = []
    if hidden:
        notes.append("%d more tasks not shown" % hidden)
    if other.get("events_dropped"):
        notes.append("%d earlier events dropped by the ring" % other["events_dropped"])
    ax.set_title(title + ("\n" + "; ".join(notes) if notes else ""), fontsize=10)
    ax.grid(axis="x", color="#eeeeee")
    ax.set_axisbelow(True)
    legend = [Patch(color=RUN, label="running"), Patch(color=STALLED, label="running: stalled the loop"),
              Patch(color=WAIT, label="waiting"), Patch(color=READY, label="ready, not running"),
              Patch(color=POLL, label="loop polls"), Patch(color=SLEEP, label="loop sleeps in the kernel"),
              Patch(color=CALLBACK, label="callback"), Patch(color=JOB, label="executor job")]
    legend += [Patch(color=colour[op], label="I/O: " + op) for op in opcodes]
    if stalls_drawn:
        legend.append(Line2D([], [], color=STALLED, marker="v", linestyle="none", label="watchdog report"))
    ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, -0.6 / (0.55 * len(shown) + 0.6)),
              ncol=6, fontsize=7, frameon=False)
    out = a.out or os.path.splitext(a.trace)[0] + ".png"
    fig.savefig(out, bbox_inches="tight")
    print("trace_png: %d task rows (%d not shown), loop, %d executor rows, %d I/O requests, %d stalls -> %s" % (
        len(tasks), hidden, len([r for r in shown if r.kind == "executor"]), sum(len(r.io) for r in shown),
        stalls_drawn, out))


if __name__ == "__main__":
    main()
