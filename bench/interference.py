"""tdsl's kernels next to NumPy's BLAS: OpenBLAS's pool or tdsl's, two threads or one.

    python bench/interference.py [--rounds 12]

One process, interleaved: each round runs every mode in turn, and a mode times NumPy's
hand-written logistic step, then tdsl's right after it (OpenBLAS's threads, when they are
its own, still spin then), tdsl's again after a 0.3 s pause (they sleep by then), and NumPy
matmuls after tdsl's call (1024^3, ten 256^3, a hundred 64x128x128 as an RNN step makes).
The modes switch NumPy's BLAS between OpenBLAS's own pool and tdsl's threads
(codegen/blas.py, `unshare` and `share_threads`), and tdsl's kernels between two threads
and one (libgomp's omp_set_num_threads).
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import tdsl
from tdsl.codegen import blas

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import peers  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--n", type=int, default=100_000)
    args = p.parse_args()
    m = tdsl.load(HERE.parent / "examples" / "logistic.tdsl", target="c")
    x, y, w, b, lr = peers.logistic_data(args.n, 100)
    n = args.n

    def numpy_step():
        p = 1 / (1 + np.exp(-(x @ w + b)))
        g = (p - y) / n
        return w - lr * (x.T @ g), b - lr * g.sum()

    def tdsl_step():
        m.train_step(x, y, w, b, lr)

    tdsl_step()
    if not blas._SHARED:
        sys.exit("NumPy's BLAS is not on tdsl's threads here (TDSL_SHARE_BLAS_THREADS=0, no OpenMP, "
                 "or an OpenBLAS without openblas_set_threads_callback_function)")
    library, prefix, _ = blas._SHARED
    gomp = ctypes.CDLL(ctypes.util.find_library("gomp") or "libgomp.so.1")
    rng = np.random.default_rng(0)
    a1024 = rng.standard_normal((1024, 1024)).astype(np.float32)
    a256 = rng.standard_normal((256, 256)).astype(np.float32)
    h, wh = rng.standard_normal((64, 128)).astype(np.float32), rng.standard_normal((128, 128)).astype(np.float32)
    matmuls = {"1024^3": lambda: a1024 @ a1024, "10 x 256^3": lambda: [a256 @ a256 for _ in range(10)],
               "100 x 64x128x128": lambda: [h @ wh for _ in range(100)]}
    modes = [("tdsl's pool", 2), ("tdsl's pool", 1), ("OpenBLAS's pool", 2), ("OpenBLAS's pool", 1)]
    found = {mode: {k: [] for k in ["numpy", "after", "pause", *matmuls]} for mode in modes}
    for _ in range(args.rounds):
        for mode in modes:
            pool, threads = mode
            if pool == "tdsl's pool":
                blas.share_threads(library, prefix)
            else:
                blas.unshare()
            gomp.omp_set_num_threads(threads)
            numpy_step()
            found[mode]["numpy"].append(timed(numpy_step))
            found[mode]["after"].append(timed(tdsl_step))
            for name, fn in matmuls.items():
                found[mode][name].append(timed(fn))
            time.sleep(0.3)
            found[mode]["pause"].append(timed(tdsl_step))
    blas.share_threads(library, prefix)
    gomp.omp_set_num_threads(os.cpu_count())
    print(f"logistic step {n}x100 f32, {args.rounds} rounds, load average {os.getloadavg()[0]:.2f}; medians, ms")
    print("| NumPy's BLAS on | tdsl threads | NumPy step | tdsl right after | NumPy / tdsl | tdsl after 0.3 s "
          "| " + " | ".join(f"NumPy {k}" for k in matmuls) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(matmuls))
    for mode, f in found.items():
        med = {k: statistics.median(v) * 1e3 for k, v in f.items()}
        ratio = statistics.median(a / b for a, b in zip(f["numpy"], f["after"]))
        print(f"| {mode[0]} | {mode[1]} | {med['numpy']:.2f} | {med['after']:.2f} | {ratio:.2f}x | {med['pause']:.2f} | "
              + " | ".join(f"{med[k]:.2f}" for k in matmuls) + " |")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
