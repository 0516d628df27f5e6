"""Benchmarks: tdsl against NumPy, numexpr, JAX and PyTorch, measured side by side.

    python bench/run.py [--target c] [--quick] [--only W1,softmax] [--rounds 15] [--peers numexpr,jax,torch]
    python bench/run.py --target opencl      # also times the C backend: OpenCL / C

Every workload times its implementations interleaved, call by call: a round calls each
peer (numexpr, JAX `jit`, `torch.compile`, where installed: `pip install -e .[peers]`),
then NumPy, then tdsl right after NumPy, each timed alone (calls under 1 ms in small
batches), and the ratios are taken per round: the cells give the median time and the
median of the per-round ratios NumPy / implementation. A machine shared with other work
slows every implementation of a round alike, so ratios hold where times drift. The
logistic step also runs a round where every call comes right after an untimed NumPy
matmul (OpenBLAS's threads then spin for a while: see docs/performance.md). Results
are checked to agree with NumPy first. On a target other than `c` the C backend is one
more implementation, and the table gives the target's time over C's.

Memory-bound workloads show the bytes tdsl streams per second (each input read once,
each result written once) and their share of the machine's triad (tdsl.profile's
`a = b + s*c`), timed in the same rounds; the header gives the triad the profiler keeps.
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

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import peers  # noqa: E402  (bench/peers.py)

SAMPLE_S = 1e-3   # calls shorter than this are timed in batches lasting about this long


@dataclass
class Workload:
    name: str
    goal: str
    numpy: Callable
    tdsl: Callable
    peers: dict = field(default_factory=dict)   # peer name -> callable (None: not installed)
    rtol: float = 1e-5
    speedup: float | None = None      # the goal as a speed-up over NumPy ...
    seconds: float | None = None      # ... or as a time per tdsl call
    moved: int | None = None          # bytes one call streams (memory-bound workloads)
    flops: int | None = None          # float operations of one call (compute-bound workloads)
    peer_goal: float | None = None    # the goal as a speed-up over the fastest peer
    before: Callable | None = None    # untimed, before every timed call
    notes: list = field(default_factory=list)
    versus: Callable | None = None    # the same work on the C backend (when the target is another)
    versus_goal: float | None = None  # at most this many times C's time

    def met(self, ratio: float, t_td: float, peer_ratio: float | None) -> bool:
        return (self.speedup is None or ratio >= self.speedup) and (self.seconds is None or t_td <= self.seconds) \
            and (self.peer_goal is None or peer_ratio is None or peer_ratio >= self.peer_goal)


def median_time(fn: Callable, repeat: int = 9, min_time: float = 0.05) -> float:
    """Seconds per call of `fn` alone (bench/conv.py): warm up, then the median of `repeat` timed
    batches, each repeating the call for at least `min_time` seconds."""
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


def interleaved(impls: dict, rounds: int, before: Callable | None = None) -> dict:
    """{label: [seconds per call, one per round]}: each round times every implementation once,
    in the order given (a batch of calls when one call is shorter than SAMPLE_S)."""
    batch = {}
    for label, fn in impls.items():
        fn()   # warm-up (and JIT compilation)
        start = time.perf_counter()
        fn()
        once = time.perf_counter() - start
        batch[label] = 1 if before is not None else max(1, int(SAMPLE_S / max(once, 1e-9)))
    times = {label: [] for label in impls}
    for _ in range(rounds):
        for label, fn in impls.items():
            if before is not None:
                before()
            k = batch[label]
            start = time.perf_counter()
            for _ in range(k):
                fn()
            times[label].append((time.perf_counter() - start) / k)
    return times


def median_ratio(slow: list, fast: list) -> float:
    return statistics.median(a / b for a, b in zip(slow, fast))


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
    goal = 12.0 if dtype == "f64" else 6.0
    return Workload(f"W1 a*exp(-b*x)+c*sin(x) {n / 1e6:g}M {dtype}", f">= {goal:g}x",
                    lambda: a * np.exp(-b * x) + c * np.sin(x), lambda: f(x, a, b, c), peers.w1(x, a, b, c),
                    rtol=1e-5 if dtype == "f32" else 1e-12, speedup=goal, moved=2 * x.nbytes)


def softmax_rows(target: str, n: int, k: int) -> Workload:
    f = compiled("fn sm(x: f32[n, k]) -> f32[n, k] { return softmax(x, axis=1) }", target).sm
    x = np.random.default_rng(0).standard_normal((n, k)).astype(np.float32)

    def ref():
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return Workload(f"row softmax {n}x{k} f32", ">= 2x best peer", ref, lambda: f(x), peers.softmax(x),
                    peer_goal=2.0, moved=2 * x.nbytes)


def matmul(target: str, m: int, n: int, k: int) -> Workload:
    f = compiled("fn mm(a: f32[m, k], b: f32[k, n]) -> f32[m, n] { return a @ b }", target).mm
    rng = np.random.default_rng(1)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    return Workload(f"matmul (m,n,k) = {m}x{n}x{k} f32", ">= 0.95x best peer", lambda: a @ b, lambda: f(a, b),
                    peers.matmul(a, b), rtol=1e-3, peer_goal=0.95, flops=2 * m * n * k)


def axpy(target: str, n: int) -> Workload:
    f = compiled("fn axpy(b: f64[n], s: f64, c: f64[n]) -> f64[n] { return b + s * c }", target).axpy
    rng = np.random.default_rng(2)
    b, c, s = rng.standard_normal(n), rng.standard_normal(n), 0.7
    return Workload(f"b + s*c {n / 1e6:g}M f64", ">= 1.4x", lambda: b + s * c, lambda: f(b, s, c),
                    peers.axpy(b, s, c), speedup=1.4, moved=3 * b.nbytes)


def logistic_step(target: str, n: int, d: int, after_blas: bool = False) -> Workload:
    m = tdsl.load(HERE.parent / "examples" / "logistic.tdsl", target=target)
    x, y, w, b, lr = peers.logistic_data(n, d)

    def ref():
        """The gradient as a NumPy user writes it, simplified by hand."""
        p = 1 / (1 + np.exp(-(x @ w + b)))
        g = (p - y) / n
        return w - lr * (x.T @ g), b - lr * g.sum()
    name = f"logistic train step {n}x{d} f32 (grad)" + (", each call after a NumPy matmul" if after_blas else "")
    return Workload(name, ">= 2.5x, 2x best peer", ref, lambda: m.train_step(x, y, w, b, lr),
                    peers.logistic(x, y, w, b, lr), rtol=1e-3, speedup=2.5, peer_goal=2.0, moved=x.nbytes + y.nbytes,
                    before=(lambda: x @ w) if after_blas else None)


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
    jstep = rnn_jax() if peers.module("JAX jit") is not None else None
    w.peers["JAX jit"] = (lambda: [a.block_until_ready() for a in jstep(xs, ys, h0, wx, wh, lr)]) if jstep else None
    w.notes.append("JAX: lax.scan + grad + jit")
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


# -- first calls in fresh processes ------------------------------------------------------------

# Times `import tdsl`, then the load of logistic.tdsl, then the first call of train_step;
# Python's start, NumPy's import and the data are not timed.
LOAD_SCRIPT = """
import sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import peers
x, y, w, b, lr = peers.logistic_data(int(sys.argv[4]), int(sys.argv[5]))
t0 = time.perf_counter()
import tdsl
import tdsl.targets
t1 = time.perf_counter()
m = tdsl.load(sys.argv[2], target=sys.argv[3])
t2 = time.perf_counter()
m.train_step(x, y, w, b, lr)
print(t1 - t0, t2 - t1, time.perf_counter() - t2)
"""

# The same for PyTorch: torch.compile's first call (Dynamo, Inductor, the C++ build), its caches
# in a new folder.
TORCH_FIRST_CALL = """
import sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import peers
torch = peers.module("torch.compile")
x, y, w, b, lr = peers.logistic_data(int(sys.argv[2]), int(sys.argv[3]))
args = [torch.from_numpy(a) for a in (x, y, w)] + [float(b), float(lr)]
step = torch.compile(peers.logistic_step_torch)
t0 = time.perf_counter()
step(*args)
print(0.0, 0.0, time.perf_counter() - t0)
"""


def first_calls(target: str, n: int, d: int, repeat: int, wanted: list[str]) -> list[str]:
    """Load + first call of logistic.tdsl's train_step, with an empty compile cache and then a
    filled one, each in a fresh process (the median of `repeat`); JAX's first jit call and
    torch.compile's first call of the same step, measured the same way.

    A first untimed load, in a cache of its own, stands for tdsl having been used once on this
    machine: Python's .pyc files and tdsl's parser and template caches exist (they belong to the
    installation, not to the module)."""
    path = HERE.parent / "examples" / "logistic.tdsl"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def child(script: str, args: list, **extra) -> tuple[float, float, float]:
        out = subprocess.run([sys.executable, "-c", script, str(HERE)] + [str(a) for a in args], check=True,
                             env=dict(env, **extra), capture_output=True, text=True).stdout
        return tuple(float(v) for v in out.split()[-3:])

    def tdsl_child(cache: str):
        return child(LOAD_SCRIPT, [path, target, n, d], TDSL_CACHE_DIR=cache)

    with tempfile.TemporaryDirectory() as prime:
        tdsl_child(prime)
    cold, warm = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(tdsl_child(cache))
            warm.append(tdsl_child(cache))
    rows = []
    goals = {"cold": 0.25, "warm": 0.020}   # issue 18: at or below JAX's first jit call; a warm load
    for label, key, runs in (("tdsl, empty compile cache", "cold", cold), ("tdsl, cache filled", "warm", warm)):
        imp, ld, first = (statistics.median(r[i] for r in runs) for i in range(3))
        goal = goals[key]
        timed = ld + first if key == "cold" else ld
        verdict = f"{'load + first call' if key == 'cold' else 'load'} <= {goal * 1e3:.0f} ms | " + \
            ("yes" if timed <= goal else "NO") if target == "c" else "- | -"
        rows.append(f"| {label} | import tdsl {imp * 1e3:.0f} ms | load {ld * 1e3:.1f} ms | "
                    f"first call {first * 1e3:.1f} ms | {(ld + first) * 1e3:.1f} ms | {verdict} |")
    for name, script, args in (("JAX jit", peers.JAX_FIRST_CALL, [n, d]), ("torch.compile", TORCH_FIRST_CALL, [n, d])):
        if name not in wanted:
            continue
        if peers.module(name) is None:
            rows.append(f"| {name} | not installed | | | | - | - |")
            continue
        runs = []
        for _ in range(max(1, repeat // 2)):
            with tempfile.TemporaryDirectory() as cache:
                runs.append(child(script, args, TORCHINDUCTOR_CACHE_DIR=cache, TRITON_CACHE_DIR=cache)[2])
        rows.append(f"| {name}, first call (trace + compile + run) | | | first call "
                    f"{statistics.median(runs) * 1e3:.1f} ms | {statistics.median(runs) * 1e3:.1f} ms | - | - |")
    return rows


# -- the table ---------------------------------------------------------------------------------

def as_numpy(value):
    if isinstance(value, (tuple, list)):
        return tuple(as_numpy(v) for v in value)
    if hasattr(value, "detach"):   # a torch tensor
        return value.detach().numpy()
    return np.asarray(value)


def agree(a, b, rtol: float) -> bool:
    a_t = as_numpy(a) if isinstance(a, (tuple, list)) else (as_numpy(a),)
    b_t = as_numpy(b) if isinstance(b, (tuple, list)) else (as_numpy(b),)
    return len(a_t) == len(b_t) and \
        all(np.allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=rtol) for x, y in zip(a_t, b_t))


def header(target: str, shown: list[str]) -> None:
    tdsl_cols = ["tdsl"] if target == "c" else ["tdsl c", f"tdsl {target}", f"{target} / c"]
    cols = ["workload", "NumPy"] + shown + tdsl_cols + ["tdsl / NumPy", "tdsl / best peer",
                                                        "tdsl GB/s (% of the triad's, GB/s)",
                                                        "goal", "met"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))


def run_one(w: Workload, target: str, shown: list[str], rounds: int, triad: Callable | None) -> str:
    expected = w.numpy()
    if not agree(w.tdsl(), expected, w.rtol):
        return f"| {w.name} | results DIFFER from NumPy | {w.goal} | NO |"
    impls, cells = {}, {}
    for name in shown:
        fn = w.peers.get(name, "-")
        if fn == "-":
            cells[name] = "-"
        elif fn is None:
            cells[name] = "not installed"
        elif not agree(fn(), expected, w.rtol * 10):
            cells[name] = "DIFFERS"
        else:
            impls[name] = fn
    impls["NumPy"] = w.numpy   # then tdsl right after NumPy, every round
    if w.versus is not None:
        impls["tdsl c"] = w.versus
    impls["tdsl"] = w.tdsl
    if w.moved and triad is not None:
        impls["triad"] = triad   # the machine's bandwidth in the same rounds
    times = interleaved(impls, rounds, w.before)
    t = {label: statistics.median(v) for label, v in times.items()}
    for name in shown:
        if name in impls:
            cells[name] = f"{_fmt(t[name])} ({median_ratio(times['NumPy'], times[name]):.2f}x)"
    ratio = median_ratio(times["NumPy"], times["tdsl"])
    peer_names = [p for p in shown if p in impls]
    best = min(peer_names, key=lambda p: t[p]) if peer_names else None
    peer_ratio = median_ratio(times[best], times["tdsl"]) if best else None
    vs_peer = f"{peer_ratio:.2f}x ({best})" if best else "-"
    if w.moved:
        gbs = w.moved / t["tdsl"] / 1e9
        rate = f"{gbs:.1f}"
        if "triad" in times:
            of_triad = statistics.median(w.moved / a / (TRIAD_BYTES / b) for a, b in zip(times["tdsl"], times["triad"]))
            rate += f" ({100 * of_triad:.0f}% of {TRIAD_BYTES / t['triad'] / 1e9:.1f})"
    elif w.flops:
        rate = f"{w.flops / t['tdsl'] / 1e9:.0f} GFLOP/s"
    else:
        rate = "-"
    row = [w.name, _fmt(t["NumPy"])] + [cells[name] for name in shown]
    if w.versus is None:
        met = "yes" if w.met(ratio, t["tdsl"], peer_ratio) else "NO"
        row += [_fmt(t["tdsl"]), f"{ratio:.2f}x", vs_peer, rate, w.goal, met]
    else:
        goal = f"<= {w.versus_goal}x c" if w.versus_goal else "-"
        over_c = median_ratio(times["tdsl"], times["tdsl c"])
        met = "-" if w.versus_goal is None else "yes" if over_c <= w.versus_goal else "NO"
        row += [_fmt(t["tdsl c"]), _fmt(t["tdsl"]), f"{over_c:.2f}x", f"{ratio:.2f}x", vs_peer, rate, goal, met]
    return "| " + " | ".join(row) + " |"


def notes(workloads: list[Workload]) -> None:
    for w in workloads:
        for note in w.notes:
            print(f"- {w.name}: {note}")


def _fmt(t: float) -> str:
    return f"{t * 1e6:.2f} us" if t < 1e-3 else f"{t * 1e3:.3f} ms"


TRIAD_BYTES = 0   # bytes one triad call moves (STREAM's count: 3 arrays)


def triad_bandwidth(quick: bool) -> tuple[Callable | None, str]:
    """The profiler's triad (tdsl.profile): its cached figure for the header, and a call of it
    to time in the rounds of each memory-bound workload (the machine's bandwidth as it is then)."""
    global TRIAD_BYTES
    try:
        from tdsl.pipeline import compile_module
        from tdsl.profile import TRIAD_SOURCE, machine_bandwidth, triad_bytes
        found = machine_bandwidth("c")
        n = (triad_bytes() >> 4 if quick else triad_bytes()) // 8
        triad = compile_module("c", TRIAD_SOURCE, "<tdsl triad>")["triad"]
    except Exception as err:   # no compiler: the table goes on without it
        return None, f"triad not measured ({err})"
    b, c, out = np.full(n, 1.0), np.full(n, 2.0), np.empty(n)
    TRIAD_BYTES = 3 * b.nbytes
    return (lambda: triad(b, c, 3.0, out=out)), f"triad {found.gbs:.1f} GB/s ({found.how})"


PEER_KEYS = {"numexpr": "numexpr", "jax": "JAX jit", "torch": "torch.compile"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="c", choices=tdsl.targets.compiled())
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    p.add_argument("--only", help="comma-separated substrings of workload names")
    p.add_argument("--rounds", type=int, help="interleaved rounds per workload (default 15, 5 with --quick)")
    p.add_argument("--peers", default="numexpr,jax,torch", help="peers to time: numexpr,jax,torch or none")
    args = p.parse_args()
    wanted = [PEER_KEYS[k] for k in args.peers.split(",") if k in PEER_KEYS]
    rounds = args.rounds or (5 if args.quick else 15)
    scale = 100 if args.quick else 1
    q = 8 if args.quick else 1
    t = args.target
    logistic_n = 100_000 // scale
    makers = [
        lambda t: w1(t, "f64", 10_000_000 // scale), lambda t: w1(t, "f32", 10_000_000 // scale),
        lambda t: softmax_rows(t, 4096 // scale, 1024),
        lambda t: matmul(t, 1024 // q, 1024 // q, 1024 // q), lambda t: matmul(t, 256 // q, 256 // q, 256 // q),
        lambda t: matmul(t, 4096 // q, 4096 // q, 64),
        lambda t: logistic_step(t, logistic_n, 100), lambda t: logistic_step(t, logistic_n, 100, after_blas=True),
        lambda t: axpy(t, 20_000_000 // scale), lambda t: call_overhead(t),
        lambda t: heat(t, 512 // (4 if args.quick else 1), 500 // (10 if args.quick else 1)),
        lambda t: rnn_train(t, 100 // (10 if args.quick else 1), 64, 128 // (4 if args.quick else 1)),
        lambda t: loop_overhead(t, 10_000_000 // scale),
    ]
    names_only = args.only.split(",") if args.only else None
    workloads = []
    for make in makers:
        w = make(t)
        if names_only and not any(k in w.name for k in names_only):
            continue
        if t != "c":   # the same workload on the C backend, for the target's time over C's
            w.versus = make("c").tdsl
            w.versus_goal = 1.5 if w.name.startswith("W1") and w.name.endswith("f64") else None
        workloads.append(w)
    shown = [name for name in peers.PEERS if name in wanted]
    triad, how = triad_bandwidth(args.quick)
    print(f"tdsl {tdsl.__version__}, target {t}, NumPy {np.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; {rounds} interleaved rounds; {how}")
    for name in shown:
        mod = peers.module(name)
        print(f"- {name}: {getattr(mod, '__version__', '?') if mod else 'not installed (pip install -e .[peers])'}")
    print()
    header(t, shown)
    for w in workloads:
        print(run_one(w, t, shown, rounds, triad), flush=True)
    notes(workloads)
    if not args.only or any(k in "first call load" for k in names_only):
        print()
        print("| first call of logistic.tdsl train_step, fresh process | import | load | first call | "
              "load + first call | goal | met |")
        print("|---|---|---|---|---|---|---|")
        for row in first_calls(t, logistic_n, 100, 3 if args.quick else 5, shown):
            print(row, flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
