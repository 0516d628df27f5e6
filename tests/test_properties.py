"""Properties checked against NumPy itself on random cases: broadcasting of shapes,
NEP 50 promotion of dtype pairs and weak literals, and reductions over random axes."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tdsl
from conftest import assert_same, run
from tdsl.pipeline import check_source

DTYPES = ["bool", "i32", "i64", "f32", "f64"]
NP = {"bool": np.bool_, "i32": np.int32, "i64": np.int64, "f32": np.float32, "f64": np.float64}
ARITH = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide, "//": np.floor_divide,
         "%": np.mod, "**": np.power}
COMPARE = {"==": np.equal, "<": np.less, ">=": np.greater_equal}
BUILTIN2 = {"maximum": np.maximum, "minimum": np.minimum, "atan2": np.arctan2}

# The target fixture only names a target: sharing it between examples is fine.
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
RUNS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def result_type_str(src: str) -> str:
    (g,) = check_source(src)
    (out,) = g.outputs
    return out.type_str


def np_name(dtype) -> str:
    return {np.dtype(v): k for k, v in NP.items()}[np.dtype(dtype)]


# -- broadcasting ---------------------------------------------------------------------------------

shapes = st.lists(st.integers(min_value=1, max_value=3), min_size=0, max_size=4).map(tuple)


def type_of(shape) -> str:
    return "f32" + ("[" + ", ".join(map(str, shape)) + "]" if shape else "")


@FAST
@given(st.lists(shapes, min_size=2, max_size=3))
def test_broadcasting_of_literal_shapes_matches_numpy(shape_list):
    params = ", ".join(f"a{i}: {type_of(s)}" for i, s in enumerate(shape_list))
    expr = " + ".join(f"a{i}" for i in range(len(shape_list)))
    src = f"fn f({params}) {{ return {expr} }}"
    try:
        expected = np.broadcast_shapes(*shape_list)
    except ValueError:
        with pytest.raises(tdsl.TdslTypeError, match="broadcast"):
            check_source(src)
        return
    assert result_type_str(src) == type_of(expected)


SYMBOLIC_AXES = st.lists(st.sampled_from(["n", "m", "1", "k"]), min_size=0, max_size=3)


@FAST
@given(SYMBOLIC_AXES, SYMBOLIC_AXES)
def test_broadcasting_of_symbolic_shapes(a, b):
    """Equal names or a literal 1 combine; two different size variables never broadcast."""
    src = f"fn f(x: f32[{', '.join(a)}], y: f32[{', '.join(b)}]) {{ return x * y }}".replace("f32[]", "f32")
    rank = max(len(a), len(b))
    pa, pb = ["1"] * (rank - len(a)) + a, ["1"] * (rank - len(b)) + b
    out, clash = [], None
    for u, v in zip(pa, pb):
        if u != v and "1" not in (u, v):
            clash = (u, v)
            break
        out.append(v if u == "1" else u)
    if clash:
        with pytest.raises(tdsl.TdslTypeError) as err:
            check_source(src)
        assert clash[0] in err.value.message and clash[1] in err.value.message
    else:
        assert result_type_str(src) == "f32" + (f"[{', '.join(out)}]" if out else "")


BCAST_PATTERNS = [("n, 1", "m"), ("1, m", "n, 1"), ("n, m", "m"), ("k, 1, m", "n, 1"), ("n", ""), ("", "n, m"),
                  ("1", "n, m"), ("k, n, m", "k, 1, 1")]
BCAST_SRC = "\n".join(
    f"fn b{i}(x: f64[{a}], y: i32[{b}]) {{ return x * y - y, x > y }}".replace("[]", "")
    for i, (a, b) in enumerate(BCAST_PATTERNS))


@RUNS
@given(st.integers(0, len(BCAST_PATTERNS) - 1), st.integers(0, 3), st.integers(1, 3), st.integers(1, 2),
       st.integers(0, 2**16))
def test_broadcasting_runs_like_numpy(target, pattern, n, m, k, seed):
    sizes = {"n": n, "m": m, "k": k, "1": 1}
    rng = np.random.default_rng(seed)
    a, b = BCAST_PATTERNS[pattern]
    shape_of = lambda spec: tuple(sizes[d.strip()] for d in spec.split(",") if d.strip())  # noqa: E731
    x = rng.standard_normal(shape_of(a))
    y = rng.integers(-5, 5, size=shape_of(b)).astype(np.int32)
    got = run(BCAST_SRC, f"b{pattern}", target, x, y)
    assert_same(got, (x * y - y, x > y))


# -- promotion --------------------------------------------------------------------------------------

def numpy_dtype(fn, a, b):
    """The dtype NumPy gives, or None when NumPy refuses (or tdsl refuses bool arithmetic)."""
    with np.errstate(all="ignore"):
        try:
            return np.asarray(fn(a, b)).dtype
        except (TypeError, ValueError, OverflowError):
            return None


@FAST
@given(st.sampled_from(DTYPES), st.sampled_from(DTYPES), st.sampled_from(sorted({**ARITH, **COMPARE, **BUILTIN2})),
       st.booleans())
def test_promotion_of_dtype_pairs_matches_numpy(a, b, op, b_is_scalar):
    """Arrays with arrays, and arrays with typed scalar parameters (strong, like NumPy scalars)."""
    b_type = b if b_is_scalar else f"{b}[n]"
    expr = f"{op}(x, y)" if op in BUILTIN2 else f"x {op} y"
    src = f"fn f(x: {a}[n], y: {b_type}) {{ return {expr} }}"
    fn = {**ARITH, **COMPARE, **BUILTIN2}[op]
    xv = np.ones(2, dtype=NP[a])
    yv = NP[b](1) if b_is_scalar else np.ones(2, dtype=NP[b])
    expected = numpy_dtype(fn, xv, yv)
    arithmetic = op not in COMPARE
    if (arithmetic and "bool" in (a, b)) or expected is None:
        with pytest.raises(tdsl.TdslTypeError):
            check_source(src)
        return
    assert result_type_str(src) == f"{np_name(expected)}[n]"


LITERALS = {"int": ("3", 3), "negative int": ("-2", -2), "float": ("2.5", 2.5), "bool": ("true", True),
            "int list": ("[1, 2]", [1, 2]), "float list": ("[0.5, 2.0]", [0.5, 2.0])}


@FAST
@given(st.sampled_from(DTYPES), st.sampled_from(sorted(LITERALS)), st.sampled_from(sorted({**ARITH, **COMPARE})),
       st.booleans())
def test_weak_literals_promote_like_python_scalars(dtype, literal, op, literal_first):
    text, value = LITERALS[literal]
    expr = f"{text} {op} x" if literal_first else f"x {op} {text}"
    src = f"fn f(x: {dtype}[2]) {{ return {expr} }}"
    fn = {**ARITH, **COMPARE}[op]
    xv = np.ones(2, dtype=NP[dtype])
    # NumPy would make a list an array of its default dtype; tdsl's array literals are weak (section 6),
    # so the reference is a Python scalar of the list's kind
    weak = value if not isinstance(value, list) else value[0]
    expected = numpy_dtype(fn, weak, xv) if literal_first else numpy_dtype(fn, xv, weak)
    bool_arith = op not in COMPARE and (dtype == "bool" or literal == "bool")
    negative_int_power = op == "**" and not literal_first and literal == "negative int" and dtype in ("i32", "i64")
    if bool_arith or expected is None or negative_int_power:
        with pytest.raises(tdsl.TdslTypeError):
            check_source(src)
        return
    assert result_type_str(src) == f"{np_name(expected)}[2]"


PAIR_SRC = "\n".join(
    f"fn {op_name}_{a}_{b}(x: {a}[n], y: {b}[n]) {{ return {expr} }}"
    for a, b in itertools.product(["i32", "i64", "f32", "f64"], repeat=2)
    for op_name, expr in (("add", "x + y"), ("mul", "x * y"), ("div", "x / y"), ("fdiv", "x // y"),
                          ("mod", "x % y"), ("max", "maximum(x, y)"), ("lt", "x < y")))
PAIR_OPS = {"add": np.add, "mul": np.multiply, "div": np.true_divide, "fdiv": np.floor_divide, "mod": np.mod,
            "max": np.maximum, "lt": np.less}


@RUNS
@given(st.sampled_from(["i32", "i64", "f32", "f64"]), st.sampled_from(["i32", "i64", "f32", "f64"]),
       st.sampled_from(sorted(PAIR_OPS)), st.integers(0, 2**16))
def test_mixed_dtype_arithmetic_runs_like_numpy(target, a, b, op, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-20, 20, size=6).astype(NP[a])
    y = rng.integers(-6, 6, size=6).astype(NP[b])
    if NP[a](0).dtype.kind == "f":
        x = x + rng.random(6).astype(NP[a])
    with np.errstate(all="ignore"):
        expected = PAIR_OPS[op](x, y)
    assert_same(run(PAIR_SRC, f"{op}_{a}_{b}", target, x, y), expected)


# -- reductions over random axes ---------------------------------------------------------------------

AXES = [None, 0, 1, 2, -1, (0, 1), (0, 2), (1, 2), (0, 1, 2), (2, 0)]


def _axis_text(axis) -> str:
    if axis is None:
        return ""
    return f", axis={axis}" if isinstance(axis, int) else f", axis=({', '.join(map(str, axis))})"


REDUCE_SRC = "\n".join(
    f"fn r{i}_{int(keep)}(x: f64[a, b, c], y: i32[a, b, c]) {{ "
    f"return sum(x{_axis_text(ax)}, keepdims={'true' if keep else 'false'}), "
    f"prod(y{_axis_text(ax)}, keepdims={'true' if keep else 'false'}), "
    f"max(x{_axis_text(ax)}, keepdims={'true' if keep else 'false'}), "
    f"mean(y{_axis_text(ax)}, keepdims={'true' if keep else 'false'}) }}"
    for i, ax in enumerate(AXES) for keep in (False, True))


@RUNS
@given(st.integers(0, len(AXES) - 1), st.booleans(), st.tuples(*[st.integers(1, 4)] * 3), st.integers(0, 2**16))
def test_reductions_over_random_axes_match_numpy(target, axis_index, keep, shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    y = rng.integers(-3, 4, size=shape).astype(np.int32)
    axis = AXES[axis_index]
    got = run(REDUCE_SRC, f"r{axis_index}_{int(keep)}", target, x, y)
    expected = (np.sum(x, axis=axis, keepdims=keep), np.prod(y, axis=axis, keepdims=keep),
                np.max(x, axis=axis, keepdims=keep), np.mean(y, axis=axis, keepdims=keep))
    assert_same(got, expected)
