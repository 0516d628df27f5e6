"""`tdslc build -t opencl`: OUT.py runs with only NumPy and pyopencl, and gives the reference's numbers.

Each module runs in a subprocess where importing tdsl fails (a meta-path blocker, and
a sys.path without the project), and writes its results to an .npz that this process
compares with the reference interpreter.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tdsl
from conftest import assert_same, compiled, require_target
from tdsl.codegen.opencl_backend import emit_standalone
from tdsl.pipeline import check_source
from tdsl.rewrite import simplify_graph

MODEL = """\
fn predict(x: f32[n, d], w: f32[d], b: f32) -> f32[n] {
    return sigmoid(x @ w + b)
}

fn train_step(x: f32[n, d], y: f32[n], w: f32[d], b: f32, lr: f32) -> (f32[d], f32) {
    p = predict(x, w, b)
    gw, gb = grad(-mean(y * log(p + 1e-7) + (1 - y) * log(1 - p + 1e-7)), w, b)
    return w - lr * gw, b - lr * gb
}

fn stats(v: i32[k], on: bool[k]) -> (i64, i32[k], bool) {
    return sum(v), where(on, v // 2, -v % 3), any(on)
}

fn top(x: f64[m]) -> f64 {
    return max(x)
}

fn class(lambda: f64[m], print: f64) -> f64[m] {
    return lambda * print
}
"""

BLOCKER = """\
import sys

class BlockTdsl:
    def find_spec(self, name, path=None, target=None):
        if name == "tdsl" or name.startswith("tdsl."):
            raise ImportError("tdsl must not be imported by the standalone module")
        return None

sys.meta_path.insert(0, BlockTdsl())
sys.path = [p for p in sys.path if p not in ("", ".")
            and not (p.startswith({root!r}) and "site-packages" not in p)] + [{folder!r}]
"""

RUN = """\
import numpy as np
import model
import pyopencl.array as cl_array

x = np.array([0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 0.0, -2.0], np.float32).reshape(4, 2)
y, w = np.array([1, 0, 1, 0], np.float32), np.array([0.3, -0.2], np.float32)
out = {{}}
out["predict"] = model.predict(x, w, 0.1)
out["gw"], out["gb"] = model.train_step(x, y, w, np.float32(0.1), lr=0.5)
out["total"], out["mixed"], out["some"] = model.stats(np.array([-7, 4, 9, -1, 0], np.int32), [1, 0, 1, 0, 0] == np.ones(5))
out["class"] = getattr(model, "class")(np.arange(3.0), 2.0)
try:
    model.top(np.zeros(0))
except model._tdsl_module.Error as err:
    out["error"] = np.array(str(err))
queue = model._tdsl_module.queue
x_dev = cl_array.to_device(queue, x)
p_dev = model.predict(x_dev, w, 0.1)
out["device_type"] = np.array(type(p_dev).__name__)
out["chained"] = model.predict(x_dev, model.predict(x_dev, w, 0.1)[:2], 0.1).get()
assert "tdsl" not in sys.modules
np.savez({result!r}, **out)
"""


@pytest.fixture
def emitted(tmp_path):
    require_target("opencl")
    graphs = [simplify_graph(g) for g in check_source(MODEL, "model.tdsl")]
    (tmp_path / "model.py").write_text(emit_standalone(graphs, "model"))
    return tmp_path


def test_the_emitted_module_runs_without_tdsl(emitted):
    root = str(Path(tdsl.__file__).resolve().parents[1])
    script = BLOCKER.format(folder=str(emitted), root=root) + "import sys\n" + RUN.format(result=str(emitted / "out.npz"))
    result = subprocess.run([sys.executable, "-I", "-c", script], cwd=emitted, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    got = dict(np.load(emitted / "out.npz"))
    ref = compiled(MODEL, "numpy")
    x = np.array([0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 0.0, -2.0], np.float32).reshape(4, 2)
    y, w = np.array([1, 0, 1, 0], np.float32), np.array([0.3, -0.2], np.float32)
    assert_same(got["predict"], ref.predict(x, w, 0.1))
    assert_same((got["gw"], got["gb"][()]), ref.train_step(x, y, w, np.float32(0.1), 0.5))
    total, mixed, some = ref.stats(np.array([-7, 4, 9, -1, 0], np.int32), np.array([1, 0, 1, 0, 0], bool))
    assert got["total"][()] == total and got["some"][()] == some
    assert_same(got["mixed"], mixed)
    assert_same(got["class"], np.arange(3.0) * 2.0)
    assert str(got["error"]).startswith("model.tdsl:16:")
    assert "max over axis 0 of length 0 has no identity (x at model.tdsl:16:" in str(got["error"])
    assert str(got["device_type"]) == "Array"
    p = ref.predict(x, w, 0.1)
    assert_same(got["chained"], ref.predict(x, p[:2], 0.1))


def test_the_emitted_module_checks_its_arguments(emitted):
    sys.path.insert(0, str(emitted))
    try:
        import model
    finally:
        sys.path.remove(str(emitted))
    x = np.ones((4, 2), np.float32)
    with pytest.raises(TypeError, match="cannot be cast safely"):
        model.predict(np.ones((4, 2)), np.ones(2, np.float32), 0.1)
    with pytest.raises(ValueError, match="expected"):
        model.predict(x, np.ones(3, np.float32), 0.1)
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'b'"):
        model.predict(x, np.ones(2, np.float32))
    with pytest.raises(TypeError, match="missing argument 'print'"):
        getattr(model, "class")(np.ones(2))
    with pytest.raises(ValueError, match="rank 1"):
        model.predict(x, np.ones((2, 1), np.float32), 0.1)
    assert model.top.__doc__ == "top(x: f64[m]) -> f64"
    assert isinstance(model.top([1.0, 3.0]), np.float64)
    del sys.modules["model"]


def test_the_emitted_text_reads_as_a_module(emitted):
    text = (emitted / "model.py").read_text()
    compile(text, "model.py", "exec")
    assert textwrap.dedent('''\
        def predict(x, w, b):
            """predict(x: f32[n, d], w: f32[d], b: f32) -> f32[n]"""''') in text
    assert 'globals()["class"] = _tdsl_module.function("class")' in text
    assert "__kernel void k0_predict(" in text and "import tdsl" not in text


def test_tdslc_build_writes_the_module(tmp_path):
    require_target("opencl")
    from tdsl.cli import main
    (tmp_path / "model.tdsl").write_text(MODEL)
    assert main(["build", str(tmp_path / "model.tdsl"), "-t", "opencl", "-o", str(tmp_path / "out" / "model")]) == 0
    text = (tmp_path / "out" / "model.py").read_text()
    assert text.startswith('"""Generated by tdsl') and "def train_step(x, y, w, b, lr):" in text
