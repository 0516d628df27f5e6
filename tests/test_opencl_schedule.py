"""The OpenCL launch schedule (codegen/opencl_schedule.py): decided once from the kernel IR, then
written as kernel text by the renderer and as host data by the plan, which must agree.

One module holds a kernel of every kind (vector maps of both float dtypes, a map in runs, a
reduction, an argreduce, a column reduction in strips, a matmul, a gather that can fail,
parameters named like OpenCL words); its schedule, its text and its plan are read here, and
its functions run on both launch layouts against the reference.
"""
from __future__ import annotations

import numpy as np
import pytest

import tdsl
from conftest import assert_same, compiled, compiled_variant, require_target

SOURCE = """
fn vec32(x: f32[n], y: f32[n]) -> f32[n] { return x * y + 1.0 }
fn vec64(x: f64[n], a: f64) -> f64[n] { return a * exp(-x) + sin(x) }
fn lanes(x: f32[n], y: f32[n]) -> f32[n] { return hypot(x, y) + copysign(cbrt(x), y) }
fn runs(x: f64[n, k], y: i32[k]) -> f64[n, k] { return x * f64(y) - x.T.T }
fn rows(x: f32[n, k]) -> (f32[n], i64[n]) { return sum(x, axis=1), argmax(x, axis=1) }
fn cols(x: f32[n, k]) -> f32[k] { return sum(x, axis=0) }
fn mm(a: f32[n, k], b: f32[k, m]) -> f32[n, m] { return a @ b }
fn pick(x: f64[n, k], i: i64[m]) -> f64[n, m] { return take(x, i, axis=1) }
fn words(double: f32[n], float: f32[n], kernel: f32) -> f32[n] { return double * float + kernel }
"""
# The `double` bug: a parameter's name is not a use of f64.
WORDS_ONLY = "fn f(double: f32[n], float: f32[n], kernel: f32) -> f32[n] { return double * float + kernel }"


def lowered(source: str):
    from tdsl.codegen.lower import lower_module
    from tdsl.pipeline import check_source
    from tdsl.rewrite import simplify_graph
    return lower_module([simplify_graph(g) for g in check_source(source, "schedule.tdsl")], "schedule")


@pytest.fixture(scope="module")
def made():
    """The module's schedule, program text and plan, made once through program_and_plan."""
    from tdsl.codegen import opencl_plan, opencl_schedule
    calls = []
    real = opencl_schedule.kernel_launch

    def counted(fn, k, name):
        calls.append(name)
        return real(fn, k, name)
    module = lowered(SOURCE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(opencl_schedule, "kernel_launch", counted)
        source, plan = opencl_plan.program_and_plan(module)
    return module, opencl_schedule.module_schedule(module), source, plan, calls


def kernel_text(source: str, name: str) -> str:
    start = source.index(f"__kernel void {name}(")
    end = source.find("__kernel void", start + 1)
    return source[start:end if end > 0 else len(source)]


def test_each_kernel_is_scheduled_once_per_program(made):
    module, schedule, _, plan, calls = made
    names = [launch.name for fn in module.functions for launch in schedule.functions[fn.name]]
    assert calls == names
    assert [l["kernel"] for fn in plan["functions"].values() for l in fn["launches"]] == names


def test_the_plan_is_the_schedule_as_data(made):
    module, schedule, _, plan, _ = made
    for fn in module.functions:
        for launch, data in zip(schedule.functions[fn.name], plan["functions"][fn.name]["launches"]):
            assert data["kind"] == launch.kind and data["args"] == [list(a) for a in launch.args]
            assert data.get("width", 1) == launch.width and data.get("strip", False) == launch.strip
            assert data.get("runs", False) == launch.runs and data.get("local_max") == launch.local_max
            assert len(data["counts"]) == len(launch.counts)
        assert plan["functions"][fn.name]["fails"] == any(l.fails for l in schedule.functions[fn.name])


def test_kernel_text_follows_the_plan(made):
    """Each kernel's parameter list is its plan's argument list; vectors, runs and strips agree."""
    _, _, source, plan, _ = made
    expected = {"size": "const long ", "param": "__global const ", "output": "__global ", "temp": "__global "}
    for fn in plan["functions"].values():
        for launch in fn["launches"]:
            text = kernel_text(source, launch["kernel"])
            params = text[text.index("(") + 1:text.index(")\n")].split(", ")
            lanes = ["const long lanes"] if launch["kind"] == "reduce" else []
            assert len(params) == len(launch["args"]) + len(lanes), launch["kernel"]
            for decl, arg in zip(params, launch["args"]):
                assert decl.endswith("tdsl_err") if arg == ["err"] else decl.startswith(expected[arg[0]])
            assert params[len(launch["args"]):] == lanes
            width = launch.get("width", 1)
            assert (f"vstore{width}(" in text) == (width > 1) and ("vstore" in text) == (width > 1)
            assert ("TDSL_MAP_RUN" in text) == launch.get("runs", False)
            assert ("TDSL_REDUCE_STRIP > 1" in text) == launch.get("strip", False)
            assert ("atomic_cmpxchg(tdsl_err" in text) == (["err"] in launch["args"])


def test_the_schedule_of_each_kind(made):
    _, schedule, _, plan, _ = made
    fns = schedule.functions
    assert [l.width for l in fns["vec32"]] == [16] and [l.width for l in fns["vec64"]] == [8]
    assert [l.width for l in fns["lanes"]] == [16]   # the op table's lane-wise ops
    assert [(l.kind, l.runs, l.width) for l in fns["runs"]] == [("map", True, 1)]
    assert [(l.kind, l.strip, l.takes_lanes) for l in fns["rows"]] == [("reduce", False, True)] * 2
    assert [(l.kind, l.strip) for l in fns["cols"]] == [("reduce", True)]
    assert [(l.kind, len(l.counts), l.local_max) for l in fns["mm"]] == [("matmul", 3, None)]
    assert fns["pick"][-1].fails and fns["pick"][-1].args[-1] == ("err",)
    assert not any(l.fails for name in ("vec32", "rows", "mm") for l in fns[name])
    # a scalar parameter is read in place (not a vector): the map still runs in vectors
    assert ("param", 1) in fns["vec64"][0].args
    assert plan["functions"]["words"]["launches"][0]["args"] == [["size", "n"], ["param", 0], ["param", 1],
                                                                 ["param", 2], ["output", 0]]


def test_f64_use_comes_from_dtypes_not_names(made):
    from tdsl.codegen.opencl_schedule import module_schedule
    assert made[1].uses_f64 and made[3]["uses_f64"]
    assert not module_schedule(lowered(WORDS_ONLY)).uses_f64
    assert not module_schedule(lowered("fn f(x: f32[n]) -> f32 { return sum(x * 2.0) }")).uses_f64
    assert module_schedule(lowered("fn f(x: f32[n]) -> f32[n] { return f32(f64(x) * 3.0) }")).uses_f64
    assert module_schedule(lowered("fn f(x: i32[n]) -> f64 { return mean(x) }")).uses_f64


def test_a_parameter_named_double_runs_without_fp64(monkeypatch):
    require_target("opencl")
    from tdsl.codegen import opencl_runtime as runtime
    monkeypatch.setattr(runtime, "has_fp64", lambda device: False)
    src = WORDS_ONLY + "\nfn schedule_unused_double() -> i32 { return 1 }"   # a program no test built
    x = np.arange(5, dtype=np.float32)
    assert_same(tdsl.compile(src, target="opencl").f(x, x, np.float32(1)), x * x + np.float32(1))
    with pytest.raises(tdsl.TdslBuildError, match="uses f64.*cl_khr_fp64"):
        tdsl.compile(src.replace("f32", "f64"), target="opencl")


CASES = [
    ("vec32", lambda r: (r.random(2053, dtype=np.float32), r.random(2053, dtype=np.float32))),
    ("vec64", lambda r: (np.linspace(-3, 3, 1001), 1.5)),
    ("lanes", lambda r: (r.standard_normal(1003).astype(np.float32), r.standard_normal(1003).astype(np.float32))),
    ("runs", lambda r: (r.random((5, 130)), r.integers(-3, 3, 130).astype(np.int32))),
    ("rows", lambda r: (r.standard_normal((37, 300)).astype(np.float32),)),
    ("cols", lambda r: (r.random((300, 45), dtype=np.float32),)),
    ("mm", lambda r: (r.standard_normal((33, 70)).astype(np.float32), r.standard_normal((70, 45)).astype(np.float32))),
    ("pick", lambda r: (r.random((3, 100)), np.arange(-100, 100))),
    ("words", lambda r: (r.random(77, dtype=np.float32), r.random(77, dtype=np.float32), np.float32(2))),
]


@pytest.mark.parametrize("layout", ["gpu", "cpu"])
def test_every_kind_gives_the_reference_results_on_both_layouts(layout):
    module = compiled_variant(SOURCE, f"opencl-{layout}")
    reference = compiled(SOURCE, "numpy")
    rng = np.random.default_rng(3)
    for name, make in CASES:
        args = make(rng)
        assert_same(getattr(module, name)(*args), getattr(reference, name)(*args), rtol=1e-4, atol=1e-5)
    with pytest.raises(tdsl.TdslRuntimeError, match="out of range"):
        module.pick(np.ones((3, 100)), np.array([100]))
