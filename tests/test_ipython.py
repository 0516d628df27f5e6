"""IPython and Jupyter: `%load_ext tdsl`, the `%%tdsl` cell magic, and the HTML views of Function
and Module (docs/python.md, "Notebooks (IPython and Jupyter)")."""
import os
import re
import shutil
import sys

import numpy as np
import pytest

import tdsl
from conftest import IN_CI, require_target

try:
    from IPython.core.interactiveshell import InteractiveShell
except ImportError:
    if IN_CI:
        raise   # the notebook support must be tested in CI: IPython is in the `test` extra
    pytest.skip("IPython is not installed (pip install 'tdsl[notebook]')", allow_module_level=True)

TWO = """\
fn scale(x: f64[n], a: f64) -> f64[n] { return a * x }
fn norm2(x: f64[n]) -> f64 {
    s = sum(x * x)
    return s
}
"""


@pytest.fixture(scope="module")
def ip(tmp_path_factory):
    """An in-process IPython shell with tdsl's extension loaded; its profile and history are
    kept out of the user's ~/.ipython."""
    from traitlets.config import Config
    old = os.environ.get("IPYTHONDIR")
    os.environ["IPYTHONDIR"] = str(tmp_path_factory.mktemp("ipython"))
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "tdsl")
    yield shell
    InteractiveShell.clear_instance()
    if old is None:
        os.environ.pop("IPYTHONDIR", None)
    else:
        os.environ["IPYTHONDIR"] = old


def cell(ip, magic_line: str, body: str):
    """Run `%%tdsl ...` with `body` as a notebook cell (with its execution count)."""
    return ip.run_cell(f"%%tdsl {magic_line}\n{body}", store_history=True)


def test_a_cell_binds_its_functions_in_the_namespace(ip):
    result = cell(ip, "-t numpy", TWO)
    assert result.success
    module = result.result
    assert isinstance(module, tdsl.Module) and tdsl.Module.target(module) == "numpy"
    assert [f.name for f in module] == ["scale", "norm2"]
    x = np.array([1.0, -2.0, 3.0])
    assert ip.user_ns["scale"] is module.scale
    np.testing.assert_allclose(ip.user_ns["scale"](x, 2.5), 2.5 * x)
    np.testing.assert_allclose(ip.user_ns["norm2"](x), np.sum(x * x))
    # the functions are names of the notebook: later cells call them
    ran = ip.run_cell("float(norm2(scale([3.0, 4.0], 1.0)))")
    assert ran.result == 25.0


def test_name_binds_the_module_and_quiet_shows_nothing(ip):
    result = cell(ip, "-t numpy --name mod --quiet", "fn twice(x: i64) -> i64 { return 2 * x }")
    assert result.success and result.result is None
    assert isinstance(ip.user_ns["mod"], tdsl.Module)
    assert ip.user_ns["mod"].twice is ip.user_ns["twice"]
    assert ip.user_ns["twice"](21) == 42


def test_the_cell_is_the_file_name_and_its_lines_count_from_the_magic(ip):
    result = cell(ip, "-t numpy", TWO)
    assert tdsl.Module.path(result.result) == f"<cell {result.execution_count}>"   # its In [N]


def test_an_error_prints_the_located_message_without_a_traceback(ip, capsys):
    ip.user_ns.pop("broken", None)
    body = "fn ok(x: f32) -> f32 { return x }\nfn broken(x: f32[n]) -> f32[n] {\n    return x + y\n}\n"
    result = cell(ip, "-t numpy", body)
    count = result.execution_count
    captured = capsys.readouterr()
    assert result.result is None and result.success
    assert captured.err.splitlines() == [
        f"<cell {count}>:3:16: error: undefined name 'y'",
        "        return x + y",
        "                   ^",
    ]
    assert "Traceback" not in captured.out + captured.err
    assert "broken" not in ip.user_ns   # nothing of a cell that fails is bound


def test_an_unknown_target_is_a_tdsl_error_too(ip, capsys):
    result = cell(ip, "-t fortran", "fn f(x: f32) -> f32 { return x }")
    captured = capsys.readouterr()
    assert result.result is None
    assert "error: unknown target 'fortran'" in captured.err
    assert "Traceback" not in captured.out + captured.err


def test_the_c_target_is_the_default(ip):
    require_target("c")
    result = cell(ip, "", "fn axpy(a: f32, x: f32[n], y: f32[n]) -> f32[n] { return a * x + y }")
    assert tdsl.Module.target(result.result) == "c"
    x, y = np.arange(4, dtype=np.float32), np.ones(4, np.float32)
    np.testing.assert_allclose(ip.user_ns["axpy"](np.float32(2), x, y), 2 * x + y)


def test_the_extension_loads_lazily():
    """`import tdsl` does not import IPython; `tdsl.load_ipython_extension` is what `%load_ext` calls."""
    import subprocess
    code = "import sys, tdsl; tdsl.load_ipython_extension; print('IPython' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# -- the HTML views ------------------------------------------------------------------------

ODD = """\
fn a_lt_b(x: f64[n]) -> f64 {
    s = sum(x)
    for i in range(3) {
        s = s + 1.0
    }
    return s
}
"""


BRANCH = """\
fn pick(x: f64[n], flag: bool) -> f64 {
    s = sum(x)
    if flag {
        t = s * 2.0
        s = t
    } else {
        u = s - 1.0
        s = u
    }
    return s
}
"""


@pytest.fixture
def no_dot(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)


def test_function_html_has_signature_table_and_escaped_names(no_dot):
    m = tdsl.compile(ODD, target="numpy", filename="<a&b>.tdsl")
    html = m.a_lt_b._repr_html_()
    assert "<code>a_lt_b(x: f64[n]) -&gt; f64</code>" in html
    assert "<th>dtype</th><th>shape</th>" in html
    assert "<td>param</td>" in html and "<code>x</code>" in html and "<code>[n]</code>" in html
    assert "<td>value</td>" in html and "<code>s</code>" in html
    assert "<td>for</td>" in html and "for i in range(3)" in html
    assert "<td>result</td>" in html
    assert "size variables: <code>n</code>" in html
    assert "<svg" not in html and "<pre>a_lt_b(x: f64[n]) -&gt; f64\n" in html   # no dot: text
    assert "->" not in html   # the listing's user text is escaped too


def test_function_html_indents_a_branch_as_explain_does(no_dot):
    html = tdsl.compile(BRANCH, target="numpy").pick._repr_html_()
    row = re.compile(r'<tr><td>(\w+)</td><td style="[^"]*padding-left:([\d.]+)em"><code>([^<]*)</code>'
                     r"</td><td>[^<]*</td><td>(?:<code>[^<]*</code>)?</td><td>(\d*)</td></tr>")
    names = [(kind, name, indent == "2.5", line) for kind, indent, name, line in row.findall(html)]
    assert names == [
        ("param", "x", False, ""), ("param", "flag", False, ""), ("value", "s", False, "2"),
        ("if", "if flag", False, "3"), ("value", "t", True, "4"), ("value", "s", True, "5"),
        ("else", "else", False, ""), ("value", "u", True, "7"), ("value", "s", True, "8"),
        ("value", "s", False, "3"), ("result", "0", False, ""),
    ]
    # a branch's row has no dtype nor shape
    assert ('<td>if</td><td style="text-align:left;padding-left:1.0em"><code>if flag</code></td>'
            "<td></td><td></td>") in html


def test_module_html_lists_signatures_path_and_target():
    m = tdsl.compile(TWO, target="numpy", filename="<a&b>.tdsl")
    html = m._repr_html_()
    assert "<code>&lt;a&amp;b&gt;.tdsl</code>" in html and "<a&b>" not in html
    assert "(target numpy)" in html
    assert "<code>scale(x: f64[n], a: f64) -&gt; f64[n]</code>" in html
    assert "<code>norm2(x: f64[n]) -&gt; f64</code>" in html


def fake_dot(tmp_path, monkeypatch, script: str):
    """A `dot` on PATH that runs `script` (a shell script) on the dot text."""
    path = tmp_path / "dot"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    return path


def test_the_graph_is_svg_where_dot_is_installed(tmp_path, monkeypatch):
    seen = tmp_path / "seen.dot"
    fake_dot(tmp_path, monkeypatch, f'cat > "{seen}"\n'
             "printf '<?xml version=\"1.0\"?>\\n<!DOCTYPE svg>\\n<svg id=\"g\"><text>graph</text></svg>\\n'\n")
    m = tdsl.compile(ODD, target="numpy")
    html = m.a_lt_b._repr_html_()
    assert '<details><summary>graph</summary><svg id="g">' in html
    assert "<?xml" not in html and "<pre>" not in html
    assert seen.read_text().startswith('digraph "a_lt_b" {')   # the dot text of `tdslc graph --format dot`


def test_a_failing_dot_falls_back_to_text(tmp_path, monkeypatch):
    fake_dot(tmp_path, monkeypatch, "echo 'Error: syntax error' >&2\nexit 1\n")
    html = tdsl.compile(ODD, target="numpy").a_lt_b._repr_html_()
    assert "<pre>a_lt_b(" in html and "<svg" not in html


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_real_dot_renders_svg():
    html = tdsl.compile(ODD, target="numpy").a_lt_b._repr_html_()
    assert "<svg" in html and "</svg>" in html and "<pre>" not in html
