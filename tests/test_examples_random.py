"""The random-number examples run end to end on every target: Monte Carlo pi and a European call
against their exact values, and the digits perceptron trained with dropout (fold_in per step)."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

import tdsl
from conftest import compiled
from test_examples import EXAMPLES, run_script


def black_scholes(spot, strike, rate, sigma, years) -> float:
    """The closed-form European call, in Python."""
    cdf = lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2)))   # noqa: E731
    d1 = (math.log(spot / strike) + (rate + sigma ** 2 / 2) * years) / (sigma * math.sqrt(years))
    return spot * cdf(d1) - strike * math.exp(-rate * years) * cdf(d1 - sigma * math.sqrt(years))


def test_monte_carlo_script_hits_pi_and_black_scholes(target):
    out = run_script("monte_carlo.py", "--target", target, "--batches", "2", "--check")
    pi, pi_error = (float(v) for v in re.search(r"pi\s+(\d\.\d+) \+- (\d\.\d+)", out).groups())
    assert abs(pi - math.pi) < 4 * pi_error and pi_error < 2e-3
    assert "Black-Scholes" in out


def test_monte_carlo_functions_agree_across_targets_and_keys(target):
    """The estimates are within 4 standard errors of the truth for several keys, and the same
    numbers on every target (a key draws the same stream everywhere)."""
    m = compiled((EXAMPLES / "monte_carlo.tdsl").read_text(), target)
    reference = compiled((EXAMPLES / "monte_carlo.tdsl").read_text(), "numpy")
    option = (100.0, 95.0, 0.03, 0.25, 0.5)
    exact = float(m.black_scholes_call(*option))
    assert abs(exact - black_scholes(*option)) < 1e-12
    for key in (0, 7, -5):
        pi, pi_error = m.estimate_pi(key, 1)
        assert abs(pi - math.pi) < 4 * pi_error
        price, error = m.call_price(key, 1, *option)
        assert abs(price - exact) < 4 * error
        np.testing.assert_allclose(price, reference.call_price(key, 1, *option)[0], rtol=1e-9)
        assert pi == reference.estimate_pi(key, 1)[0]


def test_monte_carlo_runs_from_the_command_line(tmp_path):
    from tdsl.cli import main
    out = tmp_path / "pi.npz"
    assert main(["run", str(EXAMPLES / "monte_carlo.tdsl"), "estimate_pi", "--arg", "key=3",
                 "--arg", "batches=1", "-t", "numpy", "-o", str(out)]) == 0
    values = [float(v) for v in np.load(out).values()]
    assert abs(values[0] - math.pi) < 4 * values[1]


def test_train_mlp_dropout_small(target):
    pytest.importorskip("sklearn")
    out = run_script("train_mlp_dropout.py", "--target", target, "--epochs", "5", "--limit", "400",
                     "--hidden", "32", "--min-accuracy", "0.7")
    assert "epoch   5/5" in out and "dropout 0.2" in out


def test_train_mlp_dropout_reaches_the_plain_perceptrons_accuracy():
    """The full data set and default settings on the C target: about the plain MLP's 0.98."""
    pytest.importorskip("sklearn")
    out = run_script("train_mlp_dropout.py", "--target", "c", "--min-accuracy", "0.96")
    assert float(re.search(r"held-out accuracy (\d\.\d+) after", out).group(1)) >= 0.96


def test_dropout_masks_change_every_step_and_repeat_for_a_step():
    m = tdsl.load(EXAMPLES / "mlp_dropout.tdsl", target="numpy")
    rng = np.random.default_rng(0)
    x, w1, b1 = rng.random((6, 4), dtype=np.float32), rng.random((4, 5), dtype=np.float32), np.zeros(5, np.float32)
    w2, b2 = np.eye(5, 3, dtype=np.float32), np.zeros(3, np.float32)
    first, again, second = (m.dropout_logits(x, w1, b1, w2, b2, key, 0.5) for key in (11, 11, 12))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)
