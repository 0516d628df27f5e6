"""Train logistic regression with full-batch gradient steps over .npy chunks larger than memory.

    python examples/dask_logistic/make_data.py --gb 30 --out /tmp/data
    python examples/dask_logistic/train.py /tmp/data --steps 3 [--lr 1.0] [--workers 2]
        [--scheduler threads|distributed] [--target c]

The chunks are read lazily: each task memory-maps its own chunk file (`np.load(...,
mmap_mode="r")`) and lets it go when the chunk is done, so the memory a step needs is a few
chunks, whatever the size of the data. `step` (logistic.tdsl) is called on the Dask arrays:
the compiler splits it into a function per chunk (the partial sums of the gradient, the loss
and the hits), a combine and a finalize (docs/dask.md). Each step reads the whole data once.
Prints the loss and accuracy of each step's starting weights, the time and read rate of each
step, and the peak resident memory of the process (and of the workers, on a cluster).
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def load_chunk(path: str) -> np.ndarray:
    """One chunk file as a memory map: its pages are read when a task reads them, and unmapped when
    the task's result no longer needs it."""
    return np.load(path, mmap_mode="r")


def lazy_arrays(folder: Path, meta: dict):
    """x (f32[rows, d]) and y (f32[rows]) as Dask arrays of one chunk per file; nothing is read."""
    import dask
    import dask.array as da
    d = meta["features"]
    xs, ys = [], []
    for k, rows in enumerate(meta["chunks"]):
        xs.append(da.from_delayed(dask.delayed(load_chunk)(str(folder / f"x_{k:05d}.npy")), (rows, d), np.float32))
        ys.append(da.from_delayed(dask.delayed(load_chunk)(str(folder / f"y_{k:05d}.npy")), (rows,), np.float32))
    return da.concatenate(xs, axis=0), da.concatenate(ys, axis=0)


def peak_rss_mb() -> float:
    """The peak resident memory of this process, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def _worker_peak_rss_mb() -> float:
    return peak_rss_mb()


def train(model, x, y, steps: int, lr: float, compute, log=print):
    """`steps` gradient steps from zero weights, each run by `compute(lazy results)`, which returns
    the results and when they were done; (w, b, [(loss, accuracy, seconds) per step])."""
    d = x.shape[1]
    w, b = np.zeros(d, np.float32), np.float32(0.0)
    history = []
    for k in range(1, steps + 1):
        start = time.perf_counter()
        lazy = model.step(x, y, w, b, np.float32(lr))   # the Dask graph: nothing read yet
        (w, b, loss, accuracy), done = compute(lazy)
        seconds = done - start
        w, b = np.asarray(w, np.float32), np.float32(b)
        history.append((float(loss), float(accuracy), seconds))
        log(f"step {k}: loss {float(loss):.5f}  accuracy {float(accuracy):.4f}  {seconds:.2f} s", flush=True)
    return w, b, history


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a folder written by make_data.py")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--target", default="c")
    parser.add_argument("--scheduler", choices=("threads", "distributed"), default="threads")
    parser.add_argument("--workers", type=int, default=2, help="threads, or worker processes")
    parser.add_argument("--progress-every", type=float, default=0.5, help="seconds between progress bar updates")
    parser.add_argument("--save", type=Path, help="write the trained w and b to this .npz")
    args = parser.parse_args(argv)

    import dask
    import tdsl
    meta = json.loads((args.data / "meta.json").read_text())
    x, y = lazy_arrays(args.data, meta)
    model = tdsl.load(HERE / "logistic.tdsl", target=args.target)
    size = (x.nbytes + y.nbytes) / 1e9
    chunk = (max(meta["chunks"]) * (meta["features"] + 1) * 4) / 1e6
    print(f"{meta['rows']} rows x {meta['features']} features: {size:.2f} GB in {len(meta['chunks'])} chunks "
          f"of {chunk:.0f} MB; target {args.target}, {args.scheduler} scheduler, {args.workers} workers", flush=True)

    client = None
    if args.scheduler == "distributed":
        import distributed
        cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                           dashboard_address=":0")
        client = distributed.Client(cluster)

        def compute(lazy):
            futures = client.compute(list(lazy))
            distributed.progress(futures)   # a text bar, until they are done
            done = time.perf_counter()
            print(flush=True)
            return client.gather(futures), done
    else:
        from dask.callbacks import Callback
        from dask.diagnostics import ProgressBar

        def compute(lazy):
            ends = [time.perf_counter()]   # the bar's last redraw waits up to its period: not timed
            with ProgressBar(dt=args.progress_every), Callback(posttask=lambda *_: ends.append(time.perf_counter())):
                out = dask.compute(*lazy, scheduler="threads", num_workers=args.workers)
            return out, max(ends)

    w, b, history = train(model, x, y, args.steps, args.lr, compute)
    times = [s for _, _, s in history]
    median = float(np.median(times))
    cosine = float(np.dot(w, meta["w_true"]) / (np.linalg.norm(w) * np.linalg.norm(meta["w_true"]) + 1e-30))
    print(f"time per step: median {median:.2f} s (min {min(times):.2f}, max {max(times):.2f}); "
          f"read {size / median:.2f} GB/s")
    print(f"cosine(w, w_true) {cosine:.4f}; the true model's accuracy {meta['bayes']:.4f}")
    print(f"peak RSS: {peak_rss_mb():.0f} MB (this process)", flush=True)
    if client is not None:
        peaks = client.run(_worker_peak_rss_mb)
        print("peak RSS of the workers: " + ", ".join(f"{v:.0f} MB" for v in peaks.values()))
        client.close()
        cluster.close()
    if args.save:
        np.savez(args.save, w=w, b=b, loss=np.array([h[0] for h in history]), accuracy=np.array([h[1] for h in history]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
