"""Train the digits perceptron with dropout (examples/mlp_dropout.tdsl) on scikit-learn's 8x8 digits.

    python examples/train_mlp_dropout.py [--target c|numpy|opencl] [--epochs 30] [--rate 0.2] [--limit N]

As examples/train_digits.py, but each `train_step` also takes a key and its step number: the
.tdsl draws that step's dropout mask from fold_in(key, step), so a run is reproducible on every
target. The held-out accuracy is printed at the end; `--min-accuracy` turns it into the exit status.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import tdsl
from train_digits import arguments, init_weights, load_data, train

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__.splitlines()[0], epochs=30, lr=0.05)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--rate", type=float, default=0.2, help="the probability of dropping a hidden unit")
    parser.add_argument("--key", type=int, default=2024, help="the dropout masks' key")
    args = parser.parse_args(argv)
    model = tdsl.load(HERE / "mlp_dropout.tdsl", target=args.target)
    data = load_data(args.limit, args.seed)
    rng = np.random.default_rng(args.seed)
    weights = init_weights(data[0][0].shape[1], args.hidden, rng)
    return train(model, args, weights, data, rng, f"{args.hidden} hidden units, dropout {args.rate}, ",
                 extra=lambda step: (args.key, step, args.rate))


if __name__ == "__main__":
    sys.exit(main())
