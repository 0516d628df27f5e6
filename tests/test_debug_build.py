"""Debug builds of the C target (docs/debugging.md): `#line` directives name the .tdsl lines,
so gdb and the sanitizers name them too; the normal build is unchanged.

One module is built per family: the debug and the normal build of PROGRAM (module scope);
the gdb and ASan tests run a process of their own over the same cache.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tdsl
from conftest import IN_CI, require_asan, require_target
from tdsl.pipeline import compile_module, compile_source

PROGRAM = """\
fn scale(x: f64[n], a: f64) -> f64[n] {
    y = x * a
    return exp(y) + 1.0
}

fn total(x: f64[n]) -> f64 {
    s = sum(x * x)
    return s
}
"""
SCALE_LINE, SUM_LINE = 3, 7   # the statements of scale's kernel and of total's sum
Y_LINE = 2                    # y = x * a: fused into scale's kernel, named by its own line
DIRECTIVE = re.compile(r'^#line (\d+) "(.*)"$')


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    require_target("c")
    path = tmp_path_factory.mktemp("debug") / "prog.tdsl"
    path.write_text(PROGRAM, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def debug_module(program):
    return compile_source(PROGRAM, str(program), debug=True)


@pytest.fixture(scope="module")
def normal_module(program):
    return compile_source(PROGRAM, str(program), debug=False)


def library_file(function) -> Path:
    return Path(function._runner.library._name)


def test_debug_c_names_the_tdsl_lines(program, debug_module, normal_module):
    debug, normal = debug_module.source, normal_module.source
    assert "#line" not in normal
    lines = debug.splitlines()
    named = {}   # line of the .tdsl -> the code lines named by it
    for i, line in enumerate(lines):
        found = DIRECTIVE.match(line)
        if found and found.group(2) == str(program):
            named.setdefault(int(found.group(1)), []).append(lines[i + 1].strip())
    # each kernel is named by its statement's line, each function's own code by its header's
    assert sorted(named) == [1, Y_LINE, SCALE_LINE, 6, SUM_LINE]
    assert f"/* add -- {program}:{SCALE_LINE}: return exp(y) + 1.0 */" in named[SCALE_LINE]
    assert named[Y_LINE] == ["const double v1_y = (v0 * a);"]   # its own statement's line
    assert "blk[0] = blk[0] + v1;" in named[SUM_LINE]
    assert "return err;" in named[1] and "int err = 0;" in named[6]
    # every code line of a function is named: a directive right before it
    inside = False
    for previous, line in zip(lines, lines[1:]):
        if line.startswith("#line "):
            inside = DIRECTIVE.match(line).group(2) == str(program)
        elif inside and line.strip():
            assert previous.startswith("#line "), line
    # the code after a function goes back to the generated file's own line numbers, in the file
    # the cache keeps this C in
    kept = library_file(debug_module.scale).with_suffix(".c")
    own = [(i, DIRECTIVE.match(line)) for i, line in enumerate(lines) if line.startswith("#line")]
    own = [(i, int(m.group(1))) for i, m in own if m.group(2) == str(kept)]
    assert len(own) == 2 and all(number == i + 2 for i, number in own)   # i + 2: the next line, from 1
    assert kept.read_text(encoding="utf-8") == debug
    assert "#pragma tdsl" not in debug
    # apart from the directives, the debug C is the normal build's
    assert [line for line in lines if not line.startswith("#line ")] == normal.splitlines()


def test_fused_parts_are_named_by_their_own_lines():
    """A fused kernel (codegen/fuse.py) is its first statement's; each part is its own statement's."""
    require_target("c")
    text = "fn stats(x: f64[n, k]) -> (f64[n], f64[n]) {\n    m = sum(x, axis=1)\n    q = sum(x * x, axis=1)\n" \
           "    return m, q\n}\n"
    lines = compile_module("c", text, "stats.tdsl", until="render", debug=True).splitlines()
    before = {line.strip(): lines[i - 1] for i, line in enumerate(lines) if line.strip().startswith("/* ")}
    assert before["/* m = sum + q = sum -- stats.tdsl:2: m = sum(x, axis=1) */"] == '#line 2 "stats.tdsl"'
    assert before["/* m = sum -- stats.tdsl:2: m = sum(x, axis=1) */"] == '#line 2 "stats.tdsl"'
    assert before["/* q = sum -- stats.tdsl:3: q = sum(x * x, axis=1) */"] == '#line 3 "stats.tdsl"'


def test_located_ops_are_named_by_their_own_statements():
    """An op the lowering gave a location (`Apply.loc`) is named by its own statement's line, in
    C and OpenCL; the other lines of its kernel by the kernel's statement."""
    from tdsl.codegen.kernels import Affine, Apply, Buffer, FunctionIR, Load, Loop, MapKernel, ModuleIR, Origin
    from tdsl.codegen.opencl_render import render_program
    from tdsl.codegen.render import render_module
    from tdsl.dims import Dim
    from tdsl.errors import Location

    n = Dim.of("n")
    x, out = Buffer("x", "f64", (n,), "param"), Buffer("out0", "f64", (n,), "output")
    load = Load(x, Affine.var("i0"), "f64")
    y = Apply("mul", "f64", (load, load), "y", Location("k.tdsl", 2, 5))
    z = Apply("sqrt", "f64", (y,), "z", Location("k.tdsl", 3, 5))
    kernel = MapKernel(Origin("z", Location("k.tdsl", 4, 5)), out, Affine.var("i0"), (Loop("i0", n),), z)
    fn = FunctionIR("f", "f(x: f64[n]) -> f64[n]", ("n",), (x,), (out,), (), (), (), (kernel,),
                    Location("k.tdsl", 1, 4))
    module = ModuleIR("k", (fn,), (), "k.tdsl")
    for text in (render_module(module, debug=True)[0], render_program(module, debug=True)[0]):
        lines = [line.strip() for line in text.splitlines()]
        named = {lines[i + 1]: line for i, line in enumerate(lines) if line.startswith("#line ")}
        assert named["const double v1_y = (v0 * v0);"] == '#line 2 "k.tdsl"', text
        assert named["const double v2_z = sqrt(v1_y);"] == '#line 3 "k.tdsl"', text
        assert named["const double v0 = x[i0];"] == '#line 4 "k.tdsl"', text
        assert named["out0[i0] = v2_z;"] == '#line 4 "k.tdsl"', text
    assert "#line" not in render_module(module)[0] + render_program(module)[0]


def test_opencl_debug_program_names_the_tdsl_lines(program):
    require_target("opencl")
    debug = compile_source(PROGRAM, str(program), "opencl", debug=True)
    normal = compile_source(PROGRAM, str(program), "opencl", debug=False)
    x = np.linspace(-1.0, 1.0, 7)
    np.testing.assert_allclose(debug.scale(x, 0.5), normal.scale(x, 0.5), rtol=1e-12)
    lines = debug.source.splitlines()
    named = {int(m.group(1)) for m in map(DIRECTIVE.match, lines) if m and m.group(2) == str(program)}
    assert named == {Y_LINE, SCALE_LINE, SUM_LINE}   # each kernel and op, by its statement's line
    own = [(i, DIRECTIVE.match(line)) for i, line in enumerate(lines)]
    own = [(i, int(m.group(1))) for i, m in own if m and m.group(2) == "prog.cl"]
    assert len(own) == 2 and all(number == i + 2 for i, number in own)
    assert [line for line in lines if not line.startswith("#line ")] == normal.source.splitlines()
    assert "#line" not in normal.source


def test_debug_and_normal_builds_are_separate_entries(program, debug_module, normal_module, monkeypatch):
    x = np.linspace(-1.0, 1.0, 7)
    for name, args in (("scale", (x, 0.5)), ("total", (x,))):
        expected = tdsl.compile(PROGRAM, target="numpy")[name](*args)
        np.testing.assert_allclose(debug_module[name](*args), expected, rtol=1e-12)
        np.testing.assert_allclose(normal_module[name](*args), expected, rtol=1e-12)
        assert debug_module[name].signature == normal_module[name].signature
    assert library_file(debug_module.scale) != library_file(normal_module.scale)
    # TDSL_DEBUG asks for a debug build; an explicit argument wins over it
    monkeypatch.setenv("TDSL_DEBUG", "1")
    assert tdsl.load(program).source == debug_module.source
    assert compile_source(PROGRAM, str(program), debug=False).source == normal_module.source
    monkeypatch.setenv("TDSL_DEBUG", "0")
    assert tdsl.load(program).source == normal_module.source
    # the reference ignores it
    assert compile_source(PROGRAM, str(program), "numpy", debug=True).total(x) == pytest.approx(np.sum(x * x))


def test_builder_api_debug_build_names_the_python_lines():
    """tdsl.function(debug=True): the code is named by the Python lines that built it."""
    require_target("c")
    x = tdsl.tensor("x", "f64", ("n",))
    y = tdsl.exp(x) * 2.0
    line = sys._getframe().f_lineno + 1
    f = tdsl.function([x], y.sum(), debug=True)
    assert f'#line {line} "{__file__}"' in f.source.splitlines()
    assert f(np.zeros(3)) == pytest.approx(6.0)


def test_file_name_is_escaped_in_line_directives(tmp_path):
    require_target("c")
    name = 'we"ird\\dir\nline*/??/é.tdsl'
    text = "fn f(x: f64[n]) -> f64[n] {\n    return x * 2.0\n}\n"
    module = compile_source(text, name, debug=True)
    escaped = '"we\\"ird\\\\dir\\012line*/\\?\\?/\\303\\251.tdsl"'
    assert f"#line 2 {escaped}" in module.source.splitlines()
    assert f"#line 1 {escaped}" in module.source.splitlines()
    np.testing.assert_array_equal(module.f(np.arange(3.0)), [0.0, 2.0, 4.0])
    # the compiler read the escapes back as the very name: its bytes are the debug info's
    assert name.encode("utf-8") in library_file(module.f).read_bytes()


def _run(command: list[str], env: dict, timeout: float = 180) -> str:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    return result.stdout + result.stderr


def _script(tmp_path: Path, program: Path, body: str) -> Path:
    script = tmp_path / "call.py"
    script.write_text(textwrap.dedent(f"""\
        import ctypes
        import numpy as np
        from tdsl.pipeline import compile_module, compile_source
        module = compile_source(open({str(program)!r}, encoding="utf-8").read(), {str(program)!r}, debug=True)
        """) + textwrap.dedent(body), encoding="utf-8")
    return script


def test_gdb_backtrace_names_the_tdsl_line(tmp_path, program, debug_module):
    gdb = shutil.which("gdb")
    if gdb is None:
        if IN_CI:
            pytest.fail("gdb must be installed in CI (.ci/run installs it)")
        pytest.skip("gdb is not installed")
    script = _script(tmp_path, program, "print(module.total(np.arange(5.0)))\n")
    output = _run([gdb, "-batch", "-nx", "-ex", "set breakpoint pending on", "-ex", "set disable-randomization off",
                   "-ex", f"break {program.name}:{SUM_LINE}", "-ex", "run", "-ex", "bt",
                   "--args", sys.executable, str(script)], dict(os.environ))
    frames = [line for line in output.splitlines() if line.startswith("#")]
    assert frames, output[-3000:]
    assert re.match(rf"#0 .*tdsl_body_prog_total .* at {re.escape(str(program))}:{SUM_LINE}$", frames[0]), output[-3000:]
    assert f"{SUM_LINE}\t    s = sum(x * x)" in output   # gdb shows the .tdsl line itself
    kept = library_file(debug_module.total).with_suffix(".c")
    assert re.match(rf"#1 .* in prog_total_packed .* at {re.escape(str(kept))}:\d+$", frames[1]), output[-3000:]


def test_sanitizer_report_names_the_tdsl_line(tmp_path, program):
    """An out-of-range read provoked through the C entry point (LANGUAGE.md section 9) with a
    size larger than the array: ASan names the statement whose kernel read it."""
    libasan = require_asan()
    script = _script(tmp_path, program, """\
        library = module.scale._runner.library
        x, out = np.arange(2.0), np.empty(6)
        library.prog_scale(ctypes.c_int64(6), ctypes.c_void_p(x.ctypes.data), ctypes.c_double(2.0),
                           ctypes.c_void_p(out.ctypes.data))
        """)
    env = dict(os.environ, TDSL_SANITIZE="1", LD_PRELOAD=libasan, ASAN_OPTIONS="detect_leaks=0")
    output = _run([sys.executable, str(script)], env)
    assert "AddressSanitizer: heap-buffer-overflow" in output, output[-3000:]
    frame = next(line for line in output.splitlines() if line.strip().startswith("#0 "))
    # (LLVM's symbolizer adds a column)
    assert re.search(rf" {re.escape(str(program))}:{SCALE_LINE}(:\d+)?$", frame), output[-3000:]
