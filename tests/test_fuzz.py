"""The differential fuzzer of tests/fuzz.py in CI: a fixed seed, a bounded number of programs.

Each test's failure message holds the shrunk programs with their inputs, ready to paste.
More programs: `python -m tests.fuzz --count 1000` (docs/testing.md).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import fuzz
from conftest import require_target

CI_SEED = 20261206
CI_PROGRAMS = 64        # with 2 calls each: about 75 s on 2 cores for numpy, c and both OpenCL layouts
CI_SANITIZED = 24
CI_MUTATIONS = 200
LABELS = {"numpy": [], "c": ["c"], "opencl": ["opencl:cpu", "opencl:gpu"]}


def run_programs(labels: list, count: int) -> tuple[dict, fuzz.Report]:
    report = fuzz.Report(None, f"tests/test_fuzz.py (seed {CI_SEED})", max_shrink=3, shrink_budget=30)
    stats = fuzz.run(count, CI_SEED, fuzz.Config(labels), report, log=lambda *a, **k: None)
    return stats, report


def findings_text(report: fuzz.Report) -> str:
    return "\n".join(fuzz.describe(f, labels, i + 1, f"seed {CI_SEED}")
                     for i, (f, labels) in enumerate(report.distinct.values()))


def test_random_programs_agree_with_numpy(target):
    """Random programs on `target` (numpy: the reference interpreter itself) against the NumPy oracle."""
    stats, report = run_programs(LABELS[target], CI_PROGRAMS)
    assert stats["calls"] >= CI_PROGRAMS
    assert not report.distinct, findings_text(report)


@pytest.mark.skipif(os.environ.get("TDSL_SANITIZE") not in (None, "", "0"), reason="already sanitizing")
def test_random_programs_under_sanitizers():
    """The c target built with ASan and UBSan, in a process that preloads the ASan runtime."""
    require_target("c")
    if fuzz.libasan() is None:
        pytest.skip("the C compiler has no AddressSanitizer runtime")
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
    monkeypatch.setattr(fuzz, "reproduces",
                        lambda f, p, i, label=None: calls.append(p) or "log_softmax" in fuzz.render_program(p))
    small = fuzz.shrink(finding)
    assert calls
    assert "log_softmax" in fuzz.render_program(small.prog)
    assert len(fuzz.render_program(small.prog)) < len(fuzz.render_program(prog))
