"""The NaN guard's cost: a guarded build against the normal one on a W1-like kernel, side by side.

    python bench/nan_guard.py [--target c] [--n 10000000] [--repeat 7]

The kernel is W1's elementwise chain (exp, sin) with a sum over it, on f64 and f32; both builds
run in this process, alternately, and the table gives each best time and their ratio (the goal:
guarded <= 1.5x normal). docs/performance.md ("NaN guard") quotes a run.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import tdsl

SOURCE = """fn w1(x: {t}[n], a: {t}, b: {t}, c: {t}) -> ({t}[n], {t}) {{
    y = a * exp(-b * x)
    z = y + c * sin(x)
    energy = sum(z * z) / n
    return z, energy
}}
"""


def best(f, args, repeat: int) -> float:
    """The best of `repeat` timed calls, after one untimed call."""
    f(*args)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        f(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="c")
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    opts = parser.parse_args()
    print(f"NaN guard, target {opts.target}, n = {opts.n:,}, best of {opts.repeat}")
    print(f"{'kernel':<40} {'normal':>10} {'guarded':>10} {'ratio':>7}")
    for t in ("f64", "f32"):
        m = tdsl.compile(SOURCE.format(t=t), opts.target, "w1.tdsl")
        x = np.linspace(0, 10, opts.n).astype({"f64": np.float64, "f32": np.float32}[t])
        args = (x, 1.5, 0.3, 2.0)
        normal, guarded = m.w1, (lambda *a: m.w1.nan_guard(*a))
        assert np.allclose(normal(*args)[1], guarded(*args)[1])
        a, b = [], []
        for _ in range(2):   # alternately, so that a change of load hits both
            a.append(best(normal, args, opts.repeat))
            b.append(best(guarded, args, opts.repeat))
        fast, slow = min(a), min(b)
        print(f"{'W1 chain + sum ' + t:<40} {fast * 1e3:8.2f}ms {slow * 1e3:8.2f}ms {slow / fast:6.2f}x")


if __name__ == "__main__":
    main()
