#!/usr/bin/env python3
"""The report of a bench/run: tables with intervals and verdicts, report.md, the results JSON, charts.

Python standard library only (gnuplot draws the charts when installed). runner.py writes every record
of a run to RESULTS/raw.jsonl, one JSON object per line:
  {"type":"sample","table":T,"contender":C,"round":R,"metric":M,"unit":U,"value":V,
   "disturbed":bool,"other_cpu":CPUs[,"discarded":why]}   one figure of one round
  {"type":"failure","table":T,"contender":C,"round":R,"reason":...}
  {"type":"note","table":T,"note":...}, {"type":"contenders","table":T,"contenders":[...]}
  {"type":"rerun","table":T,"round":R,"what":...,"other_cpu":CPUs}  a run done again (disturbed)
  {"type":"profile","table":T,"contender":C,...}                   a CPU breakdown (profile.py)
  {"type":"machine"|"uring"|"busy"|"run", ...}                      the run and its machine
and calls summarize() while it runs (to print each table, and to decide when a workload has enough
rounds) and finish() at the end:

    report.py RESULTS_DIR     rebuilds report.md, results.json and the charts from RESULTS/raw.jsonl
    report.py --agree A B     whether two runs agree: every comparison both made on which either found a
                              difference (faster, slower), with its verdict in each; exit 1 if any in the
                              verdict table (report.md's first) differs
    report.py --between A B [C ...]
                              each table's between-run standard deviation of its ratios over these runs
                              (bench/workloads.py BETWEEN_RUNS)

Statistics (bench/stats.py): a ratio's interval comes from the rounds in which both contenders have a
figure. Rounds disturbed by other processes (after runner.py's reruns) are left out of an interval when
at least 3 undisturbed pairs remain, and counted either way.
"""
import datetime
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cpu_profile as cpuprofile  # noqa: E402
import stats  # noqa: E402
import workloads as W  # noqa: E402

MIN_CLEAN = 3  # undisturbed pairs needed to leave the disturbed ones out


# ---- reading ----------------------------------------------------------------------------------------

def read_records(path):
    recs = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    pass
    return recs


def tables_in(recs):
    names = []
    for r in recs:
        t = r.get("table")
        if t and t not in names and r.get("type") in ("sample", "failure", "contenders", "profile"):
            names.append(t)
    order = [w.name for w in W.WORKLOADS]

    def place(t):
        base = W.table_workload(t)
        return order.index(base) if base in order else len(order)
    return sorted(names, key=lambda t: (place(t), names.index(t)))


# ---- summarizing ------------------------------------------------------------------------------------

def _series(samples, contender, metric):
    """{round: (value, disturbed)} of one contender's metric."""
    out = {}
    for r in samples:
        if r["contender"] == contender and r["metric"] == metric:
            out[r["round"]] = (r["value"], bool(r.get("disturbed")))
    return out


def _pairs(a, b):
    """The rounds both series have, clean ones only when there are enough: (xs, ys, n_dropped, n_kept_disturbed)."""
    common = sorted(set(a) & set(b))
    clean = [k for k in common if not a[k][1] and not b[k][1]]
    use = clean if len(clean) >= MIN_CLEAN else common
    kept = sum(1 for k in use if a[k][1] or b[k][1])
    return [a[k][0] for k in use], [b[k][0] for k in use], len(common) - len(use), kept


def _values(series):
    clean = [v for v, d in series.values() if not d]
    vals = clean if len(clean) >= MIN_CLEAN else [v for v, d in series.values()]
    return vals, len(series) - len(vals), sum(1 for v, d in series.values() if d) if vals is not clean else 0


def comparisons_for(table, contenders):
    """The (contender, reference, headline) pairs of a table: the spec's, or in a before/after run each
    contender against itself from the other build."""
    builds = sorted({c.split("@", 1)[1] for c in contenders if "@" in c})
    if builds:
        out = []
        for c in contenders:
            if "@" in c:
                continue
            for b in builds:
                if c + "@" + b in contenders:
                    out.append((c, c + "@" + b, c.startswith("weft") or c in ("io_uring", "epoll")))
        return out
    head = set(table.headline)
    return [(c, r, (c, r) in head) for c, r in table.compare if c in contenders and r in contenders]


def headline_metric(table, metric):
    return metric in table.headline_metrics


def summarize(name, recs):
    """Everything one table shows: per contender the median, min-max and mean interval of each metric,
    each comparison's ratio with its interval and verdict, each target's outcome, and how many runs were
    rerun or left out."""
    table = W.table_spec(name)
    mine = [r for r in recs if r.get("table") == name]
    samples = [r for r in mine if r.get("type") == "sample" and not r.get("discarded")
               and isinstance(r.get("value"), (int, float)) and not math.isnan(r["value"])]
    failures = [r for r in mine if r.get("type") == "failure"]
    chosen = next((r["contenders"] for r in mine if r.get("type") == "contenders"), None)
    contenders = list(chosen) if chosen else []
    if table is None:
        spec_contenders = []
        metrics = {}
        for r in samples:
            metrics.setdefault(r["metric"], W.Metric(r["metric"], r.get("unit", ""), "lower", True))
        table = W.Table(name, W.Workload(name, name, name, name, "program", [], metrics), name, name, [])
    else:
        spec_contenders = [c for c, _ in table.contenders]
    for r in samples + failures:
        if r["contender"] not in contenders and r["contender"] != "*":
            contenders.append(r["contender"])
    if not chosen:
        contenders.sort(key=lambda c: (spec_contenders.index(W.base_contender(c))
                                       if W.base_contender(c) in spec_contenders else 99, c))
    units = {}
    for r in samples:
        units.setdefault(r["metric"], r.get("unit", ""))
    metric_names = [m for m in table.metrics if m in units] + [m for m in units if m not in table.metrics]
    out = {"name": name, "title": table.title, "what": table.what, "placement": table.placement,
           "contenders": contenders, "labels": {c: W.label(table, c) for c in contenders},
           "metrics": {}, "values": {}, "failures": {}, "comparisons": [], "targets": [],
           "notes": [r["note"] for r in mine if r.get("type") == "note"] + (
               ["intervals of ratios allow for a between-run standard deviation (bench/workloads.py BETWEEN_RUNS, "
                "measured with bench/report.py --between over back-to-back runs) of %s" % ", ".join(
                    "%.1f%% in %s" % (100 * v, m) for m, v in sorted(table.between.items()))]
               if table.between else []),
           "profiles": {r["contender"]: r for r in mine if r.get("type") == "profile"}}
    for m in metric_names:
        info = table.metrics.get(m) or W.Metric(m, units.get(m, ""), "lower", True)
        out["metrics"][m] = {"label": info.label, "unit": units.get(m, info.unit), "better": info.better,
                             "chart": info.chart, "short": info.short, "percent": info.percent,
                             "words": list(info.words), "compared": m in table.compared}
    for c in contenders:
        out["values"][c] = {}
        for m in metric_names:
            s = _series(samples, c, m)
            if not s:
                continue
            vals, dropped, kept = _values(s)
            allv = [v for v, _ in s.values()]
            iv = stats.mean_interval(vals)
            out["values"][c][m] = {"median": statistics_median(allv), "min": min(allv), "max": max(allv),
                                   "n": len(allv), "mean": iv.as_dict(), "disturbed": sum(1 for _, d in s.values() if d),
                                   "rounds": sorted(s), "series": [s[k][0] for k in sorted(s)]}
        fl = [{"round": f.get("round", 0), "reason": f.get("reason", "")} for f in failures if f["contender"] == c]
        if fl:
            out["failures"][c] = fl
    glob = [f.get("reason", "") for f in failures if f["contender"] == "*"]
    if glob:
        out["failures"]["*"] = [{"round": 0, "reason": g} for g in glob]

    def compare(c, ref, m, head, a, b, between=0.0, **extra):
        """One comparison: the paired ratio of series a over series b ({round: (value, disturbed)})."""
        info = out["metrics"][m]
        xs, ys, dropped, kept = _pairs(a, b)
        iv = stats.paired_ratio(xs, ys, between=between)
        out["comparisons"].append(dict({"contender": c, "ref": ref, "metric": m, "headline": head,
                                        "ratio": iv.as_dict(),
                                        "verdict": busy_verdict(stats.verdict(iv, info["better"], info["words"]), iv,
                                                                kept, words=info["words"]),
                                        "dropped_disturbed": dropped, "kept_disturbed": kept}, **extra))

    for c, ref, head in comparisons_for(table, contenders):
        for m in metric_names:
            info = out["metrics"][m]
            if not info["better"] or not info["compared"]:
                continue
            a, b = _series(samples, c, m), _series(samples, ref, m)
            if a and b:
                compare(c, ref, m, head and headline_metric(table, m), a, b, table.between.get(m, 0.0))
    # Two figures one contender's program took side by side, interleaved in one process: paired by round.
    for c, m, ref_m, ref_name, head in table.within:
        a, b = _series(samples, c, m), _series(samples, c, ref_m)
        if c in contenders and m in out["metrics"] and a and b:
            compare(c, ref_name, m, head, a, b, table.between.get(m, 0.0), ref_metric=ref_m)
    # Before/after: a build's contender over its own run's control (a contender whose code is the same in
    # both builds, measured in the same program invocation) cancels what moved the machine's speed between
    # the two builds' runs of a round; the ratio of those ratios is the runtime's change alone.
    for c, cb, head in comparisons_for(table, contenders):
        if "@" not in cb:
            continue
        build = cb.split("@", 1)[1]
        for x, ctl in table.compare:
            if x != c or ctl.startswith("weft") or ctl not in contenders or ctl + "@" + build not in contenders:
                continue
            for m in metric_names:
                info = out["metrics"][m]
                if not info["better"] or not info["compared"]:
                    continue
                a, b = _series(samples, c, m), _series(samples, ctl, m)
                a2, b2 = _series(samples, cb, m), _series(samples, ctl + "@" + build, m)
                rounds = sorted(set(a) & set(b) & set(a2) & set(b2))
                if not rounds:
                    continue
                na = {k: (a[k][0] / b[k][0] if b[k][0] else None, a[k][1] or b[k][1]) for k in rounds}
                nb = {k: (a2[k][0] / b2[k][0] if b2[k][0] else None, a2[k][1] or b2[k][1]) for k in rounds}
                compare(c, cb, m, head and headline_metric(table, m), na, nb, control=ctl)
    # A mode may leave out a contender, or a figure (files at QD 1 and 128 are --full's): the targets on
    # it are not this run's. A figure every contender failed to give still gets its "n/a".
    measured = {s.get("metric") for s in samples}
    for t in table.targets:
        if t.contender in contenders and (t.ref is None or t.ref in contenders) and (
                not measured or t.metric in measured):
            out["targets"].append(target_outcome(t, samples, out["metrics"], table.between.get(t.metric, 0.0)))
    reruns = [r for r in mine if r.get("type") == "rerun"]
    kept = {(r["contender"], r["round"]) for r in samples if r.get("disturbed")}
    out["runs"] = {"reruns": len(reruns), "disturbed_kept": len(kept),
                   "rounds": max((v["n"] for cv in out["values"].values() for v in cv.values()), default=0)}
    return out


def busy_verdict(verdict, iv, kept, ref=1.0, words=None):
    """No difference under 2x is claimed from rounds most of which other processes disturbed: on a machine
    that busy the rounds are not draws of the same conditions (a server sharing its CPU handles more
    messages per wakeup, and its CPU per message drops by a third), so the interval cannot be trusted to
    cover. A difference whose whole interval lies beyond 2x of the reference point (1, or a target's
    bound) still stands, and so do sizes (RSS, page tables), which other processes do not move."""
    if words and tuple(words) == ("smaller", "larger"):
        return verdict
    far = iv.known and (iv.lo > 2.0 * ref or iv.hi < 0.5 * ref)
    if kept and iv.n and kept * 2 > iv.n and not far and verdict not in (stats.SAME, stats.UNKNOWN):
        return "%s (%d of %d rounds disturbed: machine busy)" % (stats.BUSY, kept, iv.n)
    return verdict


def statistics_median(vals):
    s = sorted(vals)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def target_outcome(t, samples, metrics, between=0.0):
    res = {"text": t.text, "contender": t.contender, "metric": t.metric, "ref": t.ref, "op": t.op, "bound": t.bound,
           "form": t.form, "level": t.level}
    better = (metrics.get(t.metric) or {}).get("better", "lower")
    a = _series(samples, t.contender, t.metric)
    kept = 0
    if t.form == "value":
        vals, _, kept = _values(a) if a else ([], 0, 0)
        iv = stats.mean_interval(vals)
        res["unit"] = (metrics.get(t.metric) or {}).get("unit", "")
    else:
        b = _series(samples, t.ref, t.ref_metric)
        if not a or not b:
            iv = stats.Interval(None, None, None, 0)
        else:
            xs, ys, _, kept = _pairs(a, b)
            iv = stats.paired_ratio(xs, ys, between=between)
            if t.form == "speedup":
                iv = stats.invert(iv) if better == "lower" else iv
        res["unit"] = "x"
    res["value"] = iv.as_dict()
    words = (metrics.get(t.metric) or {}).get("words")
    res["verdict"] = busy_verdict(stats.target_verdict(iv, t.bound, t.op, t.level), iv, kept, t.bound, words) \
        if iv.n else "n/a (no figure)"
    res["kept_disturbed"] = kept
    return res


def settled(summary, precision):
    """Whether every interval a table's verdicts and targets rest on is decided or narrow enough."""
    for cmp in summary["comparisons"]:
        if not stats.settled(_iv(cmp["ratio"]), precision):
            return False
    for t in summary["targets"]:
        iv = _iv(t["value"])
        if iv.n == 0:
            continue
        if not stats.settled(iv, precision, (t["bound"],), ratio=t["form"] != "value"):
            return False
    return True


def _iv(d):
    return stats.Interval(d.get("est"), d.get("lo"), d.get("hi"), d.get("n", 0))


# ---- formatting -------------------------------------------------------------------------------------

def fnum(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    a = abs(v)
    if a >= 100:
        return "{:,.0f}".format(v)
    if a >= 10:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    if a >= 0.01:
        return "%.3f" % v
    return "%.2g" % v


def fratio(r):
    if r is None:
        return "-"
    if r >= 100:
        return "%.0fx" % r
    if r >= 10:
        return "%.1fx" % r
    if r >= 0.1:
        return "%.3fx" % r if 0.95 <= r <= 1.05 else "%.2fx" % r
    return "%.3fx" % r


def fiv(d, ratio=True, unit=""):
    """An interval as text: "1.23x [1.18, 1.29]"."""
    if d.get("est") is None:
        return "-"
    f = fratio if ratio else (lambda v: fnum(v) + (" " + unit if unit else ""))
    if d.get("lo") is None:
        return "%s [n=%d: no interval]" % (f(d["est"]), d.get("n", 0))
    if ratio:
        return "%s [%s, %s]" % (f(d["est"]), fratio(d["lo"]).rstrip("x"), fratio(d["hi"]).rstrip("x"))
    return "%s [%s, %s]" % (f(d["est"]), fnum(d["lo"]), fnum(d["hi"]))


def fval(info, v):
    if info.get("percent"):
        return "%.0f%%" % (100 * v)
    return fnum(v)


def target_text(t):
    if t["value"].get("est") is None:
        return "-"
    if t["form"] == "value":
        return fiv(t["value"], False, t.get("unit", ""))
    return fiv(t["value"])


def cmp_word(c):
    v = c["verdict"]
    return v.upper() if v in ("slower", "larger", "more") else v


def render_table(s):
    """The terminal table of one summary."""
    lines = []
    runs = s["runs"]
    extra = []
    if runs["reruns"]:
        extra.append("%d run%s rerun (disturbed)" % (runs["reruns"], "s" if runs["reruns"] != 1 else ""))
    if runs["disturbed_kept"]:
        extra.append("%d still disturbed" % runs["disturbed_kept"])
    lines.append("%s: %s  (%d round%s%s)" % (s["name"], s["what"], runs["rounds"], "s" if runs["rounds"] != 1 else "",
                                            "; " + ", ".join(extra) if extra else ""))
    metrics = [m for m, i in s["metrics"].items() if i["chart"] or i["compared"]] or list(s["metrics"])
    header = ["contender"] + ["%s%s" % (s["metrics"][m]["short"], " (%s)" % s["metrics"][m]["unit"]
                                        if s["metrics"][m]["unit"] and not s["metrics"][m]["percent"]
                                        and s["metrics"][m]["unit"] not in s["metrics"][m]["short"] else "")
                              for m in metrics]
    rows = []
    for c in s["contenders"]:
        v = s["values"].get(c, {})
        if not v:
            why = (s["failures"].get(c) or s["failures"].get("*") or [{"reason": "no figures"}])[0]["reason"]
            rows.append([c, "FAILED: " + why])
            continue
        row = [c]
        for m in metrics:
            x = v.get(m)
            row.append("%s (%s-%s)" % (fval(s["metrics"][m], x["median"]), fval(s["metrics"][m], x["min"]),
                                        fval(s["metrics"][m], x["max"])) if x else "-")
        rows.append(row)
    widths = [max([len(header[i])] + [len(r[i]) for r in rows if len(r) == len(header)]) for i in range(len(header))]
    widths[0] = max([widths[0]] + [len(r[0]) for r in rows])
    lines.append("  " + "  ".join(h.ljust(widths[i]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header)))
    lines.append("  " + "  ".join("-" * w for w in widths))
    for r in rows:
        if len(r) != len(header):
            lines.append("  " + r[0].ljust(widths[0]) + "  " + r[1])
        else:
            lines.append("  " + "  ".join(x.ljust(widths[i]) if i == 0 else x.rjust(widths[i]) for i, x in enumerate(r)))
    lines.append("  (median and min-max of the rounds; ratios below: geometric mean of per-round ratios, 95% CI)")
    for c in s["comparisons"]:
        info = s["metrics"][c["metric"]]
        note = ""
        if c["dropped_disturbed"]:
            note += "  (%d disturbed left out)" % c["dropped_disturbed"]
        if c["kept_disturbed"]:
            note += "  (%d disturbed included)" % c["kept_disturbed"]
        lines.append("  %-34s %-16s %-26s n=%-2d %s%s" % (cmp_name(c), info["short"],
                                                     fiv(c["ratio"]), c["ratio"]["n"], cmp_word(c), note))
    for t in s["targets"]:
        lines.append("  target: %-56s %-26s %s" % (t["text"], target_text(t), t["verdict"].upper()
                                                    if t["verdict"] == stats.NOT_MET else t["verdict"]))
    for c, fl in s["failures"].items():
        if c != "*" and s["values"].get(c):
            lines.append("  %s: %d run(s) failed - %s" % (c, len(fl), "; ".join("round %s: %s" % (f["round"], f["reason"])
                                                                            for f in fl[:2])))
    for n in s["notes"]:
        lines.append("  note: " + n)
    if s["profiles"]:
        lines.append(render_profiles(s))
    return "\n".join(lines)


def render_profiles(s):
    """The CPU breakdown of a table's profile runs: us per request per category."""
    cats = cpuprofile.CATEGORIES
    lines = ["  where the server's CPU goes (perf cpu-clock samples over a separate window; us per request):"]
    head = "  %-22s %7s " % ("contender", "total") + " ".join("%9s" % c[:9] for c, _ in cats)
    lines.append(head)
    for c in s["contenders"]:
        p = s["profiles"].get(c)
        if not p:
            continue
        if p.get("error"):
            lines.append("  %-22s %s" % (c, "no breakdown: " + p["error"]))
            continue
        lines.append("  %-22s %7s " % (c, fnum(p.get("cpu_us_per_req"))) +
                     " ".join("%9s" % fnum(p["us_per_req"].get(k)) for k, _ in cats))
    return "\n".join(lines)


# ---- charts -----------------------------------------------------------------------------------------

def gp_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def gnuplot(script, png):
    tmp = tempfile.mkdtemp(prefix="weft-chart-")
    try:
        gp = os.path.join(tmp, "chart.gp")
        with open(gp, "w") as f:
            f.write(script)
        p = subprocess.run(["gnuplot", gp], capture_output=True, text=True, cwd=tmp)
        if p.returncode != 0 or not os.path.exists(png):
            sys.stderr.write("gnuplot failed for %s:\n%s\n" % (os.path.basename(png), p.stderr[-2000:]))
            return False
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def wrap_label(text, width=16):
    return "\n".join(textwrap.wrap(text, width)) or text


def chart(s, machine, png, when):
    """One PNG per table: a panel per charted metric, a bar per contender (median), whiskers min-max."""
    metrics = [m for m, i in s["metrics"].items() if i["chart"]]
    if not metrics:
        return False
    contenders = s["contenders"]
    cols = min(len(metrics), 2)
    rows = math.ceil(len(metrics) / cols)
    width = max(900, 620 * cols)
    height = 470 * rows + 110
    head = textwrap.fill("weft benchmark - %s: %s" % (s["name"], s["what"]), width=max(90, width // 8))
    title = "%s\n%s CPUs, Linux %s%s\n%s; bars: median of %d rounds, whiskers: min-max; %s" % (
        head, machine.get("nproc"), machine.get("kernel"), ", " + machine["cpu"] if machine.get("cpu") else "",
        when, s["runs"]["rounds"], s["placement"])
    script = ["set encoding utf8",
              "set terminal pngcairo size %d,%d font 'DejaVu Sans,10' noenhanced" % (width, height),
              "set output %s" % gp_str(png), "set style fill solid 0.75 border -1", "set boxwidth 0.55",
              "set grid ytics lc rgb '#dddddd'", "set key top left Left reverse box opaque font ',9'",
              "set tics nomirror", "set border 3", "set bmargin 6", "set style textbox opaque noborder",
              "set multiplot layout %d,%d title %s font ',11'" % (rows, cols, gp_str(title))]
    tmp = tempfile.mkdtemp(prefix="weft-dat-")
    try:
        for mi, m in enumerate(metrics):
            info = s["metrics"][m]
            dat = os.path.join(tmp, "%d.dat" % mi)
            vals = []
            with open(dat, "w") as f:
                for x, c in enumerate(contenders):
                    v = s["values"].get(c, {}).get(m)
                    if v:
                        vals += [v["median"], v["min"], v["max"]]
                        f.write("%d %r %r %r %s\n" % (x, v["median"], v["min"], v["max"],
                                                       gp_str(fnum(v["median"]) + " " + info["unit"])))
            tics = []
            for x, c in enumerate(contenders):
                lab = wrap_label(s["labels"].get(c, c))
                if not s["values"].get(c, {}).get(m):
                    lab += "\n(FAILED)" if not s["values"].get(c) else "\n(n/a)"
                tics.append("%s %d" % (gp_str(lab), x))
            pos = [v for v in vals if v > 0]
            log = bool(pos) and len(pos) == len(vals) and max(pos) / min(pos) > 30
            ylabel = info["label"] + (" (%s)" % info["unit"] if info["unit"] and info["unit"] not in info["label"] else "")
            if info["better"]:
                ylabel += ", %s is better" % info["better"]
            script += ["set title %s" % gp_str(info["label"]), "set ylabel %s" % gp_str(ylabel),
                       "set xtics (%s)" % ", ".join(tics), "set xrange [-0.7:%r]" % (len(contenders) - 0.3)]
            script.append("set format y '%.1s%c'" if vals and max(map(abs, vals)) >= 1e4 else "set format y '% h'")
            if log:
                script += ["set logscale y", "set yrange [%r:%r]" % (min(pos) / 4, max(pos) * 8)]
            else:
                lo = min([0.0] + vals)
                top = max([0.0] + vals) * 1.3 or 1
                script += ["unset logscale y", "set yrange [%r:%r]" % (lo * 1.3, top)]
            if vals:
                d = gp_str(dat)
                script.append("plot %s using 1:2 with boxes lc rgb '#4477aa' title 'median', "
                              "%s using 1:2:3:4 with yerrorbars lc rgb '#222222' pt 7 ps 0.4 lw 1.5 title 'min-max', "
                              "%s using 1:4:5 with labels offset 0,0.9 font ',9' notitle" % (d, d, d))
            else:
                script += ["set label 1 'no figures: every contender failed' at graph 0.5,0.5 center",
                           "plot NaN notitle", "unset label 1"]
        script.append("unset multiplot")
        return gnuplot("\n".join(script) + "\n", png)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ratio_chart(s, machine, png, when):
    """The table's comparisons as ratios with their 95% intervals (log scale, a line at 1): the verdicts
    drawn. Green: the better side of 1 for that figure; red: the worse; grey: straddles 1."""
    rows = [c for c in s["comparisons"] if c["ratio"].get("lo") is not None]
    if not rows:
        return False
    tmp = tempfile.mkdtemp(prefix="weft-ci-")
    try:
        dat = os.path.join(tmp, "ci.dat")
        tics = []
        with open(dat, "w") as f:
            for i, c in enumerate(reversed(rows)):
                d = c["ratio"]
                better = s["metrics"][c["metric"]]["better"]
                good = (d["hi"] < 1 and better == "lower") or (d["lo"] > 1 and better == "higher")
                bad = (d["lo"] > 1 and better == "lower") or (d["hi"] < 1 and better == "higher")
                color = 0x228833 if good else (0xcc3311 if bad else 0x777777)
                f.write("%d %r %r %r %d\n" % (i, d["est"], d["lo"], d["hi"], color))
                tics.append("%s %d" % (gp_str("%s: %s" % (s["metrics"][c["metric"]]["short"], cmp_name(c))), i))
        lo = min(c["ratio"]["lo"] for c in rows)
        hi = max(c["ratio"]["hi"] for c in rows)
        lo, hi = min(lo, 1.0) / 1.3, max(hi, 1.0) * 1.3
        height = 150 + 26 * len(rows)
        nice = [v * 10 ** e for e in range(-4, 5) for v in (1, 2, 5)] + [0.8, 0.9, 1.1, 1.25, 1.5]
        xt = sorted(v for v in nice if lo <= v <= hi)
        title = "weft benchmark - %s: ratios (contender / reference) with 95%% confidence intervals\n" \
                "%s CPUs, Linux %s; %s; green: better, red: worse, grey: no difference within noise" % (
                    s["name"], machine.get("nproc"), machine.get("kernel"), when)
        script = ["set encoding utf8",
                  "set terminal pngcairo size 1100,%d font 'DejaVu Sans,9' noenhanced" % max(260, height),
                  "set output %s" % gp_str(png), "set logscale x", "set xrange [%r:%r]" % (lo, hi),
                  "set xtics (%s)" % ", ".join("%s %r" % (gp_str("%g" % v), v) for v in xt),
                  "set yrange [-0.7:%r]" % (len(rows) - 0.3), "set ytics (%s)" % ", ".join(tics),
                  "set grid xtics lc rgb '#dddddd'", "set lmargin 62", "unset key", "set border 3", "set tics nomirror",
                  "set arrow from 1,-0.7 to 1,%r nohead lc rgb '#000000' dt 2" % (len(rows) - 0.3),
                  "set xlabel 'ratio (log scale)'", "set tmargin 4", "set rmargin 6",
                  "set multiplot title %s" % gp_str(title),
                  "plot %s using 2:1:3:4:5 with xerrorbars lc rgb variable pt 7 ps 0.8 lw 1.5" % gp_str(dat),
                  "unset multiplot"]
        return gnuplot("\n".join(script) + "\n", png)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


CAT_COLORS = ["#4477aa", "#66ccee", "#ccbb44", "#228833", "#ee6677", "#aa3377", "#ee7733", "#bbbbbb"]


def profile_chart(s, machine, png, when):
    """The stacked bars of a table's CPU breakdowns: us per request by category, one bar per contender."""
    rows = [(c, s["profiles"][c]) for c in s["contenders"] if c in s["profiles"] and not s["profiles"][c].get("error")]
    if not rows:
        return False
    tmp = tempfile.mkdtemp(prefix="weft-prof-")
    try:
        dat = os.path.join(tmp, "p.dat")
        with open(dat, "w") as f:
            for c, p in rows:
                f.write("%s %s\n" % (gp_str(wrap_label(s["labels"].get(c, c))),
                                     " ".join("%r" % p["us_per_req"].get(k, 0.0) for k in cpuprofile.CATEGORY_NAMES)))
        plots = []
        for i, (k, lab) in enumerate(cpuprofile.CATEGORIES):
            plots.append("%s using %d%s title %s lc rgb '%s'" % (gp_str(dat) if i == 0 else "''", i + 2,
                                                                ":xtic(1)" if i == 0 else "", gp_str(lab),
                                                                CAT_COLORS[i % len(CAT_COLORS)]))
        title = textwrap.fill("weft benchmark - %s: where the server's CPU goes, us per request (perf cpu-clock "
                              "samples with call chains, over a run apart from the measured ones)" % s["name"], 110)
        title += "\n%s CPUs, Linux %s; %s" % (machine.get("nproc"), machine.get("kernel"), when)
        width = max(1000, 170 * len(rows) + 520)
        labels = []
        for i, (c, p) in enumerate(rows):
            labels.append("set label %d %s at %d,%r center font ',9'" % (i + 1, gp_str(fnum(p.get("cpu_us_per_req")) + " us"),
                                                                     i, p.get("cpu_us_per_req", 0) * 1.03))
        script = ["set encoding utf8", "set terminal pngcairo size %d,640 font 'DejaVu Sans,10' noenhanced" % width,
                  "set output %s" % gp_str(png), "set style data histograms",
                  "set style histogram rowstacked", "set style fill solid 0.85 border -1", "set boxwidth 0.6",
                  "set key outside right top vertical Left reverse font ',9'", "set grid ytics lc rgb '#dddddd'",
                  "set ylabel 'server CPU us per request'",
                  "set yrange [0:%r]" % (1.15 * max(p.get("cpu_us_per_req", 0) or 0 for _, p in rows) or 1),
                  "set bmargin 6", "set tmargin 6",
                  "set multiplot title %s font ',11'" % gp_str(title)] + labels + ["plot " + ", ".join(plots),
                                                                               "unset multiplot"]
        return gnuplot("\n".join(script) + "\n", png)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- report.md --------------------------------------------------------------------------------------

def md_cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def machine_section(recs):
    m = next((r for r in recs if r.get("type") == "machine"), {})
    lines = ["## Machine", ""]
    lines.append("| | |")
    lines.append("|---|---|")
    lines.append("| CPU | %s, %s CPUs%s |" % (m.get("cpu", "?"), m.get("nproc", "?"), " (a VM)" if m.get("hypervisor") else ""))
    lines.append("| kernel | Linux %s (%s), %s |" % (m.get("kernel", "?"), m.get("arch", "?"), m.get("os", "?")))
    lines.append("| memory | %s GiB |" % m.get("mem_total_gib", "?"))
    vul = m.get("vulnerabilities") or {}
    import machine as mach
    on = mach.mitigation_summary(vul)
    lines.append("| mitigations in force | %s%s |" % (md_cell("; ".join(on) or "none reported"),
                                                   " (kernel command line: `%s`)" % m["cmdline_mitigations"]
                                                   if m.get("cmdline_mitigations") else ""))
    lines.append("| liburing | %s |" % (m.get("liburing") or "?"))
    for u in [r for r in recs if r.get("type") == "uring"]:
        calls = u.get("calls")
        if isinstance(calls, dict) or not calls:
            text = (calls or {}).get("error", "no io_uring_setup call seen") if isinstance(calls, dict) else \
                "no io_uring_setup call seen"
        else:
            ok = [c for c in calls if str(c.get("result", "")).lstrip("-").isdigit() and not str(c["result"]).startswith("-")]
            refused = [c for c in calls if c not in ok]
            text = ""
            if ok:
                c = ok[-1]
                text = "setup flags %s (%d SQ / %d CQ entries)" % ("\\|".join(c["flags"]) or "none", c["entries"],
                                                                   c.get("cq_entries", 0))
            if refused:
                text += "; refused first: %s" % ", ".join("\\|".join(c["flags"]) + " (" + str(c["result"]) + ")"
                                                          for c in refused)
        lines.append("| io_uring: %s | %s |" % (md_cell(u.get("who", "?")), text))
    feats = next((c.get("features") for u in recs if u.get("type") == "uring" and isinstance(u.get("calls"), list)
                  for c in u["calls"] if c.get("features")), None)
    if feats:
        lines.append("| io_uring features (kernel) | %s |" % ", ".join(feats))
    lines.append("| io_uring_disabled, perf_event_paranoid | %s, %s |" % (m.get("io_uring_disabled", "?"),
                                                                         m.get("perf_event_paranoid", "?")))
    for b in [r for r in recs if r.get("type") == "busy"]:
        who = ", ".join("%s %.2f" % (x["name"], x["cpus"]) for x in b.get("busiest", [])) or "-"
        lines.append("| CPUs busy without the benchmark, %s | %.2f CPUs (busiest: %s) |" % (b.get("when", ""),
                                                                                        b.get("cpus", 0), who))
    return lines


def verdict_rows(summaries):
    rows, trows = [], []
    for s in summaries:
        for c in s["comparisons"]:
            if c["headline"]:
                rows.append((s, c))
        for t in s["targets"]:
            trows.append((s, t))
    return rows, trows


def cmp_row(s, c):
    info = s["metrics"][c["metric"]]
    d = c["ratio"]
    ci = "[%s, %s]" % (fratio(d["lo"]).rstrip("x"), fratio(d["hi"]).rstrip("x")) if d.get("lo") is not None else "-"
    flag = ""
    if c["kept_disturbed"]:
        flag = " (%d disturbed round%s included)" % (c["kept_disturbed"], "s" if c["kept_disturbed"] != 1 else "")
    return "| %s | %s | %s | %s | %s | %d | **%s**%s |" % (
        s["name"], md_cell(info["short"]), md_cell(cmp_name(c, " vs ")), fratio(d.get("est")), ci, d.get("n", 0),
        c["verdict"], flag)


def cmp_name(c, sep=" / "):
    if c.get("control"):
        return "%s%s%s, each over its run's %s" % (c["contender"], sep, c["ref"], c["control"])
    return "%s%s%s" % (c["contender"], sep, c["ref"])


def target_row(s, t):
    d = t["value"]
    if t["form"] == "value":
        val = fnum(d.get("est")) + " " + t.get("unit", "")
        ci = "[%s, %s]" % (fnum(d["lo"]), fnum(d["hi"])) if d.get("lo") is not None else "-"
    else:
        val = fratio(d.get("est"))
        ci = "[%s, %s]" % (fratio(d["lo"]).rstrip("x"), fratio(d["hi"]).rstrip("x")) if d.get("lo") is not None else "-"
    return "| %s | %s | %s | %s | %d | **%s** |" % (s["name"], md_cell(t["text"]), val, ci, d.get("n", 0), t["verdict"])


def table_md(s, chart_file, prof_file, ratio_file=None):
    lines = ["## %s" % s["title"], "", s["what"] + ".", "", "*%s.*" % s["placement"], ""]
    runs = s["runs"]
    lines.append("Rounds: %d; runs rerun because other processes used the CPUs: %d; runs still disturbed after "
                 "that: %d (left out of an interval when %d clean pairs remain)." % (
                     runs["rounds"], runs["reruns"], runs["disturbed_kept"], MIN_CLEAN))
    lines.append("")
    metrics = [m for m, i in s["metrics"].items()]
    lines.append("| contender | " + " | ".join(md_cell("%s (%s)" % (s["metrics"][m]["short"], s["metrics"][m]["unit"])
                                                    if s["metrics"][m]["unit"] and not s["metrics"][m]["percent"]
                                                    else s["metrics"][m]["short"]) for m in metrics) + " |")
    lines.append("|---|" + "---:|" * len(metrics))
    for c in s["contenders"]:
        v = s["values"].get(c, {})
        if not v:
            why = (s["failures"].get(c) or s["failures"].get("*") or [{"reason": "no figures"}])[0]["reason"]
            lines.append("| %s | FAILED: %s |" % (md_cell(s["labels"].get(c, c)), md_cell(why)) + " |" * (len(metrics) - 1))
            continue
        cells = []
        for m in metrics:
            x = v.get(m)
            info = s["metrics"][m]
            cells.append("%s <sub>%s–%s</sub>" % (fval(info, x["median"]), fval(info, x["min"]), fval(info, x["max"]))
                         if x else "-")
        lines.append("| %s | %s |" % (md_cell(s["labels"].get(c, c)), " | ".join(cells)))
    lines += ["", "Medians, with min–max of the rounds underneath."]
    if s["comparisons"]:
        lines += ["", "| figure | comparison | ratio | 95% CI | rounds | verdict |", "|---|---|---:|---|---:|---|"]
        for c in s["comparisons"]:
            row = cmp_row(s, c)
            lines.append("|" + row.split("|", 2)[2])
    if s["targets"]:
        lines += ["", "| target | value | 95% CI | rounds | outcome |", "|---|---:|---|---:|---|"]
        for t in s["targets"]:
            lines.append("|" + target_row(s, t).split("|", 2)[2])
    for c, fl in s["failures"].items():
        if c != "*" and s["values"].get(c):
            lines.append("")
            lines.append("%s: %d run(s) failed (%s)." % (c, len(fl), md_cell("; ".join(
                "round %s: %s" % (f["round"], f["reason"]) for f in fl[:3]))))
    if s["notes"]:
        lines.append("")
        lines += ["- " + md_cell(n) for n in s["notes"]]
    if chart_file:
        lines += ["", "![%s](%s)" % (s["name"], chart_file)]
    if ratio_file:
        lines += ["", "![%s: ratios with 95%% intervals](%s)" % (s["name"], ratio_file)]
    if s["profiles"]:
        lines += ["", "### Where the CPU goes: %s" % s["title"], "",
                  "Server CPU per request by category (µs), from `perf record -e cpu-clock -g` over a window of its own "
                  "(a separate run of each server at the same load): each category's share of the samples times "
                  "the server's CPU time per request over that window. Coverage: the share of that CPU time the "
                  "samples account for. See docs/benchmarks.md for which kernel functions count where.", ""]
        cats = cpuprofile.CATEGORIES
        lines.append("| contender | total | " + " | ".join(l for _, l in cats) + " | samples | coverage |")
        lines.append("|---|---:|" + "---:|" * len(cats) + "---:|---:|")
        for c in s["contenders"]:
            p = s["profiles"].get(c)
            if not p:
                continue
            if p.get("error"):
                lines.append("| %s | no breakdown: %s |%s" % (md_cell(s["labels"].get(c, c)), md_cell(p["error"]),
                                                              " |" * (len(cats) + 2)))
                continue
            lines.append("| %s | %s | %s | %d | %s |" % (
                md_cell(s["labels"].get(c, c)), fnum(p.get("cpu_us_per_req")),
                " | ".join("%s <sub>%.0f%%</sub>" % (fnum(p["us_per_req"].get(k)), 100 * p["share"].get(k, 0))
                           for k, _ in cats), p.get("samples", 0),
                "%.0f%%" % (100 * p["coverage"]) if p.get("coverage") else "-"))
        tops = []
        for c in s["contenders"]:
            p = s["profiles"].get(c)
            if p and not p.get("error"):
                heavy = sorted(((sym, sh, k) for k in cpuprofile.CATEGORY_NAMES for sym, sh in p["top"].get(k, [])),
                               key=lambda x: -x[1])[:6]
                tops.append("- %s: %s" % (c, ", ".join("`%s` %.1f%% (%s)" % (sym, 100 * sh, k) for sym, sh, k in heavy)))
        if tops:
            lines += ["", "Heaviest frames (the frame that decided each sample's category):", ""] + tops
        if prof_file:
            lines += ["", "![%s CPU breakdown](%s)" % (s["name"], prof_file)]
    lines.append("")
    return lines


def git_info(root):
    def run(*cmd):
        try:
            p = subprocess.run(["git", "-C", root, *cmd], capture_output=True, text=True, timeout=10)
            return p.stdout.strip() if p.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            return None
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": run("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None,
            "branch": run("rev-parse", "--abbrev-ref", "HEAD")}


METHOD = """How to read it: every contender runs in the same invocation, interleaved, in an order that turns each
round. A ratio is the geometric mean of the per-round ratios (contender's figure over the reference's,
taken in the same round), with a 95% confidence interval from a paired Student t interval on the
logarithms of those ratios (bench/stats.py). The verdict is *faster* or *slower* when the whole interval
is beyond the noise band of {band} around 1 (1/{hi} to {hi}), *no difference within noise* when it reaches
into it. The table holds each workload's primary figures: for a server its CPU per request (echo's at a
fixed offered rate); the closed-loop rates shown beside them are judged in their own tables. A target is *met* when the whole
interval is on its side of the bound, *not met* when the whole interval is on the other side, and
*undecided* when it straddles the bound; a target to reach a reference where both meet the same ceiling
(files-parity: a disk both sleep on) is also met, as *level*, when its interval reaches the bound and
falls short of it by less than the band. A run during which other processes used more than {thr} of a CPU
(from /proc/stat, minus the benchmark's own processes and the kernel threads its I/O keeps busy:
ksoftirqd, kblockd's workers) is run again (up to {retries} times);
one still disturbed is kept, marked, and left out of an interval when {mc} undisturbed pairs remain."""


def finish(outdir, recs=None, quiet=False):
    """Writes report.md, results.json and the charts of a run into outdir; prints the verdict table."""
    outdir = os.path.abspath(outdir)
    recs = recs if recs is not None else read_records(os.path.join(outdir, "raw.jsonl"))
    run = next((r for r in recs if r.get("type") == "run"), {})
    machine = next((r for r in recs if r.get("type") == "machine"), {})
    names = tables_in(recs)
    summaries = [summarize(n, recs) for n in names]
    when = run.get("started_utc", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    charts, prof_charts, ratio_charts = {}, {}, {}
    have_gnuplot = shutil.which("gnuplot") is not None
    for s in summaries:
        if not have_gnuplot:
            break
        png = os.path.join(outdir, "%s.png" % s["name"])
        if chart(s, machine, png, when):
            charts[s["name"]] = os.path.basename(png)
        png = os.path.join(outdir, "%s-ratios.png" % s["name"])
        if ratio_chart(s, machine, png, when):
            ratio_charts[s["name"]] = os.path.basename(png)
        if s["profiles"]:
            png = os.path.join(outdir, "%s-cpu.png" % s["name"])
            if profile_chart(s, machine, png, when):
                prof_charts[s["name"]] = os.path.basename(png)
    doc = {"schema": 2, "run": run, "machine": machine, "tables": summaries, "charts": charts,
           "ratio_charts": ratio_charts,
           "profile_charts": prof_charts, "records": os.path.join(".", "raw.jsonl")}
    with open(os.path.join(outdir, "results.json.tmp"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(os.path.join(outdir, "results.json.tmp"), os.path.join(outdir, "results.json"))

    rows, trows = verdict_rows(summaries)
    md = ["# weft benchmark report: %s" % (run.get("title") or run.get("mode", "?") + " run"), ""]
    git = run.get("git") or {}
    md.append("`%s` — started %s, took %s s; weft %s%s%s." % (
        run.get("command", "bench/run"), when, run.get("duration_s", "?"),
        (git.get("commit") or "?")[:12], " (with uncommitted changes)" if git.get("dirty") else "",
        ", branch " + git["branch"] if git.get("branch") else ""))
    if run.get("baseline"):
        md.append("")
        md.append("Before/after: every contender `X@baseline` is the same program from `%s`%s, run interleaved "
                  "with the current build's." % (run["baseline"].get("dir"), " (%s)" % run["baseline"]["rev"]
                                                   if run["baseline"].get("rev") else ""))
    md.append("")
    md += machine_section(recs)
    md += ["", "## Verdicts", ""]
    md += textwrap.wrap(METHOD.format(band="+-%g%%" % (100 * stats.NOISE), hi="%g" % (1 + stats.NOISE),
                                      thr=run.get("max_other_cpu", 0.2), retries=run.get("retries", 1), mc=MIN_CLEAN),
                        110) + [""]
    if rows:
        md += ["| table | figure | comparison | ratio | 95% CI | rounds | verdict |", "|---|---|---|---:|---|---:|---|"]
        md += [cmp_row(s, c) for s, c in rows]
    if trows:
        md += ["", "| table | target | value | 95% CI | rounds | outcome |", "|---|---|---:|---|---:|---|"]
        md += [target_row(s, t) for s, t in trows]
    failed = [(s["name"], c, (s["failures"].get(c) or s["failures"].get("*") or [{"reason": "no figures"}])[0]["reason"])
              for s in summaries for c in s["contenders"] if not s["values"].get(c)]
    if failed:
        md += ["", "Failed (no figures): " + "; ".join("%s %s: %s" % (n, c, md_cell(r)) for n, c, r in failed) + "."]
    md.append("")
    for s in summaries:
        md += table_md(s, charts.get(s["name"]), prof_charts.get(s["name"]), ratio_charts.get(s["name"]))
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write("\n".join(md) + "\n")

    if not quiet:
        print_verdicts(summaries, machine)
        print("report:  %s" % os.path.join(outdir, "report.md"))
        if not have_gnuplot:
            print("charts:  not drawn (gnuplot is not installed)")
    return summaries


def print_verdicts(summaries, machine):
    rows, trows = verdict_rows(summaries)
    print("Verdicts (%s CPUs, Linux %s; ratio = contender / reference, 95%% CI):" % (machine.get("nproc"),
                                                                                   machine.get("kernel")))
    for s, c in rows:
        info = s["metrics"][c["metric"]]
        print("  %-22s %-14s %-34s %-26s %s" % (s["name"], info["short"], cmp_name(c),
                                                fiv(c["ratio"]), cmp_word(c)))
    if trows:
        print("Targets:")
        n_met = 0
        for s, t in trows:
            n_met += t["verdict"] in (stats.MET, stats.LEVEL)
            print("  %-22s %-58s %-26s %s" % (s["name"], t["text"], target_text(t),
                                              t["verdict"].upper() if t["verdict"] == stats.NOT_MET else t["verdict"]))
        print("  %d of %d targets met" % (n_met, len(trows)))
    for s in summaries:
        for c in s["contenders"]:
            if not s["values"].get(c):
                why = (s["failures"].get(c) or s["failures"].get("*") or [{"reason": "no figures"}])[0]["reason"]
                print("  %s %s: FAILED - %s" % (s["name"], c, why))


DECIDED = (stats.FASTER, stats.SLOWER)  # the verdicts that claim a difference


def verdicts_of(outdir):
    """{(table, metric, contender, ref): (verdict, ratio, headline)} of every comparison a run's
    results.json holds."""
    with open(os.path.join(outdir, "results.json")) as f:
        doc = json.load(f)
    out = {}
    for s in doc["tables"]:
        for c in s["comparisons"]:
            out[(s["name"], c["metric"], c["contender"], c["ref"])] = (c["verdict"], c["ratio"], c["headline"])
    return out


def disagreements(a, b):
    """The comparisons two runs both made whose verdicts differ where either is a difference (faster,
    slower): a difference one run finds and the other does not, or finds the other way. Sorted."""
    return sorted(k for k in set(a) & set(b) if a[k][0] != b[k][0] and (a[k][0] in DECIDED or b[k][0] in DECIDED))


def overlap(r, q):
    """Whether two ratios' intervals (as_dict forms) share a point."""
    return None not in (r.get("lo"), r.get("hi"), q.get("lo"), q.get("hi")) and r["lo"] <= q["hi"] and q["lo"] <= r["hi"]


def agree(dir_a, dir_b):
    """Prints how two runs' verdicts compare, the verdict table's (report.md's first table) and then every
    other comparison; returns 0 if the verdict tables agree on every difference either found."""
    a, b = verdicts_of(dir_a), verdicts_of(dir_b)
    differ = disagreements(a, b)

    def cell(v):
        return "%s %s" % (v[0], fiv(v[1]))
    table_differs = False
    for title, headline in (("the verdict table", True), ("the other comparisons", False)):
        both = [k for k in set(a) & set(b) if a[k][2] == headline]
        decided = [k for k in both if a[k][0] in DECIDED or b[k][0] in DECIDED]
        these = [k for k in differ if a[k][2] == headline]
        print("%s: %d comparisons in both runs; %d found a difference in either; %d of those agree, %d differ" % (
            title, len(both), len(decided), len(decided) - len(these), len(these)))
        apart = [k for k in these if not overlap(a[k][1], b[k][1])]
        if these:
            print("  (%d of the %d with intervals that overlap: the same ratio, within both runs' noise, on either "
                  "side of an edge of the +-%g%% band)" % (len(these) - len(apart), len(these), 100 * stats.NOISE))
        for k in these:
            print("  differ%s: %s %s %s vs %s: %s | %s" % (" (intervals apart)" if k in apart else "", k[0], k[1], k[2],
                                                          k[3], cell(a[k]), cell(b[k])))
        table_differs |= headline and bool(these)
    return 1 if table_differs else 0


def between(dirs):
    """Prints, per table and figure, the between-run standard deviation of its ratios over several runs
    (stats.between_runs), from each run's raw records: the figures BETWEEN_RUNS in bench/workloads.py
    holds."""
    per = {}
    for d in dirs:
        recs = read_records(os.path.join(d, "raw.jsonl"))
        for name in tables_in(recs):
            run = {}
            for c in summarize(name, recs)["comparisons"]:
                r = c["ratio"]
                if c.get("control") or r.get("est") is None or r.get("se") is None:
                    continue
                run.setdefault(c["metric"], {})[(c["contender"], c["ref"])] = (math.log(r["est"]), r["se"])
            for metric, ratios in run.items():
                per.setdefault((name, metric), []).append(ratios)
    for (name, metric) in sorted(per):
        sigma, n = stats.between_runs(per[(name, metric)])
        if n:
            print("%-28s %-26s %.3f  (%d ratios, %d runs)" % (name, metric, sigma, n, len(per[(name, metric)])))
    return 0


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--between":
        return between(sys.argv[2:])
    if len(sys.argv) == 4 and sys.argv[1] == "--agree":
        return agree(sys.argv[2], sys.argv[3])
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(sys.argv) == 2 else 2
    finish(sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
