"""Train the digits perceptron with dropout (examples/mlp_dropout.tdsl) on scikit-learn's 8x8 digits.

    python examples/train_mlp_dropout.py [--target c|numpy|opencl] [--epochs 30] [--rate 0.2] [--limit N]

As examples/train_digits.py, but each `train_step` also takes a key and its step number: the
.tdsl draws that step's dropout mask from fold_in(key, step), so a run is reproducible on every
target. The held-out accuracy is printed at the end; `--min-accuracy` turns it into the exit status.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import tdsl
from train_digits import Progress, init_weights, load_data

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="c", help="c (default), numpy or opencl")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--rate", type=float, default=0.2, help="the probability of dropping a hidden unit")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--decay", type=float, default=1e-4)
    parser.add_argument("--key", type=int, default=2024, help="the dropout masks' key")
    parser.add_argument("--limit", type=int, default=None, help="use only this many samples (quick runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-accuracy", type=float, default=None,
                        help="exit with status 1 when the held-out accuracy ends below this")
    args = parser.parse_args(argv)

    model = tdsl.load(HERE / "mlp_dropout.tdsl", target=args.target)
    (x, y), (x_test, y_test) = load_data(args.limit, args.seed)
    rng = np.random.default_rng(args.seed)
    weights = init_weights(x.shape[1], args.hidden, rng)
    velocities = [np.zeros_like(w) for w in weights]
    batches = -(-len(y) // args.batch_size)
    print(f"target {args.target}: {len(y)} training and {len(y_test)} held-out digits, "
          f"{args.hidden} hidden units, dropout {args.rate}, {batches} batches an epoch")

    progress = Progress(batches * args.epochs, args.epochs)
    start = time.perf_counter()
    accuracy, step = 0.0, 0
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(y))
        losses = []
        for first in range(0, len(y), args.batch_size):
            batch = order[first:first + args.batch_size]
            *state, loss = model.train_step(x[batch], y[batch], *weights, *velocities, args.lr, args.momentum,
                                            args.decay, args.key, step, args.rate)
            weights, velocities = state[:4], state[4:]
            losses.append(float(loss))
            progress.step(losses[-1])
            step += 1
        accuracy = float(np.mean(model.predict(x_test, *weights) == y_test))
        progress.epoch(epoch, float(np.mean(losses)), accuracy, time.perf_counter() - start)
    progress.close()
    print(f"held-out accuracy {accuracy:.3f} after {args.epochs} epochs in {time.perf_counter() - start:.1f} s")
    if args.min_accuracy is not None and accuracy < args.min_accuracy:
        print(f"below the required {args.min_accuracy:.3f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
