"""Train a small convolutional network (examples/cnn_digits.tdsl) on scikit-learn's 8x8 digits.

    python examples/train_cnn.py [--target c|numpy|opencl] [--epochs 20] [--limit N]

Each minibatch is one call of the .tdsl `train_step` (conv2d, max_pool2d and a dense
layer, differentiated with `grad`). The held-out accuracy is printed at the end;
`--min-accuracy` turns it into the exit status. Needs scikit-learn
(`pip install -e '.[examples]'`).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import tdsl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_digits import CLASSES, arguments, load_data, train  # noqa: E402


def init_weights(rng: np.random.Generator) -> list[np.ndarray]:
    """He initialization for the relu layers (fan-in = channels x 3 x 3), zero biases."""
    def he(shape, fan_in):
        return rng.normal(0, np.sqrt(2 / fan_in), size=shape).astype(np.float32)
    return [he((8, 1, 3, 3), 9), np.zeros(8, np.float32), he((16, 8, 3, 3), 72), np.zeros(16, np.float32),
            rng.normal(0, np.sqrt(1 / 64), size=(64, CLASSES)).astype(np.float32), np.zeros(CLASSES, np.float32)]


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.splitlines()[0], epochs=20, lr=0.02).parse_args(argv)
    model = tdsl.load(HERE / "cnn_digits.tdsl", target=args.target)
    (x, y), (x_test, y_test) = load_data(args.limit, args.seed)
    data = (x.reshape(-1, 1, 8, 8), y), (x_test.reshape(-1, 1, 8, 8), y_test)   # [n, channels, h, w] images
    rng = np.random.default_rng(args.seed)
    return train(model, args, init_weights(rng), data, rng)


if __name__ == "__main__":
    sys.exit(main())
