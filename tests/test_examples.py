"""The training examples run end to end, on small settings, on every target."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_script(name: str, *args: str, timeout: float = 300) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_train_logistic(target):
    out = run_script("train_logistic.py", "--target", target, "--steps", "30", "--samples", "300")
    losses = [float(v) for v in re.findall(r"loss (\d+\.\d+)", out)]
    assert len(losses) >= 3 and losses[-1] < losses[0] < 0.7
    accuracy = float(re.search(r"training accuracy (\d\.\d+)", out).group(1))
    assert accuracy > 0.8


def test_train_digits_small(target):
    pytest.importorskip("sklearn")
    out = run_script("train_digits.py", "--target", target, "--epochs", "5", "--limit", "400",
                     "--hidden", "32", "--min-accuracy", "0.7")
    assert "epoch   5/5" in out and "[####################]" in out and "held-out accuracy" in out


def test_train_digits_reaches_95_percent():
    """The acceptance run: the full data set and default settings, on the reference target."""
    pytest.importorskip("sklearn")
    out = run_script("train_digits.py", "--target", "numpy", "--min-accuracy", "0.95")
    assert float(re.search(r"held-out accuracy (\d\.\d+) after", out).group(1)) >= 0.95
