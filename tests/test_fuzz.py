"""The differential fuzzer of tests/fuzz/ in CI: a fixed seed, a bounded number of programs.

Each test's failure message holds the shrunk programs with their inputs, ready to paste.
More programs: `python -m tests.fuzz --count 1000` (docs/testing.md).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import fuzz
from conftest import COMPILED, LAYOUTS, REFERENCE, require_asan

CI_SEED = 20261206
CI_PROGRAMS = 64        # with 2 calls each; OpenCL's two launch layouts take half of them each (other
                        # programs for each): about 75 s on 2 cores for numpy, c and OpenCL
CI_SANITIZED = 24
CI_MUTATIONS = 200
# the fuzzer's labels: each compiled target, OpenCL in each launch layout (the reference is the oracle)
LABELS = {REFERENCE: [], **{t: [f"{t}:{layout}" if layout else t for layout in LAYOUTS.get(t, (None,))]
                            for t in COMPILED}}


def run_programs(labels: list, count: int, seed: int = CI_SEED) -> tuple[dict, fuzz.Report]:
    report = fuzz.Report(None, f"tests/test_fuzz.py (seed {seed})", max_shrink=3, shrink_budget=30)
    stats = fuzz.run(count, seed, fuzz.Config(labels), report, log=lambda *a, **k: None)
    return stats, report


def findings_text(report: fuzz.Report, seed: int = CI_SEED) -> str:
    return "\n".join(fuzz.describe(f, labels, i + 1, f"seed {seed}")
                     for i, (f, labels) in enumerate(report.distinct.values()))


@pytest.mark.slow
def test_random_programs_agree_with_numpy(target):
    """Random programs on `target` (numpy: the reference interpreter itself) against the NumPy oracle;
    OpenCL's launch layouts each run other programs (a seed each), half the count each."""
    labels = LABELS[target] or [None]
    for k, label in enumerate(labels):
        seed, count = CI_SEED + 2 * k, CI_PROGRAMS // len(labels)
        stats, report = run_programs([label] if label else [], count, seed)
        assert stats["calls"] >= count
        assert not report.distinct, findings_text(report, seed)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TDSL_SANITIZE") not in (None, "", "0"), reason="already sanitizing")
def test_random_programs_under_sanitizers():
    """The c target built with ASan and UBSan, in a process that preloads the ASan runtime."""
    require_asan()
    lines = []
    status = fuzz.sanitized_run(["--count", str(CI_SANITIZED), "--seed", str(CI_SEED + 1), "--max-shrink", "2"],
                                log=lines.append)
    assert status == 0, "\n".join(lines)[-12000:]


def test_mutated_sources_give_located_errors_quickly():
    """Mutated sources compile or raise a TdslError with a line and column, within a second each."""
    lines = []
    stats = fuzz.parser_fuzz(CI_MUTATIONS, CI_SEED, None, log=lines.append)
    assert stats["cases"] == CI_MUTATIONS
    assert stats["problems"] == 0, "\n".join(lines)[-12000:]


def test_generator_covers_the_language():
    """The generator reaches every elementwise builtin, reduction, shape op and grad (no compile needed)."""
    cfg = fuzz.Config([], grads=0.15)
    seen = set()
    for index in range(600):
        seen.update(fuzz.ops_of(fuzz.program(CI_SEED, index, cfg)))
    wanted = set(fuzz.UNARY_FLOAT + fuzz.UNARY_ARITH + fuzz.PREDICATES + fuzz.ARITH + fuzz.COMPARE + fuzz.REDUCTIONS)
    wanted |= {"softmax", "log_softmax", "matmul", "index", "T", "transpose", "reshape", "expand_dims", "squeeze",
               "flip", "broadcast_to", "concat", "stack", "take", "where", "clip", "cast", "zeros", "ones", "full",
               "arange", "eye", "one_hot", "zeros_like", "ones_like", "grad", "and", "or", "not", "neg"}
    assert wanted <= seen, sorted(wanted - seen)
    # section 11: loops, branches, updates (static, dim-expression, run-time, integer-array subscripts)
    control = {"for", "while", "if", "elif", "else", "range-step", "=", "+=", "-=", "*=", "/=", "[]=", "[]+=",
               "[]-=", "[]*=", "[]/=", "sub-i", "sub-s", "sub-d", "sub-ds", "sub-a", "dindex", "guard"}
    assert control <= seen, sorted(control - seen)


def test_generator_makes_grads_through_loops_branches_and_updates():
    """Some control-flow grads go through a for loop, an if and an indexed update."""
    cfg = fuzz.Config([], grads=1.0, control=1.0)
    seen = set()
    for index in range(60):
        prog = fuzz.program(CI_SEED, index, cfg)
        assert prog.stmts is not None and prog.grad_of is not None
        seen.update(fuzz.ops_of(prog))
    assert {"for", "if", "[]=", "sub-d", "sub-a", "range-step", "+=", "grad"} <= seen, seen


def _stmt_program(stmts, result, *params) -> fuzz.Program:
    return fuzz.Program("g", list(params), result, stmts=stmts)


def test_oracle_runs_updates_as_numpy():
    """Repeated integer-array indices: the last write wins; a negative run-time index counts from the end;
    a weak value carried by a loop that runs no iteration still has the dtype its body gives it."""
    x = fuzz.Node("param", attrs={"name": "x0"}, dtype="f32", shape=("n",))
    idx = fuzz.Node("param", attrs={"name": "x1"}, dtype="i64", shape=("m",))
    v = fuzz.Node("var", attrs={"name": "v1"}, dtype="f32", shape=("n",))
    q = fuzz.Node("var", attrs={"name": "q1"}, dtype="i64", weak=True)
    s = fuzz.Node("var", attrs={"name": "v2"}, dtype="f32", shape=())
    region = fuzz.Node("dindex", (v, idx), {"subs": [("a", 1)]}, "f32", ("m",))
    back = fuzz.make_elementwise("bin", "-", [fuzz.lit(-1), q], np.subtract)
    row = fuzz.Node("dindex", (v, back), {"subs": [("d", 1)]}, "f32", ())
    stmts = [fuzz.Stmt("assign", "v1", x),
             fuzz.Stmt("set", "v1", fuzz.Node("dindex", (fuzz.Node("param", attrs={"name": "x2"}, dtype="f32",
                                                                   shape=("m",)),), {"subs": [("s", None, None, None,
                                                                                               "m")]}, "f32", ("m",)),
                       region=region),
             fuzz.Stmt("assign", "v2", fuzz.lit(0.0)),
             fuzz.Stmt("for", "q1", bounds=(fuzz.Node("param", attrs={"name": "x3"}, dtype="i64"),),
                       body=[fuzz.Stmt("aug", "v2", fuzz.make_elementwise("bin", "+", [s, row], np.add), op="+")],
                       carried={"v2": "f32"})]
    total = fuzz.make_elementwise("bin", "+", [v, s], np.add)
    prog = _stmt_program(stmts, total, fuzz.Param("x0", "f32", ("n",)), fuzz.Param("x1", "i64", ("m",)),
                         fuzz.Param("x2", "f32", ("m",)), fuzz.Param("x3", "i64", ()))
    text = fuzz.render_program(prog)
    assert "v1[x1] = x2[:]" in text and "for q1 in range(x3) {" in text and "v2 += v1[((-1) - q1)]" in text
    args = {"x0": np.zeros(4, np.float32), "x1": np.array([1, 1, -1]), "x2": np.array([5.0, 6.0, 7.0], np.float32),
            "x3": np.int64(2)}
    got = fuzz.oracle(prog, args, {"n": 4, "m": 3})
    # v1 = [0, 6, 0, 7] (x1 writes 5 then 6 at 1, 7 at -1); v2 = v1[-1] + v1[-2] = 7
    np.testing.assert_array_equal(got, np.array([7.0, 13.0, 7.0, 14.0], np.float32))
    assert got.dtype == np.float32
    none = fuzz.oracle(prog, dict(args, x3=np.int64(0)), {"n": 4, "m": 3})
    assert none.dtype == np.float32                                 # 0.0 carried as f32 even with no iteration
    out = fuzz.expected_outcome(prog, fuzz.Inputs(dict(args, x1=np.array([4, 0, 0])), {"n": 4, "m": 3}, {}))
    assert out[0] == "raise"                                        # index 4 of an axis of length 4


def test_oracle_catches_a_wrong_answer_and_a_missing_error():
    """The judge is not vacuous: an answer off by one ulp-multiple, or a value where NumPy raises, is caught."""
    prog = fuzz.generate(7, "g")
    inputs = fuzz.make_inputs(prog, 7)
    expected = fuzz.expected_outcome(prog, inputs)
    assert expected[0] == "ok"
    value = np.asarray(expected[1])
    wrong = value + 1 if value.dtype != bool else ~value
    assert fuzz.judge(("ok", wrong), expected, prog)[0] == "wrong"
    assert fuzz.judge(("ok", value.astype(np.float16)), expected, prog)[0] == "wrong"
    assert fuzz.judge(("ok", value), ("raise", "argmax of an empty array"), prog)[0] == "missing-error"
    assert fuzz.judge(("raw", ValueError("x")), expected, prog)[0] == "raw-exception"
    assert fuzz.judge(("ok", value), expected, prog) is None


def test_shrinking_keeps_the_failure_and_makes_the_program_smaller(monkeypatch):
    """A finding on the reference is shrunk to a smaller program that still fails the same way."""
    prog = fuzz.Program("g", [fuzz.Param("x0", "f64", ("n",))], None)
    x = fuzz.Node("param", attrs={"name": "x0"}, dtype="f64", shape=("n",))
    soft = fuzz.Node("softmax", (fuzz.make_elementwise("un", "exp", [x], np.exp),), {"fn": "log_softmax", "axis": -1},
                     "f64", ("n",))
    prog.result = fuzz.make_elementwise("bin", "+", [soft, fuzz.lit(1.0)], np.add)
    inputs = fuzz.Inputs({"x0": np.zeros(0)}, {"n": 0, "m": 1, "k": 1}, {})
    finding = fuzz.Finding("planted", "numpy", prog, inputs, "")
    calls = []
    # a stand-in for "still fails": the program still holds the log_softmax
    monkeypatch.setattr(fuzz.shrinking, "reproduces",
                        lambda f, p, i, label=None: calls.append(p) or "log_softmax" in fuzz.render_program(p))
    small = fuzz.shrink(finding)
    assert calls
    assert "log_softmax" in fuzz.render_program(small.prog)
    assert len(fuzz.render_program(small.prog)) < len(fuzz.render_program(prog))


def _program_of(result, *params) -> fuzz.Program:
    return fuzz.Program("g", list(params), result)


def test_oracle_softmax_of_tied_int64_maxima_is_one_half_each():
    """softmax of int64 with two int64-max ties: 0.5 each, as NumPy on an f64 copy (not 1.0 through logsumexp)."""
    x = fuzz.Node("param", attrs={"name": "x0"}, dtype="i64", shape=("n",))
    top = np.iinfo(np.int64).max
    args = {"x0": np.array([top, 3, top, -5], np.int64)}
    for fn, want in (("softmax", [0.5, 0.0, 0.5, 0.0]), ("log_softmax", [-np.log(2), -top, -np.log(2), -top])):
        prog = _program_of(fuzz.Node("softmax", (x,), {"fn": fn, "axis": -1}, "f64", ("n",)),
                           fuzz.Param("x0", "i64", ("n",)))
        got = fuzz.oracle(prog, args, {"n": 4})
        shifted = args["x0"].astype(np.float64) - float(top)
        numpy = np.exp(shifted) / np.exp(shifted).sum() if fn == "softmax" else shifted - np.log(np.exp(shifted).sum())
        np.testing.assert_allclose(got, want, rtol=1e-12)
        np.testing.assert_allclose(got, numpy, rtol=1e-12)


def test_oracle_does_not_judge_ill_conditioned_calls():
    """A float % next to a step after rounding, and a mean cancelling int64 max and min, are unspecified."""
    x = fuzz.Node("param", attrs={"name": "x0"}, dtype="i64", shape=("n",))
    soft = fuzz.Node("softmax", (x,), {"fn": "log_softmax", "axis": -1}, "f64", ("n",))
    mod = fuzz.make_elementwise("bin", "%", [soft, x], np.mod)
    top = np.iinfo(np.int64).max
    inputs = fuzz.Inputs({"x0": np.array([top, top, 1], np.int64)}, {"n": 3}, {})
    assert fuzz.expected_outcome(_program_of(mod, fuzz.Param("x0", "i64", ("n",))), inputs)[0] == "unspecified"
    mean = fuzz.Node("reduce", (x,), {"fn": "mean", "axis": None, "keepdims": False}, "f64", ())
    prog = _program_of(mean, fuzz.Param("x0", "i64", ("n",)))
    extremes = fuzz.Inputs({"x0": np.array([top, -top - 1, 3, -4], np.int64)}, {"n": 4}, {})
    assert fuzz.expected_outcome(prog, extremes)[0] == "unspecified"
    # well-conditioned ones are still judged: an exact operand of %, and an ordinary mean
    exact_mod = fuzz.make_elementwise("bin", "%", [fuzz.lit(1.0), x], np.mod)
    plain = fuzz.Inputs({"x0": np.array([2, 3, 1], np.int64)}, {"n": 3}, {})
    assert fuzz.expected_outcome(_program_of(exact_mod, fuzz.Param("x0", "i64", ("n",))), plain)[0] == "ok"
    assert fuzz.expected_outcome(prog, plain)[0] == "ok"
    same = fuzz.make_elementwise("bin", "%", [soft, soft], np.mod)   # log_softmax(x) % itself: 0.0 exactly
    assert fuzz.expected_outcome(_program_of(same, fuzz.Param("x0", "i64", ("n",))), inputs)[0] == "ok"


def test_tolerance_follows_the_least_precise_dtype_computed_in():
    """f64 @ sin(f32) is judged with f32's tolerance; an f32 value only cast to f64 keeps f64's."""
    a = fuzz.Node("param", attrs={"name": "x0"}, dtype="f64", shape=("n", "n"))
    b = fuzz.Node("param", attrs={"name": "x1"}, dtype="f32", shape=("n", "n"))
    sin = fuzz.make_elementwise("un", "sin", [b], np.sin)
    assert fuzz.precision(fuzz.Node("matmul", (a, sin), dtype="f64", shape=("n", "n"))) == "f32"
    assert fuzz.precision(fuzz.Node("cast", (b,), {"to": "f64"}, "f64", ("n",))) == "f64"
    assert fuzz.precision(fuzz.make_elementwise("bin", "+", [a, b], np.add)) == "f64"
    expected, got = np.array([0.050210557725784005]), np.array([0.05021029406367014])
    assert fuzz.compare(got, expected, precision="f32") is None
    assert fuzz.compare(got, expected, precision="f64") is not None
    assert fuzz.compare(got, expected) is not None


def test_inputs_for_a_gather_into_an_axis_of_negative_length():
    """A size variable below a take's minimum (axis m - 2 with m = 1) gives indices, not a crash of the fuzzer."""
    out = fuzz.index_values(fuzz.Param("x2", "i32", ("2", "m"), "m - 2"), (2, 1), -1, np.random.default_rng(0))
    assert out.shape == (2, 1) and out.dtype == np.int32


def test_locals_never_take_the_name_of_a_function_of_the_module():
    """tdsl rejects `main = ...` in a module with a function main: the generator never writes it."""
    cfg = fuzz.Config([], hostile=1.0)
    for first in range(0, 400, 40):
        names = set()
        progs = [fuzz.program(CI_SEED, i, cfg, names) for i in range(first, first + 40)]
        functions = {p.shown for p in progs}
        for p in progs:
            shown_locals = {v for k, v in p.rename.items() if k != p.name and not k.startswith("x")}
            assert not shown_locals & functions, (p.shown, shown_locals & functions)


def test_generator_covers_section_12():
    """Section 12's builtins appear in straight-line programs, grads and loops (no compile needed)."""
    cfg = fuzz.Config([], grads=0.2)
    seen, grad_seen, control_seen = set(), set(), set()
    for index in range(800):
        prog = fuzz.program(CI_SEED, index, cfg)
        ops = set(fuzz.ops_of(prog))
        (control_seen if prog.stmts is not None else grad_seen if prog.grad_of is not None else seen).update(ops)
        fuzz.render_program(prog)
    assert {"const", "cum", "diff", "sort", "topk_part", "einsum", "norm", "scatter_add", "take_along", "conv",
            "pool", "rand", "randn", "randint", "bernoulli", "fold_in"} <= seen | control_seen, seen
    assert {"cum", "sort", "einsum", "norm", "conv", "pool", "take_along", "scatter_add"} <= grad_seen, grad_seen
    assert {"cum", "einsum", "scatter_add", "fold_in"} <= control_seen, control_seen


def test_section_12_mirrors_agree_with_numpy_and_the_contract():
    """The oracle's Philox, top_k order and random transforms: the documented definitions."""
    from fuzz import sec12
    key = 12345
    raw = np.random.Philox(key=key).random_raw(8)
    block = sec12.philox_block((1, 0, 0, 0), (key, 0))
    assert [int(w) for w in raw[:4]] == list(block)
    assert np.array_equal(sec12._rand(key, (2, 3), "f64"),
                          np.random.Generator(np.random.Philox(key=key)).random(6).reshape(2, 3))
    x = np.array([1.0, np.nan, 3.0, 3.0, -np.inf, np.nan])
    assert sec12._top_order(x, 0).tolist() == [1, 5, 2, 3, 0, 4]
    i = np.array([np.iinfo(np.int64).min, 5, 5, np.iinfo(np.int64).max])
    assert sec12._top_order(i, 0).tolist() == [3, 1, 2, 0]
    ints = sec12._randint(key, -3, 4, (1000,), "i64")
    assert ints.min() == -3 and ints.max() == 3
    assert sec12._randint(key, 0, 2**63 - 1, (4,), "i64").tolist() == [(int(w) * (2**63 - 1)) >> 64 for w in raw[:4]]
    assert sec12._fold_in(np.int64(-1), 3) == sec12._fold_in(2**64 - 1, np.int64(3))
