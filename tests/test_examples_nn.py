"""The convolutional network example (examples/cnn_digits.tdsl, train_cnn.py) trains end to end."""
from __future__ import annotations

import re

import pytest
from test_examples import run_script


def test_train_cnn_small(target):
    """A few epochs on part of the data, on every target."""
    pytest.importorskip("sklearn")
    out = run_script("train_cnn.py", "--target", target, "--epochs", "4", "--limit", "600", "--lr", "0.05",
                     "--min-accuracy", "0.5")
    assert "epoch   4/4" in out and "[####################]" in out and "held-out accuracy" in out


def test_train_cnn_reaches_97_percent():
    """The acceptance run: the full data set and default settings on the C target (seconds)."""
    pytest.importorskip("sklearn")
    out = run_script("train_cnn.py", "--target", "c", "--min-accuracy", "0.97")
    assert float(re.search(r"held-out accuracy (\d\.\d+) after", out).group(1)) >= 0.97
