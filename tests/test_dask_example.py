"""examples/dask_logistic (training over .npy chunks through Dask), bench/dask_scaling.py, and
run-time errors inside Dask tasks: they name the user's .tdsl line and the block (docs/dask.md)."""
from __future__ import annotations

import importlib.util
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import tdsl
from tests.conftest import require_module

dask = require_module("dask")
da = require_module("dask.array")
distributed = require_module("distributed")

from tdsl import daskarray
from tdsl.errors import TdslRuntimeError, TdslWarning

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "dask_logistic"


def script(name: str):
    """One of the example's scripts, imported as a module (its main() is the command line)."""
    spec = importlib.util.spec_from_file_location(f"dask_logistic_{name}", EXAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TDSL_CACHE_DIR", str(tmp_path / "cache"))


def numpy_steps(folder: Path, steps: int, lr: float):
    """The same full-batch steps in NumPy (float64), on the whole data read back: (w, b, losses, hits)."""
    x = np.concatenate([np.load(p) for p in sorted(folder.glob("x_*.npy"))]).astype(np.float64)
    y = np.concatenate([np.load(p) for p in sorted(folder.glob("y_*.npy"))]).astype(np.float64)
    w, b, losses, hits = np.zeros(x.shape[1]), 0.0, [], []
    for _ in range(steps):
        z = x @ w + b
        r = 1 / (1 + np.exp(-z)) - y
        losses.append(np.mean(np.logaddexp(0, z) - y * z))
        hits.append(np.mean((z > 0) == (y > 0.5)))
        w, b = w - lr * (x.T @ r) / len(y), b - lr * r.mean()
    return w, b, losses, hits


def test_training_over_chunk_files_matches_numpy(tmp_path, private_cache, capsys):
    data = tmp_path / "data"
    assert script("make_data").main(["--gb", "0.02", "--chunk-mb", "3", "--features", "16", "--out", str(data)]) == 0
    assert len(list(data.glob("x_*.npy"))) == 7   # 20 MB in chunks of 3 MB
    saved = tmp_path / "w.npz"
    assert script("train").main([str(data), "--steps", "4", "--lr", "1.0", "--save", str(saved),
                                 "--progress-every", "0.001"]) == 0
    out = capsys.readouterr().out
    assert "| 100% Completed |" in out and "[########################################]" in out   # Dask's bar
    assert "peak RSS:" in out and "GB/s" in out
    got = np.load(saved)
    w, b, losses, hits = numpy_steps(data, 4, 1.0)
    assert list(np.diff(got["loss"]) < 0) == [True] * 3   # the loss decreases at every step
    np.testing.assert_allclose(got["loss"], losses, rtol=1e-5)
    np.testing.assert_allclose(got["accuracy"], hits, rtol=1e-6)
    np.testing.assert_allclose(got["w"], w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got["b"], b, rtol=1e-4, atol=1e-6)


def test_data_is_deterministic_and_chunk_independent(tmp_path):
    make = script("make_data")
    make.main(["--gb", "0.004", "--chunk-mb", "1", "--features", "8", "--out", str(tmp_path / "a")])
    make.main(["--gb", "0.004", "--chunk-mb", "1", "--features", "8", "--out", str(tmp_path / "b")])
    for name in ("x_00002.npy", "y_00003.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / "a" / name), np.load(tmp_path / "b" / name))
    assert np.load(tmp_path / "a" / "x_00000.npy", mmap_mode="r").shape == (31_250, 8)


ERRORS = """\
fn pick(x: f64[n], t: f64[m], i: i64[n]) -> f64[n] {
    return x * 2.0 + take(t, i)
}

fn column(x: f64[n, d], j: i64) -> f64 {
    s = sum(x, axis=0)
    return s[j] + sum(x[:, j])
}

fn of_total(x: f64[n, d], j: i64) -> f64 {
    total = sum(x, axis=0)
    return total[j]
}

fn running(x: f64[n], i: i64) -> f64 {
    c = cumsum(x)
    return c[i]
}
"""
LINES = ERRORS.splitlines()
FILE: list = []   # the path of the file ERRORS is loaded from


def at(snippet: str) -> str:
    """file:line:col of `snippet` in ERRORS."""
    (line,) = [k for k, text in enumerate(LINES, 1) if snippet in text]
    return f"{FILE[0]}:{line}:{LINES[line - 1].index(snippet) + 1}"


@pytest.fixture(scope="module")
def errors_module(tmp_path_factory):
    path = tmp_path_factory.mktemp("errors") / "errors.tdsl"
    path.write_text(ERRORS)
    FILE[:] = [str(path)]
    return tdsl.load(path, target="numpy")


def test_a_task_error_names_the_tdsl_line_and_the_block(errors_module):
    idx = np.arange(10) % 4
    idx[7] = 9   # in chunk 2 (positions 6:9)
    lazy = errors_module.pick(da.from_array(np.arange(10.0), chunks=3), np.ones(4), da.from_array(idx, chunks=3))
    with pytest.raises(TdslRuntimeError) as err:
        lazy.compute(scheduler="threads")
    where = at("take(t, i)")
    assert str(err.value).splitlines()[0] == (
        f"{where}: error: index 9 is out of range for axis 0 of length 4 (t at {where}), "
        "in block (2,) of x (positions 6:9 along n) of the Dask call of pick()")
    assert str(err.value.loc) == where and err.value.loc.source_line == LINES[1]
    assert (err.value.value, err.value.axis, err.value.length, err.value.operand) == (9, 0, 4, "t")
    assert "<tdsl-dask>" not in str(err.value)


def test_errors_in_a_chunk_and_in_the_finalize(errors_module):
    x = da.from_array(np.ones((10, 3)), chunks=(4, 3))
    with pytest.raises(TdslRuntimeError, match=r"index 5 is out of range for axis 1 of length 3 \(x at "
                                               + at("x[:, j]") + r"\), in block \(\d, 0\) of x"):
        errors_module.column(x, 5).compute(scheduler="sync")
    with pytest.raises(TdslRuntimeError) as err:
        errors_module.of_total(x, 3).compute(scheduler="threads")
    assert str(err.value.loc) == at("total[j]")
    assert str(err.value).splitlines()[0].endswith("in the finalize of pass 0 of the Dask call of of_total()")


def test_an_unsplit_call_names_its_one_task(errors_module):
    with pytest.warns(TdslWarning, match="cumsum along n"):
        lazy = errors_module.running(da.from_array(np.arange(10.0), chunks=3), 12)
    with pytest.raises(TdslRuntimeError) as err:
        lazy.compute(scheduler="threads")
    assert str(err.value.loc) == at("c[i]")
    assert str(err.value).splitlines()[0].endswith("in the one task of the Dask call of running()")


def test_stage_functions_carry_the_users_lines(errors_module):
    plan = daskarray.split_of(errors_module.of_total, "n")
    lines = daskarray.lines_of(errors_module.of_total, "n")
    assert str(lines["finalize0"][max(lines["finalize0"])]) == at("total[j]")
    stage = pickle.loads(pickle.dumps(daskarray.StageFunction(plan.text, "numpy", "finalize0", lines["finalize0"])))
    assert stage.lines == lines["finalize0"]


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=1, processes=True, threads_per_worker=1,
                                  dashboard_address=":0") as local, distributed.Client(local) as client:
        yield client


@pytest.mark.slow   # a worker process: a few seconds
def test_a_task_error_on_a_worker_process(errors_module, cluster):
    x = da.from_array(np.ones((10, 3)), chunks=(4, 3))
    with pytest.raises(TdslRuntimeError) as err:
        dask.compute(errors_module.of_total(x, 3))   # the client is the default scheduler
    assert str(err.value.loc) == at("total[j]") and err.value.value == 3
    assert "of the Dask call of of_total()" in str(err.value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TdslWarning)
        lazy = errors_module.running(da.from_array(np.arange(10.0), chunks=3), 12)
    with pytest.raises(TdslRuntimeError) as err:   # the whole function, sent as its source
        dask.compute(lazy)
    assert str(err.value.loc) == at("c[i]")


@pytest.mark.slow   # two local clusters and a compile: about ten seconds
def test_the_scaling_benchmark_runs_quick():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "dask_scaling.py"), "--quick"],
                         capture_output=True, text=True, timeout=600, env=dict(os.environ), check=True).stdout
    rows = [line for line in out.splitlines() if line.startswith("| (")]
    assert [row[:5] for row in rows] == ["| (a)", "| (b)", "| (b)", "| (c)"], out   # (b) twice: compute, persist
