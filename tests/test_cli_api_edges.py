"""Edges of tdslc and of the Python API as a new user meets them (issue "In the editor and the
notebook"): --version, a closed pipe, nan/inf arguments, `check` of several files, a missing
function's AttributeError, tracebacks without tdsl's frames, NumPy dtype names, a function's own C."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tdsl
from conftest import require_target
from tdsl import cli
from tdsl.codegen.c_backend import function_source
from tdsl.dtypes import dtype_name, parse_dtype

GOOD = "fn double(x: f64[n]) -> f64[n] {\n    return x * 2.0\n}\n"
BAD = "fn g(x: f64[n]) {\n    return x + y\n}\n"
BAD_MESSAGE = "2:16: error: undefined name 'y'"


@pytest.fixture
def files(tmp_path):
    (tmp_path / "good.tdsl").write_text(GOOD)
    (tmp_path / "bad.tdsl").write_text(BAD)
    (tmp_path / "bad2.tdsl").write_text("fn h(x: f64[n]) -> f64[n] {\n    return exp(x, 1)\n}\n")
    return tmp_path


def subprocess_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "TDSL_TRACEBACK")}
    return {**env, **extra}


# -- 1. --version ------------------------------------------------------------------------------

def test_version_prints_the_version_and_exits_0(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"tdslc {tdsl.__version__}\n"


# -- 2. a pipe closed early ---------------------------------------------------------------------

def long_program(tmp_path) -> Path:
    path = tmp_path / "long.tdsl"
    path.write_text("".join(f"fn g{i}(x: f64[n]) -> f64[n] {{\n    y = exp(x) * {i}.0\n    return y + x\n}}\n\n"
                            for i in range(300)))
    return path


@pytest.mark.parametrize("unbuffered", [False, True])
def test_graph_into_head_ends_quietly(tmp_path, unbuffered):
    path = long_program(tmp_path)
    env = subprocess_env(**({"PYTHONUNBUFFERED": "1"} if unbuffered else {}))
    tdslc = subprocess.Popen([sys.executable, "-m", "tdsl", "graph", str(path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)
    head = subprocess.run(["head", "-1"], stdin=tdslc.stdout, capture_output=True, text=True, timeout=120)
    tdslc.stdout.close()
    err = tdslc.stderr.read().decode()
    assert tdslc.wait(timeout=120) == 0
    assert head.stdout == "g0(x: f64[n]) -> f64[n]\n"
    assert err == ""


def test_a_pipe_closed_before_the_output_is_flushed_at_exit_is_quiet(tmp_path):
    """A short output sits in stdout's buffer until the interpreter exits: the closed pipe is met
    when Python flushes it (formerly "Exception ignored ... BrokenPipeError", status 120)."""
    path = long_program(tmp_path)
    tdslc = subprocess.Popen([sys.executable, "-m", "tdsl", "graph", str(path), "--fn", "g1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env())
    tdslc.stdout.close()   # the reader is gone before anything is written
    err = tdslc.stderr.read().decode()
    assert tdslc.wait(timeout=120) == 0
    assert err == ""


# -- 3. nan and inf in literals -----------------------------------------------------------------

def test_run_takes_nan_and_inf_as_float_spells_them(files, tmp_path):
    out = tmp_path / "r.npz"
    arg = "x=[1.0, nan, inf, -inf, +Infinity, NaN, -INF, 1e999, -2]"
    assert cli.main(["run", str(files / "good.tdsl"), "double", "-t", "numpy", "--arg", arg, "-o", str(out)]) == 0
    got = np.load(out)["result"]
    inf, nan = np.inf, np.nan
    np.testing.assert_array_equal(got, [2.0, nan, inf, -inf, inf, nan, -inf, inf, -4.0])


def test_run_takes_a_scalar_nan_and_nested_lists(tmp_path, capsys):
    path = tmp_path / "s.tdsl"
    path.write_text("fn f(a: f64, m: f64[r, c], b: bool) -> f64 {\n    return a + sum(m) + f64(b)\n}\n")
    assert cli.main(["run", str(path), "f", "-t", "numpy", "--arg", "a=-nan", "--arg", "m=[[inf], [1.0]]",
                     "--arg", "b=true"]) == 0
    assert capsys.readouterr().out == "nan\n"
    assert cli.main(["run", str(path), "f", "-t", "numpy", "--arg", "a=1", "--arg", "m=[[-inf, 2.5]]",
                     "--arg", "b=false"]) == 0
    assert capsys.readouterr().out == "-inf\n"


@pytest.mark.parametrize("value", ['[1.0, __import__("os")]', "nan()", "inf.real", "[x]", "-true", "1 + 2",
                                   "[1.0, nann]", "...", "-[1.0]", "[" * 5000 + "]" * 5000])
def test_run_refuses_what_is_not_a_literal(files, capsys, value):
    assert cli.main(["run", str(files / "good.tdsl"), "double", "-t", "numpy", "--arg", f"x={value}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: argument 'x': '") and "is neither a .npy file nor a literal (a number, " \
        "true, false, nan, inf or a nested list of them)" in err
    assert len(err) < 250   # a long value is shortened


# -- 4. check every file -------------------------------------------------------------------------

def test_check_reports_every_file(files, capsys):
    paths = [str(files / name) for name in ("bad.tdsl", "good.tdsl", "missing.tdsl", "bad2.tdsl")]
    assert cli.main(["check", *paths]) == 1
    out, err = capsys.readouterr()
    assert out == f"{paths[1]}: double(x: f64[n]) -> f64[n]\n"
    assert f"{paths[0]}:{BAD_MESSAGE}\n        return x + y\n                   ^" in err
    assert f"error: cannot read {paths[2]}: No such file or directory" in err
    assert f"{paths[3]}:2:12: error:" in err
    assert err.index(paths[0]) < err.index(paths[2]) < err.index(paths[3])


def test_a_file_that_is_not_utf8_is_a_tdsl_error(tmp_path, capsys):
    path = tmp_path / "latin.tdsl"
    path.write_bytes(b"# caf\xe9\nfn f(x: f32) -> f32 { return x }\n")
    for command in (["check", str(path)], ["run", str(path), "f", "-t", "numpy", "--arg", "x=1"],
                    ["graph", str(path)]):
        assert cli.main(command) == 1
        assert capsys.readouterr().err == f"error: cannot read {path}: not UTF-8 text (byte 5)\n"
    with pytest.raises(tdsl.TdslError, match=r"cannot read .*latin.tdsl: not UTF-8 text \(byte 5\)"):
        tdsl.load(path, target="numpy")


def test_check_of_good_files_exits_0(files, capsys):
    assert cli.main(["check", str(files / "good.tdsl"), str(files / "good.tdsl")]) == 0
    assert capsys.readouterr().out.count("double(x: f64[n]) -> f64[n]") == 2


# -- 5. a missing function -----------------------------------------------------------------------

def test_a_missing_function_names_the_module_s_functions():
    m = tdsl.compile("fn predict(x: f64[n]) { return x }\nfn classify(x: f64[n]) { return x }", target="numpy",
                     filename="model.tdsl")
    with pytest.raises(AttributeError) as err:
        m.predcit
    assert str(err.value) == "module 'model.tdsl' has no function 'predcit'; its functions: predict, classify; " \
                             "did you mean 'predict'?"
    assert err.value.name == "predcit"
    with pytest.raises(AttributeError) as err:
        m.zzz
    assert str(err.value) == "module 'model.tdsl' has no function 'zzz'; its functions: predict, classify"
    assert not hasattr(m, "__array_interface__")
    assert m.predict.name == "predict"


# -- 6. tracebacks without tdsl's frames --------------------------------------------------------

TDSL_DIRS = [str(Path(p).resolve()) + os.sep for p in (Path(tdsl.__file__).parent, *tdsl.codegen.__path__,
                                                       Path(tdsl.__file__).parent.parent / "grammar")]

UNCAUGHT = """
    import tdsl
    def helper(path):
        return tdsl.{call}
    helper({path!r})
"""


@pytest.mark.parametrize("call", ["load(path, target='numpy')", "compile(open(path).read(), 'numpy', path)"])
def test_an_uncaught_error_shows_the_user_s_frames_only(files, call):
    path = str(files / "bad.tdsl")
    script = files / "script.py"
    script.write_text(textwrap.dedent(UNCAUGHT.format(call=call, path=path)))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=subprocess_env(),
                         timeout=120)
    assert run.returncode == 1
    files_named = [line.split('"')[1] for line in run.stderr.splitlines() if line.startswith('  File "')]
    assert files_named == [str(script)] * 2
    assert not any(d in run.stderr for d in TDSL_DIRS)
    assert run.stderr.endswith(f"tdsl.errors.TdslTypeError: {path}:{BAD_MESSAGE}\n"
                               f"        return x + y\n                   ^\n")
    full = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=subprocess_env(TDSL_TRACEBACK="full"), timeout=120)
    assert any(d in full.stderr for d in TDSL_DIRS[:1])
    assert full.stderr.endswith(run.stderr.splitlines()[-3] + "\n        return x + y\n                   ^\n")


def test_a_caught_error_keeps_its_place_and_has_no_tdsl_frame():
    with pytest.raises(tdsl.TdslTypeError) as err:
        tdsl.compile(BAD, target="numpy", filename="bad.tdsl")
    assert (err.value.loc.line, err.value.loc.col) == (2, 16)
    frames = [f.filename for f in __import__("traceback").extract_tb(err.value.__traceback__)]
    assert frames == [__file__]
    assert err.value.__suppress_context__


# -- 7. NumPy's dtype names ---------------------------------------------------------------------

@pytest.mark.parametrize("given, name", [
    ("f32", "f32"), ("float32", "f32"), (np.float32, "f32"), (np.dtype("float32"), "f32"), ("f4", "f32"),
    (float, "f64"), ("float64", "f64"), ("float", "f64"), (np.double, "f64"), (">f8", "f64"),
    (int, "i64"), ("int64", "i64"), ("i8", "i64"), (np.int32, "i32"), ("int32", "i32"), ("i4", "i32"),
    (bool, "bool"), ("bool", "bool"), (np.bool_, "bool"), ("?", "bool"), ("i64", "i64"), ("i32", "i32"),
])
def test_numpy_dtype_names_map_to_tdsl_s(given, name):
    assert dtype_name(given) == name and parse_dtype(given) == name


@pytest.mark.parametrize("given, shown", [
    (complex, "<class 'complex'> (complex128)"), ("float16", "'float16'"), (np.float16, "(float16)"),
    (object, "(object)"), ("O", "'O' (object)"), ("uint8", "'uint8'"), ("nope", "'nope'"), (None, "None"),
    ([1], "[1]"), (3, "3"), ("i4,i4", "'i4,i4'"), (np.float32(1), "np.float32(1.0)"),
])
def test_other_dtypes_are_a_type_error_listing_the_accepted_ones(given, shown):
    assert dtype_name(given) is None
    with pytest.raises(tdsl.TdslTypeError) as err:
        parse_dtype(given)
    assert err.value.message.startswith("dtype must be one of bool, i32, i64, f32, f64, or NumPy's names, types "
                                        "and dtypes for them (\"float32\", np.float32, \"f4\", float, int, bool), not ")
    assert shown in err.value.message


# -- 8. a function's own source ------------------------------------------------------------------

TWO = """const W = [1.0, 2.0, 3.0]

fn scale(x: f64[n]) -> f64[n] {
    return exp(x) * 2.0
}

fn dot3(x: f64[3]) -> f64 {
    s = 0.0
    for i in range(3) {
        if s > 100.0 {
            s = s - 1.0
        }
        s += x[i] * W[i]
    }
    return s
}
"""


def test_a_c_function_s_source_is_its_own_part():
    require_target("c")
    m = tdsl.compile(TWO, target="c", filename="two.tdsl")
    assert m.dot3(np.ones(3)) == 6.0
    scale, dot3, whole = m.scale.source, m.dot3.source, m.source
    assert "#include" in whole and "#include" not in scale + dot3   # the prelude is the module's
    assert "int two_scale(int64_t n" in scale and "two_dot3" not in scale and "tdsl_region" not in scale
    assert "int two_dot3(const double" in dot3 and "two_scale" not in dot3
    assert dot3.count("static TDSL_NOINLINE int tdsl_region_") == 3   # the loop body, the `if`'s two branches
    assert dot3.index("tdsl_region_") < dot3.index("tdsl_body_two_dot3")
    assert "tdsl:begin" not in scale + dot3 and whole.count("tdsl:begin") == 5
    assert scale.strip() in whole and tdsl.Module.source(m) == whole


def test_function_source_falls_back_to_the_whole_text():
    old = "/* C of a tdsl without part markers */\nint m_f(void) { return 0; }\n"
    assert function_source(old, "m_f") == old
    marked = "prelude\n/* tdsl:begin m_g */\nint m_g(void);\n/* tdsl:end m_g */\n"
    assert function_source(marked, "m_f") == marked and function_source(marked, "m_g") == "int m_g(void);\n"


def test_module_source_on_numpy_and_a_function_named_source():
    m = tdsl.compile("fn f(x: f64) { return x }\n\nfn source(x: f64) { return x + 1.0 }", target="numpy")
    assert m.source(1.0) == 2.0   # the function wins, as for `path` and `target`
    assert tdsl.Module.source(m) == m.f.source + "\n\n" + m["source"].source


@pytest.mark.parametrize("given, name", [("float32", "f32"), ("f4", "f32"), (np.float32, "f32"),
                                         (np.dtype("float64"), "f64"), (float, "f64"), (int, "i64"),
                                         (bool, "bool"), ("int32", "i32"), ("f64", "f64")])
def test_the_python_api_takes_numpys_dtype_names(given, name):
    assert tdsl.tensor("x", given, ("n",)).dtype == name
    assert tdsl.scalar("k", given).dtype == name


@pytest.mark.parametrize("given", ["complex64", np.float16, "uint8", object, "float31"])
def test_a_dtype_tdsl_lacks_is_a_type_error_listing_the_accepted_ones(given):
    with pytest.raises(tdsl.TdslTypeError, match="dtype must be one of bool, i32, i64, f32, f64"):
        tdsl.tensor("x", given, ("n",))
