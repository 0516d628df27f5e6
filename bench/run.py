"""Benchmarks: tdsl against NumPy (and numexpr where it applies), measured side by side.

    python bench/run.py [--target c] [--quick] [--only W1,softmax]
    python bench/run.py --target opencl      # also times the C backend: OpenCL / C

Each implementation is timed in a block of its own (warm-up, then the median of
at least 7 runs), never interleaved call by call: OpenBLAS's spinning threads slow
an OpenMP kernel that runs right after a BLAS call. Results are checked to agree
with NumPy before timing. Ratios are what to read: absolute times drift here.
On a target other than `c` the C backend runs each workload too, in the same
run, and the table gives the target's time over C's (the OpenCL goal: W1 f64
at most 1.5x C's time).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

import tdsl
import tdsl.targets

try:
    import numexpr
except ImportError:  # numexpr is optional: pip install -e .[bench]
    numexpr = None

HERE = Path(__file__).parent


@dataclass
class Workload:
    name: str
    goal: str
    numpy: Callable
    tdsl: Callable
    numexpr: Callable | None = None
    rtol: float = 1e-5
    speedup: float | None = None      # the goal as a speed-up over NumPy ...
    seconds: float | None = None      # ... or as a time per tdsl call
    notes: list = field(default_factory=list)
    versus: Callable | None = None    # the same work on the C backend (when the target is another)
    versus_goal: float | None = None  # at most this many times C's time
    peer: tuple | None = None         # (name, callable): another library timed beside (JAX, ...)

    def met(self, t_np: float, t_td: float) -> bool:
        return (self.speedup is None or t_np / t_td >= self.speedup) and \
            (self.seconds is None or t_td <= self.seconds)

    def met_versus(self, t_td: float, t_c: float) -> str:
        return "-" if self.versus_goal is None else "yes" if t_td <= self.versus_goal * t_c else "NO"


def median_time(fn: Callable, repeat: int = 9, min_time: float = 0.05) -> float:
    """Seconds per call: warm up, then the median of `repeat` timed batches."""
    fn()
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    inner = max(1, int(min_time / max(once, 1e-9)))
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner)
    return statistics.median(samples)


def compiled(source: str, target: str):
    return tdsl.compile(source, target=target)


def w1(target: str, dtype: str, n: int) -> Workload:
    src = f"""
fn w1(x: {dtype}[n], a: {dtype}, b: {dtype}, c: {dtype}) -> {dtype}[n] {{
    return a * exp(-b * x) + c * sin(x)
}}"""
    f = compiled(src, target).w1
    npd = np.float64 if dtype == "f64" else np.float32
    x = np.linspace(0, 10, n).astype(npd)
    a, b, c = npd(1.5), npd(0.3), npd(2.0)
    out = np.empty_like(x)
    ne = (lambda: numexpr.evaluate("a*exp(-b*x) + c*sin(x)", local_dict=dict(a=a, b=b, c=c, x=x),
                                   out=out)) if numexpr else None
    return Workload(f"W1 a*exp(-b*x)+c*sin(x) {n // 1_000_000}M {dtype}", ">= 8x" if dtype == "f64" else ">= 4x",
                    lambda: a * np.exp(-b * x) + c * np.sin(x), lambda: f(x, a, b, c), ne,
                    rtol=1e-5 if dtype == "f32" else 1e-12, speedup=8.0 if dtype == "f64" else 4.0)


def softmax_rows(target: str, n: int, k: int) -> Workload:
    f = compiled("fn sm(x: f32[n, k]) -> f32[n, k] { return softmax(x, axis=1) }", target).sm
    x = np.random.default_rng(0).standard_normal((n, k)).astype(np.float32)

    def ref():
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return Workload(f"row softmax {n}x{k} f32", ">= 4x", ref, lambda: f(x), speedup=4.0)


def matmul(target: str, n: int) -> Workload:
    f = compiled("fn mm(a: f32[n, k], b: f32[k, m]) -> f32[n, m] { return a @ b }", target).mm
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    return Workload(f"matmul {n}x{n}x{n} f32", ">= 0.9x", lambda: a @ b, lambda: f(a, b), rtol=1e-3, speedup=0.9)


def axpy(target: str, n: int) -> Workload:
    f = compiled("fn axpy(b: f64[n], s: f64, c: f64[n]) -> f64[n] { return b + s * c }", target).axpy
    rng = np.random.default_rng(2)
    b, c, s = rng.standard_normal(n), rng.standard_normal(n), 0.7
    out = np.empty_like(b)
    ne = (lambda: numexpr.evaluate("b + s*c", local_dict=dict(b=b, s=s, c=c), out=out)) if numexpr else None
    return Workload(f"b + s*c {n // 1_000_000}M f64", ">= 1.4x", lambda: b + s * c, lambda: f(b, s, c), ne,
                    speedup=1.4)


def logistic_step(target: str, n: int, d: int) -> Workload:
    m = tdsl.load(HERE.parent / "examples" / "logistic.tdsl", target=target)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    w = (rng.standard_normal(d) * 0.1).astype(np.float32)
    b, lr, eps = np.float32(0.0), np.float32(0.1), np.float32(1e-7)

    def ref():
        p = 1 / (1 + np.exp(-(x @ w + b)))
        g = -(y / (p + eps) - (1 - y) / (1 - p + eps)) * p * (1 - p) / n
        return w - lr * (x.T @ g), b - lr * g.sum()
    return Workload(f"logistic train step {n}x{d} f32 (grad)", ">= 1.8x", ref,
                    lambda: m.train_step(x, y, w, b, lr), rtol=1e-3, speedup=1.8)


# -- loops (section 11) ---------------------------------------------------------------------

HEAT = """
fn heat(u: f64[n, m], steps: i64, a: f64) -> f64[n, m] {
    for s in range(steps) {
        u[1:n - 1, 1:m - 1] = u[1:n - 1, 1:m - 1] + a * (u[2:, 1:m - 1] + u[:n - 2, 1:m - 1]
                                                     + u[1:n - 1, 2:] + u[1:n - 1, :m - 2] - 4.0 * u[1:n - 1, 1:m - 1])
    }
    return u
}"""


def heat(target: str, n: int, steps: int) -> Workload:
    f = compiled(HEAT, target).heat
    u = np.random.default_rng(4).random((n, n))

    def ref():
        v = u.copy()
        for _ in range(steps):
            v[1:-1, 1:-1] = v[1:-1, 1:-1] + 0.1 * (v[2:, 1:-1] + v[:-2, 1:-1] + v[1:-1, 2:] + v[1:-1, :-2]
                                                   - 4.0 * v[1:-1, 1:-1])
        return v
    return Workload(f"heat equation {n}x{n} f64, {steps} steps in one call", ">= 6x", ref,
                    lambda: f(u, steps, 0.1), rtol=1e-9, speedup=6.0)


RNN = """
fn rnn_loss(xs: f32[t, b, d], ys: f32[t, b, k], h0: f32[b, k], wx: f32[d, k], wh: f32[k, k]) -> f32 {
    h = h0
    total = 0.0
    for i in range(t) {
        h = tanh(xs[i] @ wx + h @ wh)
        total = total + sum(square(h - ys[i]))
    }
    return total / t
}

fn rnn_step(xs: f32[t, b, d], ys: f32[t, b, k], h0: f32[b, k], wx: f32[d, k], wh: f32[k, k],
            lr: f32) -> (f32[d, k], f32[k, k]) {
    gx, gh = grad(rnn_loss(xs, ys, h0, wx, wh), wx, wh)
    return wx - lr * gx, wh - lr * gh
}"""


def rnn_numpy(xs, ys, h0, wx, wh, lr):
    """Forward and backpropagation through time, as a NumPy user writes them."""
    t = xs.shape[0]
    hs = [h0]
    for i in range(t):
        hs.append(np.tanh(xs[i] @ wx + hs[-1] @ wh))
    gx, gh = np.zeros_like(wx), np.zeros_like(wh)
    dh = np.zeros_like(h0)
    for i in reversed(range(t)):
        dh = dh + (2.0 / t) * (hs[i + 1] - ys[i])
        da = dh * (1 - hs[i + 1] * hs[i + 1])
        gx += xs[i].T @ da
        gh += hs[i].T @ da
        dh = da @ wh.T
    return wx - lr * gx, wh - lr * gh


def rnn_jax():
    """The same step with JAX's lax.scan, jax.grad and jit, if JAX is installed."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None

    def loss(wx, wh, xs, ys, h0):
        def step(h, xy):
            x, y = xy
            h = jnp.tanh(x @ wx + h @ wh)
            return h, jnp.sum(jnp.square(h - y))
        _, per_step = jax.lax.scan(step, h0, (xs, ys))
        return jnp.sum(per_step) / xs.shape[0]

    @jax.jit
    def step(xs, ys, h0, wx, wh, lr):
        gx, gh = jax.grad(loss, argnums=(0, 1))(wx, wh, xs, ys, h0)
        return wx - lr * gx, wh - lr * gh
    return step


def rnn_train(target: str, t: int, b: int, d: int) -> Workload:
    f = compiled(RNN, target).rnn_step
    rng = np.random.default_rng(5)
    xs = rng.standard_normal((t, b, d)).astype(np.float32)
    ys = (rng.standard_normal((t, b, d)) * 0.5).astype(np.float32)
    h0 = np.zeros((b, d), np.float32)
    wx = (rng.standard_normal((d, d)) / np.sqrt(d)).astype(np.float32)
    wh = (rng.standard_normal((d, d)) / np.sqrt(d) * 0.5).astype(np.float32)
    lr = np.float32(0.01)
    w = Workload(f"RNN train step T={t} batch {b} {d}->{d} f32 (forward + BPTT)", ">= 2x",
                 lambda: rnn_numpy(xs, ys, h0, wx, wh, lr), lambda: f(xs, ys, h0, wx, wh, lr), rtol=2e-3,
                 speedup=2.0)
    jstep = rnn_jax()
    if jstep is not None:
        w.peer = ("JAX lax.scan + grad + jit", lambda: [a.block_until_ready() for a in jstep(xs, ys, h0, wx, wh, lr)])
    else:
        w.notes.append("JAX: not installed (pip install -e .[bench])")
    return w


def loop_overhead(target: str, n: int) -> Workload:
    f = compiled("fn count(n: i64) -> f64 {\n    s = 0.0\n    for i in range(n) { s = s + 1.0 }\n    return s\n}",
                 target).count

    def ref():
        s = 0.0
        for _ in range(n):
            s = s + 1.0
        return s
    return Workload(f"loop of {n // 1_000_000}M empty-ish iterations (s = s + 1.0)", "<= 20 ns/iteration",
                    ref, lambda: f(n), seconds=20e-9 * n)


def call_overhead(target: str) -> Workload:
    f = compiled("fn add(a: f64, b: f64) -> f64 { return a + b }", target).add
    return Workload("call overhead add(1.0, 2.0)", "<= 1.5 us", lambda: np.add(1.0, 2.0), lambda: f(1.0, 2.0),
                    seconds=1.5e-6)


LOAD_SCRIPT = """
import time, sys
t0 = time.perf_counter()
import tdsl
import tdsl.targets
t1 = time.perf_counter()
m = tdsl.load(sys.argv[1], target=sys.argv[2])
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def load_times(target: str, repeat: int = 5) -> list[str]:
    """First load with an empty compile cache, and a warm load, each in a fresh process.

    Python runs with its defaults (bytecode caching on) and a first untimed load, in a
    cache of its own, stands for tdsl having been used once on this machine: Python's
    .pyc files and the parser and template caches of tdsl itself exist (they belong to
    the installation, not to the module). The median of `repeat` fresh processes each.
    """
    path = HERE.parent / "examples" / "logistic.tdsl"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def load(cache: str) -> tuple[float, float]:
        out = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(path), target], check=True,
                             env=dict(env, TDSL_CACHE_DIR=cache), capture_output=True, text=True).stdout
        return tuple(float(v) for v in out.split())

    with tempfile.TemporaryDirectory() as prime:
        load(prime)
    cold, warm = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(load(cache))
            warm.append(load(cache))
    rows = []
    for label, runs, goal in (("cold (empty cache)", cold, 0.5), ("warm (cache filled)", warm, 0.030)):
        imp, ld = (statistics.median(r[i] for r in runs) for i in (0, 1))
        verdict = f"<= {goal * 1e3:.0f} ms | {'yes' if ld <= goal else 'NO'}" if target == "c" else "- | -"
        # `import tdsl` loads the API and the compiler on first use: compare the sums across versions
        rows.append(f"| load logistic.tdsl, {label}, fresh process | import tdsl {imp * 1e3:.0f} ms | "
                    f"load {ld * 1e3:.1f} ms (both {(imp + ld) * 1e3:.0f} ms) | {verdict} |")
    return rows


def agree(a, b, rtol: float) -> bool:
    a_t = a if isinstance(a, tuple) else (a,)
    b_t = b if isinstance(b, tuple) else (b,)
    return all(np.allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=rtol) for x, y in zip(a_t, b_t))


def run(workloads: list[Workload], target: str) -> None:
    if target == "c":
        print("| workload | NumPy | numexpr | tdsl | speed-up vs NumPy | goal | met |")
        print("|---|---|---|---|---|---|---|")
    else:
        print(f"| workload | NumPy | numexpr | tdsl c | tdsl {target} | speed-up vs NumPy | {target} / c "
              "| goal | met |")
        print("|---|---|---|---|---|---|---|---|---|")
    for w in workloads:
        if not agree(w.tdsl(), w.numpy(), w.rtol):
            print(f"| {w.name} | results DIFFER from NumPy | | | | {w.goal} | NO |")
            continue
        t_np = median_time(w.numpy)
        t_ne = median_time(w.numexpr) if w.numexpr else None
        t_c = median_time(w.versus) if w.versus else None
        t_td = median_time(w.tdsl)
        ne = f"{_fmt(t_ne)} ({t_np / t_ne:.2f}x)" if t_ne else "-"
        if w.peer is not None:
            t_peer = median_time(w.peer[1])
            w.notes.append(f"{w.peer[0]}: {_fmt(t_peer)} ({t_np / t_peer:.2f}x NumPy; tdsl is "
                           f"{t_peer / t_td:.2f}x its speed)")
        if t_c is None:
            met = "yes" if w.met(t_np, t_td) else "NO"
            print(f"| {w.name} | {_fmt(t_np)} | {ne} | {_fmt(t_td)} | {t_np / t_td:.2f}x | {w.goal} | {met} |",
                  flush=True)
        else:
            goal = f"<= {w.versus_goal}x c" if w.versus_goal else "-"
            print(f"| {w.name} | {_fmt(t_np)} | {ne} | {_fmt(t_c)} | {_fmt(t_td)} | {t_np / t_td:.2f}x | "
                  f"{t_td / t_c:.2f}x | {goal} | {w.met_versus(t_td, t_c)} |", flush=True)


def notes(workloads: list[Workload]) -> None:
    for w in workloads:
        for note in w.notes:
            print(f"- {w.name}: {note}")


def _fmt(t: float) -> str:
    return f"{t * 1e6:.2f} us" if t < 1e-3 else f"{t * 1e3:.3f} ms"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="c", choices=tdsl.targets.compiled())
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    p.add_argument("--only", help="comma-separated substrings of workload names")
    args = p.parse_args()
    scale = 100 if args.quick else 1
    t = args.target
    makers = [
        lambda t: w1(t, "f64", 10_000_000 // scale), lambda t: w1(t, "f32", 10_000_000 // scale),
        lambda t: softmax_rows(t, 4096 // scale, 1024), lambda t: matmul(t, 1024 // (8 if args.quick else 1)),
        lambda t: logistic_step(t, 100_000 // scale, 100), lambda t: axpy(t, 20_000_000 // scale),
        lambda t: call_overhead(t),
        lambda t: heat(t, 512 // (4 if args.quick else 1), 500 // (10 if args.quick else 1)),
        lambda t: rnn_train(t, 100 // (10 if args.quick else 1), 64, 128 // (4 if args.quick else 1)),
        lambda t: loop_overhead(t, 10_000_000 // scale),
    ]
    workloads = [m(t) for m in makers]
    if t != "c":   # the same workloads on the C backend, for the target's time over C's
        for w, c_twin in zip(workloads, (m("c") for m in makers)):
            w.versus = c_twin.tdsl
            w.versus_goal = 1.5 if w.name.startswith("W1") and w.name.endswith("f64") else None
    if args.only:
        keys = args.only.split(",")
        workloads = [w for w in workloads if any(k in w.name for k in keys)]
    print(f"tdsl {tdsl.__version__}, target {t}, NumPy {np.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}\n")
    run(workloads, t)
    notes(workloads)
    if not args.only:
        print()
        print("| load | | | goal | met |")
        print("|---|---|---|---|---|")
        for row in load_times(t):
            print(row)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
