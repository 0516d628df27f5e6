"""Benchmark: the gradient of an embedding lookup (section 12: a scatter-add) against NumPy.

    python bench/scatter.py [--target c] [--rows 100000] [--dim 64] [--count 4096] [--runs 15] [--rounds 3]

loss = sum(take(table, idx) * upstream), table f32[100,000, 64], 4,096 indices: tdsl.grad
of it with respect to the table (a zeroed table plus one scatter-add, run through the
compiled function) beside NumPy's same gradient, `np.zeros` + `np.add.at` (NumPy 2's add.at
has a fast path for one integer index array), and beside the `np.add.at` call alone into a
table already zeroed. Each is timed in a block of its own (a warm-up, then the median of
`--runs`), the blocks in turn `--rounds` times, keeping each one's best median; checked
against NumPy first; the ratio NumPy / tdsl is printed (the goal: >= 1).
The peak memory of each is measured in a fresh process (the resident set's growth over
the call, which counts C allocations too), beside the table's own size.
"""
from __future__ import annotations

import os
import sys

# this folder holds bench/random.py, which would shadow the standard library's `random`
# (statistics and NumPy import it): run as a script, leave the folder off the import path
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

SOURCE = """
fn embedding_grad(table: f32[n, d], idx: i64[m], upstream: f32[m, d]) -> f32[n, d] {
    return grad(sum(take(table, idx) * upstream), table)
}
"""


def inputs(rows: int, dim: int, count: int):
    rng = np.random.default_rng(0)
    table = rng.normal(size=(rows, dim)).astype(np.float32)
    idx = rng.integers(0, rows, size=count)
    idx[: count // 8] = idx[0]    # some repeated indices, as real batches have
    upstream = rng.normal(size=(count, dim)).astype(np.float32)
    return table, idx, upstream


def implementations(target: str, table, idx, upstream) -> dict:
    import tdsl
    f = tdsl.compile(SOURCE, target=target).embedding_grad
    zeroed = np.zeros_like(table)

    def numpy_grad():
        out = np.zeros_like(table)
        np.add.at(out, idx, upstream)
        return out

    def add_at_only():
        np.add.at(zeroed, idx, upstream)   # accumulates across runs: timed, not checked
        return zeroed

    return {"tdsl": lambda: f(table, idx, upstream), "numpy zeros + add.at": numpy_grad,
            "add.at alone (table zeroed before)": add_at_only}


def median_time(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def status_bytes(field: str) -> int:
    """A size of /proc/self/status (Linux): VmRSS, the resident set; VmHWM, its peak."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def peak_growth(args, name: str) -> int:
    """In this (fresh) process: the peak resident set's growth over one call of `name`
    (the peak is reset first: writing 5 to /proc/self/clear_refs)."""
    fns = implementations(args.target, *inputs(args.rows, args.dim, args.count))
    # the first call: no spare result of an earlier call to recycle (a timed call would reuse one)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_bytes("VmRSS")
    out = fns[name]()
    peak = status_bytes("VmHWM")
    del out
    return max(peak - before, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="c")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--count", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peak-of", help=argparse.SUPPRESS)   # the child process of a memory measure
    args = parser.parse_args()
    if args.peak_of:
        print(json.dumps(peak_growth(args, args.peak_of)))
        return
    table, idx, upstream = inputs(args.rows, args.dim, args.count)
    fns = implementations(args.target, table, idx, upstream)
    np.testing.assert_allclose(fns["tdsl"](), fns["numpy zeros + add.at"](), rtol=1e-5, atol=1e-5)
    # blocks in turn, `--rounds` times: each implementation's best median (load from other
    # processes only ever adds time)
    times = {name: float("inf") for name in fns}
    for _ in range(args.rounds):
        for name, fn in fns.items():
            times[name] = min(times[name], median_time(fn, args.runs))
    peaks = {}
    for name in fns:
        child = [sys.executable, __file__, "--peak-of", name, "--target", args.target, "--rows", str(args.rows),
                 "--dim", str(args.dim), "--count", str(args.count)]
        peaks[name] = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout)
    mb = 1024 * 1024
    print(f"embedding gradient: table f32[{args.rows}, {args.dim}] ({table.nbytes / mb:.1f} MiB), "
          f"{args.count} indices, target {args.target}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    print(f"{'implementation':<38} {'median ms':>10} {'numpy/this':>11} {'peak MiB':>9}")
    base = times["numpy zeros + add.at"]
    for name, t in times.items():
        print(f"{name:<38} {t * 1e3:>10.3f} {base / t:>10.2f}x {peaks[name] / mb:>9.1f}")
    ratio = base / times["tdsl"]
    print(f"tdsl is {ratio:.2f}x numpy's gradient (goal >= 1x: {'met' if ratio >= 1 else 'NOT met'}); "
          f"{times['add.at alone (table zeroed before)'] / times['tdsl']:.2f}x the add.at call alone")


if __name__ == "__main__":
    main()
