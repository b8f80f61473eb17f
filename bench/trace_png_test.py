#!/usr/bin/env python3
"""trace_png_test.py OFFLOAD — bench/trace_png.py draws what a real trace holds.

Runs examples/offload (the path given) twice with WEFT_TRACE set, with the hash on the loop (--inline,
a watchdog limit of 5 ms, so the watchdog reports it) and on the executor, draws each trace and checks
the PNG (its signature and size) and what the script says it drew: three task rows, the stall in the
first, an executor row in the second. Skipped (exit 77) when matplotlib cannot be had. Standard
library only; meson runs it in suite 'bench'.
"""
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def fail(why):
    print("trace_png_test: " + why, file=sys.stderr)
    sys.exit(1)


def draw(offload, tmp, name, args):
    trace = os.path.join(tmp, name + ".json")
    png = os.path.join(tmp, name + ".png")
    env = dict(os.environ, WEFT_TRACE=trace)
    r = subprocess.run([offload, "--mib", "32"] + args, env=env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        fail("%s %s exited with %d: %s" % (offload, " ".join(args), r.returncode, r.stderr[-500:]))
    r = subprocess.run([sys.executable, os.path.join(HERE, "trace_png.py"), trace, "-o", png],
                       capture_output=True, text=True, timeout=300)
    if "matplotlib is missing" in r.stderr:
        print("skipped: " + r.stderr.strip())
        sys.exit(77)
    if r.returncode != 0:
        fail("trace_png.py exited with %d: %s" % (r.returncode, r.stderr[-800:]))
    with open(png, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        fail("%s is not a PNG" % png)
    width, height = struct.unpack(">II", head[16:24])
    if width < 800 or height < 300:
        fail("%s is %dx%d, too small for 4 rows and a legend" % (png, width, height))
    return r.stdout


def main():
    if len(sys.argv) != 2:
        fail("usage: trace_png_test.py OFFLOAD")
    with tempfile.TemporaryDirectory() as tmp:
        said = draw(sys.argv[1], tmp, "inline", ["--inline", "--slow-ms", "5"])
        if "3 task rows" not in said or " 0 executor rows" not in said or " 1 stalls" not in said:
            fail("--inline: drew %r; want 3 task rows, no executor row and the stall" % said)
        said = draw(sys.argv[1], tmp, "offloaded", [])
        if "3 task rows" not in said or " 1 executor rows" not in said or " 0 stalls" not in said:
            fail("offloaded: drew %r; want 3 task rows, an executor row and no stall" % said)
    print("ok")


if __name__ == "__main__":
    main()
