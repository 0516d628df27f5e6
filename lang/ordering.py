"""Section 12's cumulative sums and products, and sorting: cumsum, cumprod, sort, argsort, top_k.

Each builtin is one primitive of the op table (`ORDERING` in ops.py) along one axis, which
the targets run as one routine per row (codegen RowKernel). Their gradients are built of
two more primitives that only gradients use: `cumprod_grad` (the adjoint of cumprod without
dividing by x) and `unsort` (adjoints written back to the positions a sort took them from).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import infer
from .builtins import as_node, static_axes, static_dim
from .dims import Dim, is_nonnegative, shape_size
from .errors import TdslTypeError
from .graph import Node, make_attrs


# -- reference implementations (the op table's `impl`) ---------------------------------

def cumsum_impl(x, axis):
    return np.cumsum(np.asarray(x), axis=axis)


def cumprod_impl(x, axis):
    return np.cumprod(np.asarray(x), axis=axis)


def cumprod_grad_impl(x, g, axis):
    """d/dx_i of sum_j g_j cumprod(x)_j = (prod_{k<i} x_k) * r_i with r_i = g_i + x_{i+1} r_{i+1}:
    a reverse linear recurrence, then the exclusive prefix product (no division by x)."""
    x, g = np.moveaxis(np.asarray(x), axis, -1), np.moveaxis(np.asarray(g), axis, -1)
    r = np.zeros_like(g)
    acc, nxt = np.zeros(g.shape[:-1], g.dtype), np.zeros(g.shape[:-1], g.dtype)
    for i in reversed(range(g.shape[-1])):
        acc = g[..., i] + nxt * acc
        r[..., i], nxt = acc, x[..., i]
    prefix = np.ones(g.shape[:-1], g.dtype)
    for i in range(g.shape[-1]):
        r[..., i] = prefix * r[..., i]
        prefix = prefix * x[..., i]
    return np.moveaxis(r, -1, axis)


def sort_impl(x, axis):
    return np.sort(np.asarray(x), axis=axis, kind="stable")


def argsort_impl(x, axis):
    return np.argsort(np.asarray(x), axis=axis, kind="stable").astype(np.int64)


def top_k_order(x: np.ndarray, axis: int) -> np.ndarray:
    """Positions along `axis` from the largest value down, ties to the lower index, NaN largest."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        nan = np.isnan(x)
        return _lexsort_desc(np.where(nan, 0, -x), ~nan, axis)
    descending = ~x if x.dtype.kind in "iub" else -x   # ~ reverses integer order without overflow
    return np.argsort(descending, axis=axis, kind="stable")


def _lexsort_desc(minor: np.ndarray, major: np.ndarray, axis: int) -> np.ndarray:
    """Stable order by `major` (False first), then `minor` ascending."""
    order = np.argsort(minor, axis=axis, kind="stable")
    again = np.argsort(np.take_along_axis(major, order, axis), axis=axis, kind="stable")
    return np.take_along_axis(order, again, axis)


def top_k_impl(x, axis, k, result):
    x = np.asarray(x)
    order = top_k_order(x, axis)
    first = np.take(order, np.arange(k), axis=axis)
    return np.take_along_axis(x, first, axis) if result == 0 else first.astype(np.int64)


def unsort_impl(g, idx, axis, length):
    g = np.asarray(g)
    shape = list(g.shape)
    shape[axis] = length
    out = np.zeros(shape, g.dtype)
    np.put_along_axis(out, np.asarray(idx), g, axis)
    return out


# -- gradient rules (the op table's `grad`, given autodiff's GradContext) ----------------

def cumsum_grad(d) -> list:
    """The reverse cumulative sum of the adjoint."""
    axis = d.node.attr("axis")
    return [_flip(_row_op("cumsum", _flip(d.g.node, axis, d.loc), axis, d.loc), axis, d.loc)]


def cumprod_grad(d) -> list:
    x, axis = d.node.inputs[0], d.node.attr("axis")
    g = infer.cast(d.g.node, x.dtype, d.loc)
    return [Node("cumprod_grad", x.dtype, x.shape, (x, g), make_attrs(axis=axis), False, d.loc)]


def sort_grad(d) -> list:
    """The adjoint of each sorted value goes back to the position it came from."""
    x, axis = d.node.inputs[0], d.node.attr("axis")
    order = Node("argsort", "i64", x.shape, (x,), make_attrs(axis=axis), False, d.loc)
    return [_unsort(d.g.node, order, x, axis, d.loc)]


def top_k_grad(d) -> list:
    if d.node.attr("result") != 0:
        return [None]
    x, axis = d.node.inputs[0], d.node.attr("axis")
    attrs = dict(d.node.attrs)
    attrs["result"] = 1
    order = Node("top_k", "i64", d.node.shape, (x,), make_attrs(**attrs), False, d.loc)
    return [_unsort(d.g.node, order, x, axis, d.loc)]


def unsort_grad(d) -> list:
    """unsort writes g[j] at position order[j]: its adjoint reads the adjoint back at order[j]
    (a gather along the axis), so gradients of gradients through sort and top_k work."""
    from .scatter import take_along_node
    order, axis = d.node.inputs[1], d.node.attr("axis")
    return [take_along_node(d.g.node, order, axis, d.loc), None]


def cumprod_grad_grad(d) -> list:
    """The gradient of cumprod's adjoint node, through a form of it built from differentiable
    nodes: the adjoint of x_i is sum over j >= i of g_j times the product over k <= j, k != i of
    x_k, that is a cumprod along j of x with x_i replaced by 1 (an n x n intermediate per row,
    only in second derivatives). Its own gradient needs cumprod's first one only."""
    from .autodiff import vjp
    from .builtins import eye
    from .control_grad import _placeholder, substitute
    axis, loc = d.node.attr("axis"), d.loc
    # on placeholders: x and g are independent here even where g is x, or computed from it
    inputs = d.node.inputs
    x, g = (_placeholder(f"_cumprod_{k}", v.dtype, v.shape, loc) for k, v in enumerate(inputs))
    n = x.shape[axis]
    trailing = (Dim.of(1),) * (x.ndim - axis - 1)
    pair = (n, n) + trailing                       # (i, j) at axes (axis, axis + 1)
    diagonal = infer.reshape(infer.cast(eye(loc, n), "bool", loc), pair, loc)
    rows = infer.reshape(x, x.shape[:axis] + (Dim.of(1),) + x.shape[axis:], loc)
    one = infer.const(1, "i64", (), True, loc)
    products = _row_op("cumprod", infer.elementwise("where", [diagonal, one, rows], loc), axis + 1, loc)
    i = infer.reshape(infer.iota(n, loc), (n, Dim.of(1)) + trailing, loc)
    j = infer.reshape(infer.iota(n, loc), (Dim.of(1), n) + trailing, loc)
    upper = infer.elementwise("le", [i, j], loc)
    adjoints = infer.reshape(g, g.shape[:axis] + (Dim.of(1),) + g.shape[axis:], loc)
    terms = infer.elementwise("where", [upper, infer.elementwise("mul", [adjoints, products], loc),
                                        infer.const(0, "i64", (), True, loc)], loc)
    form = infer.reduce("sum", terms, (axis + 1,), False, loc)
    adjoints = vjp([form], [d.g.node], [x, g], loc)
    found = [a for a in adjoints if a is not None]
    back = iter(substitute(found, {x: inputs[0], g: inputs[1]}))
    return [None if a is None else next(back) for a in adjoints]


def _unsort(g: Node, order: Node, x: Node, axis: int, loc) -> Node:
    g = infer.cast(g, x.dtype, loc)
    return Node("unsort", x.dtype, x.shape, (g, order), make_attrs(axis=axis, length=x.shape[axis]), False, loc)


def _flip(x: Node, axis: int, loc) -> Node:
    from .indexing import flip_axes
    return flip_axes(x, (axis,), loc)


# -- the builtins -------------------------------------------------------------------------

def _row_op(op: str, x: Node, axis: int, loc) -> Node:
    return Node(op, x.dtype, x.shape, (x,), make_attrs(axis=axis), False, loc)


def _axis_of(name: str, x: Node, axis, loc) -> tuple[Node, int]:
    """`x` and the axis the routine runs along: no axis flattens `x` (as NumPy), else one axis."""
    axes = static_axes(axis, loc)
    if axes is None:
        return infer.reshape(x, (shape_size(x.shape),), loc), 0
    if not isinstance(axes, int):
        raise TdslTypeError(f"{name} takes one axis (or none), not {axes!r}", loc)
    if x.ndim == 0:
        raise TdslTypeError(f"{name} needs an array, not a scalar {x.type_str}", loc)
    return x, infer.normalize_axis(axes, x.ndim, loc)


def _cumulative(name: str) -> Callable:
    def build(loc, x, axis=None):
        x = as_node(x, loc)
        if x.dtype in ("bool", "i32"):   # NumPy accumulates small integers and bool as int64
            x = infer.cast(x, "i64", loc)
        x, axis = _axis_of(name, x, axis, loc)
        return _row_op(name, x, axis, loc)
    build.__name__ = name
    return build


def sort(loc, x, axis=-1):
    x = as_node(x, loc)
    x, axis = _axis_of("sort", x, axis, loc)
    return _row_op("sort", x, axis, loc)


def argsort(loc, x, axis=-1):
    x = as_node(x, loc)
    x, axis = _axis_of("argsort", x, axis, loc)
    return Node("argsort", "i64", x.shape, (x,), make_attrs(axis=axis), False, loc)


def top_k(loc, x, k, axis=-1):
    """(values, indices): the k largest along the axis, largest first, ties to the lower index."""
    x = as_node(x, loc)
    x, axis = _axis_of("top_k", x, axis, loc)
    k = static_dim(k, loc, "k of top_k")
    n = x.shape[axis]
    checks = []
    for dim, message in ((k, f"top_k's k ({k}) is negative"),
                         (n - k, f"top_k's k ({k}) is larger than the axis length {n}")):
        if dim.is_const and dim.const < 0:
            raise TdslTypeError(message, loc)
        if not is_nonnegative(dim):
            checks.append((">=", dim, message, loc))
    shape = x.shape[:axis] + (k,) + x.shape[axis + 1:]
    nodes = []
    for result, dtype in ((0, x.dtype), (1, "i64")):
        attrs = make_attrs(axis=axis, k=k, result=result, checks=tuple(checks))
        nodes.append(Node("top_k", dtype, shape, (x,), attrs, False, loc))
    return tuple(nodes)


BUILDERS: dict[str, Callable] = {
    "cumsum": _cumulative("cumsum"), "cumprod": _cumulative("cumprod"),
    "sort": sort, "argsort": argsort, "top_k": top_k,
}

from .builtins import register  # noqa: E402  (see builtins.register)

register(BUILDERS)
