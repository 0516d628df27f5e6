"""Train logistic regression (examples/logistic.tdsl) on synthetic data, in a plain Python loop.

    python examples/train_logistic.py [--target c|numpy|opencl] [--steps 200] [--samples 2000]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import tdsl

HERE = Path(__file__).resolve().parent


def synthetic(samples: int, features: int, rng: np.random.Generator):
    """Points labelled by a random hyperplane, with some noise near it."""
    x = rng.normal(size=(samples, features)).astype(np.float32)
    true_w = rng.normal(size=features)
    logits = 3.0 * (x @ true_w) + 0.5
    y = (rng.uniform(size=samples) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    return x, y


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="c", help="c (default), numpy or opencl")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--features", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    model = tdsl.load(HERE / "logistic.tdsl", target=args.target)
    rng = np.random.default_rng(args.seed)
    x, y = synthetic(args.samples, args.features, rng)
    w, b = np.zeros(args.features, np.float32), np.float32(0.0)
    print(f"{model.train_step.signature}\ntarget {args.target}: {args.samples} samples, "
          f"{args.features} features")
    start = time.perf_counter()
    report_every = max(1, args.steps // 10)
    for step in range(1, args.steps + 1):
        w, b = model.train_step(x, y, w, b, args.lr)
        if step % report_every == 0 or step == args.steps:
            print(f"step {step:5d}  loss {float(model.loss(x, y, w, b)):.4f}", flush=True)
    accuracy = float(np.mean((model.predict(x, w, b) > 0.5) == (y > 0.5)))
    print(f"training accuracy {accuracy:.3f} after {args.steps} steps in {time.perf_counter() - start:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
