"""conv2d forward + backward: tdsl against an im2col + BLAS NumPy version, and JAX's lax.conv.

    python bench/conv.py [--target c] [--batch 64] [--rounds 5] [--repeat 5]

The workload: x f32[64, 32, 28, 28], w f32[64, 32, 3, 3], padding 1; one call gives the
output and the gradients in x and w of sum(y * g) for a given upstream gradient g (a
training step's convolution). The NumPy version is the one a NumPy user writes: im2col by
`sliding_window_view`, one `matmul` forward, two backward, and col2im by adding the nine
shifted slices. Implementations are timed in blocks (warm-up, then the median of
`--repeat` batches), and the blocks interleaved over `--rounds` rounds; the result is each
one's median over the rounds. The goal: NumPy time / tdsl time >= 1.

Page faults per call are printed too: they are where the time goes when it is lost
(docs/language.md, "Convolutions and pooling"). NumPy asks for transparent huge pages for
its large arrays (madvise); the C target's buffers come from malloc, which does so only
with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (glibc 2.35 and later).
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys

import numpy as np

import tdsl
from run import median_time

SOURCE = """
fn conv_step(x: f32[b, c, h, w], k: f32[o, c, 3, 3], g: f32[b, o, h, w]) -> (f32[b, o, h, w], f32[b, c, h, w], f32[o, c, 3, 3]) {
    y = conv2d(x, k, padding=1)
    gx, gk = grad(sum(y * g), x, k)
    return y, gx, gk
}
"""


def faults_per_call(fn, calls: int = 3) -> float:
    """Minor page faults per call: memory touched for the first time (fresh allocations)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


def numpy_conv_step(x, w, g, pad=1):
    """im2col + BLAS, forward and backward, as a NumPy user writes it."""
    b, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))  # b c h w kh kw
    oh, ow = windows.shape[2:4]
    cols = windows.transpose(0, 1, 4, 5, 2, 3).reshape(b, c * kh * kw, oh * ow)   # copies once
    w2 = w.reshape(o, c * kh * kw)
    y = (w2 @ cols).reshape(b, o, oh, ow)
    g2 = g.reshape(b, o, oh * ow)
    gw = np.einsum("bol,bkl->ok", g2, cols, optimize=True).reshape(w.shape)
    gcols = (w2.T @ g2).reshape(b, c, kh, kw, oh, ow)
    gxp = np.zeros_like(xp)
    for i in range(kh):
        for j in range(kw):
            gxp[:, :, i:i + oh, j:j + ow] += gcols[:, :, i, j]
    return y, gxp[:, :, pad:pad + h, pad:pad + wd], gw


def jax_conv_step():
    """JAX's lax.conv and its vjp under jit, or None when JAX is missing."""
    try:
        import jax
    except ImportError:
        return None
    from jax import lax

    def step(x, w, g):
        y, vjp = jax.vjp(lambda x, w: lax.conv(x, w, (1, 1), [(1, 1), (1, 1)]), x, w)
        gx, gw = vjp(g)
        return y, gx, gw

    jitted = jax.jit(step)
    return lambda *args: jax.block_until_ready(jitted(*args))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="c")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 32, 28, 28), dtype=np.float32)
    w = (rng.standard_normal((64, 32, 3, 3), dtype=np.float32) / 17).astype(np.float32)
    g = rng.standard_normal((args.batch, 64, 28, 28), dtype=np.float32)
    step = tdsl.compile(SOURCE, target=args.target).conv_step
    impls = {"numpy": lambda: numpy_conv_step(x, w, g), f"tdsl {args.target}": lambda: step(x, w, g)}
    jax_step = jax_conv_step()
    if jax_step is not None:
        impls["jax"] = lambda: jax_step(x, w, g)

    expected = impls["numpy"]()
    for name, fn in impls.items():
        for got, want in zip(fn(), expected):
            np.testing.assert_allclose(np.asarray(got), want, rtol=2e-3, atol=2e-3, err_msg=name)

    times = {name: [] for name in impls}
    for _ in range(args.rounds):
        for name, fn in impls.items():
            times[name].append(median_time(fn, repeat=args.repeat, min_time=0.2))
    median = {name: statistics.median(ts) for name, ts in times.items()}
    faults = {name: faults_per_call(fn) for name, fn in impls.items()}
    t_np, t_td = median["numpy"], median[f"tdsl {args.target}"]
    print(f"conv2d forward + backward, x f32{list(x.shape)}, w f32{list(w.shape)}, padding 1")
    for name, t in median.items():
        print(f"  {name:10s} {t * 1e3:8.2f} ms  {faults[name]:8.0f} page faults a call   "
              f"(rounds: {', '.join(f'{s * 1e3:.1f}' for s in times[name])})")
    print(f"NumPy / tdsl: {t_np / t_td:.2f}x (goal >= 1x: {'met' if t_np >= t_td else 'NOT met'})")
    if "jax" in median:
        print(f"JAX / tdsl:   {median['jax'] / t_td:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
