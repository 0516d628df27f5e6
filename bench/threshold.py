"""Where threads start to pay: each kernel timed always serial and always parallel, over sizes.

    python bench/threshold.py

The library is built twice, with `-DTDSL_PARALLEL_MIN` forced to 0 (every loop on
threads) and to a huge value (none), through TDSL_CC; each build is timed in a
process of its own. The crossover of an add-like kernel is what TDSL_PARALLEL_MIN
is set from (templates/c/prelude.c.j2); a kernel calling math functions counts each
point as 1 + 1 per call, and the W1 row shows that this puts it near its own crossover.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

SIZES = (1024, 4096, 16384, 65536, 262144, 1048576)

CHILD = """
import json, statistics, sys, time
import numpy as np, tdsl
m = tdsl.compile('''
fn axpy(b: f64[n], s: f64, c: f64[n]) -> f64[n] { return b + s * c }
fn w1(x: f32[n], a: f32, b: f32, c: f32) -> f32[n] { return a * exp(-b * x) + c * sin(x) }
''', filename="threshold.tdsl")
result = {}
for n in json.loads(sys.argv[1]):
    b, c = np.random.rand(n), np.random.rand(n)
    x = np.random.rand(n).astype(np.float32)
    ob, ox = np.empty(n), np.empty(n, np.float32)
    row = []
    for call in (lambda: m.axpy(b, 0.5, c, out=ob), lambda: m.w1(x, 1.5, 0.3, 2.0, out=ox)):
        call()
        inner = max(1, int(0.02 / max(1e-9, (lambda t: (call(), time.perf_counter() - t)[1])(time.perf_counter()))))
        samples = []
        for _ in range(9):
            t = time.perf_counter()
            for _ in range(inner):
                call()
            samples.append((time.perf_counter() - t) / inner)
        row.append(statistics.median(samples) * 1e6)
    result[n] = row
print(json.dumps(result))
"""


def timings(minimum: int, cache: str) -> dict:
    cc = os.environ.get("TDSL_CC") or os.environ.get("CC") or "cc"
    env = dict(os.environ, TDSL_CC=f"{cc} -DTDSL_PARALLEL_MIN={minimum}", TDSL_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(SIZES)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return {int(k): v for k, v in json.loads(out).items()}


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        serial, parallel = timings(2**62, cache), timings(0, cache)
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(tdsl default: passive)')}, "
          f"load average {os.getloadavg()[0]:.2f}\n")
    print("| n | axpy serial | axpy 2 threads | W1 f32 serial | W1 f32 2 threads |")
    print("|---|---|---|---|---|")
    for n in SIZES:
        (a1, w1), (a2, w2) = serial[n], parallel[n]
        print(f"| {n} | {a1:.1f} us | {a2:.1f} us | {w1:.1f} us | {w2:.1f} us |")


if __name__ == "__main__":
    main()
