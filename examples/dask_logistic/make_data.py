"""Write a logistic-regression data set as .npy chunk files, larger than memory if asked.

    python examples/dask_logistic/make_data.py --gb 30 --out /tmp/dask-ex/data [--features 64]
        [--chunk-mb 256] [--seed 0]

Writes `x_00000.npy` (f32[rows, d]), `y_00000.npy` (f32[rows]), ... and `meta.json` (the
sizes and the true weights). Rows are standard normal; a label is 1 where
`x @ w_true + b_true + noise > 0` (noise normal, `--noise` times the logit's spread), so a
trained model should find the direction of `w_true` and an accuracy near `meta["bayes"]`
(the accuracy of the true model on the noisy labels, measured while writing).

Chunk k is made from its own random stream (seed, k), written through a memory map in blocks
of at most 16 MiB of rows: memory stays bounded, and the data is the same whatever the order
or number of chunks written before.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

BLOCK_BYTES = 16 << 20


def true_model(features: int, seed: int) -> tuple[np.ndarray, float]:
    """The weights that label the data (unit norm, times 2: a clear but noisy boundary)."""
    rng = np.random.default_rng([seed, 1 << 30])
    w = rng.standard_normal(features)
    return (2.0 * w / np.linalg.norm(w)).astype(np.float32), 0.25


def write_chunk(out: Path, k: int, rows: int, w: np.ndarray, b: float, noise: float, seed: int) -> int:
    """Write chunk k (rows x features, and its labels); the number of labels the true model gets right."""
    rng = np.random.default_rng([seed, k])
    d = w.shape[0]
    x = np.lib.format.open_memmap(out / f"x_{k:05d}.npy", mode="w+", dtype=np.float32, shape=(rows, d))
    y = np.lib.format.open_memmap(out / f"y_{k:05d}.npy", mode="w+", dtype=np.float32, shape=(rows,))
    step = max(1, BLOCK_BYTES // (4 * d))
    right = 0
    for lo in range(0, rows, step):
        hi = min(rows, lo + step)
        block = rng.standard_normal((hi - lo, d), dtype=np.float32)
        logit = block @ w + b
        label = logit + noise * rng.standard_normal(hi - lo, dtype=np.float32) > 0
        x[lo:hi] = block
        y[lo:hi] = label
        right += int(np.count_nonzero((logit > 0) == label))
    x.flush()
    y.flush()
    del x, y
    return right


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, required=True, help="size of x on disk, in GB (1e9 bytes)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (created)")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--chunk-mb", type=float, default=256.0, help="size of one chunk of x, in MB")
    parser.add_argument("--noise", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    d = args.features
    row_bytes = 4 * d
    total_rows = max(1, int(args.gb * 1e9) // row_bytes)
    chunk_rows = max(1, min(total_rows, int(args.chunk_mb * 1e6) // row_bytes))
    counts = [chunk_rows] * (total_rows // chunk_rows)
    if total_rows % chunk_rows:
        counts.append(total_rows % chunk_rows)
    args.out.mkdir(parents=True, exist_ok=True)
    w, b = true_model(d, args.seed)
    start = time.perf_counter()
    right = 0
    for k, rows in enumerate(counts):
        right += write_chunk(args.out, k, rows, w, b, args.noise, args.seed)
        if (k + 1) % 10 == 0 or k + 1 == len(counts):
            done = sum(counts[:k + 1]) * (row_bytes + 4) / 1e9
            print(f"chunk {k + 1}/{len(counts)}: {done:.2f} GB in {time.perf_counter() - start:.1f} s", flush=True)
    meta = {"rows": total_rows, "features": d, "chunks": counts, "seed": args.seed, "noise": args.noise,
            "w_true": w.tolist(), "b_true": b, "bayes": right / total_rows}
    (args.out / "meta.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {total_rows} rows x {d} features ({total_rows * (row_bytes + 4) / 1e9:.2f} GB) in "
          f"{len(counts)} chunks to {args.out}; the true model's accuracy {meta['bayes']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
