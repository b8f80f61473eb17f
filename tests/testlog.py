#!/usr/bin/env python3
"""Reads the JSON log of one `meson test` run and says how each test did, for tests/run.

    tests/testlog.py LOG.json --label CFG [--logdir DIR] [--valgrind] [--show-output]

Prints a line per test: the label, the test's name, its duration, and Criterion's "Synthesis" line
(or meson's result for a test that is not Criterion's). A failed test is followed by its failing
assertions and any sanitizer or memcheck report, indented. Counts individual Criterion tests: a test
without a Synthesis line counts as one; a test that failed without Criterion counting a failure (a
crash before the summary, a timeout, a sanitizer report at exit, a memcheck error with --valgrind)
counts one failure. Each test's full output goes to DIR/CFG-NAME.log. For tests/run, the last lines
are machine-readable: "=failed WHAT" per failure (each followed by "=failed   LINE"s, the lines that say
why), then "=counts PASSED FAILED".
"""
import argparse
import json
import os
import re
import sys

SYNTHESIS = re.compile(r"Synthesis: Tested: (\d+) \| Passing: (\d+)")
SANITIZER = re.compile(r"ERROR: (Address|Thread|Leak)Sanitizer|runtime error:|WARNING: ThreadSanitizer")
MEMCHECK = re.compile(r"ERROR SUMMARY: [1-9]|definitely lost: [1-9]")
MEMCHECK_DETAIL = re.compile(
    r"^\[(----|FAIL)\]|ERROR SUMMARY: [1-9]|definitely lost: [1-9]|Invalid (read|write)|uninitialised|"
    r"unhandled amd64-linux syscall|backend failed"
)
FAILING_LINE = re.compile(r"^\[(----|FAIL)\]|" + SANITIZER.pattern)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PASSING_RESULTS = {"OK", "EXPECTEDFAIL"}


def details(output, valgrind):
    """The lines that say why a test failed, at most a screenful."""
    lines = output.splitlines()
    if valgrind:
        counts = {}
        for line in lines:
            if MEMCHECK_DETAIL.search(line):
                key = re.sub(r"^==\d+== ", "", line).strip()
                counts[key] = counts.get(key, 0) + 1
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:12]
        return ["%7d %s" % (n, text) for text, n in ranked]
    return [line for line in lines if FAILING_LINE.search(line)][:40]


def reasons(output, valgrind):
    """A few lines for the summary at the end of tests/run: the first failed assertion and its message,
    or the first sanitizer or memcheck report, so that the last screen of a long run says what failed."""
    lines = details(output, valgrind)
    for i, line in enumerate(lines):
        if "Assertion Failed" in line or SANITIZER.search(line):
            return [l for l in lines[i:i + 6] if l.strip() not in ("[----]", "")]
    return lines[:6]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log")
    ap.add_argument("--label", required=True)
    ap.add_argument("--logdir")
    ap.add_argument("--valgrind", action="store_true", help="count memcheck errors in the output as failures")
    ap.add_argument("--show-output", action="store_true", help="print each test's output, indented")
    args = ap.parse_args()

    passed = failed = 0
    failures = []
    tests = []
    try:
        with open(args.log, encoding="utf-8", errors="replace") as f:
            tests = [json.loads(line) for line in f if line.strip()]
    except OSError as e:
        failures.append("%s: no test log (%s)" % (args.label, e.strerror))
    if not tests and not failures:
        failures.append("%s: no tests ran" % args.label)

    for t in tests:
        name = t["name"].split(" / ")[-1]
        result = t.get("result", "ERROR")
        output = ANSI.sub("", (t.get("stdout") or "") + (t.get("stderr") or ""))
        log_path = None
        if args.logdir:
            log_path = os.path.join(args.logdir, "%s-%s.log" % (args.label, name))
            with open(log_path, "w", encoding="utf-8") as f:
                f.write(output)
        synth = SYNTHESIS.findall(output)
        synth_line = next((l.strip() for l in reversed(output.splitlines()) if "Synthesis:" in l), None)
        if result == "SKIP":
            why = output.strip().splitlines()
            print("%-8s %-26s %6.1fs  skipped%s" % (args.label, name, t.get("duration", 0), ": " + why[0] if why else ""))
            continue
        if synth:
            tested, passing = (int(x) for x in synth[-1])
            p, fl = passing, tested - passing
        else:
            p, fl = (1, 0) if result in PASSING_RESULTS else (0, 1)
        note = ""
        if result not in PASSING_RESULTS and fl == 0:
            fl = 1
            if args.valgrind:
                p = max(p - 1, 0)
        if fl == 0 and SANITIZER.search(output):
            fl = 1
            note = " + a sanitizer report"
        memcheck_errors = len(MEMCHECK.findall(output)) if args.valgrind else 0
        if memcheck_errors:
            note = " + %d memcheck error report(s)" % memcheck_errors
            if fl == 0:
                fl = 1
                p = max(p - 1, 0)
        summary = synth_line or ("%s (exit %s)" % (result, t.get("returncode")))
        print("%-8s %-26s %6.1fs  %s%s" % (args.label, name, t.get("duration", 0), summary, note))
        if args.show_output:
            for line in output.splitlines():
                print("    " + line)
        if fl:
            if not args.show_output:
                for line in details(output, args.valgrind):
                    print("    " + line)
            failures.append("%s/%s (%s, exit %s%s)" % (
                args.label, name, result, t.get("returncode"), ", log " + log_path if log_path else ""))
            failures.extend("  " + line for line in reasons(output, args.valgrind))
        passed += p
        failed += fl

    failed += sum(1 for f in failures if not f.startswith(" ") and (f.endswith("no tests ran") or "no test log" in f))
    for f in failures:
        print("=failed " + f)
    print("=counts %d %d" % (passed, failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
