"""Messages a new user meets in the editor and the notebook: slips from Python and NumPy habits
(`where(y = 1, ...)`, `x.sum(axis=1)`, `np.sum(x)`, `max(x, 0.0)`), function headers broken
over lines, and errors of the Python builder pointing at the user's own line."""
from __future__ import annotations

import sys

import pytest

import tdsl
from tdsl.pipeline import check_source


def place(src: str, snippet: str) -> tuple[int, int]:
    """1-based (line, column) of the first `snippet` in `src`."""
    pos = src.index(snippet)
    return src.count("\n", 0, pos) + 1, pos - (src.rfind("\n", 0, pos) + 1) + 1


def error_of(src: str, kind, at: str, caret: str | None = None):
    """Check `src` fails with `kind` located at the snippet `at`, the caret under `caret` (default
    `at`) on the printed source line; returns the error."""
    with pytest.raises(kind) as info:
        check_source(src, "prog.tdsl")
    err = info.value
    line, col = place(src, at)
    assert (err.loc.file, err.loc.line, err.loc.col) == ("prog.tdsl", line, col), str(err)
    text = str(err)
    assert text.startswith(f"prog.tdsl:{line}:{col}: error: ")
    source_line, caret_line = text.splitlines()[1:3]
    assert source_line == "    " + src.splitlines()[line - 1]
    marked = caret or at
    assert caret_line == "    " + " " * (col - 1) + "^" + "~" * (len(marked) - 1), text
    return err


# -- 1. `NAME = expr` as an argument, where a comparison was meant ------------------------------

def test_a_keyword_that_is_no_parameter_hints_a_comparison():
    src = "fn f(x: f64[n], y: f64[n]) {\n    return where(y = 1, x, 0.0)\n}"
    err = error_of(src, tdsl.TdslTypeError, "where(y = 1, x, 0.0)")
    assert err.message == "where() has no argument 'y' (it takes condition, a, b)"
    assert err.hint == "'y = 1' passes a keyword argument named y; to compare, write 'y == 1'"
    assert "(hint: 'y = 1' passes a keyword argument named y; to compare, write 'y == 1')" in str(err)


def test_the_comparison_hint_for_a_user_function_and_for_grad():
    src = "fn g(a: f64[n]) { return a }\nfn f(x: f64[n]) {\n    return g(x  =  2 * x)\n}"
    err = error_of(src, tdsl.TdslTypeError, "g(x  =  2 * x)")
    assert err.message == "g() has no parameter 'x' (it takes a)"
    assert err.hint == "'x = 2 * x' passes a keyword argument named x; to compare, write 'x == 2 * x'"
    src = "fn f(x: f64[n], y: f64) {\n    return grad(sum(x * y), y = 1.0)\n}"
    err = error_of(src, tdsl.TdslTypeError, "grad(sum(x * y), y = 1.0)")
    assert err.message == "grad takes no keyword arguments (got 'y')"
    assert err.hint == "'y = 1.0' passes a keyword argument named y; to compare, write 'y == 1.0'"


def test_a_misspelt_keyword_hints_the_parameter_not_a_comparison():
    src = "fn f(x: f64[n, k]) {\n    return sum(x, axs=1)\n}"
    err = error_of(src, tdsl.TdslTypeError, "sum(x, axs=1)")
    assert err.hint == "did you mean 'axis'?"


def test_a_positional_after_a_keyword_that_names_a_value_hints_a_comparison():
    # `a` is where()'s parameter, but also a value here: `a = x` may be a comparison
    src = "fn f(x: f64[n], a: f64[n]) {\n    return where(x > 0.0, a = x, 0.0)\n}"
    err = error_of(src, tdsl.TdslTypeError, "0.0)", caret="0.0")
    assert err.message == "a positional argument cannot follow a keyword argument"
    assert err.hint == "'a = x' passes a keyword argument named a; to compare, write 'a == x'"
    # a real keyword argument followed by a positional one: no talk of comparisons
    src = "fn f(x: f64[n, k]) {\n    return sum(x, axis=0, true)\n}"
    err = error_of(src, tdsl.TdslTypeError, "true")
    assert err.message == "a positional argument cannot follow a keyword argument" and err.hint is None


# -- 2. methods and modules -------------------------------------------------------------------

@pytest.mark.parametrize("expr, at, message, hint", [
    ("x.sum(axis=1)", ".sum", "'.sum(...)' is a method call, but tdsl values have no methods (and there "
     "are no modules)", "call the builtin: sum(x, axis=1)"),
    ("np.sum(x)", ".sum", "'np.sum(...)' calls a module, but tdsl has no modules (and values have no "
     "methods)", "call the builtin: sum(x)"),
    ("numpy.maximum(x, 0.0)", ".maximum", "'numpy.maximum(...)' calls a module", "call the builtin: maximum(x, 0.0)"),
    ("np.linalg.norm(x, axis=1)", ".norm", "'np.linalg.norm(...)' calls a module", "call the builtin: norm(x, axis=1)"),
    ("np.concatenate((x, x), axis=0)", ".concatenate", "calls a module", "call the builtin: concat((x, x), axis=0)"),
    ("(x + 1.0).max(axis=0)", ".max", "'.max(...)' is a method call", "call the builtin: max(x + 1.0, axis=0)"),
    ("x.T.mean()", ".mean", "'.mean(...)' is a method call", "call the builtin: mean(x.T)"),
    ("x[0].reshape(2, 3)", ".reshape", "is a method call", "call the builtin: reshape(x[0], (2, 3))"),
    ("exp(x).sum(\n        axis=0)", ".sum", "is a method call", "call the builtin: sum(exp(x), axis=0)"),
    ("x.astype(f32)", ".astype", "is a method call", "call the builtin: f32(x)"),
    ("x.frobnicate(1)", ".frobnicate", "is a method call", "call a function with the value as an argument"),
])
def test_methods_and_modules_name_the_builtin(expr, at, message, hint):
    src = f"fn f(x: f64[n, k]) {{\n    y = x\n    return {expr}\n}}"
    err = error_of(src, tdsl.TdslSyntaxError, at)
    assert message in err.message
    assert err.hint == hint


def test_a_method_without_a_call_and_a_module_constant():
    src = "fn f(x: f64[n, k]) {\n    return x.sum\n}"
    err = error_of(src, tdsl.TdslTypeError, "sum")
    assert err.message == "unknown attribute '.sum' (only .T exists)"
    assert err.hint == "values have no methods and there are no modules; call the builtin: sum(x)"
    src = "fn f(x: f64[n, k]) {\n    return x * np.pi\n}"
    err = error_of(src, tdsl.TdslTypeError, "pi")
    assert err.hint == "there are no modules; 'pi' is predefined: write pi"
    src = "fn f(x: f64[n, k]) {\n    return x.shape\n}"
    err = error_of(src, tdsl.TdslTypeError, "shape")
    assert err.hint == "shapes are static: use the size variables of the parameters' types by name (e.g. n)"


def test_a_long_compared_expression_is_shortened_in_the_hint():
    long = " + ".join(["x"] * 20)
    src = f"fn f(x: f64[n], y: f64[n]) {{\n    return where(y = {long}, x, 0.0)\n}}"
    err = error_of(src, tdsl.TdslTypeError, "where(", caret=f"where(y = {long}, x, 0.0)")
    shown = long[:36].rstrip() + " ..."
    assert err.hint == f"'y = {shown}' passes a keyword argument named y; to compare, write 'y == {shown}'"


def test_the_method_message_comes_from_the_compile_entry_point_too():
    with pytest.raises(tdsl.TdslSyntaxError) as info:
        tdsl.compile("fn f(x: f64[n]) { return x.sum() }", target="numpy")
    assert str(info.value).startswith("<string>:1:27: error: '.sum(...)' is a method call")


# -- 3. max(x, 0.0) means maximum ---------------------------------------------------------------

@pytest.mark.parametrize("call, full", [("max(x, 0.0)", "maximum(x, 0.0)"), ("min(x, y)", "minimum(x, y)"),
                                        ("max(x, k)", "maximum(x, k)")])
def test_a_reduction_given_a_second_value_hints_the_elementwise_builtin(call, full):
    src = f"fn f(x: f64[n], y: f64[n], k: i64) {{\n    return {call}\n}}"
    err = error_of(src, tdsl.TdslTypeError, call)
    name = call[:3]
    assert err.message == f"{name}() reduces one array: its second argument is an axis, not a value to compare with"
    assert err.hint == f"for the elementwise {full.split('(')[0]}, write {full}"


def test_max_with_an_axis_still_reduces():
    (f,) = tdsl.compile("fn f(x: f64[n, k]) { return max(x, 1) }", target="numpy")
    assert f([[1.0, 5.0], [7.0, 2.0]]).tolist() == [5.0, 7.0]


def test_the_builder_gives_the_same_hint():
    x = tdsl.tensor("x", "f64", ("n",))
    with pytest.raises(tdsl.TdslTypeError) as info:
        tdsl.max(x, 0.0)
    assert info.value.hint == "for the elementwise maximum, write maximum(a, b)"


# -- 4. function headers over several lines ----------------------------------------------------

@pytest.mark.parametrize("header", [
    "fn f(x: f64[n])\n    -> f64[n] {",
    "fn f(x: f64[n]) ->\n    f64[n] {",
    "fn f(x: f64[n]) -> f64[n]\n{",
    "fn f(x: f64[n])\n    ->\n    f64[n]\n{",
    "fn f(x: f64[n])  # the input\n    # the result:\n    -> f64[n]  # doubled\n{",
    "fn f(\n    x: f64[n],\n)\n-> (\n    f64[n]\n)\n{",
])
def test_a_header_may_break_around_the_arrow(header):
    (f,) = tdsl.compile(header + "\n    return 2.0 * x\n}\n", target="numpy")
    assert f.signature == "f(x: f64[n]) -> f64[n]"
    assert f([1.0, 2.0]).tolist() == [2.0, 4.0]


@pytest.mark.parametrize("source, at, message", [
    ("fn f(x: f64[n])\n->\n{ return x }", "{", "unexpected '{'; expected '(' or a name"),
    ("fn f(x: f64[n]) -> -> f64[n] { return x }", "-> f64", "unexpected '->'"),
    ("fn f(x: f64[n])\n-> f64[n]\n-> f64[n] { return x }", "-> f64[n] {", "unexpected '->'; expected '{'"),
    ("fn f(x: f64[n])\n-> f64\n[n] { return x }", "[n] {", "unexpected '['; expected '{'"),
    ("fn f(x: f64[n]) f64[n]\n{ return x }", "f64[n]\n", "missing '->' before the return type"),
    ("fn f(x: f64[n])\n-> f64[n]\ny = x\n{ return y }", "y = x", "unexpected name 'y'; expected '{'"),
])
def test_headers_that_are_not_a_header_are_still_rejected(source, at, message):
    with pytest.raises(tdsl.TdslSyntaxError) as info:
        check_source(source, "prog.tdsl")
    err = info.value
    assert message in err.message
    assert (err.loc.line, err.loc.col) == place(source, at)


# -- 5. errors of the Python builder point at the user's line, with a caret -----------------------

# Python says where in a line a call or operator is from 3.11 (code objects' co_positions)
COLUMNS_KNOWN = sys.version_info >= (3, 11)


def here() -> int:
    """The line number of the caller."""
    return sys._getframe(1).f_lineno


def assert_at_this_line(err: tdsl.TdslError, line: int, snippet: str) -> None:
    """`err` names this file, `line` and the column of `snippet` on it, and shows the line with a
    caret from there."""
    loc = err.loc
    with open(__file__, encoding="utf-8") as source:
        text = source.read().splitlines()[line - 1]
    col = text.index(snippet) + 1 if COLUMNS_KNOWN else 1
    assert (loc.file, loc.line, loc.col) == (__file__, line, col), str(err)
    rendered = str(err).splitlines()
    assert rendered[0].startswith(f"{__file__}:{line}:{col}: error: ")
    assert rendered[1] == "    " + text
    assert rendered[2].startswith("    " + " " * (col - 1) + "^")


def test_an_operator_error_shows_the_python_line_and_the_operator():
    x = tdsl.tensor("x", "f32", ("n",))
    y = tdsl.tensor("y", "f32", ("m",))
    with pytest.raises(tdsl.TdslTypeError) as info:
        line = here(); z = tdsl.exp(x) * 2.0 + y  # noqa: E702, F841
    assert_at_this_line(info.value, line, "tdsl.exp(x) * 2.0 + y")
    if COLUMNS_KNOWN:
        assert str(info.value).splitlines()[2].endswith("^" + "~" * (len("tdsl.exp(x) * 2.0 + y") - 1))
    assert info.value.message == "shapes [n], [m] do not broadcast: n against m on axis -1"


def test_a_builtin_call_error_points_at_the_call():
    x = tdsl.tensor("x", "f64", ("n",))
    with pytest.raises(tdsl.TdslTypeError) as info:
        line = here(); tdsl.max(x, 0.0)  # noqa: E702
    assert_at_this_line(info.value, line, "tdsl.max(x, 0.0)")
    with pytest.raises(tdsl.TdslTypeError) as info:
        line = here(); tdsl.tensor("w", "f16", ("n",))  # noqa: E702
    assert_at_this_line(info.value, line, 'tdsl.tensor("w", "f16", ("n",))')


def test_function_and_loop_body_errors_point_at_the_users_lines():
    x = tdsl.tensor("x", "f64", ("n",))
    y = tdsl.tensor("y", "f64", ("m",))
    with pytest.raises(tdsl.TdslTypeError) as info:
        line = here(); tdsl.function([x], x * 2.0 + y, target="numpy")  # noqa: E702
    assert_at_this_line(info.value, line, "x * 2.0 + y")   # where the value was made

    def body(i, carry):
        return carry + y   # the line of the mistake, inside the user's function

    with pytest.raises(tdsl.TdslTypeError) as info:
        tdsl.fori_loop(0, 3, body, x)
    assert_at_this_line(info.value, body.__code__.co_firstlineno + 1, "carry + y")
    with pytest.raises(tdsl.TdslError) as info:
        line = here(); bool(x > 0.0)  # noqa: E702
    assert_at_this_line(info.value, line, "bool(x > 0.0)")


def test_code_without_a_source_line_gets_its_column_and_no_caret():
    x = tdsl.tensor("x", "f64", ("n",))
    y = tdsl.tensor("y", "f64", ("m",))
    code = compile("z = 1.0 + x + y", "<stdin>", "exec")
    with pytest.raises(tdsl.TdslTypeError) as info:
        exec(code, {"x": x, "y": y})
    loc = info.value.loc
    col = 5 if COLUMNS_KNOWN else 1
    assert (loc.file, loc.line, loc.col) == ("<stdin>", 1, col)
    assert str(info.value) == f"<stdin>:1:{col}: error: shapes [n], [m] do not broadcast: n against m on axis -1"
