"""The pipeline and the target interface: stage by stage, the registry, and a target added from outside."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import tdsl
from tdsl import cli, pipeline, targets
from tdsl.callspec import CallSpec
from tdsl.graph import FunctionGraph
from tdsl.runner import Runner

from conftest import require_target

SOURCE = """
fn f(x: f32[n], k: i64) -> f32[n] { return x * 2.0 + 1.0 }
fn pick(x: f64[n], i: i64[m]) -> f64[m] { return take(x, i) }
"""


def test_the_stages_are_named_in_order():
    assert pipeline.STAGES == ("parse", "check", "rewrite", "lower", "render", "build", "load")
    assert set(pipeline.GRAPH_STAGES) <= set(pipeline.STAGES)


@pytest.mark.parametrize("target", targets.names())
def test_each_stage_hands_its_result_to_the_next(target):
    require_target(target)
    tree = pipeline.compile_module(target, SOURCE, "stages.tdsl", until="parse")
    assert tree.data == "module"
    checked = pipeline.compile_module(target, SOURCE, "stages.tdsl", until="check")
    assert [type(g) for g in checked] == [FunctionGraph, FunctionGraph]
    assert [g.name for g in pipeline.compile_module(target, SOURCE, "stages.tdsl", until="rewrite")] == ["f", "pick"]
    source = pipeline.compile_module(target, SOURCE, "stages.tdsl", until="render")
    assert isinstance(source, str) and "pick" in source
    module = pipeline.compile_module(target, SOURCE, "stages.tdsl")
    assert isinstance(module, tdsl.Module) and tdsl.Module.target(module) == target
    assert module.f(np.arange(3, dtype=np.float32), 1).tolist() == [1.0, 3.0, 5.0]


@pytest.mark.parametrize("target", targets.names())
def test_every_runner_has_one_call_description(target):
    """Every target's functions are described by a CallSpec; compiled ones carry the module's errors."""
    require_target(target)
    module = tdsl.compile(SOURCE, target=target)
    for fn in module:
        runner = fn._runner
        assert isinstance(runner, Runner) and isinstance(runner.call, CallSpec)
        assert runner.call.name == fn.name and runner.call.signature == fn.signature
        assert runner.call.first_seen_at() == ({"n": (0, 0)} if fn.name == "f" else {"n": (0, 0), "m": (1, 0)})
        assert bool(runner.call.errors) == (target != targets.REFERENCE)


@pytest.mark.parametrize("target", targets.compiled())
def test_an_error_code_reads_the_one_table(target):
    """A failing take reports the same message and place on every target as on the reference."""
    require_target(target)
    x, i = np.arange(4.0), np.array([1, 7])
    messages = []
    for t in (targets.REFERENCE, target):
        with pytest.raises(tdsl.TdslRuntimeError) as info:
            tdsl.compile(SOURCE, target=t, filename="table.tdsl").pick(x, i)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert "table.tdsl:3:" in messages[1] and "length 4" in messages[1]


def test_the_registry_names_every_target_once():
    assert targets.names()[0] == targets.REFERENCE == "numpy"
    assert targets.compiled() == ("c", "opencl")
    assert targets.standalone() == ("c", "opencl")
    with pytest.raises(tdsl.TdslError, match="unknown target 'fortran' .*numpy, c, opencl"):
        tdsl.compile(SOURCE, target="fortran")
    for name in targets.names():
        t = targets.get(name)
        assert t.name == name and (t.unavailable() is None or isinstance(t.unavailable(), str))


# -- a target added from outside: one module with TARGET, one registry entry ----------------

class EchoTarget:
    """A toy target: its 'source' is the program as .tdsl text, and it runs on the reference."""

    name = "echo"
    standalone_suffixes = (".tdsl",)

    def unavailable(self):
        return None

    def recall(self, text, path):
        return None

    def remember(self, text, path, graphs, lowered, built):
        return None

    def lower(self, graphs, prefix):
        return graphs

    def render(self, graphs):
        return "\n".join(tdsl.printer.to_tdsl(g) for g in graphs)

    def build(self, graphs, source):
        return pipeline.compile_module(targets.REFERENCE, source, "<echo>", until="check")

    def load(self, graphs, built):
        from tdsl.numpy_backend import ReferenceRunner
        return {g.name: ReferenceRunner(g) for g in built}

    def emit(self, graphs, prefix):
        return {".tdsl": self.render(graphs)}


@pytest.fixture
def echo_target(monkeypatch):
    import tdsl.printer  # noqa: F401  (EchoTarget.render)
    module = types.ModuleType("echo_backend")
    module.TARGET = EchoTarget()
    monkeypatch.setitem(sys.modules, "echo_backend", module)
    monkeypatch.setitem(targets.REGISTRY, "echo", "echo_backend")
    return "echo"


def test_a_new_target_is_one_module_and_one_registry_entry(echo_target, tmp_path, capsys):
    m = tdsl.compile(SOURCE, target=echo_target)
    assert m.f(np.ones(2, np.float32), 0).tolist() == [3.0, 3.0]
    assert "fn pick" in m.pick.source
    x = tdsl.tensor("x", "f64", ("n",))
    assert tdsl.function([x], tdsl.exp(x), target=echo_target)(np.zeros(2)).tolist() == [1.0, 1.0]
    # the command line reads the registry: run and build take the new target
    path = tmp_path / "prog.tdsl"
    path.write_text(SOURCE)
    assert cli.main(["run", str(path), "f", "-t", "echo", "--arg", "x=[1.0]", "--arg", "k=0"]) == 0
    assert capsys.readouterr().out.strip() == "[3.]"
    assert cli.main(["build", str(path), "-t", "echo", "-o", str(tmp_path / "out")]) == 0
    assert "fn f(x: f32[n], k: i64)" in (tmp_path / "out.tdsl").read_text()


def test_graph_stages_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "g.tdsl"
    path.write_text("fn g(x: f64[n]) -> f64[n] { return (x + 0.0) * 1.0 }\n")
    outputs = {}
    for stage in ("check", "rewrite", "parsed", "rewritten"):
        assert cli.main(["graph", str(path), "--stage", stage]) == 0
        outputs[stage] = capsys.readouterr().out
    assert outputs["check"] == outputs["parsed"] and outputs["rewrite"] == outputs["rewritten"]
    assert outputs["check"].count("\n") > outputs["rewrite"].count("\n")   # x + 0.0 and * 1.0 are gone
    with pytest.raises(SystemExit):
        cli.main(["graph", str(path), "--stage", "lower"])


def test_importing_the_package_loads_no_compiler_stage():
    """`import tdsl` is cheap: the API, the front end and the backends load on first use."""
    import subprocess
    code = "import sys, tdsl; print(sorted(m for m in sys.modules if m.startswith('tdsl')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['tdsl', 'tdsl.errors', 'tdsl.version']"


def test_build_refuses_a_target_without_standalone_files(echo_target, monkeypatch, tmp_path, capsys):
    """A registered target that writes no standalone files is a clear error, not an empty build."""
    monkeypatch.setattr(EchoTarget, "standalone_suffixes", ())
    path = tmp_path / "prog.tdsl"
    path.write_text(SOURCE)
    assert cli.main(["build", str(path), "-t", "echo", "-o", str(tmp_path / "out")]) == 1
    assert "the echo target writes no standalone files" in capsys.readouterr().err
    assert not list(tmp_path.glob("out*"))
