"""The stabilizing rewrites (lang/rewrite.py STABILIZING) and the switch that turns them off,
TDSL_STABILIZE=0, for results bit for bit as NumPy computes them (docs/language.md, section 8)."""
from __future__ import annotations

import numpy as np
import pytest

import tdsl
from conftest import require_target

SOURCE = """
fn lse(x: f64[n]) -> f64 { return log(sum(exp(x))) }
fn logsig(x: f64[n]) -> f64[n] { return log(sigmoid(x)) }
fn log1p_(x: f64[n]) -> f64[n] { return log(1.0 + x) }
fn expm1_(x: f64[n]) -> f64[n] { return exp(x) - 1.0 }
"""
BIG = np.array([1000.0, 0.0])
NEG = np.array([-800.0, 0.0])
TINY = np.array([1e-18, -1e-17])


def numpy_results():
    with np.errstate(all="ignore"):
        return {"lse": np.log(np.sum(np.exp(BIG))), "logsig": np.log(1 / (1 + np.exp(-NEG))),
                "log1p_": np.log(1.0 + TINY), "expm1_": np.exp(TINY) - 1.0}


def results(target: str) -> dict:
    require_target(target)
    m = tdsl.compile(SOURCE, target=target)
    with np.errstate(all="ignore"):
        return {"lse": m.lse(BIG), "logsig": m.logsig(NEG), "log1p_": m.log1p_(TINY), "expm1_": m.expm1_(TINY)}


@pytest.mark.parametrize("target", ["numpy", "c", "opencl"])
def test_stabilized_by_default(target, monkeypatch):
    monkeypatch.delenv("TDSL_STABILIZE", raising=False)
    got = results(target)
    assert got["lse"] == pytest.approx(1000.0)                  # NumPy: inf
    np.testing.assert_allclose(got["logsig"], [-800.0, np.log(0.5)])   # NumPy: -inf
    np.testing.assert_allclose(got["log1p_"], np.log1p(TINY), rtol=1e-12)   # NumPy: 0
    np.testing.assert_allclose(got["expm1_"], np.expm1(TINY), rtol=1e-12)   # NumPy: 0


@pytest.mark.parametrize("target", ["numpy", "c", "opencl"])
@pytest.mark.parametrize("value", ["0", "off"])
def test_turned_off_the_results_are_numpys(target, monkeypatch, value):
    monkeypatch.setenv("TDSL_STABILIZE", value)
    got, want = results(target), numpy_results()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_the_switch_applies_to_grad_and_to_the_printed_graph(monkeypatch):
    src = "fn g(x: f64[n]) -> f64[n] { return grad(sum(log(sigmoid(x))), x) }"
    monkeypatch.delenv("TDSL_STABILIZE", raising=False)
    assert np.isfinite(tdsl.compile(src, target="numpy").g(NEG)).all()
    monkeypatch.setenv("TDSL_STABILIZE", "0")
    with np.errstate(all="ignore"):
        off = tdsl.compile(src, target="numpy").g(NEG)
    assert not np.isfinite(off).all()   # as NumPy's own formula: 0 * inf at x = -800
