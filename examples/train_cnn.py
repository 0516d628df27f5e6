"""Train a small convolutional network (examples/cnn_digits.tdsl) on scikit-learn's 8x8 digits.

    python examples/train_cnn.py [--target c|numpy|opencl] [--epochs 20] [--limit N]

Each minibatch is one call of the .tdsl `train_step` (conv2d, max_pool2d and a dense
layer, differentiated with `grad`). The held-out accuracy is printed at the end;
`--min-accuracy` turns it into the exit status. Needs scikit-learn
(`pip install -e '.[examples]'`).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import tdsl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_digits import CLASSES, Progress, load_data  # noqa: E402


def init_weights(rng: np.random.Generator) -> list[np.ndarray]:
    """He initialization for the relu layers (fan-in = channels x 3 x 3), zero biases."""
    def he(shape, fan_in):
        return rng.normal(0, np.sqrt(2 / fan_in), size=shape).astype(np.float32)
    return [he((8, 1, 3, 3), 9), np.zeros(8, np.float32), he((16, 8, 3, 3), 72), np.zeros(16, np.float32),
            rng.normal(0, np.sqrt(1 / 64), size=(64, CLASSES)).astype(np.float32), np.zeros(CLASSES, np.float32)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="c", help="c (default), numpy or opencl")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--decay", type=float, default=1e-4)
    parser.add_argument("--limit", type=int, default=None, help="use only this many samples (quick runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-accuracy", type=float, default=None,
                        help="exit with status 1 when the held-out accuracy ends below this")
    args = parser.parse_args(argv)

    model = tdsl.load(HERE / "cnn_digits.tdsl", target=args.target)
    (x, y), (x_test, y_test) = load_data(args.limit, args.seed)
    x, x_test = x.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8)   # [n, channels, h, w] images
    rng = np.random.default_rng(args.seed)
    weights = init_weights(rng)
    velocities = [np.zeros_like(w) for w in weights]
    batches = -(-len(y) // args.batch_size)
    print(f"target {args.target}: {len(y)} training and {len(y_test)} held-out digits, "
          f"{batches} batches an epoch")

    progress = Progress(batches * args.epochs, args.epochs)
    start = time.perf_counter()
    accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(y))
        losses = []
        for first in range(0, len(y), args.batch_size):
            batch = order[first:first + args.batch_size]
            *state, loss = model.train_step(x[batch], y[batch], *weights, *velocities,
                                            args.lr, args.momentum, args.decay)
            weights, velocities = state[:6], state[6:]
            losses.append(float(loss))
            progress.step(losses[-1])
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
