"""The NaN guard (issue "No curtain at run time"): `f.nan_guard(*args)`, `nan_guard=True` and
TDSL_NAN_GUARD=1 stop a call at the first value born NaN or infinite from finite inputs, with
the .tdsl place, the op, the operand and what explains it; NaNs carried from NaN inputs are not
reported. One guarded module per variant (the reference, c, OpenCL in both launch layouts).
"""
from __future__ import annotations

import doctest
import re
from pathlib import Path

import numpy as np
import pytest

import conftest
import tdsl
from conftest import REFERENCE

PROGRAM = """\
fn loss(p: f64[n], y: f64[n]) -> f64 {
    l = -sum(y * log(p)) / n
    return l
}
fn ratio(a: f64[n], b: f64[n]) -> f64[n] {
    return a / b
}
fn grow(x: f32[n]) -> f32[n] {
    return exp(x) + 1.0
}
fn root(x: f64[n]) -> f64[n] {
    r = sqrt(x - 1.0)
    return r
}
fn cancel(x: f64[n]) -> f64[n] {
    big = exp(x)
    return big - big
}
fn steps(x: f64[n], t: i64) -> f64[n] {
    for i in range(t) {
        x = sqrt(x - 1.0)
    }
    return x
}
fn chain(a: f64[n], b: f64[n]) -> f64[n] {
    u = log(a)
    v = sqrt(b)
    return u * v
}
fn total(x: f64[n]) -> f64 {
    return sum(x)
}
fn two(x: f64[n], y: f32[m]) -> (f64[n], f32[m]) {
    return exp(x), log(y)
}
fn energy(x: f64[n], b: f64) -> (f64[n], f64) {
    z = exp(b * x)
    e = sum(z * z) / n
    return z, e
}
fn rows(x: f64[n, m]) -> f64[n] {
    s = sum(exp(x), axis=1)
    return log(s - 1.0)
}
fn soft(x: f64[n, m], t: f64) -> f64[n, m] {
    e = exp(x * t)
    return e / sum(e, axis=1, keepdims=true)
}
"""

VARIANTS = [REFERENCE] + conftest.VARIANTS
_guarded: dict = {}


def guarded(variant: str):
    """PROGRAM's guarded module for a variant (built once per session)."""
    target, _, layout = variant.partition("-")
    conftest.require_target(target)
    if variant not in _guarded:
        with conftest.opencl_layout(layout or None):
            _guarded[variant] = tdsl.compile(PROGRAM, target, "loss.tdsl", nan_guard=True)
    return _guarded[variant]


def born(call):
    with pytest.raises(tdsl.TdslRuntimeError) as info:
        call()
    err = info.value
    assert err.nan_guard
    return err


@pytest.fixture(params=VARIANTS)
def m(request):
    return guarded(request.param)


def test_log_of_zero_in_a_loss(m):
    p, y = np.array([0.5, 0.0, 0.2, 0.0, 0.0]), np.ones(5)
    err = born(lambda: m.loss(p, y))
    assert err.message == "log(p) produced -inf from finite inputs (p has 3 zeros)"
    assert str(err.location) == "loss.tdsl:2:18"
    assert (err.value, err.operand, err.iteration, err.position) == (-np.inf, "p", None, (1,))
    assert str(err).startswith("loss.tdsl:2:18: error: log(p) produced -inf from finite inputs (p has 3 zeros)")


def test_division_by_zero(m):
    err = born(lambda: m.ratio(np.array([1.0, 0.0, 2.0]), np.array([2.0, 0.0, 0.0]), out=np.empty(3)))
    assert err.message == "a / b produced nan from finite inputs (b has 2 zeros)"
    assert (str(err.location), err.operand, err.position) == ("loss.tdsl:6:12", "b", (1,))
    assert np.isnan(err.value)


def test_exp_overflow_to_inf(m):
    err = born(lambda: m.grow(np.array([1.0, 100.0], np.float32)))
    assert err.message == "exp(x) produced inf from finite inputs (x has 1 value above 88.7228)"
    assert (str(err.location), err.value, err.operand) == ("loss.tdsl:9:12", np.inf, "x")


def test_sqrt_of_a_negative(m):
    err = born(lambda: m.root(np.array([5.0, 0.5, -3.0])))
    assert err.message == "sqrt(x - 1.0) produced nan from finite inputs ((x - 1.0) has 2 negative values)"
    assert str(err.location) == "loss.tdsl:12:5"


def test_inf_minus_inf_is_born_at_the_exp(m):
    err = born(lambda: m.cancel(np.array([0.0, 1000.0])))
    assert err.message == "exp(x) produced inf from finite inputs (x has 1 value above 709.783)"
    assert str(err.location) == "loss.tdsl:16:5"


def test_a_sum_that_overflows(m):
    err = born(lambda: m.total(np.array([1e308, 1e308])))
    assert err.message == "sum(x) produced inf from finite inputs (an overflow of f64: the largest |x| is 1e+308)"
    assert str(err.location) == "loss.tdsl:31:12"


def test_a_birth_in_a_loop_names_the_iteration(m):
    err = born(lambda: m.steps(np.full(3, 10.0), 5))
    assert err.message == ("sqrt(x - 1.0) produced nan from finite inputs ((x - 1.0) has 3 negative values), "
                           "in iteration i = 3 of the loop at line 20")
    assert (str(err.location), err.iteration) == ("loss.tdsl:21:9", 3)


def test_a_fused_chain_reports_the_first_op(m):
    err = born(lambda: m.chain(np.array([0.0, 1.0]), np.array([1.0, -1.0])))
    assert err.message == "log(a) produced -inf from finite inputs (a has 1 zero)"
    assert str(err.location) == "loss.tdsl:26:5"


def test_nan_inputs_are_carried_not_born(m):
    got = m.ratio(np.array([np.nan, 1.0, np.inf]), np.array([1.0, 2.0, 1.0]))
    np.testing.assert_array_equal(got, [np.nan, 0.5, np.inf])
    assert np.isnan(m.loss(np.array([np.nan, 0.5]), np.ones(2)))    # a sum of a NaN
    assert m.total(np.array([np.inf, 1.0])) == np.inf


@pytest.mark.parametrize("variant", conftest.VARIANTS)
def test_results_unchanged_when_nothing_is_born(variant):
    x = np.linspace(-3, 3, 1001).astype(np.float32)
    normal = conftest.compiled_variant(PROGRAM, variant)
    guard = guarded(variant)
    # the same values, but for the last bit where one build's vector loop leaves its tail to libm
    np.testing.assert_allclose(guard.grow(x), normal.grow(x), rtol=2.5e-7, atol=0)
    np.testing.assert_allclose(normal.grow.nan_guard(x), normal.grow(x), rtol=2.5e-7, atol=0)
    p = np.linspace(0.1, 0.9, 1001)
    np.testing.assert_allclose(guard.loss(p, p), normal.loss(p, p), rtol=1e-15)
    np.testing.assert_array_equal(guard.ratio(p, p + 1), normal.ratio(p, p + 1))
    y = np.linspace(0.5, 2, 7, dtype=np.float32)
    np.testing.assert_allclose(guard.two(p, y)[1], normal.two(p, y)[1], rtol=2.5e-7, atol=0)
    assert born(lambda: guard.two(p, y - 1)).message == (
        "log(y) produced nan from finite inputs (y has 1 zero and 2 negative values)")


@pytest.mark.parametrize("variant", conftest.VARIANTS)
def test_the_kernels_check(variant):
    """The compiled call itself fails (the reference only explains it, on the failure path)."""
    f = guarded(variant).chain
    with pytest.raises(tdsl.TdslRuntimeError) as info:
        f._unguarded_call(np.array([0.0, 1.0]), np.array([1.0, 1.0]))
    assert info.value.nan_guard and "log(a)" in info.value.message
    np.testing.assert_array_equal(f._unguarded_call(np.array([np.nan, 1.0]), np.array([1.0, 4.0])), [np.nan, 0.0])


def test_guarded_and_normal_builds_are_separate():
    conftest.require_target("c")
    normal = conftest.compiled_variant(PROGRAM, "c")
    guard = guarded("c")
    assert "NaN guard" not in tdsl.Module.source(normal)   # the normal build is what it was
    assert "NaN guard" in tdsl.Module.source(guard)
    assert normal.loss._runner.library._name != guard.loss._runner.library._name
    x = np.array([1.0, 100.0], np.float32)
    assert normal.grow(x)[1] == np.inf    # no guard
    err = born(lambda: normal.grow.nan_guard(x))      # the guarded variant, built on first use
    assert normal.grow._guard is not None and err.operand == "x"


def test_the_variable_and_the_argument(monkeypatch):
    monkeypatch.setenv("TDSL_NAN_GUARD", "1")
    on = tdsl.compile(PROGRAM, "numpy")
    off = tdsl.compile(PROGRAM, "numpy", nan_guard=False)   # the argument wins
    x = np.array([1.0, 100.0], np.float32)
    born(lambda: on.grow(x))
    assert off.grow(x)[1] == np.inf
    monkeypatch.setenv("TDSL_NAN_GUARD", "0")
    assert tdsl.compile(PROGRAM, "numpy").grow(x)[1] == np.inf


def test_the_cli_the_builder_and_pickling_keep_the_guard(tmp_path, capsys):
    import pickle

    from tdsl import cli
    path = tmp_path / "loss.tdsl"
    path.write_text(PROGRAM)
    argv = ["run", str(path), "loss", "-t", "numpy", "--arg", "p=[0.5, 0.0]", "--arg", "y=[1.0, 1.0]"]
    assert cli.main(argv) == 0 and capsys.readouterr().out == "inf\n"   # unguarded: the inf
    assert cli.main(argv + ["--nan-guard"]) == 1
    assert f"{path}:2:18: error: log(p) produced -inf from finite inputs (p has 1 zero" in capsys.readouterr().err
    x = tdsl.tensor("x", "f32", ("n",))
    f = tdsl.function([x], tdsl.exp(x), target="numpy", nan_guard=True)
    born(lambda: f(np.array([1.0, 100.0], np.float32)))
    again = pickle.loads(pickle.dumps(f))   # its options travel with its source
    assert again.guarded
    born(lambda: again(np.array([1.0, 100.0], np.float32)))
    assert not pickle.loads(pickle.dumps(tdsl.compile(PROGRAM, "numpy").grow)).guarded


def _section(name: str) -> str:
    text = (Path(__file__).resolve().parents[1] / "docs" / "debugging.md").read_text(encoding="utf-8")
    start = text.index(f"## {name}")
    return text[start:]


def _fenced(text: str, kind: str) -> list[str]:
    return [m.group(1) for m in re.finditer(rf"^```{kind}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)]


def test_the_documented_session(tmp_path, monkeypatch):
    """docs/debugging.md, "NaN guard": the loss example runs as shown (c target)."""
    conftest.require_target("c")
    section = _section("NaN guard")
    (tmp_path / "loss.tdsl").write_text(_fenced(section, "tdsl")[0], encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    test = doctest.DocTestParser().get_doctest(_fenced(section, "pycon")[0], {"np": np, "tdsl": tdsl},
                                               "debugging.md", None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    output: list[str] = []
    runner.run(test, out=output.append)
    assert runner.failures == 0, "".join(output)


def test_the_documented_training_run(tmp_path):
    """docs/debugging.md, "A training run that diverges to NaN": the guard's message as shown
    (computed on the reference, which writes every target's message)."""
    section = _section("NaN guard")
    source = _fenced(section, "tdsl")[1]
    console = _fenced(section, "console")[0]
    shown = next(line for line in console.splitlines() if line.startswith("tdsl.errors.TdslRuntimeError: "))
    m = tdsl.compile(source, "numpy", "train.tdsl")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 8))
    y = x @ np.arange(8.0)
    err = born(lambda: m.fit.nan_guard(np.zeros(8), x, y, 2.5, 2000))
    assert shown == f"tdsl.errors.TdslRuntimeError: {err.location}: error: {err.message}"
    assert np.isnan(m.fit(np.zeros(8), x, y, 2.5, 2000)).all()


def test_the_documented_slow_step():
    """docs/debugging.md, "A slow step, found with the profiler": the two versions agree."""
    section = _section("NaN guard")
    source = "\n".join(_fenced(section, "tdsl")[2:4])
    m = tdsl.compile(source, "numpy", "fit2.tdsl")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    y = x @ np.arange(8.0)
    np.testing.assert_allclose(m.fit(np.zeros(8), x, y, 0.1, 50), m.fit_hoisted(np.zeros(8), x, y, 0.1, 50))


# each kind of kernel the c target guards: a fused pass storing a value and summing (SIMD lanes),
# a sum per row fused with its user, a row's parts with loops of their own (softmax)
KERNEL_CASES = [
    ("energy", lambda: (np.array([1.0, 400.0]), 1.0),
     "z * z produced inf from finite inputs (an overflow of f64: the largest |z| is 5.22147e+173)"),
    ("energy", lambda: (np.array([1.0, 800.0]), 1.0),
     "exp(b * x) produced inf from finite inputs ((b * x) has 1 value above 709.783)"),
    ("rows", lambda: (np.zeros((2, 1)),), "log(s - 1.0) produced -inf from finite inputs ((s - 1.0) has 2 zeros)"),
    ("soft", lambda: (np.ones((3, 20)), 800.0),
     "exp(x * t) produced inf from finite inputs ((x * t) has 60 values above 709.783)"),
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_kind_of_kernel(variant):
    m = guarded(variant)
    for name, args, message in KERNEL_CASES:
        f = m[name]
        if variant != REFERENCE:   # the kernels themselves catch it
            with pytest.raises(tdsl.TdslRuntimeError) as info:
                f._unguarded_call(*args())
            assert info.value.nan_guard, name
        assert born(lambda: f(*args())).message == message
    np.testing.assert_allclose(m.soft(np.ones((3, 20)), 2.0), np.full((3, 20), 0.05))
