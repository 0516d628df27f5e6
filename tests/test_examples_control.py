"""The control-flow examples (heat, lotka_volterra, newton, rnn) against plain NumPy.

Each example runs on every target of CONTROL_TARGETS and is checked against the same
computation written here in NumPy (or against numpy.linalg / numpy.roots), on small sizes.
"""
from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tdsl
from conftest import TARGETS, require_target

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# the targets the examples run on: a compiled target joins here once it runs loops and updates
CONTROL_TARGETS = TARGETS


@pytest.fixture(params=CONTROL_TARGETS)
def ctarget(request) -> str:
    require_target(request.param)
    return request.param


@functools.cache
def example(name: str, target: str) -> tdsl.Module:
    return tdsl.load(EXAMPLES / f"{name}.tdsl", target=target)


# ---- heat ----

def heat_numpy(u: np.ndarray, steps: int, alpha: float) -> np.ndarray:
    u = u.copy()
    for _ in range(steps):
        lap = u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] - 4.0 * u[1:-1, 1:-1]
        u[1:-1, 1:-1] += alpha * lap
    return u


@pytest.mark.parametrize("n, m, steps", [(6, 7, 25), (3, 3, 4), (2, 5, 3), (8, 4, 0)])
def test_heat_matches_numpy(ctarget, n, m, steps):
    u = np.random.default_rng(n * m + steps).uniform(size=(n, m))
    got = example("heat", ctarget).heat(u, steps, 0.2)
    np.testing.assert_allclose(got, heat_numpy(u, steps, 0.2), rtol=1e-12, atol=1e-12)
    assert np.array_equal(got[[0, -1]], u[[0, -1]]) and np.array_equal(got[:, [0, -1]], u[:, [0, -1]])


def test_heat_reaches_the_steady_state(ctarget):
    """A hot top edge: the interior settles, and the last step barely moves it."""
    u = np.zeros((6, 6))
    u[0] = 1.0
    total, change = example("heat", ctarget).heat_report(u, 400, 0.25)
    steady = heat_numpy(u, 4000, 0.25)
    assert change < 1e-9
    np.testing.assert_allclose(total, steady[1:-1, 1:-1].sum(), rtol=1e-8)


def test_heat_refuses_a_grid_without_an_interior(ctarget):
    with pytest.raises(tdsl.TdslError):
        example("heat", ctarget).heat(np.zeros((1, 4)), 1, 0.1)


# ---- Lotka-Volterra ----

COEF = np.array([1.1, 0.4, 0.4, 0.1])


def lv_field(z: np.ndarray, c: np.ndarray) -> np.ndarray:
    x, y = z
    return np.array([c[0] * x - c[1] * x * y, c[3] * x * y - c[2] * y])


def lv_numpy(z0: np.ndarray, c: np.ndarray, ts: np.ndarray) -> np.ndarray:
    zs = np.zeros((len(ts), 2))
    zs[0] = z = np.asarray(z0, dtype=np.float64)
    for i in range(1, len(ts)):
        h = ts[i] - ts[i - 1]
        k1 = lv_field(z, c)
        k2 = lv_field(z + 0.5 * h * k1, c)
        k3 = lv_field(z + 0.5 * h * k2, c)
        k4 = lv_field(z + h * k3, c)
        zs[i] = z = z + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return zs


@pytest.mark.parametrize("ts", [np.linspace(0.0, 10.0, 101), np.array([0.0]), np.array([0.0, 0.1, 0.3, 0.35, 1.0])],
                         ids=["uniform", "one-time", "uneven"])
def test_lotka_volterra_matches_numpy(ctarget, ts):
    z0 = np.array([10.0, 5.0])
    got = example("lotka_volterra", ctarget).trajectory(z0, COEF, ts)
    assert got.shape == (len(ts), 2)
    np.testing.assert_allclose(got, lv_numpy(z0, COEF, ts), rtol=1e-12, atol=1e-12)


def test_lotka_volterra_keeps_its_invariant(ctarget):
    m = example("lotka_volterra", ctarget)
    zs = m.trajectory([10.0, 5.0], COEF, np.linspace(0.0, 15.0, 301))
    v = m.invariant(zs, COEF)
    assert np.ptp(v) < 1e-5 * abs(v[0])
    assert np.ptp(zs[:, 0]) > 5.0   # it really oscillates


# ---- Newton and power iteration ----

def test_newton_sqrt(ctarget):
    a = np.array([0.25, 2.0, 9.0, 1e-3, 12345.0])
    x, iterations = example("newton", ctarget).newton_sqrt(a, 1e-14, 100)
    np.testing.assert_allclose(x, np.sqrt(a), rtol=1e-13)
    assert 0 < iterations < 100


def test_newton_sqrt_of_zero_and_the_iteration_cap(ctarget):
    m = example("newton", ctarget)
    x, iterations = m.newton_sqrt(np.array([0.0, 4.0]), 1e-12, 100)
    assert abs(x[0]) < 2e-6 and x[1] == 2.0 and iterations < 100   # x^2 within tol of 0
    x, iterations = m.newton_sqrt(np.array([1e6]), 1e-14, 3)
    assert iterations == 3 and x[0] > 1000.0                       # stopped by max_iter
    x, iterations = m.newton_sqrt(np.array([1.0]), 1e-12, 10)
    assert iterations == 0 and x[0] == 1.0                         # converged before the first step


def test_horner(ctarget):
    c = np.array([2.0, -3.0, 0.5, 4.0])
    p, dp = example("newton", ctarget).horner(c, 1.7)
    np.testing.assert_allclose([p, dp], [np.polyval(c, 1.7), np.polyval(np.polyder(c), 1.7)], rtol=1e-13)


@pytest.mark.parametrize("c, x0", [([1.0, 0.0, -2.0, -5.0], 2.0), ([1.0, -6.0, 11.0, -6.0], 3.6),
                                   ([1.0, -6.0, 11.0, -6.0], 0.2), ([2.0, 0.0, -1.0], -3.0)])
def test_newton_root(ctarget, c, x0):
    c = np.array(c)
    root, iterations = example("newton", ctarget).newton_root(c, x0, 1e-13, 100)
    real = np.roots(c)
    real = real[np.abs(real.imag) < 1e-9].real
    assert np.min(np.abs(real - root)) < 1e-10, (root, real)
    assert 0 < iterations < 100


def test_power_iteration(ctarget):
    rng = np.random.default_rng(3)
    b = rng.normal(size=(6, 6))
    a = b + b.T
    lam, v, iterations = example("newton", ctarget).power_iteration(
        a, np.ones(6), 1e-13, 5000)
    eigvals = np.linalg.eigvals(a)
    dominant = eigvals[np.argmax(np.abs(eigvals))].real
    np.testing.assert_allclose(lam, dominant, rtol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(v), 1.0, rtol=1e-12)
    np.testing.assert_allclose(a @ v, lam * v, atol=1e-4)
    assert 0 < iterations < 5000


# ---- RNN ----

def rnn_weights(d: int, k: int, seed: int):
    rng = np.random.default_rng(seed)
    return (rng.normal(scale=0.6, size=(d, k)), rng.normal(scale=0.4, size=(k, k)),
            rng.normal(scale=0.1, size=k), rng.normal(size=k), 0.3)


def rnn_data(t: int, b: int, d: int, seed: int):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(t, b, d)), rng.normal(size=(t, b))


def rnn_predict_numpy(xs, wx, wh, bh, wo, bo):
    h = np.zeros((xs.shape[1], wx.shape[1]))
    ys = []
    for x in xs:
        h = np.tanh(x @ wx + h @ wh + bh)
        ys.append(h @ wo + bo)
    return np.array(ys).reshape(len(xs), xs.shape[1])


@pytest.mark.parametrize("t", [1, 6])
def test_rnn_forward_matches_numpy(ctarget, t):
    m = example("rnn", ctarget)
    xs, targets = rnn_data(t, 3, 2, seed=t)
    weights = rnn_weights(2, 4, seed=1)
    expected = rnn_predict_numpy(xs, *weights)
    np.testing.assert_allclose(m.predict(xs, *weights), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.loss(xs, targets, *weights), np.mean((expected - targets) ** 2), rtol=1e-12)


def test_rnn_gradient_matches_finite_differences(ctarget):
    from tdsl.gradcheck import check_grad
    m = example("rnn", ctarget)
    xs, targets = rnn_data(4, 2, 2, seed=5)
    errors = check_grad(m.loss, xs, targets, *rnn_weights(2, 3, seed=6))
    assert max(errors.values()) < 1e-6, errors


def test_rnn_train_step_is_a_clipped_gradient_step(ctarget):
    """train_step moves every weight by -lr * gradient, the gradient scaled to norm <= max_norm."""
    m = example("rnn", ctarget)
    xs, targets = rnn_data(5, 3, 2, seed=7)
    weights = rnn_weights(2, 4, seed=8)
    loss = functools.partial(m.loss, xs, targets)
    eps = 1e-6
    numeric = []
    for i, w in enumerate(weights):   # central differences of the loss, weight by weight
        w = np.asarray(w, dtype=np.float64)
        g = np.zeros(w.shape)
        for j in np.ndindex(w.shape):
            plus, minus = w.copy(), w.copy()
            plus[j] += eps
            minus[j] -= eps
            up = loss(*weights[:i], plus, *weights[i + 1:])
            down = loss(*weights[:i], minus, *weights[i + 1:])
            g[j] = (up - down) / (2 * eps)
        numeric.append(g)
    norm = np.sqrt(sum(np.sum(g * g) for g in numeric))
    for max_norm in (1e6, 0.05 * norm):   # unclipped, then clipped
        updated = m.train_step(xs, targets, *weights, 0.1, max_norm)
        scale = 0.1 * min(1.0, max_norm / norm)
        for w, g, new in zip(weights, numeric, updated):
            np.testing.assert_allclose(new, w - scale * g, rtol=1e-6, atol=1e-8)


def test_train_rnn_script_lowers_the_loss(ctarget):
    result = subprocess.run([sys.executable, str(EXAMPLES / "train_rnn.py"), "--target", ctarget,
                             "--steps", "40", "--length", "8", "--batch", "8", "--hidden", "8"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    losses = [float(v) for v in re.findall(r"held-out loss (\d+\.\d+)", result.stdout)]
    assert len(losses) >= 3 and losses[-1] < 0.5 * losses[0], result.stdout
