"""Train the tanh RNN of examples/rnn.tdsl to echo its input from a few steps back (BPTT).

    python examples/train_rnn.py [--target numpy] [--steps 300] [--delay 2] [--hidden 16]

Each sequence is standard normal noise; the target at step i is the input at step i - delay
(zero for the first `delay` steps), so the network has to remember the last few inputs.
Predicting zero everywhere scores a loss of 1 - delay / length (0.9 by default).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import tdsl

HERE = Path(__file__).resolve().parent


def echo_task(steps: int, batch: int, delay: int, rng: np.random.Generator):
    """Inputs f64[steps, batch, 1] and targets f64[steps, batch]: the input `delay` steps back."""
    xs = rng.normal(size=(steps, batch, 1))
    targets = np.zeros((steps, batch))
    targets[delay:] = xs[:steps - delay, :, 0]
    return xs, targets


def init_weights(inputs: int, hidden: int, rng: np.random.Generator):
    """Small random weights: wx, wh, bh, wo, bo."""
    wx = rng.normal(scale=1.0 / np.sqrt(inputs), size=(inputs, hidden))
    wh = rng.normal(scale=0.5 / np.sqrt(hidden), size=(hidden, hidden))
    wo = rng.normal(scale=1.0 / np.sqrt(hidden), size=hidden)
    return wx, wh, np.zeros(hidden), wo, 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="numpy", help="numpy (default), c or opencl")
    parser.add_argument("--steps", type=int, default=300, help="training steps")
    parser.add_argument("--length", type=int, default=20, help="time steps per sequence")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--delay", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--max-norm", type=float, default=1.0, help="gradient clipping")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    model = tdsl.load(HERE / "rnn.tdsl", target=args.target)
    rng = np.random.default_rng(args.seed)
    weights = init_weights(1, args.hidden, rng)
    test_xs, test_targets = echo_task(args.length, 256, args.delay, rng)
    print(f"{model.train_step.signature}\ntarget {args.target}: echo with delay {args.delay}, "
          f"{args.length} steps per sequence, batch {args.batch}, {args.hidden} hidden units")
    print(f"step     0  held-out loss {float(model.loss(test_xs, test_targets, *weights)):.4f}")
    start = time.perf_counter()
    report_every = max(1, args.steps // 10)
    for step in range(1, args.steps + 1):
        xs, targets = echo_task(args.length, args.batch, args.delay, rng)   # fresh data each step
        weights = model.train_step(xs, targets, *weights, args.lr, args.max_norm)
        if step % report_every == 0 or step == args.steps:
            loss = float(model.loss(test_xs, test_targets, *weights))
            print(f"step {step:5d}  held-out loss {loss:.4f}", flush=True)
    predictions = model.predict(test_xs, *weights)
    error = float(np.mean(np.abs(predictions - test_targets)[args.delay:]))
    print(f"mean absolute error {error:.3f} after {args.steps} steps in {time.perf_counter() - start:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
