"""Errors from calling a compiled function leave with tdsl's own frames cut from the traceback,
as errors from `tdsl.load` do: on every target and call path (the C extension, the Python fast
call, the checked path); TDSL_TRACEBACK=full keeps them."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import numpy as np
import pytest

import tdsl
import tdsl.codegen
from conftest import require_target

TDSL_DIRS = [str(Path(p).resolve()) + os.sep for p in (Path(tdsl.__file__).parent, *tdsl.codegen.__path__,
                                                       Path(tdsl.__file__).parent.parent / "grammar")]

PROGRAM = """fn f(x: f32[n]) -> f32[n] {
    return x * 2.0
}

fn g(x: f32[n], i: i64) -> f32 {
    return x[i] + 1.0
}
"""

# what each bad call raises, and the end of the message printed at top level
CASES = {
    "dtype": ("m.f(np.ones(4, np.complex64))",
              "tdsl.errors.TdslArgumentError: error: argument 'x' of f() is complex64, which cannot be "
              "cast safely to f32 (hint: convert it with .astype(numpy.float32))\n"),
    "rank": ("m.f(np.ones((2, 2), np.float32))",
             "tdsl.errors.TdslArgumentError: error: argument 'x' of f() must have rank 1 (f32[n]), "
             "got shape (2, 2)\n"),
    "index": ("m.g(np.ones(4, np.float32), 7)",
              "\n        return x[i] + 1.0\n               ^~~~\n"),
}

SCRIPT = """
    import numpy as np
    import tdsl
    m = tdsl.load({path!r}, target={target!r})
    def helper():
        {call}
    helper()
"""

# (target, TDSL_NATIVE_CALL): the C extension and the Python fast call of the c target, and the
# checked path, which numpy and opencl call directly
PATHS = [("c", "1"), ("c", "0"), ("numpy", "1"), ("opencl", "1")]


def env(**extra) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "TDSL_TRACEBACK")}
    return {**base, **extra}


def run_script(tmp_path, target: str, native: str, case: str, **extra):
    path = tmp_path / "prog.tdsl"
    path.write_text(PROGRAM)
    script = tmp_path / f"call_{case}.py"
    script.write_text(textwrap.dedent(SCRIPT.format(path=str(path), target=target, call=CASES[case][0])))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                         env=env(TDSL_NATIVE_CALL=native, TDSL_CACHE_DIR=str(tmp_path / "cache"), **extra))
    return script, path, run


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("target, native", PATHS)
def test_an_uncaught_call_error_shows_the_user_s_frames_only(tmp_path, target, native, case):
    require_target(target)
    script, path, run = run_script(tmp_path, target, native, case)
    assert run.returncode == 1, run.stderr
    files_named = [line.split('"')[1] for line in run.stderr.splitlines() if line.startswith('  File "')]
    assert files_named == [str(script)] * 2, run.stderr   # the call of helper() and the bad call
    assert not any(d in run.stderr for d in TDSL_DIRS), run.stderr
    assert "<tdsl " not in run.stderr and "During handling" not in run.stderr
    assert run.stderr.endswith(CASES[case][1]), run.stderr
    if case == "index":
        assert f"TdslRuntimeError: {path}:6:12: error: index 7 is out of range for axis 0 of length 4" in run.stderr


@pytest.mark.parametrize("target, native", PATHS[:2])
def test_tdsl_traceback_full_keeps_the_frames_of_a_call(tmp_path, target, native):
    require_target(target)
    for case in ("dtype", "index"):
        _, _, cut = run_script(tmp_path, target, native, case)
        _, _, full = run_script(tmp_path, target, native, case, TDSL_TRACEBACK="full")
        assert full.returncode == 1
        assert any(d in full.stderr for d in TDSL_DIRS) or "<tdsl fast call of" in full.stderr, full.stderr
        assert full.stderr.endswith(CASES[case][1])
        assert full.stderr.count('  File "') > cut.stderr.count('  File "')


def test_the_python_fast_call_cuts_its_frames_only_where_it_raises():
    """The generated call wraps its body in `try`: nothing runs for it on a call that succeeds."""
    require_target("c")
    from tdsl.codegen.fastcall import FastCallSource
    f = tdsl.compile(PROGRAM, target="c", filename="prog.tdsl").f
    source, _ = FastCallSource(f._binder.fast_params(), f._runner, f._binder, False).source(True)
    lines = source.splitlines()
    assert lines[1] == "    try:"
    assert lines[-3:] == ["    except TdslError as err:", "        hide(err)", "        raise"]


@pytest.mark.parametrize("target, native", PATHS)
def test_a_caught_call_error_keeps_its_place_and_has_no_tdsl_frame(monkeypatch, target, native):
    require_target(target)
    monkeypatch.delenv("TDSL_TRACEBACK", raising=False)
    monkeypatch.setenv("TDSL_NATIVE_CALL", native)
    from tdsl.codegen import fastcall
    monkeypatch.setattr(fastcall, "native", None if native == "0" else fastcall.native)
    m = tdsl.compile(PROGRAM, target=target, filename="prog.tdsl")
    with pytest.raises(tdsl.TdslError) as err:
        m.g(np.ones(4, np.float32), 7)
    assert isinstance(err.value, tdsl.TdslRuntimeError)
    assert (err.value.loc.line, err.value.loc.col) == (6, 12)
    assert [f.filename for f in traceback.extract_tb(err.value.__traceback__)] == [__file__]
    with pytest.raises(tdsl.TdslArgumentError) as err:
        m.f(np.ones((2, 2), np.float32))
    assert [f.filename for f in traceback.extract_tb(err.value.__traceback__)] == [__file__]
    assert str(err.value).endswith("must have rank 1 (f32[n]), got shape (2, 2)")
    assert m.f(np.ones(3, np.float32)).tolist() == [2.0, 2.0, 2.0]   # a good call after a bad one


# -- f.source on the opencl target: the function's own part of the program ---------------------

LOOPING = """fn f(x: f32[2]) -> f32[2] {
    y = x * 2.0
    for i in range(3) {
        y = y + 1.0
    }
    return y + [0.5, 1.5]
}

fn g(x: f32[n], i: i64) -> f32 {
    return x[i] + 1.0
}
"""


def test_an_opencl_function_s_source_is_its_own_kernels_and_the_module_s_is_the_whole_program():
    require_target("opencl")
    m = tdsl.compile(LOOPING, target="opencl", filename="two.tdsl")
    whole = tdsl.Module.source(m)
    f, g = m.f.source, m.g.source
    assert "__kernel void k0_f(" in f and "/* ---- f:for@3(" in f and "__kernel void k0_1r(" in f
    assert "__constant float tdsl_const_f_0[2]" in f and "__constant" not in g
    assert "__kernel void k0_g(" not in f and "g(x: f32[n], i: i64)" not in f
    assert "__kernel void k0_g(" in g and "k0_f(" not in g and "f:for@3" not in g
    assert "tdsl:begin" not in f + g and "Generated by tdsl" not in f + g   # no markers, no prelude
    assert set(f.splitlines()) <= set(whole.splitlines()) and g.strip("\n") in whole
    assert "Generated by tdsl" in whole and "__kernel void k0_f(" in whole and "__kernel void k0_g(" in whole
    assert m.f(np.zeros(2, np.float32)).tolist() == [3.5, 4.5]


def test_an_opencl_program_without_markers_is_shown_whole():
    from tdsl.codegen.opencl_backend import function_source
    text = "/* Generated by an older tdsl */\n__kernel void k0_f(void) {}\n"
    assert function_source(text, "f") == text
    marked = "prelude\n/* tdsl:begin f */\nA\n/* tdsl:end f */\n/* tdsl:begin g */\nB\n/* tdsl:end g */\n" \
             "/* tdsl:begin f */\nC\n/* tdsl:end f */\n"
    assert function_source(marked, "f") == "A\n\nC\n" and function_source(marked, "g") == "B\n"
    assert function_source(marked, "h") == marked
