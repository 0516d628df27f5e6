"""Section 12's scatters and gathers along an axis: scatter_add, take_along_axis.

Both are primitives of the op table (`GATHER_SCATTER` in ops.py); these builders check
their arguments, broadcast them as NumPy does and cast the values safely, so that the
primitive sees operands of the exact shapes it needs.
"""
from __future__ import annotations

from typing import Callable

from . import infer
from .dims import Dim
from .dtypes import kind
from .errors import Location, TdslTypeError
from .graph import Node, make_attrs


def _indices(idx: Node, name: str, loc: Location | None) -> Node:
    if kind(idx.dtype) != "int":
        raise TdslTypeError(f"{name} needs integer indices, not {idx.dtype}", loc)
    return infer.cast(idx, "i64", loc)


def _array(x: Node, name: str, loc: Location | None) -> None:
    if x.ndim == 0:
        raise TdslTypeError(f"{name} needs an array, not a scalar", loc)


def scatter_add_node(x: Node, idx: Node, values: Node, axis: int, loc: Location | None,
                     along: bool = False) -> Node:
    """x with `values` added at the positions `idx` along `axis` (numpy.add.at); `values` has
    the shape and dtype the positions need (`along`: idx's shape, which has x's rank)."""
    attrs = make_attrs(axis=axis, along=True) if along else make_attrs(axis=axis)
    return Node("scatter_add", x.dtype, x.shape, (x, idx, values), attrs, False, loc)


def scatter_add(loc, x, idx, values, axis=0):
    """`numpy.add.at(copy of x, (slice(None),) * axis + (idx,), values)`."""
    from .builtins import as_node, static_int
    from .updates import storable
    x, idx, values = as_node(x, loc), as_node(idx, loc), as_node(values, loc)
    _array(x, "scatter_add", loc)
    if x.dtype == "bool":
        raise TdslTypeError("scatter_add adds: arithmetic on bool is not allowed", loc,
                            hint="cast x to an integer or float dtype first")
    idx = _indices(idx, "scatter_add", loc)
    axis = infer.normalize_axis(static_int(axis, loc, "an axis"), x.ndim, loc)
    shape = x.shape[:axis] + idx.shape + x.shape[axis + 1:]
    values = storable(values, x, loc)
    if values.shape != shape:
        if not _broadcasts(values.shape, shape):
            raise TdslTypeError(f"scatter_add: values of shape {_shape(values.shape)} do not broadcast to "
                                f"{_shape(shape)} (x's shape with idx's at axis {axis})", loc)
        values = infer.broadcast_to(values, shape, loc)
    return scatter_add_node(x, idx, values, axis, loc)


def take_along_node(x: Node, idx: Node, axis: int, loc: Location | None) -> Node:
    """x read at `idx` along `axis`; x and idx have the same shape but on that axis."""
    return Node("take_along_axis", x.dtype, idx.shape, (x, idx), make_attrs(axis=axis), False, loc)


def take_along_axis(loc, x, idx, axis):
    """NumPy's take_along_axis: idx has x's rank; the other axes broadcast."""
    from .builtins import as_node, static_int
    x, idx = as_node(x, loc), as_node(idx, loc)
    _array(x, "take_along_axis", loc)
    idx = _indices(idx, "take_along_axis", loc)
    if idx.ndim != x.ndim:
        raise TdslTypeError(f"take_along_axis needs indices of x's rank ({x.ndim}), not of rank {idx.ndim}", loc,
                            hint="add axes of length 1 (expand_dims) to broadcast them")
    axis = infer.normalize_axis(static_int(axis, loc, "an axis"), x.ndim, loc)
    one = Dim.of(1)
    common = infer.broadcast_shapes([x.shape[:axis] + (one,) + x.shape[axis + 1:],
                                     idx.shape[:axis] + (one,) + idx.shape[axis + 1:]], loc)
    x = infer.broadcast_to(x, common[:axis] + (x.shape[axis],) + common[axis + 1:], loc)
    idx = infer.broadcast_to(idx, common[:axis] + (idx.shape[axis],) + common[axis + 1:], loc)
    return take_along_node(x, idx, axis, loc)


def _broadcasts(shape, to) -> bool:
    """Whether an array of `shape` broadcasts to `to` (NumPy's rule: aligned from the end)."""
    if len(shape) > len(to):
        return False
    return all(d == 1 or d == t for d, t in zip(shape[::-1], to[::-1]))


def _shape(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


BUILDERS: dict[str, Callable] = {"scatter_add": scatter_add, "take_along_axis": take_along_axis}

from .builtins import register  # noqa: E402  (see builtins.register)

register(BUILDERS)
