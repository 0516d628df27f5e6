"""The per-line profiler (docs/debugging.md, "Per-line profiler"): `Function.profile`, its table
and `to_dict()`, the profiling builds of the c and opencl targets, the cached triad, and
`tdslc run --profile`.

One profiling module per target and family (MODEL: a fused elementwise chain, a sum and a
matmul; LOOP: a for loop); the triad runs on small arrays (its cache entry is keyed by the
size, so the real one is never replaced). No timing is asserted beyond sanity.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import tdsl
from conftest import require_target
from tdsl import profile as profiler
from tdsl.cli import main
from tdsl.errors import TdslError

MODEL = """\
fn model(x: f64[n], a: f64, v: f64[r], p: f32[m, k], q: f32[k, j]) -> (f64[n], f64, f32[m, j]) {
    y = x * a
    z = exp(y) + 1.0
    s = sum(v * v)
    h = p @ q
    return z / 2.0, s, h
}

fn steps(u: f64[n], count: i64) -> f64[n] {
    for i in range(count) {
        u = u * 0.5 + 1.0
    }
    return u
}
"""
N, R, M, K, J = 1000, 300, 4, 5, 6
TARGETS = ("c", "opencl")


@pytest.fixture(autouse=True)
def small_triad(monkeypatch):
    """A triad of 1 MiB arrays: its own cache entry, measured in milliseconds."""
    monkeypatch.setattr(profiler, "TRIAD_MIN_BYTES", 1 << 20)
    monkeypatch.setattr(profiler, "TRIAD_MAX_BYTES", 1 << 20)
    monkeypatch.setattr(profiler, "_last_level_cache", lambda: 0)


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    found = tmp_path_factory.mktemp("profile") / "model.tdsl"
    found.write_text(MODEL, encoding="utf-8")
    return found


@pytest.fixture(scope="module", params=TARGETS)
def module(request, path):
    require_target(request.param)
    return tdsl.load(str(path), target=request.param)


def arguments():
    rng = np.random.default_rng(0)
    return (rng.random(N), 2.0, rng.random(R), rng.random((M, K)).astype(np.float32),
            rng.random((K, J)).astype(np.float32))


@pytest.fixture(scope="module")
def measured(module):
    return module.model.profile(*arguments(), repeat=3)


def kernel_with(profile, line: int) -> dict:
    found = [k for k in profile.to_dict()["kernels"] if line in [l["line"] for l in k["lines"]]]
    assert len(found) == 1, profile
    return found[0]


def test_every_kernel_is_listed_with_its_statements_lines(measured, path):
    kernels = measured.to_dict()["kernels"]
    assert sorted(tuple(l["line"] for l in k["lines"]) for k in kernels) == [(2, 3, 6), (4,), (5,)]
    chain = kernel_with(measured, 2)
    assert chain["kind"] == "elementwise"
    assert [l["text"] for l in chain["lines"]] == ["y = x * a", "z = exp(y) + 1.0", "return z / 2.0, s, h"]
    assert {l["file"] for l in chain["lines"]} == {str(path)}
    assert kernel_with(measured, 4)["kind"] == "reduction (sum)"
    assert kernel_with(measured, 5)["kind"].startswith("matmul")


def test_a_slice_moves_its_own_elements_and_a_broadcast_its_size():
    from tdsl.codegen.kernels import Affine, Buffer, Gather, Load, Loop, MapKernel, Origin
    from tdsl.dims import Dim
    n, k = Dim.of("n"), Dim.of("k")
    x = Buffer("x", "f64", (n, k), "param")
    row = Buffer("b", "f32", (k,), "param")
    out = Buffer("out", "f64", (n,), "output")
    sizes = {"n": 100, "k": 10}
    column = MapKernel(Origin("copy"), out, Affine.var("i"), (Loop("i", n),), Load(x, Affine.var("i").scale(k), "f64"))
    assert profiler.kernel_traffic(column, sizes) == (8 * 100, 8 * 100)   # one column of x
    spread = MapKernel(Origin("spread"), Buffer("o2", "f32", (n, k), "output"),
                       Affine.var("i").scale(k) + Affine.var("j"), (Loop("i", n), Loop("j", k)),
                       Load(row, Affine.var("j"), "f32"))
    assert profiler.kernel_traffic(spread, sizes) == (4 * 10, 4 * 1000)   # the row once, its size
    idx = Buffer("idx", "i64", (Dim.of(3),), "param")
    picked = Load(x, Affine(((Gather(Load(idx, Affine.var("i"), "i64"), n, 1), k),)), "f64")
    gather = MapKernel(Origin("g = take"), Buffer("g", "f64", (Dim.of(3),), "output"), Affine.var("i"),
                       (Loop("i", Dim.of(3)),), picked)
    assert profiler.kernel_traffic(gather, sizes) == (8 * 3 + 8 * 3, 8 * 3)   # 3 of x's rows' heads, idx
    assert [profiler.kernel_kind(kernel, "c") for kernel in (column, spread, gather)] == ["copy", "copy", "gather"]


def test_bytes_moved_and_flops_for_known_sizes(measured):
    chain, total, product = (kernel_with(measured, line) for line in (2, 4, 5))
    assert (chain["bytes_read"], chain["bytes_written"]) == (8 * N + 8, 8 * N)   # x and the scalar a; z
    assert chain["bytes"] == 16 * N + 8
    assert chain["flops"] == 4 * N   # mul, exp, add, div per element
    assert (total["bytes_read"], total["bytes_written"], total["flops"]) == (8 * R, 8, 2 * R)
    assert (product["bytes_read"], product["bytes_written"]) == (4 * (M * K + K * J), 4 * M * J)
    assert product["flops"] == 2 * M * K * J


def test_to_dict_is_plain_data_and_shares_add_up(measured):
    data = measured.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["function"] == "model" and data["calls"] == 3
    assert data["sizes"] == {"n": N, "r": R, "m": M, "k": K, "j": J}
    rows = data["kernels"] + data["other"]
    assert all(r["seconds"] >= 0 and r["seconds_per_call"] >= 0 for r in rows)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert data["seconds"] >= sum(r["seconds"] for r in data["kernels"])
    for k in data["kernels"]:
        assert set(k) >= {"name", "kind", "lines", "calls", "seconds", "share", "bytes", "gbs", "gflops",
                          "triad_fraction"}
    assert data["bandwidth"]["gbs"] > 0 and "triad" in data["bandwidth"]["how"]


def test_the_table_names_every_kernel_and_line(measured):
    text = str(measured)
    assert text.startswith("profile of model(")
    assert "memory bandwidth" in text and "GB/s" in text
    for line in ("model.tdsl:2  y = x * a", "model.tdsl:4  s = sum(v * v)", "model.tdsl:5  h = p @ q"):
        assert line in text
    assert text.splitlines()[-1 - len(measured.notes)].split()[:2] == ["total", "3"]
    assert repr(measured) == text
    assert "<table>" in measured._repr_html_()


def test_repeat_counts_the_calls(module):
    found = module.model.profile(*arguments(), repeat=5).to_dict()
    assert found["calls"] == 5
    assert [k["calls"] for k in found["kernels"]] == [5, 5, 5]


def test_a_loop_is_one_row_with_its_body_lines(module):
    found = module.steps.profile(np.ones(64), 4, repeat=2)
    loop = kernel_with(found, 11)
    assert [l["line"] for l in loop["lines"]] == [10, 11]   # the loop header and its body
    assert loop["kind"] == "for loop" and loop["calls"] == 2
    assert loop["bytes"] is None and loop["flops"] is None
    [body] = loop["inner"]   # the body's kernel, timed per iteration: 4 per call
    assert (body["kind"], body["calls"], [l["line"] for l in body["lines"]]) == ("elementwise", 8, [11])
    assert (body["bytes_read"], body["bytes_written"], body["flops"]) == (64 * 8, 64 * 8, 2 * 64)
    assert 0 <= body["seconds"] <= loop["seconds"]
    assert "1.1    u = add" in str(found)
    np.testing.assert_allclose(module.steps(np.ones(4), 2), 1.75)   # the normal build still runs


def test_the_profiling_build_is_its_own_and_the_normal_one_unchanged(module):
    if tdsl.Module.target(module) == "c":
        runner = profiler.profiling_build(module.model)[1]
        assert "tdsl_clock_ns" in runner.module_source and "model_model_profile" in runner.module_source
        assert "tdsl_clock_ns" not in tdsl.Module.source(module)
        assert runner.library._name != module.model._runner.library._name
    else:
        runner = profiler.profiling_build(module.model)[1]
        assert runner.function.program.queue.properties & 2   # CL_QUEUE_PROFILING_ENABLE
        assert module.model._runner.function.events is None


def test_the_reference_target_profiles_nothing():
    f = tdsl.compile(MODEL, target="numpy").model
    with pytest.raises(TdslError, match=r"profile\(\) times compiled code, and 'model' runs on the numpy "
                                        r"reference interpreter: load it for the c or opencl target"):
        f.profile(*arguments())


def test_repeat_must_be_positive(module):
    with pytest.raises(TdslError, match="repeat must be a positive integer, got 0"):
        module.model.profile(*arguments(), repeat=0)


@pytest.mark.parametrize("target", TARGETS)
def test_the_triad_is_measured_once_and_cached(target, monkeypatch, tmp_path):
    require_target(target)
    monkeypatch.setenv("TDSL_CACHE_DIR", str(tmp_path))
    measured = []

    def measure(target_, size):
        measured.append(size)
        return profiler.Bandwidth(12.5, "triad for the test")
    monkeypatch.setattr(profiler, "measure_triad", measure)
    first = profiler.machine_bandwidth(target)
    second = profiler.machine_bandwidth(target)
    assert measured == [1 << 20]
    assert (first.gbs, second.gbs, second.how) == (12.5, 12.5, "triad for the test")
    files = list(tmp_path.glob(f"triad-{target}-*.json"))
    assert [str(f) for f in files] == [second.path]
    files[0].write_bytes(b"not json")   # a damaged entry is measured again
    assert profiler.machine_bandwidth(target).gbs == 12.5 and len(measured) == 2


def test_the_triad_measures_a_real_bandwidth():
    require_target("c")
    found = profiler.measure_triad("c", 1 << 20)
    assert found.gbs > 0 and found.how.startswith("triad a = b + s*c, 3 x 1 MiB f64, tdsl's C")


@pytest.mark.parametrize("target", TARGETS)
def test_tdslc_run_prints_the_profile_after_the_result(target, path, capsys):
    require_target(target)
    status = main(["run", str(path), "steps", "--arg", "u=[1.0, 2.0]", "--arg", "count=1", "-t", target,
                   "--profile", "--repeat", "2"])
    out = capsys.readouterr().out
    assert status == 0
    result, table = out.split("\n\n", 1)
    assert result == "[1.5 2. ]"
    assert table.startswith("profile of steps(u: f64[n], count: i64) -> f64[n]\n")
    assert f"target {target}" in table and ", 2 calls, n = 2" in table
    assert "model.tdsl:11  u = u * 0.5 + 1.0" in table


def test_tdslc_run_repeat_needs_profile(path, capsys):
    assert main(["run", str(path), "steps", "--arg", "u=[1.0]", "--arg", "count=1", "--repeat", "2"]) == 1
    assert "--repeat counts the calls of --profile: add --profile" in capsys.readouterr().err
    assert main(["run", str(path), "steps", "--arg", "u=[1.0]", "--arg", "count=1", "--profile",
                 "--repeat", "0"]) == 1
    assert "--repeat must be at least 1, got 0" in capsys.readouterr().err
