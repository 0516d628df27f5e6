"""Type and shape checking: building a primitive node checks its operands and infers its type.

Every function here takes input nodes and a source location and returns a new
node, or raises `TdslTypeError` at that location. Implied conversions become
explicit `cast` nodes, so an elementwise op always sees operands of one dtype.
"""
from __future__ import annotations

import numpy as np

from .dims import Dim, is_nonnegative, shape_size, shape_str
from .dtypes import can_cast_safe, float_result, kind, promote, to_numpy
from .errors import Location, TdslTypeError
from .graph import Node, make_attrs
from .limits import const_value  # noqa: F401  (the front end reads literals through infer)
from .ops import OPS

# Operators written with symbols keep weak operands weak (Python scalar arithmetic);
# named builtins return NumPy scalars, which are strong.
OPERATOR_OPS = frozenset(name for name, op in OPS.items() if op.symbol)

BOOL_HINT = "cast first, e.g. i64(x) or f32(x)"


def broadcast_shapes(shapes: list[tuple[Dim, ...]], loc: Location | None) -> tuple[Dim, ...]:
    """NumPy broadcasting on symbolic shapes: equal dims or a literal 1 combine."""
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for axis in range(rank):
        dim = Dim.of(1)
        for shape in shapes:
            offset = axis - (rank - len(shape))
            if offset < 0:
                continue
            d = shape[offset]
            if d == 1 or d == dim:
                continue
            if dim == 1:
                dim = d
                continue
            described = ", ".join(shape_str(s) or "[]" for s in shapes)
            raise TdslTypeError(f"shapes {described} do not broadcast: {dim} against {d} "
                                f"on axis {axis - rank}", loc)
        out.append(dim)
    return tuple(out)


def const(value, dtype: str, shape: tuple = (), weak: bool = True, loc: Location | None = None) -> Node:
    """A literal: `value` a Python scalar or nested tuple of scalars."""
    if kind(dtype) != "int":  # 0 and 0.0 are one f64 literal (integers stay exact: they may not fit yet)
        value = _as_python_kind(value, float if kind(dtype) == "float" else bool)
    return Node("const", dtype, tuple(Dim.of(d) for d in shape), (), make_attrs(value=value), weak, loc)


def _as_python_kind(value, py_type):
    if isinstance(value, tuple):
        return tuple(_as_python_kind(v, py_type) for v in value)
    return py_type(value)


def _to_python(arr: np.ndarray):
    return arr.item() if arr.ndim == 0 else tuple(_to_python(a) for a in arr)


def _check_fits(value, dtype: str, loc: Location | None) -> None:
    """An integer literal must fit the integer dtype it ends up with."""
    info = np.iinfo(to_numpy(dtype))
    flat = [v for v in np.asarray(value, dtype=object).ravel()]
    for v in flat:
        if v < info.min or v > info.max:
            text = str(v) if len(str(v)) <= 24 else f"{str(v)[:10]}... ({len(str(v))} digits)"
            raise TdslTypeError(f"the literal {text} does not fit {dtype}", loc)


def _has_negative_literal(node: Node) -> bool:
    return node.op == "const" and any(v < 0 for v in np.asarray(node.attr("value"), dtype=object).ravel())


def _outside_i32(node: Node) -> bool:
    if not (node.op == "const" and node.weak and kind(node.dtype) == "int"):
        return False
    info = np.iinfo(np.int32)
    return any(v < info.min or v > info.max for v in np.asarray(node.attr("value"), dtype=object).ravel())


def check_literals(roots: list[Node]) -> None:
    """Every integer literal a graph computes with fits its dtype (Python ints are unbounded)."""
    from .graph import toposort
    for node in toposort(roots):
        if node.op == "const" and kind(node.dtype) == "int":
            _check_fits(node.attr("value"), node.dtype, node.loc)


def cast(node: Node, dtype: str, loc: Location | None = None) -> Node:
    """`node` converted to `dtype`; literals are converted at once."""
    if node.dtype == dtype:
        return node
    if node.op == "const":
        value = node.attr("value")
        if node.weak and kind(node.dtype) == "int" and kind(dtype) == "int":
            _check_fits(value, dtype, loc or node.loc)
        with np.errstate(all="ignore"):
            converted = _to_python(np.asarray(value).astype(to_numpy(dtype)))
        return Node("const", dtype, node.shape, (), make_attrs(value=converted), node.weak, node.loc)
    return Node("cast", dtype, node.shape, (node,), (), False, loc or node.loc)


def elementwise(op_name: str, inputs: list[Node], loc: Location | None) -> Node:
    """An elementwise op, with NumPy's promotion and broadcasting."""
    op = OPS[op_name]
    if op.arity is not None and len(inputs) != op.arity:
        raise TdslTypeError(f"{op_name} takes {op.arity} operands, got {len(inputs)}", loc)
    operands = inputs
    if op.rule == "select":
        if inputs[0].dtype != "bool":
            raise TdslTypeError(f"the condition of where must be bool, not {inputs[0].dtype}", loc,
                                hint="compare first, e.g. where(x > 0, a, b)")
        operands = inputs[1:]
    if op.rule == "logical":
        for x in inputs:
            if x.dtype != "bool":
                raise TdslTypeError(f"'{op_name}' takes bool operands, not {x.dtype}", loc,
                                    hint="compare first, e.g. x > 0")
    if op.rule in ("arith", "float"):
        for x in inputs:
            if x.dtype == "bool":
                raise TdslTypeError(f"arithmetic on bool is not allowed ({op_name})", loc, hint=BOOL_HINT)
    dtype, weak = promote([(x.dtype, x.weak) for x in operands])
    if op.rule == "float":
        dtype = float_result(dtype)
    if op_name == "pow" and kind(dtype) == "int" and _has_negative_literal(operands[1]):
        raise TdslTypeError("an integer cannot be raised to a negative integer power", loc,
                            hint="use a float operand, e.g. f64(x) ** -1")
    if op.rule == "compare" and dtype == "i32" and any(_outside_i32(x) for x in operands):
        dtype = "i64"  # NumPy 2 compares an i32 array with any Python int exactly
    if op.rule == "predicate":
        cast_to = inputs[0].dtype
    else:
        cast_to = dtype
    cast_inputs = [cast(x, cast_to, loc) for x in operands]
    if op.rule == "select":
        cast_inputs = [inputs[0]] + cast_inputs
    shape = broadcast_shapes([x.shape for x in inputs], loc)
    out_dtype = "bool" if op.rule in ("compare", "logical", "predicate") else dtype
    weak = weak and op_name in OPERATOR_OPS and all(x.weak for x in inputs)
    return Node(op_name, out_dtype, shape, tuple(cast_inputs), (), weak, loc)


def normalize_axis(axis: int, ndim: int, loc: Location | None) -> int:
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise TdslTypeError(f"an axis must be an integer, not {axis!r}", loc)
    if not -ndim <= axis < ndim:
        raise TdslTypeError(f"axis {axis} is out of range for a value of rank {ndim}", loc)
    return axis % ndim


def normalize_axes(axes, ndim: int, loc: Location | None) -> tuple[int, ...]:
    """None means all axes; an int or a tuple of ints, negative allowed, no repeats."""
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, int):
        axes = (axes,)
    out = tuple(normalize_axis(a, ndim, loc) for a in axes)
    if len(set(out)) != len(out):
        raise TdslTypeError(f"repeated axis in {tuple(axes)}", loc)
    return tuple(sorted(out))


def _reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(Dim.of(1) if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def reduce(op_name: str, x: Node, axes, keepdims: bool, loc: Location | None,
           empty_ok: bool = False) -> Node:
    """A reduction over `axes` (None: all); `empty_ok`: a max/min over no elements gives its identity
    (-inf/+inf, as NumPy's `initial=`) instead of failing."""
    op = OPS[op_name]
    axes = normalize_axes(axes, x.ndim, loc)
    if op.rule == "sum":
        if x.dtype == "bool" or x.dtype == "i32":
            x = cast(x, "i64", loc)
    elif op.rule == "bool":
        x = cast(x, "bool", loc)
    shape = _reduced_shape(x.shape, axes, keepdims)
    attrs = make_attrs(axes=axes, keepdims=bool(keepdims), **({"empty_ok": True} if empty_ok else {}))
    return Node(op_name, x.dtype, shape, (x,), attrs, False, loc)


def argreduce(op_name: str, x: Node, axis, keepdims: bool, loc: Location | None) -> Node:
    """argmax/argmin over one axis, or over the flattened value when axis is None."""
    if axis is not None and not isinstance(axis, int):
        raise TdslTypeError(f"{op_name} takes one axis or none, not {axis!r}", loc)
    if axis is None:
        shape = tuple(Dim.of(1) for _ in x.shape) if keepdims else ()
    else:
        axis = normalize_axis(axis, x.ndim, loc)
        shape = _reduced_shape(x.shape, (axis,), keepdims)
    return Node(op_name, "i64", shape, (x,), make_attrs(axis=axis, keepdims=bool(keepdims)), False, loc)


def equal_sizes_check(a: Dim, b: Dim, message: str) -> tuple:
    """A call-time check that two dims agree, or () when they provably do."""
    if a == b:
        return ()
    return (("==", a - b, message),)


def reshape(x: Node, shape: tuple[Dim, ...], loc: Location | None) -> Node:
    """Same elements, new shape; sizes that are not provably equal are checked at call time."""
    shape = tuple(Dim.of(d) for d in shape)
    if shape == x.shape:
        return x
    size, new_size = shape_size(x.shape), shape_size(shape)
    if size.is_const and new_size.is_const and size != new_size:
        raise TdslTypeError(f"cannot reshape {x.type_str} ({size} elements) into "
                            f"{shape_str(shape) or 'a scalar'} ({new_size} elements)", loc)
    checks = size_checks(shape, loc) + equal_sizes_check(
        size, new_size, f"cannot reshape {x.type_str} into {shape_str(shape) or '[]'}")
    return Node("reshape", x.dtype, shape, (x,), make_attrs(shape=shape, checks=checks), False, loc)


def transpose(x: Node, perm: tuple[int, ...], loc: Location | None) -> Node:
    perm = tuple(normalize_axis(a, x.ndim, loc) for a in perm)
    if sorted(perm) != list(range(x.ndim)):
        raise TdslTypeError(f"axes {perm} are not a permutation of the {x.ndim} axes of {x.type_str}", loc)
    if perm == tuple(range(x.ndim)):
        return x
    shape = tuple(x.shape[a] for a in perm)
    return Node("transpose", x.dtype, shape, (x,), make_attrs(perm=perm), False, loc)


def broadcast_to(x: Node, shape: tuple[Dim, ...], loc: Location | None) -> Node:
    shape = tuple(Dim.of(d) for d in shape)
    if x.shape == shape:
        return x
    if x.ndim > len(shape) or broadcast_shapes([x.shape, shape], loc) != shape:
        raise TdslTypeError(f"cannot broadcast {x.type_str} to {shape_str(shape) or 'a scalar'}", loc)
    checks = size_checks(shape, loc)
    attrs = make_attrs(shape=shape, checks=checks) if checks else make_attrs(shape=shape)
    return Node("broadcast", x.dtype, shape, (x,), attrs, x.weak, loc)


def slice_node(x: Node, starts, steps, shape, checks, loc: Location | None) -> Node:
    """A strided view: on each axis, `shape[i]` elements from `starts[i]` by `steps[i]`."""
    attrs = make_attrs(starts=tuple(starts), steps=tuple(steps), shape=tuple(shape), checks=tuple(checks))
    return Node("slice", x.dtype, tuple(shape), (x,), attrs, False, loc)


def concat(xs: list[Node], axis: int, loc: Location | None) -> Node:
    if not xs:
        raise TdslTypeError("concat needs at least one array", loc)
    ndim = xs[0].ndim
    if ndim == 0:
        raise TdslTypeError("concat cannot join scalars (use stack)", loc)
    for x in xs:
        if x.ndim != ndim:
            raise TdslTypeError(f"concat: all arrays need rank {ndim}, got {x.type_str}", loc)
    axis = normalize_axis(axis, ndim, loc)
    for x in xs[1:]:
        for i in range(ndim):
            if i != axis and x.shape[i] != xs[0].shape[i]:
                raise TdslTypeError(f"concat: {xs[0].type_str} and {x.type_str} differ on axis {i}", loc)
    dtype, _ = promote([(x.dtype, x.weak) for x in xs])
    xs = [cast(x, dtype, loc) for x in xs]
    length = Dim.of(0)
    for x in xs:
        length = length + x.shape[axis]
    shape = xs[0].shape[:axis] + (length,) + xs[0].shape[axis + 1:]
    if len(xs) == 1:
        return xs[0]
    return Node("concat", dtype, shape, tuple(xs), make_attrs(axis=axis), False, loc)


def take(x: Node, idx: Node, axis: int, loc: Location | None, of_slice: bool = False) -> Node:
    if kind(idx.dtype) != "int":
        raise TdslTypeError(f"take needs integer indices, not {idx.dtype}", loc)
    if x.ndim == 0:
        raise TdslTypeError("take needs an array, not a scalar", loc)
    axis = normalize_axis(axis, x.ndim, loc)
    idx = cast(idx, "i64", loc)
    shape = x.shape[:axis] + idx.shape + x.shape[axis + 1:]
    # of_slice: the positions of a slice with run-time bounds (its range error says so)
    attrs = make_attrs(axis=axis, of_slice=True) if of_slice else make_attrs(axis=axis)
    return Node("take", x.dtype, shape, (x, idx), attrs, False, loc)


def matmul(a: Node, b: Node, loc: Location | None) -> Node:
    """NumPy's matmul: 1-D operands gain an axis, batch axes broadcast, inner sizes must agree."""
    if a.ndim == 0 or b.ndim == 0:
        raise TdslTypeError(f"matmul needs arrays, not a scalar ({a.type_str} @ {b.type_str})", loc,
                            hint="use * to multiply by a scalar")
    for x in (a, b):
        if x.dtype == "bool":
            raise TdslTypeError("arithmetic on bool is not allowed (matmul)", loc, hint=BOOL_HINT)
    dtype, _ = promote([(a.dtype, a.weak), (b.dtype, b.weak)])
    a2 = reshape(cast(a, dtype, loc), (Dim.of(1),) + a.shape, loc) if a.ndim == 1 else cast(a, dtype, loc)
    b2 = reshape(cast(b, dtype, loc), b.shape + (Dim.of(1),), loc) if b.ndim == 1 else cast(b, dtype, loc)
    k1, k2 = a2.shape[-1], b2.shape[-2]
    if k1 != k2:
        raise TdslTypeError(f"matmul: inner sizes differ: {a.type_str} @ {b.type_str} ({k1} against {k2})", loc)
    batch = broadcast_shapes([a2.shape[:-2], b2.shape[:-2]], loc)
    a3 = broadcast_to(a2, batch + a2.shape[-2:], loc)
    b3 = broadcast_to(b2, batch + b2.shape[-2:], loc)
    out = Node("matmul", dtype, batch + (a2.shape[-2], b2.shape[-1]), (a3, b3), (), False, loc)
    final = batch + ((a.shape[-2],) if a.ndim > 1 else ()) + ((b.shape[-1],) if b.ndim > 1 else ())
    return reshape(out, final, loc)


def iota(n: Dim, loc: Location | None) -> Node:
    n = Dim.of(n)
    checks = size_checks((n,), loc)
    return Node("iota", "i64", (n,), (), make_attrs(checks=checks) if checks else (), False, loc)


def size_checks(shape: tuple[Dim, ...], loc: Location | None) -> tuple:
    """A shape a program asks for must not have negative sizes: a compile error when one is a
    negative constant, call-time checks where a size like `n - 5` could be negative."""
    checks = []
    for d in shape:
        if d.is_const and d.const < 0:
            raise TdslTypeError(f"a size cannot be negative: {shape_str(shape)} has {d}", loc)
        if not is_nonnegative(d):
            checks.append((">=", d, f"the size {d} in {shape_str(shape)} is negative"))
    return tuple(checks)


def check_castable(x: Node, dtype: str, loc: Location | None) -> None:
    """Used where an implied conversion must not lose information."""
    if not x.weak and not can_cast_safe(x.dtype, dtype):
        raise TdslTypeError(f"cannot convert {x.type_str} to {dtype} without loss", loc,
                            hint=f"use {dtype}(x)")
