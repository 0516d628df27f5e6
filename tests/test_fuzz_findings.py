"""Wrong answers, crashes and refused valid programs found by the section-11 fuzzer (tests/fuzz/control.py),
each reduced to a minimal program; all fixed now, so they stay as regression tests. A new finding comes in
as a strict xfail (it turns into a failure, "XPASS", once fixed; then the mark goes), with an entry in
tests/fuzz/tree.py's AVOID while it is open, so that the fuzzer's campaigns do not meet it again and again.
"""
from __future__ import annotations

import numpy as np
import pytest

import tdsl
from conftest import assert_same, require_target


def compile_for(source: str, target: str):
    require_target(target)
    return tdsl.compile(source, target=target, filename="finding.tdsl")


# 1. A weak value carried by a loop (c = 0) takes the dtype its body gives it (section 11: i32 here), and
#    explain() shows it so; but a use of it before its rebinding in the body is typed first with c still weak,
#    where sign(c) is a strong i64, and the store into an i32 array is refused ("cannot store a i64 value into
#    i32[n]"). AVOID key: weak-carried-read-before-rebound.
WEAK_CARRIED = """
fn g(x: i32[n], z: i32[n]) {
    c = 0
    for i in range(n) {
        z[0] = sign(c)
        c += x[i]
    }
    return z
}
"""


def test_weak_carried_value_read_before_its_rebinding(target):
    m = compile_for(WEAK_CARRIED, target)
    x = np.array([2, -5, 1], np.int32)
    z = np.zeros(3, np.int32)
    assert_same(m.g(x, z), np.array([-1, 0, 0], np.int32))   # sign(2 + -5), stored as i32


# 2. A strided run-time slice whose written stop is past the end, but whose NumPy count is the written length
#    (x[2:4:2] of 3 elements is [x[2]], one element as `q:q + 2:2` says): with a loop variable as its start,
#    tdsl raises "the index needs a longer axis ..., but m = 3, q = 2", while with a parameter as its start
#    (x[j:j + 2:2], j = 2) it gives NumPy's [x[2]]; tests/test_control.py states the rule as "NumPy's slice
#    when it has the written length, else a call-time error". Also x[j:j + 3:2] at j = 2 of 3 elements, and
#    x[-1:1:2] of 1 element (both NumPy's one element) raise "take: an index is out of range". AVOID key: strided-window-past-the-end (the
#    oracle does not judge such calls).
STRIDED_WINDOW = """
fn g(x: f32[m]) {
    s = 0.0
    for q in range(m) {
        s += sum(x[q:q + 2:2])
    }
    return s
}

fn h(x: f32[m], j: i64) {
    return sum(x[j:j + 2:2])
}

fn w(x: f32[m], j: i64) {
    return x[j:j + 3:2]
}
"""


def test_strided_run_time_slice_ending_past_the_axis(target):
    m = compile_for(STRIDED_WINDOW, target)
    x = np.array([1.0, 2.0, 4.0], np.float32)
    assert_same(m.h(x, 2), np.float32(4.0))       # passes: a parameter start
    assert_same(m.g(x), np.float32(7.0))          # x[0:2:2] + x[1:3:2] + x[2:4:2]
    assert_same(m.h(x[:1], -1), np.float32(1.0))  # x[-1:1:2] of one element is [x[0]], as written
    # x[2:5:2] of 3 elements is one element in NumPy, but two are written: a call-time error
    # (tdsl's shapes do not depend on values), which says why
    with pytest.raises(tdsl.TdslRuntimeError, match="shorter than written"):
        m.w(x, 2)


# 3. grad through a for loop whose body reads an array that is also the variable: the c target's source does
#    not compile ("'t0' undeclared"); numpy and opencl give the right gradient. Most generated grads through a
#    loop meet it. AVOID key: c-undeclared-in-control-flow (the fuzzer counts such build failures as known).
GRAD_LOOP = """
fn g(x: f64[n]) {
    v = x
    for i in range(2) {
        v = v * x
    }
    return grad(sum(v), x)
}

fn h(x: f64[n]) {
    v = x
    for i in range(1) {
        if sum(v) < 0.0 {
            v = v * 2.0
        }
    }
    return grad(sum(v), x)
}

fn k(x: f64[n]) {
    v = x
    for i in range(1) {
        v[i] = v[i] * x[i]
    }
    return grad(sum(v), x)
}
"""


def test_grad_through_a_loop_builds_on_c():
    m = compile_for(GRAD_LOOP, "c")
    x = np.array([0.5, -1.0, 2.0])
    assert_same(m.g(x), 3 * x ** 2)
    assert_same(m.h(x), np.ones(3))
    assert_same(m.k(x), np.array([2 * x[0], 1.0, 1.0]))


# 4. The c target's source does not compile ("'t0_v1' undeclared") for plain loops and branches too: a loop
#    whose body reads a value computed before it from the carried value's initial value (k: v3 = v1 * 2.0), a
#    value nothing reads updated in a loop (u), a branch holding a value nothing reads next to one that is
#    read (g, h). About one plain control-flow program in thirty meets it. AVOID key:
#    c-undeclared-in-control-flow.
DEAD_IN_BRANCH = """
fn g(x: f32[k]) {
    v = zeros_like(x)
    if sum(x) <= 2.5 {
        x = flip(x)
        for i in range(1) {
            v[0] = 1.0
        }
    }
    return x
}

fn h(x: f64[m]) {
    a = x > 0.0
    b = x < 0.0
    if any(a) {
        a = a
        b = b == (sum(x) > 0.0)
    }
    return a
}

fn k(x: f32[k]) {
    v1 = relu(x)
    v3 = v1 * 2.0
    for q in range(1) {
        v1 = v1 - v3
    }
    return v1
}

fn u(x: f32[m, m]) {
    c = 0
    v = zeros((m,), dtype=f32)
    for q in range(1) {
        v[q] = c
    }
    return sum(x, axis=0)
}
"""


def test_loops_and_branches_build_on_c():
    m = compile_for(DEAD_IN_BRANCH, "c")
    x = np.array([1.0, 2.0, -3.0], np.float32)
    assert_same(m.g(x), x[::-1])
    y = np.array([0.5, -1.0, 2.0])
    assert_same(m.h(y), y > 0)
    assert_same(m.k(x), -np.maximum(x, 0))
    assert_same(m.u(np.ones((2, 2), np.float32)), np.full(2, 2.0, np.float32))


# 5. An indexed update whose result nothing reads, with a run-time index out of range: the reference (numpy)
#    raises "take: an index is out of range", as NumPy does; c and opencl return without an error (a read
#    `y = z[i]` that nothing uses raises on every target). Found as a missing error on c (seed 202).
DEAD_UPDATE = """
fn g(x: f32[n], z: f32[k], i: i32) {
    z[i] = 1.0
    return x
}
"""


def test_unused_update_still_checks_its_index(compiled_target):
    m = compile_for(DEAD_UPDATE, compiled_target)
    with pytest.raises(tdsl.TdslRuntimeError, match="out of range"):
        m.g(np.ones(2, np.float32), np.zeros(2, np.float32), np.int32(4))


# 6. A wrong answer on c: in a loop, a branch that rebinds a carried value from v (c = c + any(q >= v)) and
#    writes v[0, L:L + 1] (a run-time slice after an integer): the write is lost on c ([[0.5, 0.75], ...]);
#    numpy and opencl give [[0.5, 0.0], ...]. With a static slice v[0, 1:2], or without the rebinding of c,
#    c is right. Found as "wrong on c" (seed 707).
LOST_WRITE = """
fn g(x: f64[2], out0: f64[2, n], L: i64) {
    c = zeros_like(x)
    v = zeros((n, 2), dtype=f64)
    v[0] = x
    for q in range(1, n) {
        if all(c < 1.0) {
            c = c + f64(any(q >= v))
            v[0, L:L + 1] = 0.0
        }
    }
    return v
}
"""


def test_write_in_a_branch_in_a_loop_is_kept_on_c():
    m = compile_for(LOST_WRITE, "c")
    assert_same(m.g(np.array([0.5, 0.75]), np.zeros((2, 2)), 1), np.array([[0.5, 0.0], [0.0, 0.0]]))


# 7. The condition of an if whose body has no effect (empty, or binding only names nothing reads) is never
#    evaluated, so its call-time error is skipped on every target: x[i] with i = 5 of 2 elements returns x
#    where Python with NumPy raises (85d1b13 runs a block that can fail; here the condition can). Found as
#    "missing-error on numpy, c" (seed 707).
UNUSED_BRANCH_CONDITION = """
fn g(x: f64[m], i: i64) {
    if x[i] > 0.0 {
        y = 1.0
    }
    return x
}
"""


def test_condition_of_an_if_without_effect_still_raises(target):
    m = compile_for(UNUSED_BRANCH_CONDITION, target)
    with pytest.raises(tdsl.TdslRuntimeError, match="out of range"):
        m.g(np.array([1.0, 2.0]), 5)


# 8. A weak value that a loop makes strong (s = 0.0; s += f64(...) in the body) is f64 after the loop, and
#    returned alone it is; but in arithmetic after the loop it still promotes as a weak value: s * z with z:
#    f32[m] is f32 on every target, where NumPy, and the same statements without the loop, give f64. AVOID
#    key: weak-carried-stays-weak-after-loop (the generator reads no such name after its loop).
WEAK_AFTER_LOOP = """
fn g(x: f32[m], z: f32[m]) {
    s = 0.0
    for q in range(2) {
        s += f64(sum(x))
    }
    return s * z
}
"""


def test_weak_value_made_strong_by_a_loop_is_strong_after_it(target):
    m = compile_for(WEAK_AFTER_LOOP, target)
    x = np.ones(2, np.float32)
    assert_same(m.g(x, x), np.full(2, 4.0))   # f64, as NumPy's np.float64(4.0) * x


# 9. (What 054074d left of the weak-carried finding.) A weak value carried by a loop (s = 0.0, f32 from the
#    body's s += f32(...)) read through a function before its rebinding, in the rebinding of another carried
#    value: z = abs(s) + z is typed with s still weak, abs(weak) is a strong f64, and the program is refused
#    ("'z' is carried by the for loop: it is f32[n] before it but f64[n] here"). Inside the body s is f32 (the
#    contract: it takes the dtype the body gives it), so z stays f32. AVOID key:
#    weak-carried-read-before-rebound (the generator then rebinds such a value first in the body).
WEAK_CARRIED_THROUGH_A_FUNCTION = """
fn g(x: f32[n], z: f32[n]) {
    s = 0.0
    for i in range(2) {
        z = abs(s) + z
        s += f32(sum(x))
    }
    return z
}
"""


def test_weak_carried_value_read_through_a_function(target):
    m = compile_for(WEAK_CARRIED_THROUGH_A_FUNCTION, target)
    x = np.ones(3, np.float32)
    assert_same(m.g(x, x), np.full(3, 4.0, np.float32))   # 1 + |0| + |3|


# 10. (After c86300d.) In a loop where a weak carried value (e = 1.0) is read through a function in another
#     carried value's rebinding (x2 -= abs(e)), a third weak carried value (c = 0; c = c + 1, weak all along)
#     comes out of the loop as an i32, so a second loop that makes c an f32 is refused ("'c' is carried by
#     the for loop: it is i32 before it but f64 here"). Without the x2 line it runs and gives 4.0 (f32).
#     Found as "rejected on numpy" (seed 1111).
WEAK_COUNTER_AFTER_LOOP = """
fn g(x1: f32[1], x2: f32[m]) {
    e = 1.0
    c = 0
    for q in range(2) {
        x2 -= abs(e)
        e += f32(sum(x1))
        c = c + 1
    }
    for q in range(2) {
        c += f32(sum(x1))
    }
    return c
}
"""


def test_weak_counter_stays_weak_beside_a_weak_carried_value_read_through_a_function(target):
    m = compile_for(WEAK_COUNTER_AFTER_LOOP, target)
    assert_same(m.g(np.ones(1, np.float32), np.ones(2, np.float32)), np.float32(4.0))


# 11. (Section 12, tests/fuzz/sec12.py; seed 701, `--sec12 1.0 --control 0.7`.) A loop body that rebinds a
#     carried value to a scatter_add into itself with itself as the values, x = scatter_add(x, i, x), on c and
#     opencl: the scatter runs in place (lang/graph.py, in_place_results, since 5f1fbfa) and later additions read
#     values the earlier ones already changed. The users count there takes each node's inputs once
#     (dict.fromkeys(n.inputs)), so x, read twice by the scatter, counts as one reader. Expected NumPy's
#     out = x.copy(); np.add.at(out, i, x): [6, 3, 3]; c and opencl give [7, 3, 3] (x[1] += x[0] gives 3,
#     then x[0] += x[1] adds that 3, not 2). The reference interpreter and the same scatter outside a loop are
#     right. AVOID key: scatter-add-values-alias-carried (the generator then takes other values).
SCATTER_INTO_ITSELF = """
fn g(x: f64[m], i: i64[m]) {
    for q in range(1) {
        x = scatter_add(x, i, x)
    }
    return x
}
"""


def test_scatter_add_of_a_carried_value_into_itself(compiled_target):
    m = compile_for(SCATTER_INTO_ITSELF, compiled_target)
    x = np.array([1.0, 2.0, 3.0])
    i = np.array([1, 0, 0])
    assert_same(m.g(x, i), np.array([6.0, 3.0, 3.0]))


def test_scatter_add_of_a_carried_value_into_itself_reference():
    m = compile_for(SCATTER_INTO_ITSELF, "numpy")
    assert_same(m.g(np.array([1.0, 2.0, 3.0]), np.array([1, 0, 0])), np.array([6.0, 3.0, 3.0]))


# 12. (Section 12; seed 503, `--sec12 1.0 --large 0.25`.) On c, take_along_axis of a keepdims reduction (sum,
#     argmax, ... over an axis, kept as length 1) does not check its indices: an index 1 into that axis of
#     length 1 returns the reduced value (sum: [[1.0, 1.0]]) where numpy and opencl raise "index 1 is out of
#     range for an axis of length 1" (the contract: an index out of range is a call-time error). The same
#     gather of zeros((k, 1)), of a parameter or of x * 2.0 raises; the producer being a reduction is what
#     loses the check, for take(sum(x, axis=1, keepdims=true), i, axis=1) too, for a reduction over a longer
#     axis (x: f32[k, 3]) and when the sum is also used elsewhere. Probably codegen/lower.py take/take_along:
#     the reduction's value at the gathered position does not read it, and no Check keeps the range check.
#     Not in AVOID.
GATHER_OF_A_REDUCTION = """
fn g(x: f32[k, 1], i: i64[k, n]) {
    return take_along_axis(sum(x, axis=1, keepdims=true), i, -1)
}

fn h(x: f32[k, 3], i: i64[n]) {
    return take(sum(x, axis=1, keepdims=true), i, axis=1)
}
"""


def test_gather_of_a_keepdims_reduction_checks_its_indices(target):
    # c gave [[1.0, 1.0]] and [[3.0, 3.0]]: the fuse pass kept the reduction's row in a local and
    # dropped the gathered index (codegen/fuse.py _same_row now refuses a gathered offset)
    m = compile_for(GATHER_OF_A_REDUCTION, target)
    with pytest.raises(tdsl.TdslError, match="out of range"):
        m.g(np.ones((1, 1), np.float32), np.array([[0, 1]]))
    with pytest.raises(tdsl.TdslError, match="out of range"):
        m.h(np.ones((1, 3), np.float32), np.array([0, 1]))


CONST_INTO_LOOP = """
fn h(x: f32[3], n: i64) -> f32[3] {
    v = [1.0, 2.0, 3.0]
    for i in range(n) {
        v = v * 2.0 + x
    }
    return v
}

fn g(x: f32[k], b: bool[1, 1]) -> bool[1, 1] {
    v = b
    v[0, 0] = true
    if all(x[2:] <= 2.5) {
        for q in range(1) {
            v = v
        }
    }
    return b
}
"""


def test_a_constant_array_as_a_loops_first_value(target):
    """A loop or branch whose input is a constant array (the OpenCL host plan raised KeyError 'const')."""
    m = compile_for(CONST_INTO_LOOP, target)
    assert_same(m.h(np.ones(3, np.float32), 2), np.array([7.0, 11.0, 15.0], np.float32))
    assert_same(m.h(np.ones(3, np.float32), 0), np.array([1.0, 2.0, 3.0], np.float32))
    assert_same(m.g(np.arange(5, dtype=np.float32), np.array([[False]])), np.array([[False]]))
