#!/usr/bin/env python3
"""trace_check.py FILE — checks a trace weft wrote (WEFT_TRACE) and prints its events for a test to read.

It fails (exit 1, the reason on stderr) unless the file is what Perfetto and chrome://tracing load:
strict JSON in UTF-8; "traceEvents" a list of events each with ph, name, pid and tid, and ts for all but
metadata; complete events ("X") with a duration of at least 0, never overlapping another on their row;
instants ("i") with a scope; async spans ("b"/"e") paired by id, each begin before its end under the same
name; every row that has events named; events in order of time; and "otherData" whose counts add up
(kept + dropped = recorded).

On success it prints one line per event, in file order, tab-separated:
    ph  ts_ns  dur_ns  row-name  event-name  args (JSON, keys sorted)
with times in integer nanoseconds and a backslash, tab or newline in a name written as \\\\, \\t
or \\n, so tests/test_trace.c can check values and order without a JSON parser of its own. Python
standard library only.
"""
import json
import sys


def fail(why):
    print("trace_check: " + why, file=sys.stderr)
    sys.exit(1)


def field(text):
    """A name as one field of a line: backslash, tab and newline written as \\, \\t and \\n."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def ns(us):
    return int(round(us * 1000))


def main():
    if len(sys.argv) != 2:
        fail("usage: trace_check.py FILE")
    try:
        with open(sys.argv[1], "rb") as f:
            raw = f.read()
        doc = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        fail("not a readable UTF-8 JSON file: %s" % e)
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        fail("no traceEvents list")
    other = doc.get("otherData")
    if not isinstance(other, dict):
        fail("no otherData")
    for key in ("events_recorded", "events_kept", "events_dropped", "ring_events", "backend"):
        if key not in other:
            fail("otherData lacks %s" % key)
    if other["events_kept"] + other["events_dropped"] != other["events_recorded"]:
        fail("kept + dropped != recorded: %r" % other)
    if other["events_kept"] > other["ring_events"]:
        fail("kept more events than the ring holds: %r" % other)

    names = {}
    last_ts = None
    spans = {}
    rows_end = {}
    events = []
    for i, e in enumerate(doc["traceEvents"]):
        where = "event %d (%r)" % (i, e)
        if not isinstance(e, dict):
            fail(where + ": not an object")
        for key, kind in (("ph", str), ("name", str), ("pid", int), ("tid", int)):
            if not isinstance(e.get(key), kind):
                fail(where + ": %s missing or not %s" % (key, kind.__name__))
        ph = e["ph"]
        if ph == "M":
            if e["name"] == "thread_name":
                names[(e["pid"], e["tid"])] = e["args"]["name"]
            continue
        if ph not in ("X", "i", "b", "e"):
            fail(where + ": unexpected ph")
        if not isinstance(e.get("ts"), (int, float)):
            fail(where + ": no ts")
        ts = ns(e["ts"])
        if last_ts is not None and ts < last_ts:
            fail(where + ": out of order (%d ns before the previous event)" % (last_ts - ts))
        last_ts = ts
        dur = 0
        row = (e["pid"], e["tid"])
        if ph == "X":
            if not isinstance(e.get("dur"), (int, float)) or e["dur"] < 0:
                fail(where + ": X without a duration >= 0")
            dur = ns(e["dur"])
            if ts < rows_end.get(row, 0):
                fail(where + ": overlaps the row's previous slice by %d ns" % (rows_end[row] - ts))
            rows_end[row] = ts + dur
        elif ph == "i":
            if e.get("s") not in ("t", "p", "g"):
                fail(where + ": instant without a scope")
        else:
            if "id" not in e or not isinstance(e.get("cat"), str):
                fail(where + ": async event without id or cat")
            key = (e["cat"], e["id"])
            if ph == "b":
                if key in spans:
                    fail(where + ": a second begin for id %r" % (e["id"],))
                spans[key] = (e["name"], ts)
            else:
                if key not in spans:
                    fail(where + ": an end without a begin")
                name, begin = spans.pop(key)
                if name != e["name"] or ts < begin:
                    fail(where + ": end does not match its begin (%s at %d ns)" % (name, begin))
        events.append((ph, ts, dur, row, e["name"], e.get("args", {}), e.get("s")))
    if spans:
        fail("%d async spans never end: %r" % (len(spans), list(spans)[:3]))
    out = []
    for ph, ts, dur, row, name, args, scope in events:
        if row not in names and scope != "g":
            fail("an event on row %r, which has no thread_name" % (row,))
        out.append("%s\t%d\t%d\t%s\t%s\t%s" % (ph, ts, dur, field(names.get(row, "-")), field(name),
                                              json.dumps(args, sort_keys=True, ensure_ascii=False)))
    sys.stdout.write("\n".join(out) + "\n")
    sys.stdout.write("otherData\t%s\n" % json.dumps(other, sort_keys=True))


if __name__ == "__main__":
    main()
