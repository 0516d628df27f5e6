"""to_tdsl (tdsl.printer): the text it prints is the same function. Two cases it once got wrong:
a floor division inside a product, and statements that run only for their errors."""
from __future__ import annotations

import numpy as np
import pytest

import tdsl
from tdsl.dims import Dim
from tdsl.printer import to_tdsl


def test_a_floor_division_in_a_product_keeps_its_parentheses():
    assert str(2 * ((Dim.of("m") - 2) // 2)) == "2 * ((m - 2) // 2)"
    assert str(Dim.of("k") * (Dim.of("n") // 2)) == "k * (n // 2)"
    assert str(Dim.of("n") // 2 + 1) == "n // 2 + 1"   # alone in its term: no parentheses
    src = ("fn f(x: f64[1, 1, m, m]) -> f64[1, 1, (m - 2) // 2 + 1, (m - 2) // 2 + 1] {\n"
           "    return avg_pool2d(x, 2)\n}\n")
    text = to_tdsl(tdsl.compile(src, target="numpy").f.graph)
    assert "2 * ((m - 2) // 2) + 2" in text
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    np.testing.assert_array_equal(tdsl.compile(text, target="numpy").f(x), [[[[3.0, 5.0], [13.0, 15.0]]]])


@pytest.mark.parametrize("body", [
    "    y = x[k]\n",                                             # a named value nothing reads
    "    for i in range(3) {\n        y = x[k]\n    }\n",         # a loop that binds nothing
    "    if k > 2 {\n        y = x[k]\n    }\n",                  # a branch that binds nothing
])
def test_statements_that_run_for_their_errors_are_printed(body):
    src = f"fn g(x: f64[n], k: i64) -> f64 {{\n{body}    return sum(x)\n}}\n"
    text = to_tdsl(tdsl.compile(src, target="numpy").g.graph)
    printed = tdsl.compile(text, target="numpy").g
    assert printed(np.ones(4), 1) == 4.0
    with pytest.raises(tdsl.TdslRuntimeError, match="index 10 is out of range for axis 0 of length 4"):
        printed(np.ones(4), 10)
