"""A differential fuzzer: random well-typed tdsl programs checked against NumPy, and a parser fuzzer.

    python -m tests.fuzz --count 200 [--seed S] [--targets numpy,c,opencl] [--layouts cpu,gpu]
                         [--sanitize] [--parser N] [--findings FILE]

The generator builds each program as an expression tree that knows every value's dtype and
symbolic shape, so programs are well typed by construction. The oracle evaluates the same
tree with NumPy directly (np.exp, np.sum, np.matmul, ...): it never goes through tdsl, so a
wrong answer of the reference interpreter shows up too. Each program runs on every target
(OpenCL once per launch layout) and is compared with the oracle and with the reference
interpreter (target numpy). A disagreement is shrunk (smaller expression, smaller sizes) and
printed as a .tdsl source with its inputs, ready to paste. See docs/testing.md.
"""
from __future__ import annotations

import argparse
import faulthandler
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

import tdsl
from tdsl.errors import TdslError, TdslRuntimeError

NP = {"bool": np.dtype(np.bool_), "i32": np.dtype(np.int32), "i64": np.dtype(np.int64),
      "f32": np.dtype(np.float32), "f64": np.dtype(np.float64)}
TDSL_NAME = {v: k for k, v in NP.items()}
SIZE_VARS = ("n", "m", "k")
SMALL_SIZES = (0, 1, 1, 2, 2, 3, 3, 4, 5, 7, 8, 9, 13)   # 8 and up: vector bodies and their tails
# Past TDSL_BLOCK (128, blocked float sums), the 16x16 / 32-row matmul tiles and strips,
# and, for the product of two dims, TDSL_PARALLEL_MIN (65536 points: OpenMP threads).
LARGE_SIZES = (17, 33, 129, 257, 300)
MAX_ELEMENTS = 200_000


class Expected(Exception):
    """The program must fail on this input (NumPy raises, or tdsl's contract requires an error)."""


class Unspecified(Exception):
    """The contract leaves this input's result unspecified (a float-to-int cast of NaN, ...)."""


# -- dims -------------------------------------------------------------------------------------
# A dim is a string in tdsl's dim syntax, which is also Python: "3", "n", "n - 1", "2 * n".
# Two dims are the same when their strings are; the generator only combines those.

def is_lit(d: str) -> bool:
    """An integer literal dim."""
    return d.isdigit()


def is_simple(d: str) -> bool:
    """A literal or a size variable: safe to write anywhere tdsl takes a dim."""
    return is_lit(d) or d in SIZE_VARS or re.fullmatch(r"p\d+", d) is not None


def dim_value(d: str, sizes: dict) -> int:
    """The length a dim has for these size-variable values."""
    return int(eval(d, {}, dict(sizes)))  # noqa: S307 -- our own dim strings


def dim_add(a: str, b: str) -> str:
    """The dim of two dims end to end (concat)."""
    if is_lit(a) and is_lit(b):
        return str(int(a) + int(b))
    return f"2 * {a}" if a == b and is_simple(a) else f"({a}) + ({b})"


def dim_mul(dims) -> str:
    """The dim of a product of dims (reshape merging axes)."""
    lits = math.prod(int(d) for d in dims if is_lit(d))
    names = [d if is_simple(d) else f"({d})" for d in dims if not is_lit(d)]
    if not names:
        return str(lits)
    return " * ".join(([str(lits)] if lits != 1 else []) + names)


def broadcast(*shapes):
    """The broadcast of symbolic shapes, or None when they do not broadcast in tdsl's rules."""
    rank = max(len(s) for s in shapes)
    out = []
    for axis in range(rank):
        dims = {s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0} - {"1"}
        if len(dims) > 1:
            return None
        out.append(dims.pop() if dims else "1")
    return tuple(out)


# -- the expression tree ----------------------------------------------------------------------

@dataclass(eq=False)
class Node:
    """One value: an op applied to kids, with its dtype and symbolic shape."""

    op: str
    kids: tuple = ()
    attrs: dict = field(default_factory=dict)
    dtype: str = "f64"
    shape: tuple = ()
    weak: bool = False
    name: str | None = None     # bound to a statement `name = ...` when set


@dataclass
class Param:
    name: str
    dtype: str
    shape: tuple
    index_for: str | None = None    # a gather index into an axis of this length


@dataclass
class Program:
    """A function: parameters, a result tree (named nodes become statements), size minima."""

    name: str
    params: list
    result: Node
    min_size: dict = field(default_factory=dict)
    grad_of: Node | None = None     # when set: the function returns grad(grad_of, params[0])
    smooth: bool = True             # grad: finite differences are a valid oracle
    seed: int = 0
    rename: dict = field(default_factory=dict)   # internal name -> the name the source shows
    by_keyword: bool = False        # call with keyword arguments (the shown parameter names)

    @property
    def shown(self) -> str:
        """The function's name in the source."""
        return self.rename.get(self.name, self.name)


UNARY_FLOAT = ("sqrt", "rsqrt", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos",
               "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "sigmoid", "softplus", "erf")
UNARY_ARITH = ("abs", "sign", "square", "reciprocal", "relu", "floor", "ceil", "round")
PREDICATES = ("isnan", "isinf", "isfinite")
ARITH = ("+", "-", "*", "/", "//", "%", "**", "maximum", "minimum", "atan2")
COMPARE = ("==", "!=", "<", "<=", ">", ">=")
REDUCTIONS = ("sum", "mean", "prod", "max", "min", "argmax", "argmin", "any", "all", "var", "std",
              "logsumexp")


def _erf(x):
    x = np.asarray(x)
    flat = np.array([math.erf(v) for v in x.astype(np.float64).ravel()]).reshape(x.shape)
    return flat.astype(x.dtype)


def _sigmoid(x):
    x = np.asarray(x)
    return (1 / (1 + np.exp(-x.astype(np.float64)))).astype(x.dtype) if x.dtype == np.float32 \
        else 1 / (1 + np.exp(-x))


def _softplus(x):
    return np.logaddexp(np.zeros((), np.asarray(x).dtype), x)


def _relu(x):
    x = np.asarray(x)
    keep = (x > 0) | np.isnan(x) if x.dtype.kind == "f" else x > 0
    return np.where(keep, x, np.zeros((), x.dtype))


def _as_float(x):
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float64)


NP_UNARY = {
    "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(_as_float(x)), "exp": np.exp, "exp2": np.exp2,
    "expm1": np.expm1, "log": np.log, "log2": np.log2, "log10": np.log10, "log1p": np.log1p, "sin": np.sin,
    "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh,
    "cosh": np.cosh, "tanh": np.tanh, "sigmoid": lambda x: _sigmoid(_as_float(x)),
    "softplus": lambda x: _softplus(_as_float(x)), "erf": lambda x: _erf(_as_float(x)),
    "abs": np.abs, "sign": np.sign, "square": np.square, "reciprocal": np.reciprocal,
    "relu": lambda x: _relu(x),
    "floor": np.floor, "ceil": np.ceil, "round": np.round, "isnan": np.isnan, "isinf": np.isinf,
    "isfinite": np.isfinite, "neg": np.negative, "not": np.logical_not,
}
NP_BINARY = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide, "//": np.floor_divide,
    "%": np.mod, "**": np.power, "maximum": np.maximum, "minimum": np.minimum, "atan2": np.arctan2,
    "==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
    ">=": np.greater_equal, "and": np.logical_and, "or": np.logical_or,
}
CALL_FORM = {"maximum", "minimum", "atan2"}


def lit(value) -> Node:
    """A weak literal."""
    dtype = "bool" if isinstance(value, bool) else "i64" if isinstance(value, int) else "f64"
    return Node("lit", attrs={"value": value}, dtype=dtype, weak=True)


def dummy(node: Node):
    """A stand-in of `node`'s dtype for asking NumPy a result dtype: a weak value stays a Python scalar."""
    if node.op == "lit":
        return node.attrs["value"]
    if node.weak:
        return 1
    return np.ones((1,) * len(node.shape), NP[node.dtype])


def numpy_dtype(fn, *kids):
    """The dtype NumPy gives `fn` of these operands, (dtype, weak); None when NumPy refuses."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(*[dummy(k) for k in kids])
    except (TypeError, ValueError, OverflowError):
        return None
    if isinstance(out, (bool, int, float)):
        return ("bool" if isinstance(out, bool) else "i64" if isinstance(out, int) else "f64"), True
    name = TDSL_NAME.get(np.asarray(out).dtype)
    return (name, False) if name else None


# -- rendering as .tdsl -----------------------------------------------------------------------

def tup(items) -> str:
    """A tdsl tuple: (a, b) or (a,)."""
    items = [str(i) for i in items]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def lit_text(value) -> str:
    """A weak literal as .tdsl text (negative values as a unary minus in parentheses)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if value >= 0 else f"(-{-value})"
    text = repr(abs(value))
    if "e" not in text and "." not in text:
        text += ".0"
    return text if math.copysign(1, value) > 0 else f"(-{text})"


def sub_text(sub) -> str:
    """One subscript as .tdsl text."""
    kind = sub[0]
    if kind == "i":
        return str(sub[1])
    if kind == "none":
        return "None"
    if kind == "ell":
        return "..."
    start, stop, step = (("" if v is None else str(v)) for v in sub[1:4])
    return f"{start}:{stop}" + (f":{step}" if step else "")


def _kw(node: Node, key: str, name: str) -> str:
    value = node.attrs.get(key)
    return "" if value is None else f", {name}={value}"


RENDER = {
    "lit": lambda n, k: lit_text(n.attrs["value"]),
    "param": lambda n, k: n.attrs["name"],
    "size": lambda n, k: n.attrs["name"],
    "un": lambda n, k: f"{n.attrs['fn']}({k[0]})",
    "neg": lambda n, k: f"(-{k[0]})",
    "not": lambda n, k: f"(not {k[0]})",
    "bin": lambda n, k: (f"{n.attrs['fn']}({k[0]}, {k[1]})" if n.attrs["fn"] in CALL_FORM
                         else f"({k[0]} {n.attrs['fn']} {k[1]})"),
    "where": lambda n, k: f"where({k[0]}, {k[1]}, {k[2]})",
    "clip": lambda n, k: f"clip({k[0]}, {k[1]}, {k[2]})",
    "cast": lambda n, k: f"{n.attrs['to']}({k[0]})",
    "reduce": lambda n, k: (f"{n.attrs['fn']}({k[0]}{_kw(n, 'axis', 'axis')}"
                            f"{', keepdims=true' if n.attrs.get('keepdims') else ''})"),
    "softmax": lambda n, k: f"{n.attrs['fn']}({k[0]}{_kw(n, 'axis', 'axis')})",
    "matmul": lambda n, k: (f"({k[0]} @ {k[1]})" if n.attrs["form"] == "@" else f"{n.attrs['form']}({k[0]}, {k[1]})"),
    "index": lambda n, k: f"{k[0]}[{', '.join(sub_text(s) for s in n.attrs['subs'])}]",
    "T": lambda n, k: f"{k[0]}.T",
    "transpose": lambda n, k: f"transpose({k[0]}, {tup(n.attrs['perm'])})",
    "reshape": lambda n, k: f"reshape({k[0]}, {tup(n.attrs['dims'])})",
    "expand_dims": lambda n, k: f"expand_dims({k[0]}, {n.attrs['axis']})",
    "squeeze": lambda n, k: f"squeeze({k[0]}{'' if n.attrs['axis'] is None else ', ' + str(n.attrs['axis'])})",
    "flip": lambda n, k: f"flip({k[0]}{'' if n.attrs['axis'] is None else ', ' + str(n.attrs['axis'])})",
    "broadcast_to": lambda n, k: f"broadcast_to({k[0]}, {tup(n.shape)})",
    "concat": lambda n, k: f"concat({tup(k)}, axis={n.attrs['axis']})",
    "stack": lambda n, k: f"stack({tup(k)}, axis={n.attrs['axis']})",
    "take": lambda n, k: f"take({k[0]}, {k[1]}, axis={n.attrs['axis']})",
    "zeros": lambda n, k: f"{n.attrs['fn']}({tup(n.shape)}{_kw(n, 'dt', 'dtype')})",
    "full": lambda n, k: f"full({tup(n.shape)}, {k[0]}{_kw(n, 'dt', 'dtype')})",
    "arange": lambda n, k: f"arange({n.shape[0]})",
    "eye": lambda n, k: f"eye({n.shape[0]}{_kw(n, 'dt', 'dtype')})",
    "one_hot": lambda n, k: f"one_hot({k[0]}, {n.shape[-1]}{_kw(n, 'dt', 'dtype')})",
    "like": lambda n, k: f"{n.attrs['fn']}({k[0]})",
}


def render_program(prog: Program) -> str:
    """The program as one .tdsl function."""
    lines, seen = [], set()

    def expr(node: Node, top: bool = False) -> str:
        if node.name and not top:
            if id(node) not in seen:
                seen.add(id(node))
                lines.append(f"    {node.name} = {expr(node, True)}")
            return node.name
        return RENDER[node.op](node, [expr(k) for k in node.kids])

    params = ", ".join(f"{p.name}: {p.dtype}" + (f"[{', '.join(p.shape)}]" if p.shape else "")
                       for p in prog.params)
    if prog.grad_of is not None:
        y = prog.grad_of
        lines.append(f"    {y.name} = {expr(y, True)}")
        seen.add(id(y))
        out = f"grad({y.name}, {prog.params[0].name})"
    else:
        out = expr(prog.result)
    body = "\n".join(lines + [f"    return {out}"])
    text = f"fn {prog.name}({params}) {{\n{body}\n}}\n"
    if prog.rename:
        text = re.sub(r"\b(x\d+|t\d+|g\d+|n|m|k|y)\b", lambda m: prog.rename.get(m.group(), m.group()), text)
    return text


# -- the NumPy oracle -------------------------------------------------------------------------

def _reduce(fn: str, x, axis, keepdims: bool):
    x = np.asarray(x)
    if fn == "logsumexp":
        return _logsumexp(x, axis, keepdims)
    if fn in ("argmax", "argmin"):
        return getattr(np, fn)(x, axis=axis)
    return getattr(np, fn)(x, axis=axis, keepdims=keepdims)


def _logsumexp(x, axis, keepdims):
    """log(sum(exp(x))) computed stably; over no elements it is log(0) = -inf."""
    x = _as_float(x)
    if x.size == 0 or any(x.shape[a] == 0 for a in _axes(axis, x.ndim)):
        return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, np.zeros((), x.dtype))
    out = np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top
    return out if keepdims else np.squeeze(out, axis=_axes(axis, x.ndim))


def _axes(axis, rank: int) -> tuple:
    if axis is None:
        return tuple(range(rank))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(a % rank for a in axes)


def _softmax(fn: str, x, axis):
    """Shifted by the axis' finite max (an inf among finite values gives 0 and -inf, not NaN everywhere)."""
    x = _as_float(x)
    if fn == "softmax" and np.isposinf(x).any():
        # the contract is silent; tdsl gives NaN for large finite values next to +inf and 0 for
        # small ones (reported in docs/testing.md's list of open questions), so not compared
        raise Unspecified("softmax of an axis holding +inf")
    if x.size == 0 or x.shape[axis] == 0:
        return x.copy()
    top = np.max(x, axis=axis, keepdims=True)
    shifted = x - np.where(np.isfinite(top), top, np.zeros((), x.dtype))
    # not x - logsumexp(x): next to 9.2e18 the log of the sum (log 2 for two tied maxima) is absorbed
    total = np.sum(np.exp(shifted), axis=axis, keepdims=True)
    return shifted - np.log(total) if fn == "log_softmax" else np.exp(shifted) / total


def _index(x, subs):
    """x[subs], raising Expected where tdsl's contract wants the axis longer than it is."""
    x = np.asarray(x)
    named = [s for s in subs if s[0] not in ("none", "ell")]
    axis = x.ndim - len(named) if subs and subs[0][0] == "ell" else 0
    for sub in named:
        need = sub[-1] if sub[0] == "s" else (sub[1] + 1 if sub[1] >= 0 else -sub[1])
        if x.shape[axis] < need:
            raise Expected(f"axis {axis} of length {x.shape[axis]} is shorter than {need}")
        axis += 1
    return x[tuple(_np_sub(s) for s in subs)]


def _np_sub(sub):
    return {"i": lambda: sub[1], "none": lambda: None, "ell": lambda: Ellipsis,
            "s": lambda: slice(sub[1], sub[2], sub[3])}[sub[0]]()


def _cast(x, to: str):
    x = np.asarray(x)
    if x.dtype.kind == "f" and to in ("i32", "i64") and x.size:
        info = np.iinfo(NP[to])
        with np.errstate(all="ignore"):
            bad = ~np.isfinite(x) | (np.trunc(x) < info.min) | (np.trunc(x) >= float(info.max) + 1)
        if bad.any():
            raise Unspecified("a float-to-int cast of NaN, inf or an out-of-range value")
    return x.astype(NP[to])


def _reciprocal(x):
    x = np.asarray(x)
    if x.dtype.kind in "iu" and (x == 0).any():
        raise Unspecified("an integer reciprocal of 0")
    return np.reciprocal(x)


def _take(x, idx, axis):
    x, idx = np.asarray(x), np.asarray(idx)
    length = x.shape[axis]
    if idx.size and ((idx < -length) | (idx >= length)).any():
        # the contract: out-of-range indices are an error, even where the result is empty
        # (NumPy checks them only when it gathers something)
        raise Expected(f"take: an index is out of range for an axis of length {length}")
    return np.take(x, idx, axis=axis)


def _matmul(a, b):
    """np.matmul; where a fused and an unfused sum of products disagree on inf or NaN, unspecified."""
    out = np.matmul(a, b)
    if np.asarray(out).dtype.kind != "f" or np.isfinite(out).all():
        return out
    # BLAS fuses multiply and add: -1.4 * 3e38 does not overflow there, and inf stays inf; one product at a
    # time it is -inf, and inf + -inf is NaN. Both are right for floats; the contract cannot pick one.
    a2, b2 = np.asarray(a), np.asarray(b)
    a3 = a2[..., None, :] if a2.ndim == 1 else a2
    b3 = b2[..., :, None] if b2.ndim == 1 else b2
    unfused = np.sum(a3[..., :, :, None] * b3[..., None, :, :], axis=-2)
    unfused = unfused.reshape(np.shape(out))
    if (np.isnan(out) != np.isnan(unfused)).any() or (np.isinf(out) != np.isinf(unfused)).any():
        raise Unspecified("a matmul next to overflow: fused and unfused products disagree on inf or NaN")
    return out


# -- conditioning: where rounding decides more than the comparison's tolerance allows ----------------
# Ops whose value is one of their operands' values (or a constant): they round nothing themselves.
EXACT_OPS = {"param", "lit", "size", "neg", "index", "T", "transpose", "reshape", "expand_dims", "squeeze", "flip",
             "broadcast_to", "concat", "stack", "take", "where", "clip", "zeros", "full", "arange", "eye", "one_hot",
             "like"}
ROUNDING_ULPS = 8   # a few roundings' worth of error, relative to the largest magnitude around


def exact(node: Node) -> bool:
    """Whether `node` is computed without any rounding (a parameter, a literal, moved or selected values)."""
    selects = node.op == "bin" and node.attrs["fn"] in ("maximum", "minimum") or \
        node.op == "un" and node.attrs["fn"] == "abs"
    return (node.op in EXACT_OPS or selects) and all(exact(k) for k in node.kids)


def rounded_to_f32(node: Node, memo: dict) -> bool:
    """Whether any step computing `node` rounded to f32 (an f32 parameter, moved or selected, rounds nothing)."""
    if id(node) not in memo:
        moves = node.op in EXACT_OPS and all(k.dtype == "f32" for k in node.kids)
        memo[id(node)] = node.dtype == "f32" and not moves or any(rounded_to_f32(k, memo) for k in node.kids)
    return memo[id(node)]


def precision(node: Node) -> str:
    """The dtype whose tolerance a value gets: f32 where any step computing it rounded to f32, even if it is f64."""
    return "f32" if node.dtype in ("f32", "f64") and rounded_to_f32(node, {}) else node.dtype


def _scale(values) -> float:
    """The largest finite |value| (at least 1): the scale of compare's absolute tolerance."""
    finite = values[np.isfinite(values)]
    return max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0


def _rounding_error(node: Node, value):
    """About how far a computed float operand may be from the oracle's: none when exact, else a few ulps of the scale."""
    value = np.asarray(value, np.float64)
    if exact(node) or node.dtype not in ("f32", "f64"):
        return np.zeros_like(value)
    return ROUNDING_ULPS * np.finfo(NP[precision(node)]).eps * _scale(value)


def _binary(node: Node, a, b):
    """An operator; a float % or // next to one of its steps after rounding is unspecified."""
    fn = node.attrs["fn"]
    out = NP_BINARY[fn](a, b)
    if fn in ("%", "//") and node.dtype in ("f32", "f64"):
        x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
        # x % y jumps from ~0 to ~|y| where x / y crosses an integer: a value within the operands' rounding
        # error of that step (log_softmax(x) % 9.2e18: -1e-17 or 0.0) may land on either side
        slack = _rounding_error(node.kids[0], x) + np.abs(np.floor(x / y)) * _rounding_error(node.kids[1], y)
        rest = np.abs(np.mod(x, y))
        near = np.isfinite(rest) & (np.minimum(rest, np.abs(y) - rest) <= slack) & (slack > 0)
        if near.any():
            raise Unspecified(f"a float {fn} within rounding error of a step")
    return out


def _summed(node: Node, x):
    """sum or mean; unspecified where a few roundings of sum(|x|) exceed the comparison's tolerance (cancellation)."""
    fn, axis, keepdims = node.attrs["fn"], _np_axis(node), node.attrs.get("keepdims", False)
    out = _reduce(fn, x, axis, keepdims)
    if node.dtype in ("f32", "f64") and np.size(x):
        mass = _reduce(fn, np.abs(np.asarray(x, np.float64)), axis, keepdims)   # sum(|x|) or mean(|x|)
        rtol, atol = TOLERANCE[precision(node)]
        value = np.asarray(out, np.float64)
        allowed = atol * _scale(value) + rtol * np.abs(value)
        with np.errstate(all="ignore"):
            loose = np.isfinite(mass) & (ROUNDING_ULPS * np.finfo(NP[precision(node)]).eps * mass > allowed)
        if loose.any():   # int64 max and min in one mean: 0.0 or -0.16, by the order of the float sum
            raise Unspecified(f"a {fn} with catastrophic cancellation")
    return out


def _one_hot(labels, k: int, dt: str | None):
    labels = np.asarray(labels)
    return (labels[..., None] == np.arange(k)).astype(NP[dt or "f64"])


def _shape(node: Node, sizes: dict) -> tuple:
    return tuple(dim_value(d, sizes) for d in node.shape)


def _dt(node: Node):
    return NP[node.attrs.get("dt") or "f64"]


EVAL = {
    "un": lambda n, v, s: (_reciprocal(v[0]) if n.attrs["fn"] == "reciprocal" else NP_UNARY[n.attrs["fn"]](v[0])),
    "neg": lambda n, v, s: np.negative(v[0]),
    "not": lambda n, v, s: np.logical_not(v[0]),
    "bin": lambda n, v, s: _binary(n, v[0], v[1]),
    "where": lambda n, v, s: np.where(v[0], v[1], v[2]),
    "clip": lambda n, v, s: np.clip(v[0], v[1], v[2]),
    "cast": lambda n, v, s: _cast(v[0], n.attrs["to"]),
    "reduce": lambda n, v, s: (_summed(n, v[0]) if n.attrs["fn"] in ("sum", "mean") else
                               _reduce(n.attrs["fn"], v[0], _np_axis(n), n.attrs.get("keepdims", False))),
    "softmax": lambda n, v, s: _softmax(n.attrs["fn"], v[0], -1 if n.attrs.get("axis") is None else n.attrs["axis"]),
    "matmul": lambda n, v, s: _matmul(v[0], v[1]),
    "index": lambda n, v, s: _index(v[0], n.attrs["subs"]),
    "T": lambda n, v, s: np.transpose(v[0]),
    "transpose": lambda n, v, s: np.transpose(v[0], n.attrs["perm"]),
    # tdsl resolves a -1 from the symbolic shape, so it is defined even for an empty array (NumPy refuses)
    "reshape": lambda n, v, s: np.reshape(v[0], tuple(dim_value(n.shape[i] if d == -1 else d, s)
                                                      for i, d in enumerate(n.attrs["dims"]))),
    "expand_dims": lambda n, v, s: np.expand_dims(v[0], n.attrs["axis"]),
    "squeeze": lambda n, v, s: np.squeeze(v[0], n.attrs["axis"] if n.attrs["axis"] is not None else
                                          tuple(i for i, d in enumerate(n.kids[0].shape) if d == "1")),
    "flip": lambda n, v, s: np.flip(v[0], n.attrs["axis"]),
    "broadcast_to": lambda n, v, s: np.broadcast_to(v[0], _shape(n, s)),
    "concat": lambda n, v, s: np.concatenate(v, axis=n.attrs["axis"]),
    "stack": lambda n, v, s: np.stack(v, axis=n.attrs["axis"]),
    "take": lambda n, v, s: _take(v[0], v[1], n.attrs["axis"]),
    "zeros": lambda n, v, s: getattr(np, n.attrs["fn"])(_shape(n, s), _dt(n)),
    "full": lambda n, v, s: (np.full(_shape(n, s), v[0], _dt(n)) if n.attrs.get("dt")
                             else np.full(_shape(n, s), v[0])),
    "arange": lambda n, v, s: np.arange(_shape(n, s)[0], dtype=np.int64),
    "eye": lambda n, v, s: np.eye(_shape(n, s)[0], dtype=_dt(n)),
    "one_hot": lambda n, v, s: _one_hot(v[0], int(n.shape[-1]), n.attrs.get("dt")),
    "like": lambda n, v, s: getattr(np, n.attrs["fn"])(v[0]),
}


def evaluate(node: Node, env: dict, sizes: dict, memo: dict):
    """The value of `node` computed by NumPy; raises Expected or Unspecified."""
    if id(node) in memo:
        return memo[id(node)]
    if node.op == "lit":
        value = node.attrs["value"]
    elif node.op in ("param", "size"):
        value = env[node.attrs["name"]]
    else:
        kids = [evaluate(k, env, sizes, memo) for k in node.kids]
        try:
            value = EVAL[node.op](node, kids, sizes)
        except (ValueError, IndexError, OverflowError, ZeroDivisionError) as err:
            raise Expected(f"NumPy raises {type(err).__name__}: {err}") from None
    memo[id(node)] = value
    return value


def oracle(prog: Program, args: dict, sizes: dict):
    """The program's result by NumPy alone: a value, or raises Expected / Unspecified."""
    env = dict(args, **sizes)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if prog.grad_of is not None:
            return finite_difference(prog, env, sizes)
        out = evaluate(prog.result, env, sizes, {})
    return weak_default(out)


def weak_default(out):
    """A Python scalar result (all operands weak) as tdsl returns it: i64, f64 or bool."""
    if isinstance(out, bool):
        return np.bool_(out)
    if isinstance(out, int):
        return np.int64(out)
    if isinstance(out, float):
        return np.float64(out)
    return out


def finite_difference(prog: Program, env: dict, sizes: dict):
    """d y / d x by central differences in f64 (smooth programs only; see docs/testing.md)."""
    x_name = prog.params[0].name
    x = np.array(env[x_name], dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        h = 1e-6 * max(1.0, abs(x[i]))
        values = []
        for sign in (1, -1):
            moved = x.copy()
            moved[i] += sign * h
            local = dict(env, **{x_name: moved.astype(env[x_name].dtype) if prog.params[0].dtype == "f64" else moved})
            values.append(float(evaluate(prog.grad_of, local, sizes, {})))
        grad[i] = (values[0] - values[1]) / (2 * h)
    return grad.astype(NP[prog.params[0].dtype])


# -- names ----------------------------------------------------------------------------------
# Valid tdsl names that C, OpenCL, Python or the generated code's own locals also use.
HOSTILE_NAMES = ("j", "i0", "strip", "item", "stop", "start", "runs", "first", "last", "half", "acc", "lanes",
                 "gid", "lid", "self", "out", "out0", "error", "size", "shape", "data", "result", "__LINE__",
                 "__FILE__", "_Atomic", "_Generic", "__attribute__", "__asm__", "_Pragma", "__int128",
                 "math_errhandling", "int", "double", "char", "restrict", "inline", "kernel", "global", "local",
                 "__global", "__kernel", "private", "constant", "printf", "memcpy", "malloc", "np", "numpy", "tdsl",
                 "cl", "ctypes", "lambda", "class", "def", "pass", "import", "True", "math", "INFINITY", "NAN", "NULL",
                 "errno", "main", "x", "outer", "e", "pi", "inf", "nan", "queue", "args", "kwargs", "chunk", "chunks",
                 "tile", "row", "col", "idx", "offset", "stride", "count", "value", "buffer", "program", "ctx")
HOSTILE_FUNCTIONS = ("error", "set_blas", "main", "free", "malloc", "printf", "exit", "strip", "run", "load",
                     "source", "signature", "trace", "explain", "functions", "path", "target", "filename",
                     "g_packed", "kernel", "__init__", "__class__", "__dict__", "lambda", "self", "items")


def hostile_names(prog: Program, rng: random.Random, module_names: set) -> None:
    """Rename some parameters, size variables and statements (and maybe the function) to hostile names."""
    body = render_program(prog)
    taken = set(re.findall(r"[A-Za-z_]\w*", body))
    internal = sorted(set(re.findall(r"\b(?:x\d+|t\d+|n|m|k|y)\b", body)))
    # a local may not take the name of a function of the module (tdsl: "it names a type or a function")
    pool = [h for h in HOSTILE_NAMES if h not in taken and h not in module_names]
    rng.shuffle(pool)
    for name in internal:
        if pool and rng.random() < 0.5:
            prog.rename[name] = pool.pop()
    shown = set(prog.rename.values())
    free = [f for f in HOSTILE_FUNCTIONS
            if f not in module_names and f not in shown and "local " + f not in module_names]
    if free and rng.random() < 0.3:
        prog.rename[prog.name] = rng.choice(free)
        module_names.add(prog.rename[prog.name])
    module_names.update("local " + name for name in shown)
    prog.by_keyword = rng.random() < 0.3


# -- the generator ----------------------------------------------------------------------------

INT_LITERALS = (0, 1, 2, 3, 5, -1, -2, -7, 100)
FLOAT_LITERALS = (0.5, 2.0, -1.5, 1e-3, 3.0, -0.0, 0.0, 1e10, 0.1, 100.0, 2.5e-8, -7.25)


class Gen:
    """The state of one program being generated: parameters, values made so far, size minima."""

    def __init__(self, rng: random.Random, name: str):
        self.rng, self.name = rng, name
        self.vars = rng.sample(SIZE_VARS, rng.randint(1, 3))
        self.params, self.pool, self.min_size, self.count = [], [], {}, 0

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def dim(self) -> str:
        return self.rng.choice(self.vars + ["1", "2", "3"] if self.chance(0.4) else self.vars)

    def shape(self, max_rank: int = 3) -> tuple:
        rank = self.rng.choice([0, 1, 1, 2, 2, 2, 3][: max_rank + 4])
        return tuple(self.dim() for _ in range(min(rank, max_rank)))

    def param(self, dtype: str, shape: tuple, index_for: str | None = None) -> Node:
        name = f"x{len(self.params)}"
        self.params.append(Param(name, dtype, shape, index_for))
        node = Node("param", attrs={"name": name}, dtype=dtype, shape=shape)
        if index_for is None:
            self.pool.append(node)
        return node

    def add(self, node: Node | None) -> Node | None:
        """Keep a new value; some values become statements, the others stay inline."""
        if node is not None:
            if self.chance(0.4):
                self.count += 1
                node.name = f"t{self.count}"
            self.pool.append(node)
        return node

    def pick(self, pred=lambda v: True) -> Node | None:
        """A value from the pool; half the time one of the two newest, so that chains of ops grow."""
        found = [v for v in self.pool if not v.weak and pred(v)]
        if not found:
            return None
        return self.rng.choice(found[-2:] if self.chance(0.5) else found)

    def need(self, dim: str, length: int) -> None:
        """A slice or index needs this dim to be at least `length` long."""
        if dim in self.vars:
            self.min_size[dim] = max(self.min_size.get(dim, 0), length)

    def literal(self, context: str) -> Node:
        if context == "bool":
            return lit(self.chance(0.5))
        if context.startswith("i") or self.chance(0.3):
            if context == "i64" and self.chance(0.03):
                return lit(self.rng.choice([2**63 - 1, -2**63]))
            if context == "f64" and self.chance(0.03):
                return lit(-99999999999999999999)
            return lit(self.rng.choice(INT_LITERALS))
        return lit(self.rng.choice(FLOAT_LITERALS))

    def operand(self, like: Node, numeric: bool) -> Node:
        """A second operand for `like`: a value of a broadcasting shape, a size variable or a literal."""
        other = self.pick(lambda v: (v.dtype != "bool") == numeric and broadcast(v.shape, like.shape) is not None)
        if other is not None and self.chance(0.6):
            return other
        if numeric and self.chance(0.15):
            return Node("size", attrs={"name": self.rng.choice(self.vars)}, dtype="i64", weak=True)
        return self.literal(like.dtype)


def numeric(v: Node) -> bool:
    """Not bool: arithmetic takes it."""
    return v.dtype != "bool"


def make_elementwise(op: str, fn: str, kids: list, np_fn) -> Node | None:
    """An elementwise node of broadcast shape and NumPy's result dtype, or None when NumPy refuses."""
    shape = broadcast(*[k.shape for k in kids])
    typed = numpy_dtype(np_fn, *kids) if shape is not None else None
    if typed is None:
        return None
    return Node(op, tuple(kids), {"fn": fn}, typed[0], shape, typed[1])


def mk_unary(g: Gen) -> Node | None:
    """A unary builtin or operator the value's dtype takes."""
    x = g.pick()
    if x is None:
        return None
    if x.dtype == "bool":
        fn = g.rng.choice(PREDICATES + ("not",))
    else:
        fn = g.rng.choice(UNARY_FLOAT + UNARY_ARITH + PREDICATES + ("neg",))
    if fn in ("not", "neg"):
        return Node(fn, (x,), dtype=x.dtype, shape=x.shape)
    return make_elementwise("un", fn, [x], NP_UNARY[fn])


def mk_binary(g: Gen) -> Node | None:
    """An arithmetic, comparison or logical operator with a value, a size variable or a literal."""
    a = g.pick()
    if a is None:
        return None
    if a.dtype == "bool":
        fn = g.rng.choice(("==", "!=", "and", "or"))
        b = g.operand(a, numeric=False)
    else:
        fn = g.rng.choice(ARITH + ARITH + COMPARE)
        b = g.operand(a, numeric=True)
    kids = [a, b] if g.chance(0.5) or fn in CALL_FORM and b.weak else [b, a]
    return make_elementwise("bin", fn, kids, NP_BINARY[fn])


def condition(g: Gen) -> Node | None:
    """A bool value: one of the pool, or a comparison made now."""
    c = g.pick(lambda v: v.dtype == "bool")
    if c is None or g.chance(0.3):
        x = g.pick(numeric)
        c = x and make_elementwise("bin", ">", [x, lit(0)], np.greater)
    return c


def mk_where(g: Gen) -> Node | None:
    """where(c, a, b) over broadcasting operands."""
    c = condition(g)
    a = g.pick(numeric)
    if c is None or a is None:
        return None
    b = g.operand(a, numeric=True)
    kids = [c, a, b] if g.chance(0.5) else [c, b, a]
    return make_elementwise("where", "where", kids, np.where)


def mk_clip(g: Gen) -> Node | None:
    """clip(x, lo, hi) with literal or value bounds."""
    x = g.pick(numeric)
    if x is None:
        return None
    if g.chance(0.6):
        lo, hi = sorted(g.rng.sample([-2, -1, 0, 1, 3, -0.5, 0.25, 2.5], 2))
        bounds = [lit(lo), lit(hi)]
    else:
        bounds = [g.operand(x, True), g.operand(x, True)]
    return make_elementwise("clip", "clip", [x] + bounds, np.clip)


def mk_cast(g: Gen) -> Node | None:
    """A cast to another dtype."""
    x = g.pick()
    if x is None:
        return None
    to = g.rng.choice([d for d in NP if d != x.dtype])
    return Node("cast", (x,), {"to": to}, to, x.shape)


def reduce_axes(g: Gen, rank: int, single: bool):
    """(axis attribute, reduced axes) of a random reduction of a rank-`rank` value."""
    if rank == 0 or g.chance(0.3):
        return None, tuple(range(rank))
    if rank >= 2 and not single and g.chance(0.3):
        axes = tuple(sorted(g.rng.sample(range(rank), 2)))
        shown = tuple(a - rank if g.chance(0.3) else a for a in axes)
        return tup(shown), axes
    axis = g.rng.randrange(rank)
    return (axis - rank if g.chance(0.3) else axis), (axis,)


def mk_reduce(g: Gen, fn: str | None = None, x: Node | None = None) -> Node | None:
    """A reduction over no axis, one axis or two, with or without keepdims."""
    newest = [v for v in g.pool if not v.weak]
    sliced = x is None and g.chance(0.25)
    if sliced:   # a reduction over a sliced axis: its bounds are dim expressions (issue 11, item 1)
        x = mk_index(g)
    x = x or (newest[-1] if newest and g.chance(0.5) else g.pick())
    if x is None:
        return None
    allowed = REDUCTIONS if x.dtype != "bool" else ("sum", "mean", "prod", "max", "min", "argmax", "argmin",
                                                        "any", "all")
    fn = fn or g.rng.choice(allowed)
    arg = fn in ("argmax", "argmin")
    axis, axes = reduce_axes(g, len(x.shape), single=arg)
    if sliced and x.shape and g.chance(0.5):
        axis, axes = 0, (0,)
    keepdims = not arg and g.chance(0.3)
    np_axis = None if axis is None else (axes if isinstance(axis, str) else axis)
    typed = numpy_dtype(lambda v: _reduce(fn, v, np_axis, keepdims), x)
    if typed is None:
        return None
    shape = tuple(("1" if keepdims else None) if i in axes else d for i, d in enumerate(x.shape))
    attrs = {"fn": fn, "axis": axis, "keepdims": keepdims}
    return Node("reduce", (x,), attrs, typed[0], tuple(d for d in shape if d is not None))


def _np_axis(node: Node):
    """The axis attribute of a reduce node as NumPy takes it."""
    axis = node.attrs.get("axis")
    return eval(axis) if isinstance(axis, str) else axis   # noqa: S307 -- our own tuple text


def mk_softmax(g: Gen) -> Node | None:
    """softmax or log_softmax along an axis."""
    x = g.pick(lambda v: numeric(v) and v.shape)
    if x is None:
        return None
    rank = len(x.shape)
    axis = None if g.chance(0.3) else g.rng.randrange(-rank, rank)
    dtype = x.dtype if x.dtype.startswith("f") else "f64"
    return Node("softmax", (x,), {"fn": g.rng.choice(("softmax", "log_softmax")), "axis": axis}, dtype, x.shape)


def mk_matmul(g: Gen) -> Node | None:
    """@, matmul or dot of two values whose inner dims agree (a value and its transpose, at worst)."""
    a = g.pick(lambda v: numeric(v) and v.shape)
    if a is None:
        return None
    b = g.pick(lambda v: numeric(v) and v.shape and matmul_shape(a.shape, v.shape) is not None)
    if b is None or g.chance(0.4):
        b = a if len(a.shape) == 1 else transposed(a)
    shape = matmul_shape(a.shape, b.shape)
    typed = numpy_dtype(np.matmul, a, b) if shape is not None else None
    if typed is None:
        return None
    forms = ["@", "matmul"] + (["dot"] if len(a.shape) == len(b.shape) <= 2 else [])
    return Node("matmul", (a, b), {"form": g.rng.choice(forms)}, typed[0], shape)


def transposed(a: Node) -> Node:
    """The value with its last two axes swapped."""
    rank = len(a.shape)
    if rank == 2:
        return Node("T", (a,), dtype=a.dtype, shape=a.shape[::-1])
    perm = tuple(range(rank - 2)) + (rank - 1, rank - 2)
    return Node("transpose", (a,), {"perm": perm}, a.dtype, tuple(a.shape[p] for p in perm))


def matmul_shape(a: tuple, b: tuple):
    """NumPy's matmul result shape of two symbolic shapes, or None."""
    a2 = a if len(a) > 1 else ("1",) + a
    b2 = b if len(b) > 1 else b + ("1",)
    if a2[-1] != b2[-2]:
        return None
    batch = broadcast(a2[:-2], b2[:-2]) if a2[:-2] or b2[:-2] else ()
    if batch is None:
        return None
    out = batch + ((a2[-2],) if len(a) > 1 else ()) + ((b2[-1],) if len(b) > 1 else ())
    return out


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


MAKERS = ((mk_unary, 6), (mk_binary, 8), (mk_where, 1.5), (mk_clip, 1), (mk_cast, 1.5), (mk_reduce, 4),
          (mk_softmax, 1), (mk_matmul, 2), (mk_index, 5), (mk_layout, 3), (mk_join, 1.2), (mk_take, 1.2),
          (mk_create, 1.2))


def generate(seed: int, name: str = "f") -> Program:
    """A random well-typed program."""
    rng = random.Random(seed)
    g = Gen(rng, name)
    for _ in range(rng.randint(1, 3)):
        dtype = rng.choice(["f32", "f64", "f64", "f32", "i32", "i64", "bool"])
        g.param(dtype, g.shape())
    made = []
    # swarm testing: each program draws from a few kinds of op, so those meet each other often
    swarm = rng.sample(MAKERS, rng.randint(2, 5))
    for _ in range(rng.randint(2, 7)):
        maker = rng.choices([m for m, _ in swarm], [w for _, w in swarm])[0]
        node = g.add(maker(g))
        if node is not None and not node.weak:
            made.append(node)
    result = made[-1] if made and rng.random() < 0.8 else (rng.choice(made) if made else g.pick())
    if rng.random() < 0.35:
        result = mk_reduce(g, x=result) or result
    prog = Program(name, g.params, result, dict(g.min_size), seed=seed)
    define_size_vars(prog)
    return prog


def define_size_vars(prog: Program) -> None:
    """A size variable used only in the body (zeros((n,))) gets a parameter that gives its value."""
    defined = {d for p in prog.params for d in p.shape}
    body = render_program(replace(prog, params=[]))
    for var in SIZE_VARS:
        if var not in defined and re.search(rf"\b{var}\b", body):
            prog.params.append(Param(f"x{len(prog.params)}", "bool", (var,)))


# -- smooth programs for grad -----------------------------------------------------------------

SMOOTH = ("sin", "cos", "tanh", "sigmoid", "softplus", "atan", "erf", "sinh", "exp", "square")
KINKED = ("relu", "abs")
GRAD_LITERALS = (0.5, 2.0, -1.5, 3.0, 0.1, 1, 2, -1)   # moderate: finite differences stay accurate


def generate_grad(seed: int, name: str = "f") -> Program:
    """A float scalar of smooth ops (sometimes one kink) and its gradient with respect to x0."""
    rng = random.Random(seed)
    g = Gen(rng, name)
    g.vars = ["n", "m"][: rng.randint(1, 2)]
    dtype = "f32" if rng.random() < 0.2 else "f64"
    x = g.param(dtype, tuple(g.vars))
    if rng.random() < 0.5:
        g.param(dtype, (g.vars[-1],))
    smooth = True
    for _ in range(rng.randint(1, 5)):
        a = g.pick()
        choice = rng.random()
        if choice < 0.4 or a.dtype != x.dtype:
            fn = rng.choice(SMOOTH + KINKED) if rng.random() < 0.2 else rng.choice(SMOOTH)
            smooth &= fn not in KINKED
            node = make_elementwise("un", fn, [a], NP_UNARY[fn])
        elif choice < 0.75:
            fn = rng.choice(("+", "-", "*"))
            other = g.pick(lambda v: broadcast(v.shape, a.shape) is not None and v.dtype == a.dtype)
            other = other if other is not None and rng.random() < 0.6 else lit(rng.choice(GRAD_LITERALS))
            node = make_elementwise("bin", fn, [a, other], NP_BINARY[fn])
        elif choice < 0.85 and a.shape:
            node = mk_softmax(g)
        else:
            node = mk_matmul(g)
        g.add(node)
    last = g.pool[-1]
    # max and min: ties share the gradient, so one value must have one bit pattern (issue 11, item 4)
    fn = rng.choices(("sum", "mean", "logsumexp", "max", "min"), (3, 2, 2, 2, 1))[0]
    smooth &= fn not in ("max", "min")
    y = Node("reduce", (last,), {"fn": fn, "axis": None, "keepdims": False}, last.dtype, (), name="y") \
        if last.shape else replace(last, name="y")
    if y.dtype not in ("f32", "f64"):
        y = Node("cast", (y,), {"to": "f64"}, "f64", (), name="y")
    return Program(name, g.params, y, {}, grad_of=y, smooth=smooth, seed=seed)


# -- inputs -----------------------------------------------------------------------------------

FLOAT_SPECIALS = (np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -1.0, 0.5, 1e6, -1e-7, 3e38)
LAYOUTS = ("C", "F", "strided", "reversed", "T")


@dataclass
class Inputs:
    """One call's arguments: the values, the size variables, and each array's memory layout."""

    args: dict
    sizes: dict
    layouts: dict


def pick_sizes(prog: Program, rng: random.Random, large: bool) -> dict:
    """Size-variable values: small (with zeros and ones) or large, at least what slices need most of the time."""
    sizes = {}
    for var in SIZE_VARS:
        size = rng.choice(LARGE_SIZES if large else SMALL_SIZES)
        if rng.random() < 0.9:
            size = max(size, prog.min_size.get(var, 0))
        sizes[var] = size
    for _ in range(20):   # keep every array under MAX_ELEMENTS: shrink the largest size variable
        biggest = max((math.prod(dim_value(d, sizes) for d in p.shape) for p in prog.params), default=0)
        if biggest <= MAX_ELEMENTS:
            break
        var = max(sizes, key=sizes.get)
        sizes[var] = max(prog.min_size.get(var, 0), sizes[var] // 4)
    return sizes


def values(dtype: str, shape: tuple, rng: np.random.Generator, special: bool):
    """Random values of a dtype, with special ones (NaN, inf, -0.0, integer limits) when asked."""
    if dtype == "bool":
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.startswith("i"):
        out = np.asarray(rng.integers(-5, 6, shape), NP[dtype])
        if special and out.size:
            info = np.iinfo(NP[dtype])
            mask = rng.random(shape) < 0.1
            out[mask] = rng.choice([info.min, info.max, 0, -1, 1], size=int(mask.sum()))
        return out
    out = np.asarray(rng.standard_normal(shape) * 1.5, NP[dtype])
    if special and out.size:
        mask = rng.random(shape) < 0.15
        out[mask] = rng.choice(FLOAT_SPECIALS, size=int(mask.sum()))
    return out


def with_layout(a: np.ndarray, layout: str) -> np.ndarray:
    """The same values in another memory layout (Fortran order, strides, negative strides)."""
    if a.ndim == 0 or layout == "C":
        return a
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided":
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if layout == "reversed":
        return np.ascontiguousarray(a[::-1])[::-1]
    return np.ascontiguousarray(a.T).T


def make_inputs(prog: Program, seed: int, large: bool = False, special: bool = False) -> Inputs:
    """One call's arguments for `prog`, from `seed`."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    sizes = pick_sizes(prog, rng, large) if prog.grad_of is None else {v: rng.randint(1, 4) for v in SIZE_VARS}
    args, layouts = {}, {}
    for p in prog.params:
        shape = tuple(dim_value(d, sizes) for d in p.shape)
        if p.index_for is not None:
            args[p.name] = index_values(p, shape, dim_value(p.index_for, sizes), nrng)
        elif prog.grad_of is not None:
            args[p.name] = nrng.uniform(-1.5, 1.5, shape).astype(NP[p.dtype])
        else:
            args[p.name] = values(p.dtype, shape, nrng, special)
        layouts[p.name] = rng.choice(LAYOUTS) if shape and rng.random() < 0.4 else "C"
        if not shape:
            args[p.name] = NP[p.dtype].type(args[p.name])
        else:
            args[p.name] = with_layout(args[p.name], layouts[p.name])
    return Inputs(args, sizes, layouts)


def index_values(p: Param, shape: tuple, length: int, rng: np.random.Generator):
    """Gather indices in [-length, length), rarely one out of range (tdsl must raise then)."""
    if length <= 0:   # an empty axis, or a dim like m - 2 below its minimum (the call must fail then)
        return np.zeros(shape, NP[p.dtype]) if rng.random() < 0.5 else np.ones(shape, NP[p.dtype])
    out = rng.integers(-length, length, shape).astype(NP[p.dtype])
    if out.size and rng.random() < 0.08:
        out.flat[rng.integers(out.size)] = rng.choice([length, -length - 1])
    return out


# -- running and comparing --------------------------------------------------------------------

TOLERANCE = {"f32": (2e-3, 1e-4), "f64": (1e-6, 1e-9)}   # (rtol, atol as a fraction of the largest |value|)


def compile_for(label: str, source: str):
    """tdsl.compile for a target label: numpy, c, opencl:cpu or opencl:gpu (the launch layout)."""
    target, _, layout = label.partition(":")
    old = os.environ.get("TDSL_OPENCL_LAYOUT")
    if layout:
        os.environ["TDSL_OPENCL_LAYOUT"] = layout   # read when the OpenCL program is built
    try:
        return tdsl.compile(source, target=target, filename="fuzz.tdsl")
    finally:
        if layout:
            os.environ.pop("TDSL_OPENCL_LAYOUT") if old is None else os.environ.__setitem__("TDSL_OPENCL_LAYOUT", old)


def call(fn, inputs: Inputs, prog: Program):
    """('ok', value) | ('tdsl', error) | ('raw', error); also ('modified', name) when an input changed."""
    saved = {k: np.array(v, copy=True) for k, v in inputs.args.items()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if prog.by_keyword:
                out = ("ok", fn(**{prog.rename.get(p.name, p.name): inputs.args[p.name] for p in prog.params}))
            else:
                out = ("ok", fn(*[inputs.args[p.name] for p in prog.params]))
    except TdslError as err:
        out = ("tdsl", err)
    except Exception as err:   # the fuzzer's point: any other exception is a finding
        out = ("raw", err)
    for name, before in saved.items():
        if not np.array_equal(before, inputs.args[name], equal_nan=before.dtype.kind == "f"):
            return ("modified", name)
    return out


def compare(got, expected, grad: bool = False, precision: str | None = None) -> str | None:
    """Why `got` is not `expected` (dtype, shape, NaN places, values beyond tolerance), or None.

    `precision` is the least precise float dtype the value was computed in (f64 = f64 @ sin(f32) gets f32's).
    """
    if isinstance(got, tuple) or isinstance(expected, tuple):
        return f"a tuple result {type(got).__name__}"
    g, e = np.asarray(got), np.asarray(expected)
    if g.dtype != e.dtype:
        return f"dtype {g.dtype} != expected {e.dtype}"
    if g.shape != e.shape:
        return f"shape {g.shape} != expected {e.shape}"
    if g.dtype.kind != "f":
        bad = g != e
    else:
        rtol, atol = TOLERANCE[precision if precision in TOLERANCE else TDSL_NAME[g.dtype]]
        if grad:
            rtol, atol = (2e-2, 1e-3) if g.dtype == np.float32 else (1e-4, 1e-6)
        finite = np.isfinite(e)
        scale = max(1.0, float(np.max(np.abs(e[finite]))) if finite.any() else 1.0)
        with np.errstate(all="ignore"):
            close = np.abs(g - e) <= atol * scale + rtol * np.abs(e)
        bad = np.where(finite, ~close, (np.isnan(g) != np.isnan(e)) | (~np.isnan(e) & (g != e)))
        # next to overflow, the order of a product or sum decides between a huge value and inf
        huge = np.finfo(g.dtype).max * 1e-4
        with np.errstate(all="ignore"):
            near_overflow = (np.abs(g) >= huge) & (np.abs(e) >= huge) & (np.sign(g) == np.sign(e))
        bad &= ~near_overflow
    if not bad.any():
        return None
    where = [tuple(int(i) for i in w) for w in zip(*np.nonzero(np.atleast_1d(bad)))][:3]
    gf, ef = np.atleast_1d(g), np.atleast_1d(e)
    shown = ", ".join(f"at {w}: got {gf[w]!r}, expected {ef[w]!r}" for w in where)
    return f"{int(bad.sum())} of {bad.size} values differ; {shown}"


@dataclass
class Finding:
    """A disagreement: what kind, on which target, for which program and inputs."""

    kind: str
    label: str
    prog: Program
    inputs: Inputs | None
    detail: str
    shrunk: bool = False
    original: Program | None = None   # the program as generated, before shrinking

    def key(self) -> tuple:
        return (self.kind, self.label.split(":")[0], ops_of(self.prog))


def names_of(prog: Program) -> tuple:
    """The hostile names a program still shows (part of what tells findings apart)."""
    text = render_program(prog)
    return tuple(sorted(v for v in prog.rename.values() if re.search(rf"(?<![\w]){re.escape(v)}(?![\w])", text)))


def ops_of(prog: Program) -> tuple:
    """The sorted names of the ops a program uses (part of what tells findings apart)."""
    seen, out = set(), []

    def walk(node: Node):
        if id(node) in seen:
            return
        seen.add(id(node))
        out.append(node.attrs.get("fn", node.op) if node.op in ("un", "bin", "reduce", "softmax", "zeros", "like")
                   else node.op)
        for kid in node.kids:
            walk(kid)
    walk(prog.grad_of or prog.result)
    return tuple(sorted(set(out) - {"param", "lit", "size"})) + (("grad",) if prog.grad_of is not None else ())


def expected_outcome(prog: Program, inputs: Inputs):
    """('ok', value) | ('raise', why) | ('unspecified', why) from the NumPy oracle."""
    try:
        return ("ok", oracle(prog, inputs.args, inputs.sizes))
    except Expected as err:
        return ("raise", str(err))
    except Unspecified as err:
        return ("unspecified", str(err))


def judge(outcome, expected, prog: Program) -> tuple[str, str] | None:
    """(kind, detail) when a target's outcome disagrees with the oracle's."""
    status, value = outcome
    if status == "modified":
        return "input-modified", f"the call changed its argument {value}"
    if status == "raw":
        return "raw-exception", f"{type(value).__name__}: {value}"
    if expected[0] == "raise":
        if status == "ok":
            return "missing-error", f"returned {short(value)}; NumPy/the contract: {expected[1]}"
        return None
    if status == "tdsl":
        return "spurious-error", f"{type(value).__name__}: {value}"
    why = compare(value, expected[1], grad=prog.grad_of is not None, precision=precision(prog.result))
    return ("wrong", f"{why}\n  got: {short(value)}\n  expected: {short(expected[1])}") if why else None


def short(value) -> str:
    """A value as a short one-line text."""
    if isinstance(value, tuple):
        return repr(value)
    text = np.array2string(np.asarray(value), threshold=20, precision=8).replace("\n", " ")
    return f"{text} ({np.asarray(value).dtype})"


def judge_against_reference(outcome, ref, prog: Program) -> tuple[str, str] | None:
    """A compiled target against the reference interpreter (used where the oracle has no opinion)."""
    if outcome[0] != "ok" or ref[0] != "ok":
        if (outcome[0] == "ok") != (ref[0] == "ok"):
            def shown(o):
                return f"{o[0]} {short(o[1]) if o[0] == 'ok' else o[1]}"
            return "differs-from-reference", f"target {shown(outcome)}; reference {shown(ref)}"
        return None
    why = compare(outcome[1], ref[1], precision=precision(prog.result))
    return ("differs-from-reference", why) if why else None


def module_source(progs: list) -> str:
    """The programs as one .tdsl module."""
    return "\n".join(render_program(p) for p in progs)


def build(label: str, progs: list, findings: list) -> dict:
    """{function name: compiled function} for `progs` as one module; a failed build is bisected."""
    if not progs:
        return {}
    try:
        module = compile_for(label, module_source(progs))
        return {p.name: function_of(module, p.shown) for p in progs}
    except Exception as err:   # a TdslError or a raw one: both are findings once bisected
        if len(progs) > 1:
            half = len(progs) // 2
            return {**build(label, progs[:half], findings), **build(label, progs[half:], findings)}
        raw = not isinstance(err, TdslError)
        kind = "raw-exception" if raw else "rejected" if label == "numpy" else "build"
        findings.append(Finding(kind, label, progs[0], None, f"{type(err).__name__}: {str(err)[:1500]}"))
        return {}


def function_of(module, name: str):
    """A function of a module: as an attribute, except names Python keeps for itself (`m["__dict__"]`)."""
    if name.startswith("__") and hasattr(type(module), "__getitem__"):
        return module[name]
    return getattr(module, name)


def check_call(prog: Program, inputs: Inputs, fns: dict, labels: list) -> list:
    """Run one call on the reference and every target: [(label, kind, detail)] of disagreements."""
    expected = expected_outcome(prog, inputs)
    if expected[0] == "unspecified":
        return []
    use_oracle = prog.grad_of is None or prog.smooth
    ref = call(fns["numpy"], inputs, prog) if "numpy" in fns else None
    problems = []
    for label in ["numpy"] + labels:
        if label not in fns:
            continue
        outcome = ref if label == "numpy" else call(fns[label], inputs, prog)
        verdict = judge(outcome, expected, prog) if use_oracle else None
        if verdict is None and label != "numpy" and ref is not None and expected[0] == "ok":
            verdict = judge_against_reference(outcome, ref, prog)
        if verdict is not None:
            problems.append((label, *verdict))
    return problems


@dataclass
class Config:
    """What a run covers."""

    labels: list          # compiled targets: c, opencl:cpu, opencl:gpu
    large: float = 0.1    # fraction of programs called with sizes past the threading/blocking thresholds
    grads: float = 0.15   # fraction of programs that are a grad
    calls: int = 2        # calls per program (the first without special values)
    hostile: float = 0.3  # fraction of programs with names taken from C, OpenCL, Python and generated locals
    batch: int = 40


def program(seed: int, index: int, cfg: Config, module_names: set | None = None) -> Program:
    """Program `index` of a run: depends only on (seed, index) (and the names others in its batch took)."""
    pseed = seed * 1_000_003 + index
    rng = random.Random(pseed ^ 0x5EED)
    grad = rng.random() < cfg.grads
    prog = (generate_grad if grad else generate)(pseed, f"g{index}")   # not f{i}: f32 is a builtin
    if rng.random() < cfg.hostile:
        hostile_names(prog, rng, set() if module_names is None else module_names)
    return prog


def inputs_for(prog: Program, cfg: Config) -> list:
    """The inputs of each call of a program (the first plain, the others with special values)."""
    rng = random.Random(prog.seed ^ 0xCA11)
    large = rng.random() < cfg.large
    return [make_inputs(prog, prog.seed * 7 + j, large=large and j == 0, special=j > 0) for j in range(cfg.calls)]


def run_batch(progs: list, cfg: Config, stats: dict) -> list:
    """Build `progs` once per target and check every call: the findings, unshrunk."""
    findings = []
    fns = {}
    for label in ["numpy"] + cfg.labels:
        start = time.perf_counter()
        built = build(label, progs if label == "numpy" else [p for p in progs if p.name in fns], findings)
        stats["build_s"] = stats.get("build_s", 0) + time.perf_counter() - start
        for name, fn in built.items():
            fns.setdefault(name, {})[label] = fn
    start = time.perf_counter()
    for prog in progs:
        for inputs in inputs_for(prog, cfg):
            stats["calls"] = stats.get("calls", 0) + 1
            for label, kind, detail in check_call(prog, inputs, fns.get(prog.name, {}), cfg.labels):
                findings.append(Finding(kind, label, prog, inputs, detail))
    stats["call_s"] = stats.get("call_s", 0) + time.perf_counter() - start
    return findings


# -- shrinking --------------------------------------------------------------------------------

def reproduces(finding: Finding, prog: Program, inputs: Inputs | None, label: str | None = None) -> str | None:
    """The detail when `prog` on `inputs` still fails the way `finding` did (same kind, same target), else None."""
    label = label or finding.label
    found, fns = [], {}
    for each in dict.fromkeys(["numpy", label]):
        built = build(each, [prog], found)
        if prog.name in built:
            fns[each] = built[prog.name]
    if finding.inputs is None:
        if label != "numpy" and "numpy" not in fns:
            return None   # the reference refuses it too: a different failure
        return next((f.detail for f in found if f.kind == finding.kind and f.label == label), None)
    if found or inputs is None:
        return None
    problems = check_call(prog, inputs, fns, [label] if label != "numpy" else [])
    return next((detail for lab, kind, detail in problems if lab == label and kind == finding.kind), None)


def nodes_of(root: Node) -> list:
    """Every node under `root`, once, parents first."""
    seen, out = set(), []

    def walk(node: Node):
        if id(node) not in seen:
            seen.add(id(node))
            out.append(node)
            for kid in node.kids:
                walk(kid)
    walk(root)
    return out


def substitute(root: Node, old: Node, new: Node) -> Node:
    """`root` with the node `old` replaced by `new` (ancestors rebuilt, sharing kept)."""
    memo = {}

    def walk(node: Node) -> Node:
        if node is old:
            return new
        if id(node) not in memo:
            kids = tuple(walk(k) for k in node.kids)
            memo[id(node)] = node if all(a is b for a, b in zip(kids, node.kids)) else replace(node, kids=kids)
        return memo[id(node)]
    return walk(root)


def smaller_programs(prog: Program):
    """Candidate simplifications: a subexpression as the whole result, a node replaced by an operand."""
    root = prog.grad_of or prog.result
    nodes = nodes_of(root)
    if prog.grad_of is None:
        for node in nodes[1:]:
            if not node.weak:
                yield prune(replace(prog, result=replace(node, name=None)))
    for node in nodes:
        for kid in node.kids:
            same = kid.dtype == node.dtype and kid.shape == node.shape
            if same or (prog.grad_of is None and not kid.weak and node is not root):
                new_root = substitute(root, node, kid)
                if prog.grad_of is not None:
                    new_root = replace(new_root, name="y")
                    yield prune(replace(prog, result=new_root, grad_of=new_root))
                else:
                    yield prune(replace(prog, result=new_root))


def prune(prog: Program) -> Program:
    """Drop the parameters the body no longer uses (keeping one that gives each size variable used)."""
    text = render_program(prog)
    body = text.split("\n", 1)[1]
    shown = prog.rename.get

    def uses(name: str) -> bool:
        return re.search(rf"(?<![\w]){re.escape(shown(name, name))}(?![\w])", body) is not None
    used = [p for p in prog.params if uses(p.name) or (p is prog.params[0] and prog.grad_of is not None)]
    for var in SIZE_VARS:
        if uses(var) and not any(var in p.shape for p in used):
            used += [p for p in prog.params if var in p.shape][:1]
    return replace(prog, params=[p for p in prog.params if p in used])


def plainer_names(prog: Program):
    """The program with one hostile name given back its plain one."""
    for name in prog.rename:
        yield replace(prog, rename={k: v for k, v in prog.rename.items() if k != name})


def smaller_inputs(prog: Program, inputs: Inputs):
    """The same inputs with one size variable smaller (arrays cut along its axes)."""
    for var, size in inputs.sizes.items():
        for new in sorted({0, 1, 2, size // 2} - {size}):
            if new >= size:
                continue
            sizes = dict(inputs.sizes, **{var: new})
            args = {}
            for p in prog.params:
                value = inputs.args[p.name]
                for axis, d in enumerate(p.shape):
                    if d == var:
                        value = np.take(value, np.arange(new), axis=axis)
                args[p.name] = value
            yield Inputs(args, sizes, inputs.layouts)


def shrink(finding: Finding, budget: int = 60) -> Finding:
    """A smaller program and inputs that fail the same way (greedy, at most `budget` checks)."""
    prog, inputs = finding.prog, finding.inputs
    checks, improved, detail = 0, True, finding.detail
    while improved and checks < budget:
        improved = False
        options = [prune(prog)] + list(smaller_programs(prog)) + list(plainer_names(prog))
        if inputs is not None:
            options += [(prog, i) for i in smaller_inputs(prog, inputs)]
        current = render_program(prog)
        for option in options:
            cand, cand_inputs = option if isinstance(option, tuple) else (option, inputs)
            if not isinstance(option, tuple) and render_program(cand) == current:
                continue
            if cand_inputs is not None:
                cand_inputs = Inputs({p.name: cand_inputs.args[p.name] for p in cand.params},
                                     cand_inputs.sizes, cand_inputs.layouts)
            checks += 1
            if checks > budget:
                break
            found = reproduces(finding, cand, cand_inputs)
            if found:
                prog, inputs, improved, detail = cand, cand_inputs, True, found
                break
    return replace(finding, prog=prog, inputs=inputs, detail=detail, shrunk=True, original=finding.prog)


# -- reporting --------------------------------------------------------------------------------

LAYOUT_CODE = {"F": "{0} = np.asfortranarray({0})", "strided": "{0} = np.repeat({0}, 2, axis=-1)[..., ::2]",
               "reversed": "{0} = np.ascontiguousarray({0}[::-1])[::-1]", "T": "{0} = np.ascontiguousarray({0}.T).T"}


def reproduction(finding: Finding) -> str:
    """Python that reproduces the finding in one paste."""
    prog, label = finding.prog, finding.label
    target, _, layout = label.partition(":")
    lines = ["import os", "import numpy as np", "import tdsl", "nan, inf = np.nan, np.inf"]
    if layout:
        lines.append(f"os.environ['TDSL_OPENCL_LAYOUT'] = {layout!r}")
    lines += [f"src = '''\n{render_program(prog)}'''", f"m = tdsl.compile(src, target={target!r})"]
    if finding.inputs is None:
        return "\n".join(lines)
    for p in prog.params:
        value = np.asarray(finding.inputs.args[p.name])
        if not p.shape:
            lines.append(f"{p.name} = np.{value.dtype}({value.item()!r})")
            continue
        lines.append(f"{p.name} = np.array({value.tolist()!r}, dtype=np.{value.dtype}).reshape({value.shape})")
        layout_of = finding.inputs.layouts.get(p.name, "C")
        if layout_of != "C":
            lines.append(LAYOUT_CODE[layout_of].format(p.name))
    if prog.by_keyword:
        keywords = ", ".join(f"{prog.rename.get(p.name, p.name)!r}: {p.name}" for p in prog.params)
        lines.append(f"print({_accessor(prog.shown)}(**{{{keywords}}}))")
    else:
        lines.append(f"print({_accessor(prog.shown)}({', '.join(p.name for p in prog.params)}))")
    return "\n".join(lines)


def _accessor(name: str) -> str:
    return f"m[{name!r}]" if name.startswith("__") else f"getattr(m, {name!r})"


def describe(finding: Finding, labels: list, number: int, origin: str) -> str:
    """A finding as a markdown entry."""
    names = names_of(finding.prog)
    head = (f"### {number}. {finding.kind} on {', '.join(labels)}: {', '.join(finding.key()[2]) or 'no op'}"
            + (f"; names {', '.join(names)}" if names else ""))
    original = ""
    if finding.original is not None and render_program(finding.original) != render_program(finding.prog):
        original = f"\nAs generated (before shrinking):\n\n```\n{render_program(finding.original)[:1500]}```\n"
    return "\n".join([head, "", f"{origin}; program seed {finding.prog.seed}.", "", "```",
                      finding.detail.strip()[:2000], "```", "", "```python", reproduction(finding), "```", original])


class Report:
    """Distinct findings of a run, each shrunk once, written to a markdown file as they come."""

    def __init__(self, path: str | None, origin: str, max_shrink: int = 12, shrink_budget: int = 60):
        self.path, self.origin = path, origin
        self.max_shrink, self.shrink_budget = max_shrink, shrink_budget
        self.distinct, self.raw_keys, self.counts, self.shrunk = {}, {}, {}, 0

    def add(self, findings: list) -> None:
        """Group a batch's findings (one program failing on several targets is one finding) and record them."""
        groups = {}
        for f in findings:
            groups.setdefault((f.kind, f.prog.name, id(f.inputs)), []).append(f)
        for group in groups.values():
            self.add_group(group)

    def add_group(self, group: list) -> None:
        first = group[0]
        labels = [f.label for f in group]
        targets = tuple(sorted({lab.split(":")[0] for lab in labels}))
        raw_key = (first.kind, targets, ops_of(first.prog), names_of(first.prog))
        if raw_key in self.raw_keys:
            self.counts[self.raw_keys[raw_key]] += 1
            return
        # once shrinking stops, keys are coarse: any program with hostile names counts as one
        small, key = first, (first.kind, targets, ("(names)",) if names_of(first.prog) else ops_of(first.prog), ())
        if self.shrunk < self.max_shrink:
            self.shrunk += 1
            small = shrink(first, self.shrink_budget)
            labels = [lab for lab in labels if lab == first.label or reproduces(small, small.prog, small.inputs, lab)]
            targets = tuple(sorted({lab.split(":")[0] for lab in labels}))
            names = names_of(small.prog)
            # a failure that needs a hostile name is about the name, whatever the ops around it
            key = (small.kind, targets, () if names else ops_of(small.prog), names)
        self.raw_keys[raw_key] = key
        if key in self.distinct:
            self.counts[key] += 1
            return
        self.distinct[key] = (small, labels)
        self.counts[key] = 1
        text = describe(small, labels, len(self.distinct), self.origin)
        print(text, flush=True)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(text + "\n")


def run(count: int, seed: int, cfg: Config, report: Report, log=print) -> dict:
    """Generate and check `count` programs in batches; returns the run's statistics."""
    stats, start = {"programs": count}, time.perf_counter()
    for first in range(0, count, cfg.batch):
        names = set()
        progs = [program(seed, i, cfg, names) for i in range(first, min(count, first + cfg.batch))]
        log(f"batch {first}..{first + len(progs) - 1} (seed {seed})", flush=True)
        report.add(run_batch(progs, cfg, stats))
    stats["seconds"] = time.perf_counter() - start
    stats["distinct_findings"] = len(report.distinct)
    stats["findings"] = sum(report.counts.values())
    return stats


# -- the parser fuzzer ------------------------------------------------------------------------

TOKEN = re.compile(r"\s+|#[^\n]*|[A-Za-z_]\w*|\d[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+|\*\*|//|==|!=|<=|>=|->|\.\.\.|.",
                   re.S)
KEYWORDS = ("fn", "const", "return", "true", "false", "and", "or", "not", "for", "in", "if", "else", "while",
            "loop", "None", "range", "grad", "f32", "i64")
ODD_TEXT = ("(", ")", "[", "]", "{", "}", ",", ":", ";", "\n", "\r", "\r\n", "\x00", "é", "\u2028", "∑", "$", "`",
            '"', '"x"', "'", "\\", "@", ".T", "...", "-", "**", "=", "\t", "\ufeff", "1e999999", "0x1F", "1__0",
            "\udcff", "\x0b", "# comment\n", "x:", "->", "[1, [2]]", "1.", ".5e", "9" * 30)
DEPTHS = (50, 300, 1000, 3000, 10000, 40000)


def parser_corpus() -> list:
    """The sources mutated: the examples and a few generated programs."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folder = os.path.join(here, "examples")
    texts = [open(os.path.join(folder, f), encoding="utf-8").read()
             for f in sorted(os.listdir(folder)) if f.endswith(".tdsl")]
    return texts + [render_program(generate(s, "f")) for s in range(20)]


def nest(token: str, depth: int, rng: random.Random) -> str:
    """`token` buried `depth` levels deep in one construct."""
    form = rng.choice(["paren", "neg", "not", "plus", "pow", "call", "T", "slice", "list"])
    return {"paren": lambda: "(" * depth + token + ")" * depth, "neg": lambda: "-" * depth + token,
            "not": lambda: "not " * depth + token, "plus": lambda: " + ".join([token] * depth),
            "pow": lambda: " ** ".join([token] * depth), "call": lambda: "exp(" * depth + token + ")" * depth,
            "T": lambda: token + ".T" * depth, "slice": lambda: token + "[0:]" * depth,
            "list": lambda: "[" * depth + "1.0" + "]" * depth}[form]()


def mutate(text: str, rng: random.Random) -> tuple[str, str]:
    """A mutated source and a word on what was done."""
    tokens = TOKEN.findall(text)
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        i = rng.randrange(len(tokens)) if tokens else 0
        op = rng.choice(["delete", "duplicate", "swap", "insert", "keyword", "number", "nest", "nest", "unbalanced",
                         "cut"])
        if not tokens:
            tokens, op = [""], "insert"
        if op == "delete":
            del tokens[i]
        elif op == "duplicate":
            tokens.insert(i, tokens[i])
        elif op == "swap":
            j = rng.randrange(len(tokens))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif op == "insert":
            tokens.insert(i, rng.choice(ODD_TEXT))
        elif op == "keyword":
            tokens.insert(i, f" {rng.choice(KEYWORDS)} ")
        elif op == "number":
            digits = rng.choice((20, 400, 4400, 10000))
            tokens.insert(i, rng.choice(["9" * digits, "1" + "0" * digits + ".5", f"1e{digits}", "-" + "9" * digits]))
        elif op == "nest":
            names = [j for j, t in enumerate(tokens) if re.fullmatch(r"[A-Za-z_]\w*|\d+(\.\d*)?", t)
                     and t not in KEYWORDS]
            j = rng.choice(names) if names else i
            depth = rng.choice(DEPTHS)
            tokens[j] = nest(tokens[j] if names else "x", depth, rng)
            op = f"nest x{depth}"
        elif op == "unbalanced":
            tokens.insert(i, rng.choice("([{)]}") * rng.choice((1, 2, 50, 5000)))
        else:
            tokens = tokens[:i]
        done.append(op)
    return "".join(tokens), ", ".join(done)


def parser_case(seed: int, index: int, corpus: list | None = None) -> tuple[str, str]:
    """Mutated source number `index` of a parser-fuzz run (depends only on seed and index)."""
    rng = random.Random(seed * 1_000_003 + index)
    corpus = corpus or parser_corpus()
    return mutate(rng.choice(corpus), rng)


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


def check_parse(text: str, limit: float = 10.0) -> tuple[str | None, float, str]:
    """(problem or None, seconds, detail): only a located TdslError, or success, is acceptable."""
    from tdsl.pipeline import check_source
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    start = time.perf_counter()
    problem, detail = None, "ok"
    try:
        check_source(text, "mutant.tdsl")   # the `tdslc check` path: parse + frontend.check
        tdsl.compile(text, target="numpy", filename="mutant.tdsl")
    except Timeout:
        problem, detail = "hang", f"no answer within {limit} s"
    except TdslError as err:
        loc = err.loc
        detail = f"{type(err).__name__}: {err.message[:200]}"
        located = loc is not None and all(isinstance(v, int) and v >= 1 for v in (loc.line, loc.col))
        if not located:
            problem = "unlocated-error"
    except RecursionError as err:
        problem, detail = "recursion-error", f"RecursionError: {str(err)[:200]}"
    except Exception as err:   # the point of the parser fuzzer: any other exception is a finding
        problem, detail = "raw-exception", f"{type(err).__name__}: {str(err)[:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    seconds = time.perf_counter() - start
    if problem is None and seconds > 1.0:
        problem = "slow"
    return problem, seconds, detail


def parser_child(seed: int, start: int, count: int) -> None:
    """Run parser cases start..count-1, one line each on stdout (the parent survives our crashes)."""
    corpus = parser_corpus()
    for index in range(start, count):
        text, how = parser_case(seed, index, corpus)
        problem, seconds, detail = check_parse(text)
        print(repr((index, problem, round(seconds, 4), how, detail)), flush=True)


def parser_fuzz(count: int, seed: int, path: str | None, log=print) -> dict:
    """Run `count` mutated sources in child processes; record problems, the slowest case, crashes."""
    import ast
    results, start, index = [], time.perf_counter(), 0
    while index < count:
        child = subprocess.run([sys.executable, "-m", "tests.fuzz", "--parser-child", str(index), "--seed", str(seed),
                                "--parser", str(count)], capture_output=True, text=True, cwd=_repo_root())
        lines = [ast.literal_eval(line) for line in child.stdout.splitlines() if line.startswith("(")]
        results += lines
        index = lines[-1][0] + 1 if lines else index
        if child.returncode != 0 and index < count:
            results.append((index, "crash", 0.0, parser_case(seed, index)[1], child.stderr[-800:]))
            index += 1
    return parser_summary(results, seed, path, time.perf_counter() - start, log)


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parser_summary(results: list, seed: int, path: str | None, seconds: float, log=print) -> dict:
    """Group parser problems by kind and first line of detail; write each group once."""
    groups = {}
    for index, problem, secs, how, detail in results:
        if problem:
            groups.setdefault((problem, re.sub(r"\d+", "N", detail.split("\n")[0])[:80]), []).append((index, secs, how))
    slowest = max(results, key=lambda r: r[2]) if results else None
    for (problem, detail), cases in groups.items():
        index, secs, how = cases[0]
        text, _ = parser_case(seed, index)
        shown = repr(text) if len(text) < 600 else f"{len(text)} characters: {text[:200]!r} ... {text[-100:]!r}"
        entry = (f"### parser: {problem} ({len(cases)} cases)\n\n{detail}\n\nfirst: case {index} of seed {seed} "
                 f"({how}), {secs:.2f} s. Source: {shown}\n\n```python\nimport tests.fuzz as F, tdsl\n"
                 f"src, how = F.parser_case({seed}, {index})\ntdsl.compile(src, target='numpy')\n```\n")
        log(entry)
        if path:
            with open(path, "a", encoding="utf-8") as out:
                out.write(entry + "\n")
    return {"cases": len(results), "problems": sum(len(c) for c in groups.values()), "groups": len(groups),
            "seconds": seconds, "slowest": slowest[:4] if slowest else None,
            "kinds": sorted({k[0] for k in groups})}


# -- the command line -------------------------------------------------------------------------

def libasan() -> str | None:
    """The C compiler's AddressSanitizer runtime, for LD_PRELOAD (as tests/test_c_backend.py does)."""
    cc = os.environ.get("TDSL_CC") or os.environ.get("CC") or "cc"
    try:
        found = subprocess.run(cc.split() + ["-print-file-name=libasan.so"], capture_output=True, text=True,
                               timeout=60).stdout.strip()
    except OSError:
        return None
    return found if found and os.path.isabs(found) and os.path.exists(found) else None


def sanitized_run(argv: list, log=print) -> int:
    """Run the fuzzer again on the c target, built with ASan and UBSan, in a process that preloads ASan."""
    asan = libasan()
    if asan is None:
        log("no AddressSanitizer runtime: --sanitize skipped")
        return 0
    env = dict(os.environ, TDSL_SANITIZE="1", LD_PRELOAD=asan, ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    args = [a for a in argv if a != "--sanitize"]
    child = subprocess.run([sys.executable, "-m", "tests.fuzz", *args, "--targets", "numpy,c"], env=env,
                           cwd=_repo_root(), capture_output=True, text=True)
    log(child.stdout[-20000:])
    if child.returncode not in (0, 1):   # 1: findings, already printed; anything else: the sanitizer stopped it
        log(f"sanitized run died (status {child.returncode}):\n{child.stderr[-6000:]}")
    return child.returncode


def labels_of(targets: list, layouts: list) -> list:
    """Target labels: c, and opencl once per launch layout."""
    out = []
    for target in targets:
        if target == "opencl":
            out += [f"opencl:{layout}" for layout in layouts]
        elif target != "numpy":
            out.append(target)
    return out


def main(argv: list | None = None) -> int:
    """The command line: see the module docstring."""
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100, help="random programs to run")
    ap.add_argument("--seed", type=int, default=None, help="the run's seed (printed when not given)")
    ap.add_argument("--targets", default="numpy,c,opencl")
    ap.add_argument("--layouts", default="cpu,gpu", help="OpenCL launch layouts (TDSL_OPENCL_LAYOUT)")
    ap.add_argument("--sanitize", action="store_true", help="also run the c target under ASan and UBSan")
    ap.add_argument("--parser", type=int, default=0, metavar="N", help="also run N mutated sources")
    ap.add_argument("--batch", type=int, default=40, help="functions per compiled module")
    ap.add_argument("--large", type=float, default=0.1, help="fraction of programs called with large sizes")
    ap.add_argument("--grads", type=float, default=0.15, help="fraction of programs that are a grad")
    ap.add_argument("--max-shrink", type=int, default=12, help="findings to shrink (the rest are counted)")
    ap.add_argument("--findings", default=None, help="append findings (markdown) to this file")
    ap.add_argument("--parser-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    if args.parser_child is not None:
        parser_child(seed, args.parser_child, args.parser)
        return 0
    faulthandler.enable()
    own_cache = None
    if "TDSL_CACHE_DIR" not in os.environ:   # a run's modules do not pile up in the user's cache
        own_cache = tempfile.TemporaryDirectory(prefix="tdsl-fuzz-")
        os.environ["TDSL_CACHE_DIR"] = own_cache.name
    status = 0
    print(f"seed {seed}", flush=True)
    if args.count:
        cfg = Config(labels_of(args.targets.split(","), args.layouts.split(",")), args.large, args.grads,
                     batch=args.batch)
        report = Report(args.findings, f"`python -m tests.fuzz --seed {seed} --count {args.count}`", args.max_shrink)
        stats = run(args.count, seed, cfg, report)
        per = stats["seconds"] / max(1, args.count)
        print(f"programs: {stats} ({per:.2f} s per program)", flush=True)
        status |= 1 if report.distinct else 0
    if args.parser:
        stats = parser_fuzz(args.parser, seed, args.findings)
        print(f"parser: {stats}", flush=True)
        status |= 1 if stats["problems"] else 0
    if args.sanitize and not os.environ.get("TDSL_SANITIZE") and args.count:
        rc = sanitized_run(["--count", str(args.count), "--seed", str(seed), "--batch", str(args.batch)]
                           + (["--findings", args.findings] if args.findings else []))
        status |= 0 if rc == 0 else 1
    return status


if __name__ == "__main__":
    sys.exit(main())
