"""The opencl target: the generated OpenCL, device choice and errors, device arrays, and the paths
(vector maps, work-group reductions, tiled matmul) at sizes that exercise their edges.

Every program test of the suite also runs on `opencl` through the `target` fixture.
"""
from __future__ import annotations

import numpy as np
import pytest

import tdsl
from conftest import assert_same, compiled, require_target, run_both

W1 = "fn w1(x: f64[n], a: f64, b: f64, c: f64) -> f64[n] { return a * exp(-b * x) + c * sin(x) }"


@pytest.fixture
def opencl():
    require_target("opencl")
    from tdsl.codegen import opencl_backend, opencl_runtime
    return opencl_backend, opencl_runtime


def fresh(source: str) -> str:
    """A source no earlier test compiled (the backend memoizes built programs)."""
    fresh.count += 1
    return f"{source}\nfn unused_{fresh.count}() -> i64 {{ return {fresh.count} }}"


fresh.count = 0


# -- the generated source -----------------------------------------------------------------

def test_source_is_opencl_from_the_same_kernels(opencl):
    source = compiled(W1, "opencl").w1.source
    assert "__kernel void k1_w1(const long n, __global const double *restrict x" in source
    assert "vload8(0, x + i0)" in source and "vstore8(" in source   # the flat map is vectorized
    assert "exp(" in source and "expf" not in source and "int64_t" not in source
    assert "#pragma OPENCL FP_CONTRACT OFF" in tdsl.Module.source(compiled(W1, "opencl"))


def test_opencl_names_do_not_clash_with_parameters(opencl):
    src = ("fn f(local: f32[n], half: f32, lanes: f32[n], point: i64, kernel: f32) -> f32[n] "
           "{ return local * half + lanes + f32(point) + kernel }")
    x = np.arange(5, dtype=np.float32)
    run_both(src, "f", "opencl", x, np.float32(2), x, 3, np.float32(1))
    assert "u_local" in compiled(src, "opencl").f.source


# -- paths at their edges ------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 8, 9, 1000, 1027])
def test_vector_maps_handle_every_tail(opencl, n):
    x = np.linspace(-3, 3, n)
    run_both(W1, "w1", "opencl", x, 1.5, 0.5, -2.0)
    run_both("fn f(x: f32[n]) -> f32[n] { return sqrt(x * x + 1.0) / 3.0 }", "f", "opencl",
             x.astype(np.float32))


@pytest.mark.parametrize("shape", [(1, 1), (3, 700), (700, 3), (2000, 5), (1, 5000)])
def test_work_group_reductions(opencl, shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    x[0, min(3, shape[1] - 1)] = np.nan if shape[1] > 1 else x[0, 0]
    i = rng.integers(-5, 5, shape, dtype=np.int32)
    src = ("fn f(x: f64[n, k], i: i32[n, k]) { return sum(x, 1), max(x, 0), min(x), argmax(x, 1), "
           "argmin(x, 0), prod(i, 1), sum(i), any(i > 3, 1), all(i > -6), argmax(i, 1), argmin(i) }")
    run_both(src, "f", "opencl", x, i)


def test_argmax_takes_the_first_of_ties_and_of_nans(opencl):
    x = np.zeros(5000)
    x[[17, 900, 4000]] = 2.0
    y = x.copy()
    y[[1200, 3000]] = np.nan
    src = "fn f(x: f64[n]) { return argmax(x), argmin(x), max(x), argmax(-x) }"
    for data in (x, y, x.astype(bool).astype(float)):
        run_both(src, "f", "opencl", data)
    run_both("fn f(b: bool[n]) { return argmax(b), argmin(b), any(b), all(b) }", "f", "opencl", x > 1)


@pytest.mark.parametrize("n, k, m", [(1, 1, 2), (37, 50, 19), (16, 16, 16), (17, 33, 65), (5, 0, 3)])
def test_tiled_matmul(opencl, n, k, m):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((n, k)), rng.standard_normal((k, m))
    c = rng.standard_normal((3, k, m)).astype(np.float32)
    src = ("fn f(a: f64[n, k], b: f64[k, m], c: f32[s, k, m]) "
           "{ return a @ b, f32(a) @ c, a.T.T @ b[:, ::-1] }")
    run_both(src, "f", "opencl", a, b, c)
    ia = rng.integers(-2**31, 2**31 - 1, (n, k), dtype=np.int64).astype(np.int32)
    run_both("fn g(a: i32[n, k], b: i32[k, n]) -> i32[n, n] { return a @ b }", "g", "opencl", ia, ia.T.copy())


# -- device arrays ------------------------------------------------------------------------------

def test_device_arrays_are_used_in_place_and_chain(opencl):
    backend, _ = opencl
    import pyopencl.array as cl_array
    queue = tdsl.opencl_queue()
    assert queue is backend.default_queue()
    m = compiled("fn f(x: f32[n], s: f32) -> f32[n] { return x * s + 1.0 }\n"
                 "fn total(x: f32[n]) -> f32 { return sum(x) }\n"
                 "fn scale(x: f32[n], s: f32) -> f32[n] { return x * s }", "opencl")
    x = np.arange(10, dtype=np.float32)
    x_dev = cl_array.to_device(queue, x)
    y_dev = m.f(x_dev, 2.0)
    assert isinstance(y_dev, cl_array.Array) and y_dev.shape == (10,)
    z_dev = m.f(y_dev, 0.5)
    t_dev = m.total(z_dev)                      # a rank-0 device array ...
    assert isinstance(t_dev, cl_array.Array) and t_dev.shape == ()
    w_dev = m.scale(z_dev, t_dev)               # ... feeds a scalar parameter
    z = (x * 2 + 1) * 0.5 + 1
    assert_same(w_dev.get(), z * np.float32(z.sum()))
    assert_same(x_dev.get(), x)                 # inputs are never modified
    assert_same(m.f(x_dev[2:7], 2.0).get(), x[2:7] * 2 + 1)   # an offset view
    assert_same(m.f(x_dev[::2], 2.0).get(), x[::2] * 2 + 1)    # a strided view
    assert_same(m.f(cl_array.to_device(queue, x.astype(np.int8)), 2.0).get(), x * 2 + 1)   # a safe cast


def test_device_arrays_are_checked_like_numpy_arrays(opencl):
    backend, _ = opencl
    import pyopencl.array as cl_array
    queue = backend.default_queue()
    m = compiled("fn f(x: f32[n], y: f32[n]) -> f32[n] { return x + y }", "opencl")
    with pytest.raises(tdsl.TdslArgumentError, match="cannot be cast safely"):
        m.f(cl_array.to_device(queue, np.zeros(3)), np.zeros(3, np.float32))
    with pytest.raises(tdsl.TdslArgumentError, match="n = 3 from x, but y has 4"):
        m.f(cl_array.to_device(queue, np.zeros(3, np.float32)), np.zeros(4, np.float32))
    pick = compiled("fn pick(x: f64[n], i: i64[k]) -> f64[k] { return take(x, i) }", "opencl").pick
    with pytest.raises(tdsl.TdslRuntimeError, match="index 3 is out of range for axis 0 of length 3"):
        pick(cl_array.to_device(queue, np.zeros(3)), cl_array.to_device(queue, np.array([0, 3])))


# -- devices, builds and their errors ----------------------------------------------------

def test_device_choice_follows_the_environment(opencl, monkeypatch):
    _, runtime = opencl
    import pyopencl as cl
    first = cl.get_platforms()[0].get_devices()[0]
    monkeypatch.setenv("TDSL_OPENCL_DEVICE", "0:0")
    assert runtime.choose_device() == first
    monkeypatch.setenv("TDSL_OPENCL_DEVICE", first.name.split()[0].upper())
    assert runtime.choose_device() == first
    monkeypatch.setenv("TDSL_OPENCL_DEVICE", "no such device")
    with pytest.raises(runtime.Unavailable, match="matches no OpenCL device"):
        runtime.choose_device()
    with pytest.raises(tdsl.TdslBuildError, match="matches no OpenCL device"):
        tdsl.compile(fresh("fn f(x: f32[n]) -> f32[n] { return x }"), target="opencl")


def test_no_platform_is_a_build_error(opencl, monkeypatch):
    _, runtime = opencl
    monkeypatch.setattr(runtime.cl, "get_platforms", lambda: [])
    with pytest.raises(tdsl.TdslBuildError, match="no OpenCL device.*PoCL"):
        tdsl.compile(fresh("fn f(x: f32[n]) -> f32[n] { return x }"), target="opencl")


def test_f64_needs_a_device_with_fp64(opencl, monkeypatch):
    _, runtime = opencl
    monkeypatch.setattr(runtime, "has_fp64", lambda device: False)
    with pytest.raises(tdsl.TdslBuildError, match="uses f64.*cl_khr_fp64"):
        tdsl.compile(fresh("fn f(x: f64[n]) -> f64[n] { return x * 2.0 }"), target="opencl")
    m = tdsl.compile(fresh("fn f(x: f32[n]) -> f32 { return sum(x * 2.0) }"), target="opencl")
    assert m.f(np.ones(3, np.float32)) == 6.0    # f32 alone builds (its sums add blocks)


def test_a_failed_build_keeps_the_source(opencl, monkeypatch):
    backend, _ = opencl
    render = backend.program_and_plan

    def broken(module):
        source, plan = render(module)
        return source + "\nnot OpenCL;\n", plan
    monkeypatch.setattr(backend, "program_and_plan", broken)
    with pytest.raises(tdsl.TdslBuildError, match="(?s)OpenCL build failed.*kept at") as info:
        tdsl.compile(fresh("fn f(x: f32[n]) -> f32[n] { return x }"), target="opencl")
    kept = str(info.value).rsplit("kept at ", 1)[1].strip()
    assert open(kept).read().endswith("not OpenCL;\n")


def test_builds_are_cached_in_the_tdsl_cache_folder(opencl, monkeypatch):
    """pyopencl's binary cache lives in tdsl's cache folder (PoCL caches builds on its own)."""
    import pyopencl as cl
    from tdsl.codegen import cache
    seen = []
    build = cl.Program.build
    monkeypatch.setattr(cl.Program, "build", lambda self, *a, **kw: seen.append(kw["cache_dir"]) or build(self, *a, **kw))
    tdsl.compile(fresh(W1), target="opencl")
    assert seen == [str(cache.cache_dir() / "opencl")]



def test_results_are_fresh_unless_the_caller_dropped_them(opencl):
    f = compiled("fn twice(x: f64[n]) -> f64[n] { return x * 2.0 }", "opencl").twice
    x = np.arange(200_000.0)                 # 1.6 MB results: recycled once dropped
    kept = f(x)
    again = f(x)
    assert again is not kept
    kept[:] = -1.0
    view = again[10:]                        # a view keeps `again` in use
    del again
    third = f(x + 1.0)
    assert_same(view, (x * 2.0)[10:])
    assert_same(third, (x + 1.0) * 2.0)
    assert (kept == -1.0).all()
    ident = id(third)
    del third
    assert id(f(x)) == ident                 # dropped: its buffer is the next result
    assert_same(f(x), x * 2.0)


def test_vector_maps_cover_every_element_whatever_the_length(opencl):
    """A work-item of a vector map takes a stretch of vectors: lengths around its edges."""
    src = "fn f(x: f32[n], y: f32[n]) -> f32[n] { return x * y + 1.0 }"
    for n in (0, 1, 7, 8, 9, 127, 128, 129, 2047, 2048, 2049, 16 * 16 * 128 + 5):
        x = np.arange(n, dtype=np.float32)
        run_both(src, "f", "opencl", x, x[::-1].copy())


def test_maps_in_runs_of_the_last_axis_cover_every_element(opencl):
    """A work-item of a map that is not vectorized takes a run of the last axis: shapes around its edges."""
    src = "fn f(x: f64[n, k], y: i32[k]) -> f64[n, k] { return x * f64(y) - x.T.T }\n" \
          "fn g(x: f64[a, b, c]) -> f64[a, b, c] { return where(x > 0.5, x, -x) }\n" \
          "fn pick(x: f64[n, k], i: i64[m]) -> f64[n, m] { return take(x, i, axis=1) }"
    rng = np.random.default_rng(5)
    for n, k in ((1, 1), (3, 63), (2, 64), (5, 65), (1, 129), (7, 200), (0, 5), (4, 0)):
        x = rng.random((n, k))
        run_both(src, "f", "opencl", x, rng.integers(-3, 3, k).astype(np.int32))
    run_both(src, "g", "opencl", rng.random((3, 5, 130)))
    x = rng.random((3, 100))
    run_both(src, "pick", "opencl", x, np.arange(-100, 100))
    with pytest.raises(tdsl.TdslRuntimeError, match="out of range"):
        compiled(src, "opencl").pick(x, np.r_[np.arange(99), 100])


GPU_LAYOUT_CASES = [
    ("fn f(x: f32[n], y: f32[n]) -> f32[n] { return x * y + 1.0 }", "f",
     lambda r: (r.random(2053, dtype=np.float32), r.random(2053, dtype=np.float32))),
    ("fn f(x: f64[n, k], y: i32[k]) -> f64[n, k] { return x * f64(y) - x.T.T }", "f",
     lambda r: (r.random((5, 130)), r.integers(-3, 3, 130).astype(np.int32))),
    ("fn f(x: f32[n, k]) -> (f32[n], f32[k], f32, i64[n], f32[n, k]) "
     "{ return sum(x, axis=1), max(x, axis=0), mean(x), argmax(x, axis=1), softmax(x, axis=1) }", "f",
     lambda r: (r.standard_normal((37, 300)).astype(np.float32),)),
    ("fn f(x: f64[n, k], y: i32[n, k], on: bool[n, k]) -> (f64[k], f64[k], i64[k], bool[k], f64[n], f64[k]) "
     "{ return sum(x, axis=0), max(x, axis=0), sum(y, axis=0), all(on, axis=0), prod(x, axis=1), x.T @ x[:, 0] }",
     "f", lambda r: (np.where(r.random((300, 45)) < 0.01, np.nan, r.random((300, 45))),
                     r.integers(-2**31, 2**31 - 1, (300, 45)).astype(np.int32), r.random((300, 45)) < 0.99)),
    ("fn f(x: f32[n, k]) -> (f32[k], f32[k]) { return sum(x, axis=0), prod(x, axis=0) }", "f",
     lambda r: (np.zeros((0, 70), np.float32),)),
    ("fn f(x: f32[n, k]) -> f32[k] { return sum(x, axis=0) }", "f",
     lambda r: (r.random((20000, 33), dtype=np.float32),)),
    ("fn f(a: f32[n, k], b: f32[k, m]) -> f32[n, m] { return a @ b }", "f",
     lambda r: (r.standard_normal((33, 70)).astype(np.float32), r.standard_normal((70, 45)).astype(np.float32))),
    ("fn f(a: f64[b, n, k], c: f64[b, k, m]) -> f64[b, n, m] { return a @ c }", "f",
     lambda r: (r.standard_normal((3, 17, 20)), r.standard_normal((3, 20, 19)))),
    ("fn f(a: i32[n, k], b: i32[k, m]) -> i32[n, m] { return a @ b }", "f",
     lambda r: (r.integers(-2**31, 2**31 - 1, (9, 21)).astype(np.int32),
                r.integers(-2**31, 2**31 - 1, (21, 18)).astype(np.int32))),
]


@pytest.mark.parametrize("layout", ["gpu", "cpu"])
@pytest.mark.parametrize("case", range(len(GPU_LAYOUT_CASES)))
def test_both_launch_layouts_give_the_reference_results(opencl, monkeypatch, layout, case):
    """Kernels hold a GPU layout (work-group trees, local-memory tiles) and a CPU one (runs and
    strips); PoCL runs the CPU one by default, TDSL_OPENCL_LAYOUT makes it run the other too."""
    src, fn, make = GPU_LAYOUT_CASES[case]
    monkeypatch.setenv("TDSL_OPENCL_LAYOUT", layout)
    args = make(np.random.default_rng(case))
    function = getattr(tdsl.compile(src, target="opencl"), fn)
    program = function._runner.function.program
    assert (program.matmul_strip, program.map_run) == ((1, 1) if layout == "gpu" else (32, 64))
    assert_same(function(*args), getattr(compiled(src, "numpy"), fn)(*args), rtol=1e-4, atol=1e-4)


def test_a_constant_array_holding_nan_builds(opencl):
    """PoCL's NAN is not a constant expression: a program-scope array of NaNs (0 / 0 folded into a
    literal array) failed to build (found by the random programs)."""
    src = "fn f() { return stack((zeros((), dtype=f64), 1.0), axis=0) / stack((0.0, 1.0), axis=0) }\n" \
          "fn g(x: f32[n]) { return x * stack((0.0 / 0.0, 1.0 / 0.0, -1.0 / 0.0), axis=0)[0] }"
    m = tdsl.compile(src, target="opencl")
    assert np.array_equal(m.f(), [np.nan, 1.0], equal_nan=True)
    assert np.isnan(m.g(np.ones(2, np.float32))).all()
