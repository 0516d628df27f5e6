"""Basic indexing `x[i, a:b:c, None, ...]` as a strided slice followed by a reshape.

A slice never clamps: the axis must be long enough, which is a compile error when
the size is known and a call-time check (naming the parameter) otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import infer
from .dims import Dim, is_nonnegative
from .errors import Location, TdslTypeError
from .graph import Node


@dataclass(frozen=True)
class Sub:
    """One subscript: kind 'int' (start), 'slice' (start, stop, step), 'none' or 'ellipsis';
    the bounds are integers (negative: from the end) or non-negative dim expressions.

    Dynamic subscripts (section 11) hold a graph value: 'dyn' (`value` an integer scalar),
    'dynslice' (`value` the start, `stop` the length as a Dim, `step` > 0, `span` the
    distance from start to stop as written) and 'array' (`value` an integer array: a
    gather, or a scatter on the left of `=`)."""

    kind: str
    start: int | Dim | None = None
    stop: int | Dim | None = None
    step: int | None = None
    value: Node | None = None
    span: Dim | None = None

    @property
    def dynamic(self) -> bool:
        return self.kind in ("dyn", "dynslice", "array")


def _require(dim: Dim, message: str, loc: Location | None, checks: list) -> None:
    """`dim >= 0` must hold: decided now when constant, else checked at call time."""
    if dim.is_const:
        if dim.const < 0:
            raise TdslTypeError(message, loc)
        return
    if is_nonnegative(dim):
        return
    if any(op == ">=" and d == dim for op, d, _ in checks):
        return  # the first message about a condition is the one worth reading
    checks.append((">=", dim, message))


def _axis_slice(dim: Dim, sub: Sub, x: Node, axis: int, loc, checks: list) -> tuple[Dim, int, Dim]:
    """(start, step, length) of one subscript on an axis of size `dim`."""
    # The messages do not quote the subscript: `x[0]` and `x[0:1]` need the same, and say so alike.
    short = f"the index needs a longer axis {axis} of {x.type_str}"
    if sub.kind == "int":  # the checks of the slice `i:i+1`, so that both print alike
        start = dim + sub.start if _negative(sub.start) else Dim.of(sub.start)
        _require(start, short, loc, checks)
        _require(dim - start - 1, short, loc, checks)
        return start, 1, Dim.of(1)
    step = 1 if sub.step is None else sub.step
    if step == 0:
        raise TdslTypeError("a slice step cannot be zero", loc)

    def bound(value, default):
        if value is None:
            return default
        return dim + value if _negative(value) else Dim.of(value)

    if step > 0:
        start, stop = bound(sub.start, Dim.of(0)), bound(sub.stop, dim)
        low, high = start, stop
    else:
        start, stop = bound(sub.start, dim - 1), bound(sub.stop, Dim.of(-1))
        low, high = stop + 1, start + 1
    # The slice walks the half-open range [low, high), which must lie on the axis (no clamping):
    # 0 <= low <= high <= dim. A slice written backwards (`x[3:1]`) is empty, but still on the axis.
    span = high - low
    if span.is_const and span.const < 0:
        for end in (low, high):
            _require(end, short, loc, checks)
            _require(dim - end, short, loc, checks)
        return Dim.of(0), step, Dim.of(0)
    length = (span + (abs(step) - 1)) // abs(step)
    _require(low, short, loc, checks)
    if step > 1:
        # a stepped slice reads start, start + step, ...: its last element must lie on the axis
        # (its written stop may pass the end, as NumPy's does when the count is the same)
        _require(dim - 1 - (start + (length - 1) * step), short, loc, checks)
    else:
        _require(dim - high, short, loc, checks)
    _require(span, short, loc, checks)  # with literal bounds, a negative span means a short axis
    return start, step, length


def _negative(value) -> bool:
    return isinstance(value, int) and value < 0


def expand(x: Node, subs: list[Sub], loc: Location | None) -> list[Sub]:
    """`subs` with the '...' (explicit or implied at the end) replaced by full slices."""
    if sum(s.kind == "ellipsis" for s in subs) > 1:
        raise TdslTypeError("an index can hold only one '...'", loc)
    consuming = sum(s.kind not in ("none", "ellipsis") for s in subs)
    if consuming > x.ndim:
        raise TdslTypeError(f"too many indices ({consuming}) for {x.type_str}", loc)
    if not any(s.kind == "ellipsis" for s in subs):
        subs = list(subs) + [Sub("ellipsis")]
    expanded: list[Sub] = []
    for s in subs:
        expanded.extend([Sub("slice")] * (x.ndim - consuming) if s.kind == "ellipsis" else [s])
    return expanded


def region(x: Node, expanded: list[Sub], loc: Location | None):
    """(starts, steps, lengths, checks, final shape) of static subscripts on `x`."""
    starts, steps, lengths, checks, final = [], [], [], [], []
    axis = 0
    for s in expanded:
        if s.kind == "none":
            final.append(Dim.of(1))
            continue
        start, step, length = _axis_slice(x.shape[axis], s, x, axis, loc, checks)
        starts.append(start)
        steps.append(step)
        lengths.append(length)
        if s.kind == "slice":
            final.append(length)
        axis += 1
    return starts, steps, lengths, checks, final


def index(x: Node, subs: list[Sub], loc: Location | None) -> Node:
    """x[subs]: integers drop an axis, slices keep it, None adds one, ... fills the rest."""
    expanded = expand(x, subs, loc)
    if any(s.dynamic for s in expanded):
        from .updates import dynamic_index
        return dynamic_index(x, expanded, loc)
    starts, steps, lengths, checks, final = region(x, expanded, loc)
    if x.op == "const" and all(d.is_const for d in (*starts, *lengths, *final)):
        return _const_index(x, starts, steps, lengths, final, loc)
    out = x
    if any(not (st == 0 and sp == 1 and ln == d) for st, sp, ln, d in zip(starts, steps, lengths, x.shape)):
        out = infer.slice_node(x, starts, steps, lengths, checks, loc)
    return infer.reshape(out, tuple(final), loc)


def _const_index(x: Node, starts, steps, lengths, final, loc: Location | None) -> Node:
    """A static subscript of a const is a const, weak as the const is (`L[1]` of a const array
    literal is a Python scalar to NumPy: `x_f32 + L[1]` stays f32)."""
    from .limits import const_value
    value = const_value(x)
    if x.ndim:
        value = value[np.ix_(*[st.const + sp * np.arange(ln.const, dtype=np.int64)
                               for st, sp, ln in zip(starts, steps, lengths)])]
    value = value.reshape(tuple(d.const for d in final))
    return infer.const(_nested(value.tolist()), x.dtype, value.shape, x.weak, loc)


def _nested(v):
    return tuple(_nested(e) for e in v) if isinstance(v, list) else v


def flip_axes(x: Node, axes: tuple[int, ...], loc: Location | None) -> Node:
    """Reverse the order of the elements along each of `axes`."""
    if not axes:
        return x
    subs = [Sub("slice", step=-1) if i in axes else Sub("slice") for i in range(x.ndim)]
    return index(x, subs, loc)
