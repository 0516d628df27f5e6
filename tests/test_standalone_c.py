"""`tdslc build -t c`: OUT.c and OUT.h are plain C99 that a C program compiles and links without Python.

The emitted code must compile cleanly under `-std=c99 -Wall -Wextra -Werror`, with
and without OpenMP, and give the reference interpreter's numbers.
"""
from __future__ import annotations

import os
import shlex
import subprocess

import numpy as np
import pytest

from conftest import assert_same, compiled, require_target
from test_c_backend import PROGRAMS
from tdsl.codegen import build
from tdsl.codegen.c_backend import emit_standalone
from tdsl.pipeline import check_source
from tdsl.rewrite import simplify_graph

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"]

MODEL = """\
fn predict(x: f32[n, d], w: f32[d], b: f32) -> f32[n] {
    return sigmoid(x @ w + b)
}

fn loss(x: f32[n, d], y: f32[n], w: f32[d], b: f32) -> f32 {
    p = predict(x, w, b)
    return -mean(y * log(p + 1e-7) + (1 - y) * log(1 - p + 1e-7))
}

fn train_step(x: f32[n, d], y: f32[n], w: f32[d], b: f32, lr: f32) -> (f32[d], f32) {
    gw, gb = grad(loss(x, y, w, b), w, b)
    return w - lr * gw, b - lr * gb
}

fn stats(v: i32[k], on: bool[k]) -> (i64, i32[k], bool) {
    return sum(v), where(on, v // 2, -v % 3), any(on)
}

fn top(x: f64[m]) -> f64 {
    return max(x)
}
"""

MAIN = r"""
#include <stdio.h>
#include "model.h"

static void print_f32(const char *name, const float *v, int count)
{
    for (int i = 0; i < count; i++) printf("%s %.9g\n", name, (double)v[i]);
}

int main(void)
{
    const float x[8] = {0.5f, -1.0f, 2.0f, 0.25f, -0.75f, 1.5f, 0.0f, -2.0f};
    const float y[4] = {1.0f, 0.0f, 1.0f, 0.0f};
    const float w[2] = {0.3f, -0.2f};
    const int32_t v[5] = {-7, 4, 9, -1, 0};
    const bool on[5] = {true, false, true, false, false};
    float p[4], l, gw[2], gb;
    int64_t total;
    int32_t mixed[5];
    bool some;
    double best;
    int code;

    if ((code = model_predict(4, 2, x, w, 0.1f, p)) != 0) return code;
    print_f32("predict", p, 4);
    if ((code = model_loss(4, 2, x, y, w, 0.1f, &l)) != 0) return code;
    print_f32("loss", &l, 1);
    if ((code = model_train_step(4, 2, x, y, w, 0.1f, 0.5f, gw, &gb)) != 0) return code;
    print_f32("train_step0", gw, 2);
    print_f32("train_step1", &gb, 1);
    if ((code = model_stats(5, v, on, &total, mixed, &some)) != 0) return code;
    printf("stats0 %lld\n", (long long)total);
    for (int i = 0; i < 5; i++) printf("stats1 %d\n", (int)mixed[i]);
    printf("stats2 %d\n", (int)some);
    code = model_top(0, NULL, &best);
    printf("error %d %s\n", code != 0, model_error(code));
    return 0;
}
"""


def emit(source: str, prefix: str) -> tuple[str, str]:
    graphs = [simplify_graph(g) for g in check_source(source, f"{prefix}.tdsl")]
    return emit_standalone(graphs, prefix)


def run(command: list[str], cwd) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{shlex.join(command)}:\n{result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture
def cc():
    require_target("c")
    return list(build.compiler())


@pytest.mark.parametrize("openmp", [False, True])
def test_a_c_program_links_the_emitted_module(tmp_path, cc, openmp):
    if openmp and not build.openmp_supported(tuple(cc)):
        pytest.skip("the C compiler has no OpenMP")
    c_text, h_text = emit(MODEL, "model")
    (tmp_path / "model.c").write_text(c_text)
    (tmp_path / "model.h").write_text(h_text)
    (tmp_path / "main.c").write_text(MAIN)
    flags = STRICT + (["-fopenmp"] if openmp else [])
    run(cc + flags + ["main.c", "model.c", "-o", "main", "-lm"], tmp_path)
    printed: dict[str, list[str]] = {}
    for line in run([str(tmp_path / "main")], tmp_path).splitlines():
        name, rest = line.split(" ", 1)
        printed.setdefault(name, []).append(rest)
    check_against_reference(printed)


def check_against_reference(printed: dict) -> None:
    ref = compiled(MODEL, "numpy")
    x = np.array([0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 0.0, -2.0], np.float32).reshape(4, 2)
    y, w = np.array([1, 0, 1, 0], np.float32), np.array([0.3, -0.2], np.float32)
    floats = lambda name: np.array(printed[name], dtype=np.float32)  # noqa: E731
    assert_same(floats("predict"), ref.predict(x, w, np.float32(0.1)))
    assert_same(floats("loss")[0], ref.loss(x, y, w, np.float32(0.1)))
    gw, gb = ref.train_step(x, y, w, np.float32(0.1), np.float32(0.5))
    assert_same((floats("train_step0"), floats("train_step1")[0]), (gw, gb))
    v, on = np.array([-7, 4, 9, -1, 0], np.int32), np.array([1, 0, 1, 0, 0], bool)
    total, mixed, some = ref.stats(v, on)
    assert int(printed["stats0"][0]) == total and bool(int(printed["stats2"][0])) == some
    assert [int(s) for s in printed["stats1"]] == mixed.tolist()
    assert printed["error"][0].startswith("1 model.tdsl:20:")
    assert "max over axis 0 of length 0 has no identity (x at model.tdsl:20:" in printed["error"][0]


def test_the_header_declares_each_function_with_its_signature():
    h_text = emit(MODEL, "model")[1]
    assert "/* predict(x: f32[n, d], w: f32[d], b: f32) -> f32[n] */" in h_text
    assert "int model_predict(int64_t n, int64_t d, const float *x, const float *w, float b, float *out0);" \
        in h_text
    assert "int model_stats(int64_t k, const int32_t *v, const bool *on, int64_t *out0, int32_t *out1, " \
           "bool *out2);" in h_text
    assert "const char *model_error(int code);" in h_text


@pytest.mark.parametrize("openmp", [False, True])
def test_every_program_compiles_cleanly(tmp_path, cc, openmp):
    """-Wall -Wextra -Werror over the representative programs, in one compiler call."""
    if openmp and not build.openmp_supported(tuple(cc)):
        pytest.skip("the C compiler has no OpenMP")
    files = []
    for name, (source, _, _) in sorted(PROGRAMS.items()):
        c_text, h_text = emit(source, name)
        (tmp_path / f"{name}.c").write_text(c_text)
        (tmp_path / f"{name}.h").write_text(h_text)
        (tmp_path / f"use_{name}.c").write_text(f'#include "{name}.h"\nint use_{name}(void);\n'
                                                f"int use_{name}(void) {{ return 0; }}\n")
        files += [f"{name}.c", f"use_{name}.c"]
    run(cc + STRICT + (["-fopenmp"] if openmp else []) + ["-c"] + files, tmp_path)
    assert os.path.exists(tmp_path / f"{sorted(PROGRAMS)[0]}.o")
