"""Call-time errors inside loops name the .tdsl line and the loop index's value, on every target."""
from __future__ import annotations

import numpy as np
import pytest

import tdsl
from conftest import TARGETS, require_target

SOURCE = """fn f(x: f64[n], k: i64) -> f64 {
    s = 0.0
    for i in range(k) {
        s = s + x[i]
    }
    return s
}

fn g(x: f64[n, m]) -> f64[n, m] {
    y = x * 1.0
    for i in range(n) {
        y[i, i + 1] = 0.0
    }
    return y
}
"""


@pytest.fixture(params=TARGETS)
def module(request):
    require_target(request.param)
    return tdsl.compile(SOURCE, target=request.param, filename="loops.tdsl")


def test_an_index_out_of_range_in_a_loop_names_the_line_and_the_index(module):
    assert module.f(np.arange(3.0), 3) == 3.0
    with pytest.raises(tdsl.TdslRuntimeError) as info:
        module.f(np.arange(3.0), 5)
    err = info.value
    assert (err.loc.file, err.loc.line, err.loc.col) == ("loops.tdsl", 4, 17)
    assert "but i = 3, n = 3" in err.message


def test_an_update_out_of_range_names_the_iteration(module):
    assert np.array_equal(module.g(np.ones((2, 3))), [[1, 0, 1], [1, 1, 0]])
    with pytest.raises(tdsl.TdslRuntimeError) as info:
        module.g(np.ones((3, 3)))
    assert info.value.loc.line == 12
    assert "i = 2" in info.value.message
