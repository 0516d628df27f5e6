"""Section 11 of the contract: for / while / if, indexed updates, augmented assignment,
run-time indices and slices, and the carried / local name rules.

Every result is checked against the same computation written with NumPy and a Python loop;
every compile error against its line and column. Programs are grouped into a few sources,
each compiled once per target (conftest.compiled memoizes), so the file stays fast when the
compiled targets join CONTROL_TARGETS.
"""
from __future__ import annotations

import numpy as np
import pytest

import tdsl
from conftest import TARGETS, assert_same, compiled, require_target

# the targets that run control flow; the compiled ones join when they implement section 11
CONTROL_TARGETS = TARGETS
on_targets = pytest.mark.parametrize("target", CONTROL_TARGETS)

rng = np.random.default_rng(11)


def fn(source: str, name: str, target: str):
    """The function `name` of `source`, compiled once per session for `target`."""
    require_target(target)
    return getattr(compiled(source, target), name)


def place(src: str, snippet: str, occurrence: int = 0) -> tuple[int, int]:
    """1-based (line, column) of the `occurrence`-th `snippet` in `src`."""
    pos = -1
    for _ in range(occurrence + 1):
        pos = src.index(snippet, pos + 1)
    return src.count("\n", 0, pos) + 1, pos - (src.rfind("\n", 0, pos) + 1) + 1


def compile_error(src: str, target: str, at: str, *fragments: str, occurrence: int = 0,
                  kind=tdsl.TdslTypeError) -> tdsl.TdslError:
    """`src` fails to compile with `kind` at the snippet `at`, the message holding `fragments`."""
    require_target(target)
    with pytest.raises(kind) as info:
        tdsl.compile(src, target=target, filename="prog.tdsl")
    err = info.value
    assert err.loc is not None, f"no location on: {err}"
    assert (err.loc.line, err.loc.col) == place(src, at, occurrence), str(err)
    assert str(err).startswith(f"prog.tdsl:{err.loc.line}:{err.loc.col}: error: ")
    for fragment in fragments:
        assert fragment in err.message, f"{fragment!r} not in: {err}"
    return err


def runtime_error(call, src: str, at: str, *fragments: str, occurrence: int = 0) -> tdsl.TdslError:
    """`call()` fails at call time with an error on the line of `at`, holding `fragments`."""
    with pytest.raises(tdsl.TdslRuntimeError) as info:
        call()
    err = info.value
    assert err.loc is not None, f"no location on: {err}"
    assert err.loc.line == place(src, at, occurrence)[0], str(err)
    for fragment in fragments:
        assert fragment in str(err), f"{fragment!r} not in: {err}"
    return err


def f32(*shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def f64(*shape) -> np.ndarray:
    return rng.standard_normal(shape)


# -- for loops ----------------------------------------------------------------------------

FOR = """\
const BACK = -2
const THREE = 3
const ZERO = 0.0

fn total(x: f32[n]) {
    s = 0.0
    for i in range(n) {
        s = s + x[i]
    }
    return s
}

fn between(x: f32[n], a: i64, b: i64) {
    s = 0.0
    for i in range(a, b) { s += x[i] * i }
    return s
}

fn stepped(x: f32[n], a: i64, b: i64) -> f32 {
    s = 0.0
    for i in range(a, b, 3) { s = s + x[i] }
    return s
}

fn backwards(x: f32[n]) -> (f32[n], i64) {
    y = zeros(n, dtype=f32)
    k = 0
    for i in range(n - 1, -1, BACK) {
        y[i] = x[i] * k
        k = k + 1
    }
    return y, k
}

fn down(x: f32[n], a: i64, b: i64) -> f32[n] {
    y = zeros_like(x)
    for i in range(a, b, -1) { y[i] += 1 }
    return y
}

fn from_sizes(x: f32[n, m]) -> f32 {
    s = 0.0
    for i in range(n // 2, n) {
        for j in range(1, m - 1, THREE) { s = s + x[i, j] }
    }
    return s
}

fn computed(x: f32[n], a: i32) -> f32 {
    s = 0.0
    for i in range(a * 2 - 1) { s += x[i] }
    for i in range(sum(i64(x > 0.0))) { s += 100.0 }
    return s
}

fn const_bounds(x: f32[n]) {
    s = ZERO
    for i in range(THREE, n) { s += x[i] }
    p = x[0]
    for i in range(THREE) { p *= x[i] }
    return s, p
}

fn nested(x: f32[n, m]) -> f32[n, m] {
    y = zeros_like(x)
    for i in range(n) {
        for j in range(i, m) {
            y[i, j] = x[i, j] * i + j
        }
    }
    return y
}

fn weak_index(x: f32[n], a: i64, b: i64) {
    y = x
    for i in range(n) { y = y * i + 0.5 * i }
    z = x
    for i in range(a, b) { z = z * i - i }
    return y, z
}

fn prefix(x: f32[n]) -> (f32[n], f32[n], f32[n]) {
    y = zeros_like(x)
    for i in range(n) { y[i] = sum(x[:i + 1]) }
    z = zeros_like(x)
    for i in range(n) { z[i - 1] = x[i] }
    w = x
    for i in range(1, n) { w[i] += w[i - 1] }
    return y, z, w
}

fn shifted(x: f32[n]) -> (f32, f32, f32, f32[n]) {
    a = 0.0
    for i in range(1, n) { a += sum(x[:i - 1]) * 10.0 + sum(x[i - 1:]) }
    b = 0.0
    for i in range(1, n) {
        for j in range(i - 1, n) { b += x[j] * j }
    }
    c = 0.0
    for i in range(n - 1, 0, -1) { c += sum(x[i - 1:n - 1]) * i }
    y = zeros_like(x)
    for i in range(2, n) { y[i] = x[i - 2] + x[(i - 2) // 2] }
    return a, b, c, y
}

fn horner(c: f64[n], t: f64) {
    p = 0.0
    for i in range(n - 1, -1, -1) { p = p * t + c[i] }
    return p
}

fn untouched(x: f32[n], a: i64) -> (f32[n], f32, i64) {
    y = x
    s = x[0]
    k = 7
    for i in range(a) {
        y = y * 2.0
        s = s + 1.0
        k = k + i
    }
    return y, s, k
}

fn index_rebound(x: f32[n]) {
    c = 0
    for i in range(n) {
        i = i * 2
        c += i
    }
    return c
}
"""


def np_between(x, a, b):
    s = np.float32(0)
    for i in range(a, b):
        s = np.float32(s + x[i] * np.float32(i))
    return s


@on_targets
@pytest.mark.parametrize("size", [0, 1, 7])
def test_for_range_stop(target, size):
    x = f32(size)
    got = fn(FOR, "total", target)(x)
    expected = np.float32(0)
    for i in range(size):
        expected = expected + x[i]
    assert_same(got, np.float32(expected))  # the weak `s = 0.0` carries an f32, as NumPy's sum would


@on_targets
@pytest.mark.parametrize("a, b", [(1, 4), (0, 6), (4, 1), (3, 3), (-3, 2), (-6, -1)])
def test_for_range_start_stop(target, a, b):
    x = f32(6)
    assert_same(fn(FOR, "between", target)(x, a, b), np_between(x, a, b))


@on_targets
@pytest.mark.parametrize("a, b", [(0, 10), (1, 10), (2, 3), (5, 5), (9, 0), (-10, -1)])
def test_for_range_step(target, a, b):
    x = f32(10)
    expected = np.float32(0)
    for i in range(a, b, 3):
        expected = np.float32(expected + x[i])
    assert_same(fn(FOR, "stepped", target)(x, a, b), expected)


@on_targets
@pytest.mark.parametrize("size", [0, 1, 5, 6])
def test_for_negative_const_step(target, size):
    x = f32(size)
    y, k = np.zeros(size, np.float32), 0
    for i in range(size - 1, -1, -2):
        y[i] = x[i] * k
        k += 1
    assert_same(fn(FOR, "backwards", target)(x), (y, np.int64(k)))


@on_targets
@pytest.mark.parametrize("a, b", [(2, -3), (5, -1), (5, -7), (0, 0), (-1, -6), (-2, 3)])
def test_for_negative_step_counts_from_the_end(target, a, b):
    x = f32(6)
    y = np.zeros(6, np.float32)
    for i in range(a, b, -1):
        y[i] += 1
    assert_same(fn(FOR, "down", target)(x, a, b), y)


@on_targets
@pytest.mark.parametrize("shape", [(5, 9), (1, 2), (4, 8), (0, 3)])
def test_for_bounds_from_sizes_and_const_step(target, shape):
    x = f32(*shape)
    n, m = shape
    s = np.float32(0)
    for i in range(n // 2, n):
        for j in range(1, m - 1, 3):
            s = np.float32(s + x[i, j])
    assert_same(fn(FOR, "from_sizes", target)(x), s)


@on_targets
@pytest.mark.parametrize("a", [0, 1, 3])
def test_for_bounds_computed_from_parameters(target, a):
    x = f32(6)
    s = np.float32(0)
    for i in range(a * 2 - 1):
        s = np.float32(s + x[i])
    for _ in range(int(np.sum(x > 0))):
        s = np.float32(s + 100)
    assert_same(fn(FOR, "computed", target)(x, np.int32(a)), s)


@on_targets
def test_for_const_bounds_and_weak_const_start(target):
    x = f32(7)
    s = np.float32(0)
    for i in range(3, 7):
        s = np.float32(s + x[i])
    p = x[0]
    for i in range(3):
        p = p * x[i]
    got = fn(FOR, "const_bounds", target)(x)
    assert_same(got, (s, p))   # the weak const ZERO carries an f32, as a literal does


@on_targets
def test_nested_loops(target):
    x = f32(4, 6)
    y = np.zeros_like(x)
    for i in range(4):
        for j in range(i, 6):
            y[i, j] = x[i, j] * i + j
    assert_same(fn(FOR, "nested", target)(x), y)


@on_targets
def test_loop_index_is_a_weak_integer(target):
    # x_f32 * i stays f32, for an index that is a size (range(n)) and one that may be negative
    x = f32(5)
    y, z = x.copy(), x.copy()
    for i in range(5):
        y = y * i + 0.5 * i
    for i in range(-2, 3):
        z = z * i - i
    got = fn(FOR, "weak_index", target)(x, -2, 3)
    assert_same(got, (y, z))
    assert got[0].dtype == np.float32 and got[1].dtype == np.float32


@on_targets
def test_loop_index_in_subscripts(target):
    x = f32(6)
    y = np.array([x[:i + 1].sum() for i in range(6)], np.float32)
    z = np.zeros_like(x)
    for i in range(6):
        z[i - 1] = x[i]        # i - 1 == -1 counts from the end, as NumPy
    w = x.copy()
    for i in range(1, 6):
        w[i] += w[i - 1]
    assert_same(fn(FOR, "prefix", target)(x), (y, z, w))


@on_targets
@pytest.mark.parametrize("size", [0, 1, 2, 7])
def test_slices_by_the_loop_index_minus_its_start(target, size):
    # in range(1, n) the index is at least 1, so x[:i - 1] and x[i - 1:] are slices whose length is
    # a dim expression (in range(n), i - 1 may be -1 and x[:i - 1] is refused, below)
    x = f32(size)
    a = b = c = np.float32(0)
    for i in range(1, size):
        a = np.float32(a + x[:i - 1].sum(dtype=np.float32) * 10 + x[i - 1:].sum(dtype=np.float32))
    for i in range(1, size):
        for j in range(i - 1, size):
            b = np.float32(b + x[j] * j)
    for i in range(size - 1, 0, -1):
        c = np.float32(c + x[i - 1:size - 1].sum(dtype=np.float32) * i)
    y = np.zeros_like(x)
    for i in range(2, size):
        y[i] = x[i - 2] + x[(i - 2) // 2]
    assert_same(fn(FOR, "shifted", target)(x), (a, b, c, y))


@on_targets
@pytest.mark.parametrize("size", [0, 1, 4])
def test_for_horner(target, size):
    c, t = f64(size), 0.7
    p = 0.0
    for i in range(size - 1, -1, -1):
        p = p * t + c[i]
    assert_same(fn(FOR, "horner", target)(c, t), np.float64(p))


@on_targets
@pytest.mark.parametrize("a", [0, -3, 4])
def test_zero_iterations_leave_everything_as_it_was(target, a):
    x = f32(3)
    y, s, k = x.copy(), x[0], 7
    for i in range(a):
        y, s, k = y * np.float32(2), np.float32(s + 1), k + i
    assert_same(fn(FOR, "untouched", target)(x, a), (y, np.float32(s), np.int64(k)))


@on_targets
def test_rebinding_the_index_does_not_change_the_iteration(target):
    c = 0
    for i in range(5):
        i = i * 2
        c += i
    assert_same(fn(FOR, "index_rebound", target)(f32(5)), np.int64(c))


CONST_LOOPS = """\
fn counted() -> i64 {
    c = 0
    for i in range(3) { c += i }
    return c
}

fn halved() -> i64 {
    c = 1000
    while c > 1 { c = c // 3 }
    return c
}

fn chosen() -> i64 {
    c = 0
    if true { c = 1 }
    return c
}
"""


@on_targets
def test_loops_over_literals_only(target):
    assert_same(fn(CONST_LOOPS, "counted", target)(), np.int64(3))
    assert_same(fn(CONST_LOOPS, "halved", target)(), np.int64(1))
    assert_same(fn(CONST_LOOPS, "chosen", target)(), np.int64(1))


# -- carried values ----------------------------------------------------------------------

CARRIED = """\
fn weak_int(x: i32[n]) {
    s = 0
    for i in range(n) { s = s + x[i] }
    return s
}

fn weak_float_int(x: i32[n]) {
    s = 0.5
    for i in range(n) { s = s + x[i] }
    return s
}

fn int_to_float(x: i32[n]) {
    s = 0
    for i in range(n) { s = s + 0.5 }
    return s
}

fn size_start(x: f32[n]) {
    s = n
    for i in range(n) { s = s + x[i] }
    return s
}

fn array_carry(x: f32[n, m]) {
    acc = zeros(m)
    for i in range(n) { acc = acc + x[i] }
    return acc
}

fn several(x: f64[n]) -> (f64, f64, i64) {
    lo = x[0]
    hi = x[0]
    at = 0
    for i in range(1, n) {
        if x[i] < lo { lo = x[i] }
        if x[i] > hi {
            hi = x[i]
            at = i
        }
    }
    return lo, hi, at
}
"""


@on_targets
def test_weak_carried_values_adapt_as_numpy(target):
    xi = np.arange(-3, 4, dtype=np.int32)
    xf = f32(5)
    # NumPy: a Python scalar meets the body's array scalars (NEP 50)
    s = 0
    for v in xi:
        s = s + v
    assert_same(fn(CARRIED, "weak_int", target)(xi), np.int32(s))
    s = 0.5
    for v in xi:
        s = s + v
    assert_same(fn(CARRIED, "weak_float_int", target)(xi), np.float64(s))
    assert_same(fn(CARRIED, "int_to_float", target)(xi), np.float64(0.5 * len(xi)))
    s = 5
    for v in xf:
        s = s + v
    assert_same(fn(CARRIED, "size_start", target)(xf), np.float32(s))


@on_targets
def test_carried_arrays_and_several_names(target):
    x = f32(4, 3)
    acc = np.zeros(3)
    for i in range(4):
        acc = acc + x[i]      # f64 zeros + f32 row: f64
    assert_same(fn(CARRIED, "array_carry", target)(x), acc)
    v = f64(9)
    assert_same(fn(CARRIED, "several", target)(v), (v.min(), v.max(), np.int64(np.argmax(v))))


SHADOWED = """\
const K = 2

fn size_in_for(x: f32[n]) -> (i64, f32[n]) {
    for i in range(3) { n = n + 1 }
    return n, x * n
}

fn size_in_while(x: f32[n]) -> i64 {
    while n < 10 { n = n + 1 }
    return n
}

fn size_in_if(x: f32[n], c: bool) -> i64 {
    if c { n = n * 2 }
    return n
}

fn const_in_for(x: f32[n]) {
    for i in range(n) { K = K * 2.5 }
    return K
}
"""


@on_targets
@pytest.mark.parametrize("size", [0, 3, 12])
def test_rebound_sizes_and_consts_are_carried(target, size):
    # a size variable or a const rebound in a block is carried out of it, as a Python name is
    x = f32(size)
    assert_same(fn(SHADOWED, "size_in_for", target)(x), (np.int64(size + 3), x * np.float32(size + 3)))
    assert_same(fn(SHADOWED, "size_in_while", target)(x), np.int64(max(size, 10)))
    assert_same(fn(SHADOWED, "size_in_if", target)(x, True), np.int64(2 * size))
    assert_same(fn(SHADOWED, "size_in_if", target)(x, False), np.int64(size))
    assert_same(fn(SHADOWED, "const_in_for", target)(x), np.float64(2 * 2.5 ** size))


# -- while loops -------------------------------------------------------------------------

WHILE = """\
fn newton(a: f64, tol: f64) -> (f64, i64) {
    x = a
    steps = 0
    while abs(x * x - a) > tol {
        x = 0.5 * (x + a / x)
        steps += 1
    }
    return x, steps
}

fn halvings(x: f32[n]) -> i64 {
    c = 0
    h = n
    while h > 1 {
        h = h // 2
        c += 1
    }
    return c
}

fn first_above(x: f32[n], t: f32) -> i64 {
    i = 0
    while i < n and x[minimum(i, n - 1)] <= t {
        i += 1
    }
    return i
}

fn never(x: f32[n], go: bool) -> f32[n] {
    y = x
    while go and false { y = y + 1.0 }
    return y
}

fn triangle(k: i64) -> (i64, i64) {
    total = 0
    rounds = 0
    while k > 0 {
        for i in range(k) { total += i }
        k -= 1
        rounds += 1
    }
    return total, rounds
}

fn captured(x: f32[n], a: f32) -> f32[n] {
    y = x
    k = 0
    while k < 3 {
        y = y * a + x
        k += 1
    }
    return y
}
"""


@on_targets
@pytest.mark.parametrize("a", [2.0, 0.25, 1.0, 1e6])
def test_while_newton(target, a):
    x, steps = a, 0
    while abs(x * x - a) > 1e-9:
        x = 0.5 * (x + a / x)
        steps += 1
    assert_same(fn(WHILE, "newton", target)(a, 1e-9), (np.float64(x), np.int64(steps)))


@on_targets
@pytest.mark.parametrize("size", [0, 1, 2, 37, 64])
def test_while_halving(target, size):
    c, h = 0, size
    while h > 1:
        h, c = h // 2, c + 1
    assert_same(fn(WHILE, "halvings", target)(f32(size)), np.int64(c))


@on_targets
@pytest.mark.parametrize("k", [-1, 0, 1, 5])
def test_loops_in_a_while(target, k):
    given, total, rounds = k, 0, 0
    while k > 0:
        for i in range(k):
            total += i
        k -= 1
        rounds += 1
    assert_same(fn(WHILE, "triangle", target)(given), (np.int64(total), np.int64(rounds)))


@on_targets
def test_while_scan_and_no_iteration(target):
    x = np.array([0.1, -1, 0.4, 2.5, 0.3], np.float32)
    for t in (0.5, -2.0, 3.0):
        i = 0
        while i < 5 and x[i] <= t:
            i += 1
        assert_same(fn(WHILE, "first_above", target)(x, t), np.int64(i))
    assert_same(fn(WHILE, "never", target)(x, True), x)
    assert_same(fn(WHILE, "captured", target)(x, np.float32(0.5)),
                ((x * np.float32(0.5) + x) * np.float32(0.5) + x) * np.float32(0.5) + x)


# -- if / else -------------------------------------------------------------------------------

IF = """\
fn chain(x: f32[n], j: i64) -> f32 {
    if j < 0 {
        r = -1.0
    } else if j < n {
        r = x[j]
    } else if j < 2 * n {
        r = x[j - n] * 2.0
    } else {
        r = 0.0
    }
    return r
}

fn taken_only(x: f32[n], j: i64) -> f32 {
    y = x[0]
    if j < n and j >= -n { y = x[j] } else { y = -x[0] }
    return y
}

fn sizes_checked_when_taken(x: f32[n], z: f32[m], c: bool) -> f32 {
    y = x[0]
    if c { y = x[m - 1] }
    return y
}

fn loop_not_run(x: f32[n], a: i64) -> f32 {
    y = x[0]
    for i in range(a) { y = x[i + n] }
    return y
}

fn keeps(x: f32[n], c: bool) -> (f32[n], f32) {
    y = x
    s = x[0]
    if c { y = y * 2.0 } else { s = s - 1.0 }
    return y, s
}

fn no_else(x: f32[n], c: bool) -> f32[n] {
    y = x
    if c { y = -y }
    return y
}

fn weak_branch(x: f32[n], c: bool) {
    if c { s = x[0] } else { s = 1 }
    t = 0.0
    if c { t = x[1] }
    return s, t
}

fn nested_if(x: f64[n], a: f64) -> i64 {
    if a > 0.0 {
        if a > 10.0 { k = 2 } else { k = 1 }
    } else {
        k = 0
        if a < -10.0 { k = -1 }
    }
    return k
}

fn in_loop(x: f32[n]) -> (f32, f32) {
    pos = 0.0
    neg = 0.0
    for i in range(n) {
        if x[i] > 0.0 { pos += x[i] } else { neg += x[i] }
    }
    return pos, neg
}
"""


@on_targets
@pytest.mark.parametrize("j", [-5, 0, 3, 5, 6, 9, 11, 12, 40])
def test_else_if_chain(target, j):
    x = f32(6)
    if j < 0:
        r = -1.0
    elif j < 6:
        r = x[j]
    elif j < 12:
        r = x[j - 6] * 2
    else:
        r = 0.0
    assert_same(fn(IF, "chain", target)(x, j), np.float32(r))


@on_targets
@pytest.mark.parametrize("j", [2, -6, 6, 100, -7])
def test_only_the_taken_branch_runs(target, j):
    # x[j] is out of range in the untaken branch: it must not raise
    x = f32(6)
    expected = x[j] if -6 <= j < 6 else -x[0]
    assert_same(fn(IF, "taken_only", target)(x, j), expected)


@on_targets
def test_untaken_branch_and_loop_checks_do_not_run(target):
    src = IF
    x = f32(4)
    call = fn(src, "sizes_checked_when_taken", target)
    assert_same(call(x, f32(9), False), x[0])           # x[m - 1] with m = 9: not taken
    assert_same(call(x, f32(3), True), x[2])
    runtime_error(lambda: call(x, f32(9), True), src, "y = x[m - 1]", "m = 9")
    loop = fn(src, "loop_not_run", target)
    assert_same(loop(x, 0), x[0])                        # x[i + n] in a body that never runs
    assert_same(loop(x, -2), x[0])
    runtime_error(lambda: loop(x, 1), src, "y = x[i + n]", "i = 0")


@on_targets
@pytest.mark.parametrize("c", [True, False])
def test_names_not_rebound_keep_their_value(target, c):
    x = f32(3)
    y, s = (x * 2, x[0]) if c else (x, x[0] - 1)
    assert_same(fn(IF, "keeps", target)(x, c), (y, np.float32(s)))
    assert_same(fn(IF, "no_else", target)(x, c), -x if c else x)


@on_targets
@pytest.mark.parametrize("c", [True, False])
def test_weak_values_in_branches_adapt(target, c):
    x = f32(3)
    s, t = fn(IF, "weak_branch", target)(x, c)
    assert_same((s, t), (x[0] if c else np.float32(1), x[1] if c else np.float32(0)))


@on_targets
@pytest.mark.parametrize("a", [20.0, 5.0, 0.0, -5.0, -20.0])
def test_nested_branches(target, a):
    if a > 0:
        k = 2 if a > 10 else 1
    else:
        k = -1 if a < -10 else 0
    assert_same(fn(IF, "nested_if", target)(f64(2), a), np.int64(k))


@on_targets
def test_branch_in_a_loop(target):
    x = f32(11)
    pos = neg = np.float32(0)
    for v in x:
        if v > 0:
            pos = np.float32(pos + v)
        else:
            neg = np.float32(neg + v)
    assert_same(fn(IF, "in_loop", target)(x), (pos, neg))


SORTS = """\
fn bubble(x: f32[n]) -> f32[n] {
    y = x
    for i in range(n) {
        for j in range(n - 1 - i) {
            if y[j] > y[j + 1] {
                t = y[j]
                y[j] = y[j + 1]
                y[j + 1] = t
            }
        }
    }
    return y
}

fn insertion(x: f32[n]) -> f32[n] {
    y = x
    for i in range(1, n) {
        key = y[i]
        j = i - 1
        while j >= 0 and y[j] > key {
            y[j + 1] = y[j]
            j -= 1
        }
        y[j + 1] = key
    }
    return y
}
"""


@on_targets
@pytest.mark.parametrize("size", [0, 1, 2, 9, 24])
def test_sorting_with_loops_branches_and_updates(target, size):
    # every construct at once: nested for, a while whose condition reads the array it updates,
    # if in a loop, and updates at indices computed from loop variables
    x = f32(size)
    x[size // 2:size // 2 + 2] = 0.5      # ties
    assert_same(fn(SORTS, "bubble", target)(x), np.sort(x))
    assert_same(fn(SORTS, "insertion", target)(x), np.sort(x))


LU = """\
fn lu(a: f64[n, n]) -> (f64[n, n], f64[n, n]) {
    u = a
    l = eye(n)
    for i in range(n) {
        for j in range(i + 1, n) {
            f = u[j, i] / u[i, i]
            l[j, i] = f
            u[j, i:] -= f * u[i, i:]
        }
    }
    return l, u
}

fn solve_lower(l: f64[n, n], b: f64[n]) -> f64[n] {
    y = zeros(n)
    for i in range(n) {
        y[i] = (b[i] - sum(l[i, :i] * y[:i])) / l[i, i]
    }
    return y
}

fn solve_upper(u: f64[n, n], y: f64[n]) -> f64[n] {
    x = zeros(n)
    for i in range(n - 1, -1, -1) {
        x[i] = (y[i] - sum(u[i, i + 1:] * x[i + 1:])) / u[i, i]
    }
    return x
}
"""


@on_targets
@pytest.mark.parametrize("size", [1, 2, 6])
def test_lu_and_triangular_solves(target, size):
    # slices whose bounds move with the loop index (u[j, i:], l[i, :i], x[i + 1:]), updates of
    # rows and single elements in nested loops, and a loop counting down
    a = f64(size, size) + size * np.eye(size)
    b = f64(size)
    el, u = np.eye(size), a.copy()
    for i in range(size):
        for j in range(i + 1, size):
            f = u[j, i] / u[i, i]
            el[j, i] = f
            u[j, i:] -= f * u[i, i:]
    got_l, got_u = fn(LU, "lu", target)(a)
    assert_same((got_l, got_u), (el, u))
    y = fn(LU, "solve_lower", target)(got_l, b)
    x = fn(LU, "solve_upper", target)(got_u, y)
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-10)


# -- indexed updates and augmented assignment ------------------------------------------------

UPDATES = """\
fn basic(x: f32[n, m], i: i64, j: i64) -> f32[n, m] {
    y = x
    y[i] = 1.5
    y[1:3] = y[0] * 2.0
    y[:, j] = x[:, 0] * 2.0
    y[i, 1:3] += 0.25
    y[-1, ::2] -= 3
    y[..., 0] *= 4
    y[1, None, 1:] /= 8.0
    return y
}

fn scatter(x: f32[n], idx: i64[k], v: f32[k]) -> (f32[n], f32[n], f32[n]) {
    a = x
    a[idx] = v
    b = x
    b[idx] += v
    c = x
    c[idx] *= 2
    return a, b, c
}

fn scatter_rows(x: f32[n, m], idx: i64[k], v: f32[k, m]) -> (f32[n, m], f32[n, m], f32[n, m]) {
    a = x
    a[idx] = v
    b = x
    b[idx, 1:] -= 1.0
    c = x
    c[:, idx] = 0.0
    return a, b, c
}

fn names(x: f32[n], y: f32[n], s: f32) -> (f32[n], f32) {
    x += y
    x -= 2 * y
    x *= s
    x /= 4
    s += 1
    s *= s
    return x, s
}

fn ints(x: i32[n]) -> (i32[n], f64[n]) {
    y = x
    y[0] = 7
    y[1:3] += 2
    y[-1] *= -1
    z = x
    z /= 2
    return y, z
}

fn broadcasts(x: f64[n, m, k], r: f64[k], c: f64[m, 1]) -> f64[n, m, k] {
    y = x
    y[0] = r
    y[1] = c
    y[2, 1:] = 0
    y[:, 0, :] += r
    return y
}

fn parameter_updated(x: f32[n], idx: i64[k]) -> f32[n] {
    x[0] = 5
    for i in range(n) {
        x[i] *= 2
        x[idx] += 1.0
    }
    x += 1
    return x
}

fn i32_indices(x: f32[n], idx: i32[k]) -> (f32[n], f32[k]) {
    y = x
    y[idx] = 1.0
    return y, x[idx]
}

fn literal_values(x: i64[n], b: bool[n]) -> (i64[n], bool[n]) {
    x[0] = true
    x[1] = 3
    b[0] = true
    return x, b
}
"""


def np_basic(x, i, j):
    y = x.copy()
    y[i] = 1.5
    y[1:3] = y[0] * np.float32(2)
    y[:, j] = x[:, 0] * np.float32(2)
    y[i, 1:3] += np.float32(0.25)
    y[-1, ::2] -= 3
    y[..., 0] *= 4
    y[1, None, 1:] /= np.float32(8)
    return y


@on_targets
@pytest.mark.parametrize("i, j", [(0, 0), (3, 4), (-1, -2), (-4, -5), (2, 1)])
def test_indexed_updates(target, i, j):
    x = f32(4, 5)
    assert_same(fn(UPDATES, "basic", target)(x, i, j), np_basic(x, i, j))


@on_targets
@pytest.mark.parametrize("idx", [[1, 3, 1, -1], [0, 0, 0], [2], [-5, 4, 0, -5]])
def test_scatter_last_write_wins(target, idx):
    x = f32(5)
    idx = np.array(idx, np.int64)
    v = f32(len(idx))
    a, b, c = x.copy(), x.copy(), x.copy()
    a[idx] = v
    b[idx] += v          # x[s] += v is x[s] = x[s] + v: repeated indices do not accumulate
    c[idx] *= 2
    assert_same(fn(UPDATES, "scatter", target)(x, idx, v), (a, b, c))


@on_targets
def test_scatter_rows_and_columns(target):
    x = f32(4, 3)
    idx = np.array([1, 0, 1, -1], np.int64)
    v = f32(4, 3)
    a, b = x.copy(), x.copy()
    a[idx] = v
    b[idx, 1:] -= 1
    c = x.copy()
    c[:, np.array([1, 0, 1])] = 0
    got = fn(UPDATES, "scatter_rows", target)(x, idx, v)
    assert_same(got[:2], (a, b))
    x3 = f32(4, 4)
    c = x3.copy()
    c[:, idx] = 0
    assert_same(fn(UPDATES, "scatter_rows", target)(x3, idx, f32(4, 4))[2], c)


@on_targets
def test_i32_index_arrays_and_their_range(target):
    x = f32(4)
    idx = np.array([-1, 2, -1], np.int32)
    y = x.copy()
    y[idx] = 1
    call = fn(UPDATES, "i32_indices", target)
    assert_same(call(x, idx), (y, x[idx]))
    for bad in ([-5, 2], [0, 4]):
        runtime_error(lambda: call(x, np.array(bad, np.int32)), UPDATES, "y[idx] = 1.0", "length 4")


@on_targets
def test_augmented_assignment_of_names(target):
    x, y, s = f32(4), f32(4), np.float32(1.5)
    ex = x.copy()
    ex += y
    ex -= 2 * y
    ex *= s
    ex /= 4
    es = s + 1
    es *= es
    assert_same(fn(UPDATES, "names", target)(x, y, s), (ex, es))


@on_targets
def test_integer_updates(target):
    x = np.array([1, 2, 3, 4], np.int32)
    y = x.copy()
    y[0] = 7
    y[1:3] += 2
    y[-1] *= -1
    # `z /= 2` rebinds z to z / 2 (f64), as `z = z / 2` does; NumPy's in-place /= would refuse
    assert_same(fn(UPDATES, "ints", target)(x), (y, x / 2))


@on_targets
def test_update_values_broadcast(target):
    x, r, c = f64(3, 4, 5), f64(5), f64(4, 1)
    y = x.copy()
    y[0] = r
    y[1] = c
    y[2, 1:] = 0
    y[:, 0, :] += r
    assert_same(fn(UPDATES, "broadcasts", target)(x, r, c), y)


@on_targets
def test_inputs_are_never_modified(target):
    x = f32(6)
    idx = np.array([0, 1], np.int64)
    keep_x, keep_idx = x.copy(), idx.copy()
    expected = x.copy()
    expected[0] = 5
    for i in range(6):
        expected[i] *= 2
        expected[idx] += 1
    expected += 1
    assert_same(fn(UPDATES, "parameter_updated", target)(x, idx), expected)
    assert_same(x, keep_x)
    assert_same(idx, keep_idx)
    strided = f32(12)[::2]
    keep = strided.copy()
    fn(UPDATES, "parameter_updated", target)(strided, idx)
    assert_same(strided, keep)
    m = f32(4, 5)
    keep = m.copy()
    fn(UPDATES, "basic", target)(m, 1, 1)
    assert_same(m, keep)


@on_targets
def test_weak_literals_adapt_to_the_updated_dtype(target):
    x = np.array([5, 6, 7], np.int64)
    b = np.array([False, False, True])
    ex, eb = x.copy(), b.copy()
    ex[0] = True
    ex[1] = 3
    eb[0] = True
    assert_same(fn(UPDATES, "literal_values", target)(x, b), (ex, eb))


# -- run-time indices and slices ---------------------------------------------------------------

DYNAMIC = """\
fn pick(x: f32[n, m], i: i64, j: i32) -> (f32[m], f32[n], f32) {
    return x[i], x[:, j], x[i, j]
}

fn halves(x: f32[n]) -> (f32[n - n // 2], f32[n // 2], f32[n - 2]) {
    return x[n // 2:], x[:n // 2], x[1:n - 1]
}

fn window(x: f32[n], w: f32[k]) -> f32[n - k + 1] {
    y = zeros(n - k + 1, dtype=f32)
    for i in range(n - k + 1) {
        y[i] = sum(x[i:i + k] * w)
    }
    return y
}

fn window_at(x: f32[n], j: i64) -> (f32[3], f32[2], f32[2]) {
    return x[j:j + 3], x[j + 1:j - 1 + 4], x[j:j + 4:2]
}

fn put_window(x: f32[n], j: i64, v: f32[2]) -> (f32[n], f32[n]) {
    y = x
    y[j:j + 2] = v
    z = x
    z[j:j + 2] += 1.0
    return y, z
}

fn blocks(x: f32[n], w: f32[k]) -> f32[n] {
    y = x
    for i in range(0, n - k + 1, 2) { y[i:i + k] *= w }
    return y
}

fn diag(x: f32[n, m]) -> f32[n, m] {
    y = zeros_like(x)
    for i in range(n) { y[i, i:i + 1] = x[i, i:i + 1] }
    return y
}

fn put(x: f32[n], j: i64) -> f32[n] {
    x[j] = 9
    return x
}

fn gather(x: f32[n], j: i64) -> f32 {
    y = x[j]
    return y
}
"""


@on_targets
@pytest.mark.parametrize("i, j", [(0, 0), (2, 3), (-1, -4), (-3, 1)])
def test_dynamic_scalar_indices(target, i, j):
    x = f32(3, 4)
    assert_same(fn(DYNAMIC, "pick", target)(x, i, np.int32(j)), (x[i], x[:, j], x[i, j]))


@on_targets
@pytest.mark.parametrize("size", [2, 5, 8])
def test_slices_with_dim_expression_bounds(target, size):
    x = f32(size)
    assert_same(fn(DYNAMIC, "halves", target)(x), (x[size // 2:], x[:size // 2], x[1:size - 1]))


@on_targets
def test_sliding_window(target):
    x, w = f32(9), f32(3)
    expected = np.array([np.sum(x[i:i + 3] * w) for i in range(7)], np.float32)
    assert_same(fn(DYNAMIC, "window", target)(x, w), expected)
    assert_same(fn(DYNAMIC, "window", target)(x[:3], w), np.array([np.sum(x[:3] * w)], np.float32))


@on_targets
@pytest.mark.parametrize("j", [0, 1, 2, -7, -6])
def test_dynamic_slices(target, j):
    x = f32(7)
    assert_same(fn(DYNAMIC, "window_at", target)(x, j), (x[j:j + 3], x[j + 1:j + 3], x[j:j + 4:2]))


@on_targets
def test_dynamic_slices_are_numpys_or_an_error(target):
    # x[j:j + 3] and x[j:j + 4:2] for every start: NumPy's slice when it has the written length,
    # else a call-time error (never a shorter, clamped or wrapped-around result)
    x = f32(7)
    call = fn(DYNAMIC, "window_at", target)
    for j in range(-10, 10):
        expected = (x[j:j + 3], x[j + 1:j + 3], x[j:j + 4:2])
        if all(len(e) == n for e, n in zip(expected, (3, 2, 2))):
            assert_same(call(x, j), expected)
        else:
            runtime_error(lambda: call(x, j), DYNAMIC, "return x[j:j + 3]")


@on_targets
@pytest.mark.parametrize("j", [0, 3, 4, -6, -3])
def test_dynamic_slice_updates(target, j):
    x, v = f32(6), f32(2)
    y, z = x.copy(), x.copy()
    y[j:j + 2] = v
    z[j:j + 2] += 1
    assert_same(fn(DYNAMIC, "put_window", target)(x, j, v), (y, z))


@on_targets
def test_slices_moving_with_the_loop_index(target):
    x, w = f32(9), f32(3)
    y = x.copy()
    for i in range(0, 7, 2):
        y[i:i + 3] *= w
    assert_same(fn(DYNAMIC, "blocks", target)(x, w), y)
    m = f32(3, 5)
    d = np.zeros_like(m)
    for i in range(3):
        d[i, i:i + 1] = m[i, i:i + 1]
    assert_same(fn(DYNAMIC, "diag", target)(m), d)


@on_targets
@pytest.mark.parametrize("j", [6, -7, 100])
def test_dynamic_index_out_of_range(target, j):
    x = f32(6)
    put = fn(DYNAMIC, "put", target)
    runtime_error(lambda: put(x, j), DYNAMIC, "x[j] = 9", "length 6")
    gather = fn(DYNAMIC, "gather", target)
    runtime_error(lambda: gather(x, j), DYNAMIC, "y = x[j]", "length 6")
    # NumPy's window x[j:j + 2] is shorter here: an error, never a short or clamped result
    window = fn(DYNAMIC, "put_window", target)
    runtime_error(lambda: window(x, j, f32(2)), DYNAMIC, "y[j:j + 2] = v")
    for short in (5, -1, -2):
        runtime_error(lambda: window(x, short, f32(2)), DYNAMIC, "y[j:j + 2] = v")


@on_targets
def test_dynamic_index_error_names_the_value(target):
    x = f32(6)
    runtime_error(lambda: fn(DYNAMIC, "gather", target)(x, 17), DYNAMIC, "y = x[j]", "17")
    runtime_error(lambda: fn(DYNAMIC, "put", target)(x, 17), DYNAMIC, "x[j] = 9", "17")


# every kind of subscript, static and run-time, read and written, against NumPy: `x[s]`, and
# `x[s] = 7.0; x[s] += x[s] * 0.5` (i, j integer parameters, idx an integer array)
SUBSCRIPTS = ["i", "-1, i", "1, i", "i, 1", "i, j", "i, :, j", ":, i", "1:3, i", "::2, -1, i", "::-1, i",
              "..., i", "i, ...", "-1, :, j:j + 2", "1, j:j + 2", "j:j + 2", ":, j:j + 2", "j:j + 2, i",
              "i, j:j + 2, 1:3", "idx", ":, idx", "1:3, idx", "idx, ::2", "..., idx", "idx, ..., ::-1",
              "::2, -1, j:j + 2", "-1, 1:3, i", "1:3, j:j + 2, ::-2"]
READ_ONLY = ["None, i", "i, None, j:j + 2", "idx, None", "None, ::2, idx"]
SUBSCRIPT_SRC = "".join(
    f"fn r{k}(x: f32[a, b, c], i: i64, j: i64, idx: i64[k]) {{\n    return x[{s}]\n}}\n"
    for k, s in enumerate(SUBSCRIPTS + READ_ONLY)) + "".join(
    f"fn w{k}(x: f32[a, b, c], i: i64, j: i64, idx: i64[k]) {{\n    x[{s}] = 7.0\n"
    f"    x[{s}] += x[{s}] * 0.5\n    return x\n}}\n" for k, s in enumerate(SUBSCRIPTS))


def _short_window(subs: str, shape, j: int) -> bool:
    """Whether NumPy's `j:j + 2` in `subs` is shorter than 2 on its axis (then tdsl must refuse)."""
    parts = subs.split(", ")
    if "..." in parts:
        at = parts.index("...")
        consuming = sum(p not in ("None", "...") for p in parts)
        parts = parts[:at] + [":"] * (len(shape) - consuming) + parts[at + 1:]
    parts = [p for p in parts if p != "None"]
    return "j:j + 2" in parts and len(range(shape[parts.index("j:j + 2")])[j:j + 2]) != 2


@on_targets
@pytest.mark.parametrize("i, j", [(-2, 1), (3, -4), (0, 4), (-4, -2), (1, -1), (-5, 0), (4, -6), (-1, 3)])
def test_subscripts_read_and_written_as_numpy(target, i, j):
    x = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    idx = np.array([2, 0, 2], np.int64)
    cases = [(f"r{k}", s, False) for k, s in enumerate(SUBSCRIPTS + READ_ONLY)]
    cases += [(f"w{k}", s, True) for k, s in enumerate(SUBSCRIPTS)]
    for name, subs, write in cases:
        env = {"x": x.copy(), "i": i, "j": j, "idx": idx}
        try:
            if write:
                exec(f"x[{subs}] = 7.0\nx[{subs}] += x[{subs}] * np.float32(0.5)", {"np": np}, env)
                expected = env["x"]
            else:
                expected = eval(f"x[{subs}]", {}, env)
        except IndexError:
            expected = None
        call = fn(SUBSCRIPT_SRC, name, target)
        if expected is None or _short_window(subs, x.shape, j):
            with pytest.raises(tdsl.TdslRuntimeError):
                call(x, i, j, idx)
            continue
        assert_same(call(x, i, j, idx), np.asarray(expected)), (name, subs)


LOOP_RANGE = """\
fn shift(x: f32[n]) -> f32[n] {
    y = zeros_like(x)
    for i in range(n) {
        y[i] = x[i + 1]
    }
    return y
}
"""


@on_targets
def test_loop_index_out_of_range_names_line_and_value(target):
    call = fn(LOOP_RANGE, "shift", target)
    err = runtime_error(lambda: call(f32(6)), LOOP_RANGE, "y[i] = x[i + 1]", "i = 5", "n = 6")
    assert err.loc.col == place(LOOP_RANGE, "x[i + 1]")[1]


# -- the per-step output pattern -------------------------------------------------------------

RNN = """\
fn rnn(xs: f32[t, b, d], h0: f32[b, k], w: f32[d, k], u: f32[k, k]) -> (f32[b, k], f32[t, b, k]) {
    h = h0
    hs = zeros((t, b, k), dtype=f32)
    for i in range(t) {
        h = tanh(xs[i] @ w + h @ u)
        hs[i] = h
    }
    return h, hs
}
"""


@on_targets
@pytest.mark.parametrize("steps", [0, 1, 6])
def test_rnn_per_step_outputs(target, steps):
    xs, h0, w, u = f32(steps, 2, 3), f32(2, 4), f32(3, 4), f32(4, 4) * np.float32(0.5)
    keep = [a.copy() for a in (xs, h0, w, u)]
    h, hs = h0, np.zeros((steps, 2, 4), np.float32)
    for i in range(steps):
        h = np.tanh(xs[i] @ w + h @ u)
        hs[i] = h
    assert_same(fn(RNN, "rnn", target)(xs, h0, w, u), (h, hs))
    for a, kept in zip((xs, h0, w, u), keep):
        assert_same(a, kept)


# -- compile errors ---------------------------------------------------------------------------

CARRY_DTYPE = """\
fn f(x: f32[n], y: f64) -> f32 {
    s = x[0]
    for i in range(n) {
        s = s + y
    }
    return s
}
"""

CARRY_SHAPE = """\
fn f(x: f32[n]) {
    s = 0.0
    for i in range(n) { s = s + x }
    return s
}
"""

CARRY_WHILE = """\
fn f(x: f32[n]) {
    y = x
    while sum(y) > 1.0 { y = y[1:] }
    return y
}
"""

CARRY_WEAK_NARROWS = """\
fn f(x: i32[n]) {
    s = 0.5
    for i in range(n) { s = x[i] }
    return s
}
"""

CARRY_WEAK_INT = """\
fn f(x: i32[n]) {
    s = 0.5
    k = 1
    for i in range(n) { k = k * 0.5 }
    return k
}
"""


@on_targets
def test_carried_type_errors(target):
    compile_error(CARRY_DTYPE, target, "s = s + y", "'s'", "f32", "f64", "carried")
    compile_error(CARRY_SHAPE, target, "s = s + x", "'s'", "f64", "f32[n]", "carried")
    compile_error(CARRY_WHILE, target, "y = y[1:]", "'y'", "f32[n]", "f32[n - 1]", "while")
    # a weak float does not become an integer: NumPy would not cast 0.5 to i32 safely
    compile_error(CARRY_WEAK_NARROWS, target, "s = x[i]", "'s'", "f64", "i32")


@on_targets
def test_weak_carried_value_takes_a_float(target):
    # a weak integer carried into a float body becomes a float, as a Python int would
    assert_same(fn(CARRY_WEAK_INT, "f", target)(np.zeros(3, np.int32)), np.float64(0.125))


LOCAL_AFTER_LOOP = """\
fn f(x: f32[n]) -> f32 {
    for i in range(n) {
        t = x[i]
    }
    return t
}
"""

INDEX_AFTER_LOOP = """\
fn f(x: f32[n]) -> i64 {
    s = 0.0
    for i in range(n) { s += x[i] }
    return i
}
"""

NESTED_LOCAL = """\
fn f(x: f32[n]) -> f32 {
    s = 0.0
    for i in range(n) {
        for j in range(n) { q = x[j] }
        s += x[i]
    }
    return q
}
"""

LOCAL_AFTER_WHILE = """\
fn f(x: f32[n]) -> f32 {
    k = 0
    while k < n {
        v = x[k]
        k += 1
    }
    return v
}
"""

LOCAL_AFTER_IF = """\
fn f(x: f32[n], c: bool) -> f32 {
    if c { r = x[0] }
    return r
}
"""

LOCAL_AFTER_CHAIN = """\
fn f(x: f32[n], j: i64) -> f32 {
    if j < 0 { r = x[0] } else if j < n { r = x[j] } else { q = 1.0 }
    return r
}
"""

LOCAL_NESTED_IF = """\
fn f(x: f32[n], c: bool) -> f32 {
    if c {
        for i in range(n) { q = x[i] }
    }
    return q
}
"""


@on_targets
def test_locals_are_not_defined_after_their_block(target):
    cases = [
        (LOCAL_AFTER_LOOP, "t\n", "t = x[i]", "'t'"),
        (INDEX_AFTER_LOOP, "i\n", "i in range", "'i'"),
        (NESTED_LOCAL, "q\n", "q = x[j]", "'q'"),
        (LOCAL_AFTER_WHILE, "v\n", "v = x[k]", "'v'"),
        (LOCAL_AFTER_IF, "r\n", "r = x[0]", "'r'"),
        (LOCAL_AFTER_CHAIN, "r\n", "r = x[j]", "'r'"),  # its latest binding
        (LOCAL_NESTED_IF, "q\n", "q = x[i]", "'q'"),
    ]
    for src, use, bound, name in cases:
        line, col = place(src, bound)
        compile_error(src, target, use, name, "local", f"(at {line}:{col})")


@on_targets
def test_loop_variable_must_be_a_fresh_name(target):
    # a loop variable is local to its loop: reusing a visible name would leave that name's old
    # value after the loop, where Python leaves the last index, so it is refused
    for outer, loop, occurrence, what in [
        ("    i = 7\n", "for i in range(n) { s += 1.0 }", 0, "already bound (at 3:5)"),
        ("", "for x in range(n) { s += 1.0 }", 0, "already bound (at 1:6)"),
        ("", "for n in range(3) { s += 1.0 }", 0, "a size variable"),
        ("", "for TWO in range(3) { s += 1.0 }", 0, "a const"),
        ("", "for i in range(n) { for i in range(n) { s += 1.0 } }", 1, "already bound (at 3:9)"),
    ]:
        src = f"fn f(x: f32[n]) -> f32 {{\n    s = 0.0\n{outer}    {loop}\n    return s\n}}\nconst TWO = 2\n"
        at = loop[4:10]
        compile_error(src, target, at, what, "loop variable", occurrence=occurrence)


BRANCH_MISMATCH = """\
fn f(x: f32[n], c: bool) -> f32 {
    if c { s = x[0] } else { s = x[0:2] }
    return s
}
"""

BRANCH_DTYPE = """\
fn f(x: f32[n], c: bool) -> f32 {
    s = x[0]
    if c { s = f64(s) }
    return s
}
"""

BRANCH_CHAIN = """\
fn f(x: f32[n], a: i64) -> f32 {
    if a > 0 { s = x[0] } else if a < 0 { s = x[1] } else { s = 0 * a }
    return s
}
"""


@on_targets
def test_branch_type_mismatch(target):
    compile_error(BRANCH_MISMATCH, target, "s = x[0:2]", "'s'", "f32", "f32[2]", "every path")
    compile_error(BRANCH_DTYPE, target, "s = f64(s)", "'s'", "f64", "f32", "not taken")
    compile_error(BRANCH_CHAIN, target, "s = 0 * a", "'s'", "f32", "i64")


@on_targets
def test_conditions_must_be_bool_scalars(target):
    body = "fn f(x: f32[n], k: i64) -> f32 {{\n    s = x[0]\n    {stmt}\n    return s\n}}\n"
    for stmt, at, got in [
        ("while s { s = s - 1.0 }", "s {", "f32"),
        ("while x > 0.0 { s = s + 1.0 }", "x > 0.0", "bool[n]"),
        ("if k { s = 1.0 }", "k {", "i64"),
        ("if x > 0.0 { s = 1.0 }", "x > 0.0", "bool[n]"),
        ("if s > 0.0 { s = 1.0 } else if x[0:2] > 0.0 { s = 2.0 }", "x[0:2] > 0.0", "bool[2]"),
    ]:
        src = body.format(stmt=stmt)
        compile_error(src, target, at, "bool scalar", got)


@on_targets
def test_return_inside_a_block_is_an_error(target):
    for stmt in ("for i in range(n) { return s }", "while s > 0.0 { return s }",
                 "if s > 0.0 { return s }", "if s > 0.0 { s = 1.0 } else { return s }"):
        src = f"fn f(x: f32[n]) -> f32 {{\n    s = x[0]\n    {stmt}\n    return s\n}}\n"
        compile_error(src, target, "return s", "return", "loop or branch")


@on_targets
def test_range_errors(target):
    body = "const TWO = 2.0\nfn f(x: f32[n], k: i64) -> f32 {{\n    s = 0.0\n    {stmt}\n    return s\n}}\n"
    for stmt, at, fragment in [
        ("for i in range(0, n, 0) { s += x[i] }", "0) {", "zero"),
        ("for i in range(0, n, k) { s += x[i] }", "k) {", "literal or const"),
        ("for i in range(0.5) { s += 1.0 }", "0.5", "integer scalar"),
        ("for i in range(TWO) { s += 1.0 }", "TWO)", "integer scalar"),
        ("for i in range(x) { s += 1.0 }", "x)", "f32[n]"),
        ("for i in arange(n) { s += 1.0 }", "arange", "range"),
        ("for i in range(1, 2, 3, 4) { s += 1.0 }", "for", "1 to 3"),
        ("for i in range(stop=n) { s += 1.0 }", "stop=n", "positional"),
    ]:
        compile_error(body.format(stmt=stmt), target, at, fragment)


@on_targets
def test_update_errors(target):
    head = "fn f(x: f32[n], y: i32[n], d: f64, j: i64, k: i64, t: f32) -> f32[n] {{\n    {stmt}\n    return x\n}}\n"
    for stmt, at, fragments in [
        ("x[0] = d", "x[0]", ("f64", "f32[n]", "cast")),
        ("x[1:3] = [1.0, 2.0, 3.0]", "x[1:3]", ("3", "2")),
        ("x[1, 2] = 1.0", "x[1, 2]", ("too many indices",)),
        ("x[0.5] = 1.0", "0.5", ("integer",)),
        ("x[y > 0] = 1.0", "y > 0", ("integers", "bool")),
        ("t[0] = 1.0", "t[0]", ("too many indices",)),
        ("z[0] = 1.0", "z", ("undefined name 'z'",)),
        ("z += 1.0", "z", ("undefined name 'z'",)),
        ("x[j:k] = 1.0", "j:k", ("not a dim expression",)),
        ("x[j:] = 1.0", "j:]", ("not a dim expression",)),
        ("x[:j] += 1.0", ":j]", ("not a dim expression",)),
        ("x[j:2 * j] = 1.0", "j:2 * j", ("not a dim expression",)),
        ("x[j:j + 3:-1] = 1.0", "j:j + 3:-1", ("positive step",)),
    ]:
        compile_error(head.format(stmt=stmt), target, at, *fragments)
    ints = "fn f(y: i32[n], d: f64) -> i32[n] {{\n    {stmt}\n    return y\n}}\n"
    for stmt, at, got in [
        ("y[0] = 1.5", "y[0]", "f64"),
        ("y[0] += 1.5", "y[0]", "f64"),
        ("y[1:3] /= 2", "y[1:3]", "f64[2]"),
        ("y[0] = d", "y[0]", "f64"),
        ("y[0] = i64(d)", "y[0]", "i64"),
    ]:
        compile_error(ints.format(stmt=stmt), target, at, got, "i32[n]", "without a cast")


@on_targets
def test_slice_length_must_be_a_dim_expression(target):
    src = "fn f(x: f32[n], j: i64, k: i64) -> f32 {\n    return sum(x[j:k]) + sum(x[j + 1:])\n}\n"
    compile_error(src, target, "j:k", "length of this slice is not a dim expression")
    src = "fn f(x: f32[n], j: i64) -> f32 {\n    return sum(x[:j])\n}\n"
    compile_error(src, target, ":j]", "length of this slice is not a dim expression")
    src = "fn f(x: f32[n]) -> f32 {\n    s = 0.0\n    for i in range(n) { s += sum(x[:i - 1]) }\n    return s\n}\n"
    compile_error(src, target, ":i - 1]", "length of this slice is not a dim expression")


@on_targets
def test_control_flow_syntax_errors(target):
    head = "fn f(x: f32[n], c: bool) -> f32 {{\n    r = x[0]\n{body}\n    return r\n}}\n"
    for body, at, fragment in [
        ("    if c {\n        r = 1.0\n    }\n    else {\n        r = 2.0\n    }", "else", "on the line of the '}'"),
        ("    if c { r = 1.0 } elif c { r = 2.0 }", "elif", "expected 'else'"),
        ("    if c r = 1.0", "r = 1.0", "expected '{'"),
        ("    for i in range(3): { r = 1.0 }", ": {", "expected '{'"),
        ("    x[0] == 1.0", "==", "'+='"),
        ("    x[0], x[1] = 1.0, 2.0", ", x[1]", "'+='"),
        ("    x.T[0] = 1.0", ".T", "'x[i] = expr'"),
        ("    for = 1", "= 1", "'for' is a keyword"),
        ("    while = 1", "= 1", "'while' is a keyword"),
    ]:
        compile_error(head.format(body=body), target, at, fragment, kind=tdsl.TdslSyntaxError)


@on_targets
def test_literals_out_of_range_of_the_updated_dtype(target):
    # NumPy 2 refuses a Python int out of an integer array's range (NEP 50): so does tdsl
    for stmt in ("y[0] = 3000000000", "y[1:] += 3000000000", "y *= 3000000000"):
        src = f"fn f(y: i32[n]) -> i32[n] {{\n    {stmt}\n    return y\n}}\n"
        compile_error(src, target, stmt, "3000000000", "does not fit i32")


UNREAD = """\
fn loop_without_results(x: f32[n], j: i64) -> f32 {
    for i in range(n) { t = x[j] }
    return x[0]
}

fn branch_without_results(x: f32[n], j: i64) -> f32 {
    if j > 0 { t = x[j] }
    return x[0]
}

fn loop_result_unread(x: f32[n], j: i64) -> f32 {
    s = 0.0
    for i in range(n) { s += x[j] }
    return x[0]
}
"""


@on_targets
def test_blocks_whose_results_are_unread_still_raise(target):
    # NumPy runs every statement: x[j] out of range raises even when nothing reads it
    x = f32(3)
    for name in ("loop_without_results", "branch_without_results", "loop_result_unread"):
        runtime_error(lambda: fn(UNREAD, name, target)(x, 5), UNREAD, "x[j]", "length 3",
                      occurrence=["loop_without_results", "branch_without_results",
                                  "loop_result_unread"].index(name))
