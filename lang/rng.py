"""Section 12's counter-based random numbers: rand, randint, bernoulli, randn, fold_in (Philox-4x64-10).

Every builtin is an elementwise op of the op table's RANDOM list over (key, position), where
position is the element's flat index in the result (`arange(size)` reshaped to the shape): a
value depends only on its key and position, so random numbers fuse into their consumers and
never depend on the number of threads or work-items. `rand` is NumPy's
`Generator(Philox(key=key)).random(size, dtype).reshape(shape)` bit for bit (lang/philox.py).
"""
from __future__ import annotations

from typing import Callable

from . import infer
from .builtins import as_node, static_dtype, static_shape
from .dims import shape_size
from .dtypes import kind
from .errors import TdslTypeError
from .graph import Node


def _integer(value, loc, what: str, scalar: bool) -> Node:
    """An integer operand as i64; a weak literal in [2**63, 2**64) is read as unsigned (its
    two's complement), as a key is."""
    node = as_node(value, loc)
    if kind(node.dtype) != "int":
        raise TdslTypeError(f"{what} must be an integer{' scalar' if scalar else ''}, not {node.type_str}", loc,
                            hint="a key is an integer seed, e.g. 42, or one made by fold_in")
    if scalar and node.ndim:
        raise TdslTypeError(f"{what} must be an integer scalar, not {node.type_str}", loc)
    if node.op == "const" and node.weak and node.ndim == 0 and 2**63 <= node.attr("value") < 2**64:
        return infer.const(node.attr("value") - 2**64, "i64", (), True, loc)
    return infer.cast(node, "i64", loc)


def _positions(shape, loc) -> Node:
    """The flat position of each element of `shape`: arange(size) reshaped."""
    return infer.reshape(infer.iota(shape_size(shape), loc), shape, loc)


def _op(name: str, dtype: str, a: Node, b: Node, loc) -> Node:
    shape = infer.broadcast_shapes([a.shape, b.shape], loc)
    return Node(name, dtype, shape, (a, b), (), False, loc)


def _float_dtype(name: str, dtype, loc) -> str:
    dtype = static_dtype(dtype, loc) or "f64"
    if dtype not in ("f32", "f64"):
        raise TdslTypeError(f"{name} gives floats: its dtype must be f32 or f64, not {dtype}", loc)
    return dtype


def rand(loc, key, shape, dtype=None):
    """Uniform on [0, 1): NumPy's Generator(Philox(key=key)).random(size, dtype).reshape(shape)."""
    dtype = _float_dtype("rand", dtype, loc)
    shape = static_shape(shape, loc)
    return _op(f"philox_{dtype}", dtype, _integer(key, loc, "the key of rand", True), _positions(shape, loc), loc)


def randn(loc, key, shape, dtype=None):
    """Standard normal, Box-Muller of the stream's words 2p and 2p + 1 for the element at position p."""
    dtype = _float_dtype("randn", dtype, loc)
    shape = static_shape(shape, loc)
    return _op(f"philox_normal_{dtype}", dtype, _integer(key, loc, "the key of randn", True),
               _positions(shape, loc), loc)


def randint(loc, key, low, high, shape, dtype=None):
    """Integers in [low, high): low + the high 64 bits of word p times (high - low), all unsigned."""
    dtype = static_dtype(dtype, loc) or "i64"
    if kind(dtype) != "int":
        raise TdslTypeError(f"randint gives integers: its dtype must be i32 or i64, not {dtype}", loc)
    shape = static_shape(shape, loc)
    key = _integer(key, loc, "the key of randint", True)
    bounds = [as_node(v, loc) for v in (low, high)]
    for what, node in zip(("low", "high"), bounds):
        if kind(node.dtype) != "int" or node.ndim:
            raise TdslTypeError(f"randint's {what} must be an integer scalar, not {node.type_str}", loc)
        if node.op == "const":
            infer.cast(node, dtype, loc)   # a literal must fit the dtype
    low, high = (infer.cast(b, "i64", loc) for b in bounds)
    if low.op == "const" and high.op == "const" and not low.attr("value") < high.attr("value"):
        raise TdslTypeError(f"randint needs low < high, got low = {low.attr('value')}, high = {high.attr('value')}",
                            loc)
    span = infer.elementwise("sub", [high, low], loc)     # wraps: read as unsigned, it is the count
    ok = infer.elementwise("lt", [low, high], loc)
    flag = infer.elementwise("where", [ok, infer.const(0, "i64"), infer.const(-1, "i64")], loc)
    checked = _op("randint_span", "i64", span, flag, loc)
    bits = _op("philox_bits", "i64", key, _positions(shape, loc), loc)
    out = infer.elementwise("add", [low, _op("mulhi", "i64", bits, checked, loc)], loc)
    return infer.cast(out, dtype, loc)


def bernoulli(loc, key, p, shape):
    """True with probability p: rand(key, shape) < p (f64), p a number or an array broadcast to shape."""
    shape = static_shape(shape, loc)
    p = as_node(p, loc)
    if kind(p.dtype) not in ("float", "int"):
        raise TdslTypeError(f"bernoulli's p must be a number or an array of numbers, not {p.type_str}", loc)
    if infer.broadcast_shapes([p.shape, shape], loc) != shape:
        raise TdslTypeError(f"bernoulli's p ({p.type_str}) does not broadcast to the shape {shape}", loc)
    uniform = _op("philox_f64", "f64", _integer(key, loc, "the key of bernoulli", True), _positions(shape, loc), loc)
    return infer.elementwise("lt", [uniform, p], loc)


def fold_in(loc, key, i):
    """A new key from a key and an integer (elementwise): one Philox block that no stream uses."""
    return _op("fold_in", "i64", _integer(key, loc, "the key of fold_in", False),
               _integer(i, loc, "fold_in's value", False), loc)


def _primitive(name: str, dtype: str) -> Callable:
    """The op itself, for the printer's text (`philox_f64(k, p)`) to parse back."""
    def build(loc, a, b):
        return _op(name, dtype, _integer(a, loc, f"{name}'s operand", False),
                   _integer(b, loc, f"{name}'s operand", False), loc)
    return build


BUILDERS: dict[str, Callable] = {
    "rand": rand, "randn": randn, "randint": randint, "bernoulli": bernoulli, "fold_in": fold_in,
    **{name: _primitive(name, dtype) for name, dtype in (
        ("philox_f64", "f64"), ("philox_f32", "f32"), ("philox_normal_f64", "f64"),
        ("philox_normal_f32", "f32"), ("philox_bits", "i64"), ("mulhi", "i64"), ("randint_span", "i64"))},
}

from .builtins import register  # noqa: E402  (see builtins.register)

register(BUILDERS)
