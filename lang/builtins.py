"""The builtin functions of the language (section 7), built from the primitives of ops.py.

`call(name, args, kwargs, loc)` is the one entry point the front end and the Python
API share: it binds positional and keyword arguments like Python, reads static
arguments (axes, shapes, dtypes) and builds the graph.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import infer
from .dims import Dim, DimTooComplex, shape_size
from .dtypes import DTYPES, from_numpy, parse_dtype, promote
from .errors import Location, TdslTypeError
from .graph import Node
from .ops import OPS, empty_value


@dataclass(frozen=True)
class DType:
    """A dtype named as a value, as in `zeros(n, dtype=f32)`."""

    name: str


# -- reading arguments ---------------------------------------------------------

def as_node(value: Any, loc: Location | None) -> Node:
    """A graph node from a node, a Python scalar or list (weak), or a NumPy array (strong)."""
    if isinstance(value, Node):
        return value
    if isinstance(value, Dim):
        return dim_node(value, loc)
    if type(value) is int and not -2**63 <= value < 2**63:
        return _big_int(value, loc)
    if isinstance(value, (bool, int, float, np.generic)) or isinstance(value, (list, np.ndarray)):
        weak = not isinstance(value, (np.ndarray, np.generic))
        try:
            arr = np.asarray(value)
        except ValueError:
            raise TdslTypeError("a list used as a value must be rectangular", loc) from None
        dtype = from_numpy(arr.dtype)
        if weak and arr.dtype.kind == "i":
            dtype = "i64"
        if dtype is None:
            raise TdslTypeError(f"no tdsl dtype for a value of dtype {arr.dtype}", loc)
        value = arr.astype(np.dtype(infer.to_numpy(dtype))).tolist()
        return infer.const(_tuplify(value), dtype, arr.shape, weak, loc)
    if isinstance(value, tuple):
        raise TdslTypeError("a tuple is not a value here", loc)
    if isinstance(value, DType):
        raise TdslTypeError(f"the dtype {value.name} is not a value here", loc,
                            hint=f"to convert, call it: {value.name}(x)")
    raise TdslTypeError(f"cannot use {value!r} as a value", loc)


def _big_int(value: int, loc: Location | None) -> Node:
    """A Python int past int64, kept exact as a weak literal is: a float where it meets one
    (as NumPy takes `x + 10**20`), an error where it meets an integer (checked where used)."""
    try:
        float(value)
    except OverflowError:
        raise TdslTypeError("an integer this large fits no dtype (the largest f64 is about 1.8e308)",
                            loc) from None
    return infer.const(value, "i64", (), True, loc)


def _tuplify(v):
    return tuple(_tuplify(x) for x in v) if isinstance(v, list) else v


def dim_node(dim: Dim, loc: Location | None) -> Node:
    """The value of a dim expression, as a weak i64 scalar."""
    total = infer.const(0, "i64", (), True, loc)
    for mono, coef in dim.terms:
        term = infer.const(coef, "i64", (), True, loc)
        for atom in mono:
            if isinstance(atom, str):
                factor = Node("sizevar", "i64", (), (), (("name", atom),), True, loc)
            else:
                factor = infer.elementwise("floordiv", [dim_node(atom.expr, loc),
                                                        infer.const(atom.divisor, "i64", (), True, loc)], loc)
            term = factor if term.op == "const" and term.attr("value") == 1 else infer.elementwise("mul", [term, factor], loc)
        total = term if total.op == "const" and total.attr("value") == 0 else infer.elementwise("add", [total, term], loc)
    return total


def static_dim(value: Any, loc: Location | None, what: str = "a size") -> Dim:
    """A Dim from an int, a size-variable name, a Dim, or a node built from size variables."""
    if isinstance(value, np.integer):  # a size taken from a NumPy shape
        value = int(value)
    if isinstance(value, (Dim, str)) or (isinstance(value, int) and not isinstance(value, bool)):
        return Dim.of(value)
    if isinstance(value, Node):
        try:
            return _node_dim(value, loc, what)
        except DimTooComplex as err:
            raise TdslTypeError(str(err), loc) from None
    raise TdslTypeError(f"{what} must be an integer literal or a size-variable expression", loc)


_DIM_OPS = ("add", "sub", "mul", "floordiv", "neg")


def _node_dim(root: Node, loc: Location | None, what: str) -> Dim:
    """The Dim a weak integer expression of literals and size variables computes; a loop over
    the nodes, so `axis=0 + 0 + ... + 0` of any length does not recurse."""
    dims: dict[int, Dim] = {}
    stack = [root]
    while stack:
        node = stack[-1]
        if id(node) in dims:
            stack.pop()
            continue
        if node.op in _DIM_OPS and node.weak:
            pending = [i for i in node.inputs if id(i) not in dims]
            if pending:
                stack.extend(pending)
                continue
            dims[id(node)] = _combine_dims(node.op, [dims[id(i)] for i in node.inputs], loc, what)
        elif node.op == "const" and node.dtype in ("i32", "i64") and node.ndim == 0:
            dims[id(node)] = Dim.of(int(node.attr("value")))
        elif node.op == "sizevar":
            dims[id(node)] = Dim.of(node.attr("name"))
        else:
            raise TdslTypeError(f"{what} must be an integer literal or a size-variable expression", loc)
        stack.pop()
    return dims[id(root)]


def _combine_dims(op: str, dims: list[Dim], loc: Location | None, what: str) -> Dim:
    if op == "neg":
        return -dims[0]
    a, b = dims
    if op == "floordiv":
        if b.const is None or b.const <= 0:
            raise TdslTypeError(f"{what} can only be floor-divided by a positive integer", loc)
        return a // b
    return {"add": a + b, "sub": a - b, "mul": a * b}[op]


def static_shape(value: Any, loc: Location | None) -> tuple[Dim, ...]:
    if isinstance(value, (tuple, list)):
        return tuple(static_dim(v, loc) for v in value)
    return (static_dim(value, loc),)


def static_int(value: Any, loc: Location | None, what: str) -> int:
    dim = static_dim(value, loc, what) if not isinstance(value, bool) else None
    if dim is None or dim.const is None:
        raise TdslTypeError(f"{what} must be an integer literal", loc)
    return dim.const


def static_axes(value: Any, loc: Location | None):
    """None, an int, or a tuple of ints."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        return tuple(static_int(v, loc, "an axis") for v in value)
    return static_int(value, loc, "an axis")


def static_bool(value: Any, loc: Location | None, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, Node) and value.op == "const" and value.dtype == "bool" and value.ndim == 0:
        return bool(value.attr("value"))
    raise TdslTypeError(f"{what} must be true or false", loc)


def static_dtype(value: Any, loc: Location | None) -> str | None:
    """tdsl's name of a dtype given as tdsl's name or NumPy's (name, type or dtype; Python's
    float, int, bool), or None; a TdslTypeError listing the accepted ones otherwise."""
    if value is None:
        return None
    return parse_dtype(value.name if isinstance(value, DType) else value, loc)


def nodes_of(value: Any, loc: Location | None) -> list[Node]:
    if not isinstance(value, (tuple, list)):
        raise TdslTypeError("expected a tuple of arrays, e.g. (a, b)", loc)
    return [as_node(v, loc) for v in value]


# -- the builtins -----------------------------------------------------------------

def _elementwise(name: str) -> Callable:
    return lambda loc, *xs: infer.elementwise(name, [as_node(x, loc) for x in xs], loc)


def _reduction(name: str) -> Callable:
    def build(loc, x, axis=None, keepdims=False):
        return infer.reduce(name, as_node(x, loc), static_axes(axis, loc), static_bool(keepdims, loc, "keepdims"), loc)
    return build


def reduction_given_a_value(name: str, loc: Location | None, operands=("a", "b")) -> TdslTypeError:
    """The error for `max(x, 0.0)`: a reduction's second argument is its axis; the elementwise
    maximum (minimum) of two values is another builtin."""
    full = {"max": "maximum", "min": "minimum"}[name]
    return TdslTypeError(f"{name}() reduces one array: its second argument is an axis, not a value "
                         f"to compare with", loc,
                         hint=f"for the elementwise {full}, write {full}({', '.join(operands)})")


def _extreme(name: str) -> Callable:
    """max/min with NumPy's `initial=`: the value over no elements, and a bound on the result."""
    def build(loc, x, axis=None, keepdims=False, initial=None):
        x = as_node(x, loc)
        try:
            axes = static_axes(axis, loc)
        except TdslTypeError:
            if isinstance(axis, (Node, float, np.floating, np.ndarray)):   # a value, not an axis: `max(x, 0.0)`
                raise reduction_given_a_value(name, loc) from None
            raise
        keep = static_bool(keepdims, loc, "keepdims")
        if initial is None:
            return infer.reduce(name, x, axes, keep, loc)
        bound = as_node(initial, loc)
        if bound.op != "const" or bound.ndim:
            raise TdslTypeError(f"{name}'s initial= must be a number literal", loc)
        out = infer.reduce(name, x, axes, keep, loc, empty_ok=True)
        if bound.attr("value") == empty_value(name, out.dtype):
            return out   # the identity: the reduction over no elements gives it already
        return infer.elementwise("maximum" if name == "max" else "minimum", [out, bound], loc)
    return build


def _argreduction(name: str) -> Callable:
    def build(loc, x, axis=None, keepdims=False):
        return infer.argreduce(name, as_node(x, loc), static_axes(axis, loc), static_bool(keepdims, loc, "keepdims"), loc)
    return build


def _to_float(x: Node, loc, bool_ok: bool = False) -> Node:
    """`x` as a float (integers become f64); bool only where NumPy's statistic accepts it."""
    if x.dtype == "bool" and not bool_ok:
        raise TdslTypeError("arithmetic on bool is not allowed", loc, hint=infer.BOOL_HINT)
    return x if x.dtype in ("f32", "f64") else infer.cast(x, "f64", loc)


def _count(x: Node, axes, loc) -> Node:
    count = shape_size(tuple(x.shape[a] for a in infer.normalize_axes(axes, x.ndim, loc)))
    return dim_node(count, loc)


def mean(loc, x, axis=None, keepdims=False):
    x = _to_float(as_node(x, loc), loc, bool_ok=True)
    axes, keep = static_axes(axis, loc), static_bool(keepdims, loc, "keepdims")
    total = infer.reduce("sum", x, axes, keep, loc)
    return infer.elementwise("div", [total, _count(x, axes, loc)], loc)


def var(loc, x, axis=None, keepdims=False):
    x = _to_float(as_node(x, loc), loc, bool_ok=True)
    axes, keep = static_axes(axis, loc), static_bool(keepdims, loc, "keepdims")
    centered = infer.elementwise("sub", [x, mean(loc, x, axes, True)], loc)
    return mean(loc, infer.elementwise("square", [centered], loc), axes, keep)


def std(loc, x, axis=None, keepdims=False):
    return infer.elementwise("sqrt", [var(loc, x, axis, keepdims)], loc)


def _stable_max(x: Node, axes, loc) -> Node:
    """max over axes (kept), replaced by 0 where it is not finite, as SciPy does. Over no elements it
    is -inf (`max(x, initial=-inf)`), then 0: softmax of an empty axis is empty and logsumexp of
    one is log(0) = -inf, as NumPy's `np.log(np.sum(np.exp(x)))` (and SciPy) give."""
    m = infer.reduce("max", x, axes, True, loc, empty_ok=True)
    zero = infer.const(0, "i64", (), True, loc)
    return infer.elementwise("where", [infer.elementwise("isfinite", [m], loc), m, zero], loc)


def logsumexp(loc, x, axis=None, keepdims=False):
    x = _to_float(as_node(x, loc), loc)
    axes, keep = static_axes(axis, loc), static_bool(keepdims, loc, "keepdims")
    m = _stable_max(x, axes, loc)
    total = infer.reduce("sum", _exp_sub(x, m, loc), axes, True, loc)
    out = infer.elementwise("add", [infer.elementwise("log", [total], loc), m], loc)
    return out if keep else squeeze_axes(out, infer.normalize_axes(axes, x.ndim, loc), loc)


def _exp_sub(x, m, loc):
    return infer.elementwise("exp", [infer.elementwise("sub", [x, m], loc)], loc)


def softmax(loc, x, axis=-1):
    x = _to_float(as_node(x, loc), loc)
    axes = static_axes(axis, loc)
    e = _exp_sub(x, _stable_max(x, axes, loc), loc)
    return infer.elementwise("div", [e, infer.reduce("sum", e, axes, True, loc)], loc)


def log_softmax(loc, x, axis=-1):
    x = _to_float(as_node(x, loc), loc)
    axes = static_axes(axis, loc)
    shifted = infer.elementwise("sub", [x, _stable_max(x, axes, loc)], loc)
    total = infer.reduce("sum", infer.elementwise("exp", [shifted], loc), axes, True, loc)
    return infer.elementwise("sub", [shifted, infer.elementwise("log", [total], loc)], loc)


def cast_to(dtype: str) -> Callable:
    return lambda loc, x: _strong(infer.cast(as_node(x, loc), dtype, loc), loc)


def _strong(x: Node, loc) -> Node:
    if not x.weak:
        return x
    return Node(x.op, x.dtype, x.shape, x.inputs, x.attrs, False, x.loc or loc)


def clip(loc, x, lo, hi):
    low = infer.elementwise("maximum", [as_node(x, loc), as_node(lo, loc)], loc)
    return infer.elementwise("minimum", [low, as_node(hi, loc)], loc)


def matmul(loc, a, b):
    return infer.matmul(as_node(a, loc), as_node(b, loc), loc)


def dot(loc, a, b):
    a, b = as_node(a, loc), as_node(b, loc)
    if a.ndim == 0 or b.ndim == 0:
        return infer.elementwise("mul", [a, b], loc)
    if a.ndim > 2 and b.ndim > 1 or b.ndim > 2:
        raise TdslTypeError(f"dot of {a.type_str} and {b.type_str}: ranks above 2 are not supported", loc,
                            hint="use matmul (@) for batched products")
    return infer.matmul(a, b, loc)


def outer(loc, a, b):
    a, b = as_node(a, loc), as_node(b, loc)
    a_col = infer.reshape(a, (shape_size(a.shape), Dim.of(1)), loc)
    b_row = infer.reshape(b, (Dim.of(1), shape_size(b.shape)), loc)
    return infer.elementwise("mul", [a_col, b_row], loc)


def transpose(loc, x, axes=None):
    x = as_node(x, loc)
    perm = tuple(reversed(range(x.ndim))) if axes is None else static_axes(axes, loc)
    if isinstance(perm, int):
        perm = (perm,)
    if len(perm) != x.ndim:
        raise TdslTypeError(f"transpose of {x.type_str} needs {x.ndim} axes, got {len(perm)}", loc)
    return infer.transpose(x, perm, loc)


def reshape(loc, x, shape):
    x = as_node(x, loc)
    dims = list(static_shape(shape, loc))
    holes = [i for i, d in enumerate(dims) if d == -1]
    if len(holes) > 1:
        raise TdslTypeError("reshape allows only one -1", loc)
    if holes:
        known = shape_size(tuple(d for i, d in enumerate(dims) if i != holes[0]))
        dims[holes[0]] = _exact_quotient(shape_size(x.shape), known, x, loc)
    for d in dims:
        if d.is_const and d.const < 0:
            raise TdslTypeError(f"reshape: negative size {d}", loc)
    return infer.reshape(x, tuple(dims), loc)


def _exact_quotient(size: Dim, divisor: Dim, x: Node, loc) -> Dim:
    if divisor.is_const and divisor.const > 0:
        if size.is_const and size.const % divisor.const:
            raise TdslTypeError(f"cannot reshape {x.type_str} ({size} elements) with -1 and {divisor} others", loc)
        return size // divisor.const
    if len(divisor.terms) == 1:
        (mono, coef), = divisor.terms
        quotient = {}
        for m, c in size.terms:
            rest = list(m)
            for atom in mono:
                if atom not in rest:
                    break
                rest.remove(atom)
            else:
                if c % coef == 0:
                    quotient[tuple(rest)] = c // coef
                    continue
            break
        else:
            return Dim(tuple(sorted(quotient.items(), key=lambda t: str(t[0]))))
    raise TdslTypeError(f"reshape: cannot infer -1: {size} is not a multiple of {divisor}", loc)


def expand_dims(loc, x, axis):
    x = as_node(x, loc)
    axes = static_axes(axis, loc)
    axes = (axes,) if isinstance(axes, int) else axes
    out_rank = x.ndim + len(axes)
    axes = infer.normalize_axes(axes, out_rank, loc)
    dims = iter(x.shape)
    shape = tuple(Dim.of(1) if i in axes else next(dims) for i in range(out_rank))
    return infer.reshape(x, shape, loc)


def squeeze_axes(x: Node, axes, loc) -> Node:
    return infer.reshape(x, tuple(d for i, d in enumerate(x.shape) if i not in axes), loc)


def squeeze(loc, x, axis=None):
    x = as_node(x, loc)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    else:
        axes = infer.normalize_axes(static_axes(axis, loc), x.ndim, loc)
        for a in axes:
            if x.shape[a] != 1:
                raise TdslTypeError(f"cannot squeeze axis {a} of {x.type_str}: its size is {x.shape[a]}, not 1", loc)
    return squeeze_axes(x, axes, loc)


def broadcast_to(loc, x, shape):
    return infer.broadcast_to(as_node(x, loc), static_shape(shape, loc), loc)


def concat(loc, arrays, axis=0):
    return infer.concat(nodes_of(arrays, loc), static_int(axis, loc, "an axis"), loc)


def stack(loc, arrays, axis=0):
    xs = nodes_of(arrays, loc)
    if not xs:
        raise TdslTypeError("stack needs at least one array", loc)
    for x in xs[1:]:
        if x.shape != xs[0].shape:
            raise TdslTypeError(f"stack needs equal shapes: {xs[0].type_str} and {x.type_str}", loc)
    axis = infer.normalize_axis(static_int(axis, loc, "an axis"), xs[0].ndim + 1, loc)
    return infer.concat([expand_dims(loc, x, axis) for x in xs], axis, loc)


def flip(loc, x, axis=None):
    from .indexing import flip_axes
    x = as_node(x, loc)
    return flip_axes(x, infer.normalize_axes(static_axes(axis, loc), x.ndim, loc), loc)


def _filled(shape, value: Node, dtype, loc) -> Node:
    dtype = static_dtype(dtype, loc) or promote([(value.dtype, False)])[0]
    scalar = _strong(infer.cast(value, dtype, loc), loc)
    return _strong(infer.broadcast_to(scalar, static_shape(shape, loc), loc), loc)


def zeros(loc, shape, dtype=None):
    return _filled(shape, infer.const(0, "f64", (), True, loc), dtype or "f64", loc)


def ones(loc, shape, dtype=None):
    return _filled(shape, infer.const(1, "f64", (), True, loc), dtype or "f64", loc)


def full(loc, shape, value, dtype=None):
    value = as_node(value, loc)
    if value.ndim:
        raise TdslTypeError(f"full needs a scalar value, not {value.type_str}", loc)
    return _filled(shape, value, dtype, loc)


def zeros_like(loc, x, dtype=None):
    x = as_node(x, loc)
    return _filled(x.shape, infer.const(0, "f64", (), True, loc), dtype or x.dtype, loc)


def ones_like(loc, x, dtype=None):
    x = as_node(x, loc)
    return _filled(x.shape, infer.const(1, "f64", (), True, loc), dtype or x.dtype, loc)


def arange(loc, n):
    return infer.iota(static_dim(n, loc, "the length of arange"), loc)


def eye(loc, n, dtype=None):
    n = static_dim(n, loc, "the size of eye")
    rows = infer.reshape(infer.iota(n, loc), (n, Dim.of(1)), loc)
    return infer.cast(infer.elementwise("eq", [rows, infer.iota(n, loc)], loc), static_dtype(dtype, loc) or "f64", loc)


def one_hot(loc, labels, k, dtype=None):
    labels = as_node(labels, loc)
    if labels.dtype not in ("i32", "i64"):
        raise TdslTypeError(f"one_hot needs integer labels, not {labels.dtype}", loc)
    k = static_dim(k, loc, "the number of classes")
    column = infer.reshape(labels, labels.shape + (Dim.of(1),), loc)
    hot = infer.elementwise("eq", [column, infer.iota(k, loc)], loc)
    return infer.cast(hot, static_dtype(dtype, loc) or "f64", loc)


def take(loc, x, indices, axis=0):
    return infer.take(as_node(x, loc), as_node(indices, loc), static_int(axis, loc, "an axis"), loc)


def _param_names(fn: Callable) -> list[str]:
    code = fn.__code__
    return list(code.co_varnames[1:code.co_argcount])


BUILDERS: dict[str, Callable] = {
    **{name: _elementwise(name) for name, op in OPS.items() if op.kind == "elementwise" and op.builtin},
    **{name: _reduction(name) for name in ("sum", "prod", "any", "all")},
    "max": _extreme("max"), "min": _extreme("min"),
    "argmax": _argreduction("argmax"), "argmin": _argreduction("argmin"),
    **{name: cast_to(name) for name in DTYPES},
    "mean": mean, "var": var, "std": std, "logsumexp": logsumexp, "softmax": softmax,
    "log_softmax": log_softmax, "clip": clip, "matmul": matmul, "dot": dot, "outer": outer,
    "transpose": transpose, "reshape": reshape, "expand_dims": expand_dims, "squeeze": squeeze,
    "broadcast_to": broadcast_to, "concat": concat, "stack": stack, "flip": flip, "zeros": zeros,
    "ones": ones, "full": full, "zeros_like": zeros_like, "ones_like": ones_like, "arange": arange,
    "eye": eye, "one_hot": one_hot, "take": take,
}

# Section 12's builtins live in modules of their own, each with a BUILDERS dict of the same form,
# merged here by `register`. A family imported first (`import tdsl.nn`) is still running its own
# body when this module imports it back: it registers itself at its end instead.
# New builtins never break a program: a user's function or const may take one of VERSION2's names.
VERSION2: set[str] = set()


def register(family: dict[str, Callable]) -> None:
    BUILDERS.update(family)
    VERSION2.update(family)


from . import extras as _extras, nn as _nn, ordering as _ordering, rng as _rng, scatter as _scatter  # noqa: E402

for _module in (_extras, _nn, _ordering, _rng, _scatter):
    register(getattr(_module, "BUILDERS", {}))

# The elementwise builtins whose arity is fixed by a lambda: record their parameter names here.
_ELEMENTWISE_PARAMS = {1: ["x"], 2: ["a", "b"], 3: ["condition", "a", "b"]}


def param_names(name: str) -> list[str]:
    builder = BUILDERS[name]
    if name in OPS and OPS[name].kind == "elementwise":
        return _ELEMENTWISE_PARAMS[OPS[name].arity]
    if name in DTYPES:
        return ["x"]
    return _param_names(builder)


def call(name: str, args: list, kwargs: dict, loc: Location | None) -> Node:
    """Apply the builtin `name` to positional and keyword arguments, as Python binds them."""
    if name not in BUILDERS:
        raise TdslTypeError(f"unknown function '{name}'", loc)
    names = param_names(name)
    defaults = _defaults(BUILDERS[name], names)
    from inspect import CO_VARARGS
    rest = []   # a variadic builder (`def einsum(loc, spec, *operands)`) takes the extra positionals
    builder = BUILDERS[name]
    if builder.__code__.co_flags & CO_VARARGS and _param_names(builder) == names and len(args) > len(names):
        args, rest = args[:len(names)], args[len(names):]
    if len(args) > len(names):
        raise TdslTypeError(f"{name}() takes at most {len(names)} arguments ({', '.join(names)}), "
                            f"got {len(args)}", loc)
    bound = dict(zip(names, args))
    for key, value in kwargs.items():
        if key not in names:
            raise TdslTypeError(f"{name}() has no argument '{key}' (it takes {', '.join(names)})", loc)
        if key in bound:
            raise TdslTypeError(f"{name}() got argument '{key}' twice", loc)
        bound[key] = value
    missing = [n for n in names if n not in bound and n not in defaults]
    if missing:
        raise TdslTypeError(f"{name}() is missing argument '{missing[0]}' (it takes {', '.join(names)})", loc)
    return BUILDERS[name](loc, *[bound.get(n, defaults.get(n)) for n in names], *rest)


def _defaults(fn: Callable, names: list[str]) -> dict:
    values = getattr(fn, "__defaults__", None) or ()
    return dict(zip(names[len(names) - len(values):], values)) if values else {}
