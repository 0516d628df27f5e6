"""Parameter types with dim expressions (section 11: types may use dim expressions)."""
from __future__ import annotations

import numpy as np
import pytest

import tdsl
from conftest import TARGETS, require_target

SOURCE = """
fn shifted(x: f32[n], y: f32[n + 1]) -> f32[n - 1] {
    return x[1:] + y[2:]
}

fn window(x: f64[n], w: f64[k], out: f64[n - k + 1]) -> f64[n - k + 1] {
    for i in range(n - k + 1) {
        out[i] = sum(x[i:i + k] * w)
    }
    return out
}
"""


@pytest.fixture(params=TARGETS)
def module(request):
    require_target(request.param)
    return tdsl.compile(SOURCE, target=request.param)


def test_a_parameter_axis_may_be_a_dim_expression(module):
    x, y = np.arange(3, dtype=np.float32), np.arange(4, dtype=np.float32)
    assert np.array_equal(module.shifted(x, y), x[1:] + y[2:])
    assert module.shifted.signature == "shifted(x: f32[n], y: f32[n + 1]) -> f32[n - 1]"
    x, w = np.arange(6.0), np.array([1.0, -1.0, 0.5])
    expected = np.convolve(x, w[::-1], mode="valid")
    assert np.allclose(module.window(x, w, np.zeros(4)), expected)


def test_a_size_that_does_not_match_the_expression_names_both(module):
    with pytest.raises(tdsl.TdslArgumentError) as info:
        module.shifted(np.zeros(3, np.float32), np.zeros(3, np.float32))
    assert "n + 1 = 4" in info.value.message and "n = 3" in info.value.message and "got 3" in info.value.message


def test_a_dim_expression_needs_its_size_variables_bound_earlier():
    with pytest.raises(tdsl.TdslTypeError) as info:
        tdsl.compile("fn f(y: f32[n + 1]) { return y }", target="numpy")
    assert "earlier parameter" in info.value.message
    assert (info.value.loc.line, info.value.loc.col) == (1, 13)
