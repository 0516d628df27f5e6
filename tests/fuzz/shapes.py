"""Generator makers for shape operations: subscripts, layout changes, reshape, concat/stack, take, creation."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .tree import dim_add, dim_mul, is_lit, is_simple, Node, NP, numpy_dtype

if TYPE_CHECKING:   # the generator's state; gen.py imports this module
    from .gen import Gen


def slice_sub(g: Gen, d: str, trim: bool = False):
    """A random subscript of an axis of length `d`: (subscript, resulting dim or None if removed)."""
    simple, length = is_simple(d), int(d) if is_lit(d) else None
    options = ["all", "rev"] + (["every2"] if length is not None or simple else [])
    if simple:
        options += ["from", "tail", "head", "drop_end", "between", "int", "int_neg"]
    choice = "from" if trim and simple else g.rng.choice(options)
    a = g.rng.choice([1, 2]) if length is None else g.rng.randint(0, length)
    if choice == "all":
        return ("s", None, None, None, 0), d
    if choice == "rev":
        return ("s", None, None, -1, 0), d
    if choice == "every2":
        new = str((length + 1) // 2) if length is not None else f"({d} + 1) // 2"
        return ("s", None, None, 2, 0), new
    if length is not None and choice in ("int", "int_neg") and length == 0:
        return ("s", None, None, None, 0), d
    if choice in ("int", "int_neg"):
        i = g.rng.randrange(length) if length else g.rng.choice([0, 1])
        i = i - (length or (i + 1)) if choice == "int_neg" else i
        g.need(d, i + 1 if i >= 0 else -i)
        return ("i", i), None
    if choice in ("tail", "drop_end") and a == 0:   # -0 is 0: x[-0:] is all of x, x[:-0] none of it
        return ("s", None, None, None, 0), d
    g.need(d, a)
    if choice == "from":
        return ("s", a, None, None, a), (str(length - a) if length is not None else f"{d} - {a}")
    if choice == "tail":
        return ("s", -a, None, None, a), str(a)
    if choice == "head":
        return ("s", None, a, None, a), str(a)
    if choice == "drop_end":
        return ("s", None, -a, None, a), (str(length - a) if length is not None else f"{d} - {a}")
    lo = g.rng.randint(0, a)
    return ("s", lo, a, None, a), str(a - lo)


def mk_index(g: Gen) -> Node | None:
    """A subscript: slices, integers, None and maybe a leading `...`."""
    x = g.pick(lambda v: v.shape)
    if x is None:
        return None
    rank = len(x.shape)
    count = g.rng.randint(1, rank)
    ellipsis = count < rank and g.chance(0.4)
    axes = range(rank - count, rank) if ellipsis else range(count)
    subs, out = ([("ell",)], list(x.shape[: rank - count])) if ellipsis else ([], [])
    trim = g.chance(0.2)   # x[1:, 1:]: every axis cut at the front (issue 11, item 2)
    for axis in axes:
        if g.chance(0.15):
            subs.append(("none",))
            out.append("1")
        sub, d = slice_sub(g, x.shape[axis], trim)
        subs.append(sub)
        out += [d] if d is not None else []
    if not ellipsis:
        out += list(x.shape[count:])
    if g.chance(0.15):
        subs.append(("none",))
        out.insert(len(out) - (rank - count if not ellipsis else 0), "1")
    return Node("index", (x,), {"subs": subs}, x.dtype, tuple(out))


def mk_layout(g: Gen) -> Node | None:
    """A layout op: .T, transpose, reshape, expand_dims, squeeze, flip, broadcast_to."""
    x = g.pick()
    if x is None:
        return None
    rank, shape = len(x.shape), x.shape
    kind = g.rng.choice(["T", "transpose", "reshape", "expand_dims", "squeeze", "flip", "broadcast_to"])
    if kind in ("T", "transpose") and rank >= 1:
        perm = tuple(range(rank))[::-1] if kind == "T" else tuple(g.rng.sample(range(rank), rank))
        return Node(kind, (x,), {"perm": perm}, x.dtype, tuple(shape[p] for p in perm))
    if kind == "reshape" and all(is_simple(d) for d in shape):
        return mk_reshape(g, x)
    if kind == "expand_dims":
        axis = g.rng.randint(-rank - 1, rank)
        out = list(shape)
        out.insert(axis % (rank + 1), "1")
        return Node("expand_dims", (x,), {"axis": axis}, x.dtype, tuple(out))
    if kind == "squeeze" and "1" not in shape:   # make an axis to squeeze
        x = Node("expand_dims", (x,), {"axis": 0}, x.dtype, ("1",) + shape)
        shape = x.shape
    if kind == "squeeze":
        ones = [i for i, d in enumerate(shape) if d == "1"]
        axis = None if g.chance(0.4) else g.rng.choice(ones)
        out = tuple(d for i, d in enumerate(shape) if (d != "1" if axis is None else i != axis))
        return Node("squeeze", (x,), {"axis": axis}, x.dtype, out)
    if kind == "flip" and rank >= 1:
        axis = None if g.chance(0.4) else g.rng.randrange(-rank, rank)
        return Node("flip", (x,), {"axis": axis}, x.dtype, shape)
    if kind == "broadcast_to" and all(is_simple(d) for d in shape) and rank < 4:
        out = tuple(g.dim() for _ in range(g.rng.randint(0, 1))) + tuple(g.dim() if d == "1" else d for d in shape)
        return Node("broadcast_to", (x,), {}, x.dtype, out)
    return None


def mk_reshape(g: Gen, x: Node) -> Node:
    """Flatten, merge two neighbouring axes, or add an axis of length 1; one dim may be -1."""
    shape, rank = list(x.shape), len(x.shape)
    choice = g.rng.choice(["flat", "merge", "unit"])
    if choice == "flat" or rank < 2 and choice == "merge":
        out = [dim_mul(shape)] if shape else ["1"]
    elif choice == "merge":
        i = g.rng.randrange(rank - 1)
        out = shape[:i] + [dim_mul(shape[i:i + 2])] + shape[i + 2:]
    else:
        out = shape[:]
        out.insert(g.rng.randint(0, rank), "1")
    written = list(out)
    if g.chance(0.5):
        written[g.rng.randrange(len(written))] = -1
    return Node("reshape", (x,), {"dims": written}, x.dtype, tuple(out))


def mk_join(g: Gen) -> Node | None:
    """concat or stack of a value with itself or one of the same shape."""
    a = g.pick()
    if a is None:
        return None
    stack = not a.shape or g.chance(0.4)
    rank = len(a.shape)
    axis = g.rng.randint(-rank - 1, rank) if stack else g.rng.randrange(-rank, rank)
    same = [v for v in g.pool if not v.weak and (v.dtype == "bool") == (a.dtype == "bool") and len(v.shape) == rank
            and all(d == e or (not stack and i == axis % rank) for i, (d, e) in enumerate(zip(v.shape, a.shape)))]
    b = g.rng.choice(same + [a])
    typed = numpy_dtype(lambda p, q: np.stack([p, q]) if stack else np.concatenate([p, q]), a, b)
    if typed is None:
        return None
    if stack:
        out = list(a.shape)
        out.insert(axis % (rank + 1), "2")
    else:
        out = list(a.shape)
        out[axis % rank] = dim_add(a.shape[axis % rank], b.shape[axis % rank])
    return Node("stack" if stack else "concat", (a, b), {"axis": axis}, typed[0], tuple(out))


def mk_take(g: Gen) -> Node | None:
    """take with a new index parameter (or an integer value of the pool)."""
    x = g.pick(lambda v: v.shape)
    if x is None:
        return None
    axis = g.rng.randrange(len(x.shape))
    idx = g.pick(lambda v: v.dtype in ("i32", "i64") and len(v.shape) <= 2) if g.chance(0.25) else None
    if idx is None:
        idx = g.param(g.rng.choice(["i64", "i64", "i32"]), g.shape(max_rank=2), index_for=x.shape[axis])
    out = x.shape[:axis] + idx.shape + x.shape[axis + 1:]
    shown = axis - len(x.shape) if g.chance(0.3) else axis
    return Node("take", (x, idx), {"axis": shown}, x.dtype, out)


def mk_create(g: Gen) -> Node | None:
    """zeros, ones, full, arange, eye, one_hot, zeros_like or ones_like."""
    kind = g.rng.choice(["zeros", "ones", "full", "arange", "eye", "one_hot", "like"])
    dt = g.rng.choice([None, "f32", "f64", "i32", "i64", "bool"])
    shape = g.shape()
    if kind in ("zeros", "ones"):
        return Node("zeros", (), {"fn": kind, "dt": dt}, dt or "f64", shape)
    if kind == "full":
        value = g.literal(g.rng.choice(["i64", "f64", "bool"]))
        typed = numpy_dtype(lambda v: np.full((1,), v, NP[dt]) if dt else np.full((1,), v), value)
        return Node("full", (value,), {"dt": dt}, typed[0], shape) if typed else None
    if kind == "arange":
        return Node("arange", (), {}, "i64", (g.dim(),))
    if kind == "eye":
        return Node("eye", (), {"dt": dt}, dt or "f64", (g.dim(),) * 2)
    if kind == "one_hot":
        labels = g.pick(lambda v: v.dtype in ("i32", "i64"))
        if labels is None:
            labels = g.param("i64", g.shape(max_rank=2), index_for=str(g.rng.randint(2, 4)))
            g.pool.append(labels)
        k = str(g.rng.randint(1, 4))
        return Node("one_hot", (labels,), {"dt": dt}, dt or "f64", labels.shape + (k,))
    x = g.pick()
    fn = g.rng.choice(["zeros_like", "ones_like"])
    return Node("like", (x,), {"fn": fn}, x.dtype, x.shape) if x is not None else None
