"""Dynamic subscripts and indexed updates (section 11).

Static subscripts (integers and dim expressions) make strided views (indexing.py).
A subscript that is a value known only at run time reads through `take`, which
counts negatives from the end and checks the range as NumPy does; a dynamic slice
`x[j:j + k]` gathers `k` positions from `j`. On the left of `=`, the same
subscripts make an `update` (a strided region replaced) or a `scatter` (positions
along one axis replaced, the last write winning, as NumPy's assignment).
"""
from __future__ import annotations

from . import infer
from .dims import Dim
from .dtypes import can_cast_safe, kind
from .errors import Location, TdslTypeError
from .graph import Node, make_attrs
from .indexing import Sub, expand, region

_KIND_ORDER = ["bool", "int", "float"]


def _positions(axes: list[Sub], ints_drop: bool = True) -> list[int | None]:
    """For each subscript, the axis it leaves in the static view (None: an integer drops it, or
    None adds one); with `ints_drop` false, the axis of `x` it reads instead."""
    out, at = [], 0
    for s in axes:
        if s.kind == "none":
            at += ints_drop
            out.append(None)
        elif s.kind == "int" and ints_drop:
            out.append(None)
        else:
            out.append(at)
            at += 1
    return out


def _static_part(expanded: list[Sub]) -> list[Sub]:
    return [Sub("slice") if s.dynamic else s for s in expanded]


def _check_arrays(expanded: list[Sub], loc) -> None:
    arrays = [s for s in expanded if s.kind == "array"]
    if len(arrays) > 1:
        raise TdslTypeError("an index can hold only one integer-array subscript", loc,
                            hint="index one axis at a time")
    if arrays and any(s.kind in ("int", "dyn") for s in expanded):
        raise TdslTypeError("an integer-array subscript combines only with slices here", loc,
                            hint="index the integer axes first, in a separate step")


def gather_index(s: Sub, extent: Dim, loc: Location | None) -> Node:
    """The i64 positions a dynamic subscript reads on an axis of `extent`."""
    if s.kind != "dynslice":
        return infer.cast(s.value, "i64", loc)
    start = infer.cast(s.value, "i64", loc)
    zero = infer.const(0, "i64", (), True, loc)
    n = _dim(extent, loc)
    span = _dim(s.stop if s.span is None else s.span, loc)
    # NumPy's slice of these bounds: each bound wrapped once if negative, then clamped to the axis;
    # its count is (stop - start) / step rounded up. When that count is the written length, the
    # positions are NumPy's; otherwise the first position is made out of range, so take reports it.
    def on_axis(bound: Node) -> Node:
        wrapped = infer.elementwise("where", [infer.elementwise("lt", [bound, zero], loc),
                                             infer.elementwise("add", [bound, n], loc), bound], loc)
        return infer.elementwise("minimum", [infer.elementwise("maximum", [wrapped, zero], loc), n], loc)
    first_on = on_axis(start)
    stop_on = on_axis(infer.elementwise("add", [start, span], loc))
    step = infer.const(s.step, "i64", (), True, loc)
    count = infer.elementwise("floordiv", [infer.elementwise(
        "add", [infer.elementwise("sub", [stop_on, first_on], loc), infer.const(s.step - 1, "i64", (), True, loc)],
        loc), step], loc)
    count = infer.elementwise("maximum", [count, zero], loc)
    bad = infer.elementwise("ne", [count, _dim(s.stop, loc)], loc)
    first = infer.elementwise("where", [bad, n, first_on], loc)
    steps = infer.iota(s.stop, loc)
    if s.step != 1:
        steps = infer.elementwise("mul", [steps, infer.const(s.step, "i64", (), True, loc)], loc)
    return infer.elementwise("add", [steps, first], loc)


def _dim(d: Dim, loc) -> Node:
    from .builtins import dim_node
    return infer.cast(dim_node(d, loc), "i64", loc)


def dynamic_index(x: Node, expanded: list[Sub], loc: Location | None) -> Node:
    """x[subs] with some run-time subscripts: the static ones as a view, then one gather per
    dynamic one, from the last axis to the first (so the earlier axes keep their places)."""
    _check_arrays(expanded, loc)
    from .indexing import index
    view = index(x, _static_part(expanded), loc)
    positions = _positions(expanded)
    axis_of_x = _positions(expanded, ints_drop=False)
    for s, at, ax in reversed(list(zip(expanded, positions, axis_of_x))):
        if s.dynamic:
            view = infer.take(view, gather_index(s, x.shape[ax], loc), at, loc, s.kind == "dynslice")
    return view



def storable(v: Node, x: Node, loc: Location | None) -> Node:
    """`v` in `x`'s dtype, if it converts safely (a weak literal adapts, as NumPy's)."""
    if v.dtype == x.dtype:
        return v
    weak_ok = v.weak and _KIND_ORDER.index(kind(v.dtype)) <= _KIND_ORDER.index(kind(x.dtype))
    if not (weak_ok or can_cast_safe(v.dtype, x.dtype)):
        raise TdslTypeError(f"cannot store a {v.type_str} value into {x.type_str} without a cast", loc,
                            hint=f"cast with {x.dtype}(...)")
    return infer.cast(v, x.dtype, loc)


def set_item(x: Node, subs: list[Sub], v: Node, loc: Location | None) -> Node:
    """A copy of `x` with `x[subs]` replaced by `v` (broadcast, converted safely)."""
    if x.ndim == 0 and not subs:
        raise TdslTypeError("a scalar has no elements to update; assign it", loc)
    expanded = expand(x, subs, loc)
    _check_arrays(expanded, loc)
    v = storable(v, x, loc)
    if not any(s.dynamic for s in expanded):
        return _update(x, expanded, v, loc)
    if any(s.kind == "none" for s in expanded):
        raise TdslTypeError("None cannot be combined with a run-time subscript on the left of '='", loc)
    j = next(i for i, s in enumerate(expanded) if s.dynamic)
    pre = expanded[:j]
    if any(not _full(s) for s in pre):
        # update the static region of the leading subscripts, then the rest inside it (without
        # the axes an integer drops, so that its leading subscripts are full slices)
        starts, steps, lengths, checks, _ = region(x, pre + [Sub("slice")] * (x.ndim - j), loc)
        part = infer.slice_node(x, starts, steps, lengths, checks, loc)
        kept = tuple(d for k, d in enumerate(lengths) if k >= j or pre[k].kind != "int")
        inner = [Sub("slice") for s in pre if s.kind != "int"] + expanded[j:]
        part = set_item(infer.reshape(part, kept, loc), inner, v, loc)
        return _write_region(x, starts, steps, lengths, checks, infer.reshape(part, tuple(lengths), loc), loc)
    s, rest = expanded[j], expanded[j + 1:]
    idx = gather_index(s, x.shape[j], loc)
    shape = x.shape[:j] + idx.shape + x.shape[j + 1:]
    if all(_full(r) for r in rest):
        values = infer.broadcast_to(v, shape, loc) if v.shape != shape else v
    else:
        gathered = infer.take(x, idx, j, loc, s.kind == "dynslice")
        values = set_item(gathered, [Sub("slice")] * (j + idx.ndim) + rest, v, loc)
    return scatter(x, idx, values, j, loc, s.kind == "dynslice")


def _full(s: Sub) -> bool:
    return s.kind == "slice" and s.start is None and s.stop is None and s.step in (None, 1)


def _update(x: Node, expanded: list[Sub], v: Node, loc) -> Node:
    starts, steps, lengths, checks, final = region(x, expanded, loc)
    view_shape = tuple(final)
    v = infer.broadcast_to(v, view_shape, loc) if v.shape != view_shape else v
    # the view's axes, without those None added, with those an integer dropped as length 1
    v = infer.reshape(v, tuple(lengths), loc)
    return _write_region(x, starts, steps, lengths, checks, v, loc)


def _write_region(x: Node, starts, steps, lengths, checks, v: Node, loc) -> Node:
    if all(st == 0 and sp == 1 and ln == d for st, sp, ln, d in zip(starts, steps, lengths, x.shape)) \
            and not checks:
        return v if v.shape == x.shape else infer.reshape(v, x.shape, loc)
    attrs = make_attrs(starts=tuple(starts), steps=tuple(steps), shape=tuple(lengths), checks=tuple(checks))
    return Node("update", x.dtype, x.shape, (x, v), attrs, False, loc)


def scatter(x: Node, idx: Node, values: Node, axis: int, loc: Location | None, of_slice: bool = False) -> Node:
    """x with the positions `idx` along `axis` replaced by `values` (shape x's with idx's at axis)."""
    attrs = make_attrs(axis=axis, of_slice=True) if of_slice else make_attrs(axis=axis)
    return Node("scatter", x.dtype, x.shape, (x, infer.cast(idx, "i64", loc), values), attrs, False, loc)


# -- run-time subscripts in the front end -------------------------------------------------

def linear(node: Node) -> tuple[dict, Dim] | None:
    """`node` (an integer scalar) as a sum of coefficients times opaque values plus a Dim, or None."""
    if node.op == "const" and node.ndim == 0 and kind(node.dtype) == "int" and isinstance(node.attr("value"), int):
        return {}, Dim.of(int(node.attr("value")))
    if node.op == "sizevar":
        return {}, Dim.of(node.attr("name"))
    if node.op == "cast" and kind(node.inputs[0].dtype) == "int":
        return linear(node.inputs[0])
    if node.op in ("add", "sub"):
        a, b = linear(node.inputs[0]), linear(node.inputs[1])
        if a is None or b is None:
            return {node: 1}, Dim.of(0)
        sign = 1 if node.op == "add" else -1
        terms = dict(a[0])
        for k, c in b[0].items():
            terms[k] = terms.get(k, 0) + sign * c
        return {k: c for k, c in terms.items() if c}, a[1] + b[1] * sign
    if node.op == "neg":
        a = linear(node.inputs[0])
        if a is not None:
            return {k: -c for k, c in a[0].items()}, -a[1]
    return {node: 1}, Dim.of(0)


def slice_length(start: Node, stop: Node) -> Dim | None:
    """stop - start when it is a dim expression (the run-time parts cancel), else None."""
    a, b = linear(start), linear(stop)
    if a is None or b is None or a[0] != b[0]:
        return None
    return b[1] - a[1]
