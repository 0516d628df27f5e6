"""Names and text that reach generated code: every valid tdsl name works on every target, and no
file name, identifier or source line can add code to generated C, OpenCL or Python (issue 11).

Escaping is checked by the compilers themselves: C strings and comments by a C compiler,
Python text by Python, the generated libraries by `nm -D` and the OpenCL program by the
kernels it holds.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tdsl
from conftest import REFERENCE, VARIANTS, assert_same, require_target
from tdsl.cli import main as tdslc
from tdsl.codegen.cexpr import c_comment, c_string, py_string, py_text

# Text that breaks out of a C comment, a C string or a Python string when printed as it is.
HOSTILE_TEXTS = ["*/", "/*", "/*/", "*\\\n/", '"""', "'''", '"', "\\", "\\\n", "a\nb", "a\rb", "\r\n",
                 "\u2028", "\u2029", "\x00", "??/", "??=", "???/", "\x0c", "\x85", "\udcff", "\ud800",
                 "end\\", "é中", "x */ int injected(void){return 1337;} /* "]

# Parameters and size variables named like C and OpenCL keywords, macros, library names and
# the generated code's own locals; one module holds them all.
HOSTILE_PARAMS = """
fn maps(__LINE__: f64[item, stop], __FILE__: f64[item, stop], _Atomic: f64, _Generic: f64,
        __attribute__: f64, __asm__: f64, _Pragma: f64, __int128: f64, math_errhandling: f64,
        half: f64, __global: f64, errno: f64, NULL: f64, free: f64, class: f64, new: f64,
        int: f64, v0: f64, i0r: f64, out0: f64, tdsl_alloc: f64, err: f64, acc: f64, self: f64) -> f64[item, stop] {
    t = __LINE__ * _Atomic + __FILE__ * _Generic + __attribute__ - __asm__ + _Pragma * __int128
    u = math_errhandling + half + __global + errno + NULL + free + class + new + int + v0 + i0r
    return t + u * (out0 + tdsl_alloc + err + acc + self)
}

fn product(a: f64[n, k], h: f64[k, j]) -> f64[n, j] {
    return a @ h
}

fn strips(first: f64[strip, runs], last: f64[runs, outer]) -> f64[strip, outer] {
    return first @ last
}

fn reductions(item: f64[start, stop], lanes: i64[start]) -> (f64[start], f64[stop], i64[start], i64) {
    return sum(item, axis=1), sum(item, axis=0), argmax(item, axis=1), sum(lanes)
}

fn vectors(first: f32[point], last: f32[point], count: f32) -> f32[point] {
    return first * count + last
}

fn gathers(base: f64[lid], point: i64[flat]) -> f64[flat] {
    return take(base, point)
}

fn consts(c0: f64[3], c1: f64) -> f64[3] {
    return c0 * [1.5, 2.5, 3.5] + c1 * [0.5, -1.0, 2.0]
}

fn words(asm: f64, typeof: f64, this: f64, delete: f64, restrict: f64, inline: f64, main: f64, struct: f64,
         linux: f64, unix: f64, cl_khr_fp64: f64) -> f64 {
    return asm + typeof * this - delete + restrict * inline + main * struct + linux - unix * cl_khr_fp64
}
"""


def hostile_args(rng):
    """Arguments for every function of HOSTILE_PARAMS, and NumPy's own results."""
    x, y = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    s = [float(v) for v in rng.standard_normal(22)]
    t = x * s[0] + y * s[1] + s[2] - s[3] + s[4] * s[5]
    u = sum(s[6:17])
    maps = (x, y, *s), t + u * sum(s[17:22])
    a, h = rng.standard_normal((4, 3)), rng.standard_normal((3, 5))
    f, g = rng.standard_normal((70, 9)), rng.standard_normal((9, 40))
    r, lanes = rng.standard_normal((6, 300)), np.arange(6)
    v, w = rng.standard_normal(100).astype(np.float32), rng.standard_normal(100).astype(np.float32)
    base, idx = rng.standard_normal(7), np.array([0, 6, -1, 3])
    return {"maps": maps, "product": ((a, h), a @ h), "strips": ((f, g), f @ g),
            "reductions": ((r, lanes), (r.sum(axis=1), r.sum(axis=0), r.argmax(axis=1), lanes.sum())),
            "vectors": ((v, w, np.float32(1.5)), v * np.float32(1.5) + w), "gathers": ((base, idx), base[idx]),
            "consts": ((base[:3], s[0]), base[:3] * np.array([1.5, 2.5, 3.5]) + s[0] * np.array([0.5, -1.0, 2.0])),
            "words": (tuple(s[:11]), s[0] + s[1] * s[2] - s[3] + s[4] * s[5] + s[6] * s[7] + s[8] - s[9] * s[10])}


@pytest.fixture(params=[REFERENCE, *VARIANTS])
def layout_target(request, monkeypatch):
    """Each target, and the opencl target in each of its launch layouts."""
    target, _, layout = request.param.partition("-")
    require_target(target)
    if layout:
        monkeypatch.setenv("TDSL_OPENCL_LAYOUT", layout)
    return target


def test_names_that_c_and_opencl_reserve_work(layout_target):
    """Names of keywords, macros, library functions and the kernels' own locals (issue 11: `j`
    shadowed a size variable, `__LINE__`, `first`, `item` did not build)."""
    module = tdsl.compile(HOSTILE_PARAMS, target=layout_target, filename="hostile_params.tdsl")
    reference = tdsl.compile(HOSTILE_PARAMS, target="numpy")
    for name, (args, expected) in hostile_args(np.random.default_rng(11)).items():
        got = module[name](*args)
        assert_same(got, reference[name](*args))
        assert_same(got, expected if isinstance(expected, tuple) else np.asarray(expected, got.dtype))
    x = np.ones((2, 3))
    keywords = dict(zip(["_Atomic", "_Generic", "__attribute__", "__asm__", "_Pragma", "__int128", "math_errhandling",
                         "half", "__global", "errno", "NULL", "free", "class", "new", "int", "v0", "i0r", "out0",
                         "tdsl_alloc", "err", "acc", "self"], [1.0] * 22))
    assert_same(module.maps(x, __FILE__=x, **keywords), np.full((2, 3), 3.0 + 11.0 * 5.0))


FUNCTION_NAMES = """
fn f(x: f64[n]) -> f64[n] { return x + 1.0 }
fn f_packed(x: f64[n]) -> f64[n] { return x + 2.0 }
fn error(x: f64[n]) -> f64[n] { return x + 3.0 }
fn set_blas(x: f64[n]) -> f64[n] { return x + 4.0 }
fn functions(x: f64[n]) -> f64[n] { return x + 5.0 }
fn path(x: f64[n]) -> f64[n] { return x + 6.0 }
fn __class__(x: f64[n]) -> f64[n] { return x + 7.0 }
fn __dict__(x: f64[n]) -> f64[n] { return x + 8.0 }
fn __getitem__(self: f64, out: f64) -> f64 { return self - out }
fn _tdsl_module(x: f64[n]) -> f64[n] { return x + 9.0 }
fn main(x: f64[n]) -> f64[n] { return x + 10.0 }
fn globals(x: f64[n]) -> f64[n] { return x + 11.0 }
fn __getattr__(x: f64[n]) -> f64[n] { return x + 12.0 }
fn blas_threads(x: f64[n]) -> f64[n] { return x + 13.0 }
fn blas_calls(x: f64[n]) -> f64[n] { return x + 14.0 }
fn f_profile(x: f64[n]) -> f64[n] { return x + 15.0 }
"""
SHIFTS = {"f": 1, "f_packed": 2, "error": 3, "set_blas": 4, "functions": 5, "path": 6, "__class__": 7,
          "__dict__": 8, "_tdsl_module": 9, "main": 10, "globals": 11, "__getattr__": 12, "blas_threads": 13,
          "blas_calls": 14, "f_profile": 15}


def test_function_names_that_clash_with_symbols_or_the_module(target):
    """Functions named like the module's own symbols or the Module's own attributes (issue 11:
    `error`, `set_blas`, `f` beside `f_packed` did not build; `functions` broke the Module)."""
    m = tdsl.compile(FUNCTION_NAMES, target=target, filename="names.tdsl")
    x = np.arange(3.0)
    for name, shift in SHIFTS.items():
        assert_same(m[name](x), x + shift)
    assert_same(m.functions(x), x + 5)
    assert_same(m.path(x), x + 6)
    assert_same(m.error(x), x + 3)
    assert m.f_packed is m["f_packed"] and m.set_blas is m["set_blas"]
    assert type(m) is tdsl.Module and isinstance(m, tdsl.Module) and m.__class__ is tdsl.Module
    assert tdsl.Module.path(m) == "names.tdsl" and tdsl.Module.target(m) == target
    assert list(tdsl.Module.functions(m)) == [f.name for f in m] == list(SHIFTS)[:8] + ["__getitem__"] + list(SHIFTS)[8:]
    assert "functions" in m and "nothing" not in m and len(m) == 16
    if target != "numpy":   # a profiling build's tables: `f`'s beside a function named `f_profile`
        for name in ("f", "f_profile"):
            assert m[name].profile(x, repeat=1).to_dict()["calls"] == 1
    assert "__dict__" in dir(m) and repr(m).startswith("<tdsl.Module names.tdsl target=")
    assert m["__getitem__"](5.0, 2.0) == 3.0
    assert m["__getitem__"](self=5.0, out=2.0) == 3.0   # a parameter named `self` as a keyword


def test_the_emitted_python_module_takes_any_function_name(tmp_path):
    """OUT.py of `tdslc build -t opencl`: a function is an attribute unless Python gives its name
    a meaning (`__getattr__`) or OUT.py uses it (`_tdsl_module`); then `_tdsl_module.function`."""
    require_target("opencl")
    (tmp_path / "names.tdsl").write_text(FUNCTION_NAMES)
    assert tdslc(["build", str(tmp_path / "names.tdsl"), "-t", "opencl", "-o", str(tmp_path / "model")]) == 0
    script = ("import numpy as np, model\n"
              "x = np.arange(3.0)\n"
              f"for name, shift in {SHIFTS!r}.items():\n"
              "    attribute = not name.startswith('_')\n"
              "    f = getattr(model, name) if attribute else model._tdsl_module.function(name)\n"
              "    assert (f(x) == x + shift).all(), name\n"
              "assert model._tdsl_module.function('__getitem__')(self=5.0, out=2.0) == 3.0\n"
              "assert model.__name__ == 'model' and type(model._tdsl_module).__name__ == 'StandaloneModule'\n"
              "assert not hasattr(model, '__getattr__') and not hasattr(model, 'nothing')\n"
              "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env=opencl_env())
    assert result.stdout.strip() == "ok", result.stderr


def test_tdslc_run_finds_a_function_named_functions(tmp_path, capsys):
    (tmp_path / "names.tdsl").write_text(FUNCTION_NAMES)
    assert tdslc(["run", str(tmp_path / "names.tdsl"), "functions", "--arg", "x=[1.0, 2.0]", "-t", "numpy"]) == 0
    assert capsys.readouterr().out.strip() == "[6. 7.]"
    assert tdslc(["run", str(tmp_path / "names.tdsl"), "__getitem__", "--arg", "self=5", "--arg", "out=2",
                  "-t", "numpy"]) == 0
    assert capsys.readouterr().out.strip() == "3.0"


def test_the_module_object_keeps_its_own_api_without_clashes():
    m = tdsl.compile("fn double(x: f64) -> f64 { return 2.0 * x }", target="numpy", filename="plain.tdsl")
    assert m.path == "plain.tdsl" and m.target == "numpy" and list(m.functions) == ["double"]
    assert m.functions["double"] is m.double and m.double(2.0) == 4.0
    with pytest.raises(KeyError):
        m["path"]


def exported_symbols(library: str) -> set[str]:
    """The names a shared library exports (`nm -D --defined-only`)."""
    out = subprocess.run(["nm", "-D", "--defined-only", library], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def library_of(module) -> str:
    return next(iter(module))._runner.library._name


def test_a_library_exports_only_its_entry_points():
    require_target("c")
    m = tdsl.compile(FUNCTION_NAMES, target="c", filename="names.tdsl")
    symbols = {s for s in exported_symbols(library_of(m)) if not s.startswith(("_init", "_fini"))}
    entries = {"names_f", "names_u_f_packed", "names_u_error", "names_u_set_blas", "names_functions", "names_path",
               "names___class__", "names___dict__", "names___getitem__", "names__tdsl_module", "names_main",
               "names_globals", "names___getattr__", "names_u_blas_threads", "names_u_blas_calls",
               "names_u_f_profile"}
    assert symbols == {"names_error", "names_set_blas", "names_noted_index", "names_blas_threads",
                       "names_blas_calls"} | entries | {e + "_packed" for e in entries}


def test_another_librarys_symbol_of_the_same_name_is_never_called(tmp_path):
    """A library loaded RTLD_GLOBAL that exports `interposeprobe_f` (issue 11: the packed entry
    called it through the PLT, and its result came back)."""
    require_target("c")
    (tmp_path / "other.c").write_text("int interposeprobe_f(void) { return 0; }\n"
                                      "int interposeprobe_f_packed(void) { return 0; }\n")
    cc = os.environ.get("TDSL_CC") or os.environ.get("CC") or "cc"
    subprocess.run(cc.split() + ["-shared", "-fPIC", str(tmp_path / "other.c"), "-o", str(tmp_path / "libother.so")],
                   check=True)
    ctypes.CDLL(str(tmp_path / "libother.so"), mode=ctypes.RTLD_GLOBAL)
    m = tdsl.compile("fn f(x: f64[n]) -> f64[n] { return x * 2.0 + 1.0 }", target="c", filename="interposeprobe.tdsl")
    x = np.arange(5.0)
    assert_same(m.f(x), x * 2 + 1)        # the packed entry
    assert_same(m.f(x=x), x * 2 + 1)      # the ctypes entry
    assert_same(m.f(x[::2]), x[::2] * 2 + 1)


# -- escaping ------------------------------------------------------------------------------------

def test_c_strings_and_comments_hold_any_text(tmp_path):
    """Every hostile text, as a C string and in a comment, compiles to exactly its bytes and no code."""
    require_target("c")
    lines = ["#include <stdio.h>", "#include <string.h>"]
    for k, text in enumerate(HOSTILE_TEXTS):
        lines += [f"/* {c_comment(text)} */", f"static const char s{k}[] = {c_string(text)};",
                  f"/* {c_comment(text)}*/ static const int after{k} = {k}; /*{c_comment(text)} */"]
    prints = [f'    fwrite(s{k}, 1, sizeof s{k} - 1, stdout); printf("|%d\\n", after{k});' for k in range(len(HOSTILE_TEXTS))]
    lines += ["int main(void)", "{", *prints, "    return 0;", "}"]
    (tmp_path / "texts.c").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cc = os.environ.get("TDSL_CC") or os.environ.get("CC") or "cc"
    subprocess.run(cc.split() + ["-std=c99", "-trigraphs", "-Wall", "-Wextra", "-Werror", str(tmp_path / "texts.c"),
                                 "-o", str(tmp_path / "texts")], check=True)
    out = subprocess.run([str(tmp_path / "texts")], capture_output=True, check=True).stdout
    expected = b"".join(t.encode("utf-8", "surrogateescape") if "\ud800" not in t else t.encode("utf-8", "surrogatepass")
                        for t in [f"{text}|{k}\n" for k, text in enumerate(HOSTILE_TEXTS)])
    assert out == expected


def test_python_strings_docstrings_and_comments_hold_any_text():
    for text in HOSTILE_TEXTS:
        assert eval(py_string(text)) == text   # noqa: S307
        namespace: dict = {}
        exec(compile(f'"""{py_text(text)}"""\n# {py_text(text)}\nafter = 1\n', "<test>", "exec"), namespace)  # noqa: S102
        assert namespace["__doc__"] == text and namespace["after"] == 1
        assert c_comment(c_comment(text)) == c_comment(text)


HOSTILE_FILE = ('data*/ev"""il\'\'\'\\ */ int injected(void){return 1337;} /* */ __kernel void injected(__global int *p)'
                '{p[0] = 1;} /* ??/\r\n\u2028\u2029\x00\x0c\udcff *\\\n/ end\\')
HOSTILE_SOURCE = """\
fn f(x: f64[n]) -> f64 {  # */ int injected(void){return 1337;} /* \"\"\" ??/
    return max(x * 2.0)  # */ __kernel void injected(__global int *p){p[0] = 1;} /* \\
}
"""


def test_hostile_file_names_and_source_lines_add_no_code(target):
    """File names and commented source lines reach comments and messages of the generated code
    (issue 11: `evil */ int injected(void)...` as a file name exported `injected`)."""
    m = tdsl.compile(HOSTILE_SOURCE, target=target, filename=HOSTILE_FILE)
    assert m.f(np.array([1.0, 3.0, 2.0])) == 6.0
    with pytest.raises(tdsl.TdslRuntimeError) as err:
        m.f(np.zeros(0))
    assert err.value.loc.file == HOSTILE_FILE and err.value.loc.line == 2
    if target == "c":
        assert "injected" not in exported_symbols(library_of(m))
    if target == "opencl":   # the text is in comments only, escaped
        kernels = next(iter(m))._runner.function.program.kernels
        assert kernels and not any("injected" in name for name in kernels)
        assert "*/ __kernel void injected" not in m.f.source and "/* \"\"\"" not in m.f.source
    if target != "numpy":
        assert "injected" in m.f.source and "\x00" not in m.f.source and "\r" not in m.f.source


def opencl_env() -> dict:
    """The environment of a subprocess that runs OUT.py: no ASan preloaded (TDSL_SANITIZE runs), which
    PoCL's C++ runtime does not survive; OUT.py loads no C library of tdsl's."""
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def hostile_folder(tmp_path):
    """A .tdsl file under `data*` whose path has quotes, `*/`, `/*`, a CR and an undecodable byte."""
    folder = tmp_path / "data*" / 'x"""; import os; os.system("touch PWNED"); """ *' / " int injected(void){return 1;} "
    folder.mkdir(parents=True)
    path = folder / "* \r\\ \udcff.tdsl"
    path.write_text(HOSTILE_SOURCE.replace("fn f(", "fn model_f(").replace("f64", "f32"), encoding="utf-8")
    return path


def test_standalone_c_of_hostile_names_is_c_and_cpp(tmp_path):
    """OUT.c of names that C, GNU C and C++ reserve compiles in strict C99 and GNU C, and OUT.h in C++."""
    require_target("c")
    (tmp_path / "names.tdsl").write_text(HOSTILE_PARAMS)
    assert tdslc(["build", str(tmp_path / "names.tdsl"), "-t", "c", "-o", str(tmp_path / "out")]) == 0
    cc = os.environ.get("TDSL_CC") or os.environ.get("CC") or "cc"
    for std in ("-std=c99", "-std=gnu17"):
        subprocess.run(cc.split() + [std, "-Wall", "-Wextra", "-Werror", "-fsyntax-only", str(tmp_path / "out.c")],
                       check=True)
    if shutil.which("c++"):
        subprocess.run(["c++", "-fsyntax-only", "-Wall", "-Werror", "-x", "c++", str(tmp_path / "out.h")], check=True)


def test_tdslc_build_c_from_a_hostile_path(tmp_path):
    require_target("c")
    path = hostile_folder(tmp_path)
    assert tdslc(["build", str(path), "-t", "c", "-o", str(tmp_path / "out" / "model")]) == 0
    cc = os.environ.get("TDSL_CC") or os.environ.get("CC") or "cc"
    library = tmp_path / "out" / "libmodel.so"
    subprocess.run(cc.split() + ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-shared", "-fPIC",
                                 "-fvisibility=hidden", str(tmp_path / "out" / "model.c"), "-o", str(library), "-lm"],
                   check=True)
    assert exported_symbols(str(library)) - {"_init", "_fini"} == {"model_model_f", "model_error"}
    lib = ctypes.CDLL(str(library))
    lib.model_model_f.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p]
    lib.model_error.restype = ctypes.c_char_p
    x, out = np.array([1.0, 3.0, 2.0], np.float32), np.zeros((), np.float32)
    assert lib.model_model_f(3, x.ctypes.data, out.ctypes.data) == 0 and out == 6.0
    code = lib.model_model_f(0, x.ctypes.data, out.ctypes.data)
    message = lib.model_error(code).decode("utf-8", "surrogateescape")
    assert message.startswith(f"{path}:2:") and "max over axis 0 of length 0 has no identity" in message
    if shutil.which("c++"):   # the header is C++ too, hostile comments included
        subprocess.run(["c++", "-fsyntax-only", "-Wall", "-Werror", "-x", "c++", str(tmp_path / "out" / "model.h")],
                       check=True)


def test_tdslc_build_opencl_from_a_hostile_path(tmp_path):
    require_target("opencl")
    path = hostile_folder(tmp_path)
    assert tdslc(["build", str(path), "-t", "opencl", "-o", str(tmp_path / "out" / "model")]) == 0
    script = ("import numpy as np, model\n"
              "print(model.model_f(np.array([1.0, 3.0, 2.0], np.float32)))\n"
              "print(ascii(model.__doc__.split(': do not edit')[0]))\n"
              "print(sorted(model._tdsl_module._runner('model_f').program.kernels))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path / "out", capture_output=True, text=True,
                            timeout=600, env=opencl_env())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "6.0" and not (tmp_path / "out" / "PWNED").exists()
    assert lines[1] == ascii(f"Generated by tdsl {tdsl.__version__} from {path}")
    assert "injected" not in lines[2]


# -- the generated code's own names -------------------------------------------------------------

_DECLARED = r"(?:\b(?:int64_t|int32_t|int|long|double|float|bool|uchar|tdsl_acc_f32|[a-z]+\d+)\s+\**\s*" \
            r"(?:(?:const|restrict)\s+)*(\w+)\s*(?:=|;|\[|,|\)))"


def declared_names(source: str) -> set[str]:
    """The names that the functions holding user names declare (a C function's body, the OpenCL
    kernels): locals, loop variables, parameters. The prelude's helpers have scopes of their own."""
    import re
    code = re.sub(r"/\*.*?\*/|\"(?:[^\"\\\n]|\\.)*\"", " ", source, flags=re.S)
    bodies = re.findall(r"(?:int tdsl_body_\w+|__kernel void \w+)\(.*?\n}\n", code, flags=re.S)
    return set(re.findall(_DECLARED, "".join(bodies)))


def test_no_name_the_generated_code_declares_is_a_users_name_unchanged():
    """Every local, loop variable and helper the C and OpenCL code declares is a name `reserved`
    rejects for users, so no user's name (which keeps its spelling when not reserved) can meet it."""
    from test_c_backend import PROGRAMS
    from tdsl.codegen.cexpr import C, reserved, safe_names
    from tdsl.codegen.fuse import fuse_module
    from tdsl.codegen.lower import lower_module
    from tdsl.codegen.opencl_render import OPENCL, render_program
    from tdsl.codegen.render import render_module
    from tdsl.pipeline import check_source
    from tdsl.rewrite import simplify_graph
    sources = {HOSTILE_PARAMS, FUNCTION_NAMES} | {source for source, _, _ in PROGRAMS.values()}
    for source in sorted(sources):
        graphs = [simplify_graph(g) for g in check_source(source, "names.tdsl")]
        c_text, _ = render_module(fuse_module(lower_module(graphs, "names")))
        cl_text, _ = render_program(lower_module(graphs, "names"))
        for dialect, text in ((C, c_text), (OPENCL, cl_text)):
            users = {c_name for g in graphs
                     for c_name in safe_names(list(g.size_vars) + [p.name for p in g.params], dialect).values()}
            own = {name for name in declared_names(text) if name not in users}
            assert own and not [name for name in sorted(own) if not reserved(name, dialect)], dialect.name


def test_the_builder_api_takes_only_tdsl_names():
    """Names from Python reach generated code as they are: they must be tdsl names
    (a function name `g(void){...} int injected` used to reach the C source)."""
    x = tdsl.tensor("x", "f64", ("n",))
    for bad in ["g(void){return 0;} int injected", "é", "", "f\n"]:
        with pytest.raises(tdsl.TdslTypeError, match="not a valid function name"):
            tdsl.function([x], x * 2.0, target="numpy", name=bad)
    with pytest.raises(tdsl.TdslTypeError, match="not a valid name"):
        tdsl.tensor("é", "f64", ("n",))
    with pytest.raises(tdsl.TdslTypeError, match="size-variable names"):
        tdsl.tensor("x", "f64", ("n */",))
    assert tdsl.function([x], x * 2.0, target="numpy", name="__LINE__")(np.arange(2.0)).tolist() == [0.0, 2.0]
