"""The op table: every primitive operation, declared once.

Each `Op` holds what every stage needs to know about one operation: its kind and
dtype rule (read by the type checker in `infer.py`), its NumPy implementation
(the reference interpreter), its C expression (the C and OpenCL renderers, with an
OpenCL override where the dialects differ) and its gradient rule (autodiff).

The builtins a user calls (`softmax`, `var`, `clip`, `zeros`, ...) that are
compositions of these primitives live in `builtins.py`.

C expressions are `str.format` templates: `{0}`, `{1}`, `{2}` are the operands,
`{T}` the tdsl dtype name (f32, i64, ...), `{C}` its C type and `{f}` the C math
suffix (`f` for f32, empty for f64), all of the operand dtype; `{R}` and `{RT}` are
the result's C type and dtype (they differ for casts). A dict maps the operand's
dtype kind ('float', 'int', 'bool') to the template for that kind. Operands of an elementwise op always share
one dtype: the type checker inserts explicit casts first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

CExpr = Union[str, dict, None]


class RuntimeCheckFailed(Exception):
    """Raised by an implementation when the data breaks a rule (an empty max, an index out of range)."""


@dataclass(frozen=True)
class Op:
    name: str
    kind: str          # elementwise | reduce | argreduce | layout | source | matmul | gather | concat | cast
    arity: int | None  # None: any number of inputs
    rule: str          # the dtype rule, see infer.py
    impl: Callable
    c: CExpr = None
    opencl: CExpr = None
    grad: Callable | None = None  # GradContext -> one adjoint per input (None: none); see autodiff.py
    doc: str = ""
    # A math-library call whose vector forms (libmvec in C SIMD loops, floatN builtins in
    # OpenCL) round differently from the scalar call: the renderers keep one form per value.
    vector_math: bool = False

    def c_template(self, dtype_kind: str, dialect: str = "c") -> str | None:
        """The expression template for operands of the given kind, in the given dialect."""
        expr = self.opencl if dialect == "opencl" and self.opencl is not None else self.c
        if isinstance(expr, dict):
            return expr.get(dtype_kind, expr.get("any"))
        return expr


def _quiet(fn: Callable) -> Callable:
    """NumPy's floating-point warnings are not part of tdsl's semantics."""
    def run(*args, **kwargs):
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)
    run.__name__ = getattr(fn, "__name__", "impl")
    return run


def _int_pow(a, b):
    a, b = np.asarray(a), np.asarray(b)
    # as NumPy, which checks each element it computes: an empty (broadcast) result never fails
    if np.issubdtype(a.dtype, np.integer) and np.any(b < 0) and np.broadcast(a, b).size:
        raise RuntimeCheckFailed("an integer raised to a negative integer power")
    return np.power(a, b)


def _int_reciprocal(x):
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.integer):
        return np.where(x == 1, 1, np.where(x == -1, -1, 0)).astype(x.dtype)
    return np.reciprocal(x)


def _sigmoid(x):
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _softplus(x):
    x = np.asarray(x)
    return np.logaddexp(x.dtype.type(0), x)


_erf64 = np.frompyfunc(math.erf, 1, 1)


def _erf(x):
    x = np.asarray(x)
    # frompyfunc gives a bare Python float for a rank-0 input: make it an array again
    return np.asarray(_erf64(x.astype(np.float64)), dtype=np.float64).astype(x.dtype)


def _relu(x):
    x = np.asarray(x)
    return np.where(np.isnan(x) if x.dtype.kind == "f" else False, x, np.maximum(x, 0)).astype(x.dtype)


def _round(x):
    x = np.asarray(x)
    return x.copy() if x.dtype.kind in "iu" else np.round(x)


def _unary(name, rule, impl, c, opencl=None, doc="", grad=None, vector_math=False):
    return Op(name, "elementwise", 1, rule, _quiet(impl), c, opencl, grad, doc, vector_math)


def _binary(name, rule, impl, c, opencl=None, doc="", grad=None, vector_math=False):
    return Op(name, "elementwise", 2, rule, _quiet(impl), c, opencl, grad, doc, vector_math)


_ARITH = {"float": "({0} {op} {1})", "int": "tdsl_{name}_{T}({0}, {1})"}


def _wrapping(name: str, op: str) -> dict:
    """Integers wrap on overflow: C computes them in unsigned arithmetic (prelude helpers)."""
    return {kind: tpl.replace("{op}", op).replace("{name}", name) for kind, tpl in _ARITH.items()}


def _math(fn: str) -> dict:
    return {"float": fn + "{f}({0})"}


ELEMENTWISE = [
    # arithmetic: operands share the result dtype; bool is refused
    _binary("add", "arith", np.add, _wrapping("add", "+"),
            grad=lambda d: [d.g, d.g]),
    _binary("sub", "arith", np.subtract, _wrapping("sub", "-"),
            grad=lambda d: [d.g, -d.g]),
    _binary("mul", "arith", np.multiply, _wrapping("mul", "*"),
            grad=lambda d: [d.g * d.y, d.g * d.x]),
    _binary("div", "float", np.true_divide, "({0} / {1})",
            grad=lambda d: [d.g / d.y, -d.g * d.out / d.y]),
    _binary("floordiv", "arith", np.floor_divide, "tdsl_floordiv_{T}({0}, {1})",
            grad=lambda d: [None, None]),
    _binary("mod", "arith", np.mod, "tdsl_mod_{T}({0}, {1})",
            grad=lambda d: [d.g, -d.g * (d.x // d.y)]),
    _binary("pow", "arith", _int_pow, {"float": "pow{f}({0}, {1})", "int": "tdsl_pow_{T}({0}, {1})"},
            grad=lambda d: [d.where(d.y.eq(0), 0, d.g * d.y * d.x ** (d.y - 1)),
                            d.g * d.out * d.log(d.where(d.x.eq(0), 1, d.x))],
            vector_math=True),
    _binary("maximum", "arith", np.maximum, "tdsl_maximum_{T}({0}, {1})",
            grad=lambda d: [d.split(d.x > d.y, d.x.eq(d.y)), d.split(d.y > d.x, d.x.eq(d.y))]),
    _binary("minimum", "arith", np.minimum, "tdsl_minimum_{T}({0}, {1})",
            grad=lambda d: [d.split(d.x < d.y, d.x.eq(d.y)), d.split(d.y < d.x, d.x.eq(d.y))]),
    _binary("atan2", "float", np.arctan2, {"float": "atan2{f}({0}, {1})"},
            grad=lambda d: [d.g * d.y / (d.x * d.x + d.y * d.y), -d.g * d.x / (d.x * d.x + d.y * d.y)],
            vector_math=True),
    # comparisons and logic give bool
    _binary("eq", "compare", np.equal, "({0} == {1})"),
    _binary("ne", "compare", np.not_equal, "({0} != {1})"),
    _binary("lt", "compare", np.less, "({0} < {1})"),
    _binary("le", "compare", np.less_equal, "({0} <= {1})"),
    _binary("gt", "compare", np.greater, "({0} > {1})"),
    _binary("ge", "compare", np.greater_equal, "({0} >= {1})"),
    _binary("and", "logical", np.logical_and, "({0} && {1})"),
    _binary("or", "logical", np.logical_or, "({0} || {1})"),
    _unary("not", "logical", np.logical_not, "(!{0})"),
    # unary arithmetic keeps the dtype
    _unary("neg", "arith", np.negative, {"float": "(-{0})", "int": "tdsl_neg_{T}({0})"},
           grad=lambda d: [-d.g]),
    _unary("abs", "arith", np.abs, {"float": "fabs{f}({0})", "int": "tdsl_abs_{T}({0})"},
           grad=lambda d: [d.g * d.sign(d.x)]),
    _unary("sign", "arith", np.sign, "tdsl_sign_{T}({0})",
           grad=lambda d: [None]),
    _unary("square", "arith", np.square, {"float": "({0} * {0})", "int": "tdsl_mul_{T}({0}, {0})"},
           grad=lambda d: [d.g * 2 * d.x]),
    _unary("reciprocal", "arith", _int_reciprocal, {"float": "((({C})1) / {0})", "int": "tdsl_reciprocal_{T}({0})"},
           grad=lambda d: [-d.g * d.out * d.out]),
    _unary("relu", "arith", _relu, "tdsl_relu_{T}({0})",
           grad=lambda d: [d.where(d.x > 0, d.g, 0)]),
    _unary("floor", "arith", np.floor, {"float": "floor{f}({0})", "int": "{0}"},
           grad=lambda d: [None]),
    _unary("ceil", "arith", np.ceil, {"float": "ceil{f}({0})", "int": "{0}"},
           grad=lambda d: [None]),
    _unary("round", "arith", _round, {"float": "rint{f}({0})", "int": "{0}"},
           grad=lambda d: [None]),
    # transcendental: integer operands are cast to f64 first
    _unary("sqrt", "float", np.sqrt, _math("sqrt"),
           grad=lambda d: [d.g * 0.5 / d.out]),
    _unary("rsqrt", "float", lambda x: 1 / np.sqrt(x), {"float": "((({C})1) / sqrt{f}({0}))"},
           opencl={"float": "rsqrt({0})"},
           grad=lambda d: [d.g * -0.5 * d.out / d.x]),
    _unary("exp", "float", np.exp, _math("exp"),
           grad=lambda d: [d.g * d.out], vector_math=True),
    _unary("exp2", "float", np.exp2, _math("exp2"),
           grad=lambda d: [d.g * d.out * math.log(2)], vector_math=True),
    _unary("expm1", "float", np.expm1, _math("expm1"),
           grad=lambda d: [d.g * (d.out + 1)], vector_math=True),
    _unary("log", "float", np.log, _math("log"),
           grad=lambda d: [d.g / d.x], vector_math=True),
    _unary("log2", "float", np.log2, _math("log2"),
           grad=lambda d: [d.g / (d.x * math.log(2))], vector_math=True),
    _unary("log10", "float", np.log10, _math("log10"),
           grad=lambda d: [d.g / (d.x * math.log(10))], vector_math=True),
    _unary("log1p", "float", np.log1p, _math("log1p"),
           grad=lambda d: [d.g / (d.x + 1)], vector_math=True),
    _unary("sin", "float", np.sin, _math("sin"), opencl={"float": "tdsl_sin_{T}({0})"},
           grad=lambda d: [d.g * d.cos(d.x)], vector_math=True),
    _unary("cos", "float", np.cos, _math("cos"), opencl={"float": "tdsl_cos_{T}({0})"},
           grad=lambda d: [-d.g * d.sin(d.x)], vector_math=True),
    _unary("tan", "float", np.tan, _math("tan"),
           grad=lambda d: [d.g * (1 + d.out * d.out)], vector_math=True),
    _unary("asin", "float", np.arcsin, _math("asin"),
           grad=lambda d: [d.g * d.rsqrt(1 - d.x * d.x)], vector_math=True),
    _unary("acos", "float", np.arccos, _math("acos"),
           grad=lambda d: [-d.g * d.rsqrt(1 - d.x * d.x)], vector_math=True),
    _unary("atan", "float", np.arctan, _math("atan"),
           grad=lambda d: [d.g / (1 + d.x * d.x)], vector_math=True),
    _unary("sinh", "float", np.sinh, _math("sinh"),
           grad=lambda d: [d.g * d.cosh(d.x)], vector_math=True),
    _unary("cosh", "float", np.cosh, _math("cosh"),
           grad=lambda d: [d.g * d.sinh(d.x)], vector_math=True),
    _unary("tanh", "float", np.tanh, _math("tanh"),
           grad=lambda d: [d.g * (1 - d.out * d.out)], vector_math=True),
    _unary("sigmoid", "float", _sigmoid, "tdsl_sigmoid_{T}({0})",
           grad=lambda d: [d.g * d.out * (1 - d.out)], vector_math=True),
    _unary("softplus", "float", _softplus, "tdsl_softplus_{T}({0})",
           grad=lambda d: [d.g * d.sigmoid(d.x)], vector_math=True),
    _unary("erf", "float", _erf, _math("erf"),
           grad=lambda d: [d.g * (2 / math.sqrt(math.pi)) * d.exp(-d.x * d.x)], vector_math=True),
    # predicates give bool
    _unary("isnan", "predicate", np.isnan, {"float": "isnan({0})", "int": "0", "bool": "0"}),
    _unary("isinf", "predicate", np.isinf, {"float": "isinf({0})", "int": "0", "bool": "0"}),
    _unary("isfinite", "predicate", np.isfinite, {"float": "isfinite({0})", "int": "1", "bool": "1"}),
    Op("where", "elementwise", 3, "select", _quiet(np.where), "({0} ? {1} : {2})",
       grad=lambda d: [None, d.where(d.x, d.g, 0), d.where(d.x, 0, d.g)]),
]


def _reduce(np_fn: Callable, empty_error: bool) -> Callable:
    def run(x, axes, keepdims, dtype, empty_ok=False):
        x = np.asarray(x)
        axis = tuple(axes)
        # as NumPy: only reducing over zero elements fails; an empty kept axis gives an empty result
        if empty_error and any(x.shape[a] == 0 for a in axis):
            if not empty_ok:
                raise RuntimeCheckFailed("reduction over an empty axis has no identity")
            identity = empty_value("max" if np_fn is np.max else "min", x.dtype)   # NumPy's initial=
            return np_fn(x, axis=axis, keepdims=keepdims, initial=identity).astype(dtype, copy=False)
        if np_fn in (np.sum, np.prod):
            return np_fn(x, axis=axis, keepdims=keepdims, dtype=dtype)
        return np_fn(x, axis=axis, keepdims=keepdims).astype(dtype, copy=False)
    return _quiet(run)


def empty_value(op: str, dtype: str):
    """What max/min over no elements gives where allowed (NumPy's initial=; the C initial values)."""
    np_dtype = np.dtype({"f32": "float32", "f64": "float64", "i32": "int32", "i64": "int64",
                         "bool": "bool"}.get(dtype, dtype))
    if np_dtype.kind == "f":
        return -np.inf if op == "max" else np.inf
    if np_dtype.kind == "b":
        return op == "min"
    info = np.iinfo(np_dtype)
    return int(info.min if op == "max" else info.max)


def _argreduce(np_fn: Callable) -> Callable:
    def run(x, axis, keepdims):
        x = np.asarray(x)
        if (x.size == 0) if axis is None else (x.shape[axis] == 0):
            raise RuntimeCheckFailed("argmax/argmin of an empty array" if axis is None
                                     else "argmax/argmin over an empty axis")
        return np_fn(x, axis=axis, keepdims=keepdims).astype(np.int64)
    return _quiet(run)


REDUCTIONS = [
    # `c` holds (initial value, combine expression over {acc} and {x}), each a template or a dict by kind
    Op("sum", "reduce", 1, "sum", _reduce(np.sum, False), ("0", {"float": "{acc} + {x}", "int": "tdsl_add_{T}({acc}, {x})"}),
       grad=lambda d: [d.spread(d.g)]),
    Op("prod", "reduce", 1, "sum", _reduce(np.prod, False), ("1", {"float": "{acc} * {x}", "int": "tdsl_mul_{T}({acc}, {x})"}),
       grad=lambda d: d.prod_rule()),
    Op("max", "reduce", 1, "same", _reduce(np.max, True), ({"float": "-INFINITY", "int": "tdsl_lowest_{T}", "bool": "false"}, "tdsl_maximum_{T}({acc}, {x})"),
       grad=lambda d: d.extreme_rule()),
    Op("min", "reduce", 1, "same", _reduce(np.min, True), ({"float": "INFINITY", "int": "tdsl_highest_{T}", "bool": "true"}, "tdsl_minimum_{T}({acc}, {x})"),
       grad=lambda d: d.extreme_rule()),
    Op("any", "reduce", 1, "bool", _reduce(np.any, False), ("0", "{acc} || {x}")),
    Op("all", "reduce", 1, "bool", _reduce(np.all, False), ("1", "{acc} && {x}")),
    Op("argmax", "argreduce", 1, "index", _argreduce(np.argmax), ">"),
    Op("argmin", "argreduce", 1, "index", _argreduce(np.argmin), "<"),
]


def _take(x, idx, axis):
    n = np.asarray(x).shape[axis]
    idx = np.asarray(idx)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise RuntimeCheckFailed(f"take: an index is out of range for an axis of length {n}")
    return np.take(x, idx, axis=axis)


def _slice(x, starts, steps, shape):
    index = tuple(slice(s, None if s + st * n < 0 else s + st * n, st) if n else slice(0, 0)
                  for s, st, n in zip(starts, steps, shape))
    return np.asarray(x)[index]


STRUCTURAL = [
    Op("param", "source", 0, "given", None, doc="a function parameter"),
    Op("sizevar", "source", 0, "given", None, doc="the value of a size variable (a weak integer)"),
    Op("const", "source", 0, "given", None, doc="a literal or const value"),
    Op("iota", "source", 0, "given", lambda n: np.arange(n, dtype=np.int64), doc="0, 1, ..., n-1"),
    Op("cast", "cast", 1, "given", lambda x, dtype: np.asarray(x).astype(dtype),
       {"float": "tdsl_cast_{T}_{RT}({0})", "int": "(({R}){0})", "bool": "(({R}){0})"},
       doc="an explicit or implied dtype conversion",
       grad=lambda d: [d.cast(d.g, d.x.dtype)]),
    Op("reshape", "layout", 1, "given", lambda x, shape: np.reshape(x, shape),
       grad=lambda d: [d.reshape(d.g, d.x.shape)]),
    Op("transpose", "layout", 1, "given", lambda x, perm: np.transpose(x, perm),
       grad=lambda d: d.transpose_rule()),
    Op("broadcast", "layout", 1, "given", lambda x, shape: np.broadcast_to(x, shape),
       grad=lambda d: [d.unbroadcast(d.g, d.x.shape)]),
    Op("slice", "layout", 1, "given", _slice,
       grad=lambda d: d.slice_rule()),
    Op("concat", "concat", None, "given", lambda *xs, axis: np.concatenate(xs, axis=axis),
       grad=lambda d: d.concat_rule()),
    Op("take", "gather", 2, "given", _take,
       grad=lambda d: d.take_rule()),
    Op("matmul", "matmul", 2, "matmul", _quiet(np.matmul),
       grad=lambda d: d.matmul_rule()),
]

OPS: dict[str, Op] = {op.name: op for op in ELEMENTWISE + REDUCTIONS + STRUCTURAL}
