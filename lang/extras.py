"""Section 12's composite builtins: einsum, norm, diff (and the consts inf, nan, pi, e in the front end).

Each is built from existing graph nodes (transpose, reshape, broadcast, elementwise ops,
reductions, matmul, slices), so it fuses, renders and differentiates as they do.
"""
from __future__ import annotations

import math
from typing import Callable

from . import infer
from .builtins import as_node, static_axes, static_bool, static_int
from .dims import Dim, shape_size
from .dtypes import promote
from .errors import Location, TdslTypeError
from .graph import Node
from .indexing import Sub, index

# The predefined consts of the language (weak f64 scalars, as a float literal), by name.
CONSTS = {"inf": math.inf, "nan": math.nan, "pi": math.pi, "e": math.e}


def const_node(name: str, loc: Location | None) -> Node:
    """The predefined const `name` (one of CONSTS) as a weak f64 literal."""
    return infer.const(CONSTS[name], "f64", (), True, loc)


# -- einsum ---------------------------------------------------------------------------

_ELLIPSIS = "."   # `...` in a term, once parsed


def _parse_term(term: str, spec: str, loc) -> list[str]:
    """The labels of one term: letters, and `...` as one ELLIPSIS entry."""
    labels, rest = [], term
    while rest:
        if rest.startswith("..."):
            if _ELLIPSIS in labels:
                raise TdslTypeError(f"einsum: '...' appears twice in the term '{term}' of \"{spec}\"", loc)
            labels.append(_ELLIPSIS)
            rest = rest[3:]
        elif rest[0].isascii() and rest[0].isalpha():
            labels.append(rest[0])
            rest = rest[1:]
        else:
            raise TdslTypeError(f"einsum: '{rest[0]}' in \"{spec}\" is not an index (indices are the "
                                f"letters a-z and A-Z, and '...')", loc)
    return labels


def _parse_spec(spec, count: int, loc) -> tuple[list[list[str]], list[str]]:
    if not isinstance(spec, str):
        raise TdslTypeError("einsum's first argument is its spec, a string such as \"ij,jk->ik\"", loc)
    text = spec.replace(" ", "")
    if "->" not in text:
        raise TdslTypeError(f"einsum needs the explicit form with '->' (\"{spec}\" has none)", loc,
                            hint="name the output's indices, e.g. \"ij,jk->ik\"")
    inputs, _, output = text.partition("->")
    if "->" in output:
        raise TdslTypeError(f"einsum: \"{spec}\" has '->' twice", loc)
    terms = inputs.split(",")
    if len(terms) != count:
        raise TdslTypeError(f"einsum: \"{spec}\" has {len(terms)} operand term(s) but {count} "
                            f"operand(s) are given", loc)
    ins = [_parse_term(t, spec, loc) for t in terms]
    out = _parse_term(output, spec, loc)
    for label in out:
        if out.count(label) > 1:
            shown = "..." if label == _ELLIPSIS else label
            raise TdslTypeError(f"einsum: the output index '{shown}' is repeated in \"{spec}\"", loc)
        if label != _ELLIPSIS and not any(label in term for term in ins):
            raise TdslTypeError(f"einsum: the output index '{label}' appears in no operand of \"{spec}\"", loc)
    return ins, out


def _expand_ellipses(ins, out, xs, spec: str, loc) -> tuple[list[list[str]], list[str]]:
    """Each `...` replaced by labels of its own ("0", "1", ...), right-aligned across operands
    so the axes it covers broadcast as NumPy's do."""
    covered = []
    for term, x in zip(ins, xs):
        letters = len(term) - (_ELLIPSIS in term)
        extra = x.ndim - letters
        if extra < 0 or (extra > 0 and _ELLIPSIS not in term):
            raise TdslTypeError(f"einsum: the term '{''.join(term).replace(_ELLIPSIS, '...')}' of \"{spec}\" "
                                f"has {letters} indices but its operand is {x.type_str}", loc)
        covered.append(extra)
    width = max(covered, default=0)
    hidden = [str(i) for i in range(width)]
    expanded = []
    for term, extra in zip(ins, covered):
        labels = hidden[width - extra:]
        expanded.append([lab for t in term for lab in (labels if t == _ELLIPSIS else [t])])
    if width and _ELLIPSIS not in out:
        raise TdslTypeError(f"einsum: the operands have axes under '...' but the output of \"{spec}\" "
                            f"has no '...'", loc)
    return expanded, [lab for t in out for lab in (hidden if t == _ELLIPSIS else [t])]


def _label_sizes(ins, xs, loc) -> dict[str, Dim]:
    """Each index's size; a literal 1 broadcasts, two other sizes must be equal."""
    sizes: dict[str, Dim] = {}
    for term, x in zip(ins, xs):
        for label, d in zip(term, x.shape):
            seen = sizes.get(label)
            if seen is None or seen == 1:
                sizes[label] = d
            elif d != seen and d != 1:
                shown = f"the index '{label}'" if label.isalpha() else "an axis under '...'"
                raise TdslTypeError(f"einsum: {shown} has two sizes, {seen} and {d}", loc)
    return sizes


def _diagonal(x: Node, term: list[str], loc) -> tuple[Node, list[str]]:
    """A term with a repeated index (`ii`): its diagonal, as NumPy's einsum takes it, by masking
    with `eye` and summing the repeated axis away (exact: one term is nonzero)."""
    while True:
        repeated = [lab for i, lab in enumerate(term) if lab in term[:i]]
        if not repeated:
            return x, term
        first = term.index(repeated[0])
        second = term.index(repeated[0], first + 1)
        n, m = x.shape[first], x.shape[second]
        if n != m:
            raise TdslTypeError(f"einsum: the repeated index '{term[first]}' has two sizes, {n} and {m}", loc)
        rows = infer.reshape(infer.iota(n, loc), (n, Dim.of(1)), loc)
        mask = infer.elementwise("eq", [rows, infer.iota(n, loc)], loc)
        mask = infer.reshape(mask, tuple(n if i in (first, second) else Dim.of(1) for i in range(x.ndim)), loc)
        x = infer.elementwise("where", [mask, x, infer.const(0, "i64", (), True, loc)], loc)
        x = _sum(x, (second,), loc)
        term = term[:second] + term[second + 1:]


def _sum(x: Node, axes, loc) -> Node:
    """A sum that keeps x's dtype (einsum's dtype is its operands', also for i32)."""
    if not axes:
        return x
    return infer.cast(infer.reduce("sum", x, axes, False, loc), x.dtype, loc)


def _sum_unused(x: Node, term: list[str], needed: set, loc) -> tuple[Node, list[str]]:
    """Sum away the indices of `term` nothing else needs."""
    axes = tuple(i for i, lab in enumerate(term) if lab not in needed)
    return _sum(x, axes, loc), [lab for lab in term if lab in needed]


def _arrange(x: Node, term: list[str], order: list[str], loc) -> Node:
    """x with its axes in `order` (a superset of `term`; the missing ones get size 1)."""
    x = infer.transpose(x, tuple(term.index(lab) for lab in order if lab in term), loc)
    dims = dict(zip([lab for lab in order if lab in term], x.shape))
    return infer.reshape(x, tuple(dims.get(lab, Dim.of(1)) for lab in order), loc)


def _contract(a: Node, ta: list[str], b: Node, tb: list[str], keep: set, loc) -> tuple[Node, list[str]]:
    """The product of two operands summed over their shared indices not in `keep`: a matmul
    (batch, a's, shared) @ (batch, shared, b's) when some index is summed, else a broadcast `*`."""
    batch = [lab for lab in ta if lab in tb and lab in keep]
    summed = [lab for lab in ta if lab in tb and lab not in keep]
    only_a = [lab for lab in ta if lab not in tb]
    only_b = [lab for lab in tb if lab not in ta]
    if not summed:
        order = batch + only_a + only_b
        return infer.elementwise("mul", [_arrange(a, ta, order, loc), _arrange(b, tb, order, loc)], loc), order
    # matmul needs the shared indices' sizes equal: a literal 1 on one side broadcasts to the other's
    dims_a, dims_b = dict(zip(ta, a.shape)), dict(zip(tb, b.shape))
    for lab in batch + summed:
        dims_a[lab] = dims_b[lab] = dims_b[lab] if dims_a[lab] == 1 else dims_a[lab]
    a = infer.broadcast_to(a, tuple(dims_a[lab] for lab in ta), loc)
    b = infer.broadcast_to(b, tuple(dims_b[lab] for lab in tb), loc)
    dims = {**dims_a, **dims_b}
    bdims = tuple(dims[lab] for lab in batch)
    rows, inner, cols = (shape_size(tuple(dims[lab] for lab in ls)) for ls in (only_a, summed, only_b))
    a2 = infer.reshape(_arrange(a, ta, batch + only_a + summed, loc), bdims + (rows, inner), loc)
    b2 = infer.reshape(_arrange(b, tb, batch + summed + only_b, loc), bdims + (inner, cols), loc)
    order = batch + only_a + only_b
    return infer.reshape(infer.matmul(a2, b2, loc), tuple(dims[lab] for lab in order), loc), order


def einsum(loc, spec, *operands):
    """NumPy's einsum in its explicit form, contracted pairwise from the left."""
    if not operands:
        raise TdslTypeError("einsum needs at least one operand after its spec", loc)
    xs = [as_node(x, loc) for x in operands]
    for x in xs:
        if x.dtype == "bool":
            raise TdslTypeError("einsum of bool operands is not allowed (arithmetic on bool)", loc,
                                hint=infer.BOOL_HINT)
    ins, out = _parse_spec(spec, len(xs), loc)
    ins, out = _expand_ellipses(ins, out, xs, spec, loc)
    sizes = _label_sizes(ins, xs, loc)
    dtype, _ = promote([(x.dtype, x.weak) for x in xs])
    terms = []
    for i, (x, term) in enumerate(zip(xs, ins)):
        x, term = _diagonal(infer.cast(x, dtype, loc), term, loc)
        needed = set(out).union(*ins[:i], *ins[i + 1:])
        terms.append(_sum_unused(x, term, needed, loc))
    acc, ta = terms[0]
    for i, (b, tb) in enumerate(terms[1:], start=1):
        keep = set(out).union(*ins[i + 1:])
        acc, ta = _contract(acc, ta, b, tb, keep, loc)
        acc, ta = _sum_unused(acc, ta, keep, loc)
    acc, ta = _sum_unused(acc, ta, set(out), loc)
    acc = infer.transpose(acc, tuple(ta.index(lab) for lab in out), loc)
    return infer.broadcast_to(acc, tuple(sizes[lab] for lab in out), loc)


# -- norm -------------------------------------------------------------------------------

def _static_order(value, loc):
    """`ord`: None, or one of 1, 2, inf, -inf (a number, a const or a number literal)."""
    if value is None:
        return None
    if isinstance(value, Node) and value.op == "const" and value.ndim == 0 and value.dtype != "bool":
        value = value.attr("value")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value in (1, 2, math.inf, -math.inf):
        return float(value)
    raise TdslTypeError(f"norm's ord must be 1, 2, inf or -inf (for vectors), not {_shown(value)}", loc)


def _shown(value) -> str:
    return value.type_str + " value" if isinstance(value, Node) else repr(value)


def _safe_sqrt(s: Node, loc) -> Node:
    """sqrt(s) whose gradient at s = 0 is 0, not NaN (the 2-norm's subgradient at 0): the root of
    1 where s is 0, so no infinite derivative meets a zero one (a NaN s stays NaN)."""
    zero = infer.const(0, "i64", (), True, loc)
    at_zero = infer.elementwise("eq", [s, zero], loc)
    root = infer.elementwise("sqrt", [infer.elementwise("where", [at_zero, infer.const(1, "i64", (), True, loc), s],
                                                        loc)], loc)
    return infer.elementwise("where", [at_zero, zero, root], loc)


def norm(loc, x, ord=None, axis=None, keepdims=False):  # noqa: A002 (NumPy's name)
    """numpy.linalg.norm: vector norms over one axis, the Frobenius norm over two."""
    x = as_node(x, loc)
    order, keep = _static_order(ord, loc), static_bool(keepdims, loc, "keepdims")
    axes = static_axes(axis, loc)
    if x.dtype not in ("f32", "f64"):
        x = infer.cast(x, "f64", loc)
    if axes is None:
        if order is not None and x.ndim not in (1, 2):
            raise TdslTypeError(f"norm with ord= needs a 1-D or 2-D value (or axis=), not {x.type_str}", loc)
        axes = tuple(range(x.ndim))
        if order is None:   # the 2-norm of all the elements: the Frobenius norm of a matrix
            return _two_norm(x, axes, keep, loc)
    axes = infer.normalize_axes(axes, x.ndim, loc)
    if len(axes) == 2:
        if order is not None:
            raise TdslTypeError(f"norm over two axes is only the Frobenius norm: leave ord out "
                                f"(matrix norms of other orders are not supported, got ord={_order_str(order)})",
                                loc)
        return _two_norm(x, axes, keep, loc)
    if len(axes) != 1:
        raise TdslTypeError(f"norm is over one axis (a vector norm) or two (the Frobenius norm), "
                            f"not {len(axes)}", loc)
    if order in (None, 2.0):
        return _two_norm(x, axes, keep, loc)
    magnitude = infer.elementwise("abs", [x], loc)
    name = {1.0: "sum", math.inf: "max", -math.inf: "min"}[order]
    return infer.reduce(name, magnitude, axes, keep, loc)


def _order_str(order: float) -> str:
    return {math.inf: "inf", -math.inf: "-inf"}.get(order, f"{order:g}")


def _two_norm(x: Node, axes, keep: bool, loc) -> Node:
    return _safe_sqrt(infer.reduce("sum", infer.elementwise("square", [x], loc), axes, keep, loc), loc)


# -- diff ---------------------------------------------------------------------------------

def diff(loc, x, axis=-1, n=1):
    """NumPy's diff: `x[1:] - x[:-1]` along `axis`, `n` times; of bool, `!=` as NumPy's. The
    second positional argument is the axis, as everywhere in the language (NumPy's is n)."""
    x = as_node(x, loc)
    times = static_int(n, loc, "diff's n")
    if times < 0:
        raise TdslTypeError(f"diff's n must be zero or more, not {times}", loc)
    if x.ndim == 0:
        raise TdslTypeError("diff needs an array of at least one axis, not a scalar", loc)
    ax = infer.normalize_axis(static_int(axis, loc, "an axis"), x.ndim, loc)
    op = "ne" if x.dtype == "bool" else "sub"
    for _ in range(times):
        later = index(x, [Sub("slice")] * ax + [Sub("slice", 1, None, None)], loc)
        earlier = index(x, [Sub("slice")] * ax + [Sub("slice", None, -1, None)], loc)
        x = infer.elementwise(op, [later, earlier], loc)
    return x


BUILDERS: dict[str, Callable] = {"einsum": einsum, "norm": norm, "diff": diff}

from .builtins import register  # noqa: E402  (see builtins.register)

register(BUILDERS)
