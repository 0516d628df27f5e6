"""Compiled functions on Dask arrays: what chunking costs and what more cores give (docs/dask.md).

    python bench/dask_scaling.py [--quick] [--rounds 5] [--only a,b,c]

Three ratios, each measured side by side in one run, in rounds (each round times both sides,
one after the other, as the median of a few calls); the table gives the median of the rounds'
ratios and their range, since the machine is shared:

  (a) W1-like elementwise chain with transcendental functions on a LocalCluster of two worker
      processes (one thread each) against one (goal >= 1.7x). The input is persisted on the
      workers first (scattered: 8 chunks on each) and the result stays there (persisted), so
      the ratio is of the computation, not of moving arrays to the client. Workers run tdsl's kernels on one thread
      (OMP_NUM_THREADS=1): one core against two. The row also gives the CPU seconds the
      workers spent on one call: on a machine other processes load, the wall-clock ratio is
      bounded by the cores left free, the CPU seconds show the work is the same.

A column gives each side's CPU seconds per call (all the threads of this process, or of the
workers in (a)): the work, apart from the share of the cores the machine's other load leaves.
  (b) The threaded scheduler on an in-memory Dask array of a few chunks against one call of the
      same compiled function on the whole NumPy array (goal >= 0.8x: what the chunking costs);
      a second row keeps the result as chunks (`.persist()`), without the copy of every chunk
      into one result array that `.compute()` makes.
  (c) The logistic-regression gradient step (examples/dask_logistic/logistic.tdsl) on Dask arrays
      against the same step written with dask.array on NumPy chunks, same chunks, same
      scheduler (goal >= 2x).
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
W1 = """
fn w1(x: f64[n], a: f64, b: f64, c: f64) -> f64[n] {
    y = a * exp(-b * x) + c * sin(x)
    return tanh(y) * cos(y) + log1p(y * y)
}
"""


def median_time(fn, calls: int) -> float:
    """Seconds of one call: the median of `calls` calls (after one untimed)."""
    fn()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def side_by_side(name: str, goal: float, ours, theirs, rounds: int, calls: int, check=None, cpu=None) -> dict:
    """Time `ours` and `theirs` in `rounds` rounds; the row of the table (ratio = theirs / ours).
    `cpu(side)`, when given, reads the CPU seconds that side's processes have used: the row then
    also gives the CPU seconds of one call on each side, baseline / measured (the work, whatever
    the machine's load)."""
    if check is not None:
        check()
    ratios, t_ours, t_theirs, cpu_ours, cpu_theirs = [], [], [], [], []
    for _ in range(rounds):
        for fn, times, cpus, side in ((theirs, t_theirs, cpu_theirs, 1), (ours, t_ours, cpu_ours, 0)):
            before = cpu(side) if cpu else 0.0
            times.append(median_time(fn, calls))
            cpus.append(((cpu(side) if cpu else 0.0) - before) / (calls + 1))
        ratios.append(t_theirs[-1] / t_ours[-1])
    row = {"name": name, "goal": goal, "ours": statistics.median(t_ours), "theirs": statistics.median(t_theirs),
           "ratio": statistics.median(ratios), "low": min(ratios), "high": max(ratios),
           "cpu_ours": statistics.median(cpu_ours), "cpu_theirs": statistics.median(cpu_theirs)}
    work = f"{row['cpu_theirs'] * 1e3:.0f} / {row['cpu_ours'] * 1e3:.0f} ms" if cpu else "-"
    print(f"| {name} | {row['theirs'] * 1e3:.1f} ms | {row['ours'] * 1e3:.1f} ms | {work} | {row['ratio']:.2f}x "
          f"({row['low']:.2f}-{row['high']:.2f}) | >= {goal}x | {'yes' if row['ratio'] >= goal else 'NO'} |",
          flush=True)
    return row


def process_cpu(side: int) -> float:
    """The CPU seconds this process has used, all its threads."""
    return time.process_time()


def cluster_scaling(args) -> dict:
    """(a): two worker processes against one, on the same chunked array."""
    import dask
    import dask.array as da
    import distributed
    import tdsl
    f = tdsl.compile(W1, target="c").w1
    n = 2_000_000 if args.quick else 40_000_000
    # 8 chunks of 40 MB, 4 on each worker: tasks of about 60 ms on one core (Dask's advice is
    # tasks of 100 ms or more: each costs the scheduler, which shares this machine's two cores)
    count = 8
    chunks = n // count
    env = {"OMP_NUM_THREADS": "1", "TDSL_CACHE_DIR": os.environ.get("TDSL_CACHE_DIR", "")}
    env = {k: v for k, v in env.items() if v}
    clusters = []
    try:
        for workers in (2, 1):
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                               dashboard_address=":0", env=env)
            clusters.append((cluster, distributed.Client(cluster, set_as_default=False)))
        whole = np.linspace(0.0, 10.0, n)
        inputs = []
        for _, client in clusters:   # the input on the workers, chunk i on worker i % workers
            workers = sorted(client.scheduler_info()["workers"])
            blocks = [client.scatter(whole[lo:lo + chunks], workers=[workers[i % len(workers)]], hash=False)
                      for i, lo in enumerate(range(0, n, chunks))]
            inputs.append(da.concatenate([da.from_delayed(dask.delayed(b), (chunks,), np.float64) for b in blocks]))
        placed = sorted(collections.Counter(w for ws in clusters[0][1].who_has().values() for w in ws).values())

        calls = iter(range(1, 1 << 30))

        def run(k):
            def go():   # a new value of `a` each call: new keys, never results the cluster still holds
                client = clusters[k][1]
                out = client.persist(f(inputs[k], 1.5 + next(calls) * 1e-9, 0.3, 2.0))
                with client.as_current():
                    distributed.wait(out)
                del out
            return go

        def check():
            for k in range(2):
                got = clusters[k][1].compute(f(inputs[k], 1.5, 0.3, 2.0)[:1000]).result()
                want = f(np.linspace(0.0, 10.0, n)[:1000], 1.5, 0.3, 2.0)
                np.testing.assert_allclose(got, want, rtol=1e-12)
        def cpu(k):   # the CPU seconds the workers of cluster k have used
            return sum(clusters[k][1].run(time.process_time).values())
        return side_by_side(f"(a) W1-like chain {n // 1_000_000}M f64, {count} chunks ({' and '.join(map(str, placed))}): "
                            "2 worker processes / 1",
                            1.7, run(0), run(1), args.rounds, args.calls or 3, check, cpu)
    finally:
        for cluster, client in clusters:
            client.close()
            cluster.close()


def chunking_overhead(args) -> dict:
    """(b): the threaded scheduler on a few in-memory chunks against one call on the whole array."""
    import dask.array as da
    import tdsl
    f = tdsl.compile(W1, target="c").w1
    n = 1_000_000 if args.quick else 20_000_000
    x = np.linspace(0.0, 10.0, n)
    xd = da.from_array(x, chunks=n // 4)

    def check():
        np.testing.assert_allclose(f(xd, 1.5, 0.3, 2.0).compute(scheduler="threads"), f(x, 1.5, 0.3, 2.0), rtol=1e-12)
    row = side_by_side(f"(b) W1-like chain {n // 1_000_000}M f64: whole NumPy call / threaded Dask, 4 chunks",
                       0.8, lambda: f(xd, 1.5, 0.3, 2.0).compute(scheduler="threads"),
                       lambda: f(x, 1.5, 0.3, 2.0), args.rounds, args.calls or 5, check, process_cpu)
    # the same without the result's assembly (Dask copies the chunks into one array): kept as chunks
    side_by_side("(b) the same, the result kept as chunks (.persist(), no concatenation)",
                 0.8, lambda: f(xd, 1.5, 0.3, 2.0).persist(scheduler="threads"),
                 lambda: f(x, 1.5, 0.3, 2.0), args.rounds, args.calls or 5, cpu=process_cpu)
    return row


def dask_numpy_step(x, y, w, b, lr):
    """The logistic step as a dask.array user writes it (the same values as logistic.tdsl's step)."""
    import dask.array as da
    n = x.shape[0]
    z = x @ w + b
    p = 1 / (1 + da.exp(-z))
    r = p - y
    gw = x.T @ r / n
    gb = r.sum() / n
    loss = (da.logaddexp(0, z) - y * z).mean()
    hits = ((z > 0) == (y > 0.5)).mean()
    return w - lr * gw, b - lr * gb, loss, hits


def logistic_step(args) -> dict:
    """(c): the tdsl step on Dask arrays against the dask.array step, same chunks, threads."""
    import dask
    import dask.array as da
    import tdsl
    m = tdsl.load(ROOT / "examples" / "dask_logistic" / "logistic.tdsl", target="c")
    n, d = (200_000, 64) if args.quick else (2_000_000, 64)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d), dtype=np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    w = (rng.standard_normal(d) * 0.1).astype(np.float32)
    b, lr = np.float32(0.1), np.float32(0.5)
    xd, yd = da.from_array(x, chunks=(n // 8, d)), da.from_array(y, chunks=n // 8)

    def ours():
        return dask.compute(*m.step(xd, yd, w, b, lr), scheduler="threads")

    def theirs():
        return dask.compute(*dask_numpy_step(xd, yd, w, b, lr), scheduler="threads")

    def check():
        for got, want in zip(ours(), theirs()):
            np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-5)
    return side_by_side(f"(c) logistic step {n}x{d} f32, 8 chunks, threads: dask.array+NumPy / tdsl",
                        2.0, ours, theirs, args.rounds, args.calls or 5, check, process_cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round of one call, for a smoke test")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="a,b,c", help="which of a, b, c to run")
    args = parser.parse_args(argv)
    args.calls = None   # timed calls per side and round: each benchmark's own number
    if args.quick:
        args.rounds, args.calls = 1, 1
    os.environ.setdefault("TDSL_CACHE_DIR", tempfile.mkdtemp(prefix="tdsl-dask-bench-"))
    import dask
    import tdsl
    print(f"tdsl {tdsl.__version__}, dask {dask.__version__}, NumPy {np.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; {args.rounds} rounds\n")
    print("| what (baseline / measured) | baseline | measured | CPU per call (baseline / measured) "
          "| ratio: median (range) | goal | met |")
    print("|---|---|---|---|---|---|---|")
    chosen = set(args.only.split(","))
    for key, bench in (("a", cluster_scaling), ("b", chunking_overhead), ("c", logistic_step)):
        if key in chosen:
            bench(args)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
