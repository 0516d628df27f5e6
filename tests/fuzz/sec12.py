"""Generator makers and NumPy mirrors for section 12: cumulative ops, sorting, einsum, norm, scatter/gather
along an axis, convolutions and pools, random numbers, and the constants inf/nan/pi/e.

Each maker builds a Node of NumPy's dtype and a symbolic shape; EVAL12 evaluates it with NumPy alone
(np.cumsum, np.sort(kind="stable"), np.einsum, np.linalg.norm, np.add.at, np.take_along_axis, a NumPy
im2col for conv/pool, numpy.random.Philox for the random numbers, a Python Philox-4x64-10 for fold_in).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .tree import (AVOID, broadcast, dim_value, Expected, is_lit, is_simple, lit, Node, NP, numeric, numpy_dtype,
    TDSL_NAME, tup, Unspecified)

if TYPE_CHECKING:
    from .gen import Gen


# ---------------------------------------------------------------------------------------------------------
# helpers

def dim_minus(d: str, k: int) -> str:
    """The dim `d - k` (k may be negative)."""
    if k == 0:
        return d
    if is_lit(d):
        return str(int(d) - k)
    base = d if is_simple(d) else f"({d})"
    return f"{base} - {k}" if k > 0 else f"{base} + {-k}"


def conv_dim(d: str, k: int, stride: int, before: int, after: int) -> str:
    """(d + before + after - k) // stride + 1 as a dim string."""
    if is_lit(d):
        return str((int(d) + before + after - k) // stride + 1)
    if stride == 1:
        return dim_minus(d, k - 1 - before - after)
    base = d if is_simple(d) else f"({d})"
    off = before + after - k
    inner = base if off == 0 else (f"{base} + {off}" if off > 0 else f"{base} - {-off}")
    return f"({inner}) // {stride} + 1"


def _float_kid(node: Node) -> bool:
    return node.dtype in ("f32", "f64")


def _exact(node: Node) -> bool:
    from .oracle import exact
    return exact(node)


def _cancellation(node: Node, out, mass) -> None:
    """Unspecified when a few roundings of `mass` (the same computation on |values|) exceed the tolerance and an
    operand was itself rounded (tdsl's order of a sum may differ from NumPy's)."""
    from .oracle import precision, ROUNDING_ULPS, TOLERANCE, _scale
    if node.dtype not in ("f32", "f64") or not np.size(out):
        return
    value = np.asarray(out, np.float64)
    rtol, atol = TOLERANCE[precision(node)]
    allowed = atol * _scale(value) + rtol * np.abs(value)
    with np.errstate(all="ignore"):
        loose = np.isfinite(np.asarray(mass, np.float64)) & \
            (ROUNDING_ULPS * np.finfo(NP[precision(node)]).eps * np.asarray(mass, np.float64) > allowed)
    if loose.any():
        raise Unspecified(f"{node.op} with catastrophic cancellation")


def _overflow_order(out, wide) -> None:
    """Where the result in its dtype and the same sums of products in f64 disagree on inf or NaN, the order of
    the products (fused or not, BLAS or a loop) decides: unspecified."""
    o = np.asarray(out)
    if o.dtype.kind != "f" or np.isfinite(o).all():
        return
    w = np.asarray(wide)
    if (np.isnan(o) != np.isnan(w)).any() or (np.isinf(o) != np.isinf(w)).any():
        raise Unspecified("products next to overflow: the order of the sum decides inf or NaN")
    if np.isnan(o).any() and o.dtype == np.float32:
        raise Unspecified("inf - inf inside an f32 sum of products next to overflow")


def _ties_unsure(node: Node, x, axis: int) -> None:
    """argsort/top_k positions of a computed float value: unspecified where two values of a row lie within
    rounding error of each other (another target's value may order the other way)."""
    from .oracle import _rounding_error
    x = np.asarray(x)
    if x.dtype.kind != "f" or _exact(node.kids[0]) or not x.size or x.shape[axis] < 2:
        return
    s = np.sort(np.moveaxis(x, axis, -1).astype(np.float64), axis=-1)
    err = np.max(_rounding_error(node.kids[0], x)) if x.size else 0
    with np.errstate(all="ignore"):
        gaps = np.diff(s, axis=-1)
    if (np.isfinite(gaps) & (gaps <= 2 * err)).any():
        raise Unspecified("computed values within rounding error of each other: their order is not defined")


# ---------------------------------------------------------------------------------------------------------
# Philox-4x64-10 (for fold_in, randint and randn)

M64 = (1 << 64) - 1
PHILOX_M = (0xD2E7470EE14C6C93, 0xCA5A826395121157)
PHILOX_W = (0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B)


def philox_block(counter: tuple, key: tuple) -> tuple:
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(10):
        p0, p1 = PHILOX_M[0] * c0, PHILOX_M[1] * c2
        hi0, lo0, hi1, lo1 = p0 >> 64, p0 & M64, p1 >> 64, p1 & M64
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + PHILOX_W[0]) & M64, (k1 + PHILOX_W[1]) & M64
    return c0, c1, c2, c3


def _fold_in(key, i):
    """Word 0 of the Philox-4x64-10 block with counter [i, 0, 0, 1] and key [key, 0], elementwise (vectorized)."""
    key, i = np.broadcast_arrays(_ints(key), _ints(i))
    shape = key.shape
    k0 = np.array([int(v) & M64 for v in key.ravel()], np.uint64)
    c0 = np.array([int(v) & M64 for v in i.ravel()], np.uint64)
    c1, c2, c3 = np.zeros_like(c0), np.zeros_like(c0), np.ones_like(c0)
    k1 = np.zeros_like(k0)
    with np.errstate(all="ignore"):
        for _ in range(10):
            hi0, lo0 = _mulhi(c0, PHILOX_M[0]), c0 * np.uint64(PHILOX_M[0])
            hi1, lo1 = _mulhi(c2, PHILOX_M[1]), c2 * np.uint64(PHILOX_M[1])
            c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
            k0, k1 = k0 + np.uint64(PHILOX_W[0]), k1 + np.uint64(PHILOX_W[1])
    out = c0.view(np.int64).reshape(shape)
    return out if out.ndim else np.int64(out[()])


def _key(k) -> int:
    return (k if isinstance(k, int) else int(np.asarray(k).astype(np.int64))) & M64


def _ints(a):
    """An integer operand as an object array of Python ints (a literal may be past int64: an unsigned key)."""
    return np.asarray(a, dtype=object) if isinstance(a, int) else np.asarray(a).astype(np.int64).astype(object)


def _raw(key, count: int):
    if count == 0:
        return np.zeros(0, np.uint64)
    return np.random.Philox(key=_key(key)).random_raw(count)


def _rand(key, shape, dt: str):
    size = math.prod(shape)
    gen = np.random.Generator(np.random.Philox(key=_key(key)))
    return gen.random(size, NP[dt]).reshape(shape)


def _randn(key, shape, dt: str):
    size = math.prod(shape)
    w = _raw(key, 2 * size)
    with np.errstate(all="ignore"):
        if dt == "f64":
            u = (w >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
            u1, u2 = u[0::2], u[1::2]
            out = np.sqrt(-2 * np.log(1 - u1)) * np.cos(2 * np.pi * u2)
        else:
            u = ((w >> np.uint64(40)).astype(np.float64) * 2.0 ** -24).astype(np.float32)
            u1, u2 = u[0::2], u[1::2]
            one, two = np.float32(1), np.float32(2)
            out = np.sqrt(-two * np.log(one - u1)) * np.cos(two * np.float32(np.pi) * u2)
    return out.astype(NP[dt]).reshape(shape)


def _mulhi(w, span: int):
    m32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    a_lo, a_hi = w & m32, w >> s32
    b_lo, b_hi = np.uint64(span & 0xFFFFFFFF), np.uint64(span >> 32)
    lo_lo, hi_lo, lo_hi, hi_hi = a_lo * b_lo, a_hi * b_lo, a_lo * b_hi, a_hi * b_hi
    cross = (lo_lo >> s32) + (hi_lo & m32) + lo_hi
    return hi_hi + (hi_lo >> s32) + (cross >> s32)


def _randint(key, low: int, high: int, shape, dt: str):
    if low >= high:
        raise Expected("randint needs low < high")
    size = math.prod(shape)
    w = _raw(key, size)
    span = (high - low) & M64
    with np.errstate(all="ignore"):
        out = (np.uint64(low & M64) + _mulhi(w, span)).view(np.int64)
    return out.astype(NP[dt]).reshape(shape)


# ---------------------------------------------------------------------------------------------------------
# NumPy mirrors

def _cum(fn: str, x, axis):
    x = np.asarray(x)
    if axis is not None and x.ndim == 0:
        raise Expected("cumsum of a scalar along an axis")
    return getattr(np, fn)(x, axis=axis)


def _cum_node(node: Node, x):
    fn, axis = node.attrs["fn"], node.attrs["axis"]
    out = _cum(fn, x, axis)
    if fn == "cumsum" and _float_kid(node) and not _exact(node.kids[0]):
        _cancellation(node, out, np.cumsum(np.abs(np.asarray(x, np.float64)), axis=axis))
    return out


def _diff(x, axis: int, n: int):
    x = np.asarray(x)
    if x.shape[axis] < n:
        raise Expected(f"diff of an axis of length {x.shape[axis]} with n={n}")
    return np.diff(x, n=n, axis=axis)


def _top_order(x, axis: int):
    """Positions of x along axis, largest first, NaN largest, ties to the lower index (stable)."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        nan = np.isnan(x)
        key = np.where(nan, np.zeros((), x.dtype), -x)
        return np.lexsort((key, ~nan), axis=axis)
    if x.dtype == np.bool_:
        return np.argsort(~x, axis=axis, kind="stable")
    return np.argsort(~x, axis=axis, kind="stable")   # ~x = -x - 1: decreasing, no overflow


def _top_k(node: Node, x, sizes: dict):
    k, axis = dim_value(node.attrs["kdim"], sizes), node.attrs["axis"]
    x = np.asarray(x)
    if x.ndim == 0:
        raise Expected("top_k of a scalar")
    length = x.shape[axis]
    if k < 0 or k > length:
        raise Expected(f"top_k: k = {k} > axis length {length}")
    _ties_unsure(node, x, axis)
    if length == 0:
        idx = np.zeros(x.shape, np.int64)
    else:
        idx = np.take(_top_order(x, axis), np.arange(k), axis=axis).astype(np.int64)
    return np.take_along_axis(x, idx, axis=axis), idx


def _sort(node: Node, x):
    x = np.asarray(x)
    if x.ndim == 0:
        raise Expected("sort of a scalar")
    axis = node.attrs["axis"]
    if node.attrs["fn"] == "argsort":
        _ties_unsure(node, x, axis)
        return np.argsort(x, axis=axis, kind="stable").astype(np.int64)
    return np.sort(x, axis=axis, kind="stable")


def _einsum(node: Node, ops):
    spec = node.attrs["spec"]
    out = np.einsum(spec, *ops)
    if node.dtype in ("f32", "f64"):
        with np.errstate(all="ignore"):
            wide = np.einsum(spec, *[np.asarray(o, np.float64) for o in ops])
            _overflow_order(out, wide)
            if not np.isfinite(out).all() and any(np.isinf(np.asarray(o, np.float64)).any() for o in ops):
                # sum(a) * sum(b) (tdsl sums an operand's own indices first) against sum(a * b): the same
                # number for finite values, but inf * 0.7 + inf * -0.3 is NaN where inf * 0.4 is inf
                raise Unspecified("einsum of infinite values: the association of its sums decides inf or NaN")
            mass = np.einsum(spec, *[np.abs(np.asarray(o, np.float64)) for o in ops])
            _cancellation(node, out, mass)
    return out


def _norm(node: Node, x):
    x = np.asarray(x)
    ord_, axis, keep = node.attrs["ord"], node.attrs["axis"], node.attrs["keepdims"]
    np_ord = None if ord_ is None else {"inf": np.inf, "-inf": -np.inf}.get(ord_, ord_)
    if isinstance(axis, tuple) and x.size == 0 and False:
        pass
    return np.linalg.norm(x, np_ord, axis, keep)


def _scatter_add(node: Node, x, idx, values):
    x, idx = np.asarray(x), np.asarray(idx)
    axis = node.attrs["axis"] % x.ndim
    length = x.shape[axis]
    if idx.size and ((idx < -length) | (idx >= length)).any():
        raise Expected(f"scatter_add: an index is out of range for an axis of length {length}")
    out = x.copy()
    key = (slice(None),) * axis + (idx.astype(np.int64),)
    # broadcast first: NumPy 2.4's add.at with values of fewer dims than a 2-D index drops rows
    # (np.add.at(x, [[1, 0, 0], [2, 2, 1]], x) adds the first row only)
    if np.ndim(values):
        values = np.broadcast_to(values, out[key].shape)
    with np.errstate(all="ignore"):
        np.add.at(out, key, values)
        if x.dtype.kind == "f" and not (_exact(node.kids[0]) and _exact(node.kids[2])):
            mass = np.abs(x.astype(np.float64))
            np.add.at(mass, key, np.abs(np.asarray(values, np.float64)))
            _cancellation(node, out, mass)
    return out


def _take_along(node: Node, x, idx):
    x, idx = np.asarray(x), np.asarray(idx)
    axis = node.attrs["axis"] % x.ndim
    length = x.shape[axis]
    if idx.size and ((idx < -length) | (idx >= length)).any():
        raise Expected(f"take_along_axis: an index is out of range for an axis of length {length}")
    shape = list(np.broadcast_shapes(*[tuple(d if i != axis else 1 for i, d in enumerate(s))
                                       for s in (x.shape, idx.shape)]))
    xs = list(shape)
    xs[axis] = x.shape[axis]
    ids = list(shape)
    ids[axis] = idx.shape[axis]
    return np.take_along_axis(np.broadcast_to(x, xs), np.broadcast_to(idx, ids).astype(np.int64), axis=axis)


def _pads(node: Node, ks: tuple) -> list:
    padding = node.attrs["padding"]
    if padding == "same":
        return [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in ks]
    p = 0 if padding == "valid" else int(padding)
    return [(p, p) for _ in ks]


def _conv(node: Node, x, w):
    x, w = np.asarray(x), np.asarray(w)
    spatial = x.ndim - 2
    ks = w.shape[2:]
    pads = _pads(node, ks)
    stride = node.attrs["stride"]
    for size, (a, b), k in zip(x.shape[2:], pads, ks):
        if size + a + b < k:
            raise Expected(f"a window of {k} is larger than the padded input {size + a + b}")
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    axes = tuple(range(2, 2 + spatial))
    win = sliding_window_view(xp, ks, axis=axes)
    win = win[(slice(None), slice(None)) + (slice(None, None, stride),) * spatial]
    spec = "bcnk,ock->bon" if spatial == 1 else "bchwij,ocij->bohw"
    out = np.einsum(spec, win, w)   # NumPy's dtype (not node.dtype: finite differences run f32 programs in f64)
    if node.dtype in ("f32", "f64"):
        with np.errstate(all="ignore"):
            wide = np.einsum(spec, win.astype(np.float64), w.astype(np.float64))
            _overflow_order(out, wide)
            _cancellation(node, out, np.einsum(spec, np.abs(win.astype(np.float64)), np.abs(w.astype(np.float64))))
    return out


def _pool(node: Node, x):
    x = np.asarray(x)
    size, stride = node.attrs["size"], node.attrs["stride"]
    for d in x.shape[2:]:
        if d < size:
            raise Expected(f"a pool window of {size} is larger than the input {d}")
    win = sliding_window_view(x, (size, size), axis=(2, 3))[:, :, ::stride, ::stride]
    if node.attrs["fn"] == "max_pool2d":
        return np.max(win, axis=(4, 5)) if win.size else np.zeros(win.shape[:4], x.dtype)
    if not win.size:
        return np.zeros(win.shape[:4], np.float32 if x.dtype == np.float32 else np.float64)
    return np.mean(win, axis=(4, 5))


def _shape(node: Node, sizes: dict) -> tuple:
    return tuple(dim_value(d, sizes) for d in node.attrs["shape"])


def _bernoulli(node: Node, key, p, sizes):
    shape = _shape(node, sizes)
    r = _rand(key, shape, "f64")
    with np.errstate(all="ignore"):
        return np.less(r, np.asarray(p, np.float64) if not isinstance(p, float) else p)


EVAL12 = {
    "const": lambda n, v, s: n.attrs["value"],
    "cum": lambda n, v, s: _cum_node(n, v[0]),
    "diff": lambda n, v, s: _diff(v[0], n.attrs["axis"], n.attrs["n"]),
    "sort": lambda n, v, s: _sort(n, v[0]),
    "topk_pair": lambda n, v, s: _top_k(n, v[0], s),
    "topk_part": lambda n, v, s: v[0][n.attrs["part"]],
    "einsum": lambda n, v, s: _einsum(n, v),
    "norm": lambda n, v, s: _norm(n, v[0]),
    "scatter_add": lambda n, v, s: _scatter_add(n, v[0], v[1], v[2]),
    "take_along": lambda n, v, s: _take_along(n, v[0], v[1]),
    "conv": lambda n, v, s: _conv(n, v[0], v[1]),
    "pool": lambda n, v, s: _pool(n, v[0]),
    "rand": lambda n, v, s: _rand(v[0], _shape(n, s), n.attrs.get("dt") or "f64"),
    "randn": lambda n, v, s: _randn(v[0], _shape(n, s), n.attrs.get("dt") or "f64"),
    "randint": lambda n, v, s: _randint(v[0], n.attrs["low"], n.attrs["high"], _shape(n, s),
                                        n.attrs.get("dt") or "i64"),
    "bernoulli": lambda n, v, s: _bernoulli(n, v[0], v[1], s),
    "fold_in": lambda n, v, s: _fold_in(v[0], v[1]),
}


# ops whose value is one of their operands' values (or a function of integers only): no rounding of their own
EXACT12 = {"const", "sort", "topk_pair", "topk_part", "take_along", "rand", "randint", "bernoulli", "fold_in", "diff"}


# ---------------------------------------------------------------------------------------------------------
# rendering

def _dt_kw(n: Node) -> str:
    dt = n.attrs.get("dt")
    return f", dtype={dt}" if dt else ""


def _shape_text(n: Node) -> str:
    return tup(n.attrs["shape"])


RENDER12 = {
    "const": lambda n, k: n.attrs["text"],
    "cum": lambda n, k: f"{n.attrs['fn']}({k[0]}{'' if n.attrs['axis'] is None else ', ' + str(n.attrs['shown'])})",
    # n positionally (the third argument): a keyword `n=` would be renamed with the size variable n
    "diff": lambda n, k: (f"diff({k[0]}" + ("" if n.attrs["shown"] is None and n.attrs["n"] == 1 and not
                                               n.attrs.get("show_n") else f", {n.attrs['axis'] if n.attrs['shown'] is None else n.attrs['shown']}")
                          + ("" if n.attrs["n"] == 1 and not n.attrs.get("show_n") else f", {n.attrs['n']}")
                          + ")"),
    "sort": lambda n, k: f"{n.attrs['fn']}({k[0]}{'' if n.attrs['shown'] is None else ', ' + str(n.attrs['shown'])})",
    "topk_pair": lambda n, k: (f"top_k({k[0]}, {n.attrs['ktext']}"
                               f"{'' if n.attrs['shown'] is None else ', axis=' + str(n.attrs['shown'])})"),
    "topk_part": lambda n, k: n.attrs["names"][n.attrs["part"]],
    "einsum": lambda n, k: f"einsum(\"{n.attrs['spec']}\", {', '.join(k)})",
    "norm": lambda n, k: (f"norm({k[0]}" + ("" if n.attrs["ord"] is None else f", {n.attrs['ord']}")
                          + ("" if n.attrs["axis"] is None else f", axis={n.attrs['axis_text']}")
                          + (", keepdims=true" if n.attrs["keepdims"] else "") + ")"),
    "scatter_add": lambda n, k: (f"scatter_add({k[0]}, {k[1]}, {k[2]}"
                                 + ("" if n.attrs["shown"] is None else f", axis={n.attrs['shown']}") + ")"),
    "take_along": lambda n, k: f"take_along_axis({k[0]}, {k[1]}, {n.attrs['shown']})",
    "conv": lambda n, k: (f"{n.attrs['fn']}({k[0]}, {k[1]}"
                          + ("" if n.attrs["stride"] == 1 and not n.attrs.get("show") else f", stride={n.attrs['stride']}")
                          + ("" if n.attrs["padding"] == 0 and not n.attrs.get("show") else
                             f", padding={n.attrs['padding']!r}".replace("'", '"')) + ")"),
    "pool": lambda n, k: (f"{n.attrs['fn']}({k[0]}, {n.attrs['size']}"
                          + ("" if n.attrs["stride"] == n.attrs["size"] else f", stride={n.attrs['stride']}") + ")"),
    "rand": lambda n, k: f"rand({k[0]}, {_shape_text(n)}{_dt_kw(n)})",
    "randn": lambda n, k: f"randn({k[0]}, {_shape_text(n)}{_dt_kw(n)})",
    "randint": lambda n, k: (f"randint({k[0]}, {_lit(n.attrs['low'])}, {_lit(n.attrs['high'])}, {_shape_text(n)}"
                             f"{_dt_kw(n)})"),
    "bernoulli": lambda n, k: f"bernoulli({k[0]}, {k[1]}, {_shape_text(n)})",
    "fold_in": lambda n, k: f"fold_in({k[0]}, {k[1]})",
}


def _lit(v: int) -> str:
    return str(v) if v >= 0 else f"(-{-v})"


# ---------------------------------------------------------------------------------------------------------
# makers

CONSTS = (("inf", math.inf), ("nan", math.nan), ("pi", math.pi), ("e", math.e), ("(-inf)", -math.inf))


def const_node(g: Gen) -> Node:
    text, value = g.rng.choice(CONSTS)
    return Node("const", attrs={"text": text, "value": value}, dtype="f64", weak=True)


def _axis(g: Gen, rank: int):
    axis = g.rng.randrange(rank)
    return axis, (axis - rank if g.chance(0.4) else axis)


def mk_cum(g: Gen) -> Node | None:
    """cumsum / cumprod along an axis (or flattened), diff along an axis."""
    x = g.pick(lambda v: v.shape or v.dtype != "bool")
    if x is None or x.weak:
        return None
    kind = g.rng.choice(["cumsum", "cumsum", "cumprod", "diff"])
    rank = len(x.shape)
    if kind == "diff":
        if not rank:
            return None
        axis, shown = _axis(g, rank)
        if g.chance(0.3) and axis == rank - 1:
            shown = None
        n = g.rng.choice([1, 1, 1, 2, 0])
        d = x.shape[axis]
        if is_lit(d):   # a literal axis shorter than n is a compile error
            n = min(n, int(d))
        g.need(d, n)
        shape = x.shape[:axis] + (dim_minus(d, n),) + x.shape[axis + 1:]
        return Node("diff", (x,), {"axis": axis, "shown": shown, "n": n, "show_n": g.chance(0.2)}, x.dtype, shape)
    if rank == 0 or g.chance(0.25):
        axis = shown = None
        shape = (dim_of_size(x.shape),)
    else:
        axis, shown = _axis(g, rank)
        shape = x.shape
    typed = numpy_dtype(lambda v: _cum(kind, v, axis), x)
    if typed is None:
        return None
    return Node("cum", (x,), {"fn": kind, "axis": axis, "shown": shown}, typed[0], shape)


def dim_of_size(shape: tuple) -> str:
    from .tree import dim_mul
    return dim_mul(shape) if shape else "1"


def mk_sort(g: Gen) -> Node | None:
    """sort, argsort, or one part of top_k (the pair becomes a tuple statement)."""
    x = g.pick(lambda v: v.shape)
    if x is None:
        return None
    rank = len(x.shape)
    axis, shown = _axis(g, rank)
    if g.chance(0.3) and axis == rank - 1:
        shown = None
    kind = g.rng.choice(["sort", "argsort"] + ([] if hasattr(g, "scope") else ["top_k"]))   # top_k: a statement
    if kind != "top_k":
        return Node("sort", (x,), {"fn": kind, "axis": axis, "shown": shown},
                    x.dtype if kind == "sort" else "i64", x.shape)
    return top_k_part(g, x, axis, shown)


def top_k_part(g: Gen, x: Node, axis: int, shown, part: int | None = None) -> Node:
    d = x.shape[axis]
    choice = g.rng.choice(["lit", "lit", "all", "minus"])
    if choice == "all" and is_simple(d):
        ktext = kdim = d
    elif choice == "minus" and is_simple(d) and not is_lit(d):
        g.need(d, 1)
        ktext = kdim = f"{d} - 1"
    else:
        k = g.rng.choice([0, 1, 1, 2, 3]) if not is_lit(d) else g.rng.randint(0, int(d))
        g.need(d, k)
        ktext = kdim = str(k)
    g.count += 2
    names = (f"t{g.count - 1}", f"t{g.count}")
    pair = Node("topk_pair", (x,), {"ktext": ktext, "kdim": kdim, "axis": axis, "shown": shown, "names": names},
                "tuple", (), weak=True)
    shape = x.shape[:axis] + (kdim,) + x.shape[axis + 1:]
    part = g.rng.randint(0, 1) if part is None else part
    return Node("topk_part", (pair,), {"part": part, "names": names}, x.dtype if part == 0 else "i64", shape)


LETTERS = "abcdefghijlopqrstuvwzABCDEFGHIJ"   # not n, m, k, y: the renaming of size variables would reach them


def mk_einsum(g: Gen) -> Node | None:
    """einsum of one, two or three operands: contraction over shared dims, diagonals, transposes, outer products."""
    a = g.pick(lambda v: v.dtype != "bool" and v.shape and len(v.shape) <= 3)
    if a is None:
        return None
    ops = [a]
    if g.chance(0.7):
        b = g.pick(lambda v: v.dtype != "bool" and v.shape and len(v.shape) <= 3)
        if b is not None:
            ops.append(b)
        if b is not None and g.chance(0.15):
            c = g.pick(lambda v: v.dtype != "bool" and v.shape and len(v.shape) <= 2)
            if c is not None:
                ops.append(c)
    letters, terms, size_of = iter(g.rng.sample(LETTERS, len(LETTERS))), [], {}
    for op in ops:
        term = ""
        for d in op.shape:
            same = [c for c, e in size_of.items() if e == d and c not in term]
            repeat = [c for c, e in size_of.items() if e == d and c in term]
            if repeat and g.chance(0.15):   # a diagonal
                term += g.rng.choice(repeat)
            elif same and g.chance(0.7):
                term += g.rng.choice(same)
            else:
                c = next(letters)
                size_of[c] = d
                term += c
        terms.append(term)
    used = sorted(set("".join(terms)))
    keep = [c for c in used if g.chance(0.5)]
    g.rng.shuffle(keep)
    spec = ",".join(terms) + "->" + "".join(keep)
    typed = numpy_dtype(lambda *vs: np.einsum(spec, *vs), *ops)
    if typed is None:
        return None
    return Node("einsum", tuple(ops), {"spec": spec}, typed[0], tuple(size_of[c] for c in keep))


def mk_norm(g: Gen) -> Node | None:
    """norm: vector orders over one axis or of a 1-D value, Frobenius over two axes, or of everything."""
    x = g.pick(lambda v: v.shape)
    if x is None:
        return None
    rank = len(x.shape)
    keepdims = g.chance(0.3)
    choice = g.rng.choice(["vector", "vector", "frob", "all"])
    ord_ = g.rng.choice([None, 1, 2, "inf", "-inf", "2.0"])
    if choice == "vector" and rank == 1 and g.chance(0.5):
        axis, axes, text = None, (0,), None
    elif choice == "vector":
        axis, shown = _axis(g, rank)
        axes, text = (axis,), str(shown)
    elif choice == "frob" and rank >= 2:
        axes = tuple(sorted(g.rng.sample(range(rank), 2)))
        shown = tuple(a - rank if g.chance(0.3) else a for a in axes)
        if g.chance(0.3):
            shown = shown[::-1]
        axis, text, ord_ = shown, tup(shown), None
    else:
        axis, axes, text, ord_ = None, tuple(range(rank)), None, None
    if ord_ == "2.0":
        np_ord = 2.0
    else:
        np_ord = ord_
    shape = tuple(("1" if keepdims else None) if i in axes else d for i, d in enumerate(x.shape))
    dtype = x.dtype if x.dtype in ("f32", "f64") else "f64"
    return Node("norm", (x,), {"ord": np_ord if ord_ != "2.0" else 2.0, "axis": axis if axis is None or
                               isinstance(axis, tuple) else axes[0], "axis_text": text, "keepdims": keepdims},
                dtype, tuple(d for d in shape if d is not None))


def mk_scatter(g: Gen, x: Node | None = None) -> Node | None:
    """scatter_add into a value along an axis (repeated indices), or take_along_axis (not when x is given)."""
    given = x is not None
    x = x or g.pick(lambda v: v.shape and v.dtype != "bool")
    if x is None:
        return None
    rank = len(x.shape)
    axis, shown = _axis(g, rank)
    d = x.shape[axis]
    if not given and g.chance(0.5):   # take_along_axis: idx of x's rank
        shape = tuple(g.dim() if i == axis else (x.shape[i] if g.chance(0.8) else "1") for i in range(rank))
        idx = g.param(g.rng.choice(["i64", "i32"]), shape, index_for=d)
        out = tuple(idx.shape[i] if i == axis else broadcast((x.shape[i],), (idx.shape[i],))[0] for i in range(rank))
        return Node("take_along", (x, idx), {"axis": axis, "shown": shown}, x.dtype, out)
    idx = g.param(g.rng.choice(["i64", "i64", "i32"]), g.shape(max_rank=2), index_for=d)
    target = x.shape[:axis] + idx.shape + x.shape[axis + 1:]
    ok = [v for v in g.pool if not v.weak and v.dtype != "bool" and broadcast(v.shape, target) == target
          and np.can_cast(NP[v.dtype], NP[x.dtype], "safe")
          and not (hasattr(g, "scope") and v is x and "scatter-add-values-alias-carried" in AVOID)]
    if ok and g.chance(0.6):
        values = g.rng.choice(ok)
    elif g.chance(0.5):
        values = g.param(x.dtype, target)
        g.pool.pop()
    else:
        values = lit(g.rng.choice([1, 2, -1]) if x.dtype.startswith("i") else g.rng.choice([0.5, 1.0, -2.0, 1]))
    if shown == 0 and g.chance(0.5):
        shown = None
    return Node("scatter_add", (x, idx, values), {"axis": axis, "shown": shown}, x.dtype, x.shape)


def mk_conv(g: Gen) -> Node | None:
    """conv1d / conv2d of a value of rank 3 / 4 (or a new parameter) with a new kernel parameter; pools."""
    kind = g.rng.choice(["conv1d", "conv2d", "max_pool2d", "avg_pool2d"])
    rank = 3 if kind == "conv1d" else 4
    x = g.pick(lambda v: len(v.shape) == rank and is_simple(v.shape[1]) and (v.dtype != "bool" or "pool" in kind))
    if x is None or g.chance(0.3):
        dtype = g.rng.choice(["f32", "f64", "f64", "i32", "i64"] + (["bool"] if "pool" in kind else []))
        x = g.param(dtype, tuple(g.dim() for _ in range(rank)))
    spatial = x.shape[2:]
    if "pool" in kind:
        size = g.rng.choice([1, 2, 2, 3])
        size = min([size] + [int(d) for d in spatial if is_lit(d)])   # a window past a literal size: compile error
        if size == 0:
            return None
        stride = g.rng.choice([size, size, 1, 2])
        for d in spatial:
            g.need(d, size)
        shape = x.shape[:2] + tuple(conv_dim(d, size, stride, 0, 0) for d in spatial)
        dtype = x.dtype if kind == "max_pool2d" else ("f32" if x.dtype == "f32" else "f64")
        return Node("pool", (x,), {"fn": kind, "size": size, "stride": stride}, dtype, shape)
    ks = tuple(g.rng.choice([1, 2, 3, 3]) for _ in spatial)
    cout = g.rng.choice(["1", "2", "3"] + g.vars)
    w = g.param(g.rng.choice(["f32", "f64", "f64", "i32", "i64"] if x.dtype.startswith("i") or g.chance(0.2)
                             else [x.dtype]), (cout, x.shape[1]) + tuple(str(k) for k in ks))
    g.pool.pop()
    padding = g.rng.choice([0, 0, 1, 2, "same", "valid"])
    stride = 1 if padding == "same" else g.rng.choice([1, 1, 2, 3])
    node = Node("conv", (x, w), {"fn": kind, "stride": stride, "padding": padding, "show": g.chance(0.2)})
    pads = _pads(node, ks)
    for d, (a, b), k in zip(spatial, pads, ks):
        if is_lit(d) and int(d) + a + b < k:
            return None
        g.need(d, max(0, k - a - b))
    typed = numpy_dtype(lambda p, q: np.einsum("...,...->...", p, q), x, w)
    if typed is None:
        return None
    node.dtype = typed[0]
    node.shape = x.shape[:1] + (cout,) + tuple(conv_dim(d, k, stride, a, b) for d, k, (a, b) in zip(spatial, ks, pads))
    return node


KEY_LITERALS = (0, 1, 7, 12345, 2**63 - 1, 9223372036854775813)


def key_node(g: Gen) -> Node:
    """A key: a literal, an integer scalar parameter, a loop variable, or fold_in of one."""
    loops = [q for q, *_ in getattr(g, "loops", [])]
    if loops and g.chance(0.5):
        base = g.rng.choice(loops)
    elif g.chance(0.4) and not hasattr(g, "scope"):
        base = g.param(g.rng.choice(["i64", "i64", "i32"]), ())
        g.pool.pop()
    else:
        value = g.rng.choice(KEY_LITERALS)
        base = Node("lit", attrs={"value": value}, dtype="i64", weak=True)
    if g.chance(0.35):
        other = g.rng.choice(loops) if loops and g.chance(0.6) else lit(g.rng.choice([0, 1, 2, 5, -1]))
        return Node("fold_in", (base, other), {}, "i64", ())
    return base


def mk_random(g: Gen) -> Node | None:
    """rand, randn, randint, bernoulli (of a shape from the program), or fold_in of an integer array."""
    kind = g.rng.choice(["rand", "randn", "randint", "bernoulli", "fold_in"])
    like = g.pick(lambda v: all(is_simple(d) for d in v.shape))
    shape = like.shape if like is not None and g.chance(0.6) else g.shape()
    key = key_node(g)
    if kind == "fold_in":
        i = g.pick(lambda v: v.dtype in ("i32", "i64") and v.shape)
        if i is None:
            return Node("fold_in", (key, lit(g.rng.randint(0, 9))), {}, "i64", ())
        return Node("fold_in", (key, i) if g.chance(0.6) else (i, key), {}, "i64", i.shape)
    if kind == "bernoulli":
        p = lit(g.rng.choice([0.0, 0.25, 0.5, 0.9, 1.0, -0.5, 1.5, 1])) if like is None or g.chance(0.5) else None
        if p is None:
            p = like if like.dtype != "bool" and like.shape else lit(0.5)
            shape = p.shape if p.shape else shape
        return Node("bernoulli", (key, p), {"shape": shape}, "bool", shape)
    if kind == "randint":
        dt = g.rng.choice([None, "i32", "i64"])
        bound = 2**31 if dt == "i32" else 2**63
        low, high = sorted(g.rng.sample([-5, 0, 1, 3, 10, 1 - bound, bound - 1, 1000], 2))
        return Node("randint", (key,), {"shape": shape, "dt": dt, "low": low, "high": high}, dt or "i64", shape)
    dt = g.rng.choice([None, "f32", "f64"])
    return Node(kind, (key,), {"shape": shape, "dt": dt}, dt or "f64", shape)


MAKERS12 = ((mk_cum, 2), (mk_sort, 2), (mk_einsum, 2), (mk_norm, 1.5), (mk_scatter, 2), (mk_conv, 1.5),
            (mk_random, 1.5))


CONTROL_MAKERS12 = ((mk_cum, 0.5), (mk_sort, 0.3), (mk_einsum, 0.4), (mk_norm, 0.3), (mk_random, 0.8), (mk_scatter, 0.8))


# ---------------------------------------------------------------------------------------------------------
# grads: section-12 ops on the way from x0 to the scalar (linear, smooth, or kinked: then no finite differences)

def _reshape(a: Node, dims: tuple) -> Node:
    return Node("reshape", (a,), {"dims": list(dims)}, a.dtype, tuple(dims))


def grad12(g: Gen, a: Node) -> tuple:
    """(node, smooth) of a differentiable section-12 op of `a` (a float value of the grad's dtype)."""
    rng = g.rng
    kind = rng.choice(["cumsum", "cumprod", "sort", "top_k", "einsum", "norm", "take_along", "scatter", "take",
                       "conv1d", "conv2d", "pool", "rand"])
    rank = len(a.shape)
    if kind in ("cumsum", "cumprod"):
        axis = rng.randrange(rank) if rank and rng.random() < 0.7 else None
        shape = a.shape if axis is not None else (dim_of_size(a.shape),)
        return Node("cum", (a,), {"fn": kind, "axis": axis, "shown": axis}, a.dtype, shape), True
    if kind in ("sort", "top_k") and rank:
        axis, shown = _axis(g, rank)
        if kind == "sort":
            return Node("sort", (a,), {"fn": "sort", "axis": axis, "shown": shown}, a.dtype, a.shape), True
        return top_k_part(g, a, axis, shown, part=0), True
    if kind == "einsum":
        node = mk_einsum(g)
        if node is not None and node.dtype == a.dtype:
            return node, True
    if kind == "norm" and rank:
        ord_ = rng.choice([None, 2, 2, 1, "inf"])
        axis = rng.randrange(rank) if rng.random() < 0.6 else None
        if axis is None and rank == 2:
            ord_ = None
        shape = tuple(d for i, d in enumerate(a.shape) if axis is not None and i != axis)
        return (Node("norm", (a,), {"ord": ord_, "axis": axis, "axis_text": None if axis is None else str(axis),
                                    "keepdims": False}, a.dtype, shape), ord_ in (None, 2))
    if kind in ("take_along", "scatter", "take") and rank:
        axis = rng.randrange(rank)
        d = a.shape[axis]
        if kind == "take_along":
            shape = tuple(rng.choice(["2", "3"]) if i == axis else a.shape[i] for i in range(rank))
            idx = g.param("i64", shape, index_for=d)
            return Node("take_along", (a, idx), {"axis": axis, "shown": axis}, a.dtype, shape), True
        idx = g.param("i64", (rng.choice(["2", "3", "4"]),), index_for=d)
        if kind == "take":
            return Node("take", (a, idx), {"axis": axis}, a.dtype, a.shape[:axis] + idx.shape + a.shape[axis + 1:]), True
        target = a.shape[:axis] + idx.shape + a.shape[axis + 1:]
        other = g.pick(lambda v: v.dtype == a.dtype and broadcast(v.shape, target) == target)
        values = other if other is not None else lit(rng.choice([0.5, 2.0]))
        base = g.pick(lambda v: v.dtype == a.dtype and v.shape == a.shape and v is not a) if other is a else None
        if rng.random() < 0.5 or base is None:   # gradient through values (a gathered adjoint) or through x
            return Node("scatter_add", (base or a, idx, values), {"axis": axis, "shown": axis}, a.dtype, a.shape), True
        return Node("scatter_add", (base, idx, a), {"axis": axis, "shown": axis}, a.dtype, base.shape), True
    if kind == "conv1d" and rank in (1, 2):
        x3 = _reshape(a, ("1",) * (3 - rank) + a.shape)
        kw = rng.choice([1, 2, 3])
        w = g.param(a.dtype, ("2", x3.shape[1], str(kw)))
        g.pool.pop()
        node = Node("conv", (x3, w), {"fn": "conv1d", "stride": 1, "padding": "same"}, a.dtype,
                    ("1", "2", x3.shape[2]))
        return node, True
    if kind in ("conv2d", "pool") and rank in (1, 2):
        x4 = _reshape(a, ("1",) * (4 - rank) + a.shape)
        if kind == "conv2d":
            ks = (rng.choice([1, 2, 3]), rng.choice([1, 2, 3]))
            w = g.param(a.dtype, ("2", "1") + tuple(map(str, ks)))
            g.pool.pop()
            return Node("conv", (x4, w), {"fn": "conv2d", "stride": 1, "padding": "same"}, a.dtype,
                        ("1", "2") + x4.shape[2:]), True
        # padded by a 1x1 convolution, so that a pool of 2 or 3 fits any size from 1 up
        w = g.param(a.dtype, ("1", "1", "1", "1"))
        g.pool.pop()
        padded = Node("conv", (x4, w), {"fn": "conv2d", "stride": 1, "padding": 1}, a.dtype,
                      ("1", "1") + tuple(dim_minus(d, -2) for d in x4.shape[2:]))
        fn = rng.choice(["max_pool2d", "avg_pool2d"])
        size = rng.choice([2, 3])
        stride = rng.choice([1, 2, size])
        shape = ("1", "1") + tuple(conv_dim(d, size, stride, 0, 0) for d in padded.shape[2:])
        return Node("pool", (padded,), {"fn": fn, "size": size, "stride": stride}, a.dtype, shape), \
            fn == "avg_pool2d"
    if kind == "rand" and all(is_simple(d) for d in a.shape):
        r = Node(rng.choice(["rand", "randn"]), (lit(rng.choice(KEY_LITERALS[:4])),),
                 {"shape": a.shape, "dt": a.dtype}, a.dtype, a.shape)
        return Node("bin", (a, r), {"fn": "*"}, a.dtype, a.shape), True
    return None, True
