"""Train a two-layer perceptron (examples/digits_mlp.tdsl) on scikit-learn's 8x8 digits.

    python examples/train_digits.py [--target c|numpy|opencl] [--epochs 30] [--limit N]

Each minibatch is one call of the .tdsl `train_step`, which takes its gradient with
`grad`. The held-out accuracy is printed at the end; `--min-accuracy` turns it into
the exit status. Needs scikit-learn (`pip install -e '.[examples]'`).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import tdsl

HERE = Path(__file__).resolve().parent
CLASSES = 10


def load_data(limit: int | None, seed: int):
    """Pixels scaled to [0, 1] as f32, labels as i64; a shuffled 75% / 25% split."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))[:limit]
    x, y = x[order], y[order]
    cut = int(0.75 * len(y))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def init_weights(features: int, hidden: int, rng: np.random.Generator) -> list[np.ndarray]:
    """He initialization for the relu layer, zero biases."""
    w1 = rng.normal(0, np.sqrt(2 / features), size=(features, hidden)).astype(np.float32)
    w2 = rng.normal(0, np.sqrt(1 / hidden), size=(hidden, CLASSES)).astype(np.float32)
    return [w1, np.zeros(hidden, np.float32), w2, np.zeros(CLASSES, np.float32)]


class Progress:
    """tqdm when it is installed, else one plain-text bar line per epoch."""

    def __init__(self, total: int, epochs: int):
        self.epochs, self.bar = epochs, None
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="batch", leave=True)
        except ImportError:
            pass

    def step(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}")

    def epoch(self, epoch: int, loss: float, accuracy: float, elapsed: float) -> None:
        done = 20 * epoch // self.epochs
        line = (f"[{'#' * done}{'.' * (20 - done)}] epoch {epoch:3d}/{self.epochs}  loss {loss:.4f}  "
                f"held-out accuracy {accuracy:.3f}  {elapsed:5.1f} s")
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def arguments(description: str, epochs: int, lr: float) -> argparse.ArgumentParser:
    """The options every digits example takes (each adds its own)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--target", default="c", help="c (default), numpy or opencl")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--decay", type=float, default=1e-4)
    parser.add_argument("--limit", type=int, default=None, help="use only this many samples (quick runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-accuracy", type=float, default=None,
                        help="exit with status 1 when the held-out accuracy ends below this")
    return parser


def train(model, args, weights: list[np.ndarray], data, rng: np.random.Generator, about: str = "",
          extra=lambda step: ()) -> int:
    """SGD with momentum over shuffled minibatches, one `train_step` call each (its results: the new
    weights, the new velocities, the loss; `extra(step)` its arguments after `decay`); the held-out
    accuracy after each epoch. Returns the exit status (1 below `--min-accuracy`)."""
    (x, y), (x_test, y_test) = data
    velocities = [np.zeros_like(w) for w in weights]
    batches = -(-len(y) // args.batch_size)
    print(f"target {args.target}: {len(y)} training and {len(y_test)} held-out digits, "
          f"{about}{batches} batches an epoch")
    progress = Progress(batches * args.epochs, args.epochs)
    start = time.perf_counter()
    accuracy, step = 0.0, 0
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(y))
        losses = []
        for first in range(0, len(y), args.batch_size):
            batch = order[first:first + args.batch_size]
            *state, loss = model.train_step(x[batch], y[batch], *weights, *velocities,
                                            args.lr, args.momentum, args.decay, *extra(step))
            weights, velocities = state[:len(weights)], state[len(weights):]
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


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__.splitlines()[0], epochs=30, lr=0.05)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args(argv)
    model = tdsl.load(HERE / "digits_mlp.tdsl", target=args.target)
    data = load_data(args.limit, args.seed)
    rng = np.random.default_rng(args.seed)
    weights = init_weights(data[0][0].shape[1], args.hidden, rng)
    return train(model, args, weights, data, rng, f"{args.hidden} hidden units, ")


if __name__ == "__main__":
    sys.exit(main())
