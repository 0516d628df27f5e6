"""Benchmark: sort, argsort and cumsum of 10M f32 on a tdsl target beside NumPy, in one run.

    python bench/sort.py [--target c] [--n 10000000] [--repeat 7]

Each implementation is timed in a block of its own (a warm-up call, then the median of
`--repeat` calls); results are checked against NumPy's first. The ratio printed is
NumPy's time over tdsl's: above 1, tdsl is faster. The goal: sort at least 1x np.sort.
NumPy's counterparts: np.sort (its default introsort/radix), np.argsort(kind="stable")
(tdsl's argsort is stable), np.cumsum.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import tdsl

SOURCE = """
fn sorted(x: f32[n]) -> f32[n] {
    return sort(x)
}
fn order(x: f32[n]) -> i64[n] {
    return argsort(x)
}
fn running(x: f32[n]) -> f32[n] {
    return cumsum(x)
}
"""


def median_time(fn, repeat: int) -> float:
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="c")
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    module = tdsl.compile(SOURCE, target=args.target)
    x = np.random.default_rng(0).standard_normal(args.n).astype(np.float32)
    cases = [("sort", module.sorted, lambda: np.sort(x), "1x"),
             ("argsort", module.order, lambda: np.argsort(x, kind="stable"), "-"),
             ("cumsum", module.running, lambda: np.cumsum(x), "-")]
    print(f"{args.n:,} f32 on the {args.target} target (medians of {args.repeat}); ratio = NumPy / tdsl")
    print(f"{'workload':10} {'numpy ms':>10} {'tdsl ms':>10} {'ratio':>7} {'goal':>5}")
    for name, ours, theirs, goal in cases:
        expected, got = theirs(), ours(x)
        np.testing.assert_array_equal(got, expected)
        t_np = median_time(theirs, args.repeat)
        t_td = median_time(lambda: ours(x), args.repeat)
        print(f"{name:10} {t_np * 1e3:10.1f} {t_td * 1e3:10.1f} {t_np / t_td:7.2f} {goal:>5}")


if __name__ == "__main__":
    main()
