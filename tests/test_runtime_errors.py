"""Run-time checks say what failed, where, and with which value (issue "No curtain at run time").

A failed check's message names the index found (as the call passed it), the axis and its
length, and the value indexed or reduced, by its source name when it has one, with the place
of the expression: `index 7 is out of range for axis 0 of length 5 (x at <string>:2:12)`.
The error carries the same as attributes: `.value`, `.axis`, `.length`, `.operand`, and
`.location`. Every check kind is one function of one program, compiled once per variant
(the reference, c, and OpenCL in both launch layouts).
"""
from __future__ import annotations

import numpy as np
import pytest

import conftest
import tdsl
from conftest import REFERENCE, compiled_variant

PROGRAM = """\
fn pick(x: f32[n], i: i64) -> f32 {
    return x[i]
}
fn pick2(x: f32[n, m], i: i64, j: i64) -> f32 {
    return x[i, j]
}
fn column(x: f32[n, m], j: i64) -> f32[n] {
    return x[:, j]
}
fn first_row_at(x: f32[n, m], j: i64) -> f32 {
    return x[0, j]
}
fn of_a_sum(a: f32[n], b: f32[n], i: i64) -> f32 {
    return (a + b)[i]
}
fn of_a_name(a: f32[n], i: i64) -> f32 {
    doubled = a * 2.0
    return doubled[i]
}
fn window(x: f32[n], i: i64) -> f32[3] {
    return x[i:i + 3]
}
fn taken(x: f32[n, m], idx: i64[k]) -> f32[n, k] {
    return take(x, idx, axis=1)
}
fn along(x: f32[n, m], idx: i64[n, k]) -> f32[n, k] {
    return take_along_axis(x, idx, axis=1)
}
fn put(x: f32[n], i: i64, v: f32) -> f32[n] {
    x[i] = v
    return x
}
fn put_in_row(x: f32[n, m], j: i64, v: f32) -> f32[n, m] {
    x[1, j] = v
    return x
}
fn put_window(x: f32[n], i: i64, v: f32) -> f32[n] {
    x[i:i + 2] = v
    return x
}
fn added(x: f32[n], idx: i64[k], v: f32[k]) -> f32[n] {
    return scatter_add(x, idx, v)
}
fn biggest(x: f32[n, m]) -> f32[n] {
    return max(x, axis=1)
}
fn smallest_of_all(x: f32[n, m]) -> f32 {
    return min(x * 2.0)
}
fn where_biggest(x: f32[n, m]) -> i64[n] {
    return argmax(x, axis=1)
}
fn where_smallest(x: f32[n, m]) -> i64 {
    return argmin(x)
}
fn power(a: i64[n], b: i64[n]) -> i64[n] {
    return a ** b
}
fn walk(x: f32[n], t: i64) -> f32 {
    s = 0.0
    j = 0
    while j < t {
        s = s + x[j]
        j = j + 1
    }
    return s
}
fn draws(key: i64, lo: i64, hi: i64) -> i64[4] {
    return randint(key, lo, hi, 4)
}
"""

LINES = PROGRAM.splitlines()


def at(snippet: str) -> tuple[int, int]:
    """(line, column), 1-based, of the part after `|` (or the whole) of `snippet` in the one line of
    PROGRAM holding `snippet` without its `|`."""
    before, _, part = snippet.rpartition("|")
    (line,) = [k for k, text in enumerate(LINES, 1) if before + part in text]
    return line, LINES[line - 1].index(before + part) + len(before) + 1


F32 = np.float32
X = np.arange(5, dtype=F32)
M = np.ones((3, 5), F32)
EMPTY_ROWS = np.ones((3, 0), F32)

# (function, arguments, the message, where (snippet), value, axis, length, operand)
CASES = [
    ("pick", (X, 7), "index 7 is out of range for axis 0 of length 5", "return |x[i]", 7, 0, 5, "x"),
    ("pick", (X, -6), "index -6 is out of range for axis 0 of length 5", "return |x[i]", -6, 0, 5, "x"),
    ("pick2", (M, 1, 9), "index 9 is out of range for axis 1 of length 5", "x[i, j]", 9, 1, 5, "x"),
    ("pick2", (M, -4, 1), "index -4 is out of range for axis 0 of length 3", "x[i, j]", -4, 0, 3, "x"),
    ("column", (M, 5), "index 5 is out of range for axis 1 of length 5", "x[:, j]", 5, 1, 5, "x"),
    ("first_row_at", (M, 5), "index 5 is out of range for axis 1 of length 5", "x[0, j]", 5, 1, 5, "x"),
    ("of_a_sum", (X, X, 9), "index 9 is out of range for axis 0 of length 5", "(a + b)[i]", 9, 0, 5, None),
    ("of_a_name", (X, 9), "index 9 is out of range for axis 0 of length 5", "doubled[i]", 9, 0, 5, "doubled"),
    ("window", (X, 4), "a slice with run-time bounds is out of range for axis 0 of length 5, so NumPy's "
     "slice would be shorter than written", "x[i:i + 3]", None, 0, 5, "x"),
    ("taken", (M, np.array([0, 6])), "index 6 is out of range for axis 1 of length 5", "take(", 6, 1, 5, "x"),
    ("along", (M, np.full((3, 2), -8)), "index -8 is out of range for axis 1 of length 5", "take_along_axis(",
     -8, 1, 5, "x"),
    ("put", (X, 8, 1.0), "index 8 is out of range for axis 0 of length 5", "x[i] = v", 8, 0, 5, "x"),
    ("put_in_row", (M, 7, 1.0), "index 7 is out of range for axis 1 of length 5", "x[1, j] = v", 7, 1, 5, "x"),
    ("put_window", (X, 4, 1.0), "a slice with run-time bounds is out of range for axis 0 of length 5, so NumPy's "
     "slice would be shorter than written", "x[i:i + 2] = v", None, 0, 5, "x"),
    ("added", (X, np.array([1, 10]), np.ones(2, F32)), "index 10 is out of range for axis 0 of length 5",
     "scatter_add(", 10, 0, 5, "x"),
    ("walk", (X, 7), "index 5 is out of range for axis 0 of length 5", "x[j]", 5, 0, 5, "x"),
    ("biggest", (EMPTY_ROWS,), "max over axis 1 of length 0 has no identity", "return |max(", None, 1, 0, "x"),
    ("smallest_of_all", (EMPTY_ROWS,), "min over axis 1 of length 0 has no identity", "return |min(", None, 1, 0, None),
    ("where_biggest", (EMPTY_ROWS,), "argmax over axis 1 of length 0 has no result", "argmax(", None, 1, 0, "x"),
    ("where_smallest", (EMPTY_ROWS,), "argmin of an empty array has no result: axis 1 has length 0", "argmin(",
     None, 1, 0, "x"),
    ("power", (np.array([2, 2]), np.array([1, -1])), "an integer raised to a negative integer power", "a ** b",
     -1, None, None, "b"),
]

# A value without a source name is named by its role in the check
ROLES = {"of_a_sum": "the value indexed", "smallest_of_all": "the value reduced"}
VARIANTS = [REFERENCE, *conftest.VARIANTS]


@pytest.fixture(scope="module", params=VARIANTS)
def module(request):
    return request.param, compiled_variant(PROGRAM, request.param)


def expected_message(fn: str, message: str, snippet: str, operand: str | None) -> str:
    line, col = at(snippet)
    who = operand or ROLES.get(fn)
    return f"{message} ({who} at <string>:{line}:{col})"


@pytest.mark.parametrize("fn, args, message, snippet, value, axis, length, operand", CASES,
                         ids=[f"{c[0]}-{k}" for k, c in enumerate(CASES)])
def test_a_failed_check_names_the_value_the_axis_and_the_place(module, fn, args, message, snippet, value,
                                                               axis, length, operand):
    variant, m = module
    with pytest.raises(tdsl.TdslRuntimeError) as caught:
        m[fn](*args)
    err = caught.value
    line, col = at(snippet)
    assert err.message == expected_message(fn, message, snippet, operand)
    assert (err.location.line, err.location.col) == (line, col) and err.location is err.loc
    assert str(err).startswith(f"<string>:{line}:{col}: error: {err.message}\n    {LINES[line - 1]}\n")
    if fn == "power" and variant != REFERENCE:
        value = None   # a compiled check of a power reports its code only (docs/language.md)
    assert (err.value, err.axis, err.length, err.operand) == (value, axis, length, operand)


def test_checks_without_an_operand_keep_their_message(module):
    """randint's bounds and a loop index used as a size name no axis of a value: no attributes."""
    variant, m = module
    with pytest.raises(tdsl.TdslRuntimeError) as caught:
        m["draws"](1, 5, 5)
    err = caught.value
    assert err.message == "randint needs low < high" and (err.loc.line, err.loc.col) == at("randint(")
    assert (err.value, err.axis, err.length, err.operand) == (None, None, None, None)


def test_location_is_the_place_of_every_tdsl_error():
    with pytest.raises(tdsl.TdslTypeError) as caught:
        tdsl.compile("fn f(x: f32[n]) { return x + y }", target="numpy")
    assert caught.value.location is caught.value.loc and caught.value.location.col == 30
    assert tdsl.TdslRuntimeError("no place").location is None


def test_an_error_pickles_whole():
    """An error raised in a worker process (Dask) comes back with its text, place and attributes."""
    import pickle
    m = compiled_variant(PROGRAM, "c")
    with pytest.raises(tdsl.TdslRuntimeError) as caught:
        m["pick"](X, 7)
    again = pickle.loads(pickle.dumps(caught.value))
    assert type(again) is tdsl.TdslRuntimeError and str(again) == str(caught.value)
    assert (again.location.line, again.location.col) == at("return |x[i]")
    assert (again.value, again.axis, again.length, again.operand) == (7, 0, 5, "x")


def test_the_error_table_round_trips_through_a_warm_entry():
    """A warm load (codegen/warm.py) rebuilds the error entries with what they name."""
    from tdsl.codegen import warm
    from tdsl.codegen.lower import lower_module
    from tdsl.pipeline import check_source
    from tdsl.runner import ErrorTable
    table = ErrorTable(lower_module(check_source(PROGRAM, "<string>"), "m").errors)
    assert any(e.operand == "doubled" and e.axis == 0 and e.length for e in table)
    assert warm.decode(warm.encode(table)) == table
