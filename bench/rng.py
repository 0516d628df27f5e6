"""Random numbers: tdsl's rand against NumPy's Generator(Philox(key)).random, side by side.

    python bench/rng.py [--target c] [--size 10000000] [--repeat 9]

Each workload runs tdsl and NumPy interleaved (one call of each per round, so both see the same
machine state), checks that they agree, and prints the medians and NumPy's time over tdsl's
(above 1: tdsl is faster). Workloads: rand of `size` f64 and f32 values (bit for bit NumPy's),
and a dropout-like fused use, where(rand(k, shape) < p, x / (1 - p), 0), against NumPy's
random() followed by the same where.
"""
from __future__ import annotations

import os
import sys

# Run as a script, this file's folder is first on sys.path, and this file's name is the standard
# library's `random` (which `statistics`, `tempfile` and NumPy import): drop the folder first.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import tdsl  # noqa: E402

SOURCE = """
fn rand_f64(key: i64, x: f64[m]) -> f64[m] { return rand(key, m) }
fn rand_f32(key: i64, x: f32[m]) -> f32[m] { return rand(key, m, dtype=f32) }
fn dropout(key: i64, x: f64[r, c], p: f64) -> f64[r, c] {
    return where(rand(key, (r, c)) < p, 0.0, x / (1 - p))
}
"""


def numpy_rand(key: int, size: int, dtype=np.float64) -> np.ndarray:
    return np.random.Generator(np.random.Philox(key=key)).random(size, dtype)


def numpy_dropout(key: int, x: np.ndarray, p: float) -> np.ndarray:
    u = np.random.Generator(np.random.Philox(key=key)).random(x.shape)
    return np.where(u < p, 0.0, x / (1 - p))


def interleaved(cases: dict, repeat: int) -> dict:
    """Median (wall, CPU) seconds of each callable, one call of each per round, after a warm-up
    round. CPU time sums the threads': on a busy machine it is the steadier measure of work."""
    times = {name: ([], []) for name in cases}
    for round_ in range(repeat + 1):
        for name, call in cases.items():
            wall, cpu = time.perf_counter(), time.process_time()
            call()
            if round_:
                times[name][0].append(time.perf_counter() - wall)
                times[name][1].append(time.process_time() - cpu)
    return {name: (statistics.median(w), statistics.median(c)) for name, (w, c) in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="c")
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    m = tdsl.compile(SOURCE, target=args.target)
    key, n = 12345, args.size
    x64, x32 = np.zeros(n), np.zeros(n, dtype=np.float32)
    rows, cols = 1000, n // 1000
    x = np.random.default_rng(0).normal(size=(rows, cols))
    workloads = {
        "rand f64": (lambda: m.rand_f64(key, x64), lambda: numpy_rand(key, n)),
        "rand f32": (lambda: m.rand_f32(key, x32), lambda: numpy_rand(key, n, np.float32)),
        "dropout f64": (lambda: m.dropout(key, x, 0.1), lambda: numpy_dropout(key, x, 0.1)),
    }
    print(f"target {args.target}, {n:,} values, medians of {args.repeat} interleaved rounds, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'workload':<14}{'tdsl ms':>9}{'NumPy ms':>10}{'NumPy/tdsl':>12}{'tdsl CPU ms':>13}"
          f"{'NumPy CPU ms':>14}{'CPU ratio':>11}")
    for name, (ours, theirs) in workloads.items():
        np.testing.assert_array_equal(ours(), theirs())
        t = interleaved({"tdsl": ours, "numpy": theirs}, args.repeat)
        (wall, cpu), (np_wall, np_cpu) = t["tdsl"], t["numpy"]
        print(f"{name:<14}{wall * 1e3:>9.1f}{np_wall * 1e3:>10.1f}{np_wall / wall:>11.2f}x{cpu * 1e3:>13.1f}"
              f"{np_cpu * 1e3:>14.1f}{np_cpu / cpu:>10.2f}x")

if __name__ == "__main__":
    main()
