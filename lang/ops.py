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

Every property of an op lives in its row: the math-library call and its libmvec level,
whether it applies lane by lane to vectors, its operator symbol, how it can fail at call
time, and the source of a prelude helper it calls. Every other list of op names (the
C prelude's SIMD declarations, the printer's symbols, the can-fail checks) is derived
from `OPS`; adding an op is adding a row (docs/decisions.md, "Where op properties live").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from string import Template
from typing import Callable, Union

import numpy as np

from . import philox as _philox
from .errors import TdslRuntimeError

CExpr = Union[str, dict, None]


class RuntimeCheckFailed(Exception):
    """Raised by an implementation when the data breaks a rule (an empty max, an index out of range).

    `check` names the rule (see `check_message`; None: the message is all there is), with what the
    implementation knows: the op, the value found, the axis of its operand and that axis's length.
    `located` makes the user's error of it, naming the value and the axis as the source has them."""

    def __init__(self, message: str | None = None, check: str | None = None, op: str = "",
                 value: int | None = None, axis: int | None = None, length: int | None = None):
        self.check, self.op, self.value, self.axis, self.length = check, op, value, axis, length
        super().__init__(message if message is not None else check_message(check, op, value, axis, length))


@dataclass(frozen=True)
class Fails:
    """How an op can fail at call time (NumPy raises; every target reports the same error)."""

    on: str                        # "empty": over no elements; "values": on the values of an operand
    kinds: tuple = ("float", "int", "bool")   # the dtype kinds of its result that can fail
    operand: int | None = None     # "values": the operand whose values decide
    domain: int | None = None      # "values": the operand every element of which a check reads (None: the result)
    safe: Callable | None = None   # "values": (the operand's literal values, node) -> True when they never fail
    message: str = "an integer raised to a negative integer power"   # "values": the error (operand < 0)
    check: str | None = "power"    # "values": the check_message kind naming the operand (None: `message` alone)


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
    # A math-library call (or a helper that makes one) whose vector forms (libmvec in C SIMD
    # loops, floatN builtins in OpenCL) round differently from the scalar call: the renderers
    # keep one form per value. It also costs about a load and a store (codegen/render.py MATH_OPS).
    vector_math: bool = False
    libm: str | None = None        # the C math-library function its float expression calls (f32: NAME + "f")
    libmvec: int | None = None     # glibc's libmvec has SIMD forms of `libm` from this level (1: glibc 2.22,
                                   # 2: 2.35) and the C prelude declares them; None: the call stays scalar
    lanewise: bool = False         # its OpenCL float expression applies to vector types, lane by lane
    symbol: str | None = None      # the operator that writes it in source (`+`, `**`, `not`), if any
    builtin: bool = True           # callable by name (`exp(x)`, `tdsl.exp`); operators are not, but pow
    fails: Fails | None = None     # how it can fail at call time, None: never
    helper: str | None = None      # the prelude function its expression calls (see `helper_source`)
    opencl_outlined: CExpr = None  # the OpenCL expression in kernels that call it out of line (many sines)

    def c_template(self, dtype_kind: str, dialect: str = "c", outlined: bool = False) -> str | None:
        """The expression template for operands of the given kind, in the given dialect."""
        expr = self.opencl if dialect == "opencl" and self.opencl is not None else self.c
        if outlined and dialect == "opencl" and self.opencl_outlined is not None:
            expr = self.opencl_outlined
        if isinstance(expr, dict):
            return expr.get(dtype_kind, expr.get("any"))
        return expr

    def helper_source(self, T: str, C: str, f: str) -> str:
        """The prelude helper's C or OpenCL text for one float dtype: `$T` the tdsl dtype, `$C`
        its C type, `$f` the dialect's math suffix (`expf` in C, overloaded `exp` in OpenCL)."""
        return Template(self.helper).substitute(T=T, C=C, f=f) if self.helper else ""


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
        flat = b.ravel()
        raise RuntimeCheckFailed(check="power", op="pow", value=int(flat[np.argmax(flat < 0)]))
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


def _unary(name, rule, impl, c=None, opencl=None, grad=None, **props):
    return Op(name, "elementwise", 1, rule, _quiet(impl), c, opencl, grad, **props)


def _binary(name, rule, impl, c=None, opencl=None, grad=None, **props):
    return Op(name, "elementwise", 2, rule, _quiet(impl), c, opencl, grad, **props)


def _operator(symbol: str, builtin: bool = False) -> dict:
    return dict(symbol=symbol, builtin=builtin)


_ARITH = {"float": "({0} {op} {1})", "int": "tdsl_{name}_{T}({0}, {1})"}


def _wrapping(name: str, op: str) -> dict:
    """Integers wrap on overflow: C computes them in unsigned arithmetic (prelude helpers)."""
    return {kind: tpl.replace("{op}", op).replace("{name}", name) for kind, tpl in _ARITH.items()}


def _math(fn: str, arity: int = 1, libmvec: int | None = None, vector: bool = True) -> dict:
    """A call of the math library on floats: the row's `c`, `libm`, `libmvec`, `vector_math`, `lanewise`."""
    operands = ", ".join("{%d}" % i for i in range(arity))
    return dict(c={"float": f"{fn}{{f}}({operands})"}, libm=fn, libmvec=libmvec, vector_math=vector,
                lanewise=True)


def _take_in_range(indices: np.ndarray, node) -> bool:
    """Literal indices fail only out of range of an axis of known length."""
    extent = node.inputs[0].shape[node.attr("axis")]
    return extent.is_const and not bool(np.any((indices < -extent.const) | (indices >= extent.const)))


# logaddexp as NumPy's npy_logaddexp: x == y (infinities of one sign too) gives x + log(2), NaN
# propagates through x - y; a helper in both preludes (C and OpenCL), per float dtype. Near
# logaddexp = 0 the sum cancels, so one ulp of exp or log1p is many of the result: the helper
# calls libm's scalar functions as NumPy does (TDSL_SCALAR_HELPER: never in a C SIMD loop).
_LOGADDEXP = """
/* log(exp(x) + exp(y)) as NumPy computes it: x == y (equal infinities too) gives x + log(2). */
static TDSL_SCALAR_HELPER $C tdsl_logaddexp_$T($C x, $C y)
{
    const $C d = x - y;
    if (x == y) return x + ($C)0.693147180559945309417232121458176568;
    if (d > 0) return x + log1p$f(exp$f(-d));
    if (d <= 0) return y + log1p$f(exp$f(d));
    return d;
}
"""

_NEGATIVE_POWER = Fails("values", kinds=("int",), operand=1, domain=None,
                        safe=lambda exponent, node: not bool(np.any(exponent < 0)))

ELEMENTWISE = [
    # arithmetic: operands share the result dtype; bool is refused
    _binary("add", "arith", np.add, _wrapping("add", "+"),
            grad=lambda d: [d.g, d.g], **_operator("+"), lanewise=True),
    _binary("sub", "arith", np.subtract, _wrapping("sub", "-"),
            grad=lambda d: [d.g, -d.g], **_operator("-"), lanewise=True),
    _binary("mul", "arith", np.multiply, _wrapping("mul", "*"),
            grad=lambda d: [d.g * d.y, d.g * d.x], **_operator("*"), lanewise=True),
    _binary("div", "float", np.true_divide, "({0} / {1})",
            grad=lambda d: [d.g / d.y, -d.g * d.out / d.y], **_operator("/"), lanewise=True),
    _binary("floordiv", "arith", np.floor_divide, "tdsl_floordiv_{T}({0}, {1})",
            grad=lambda d: [None, None], **_operator("//")),
    _binary("mod", "arith", np.mod, "tdsl_mod_{T}({0}, {1})",
            grad=lambda d: [d.g, -d.g * (d.x // d.y)], **_operator("%")),
    _binary("pow", "arith", _int_pow, {"float": "pow{f}({0}, {1})", "int": "tdsl_pow_{T}({0}, {1})"},
            grad=lambda d: [d.where(d.y.eq(0), 0, d.g * d.y * d.x ** (d.y - 1)),
                            d.g * d.out * d.log(d.where(d.x.eq(0), 1, d.x))],
            **_operator("**", builtin=True), libm="pow", libmvec=1, vector_math=True, lanewise=True,
            fails=_NEGATIVE_POWER),
    _binary("maximum", "arith", np.maximum, "tdsl_maximum_{T}({0}, {1})",
            grad=lambda d: [d.split(d.x > d.y, d.x.eq(d.y)), d.split(d.y > d.x, d.x.eq(d.y))]),
    _binary("minimum", "arith", np.minimum, "tdsl_minimum_{T}({0}, {1})",
            grad=lambda d: [d.split(d.x < d.y, d.x.eq(d.y)), d.split(d.y < d.x, d.x.eq(d.y))]),
    # atan2 stays scalar in C SIMD loops: its sign rules are tested bit for bit
    _binary("atan2", "float", np.arctan2,
            grad=lambda d: [d.g * d.y / (d.x * d.x + d.y * d.y), -d.g * d.x / (d.x * d.x + d.y * d.y)],
            **_math("atan2", 2)),
    _binary("hypot", "float", np.hypot,
            grad=lambda d: [d.where(d.out.eq(0), 0, d.g * d.x / d.out), d.where(d.out.eq(0), 0, d.g * d.y / d.out)],
            **_math("hypot", 2, libmvec=2)),   # at (0, 0) the subgradient 0, as abs's and norm's
    _binary("logaddexp", "float", np.logaddexp, "tdsl_logaddexp_{T}({0}, {1})",
            grad=lambda d: [d.g * d.exp(d.x - d.out), d.g * d.exp(d.y - d.out)], helper=_LOGADDEXP),
    # copysign only moves a sign bit: every form gives the same bits (no vector_math)
    _binary("copysign", "float", np.copysign,
            grad=lambda d: [d.g * d.sign(d.x) * d.copysign(1, d.y), None], **_math("copysign", 2, vector=False)),
    # comparisons and logic give bool
    _binary("eq", "compare", np.equal, "({0} == {1})", **_operator("==")),
    _binary("ne", "compare", np.not_equal, "({0} != {1})", **_operator("!=")),
    _binary("lt", "compare", np.less, "({0} < {1})", **_operator("<")),
    _binary("le", "compare", np.less_equal, "({0} <= {1})", **_operator("<=")),
    _binary("gt", "compare", np.greater, "({0} > {1})", **_operator(">")),
    _binary("ge", "compare", np.greater_equal, "({0} >= {1})", **_operator(">=")),
    _binary("and", "logical", np.logical_and, "({0} && {1})", **_operator("and")),
    _binary("or", "logical", np.logical_or, "({0} || {1})", **_operator("or")),
    _unary("not", "logical", np.logical_not, "(!{0})", **_operator("not")),
    # unary arithmetic keeps the dtype
    _unary("neg", "arith", np.negative, {"float": "(-{0})", "int": "tdsl_neg_{T}({0})"},
           grad=lambda d: [-d.g], **_operator("-"), lanewise=True),
    _unary("abs", "arith", np.abs, {"float": "fabs{f}({0})", "int": "tdsl_abs_{T}({0})"},
           grad=lambda d: [d.g * d.sign(d.x)], libm="fabs", lanewise=True),
    _unary("sign", "arith", np.sign, "tdsl_sign_{T}({0})",
           grad=lambda d: [None]),
    _unary("square", "arith", np.square, {"float": "({0} * {0})", "int": "tdsl_mul_{T}({0}, {0})"},
           grad=lambda d: [d.g * 2 * d.x], lanewise=True),
    _unary("reciprocal", "arith", _int_reciprocal, {"float": "((({C})1) / {0})", "int": "tdsl_reciprocal_{T}({0})"},
           grad=lambda d: [-d.g * d.out * d.out], lanewise=True),
    _unary("relu", "arith", _relu, "tdsl_relu_{T}({0})",
           grad=lambda d: [d.where(d.x > 0, d.g, 0)]),
    _unary("floor", "arith", np.floor, {"float": "floor{f}({0})", "int": "{0}"},
           grad=lambda d: [None], libm="floor", lanewise=True),
    _unary("ceil", "arith", np.ceil, {"float": "ceil{f}({0})", "int": "{0}"},
           grad=lambda d: [None], libm="ceil", lanewise=True),
    _unary("round", "arith", _round, {"float": "rint{f}({0})", "int": "{0}"},
           grad=lambda d: [None], libm="rint", lanewise=True),
    # transcendental: integer operands are cast to f64 first
    _unary("sqrt", "float", np.sqrt,
           grad=lambda d: [d.g * 0.5 / d.out], **_math("sqrt", vector=False)),
    _unary("rsqrt", "float", lambda x: 1 / np.sqrt(x), {"float": "((({C})1) / sqrt{f}({0}))"},
           opencl={"float": "rsqrt({0})"},
           grad=lambda d: [d.g * -0.5 * d.out / d.x], libm="sqrt", lanewise=True),
    _unary("exp", "float", np.exp,
           grad=lambda d: [d.g * d.out], **_math("exp", libmvec=1)),
    _unary("exp2", "float", np.exp2,
           grad=lambda d: [d.g * d.out * math.log(2)], **_math("exp2", libmvec=2)),
    _unary("expm1", "float", np.expm1,
           grad=lambda d: [d.g * (d.out + 1)], **_math("expm1", libmvec=2)),
    _unary("log", "float", np.log,
           grad=lambda d: [d.g / d.x], **_math("log", libmvec=1)),
    _unary("log2", "float", np.log2,
           grad=lambda d: [d.g / (d.x * math.log(2))], **_math("log2", libmvec=2)),
    _unary("log10", "float", np.log10,
           grad=lambda d: [d.g / (d.x * math.log(10))], **_math("log10", libmvec=2)),
    _unary("log1p", "float", np.log1p,
           grad=lambda d: [d.g / (d.x + 1)], **_math("log1p", libmvec=2)),
    # OpenCL: sin and cos are prelude helpers with vector versions (tdsl_sin_f64x4, ...), and
    # out-of-line versions for kernels with many of them (opencl_render.INLINE_TRIG)
    _unary("sin", "float", np.sin, opencl={"float": "tdsl_sin_{T}({0})"},
           grad=lambda d: [d.g * d.cos(d.x)], **_math("sin", libmvec=1),
           opencl_outlined={"float": "tdsl_sin_outlined_{T}({0})"}),
    _unary("cos", "float", np.cos, opencl={"float": "tdsl_cos_{T}({0})"},
           grad=lambda d: [-d.g * d.sin(d.x)], **_math("cos", libmvec=1),
           opencl_outlined={"float": "tdsl_cos_outlined_{T}({0})"}),
    _unary("tan", "float", np.tan,
           grad=lambda d: [d.g * (1 + d.out * d.out)], **_math("tan", libmvec=2)),
    _unary("asin", "float", np.arcsin,
           grad=lambda d: [d.g * d.rsqrt(1 - d.x * d.x)], **_math("asin", libmvec=2)),
    _unary("acos", "float", np.arccos,
           grad=lambda d: [-d.g * d.rsqrt(1 - d.x * d.x)], **_math("acos", libmvec=2)),
    _unary("atan", "float", np.arctan,
           grad=lambda d: [d.g / (1 + d.x * d.x)], **_math("atan", libmvec=2)),
    _unary("sinh", "float", np.sinh,
           grad=lambda d: [d.g * d.cosh(d.x)], **_math("sinh", libmvec=2)),
    _unary("cosh", "float", np.cosh,
           grad=lambda d: [d.g * d.sinh(d.x)], **_math("cosh", libmvec=2)),
    _unary("tanh", "float", np.tanh,
           grad=lambda d: [d.g * (1 - d.out * d.out)], **_math("tanh", libmvec=2)),
    _unary("cbrt", "float", np.cbrt,
           grad=lambda d: [d.g / (3 * d.out * d.out)], **_math("cbrt", libmvec=2)),
    _unary("sigmoid", "float", _sigmoid, "tdsl_sigmoid_{T}({0})",
           grad=lambda d: [d.g * d.out * (1 - d.out)], vector_math=True),
    _unary("softplus", "float", _softplus, "tdsl_softplus_{T}({0})",
           grad=lambda d: [d.g * d.sigmoid(d.x)], vector_math=True),
    _unary("erf", "float", _erf,
           grad=lambda d: [d.g * (2 / math.sqrt(math.pi)) * d.exp(-d.x * d.x)], **_math("erf", libmvec=2)),
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
                empty = next(a for a in axis if x.shape[a] == 0)
                raise RuntimeCheckFailed(check="empty", op="max" if np_fn is np.max else "min", axis=empty,
                                         length=0)
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
            empty = x.shape.index(0) if axis is None else axis % x.ndim
            raise RuntimeCheckFailed(check="empty array" if axis is None else "empty", op=np_fn.__name__,
                                     axis=empty, length=0)
        return np_fn(x, axis=axis, keepdims=keepdims).astype(np.int64)
    return _quiet(run)


REDUCTIONS = [
    # `c` holds (initial value, combine expression over {acc} and {x}), each a template or a dict by kind
    Op("sum", "reduce", 1, "sum", _reduce(np.sum, False), ("0", {"float": "{acc} + {x}", "int": "tdsl_add_{T}({acc}, {x})"}),
       grad=lambda d: [d.spread(d.g)]),
    Op("prod", "reduce", 1, "sum", _reduce(np.prod, False), ("1", {"float": "{acc} * {x}", "int": "tdsl_mul_{T}({acc}, {x})"}),
       grad=lambda d: d.prod_rule()),
    Op("max", "reduce", 1, "same", _reduce(np.max, True), ({"float": "-INFINITY", "int": "tdsl_lowest_{T}", "bool": "false"}, "tdsl_maximum_{T}({acc}, {x})"),
       grad=lambda d: d.extreme_rule(), fails=Fails("empty")),
    Op("min", "reduce", 1, "same", _reduce(np.min, True), ({"float": "INFINITY", "int": "tdsl_highest_{T}", "bool": "true"}, "tdsl_minimum_{T}({acc}, {x})"),
       grad=lambda d: d.extreme_rule(), fails=Fails("empty")),
    Op("any", "reduce", 1, "bool", _reduce(np.any, False), ("0", "{acc} || {x}")),
    Op("all", "reduce", 1, "bool", _reduce(np.all, False), ("1", "{acc} && {x}")),
    Op("argmax", "argreduce", 1, "index", _argreduce(np.argmax), ">", fails=Fails("empty")),
    Op("argmin", "argreduce", 1, "index", _argreduce(np.argmin), "<", fails=Fails("empty")),
]


def _outside(idx: np.ndarray, n: int) -> int:
    """The first index (in order) outside an axis of length n."""
    flat = idx.ravel()
    return int(flat[np.argmax((flat < -n) | (flat >= n))])


def _range_error(idx: np.ndarray, n: int, of_slice: bool, op: str, axis: int) -> RuntimeCheckFailed:
    """An index (or a run-time slice, whose positions are no index the call passed) out of range."""
    if of_slice:
        return RuntimeCheckFailed(check="slice", op=op, axis=axis, length=n)
    return RuntimeCheckFailed(check="index", op=op, value=_outside(idx, n), axis=axis, length=n)


def _take(x, idx, axis, of_slice=False):
    n = np.asarray(x).shape[axis]
    idx = np.asarray(idx)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise _range_error(idx, n, of_slice, "take", axis % np.ndim(x))
    return np.take(x, idx, axis=axis)


def _slice(x, starts, steps, shape):
    index = tuple(slice(s, None if s + st * n < 0 else s + st * n, st) if n else slice(0, 0)
                  for s, st, n in zip(starts, steps, shape))
    return np.asarray(x)[index]


def _update(x, v, starts, steps, shape, in_place=False):
    out = x if in_place else np.array(x, copy=True)
    index = tuple(slice(s, None if s + st * n < 0 else s + st * n, st) if n else slice(0, 0)
                  for s, st, n in zip(starts, steps, shape))
    out[index] = v
    return out


def _scatter_target(x, idx, axis, of_slice, in_place, op="scatter"):
    """The array a scatter writes (x itself in place, else a copy), once idx is in range on the axis."""
    x, idx = np.asarray(x), np.asarray(idx)
    n = x.shape[axis]
    if idx.size and (np.any(idx >= n) or np.any(idx < -n)):
        raise _range_error(idx, n, of_slice, op, axis % x.ndim)
    return (x if in_place else np.array(x, copy=True)), idx


def _scatter(x, idx, v, axis, of_slice=False, in_place=False):
    out, idx = _scatter_target(x, idx, axis, of_slice, in_place)
    out[(slice(None),) * axis + (idx,)] = v     # NumPy's assignment: the last write wins
    return out


def _scatter_in_range(indices: np.ndarray, node) -> bool:
    extent = node.shape[node.attr("axis")]
    return extent.is_const and bool(np.all((indices >= -extent.const) & (indices < extent.const)))


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
       grad=lambda d: d.take_rule(), fails=Fails("values", operand=1, domain=1, safe=_take_in_range)),
    Op("matmul", "matmul", 2, "matmul", _quiet(np.matmul),
       grad=lambda d: d.matmul_rule()),
    # indexed updates (section 11): a new array equal to x but for one region
    Op("update", "update", 2, "given", _update, doc="x with a strided region replaced by v",
       grad=lambda d: d.update_rule()),
    Op("scatter", "scatter", 3, "given", _scatter,
       doc="x with the positions idx along an axis replaced by v (the last write wins)",
       grad=lambda d: d.scatter_rule(), fails=Fails("values", operand=1, domain=1, safe=_scatter_in_range)),
    # control flow (section 11): each result of a loop or branch; attrs hold the Region
    Op("for", "region", None, "given", None, doc="a result of a for loop"),
    Op("while", "region", None, "given", None, doc="a result of a while loop"),
    Op("if", "region", None, "given", None, doc="a result of an if/else"),
]

# Section 12's primitives, one list per family (the builtins composed of them are in
# lang/ordering.py, lang/scatter.py and lang/rng.py).
def _ordering(name: str) -> Callable:
    """A function of lang/ordering.py, imported when first called (it imports the type checker)."""
    def call(*args, **kwargs):
        from . import ordering
        return getattr(ordering, name)(*args, **kwargs)
    call.__name__ = name
    return call


def _row_op(name: str, arity: int, grad: str | None, doc: str) -> Op:
    """An op along one axis (attr `axis`) that the targets run as one routine per row."""
    return Op(name, "ordering", arity, "given", _quiet(_ordering(f"{name}_impl")),
              grad=_ordering(grad) if grad else None, doc=doc)


ORDERING: list[Op] = [   # cumulative sums and products, sorting
    _row_op("cumsum", 1, "cumsum_grad", "running sums along an axis, in order (np.cumsum)"),
    _row_op("cumprod", 1, "cumprod_grad", "running products along an axis, in order (np.cumprod)"),
    _row_op("cumprod_grad", 2, "cumprod_grad_grad", "the adjoint of cumprod: (x, adjoint) -> adjoint of x"),
    _row_op("sort", 1, "sort_grad", "values sorted along an axis, NaN last (np.sort, stable)"),
    _row_op("argsort", 1, None, "the stable sorting permutation along an axis (np.argsort, stable)"),
    _row_op("top_k", 1, "top_k_grad", "the k largest values (result 0) or their positions (1)"),
    _row_op("unsort", 2, "unsort_grad", "(adjoints, positions) -> the adjoints written at their positions, 0 elsewhere"),
]


def _along(idx: np.ndarray, axis: int) -> tuple:
    """The index tuple that reads idx's positions along `axis` and every other axis in place
    (NumPy's take_along_axis and put_along_axis, as fancy indexing)."""
    grids = list(np.ix_(*[np.arange(n) for n in idx.shape]))
    grids[axis] = idx
    return tuple(grids)


def _scatter_add(x, idx, v, axis, along=False, in_place=False):
    """numpy.add.at into a copy of x: repeated positions accumulate, in order."""
    out, idx = _scatter_target(x, idx, axis, False, in_place, "scatter_add")
    where = _along(idx, axis) if along else (slice(None),) * axis + (idx,)
    np.add.at(out, where, np.asarray(v, dtype=out.dtype))
    return out


def _take_along_axis(x, idx, axis):
    x, idx = np.asarray(x), np.asarray(idx)
    n = x.shape[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise _range_error(idx, n, False, "take_along_axis", axis % x.ndim)
    return np.take_along_axis(x, idx, axis=axis)


GATHER_SCATTER: list[Op] = [   # gathers and scatters along an axis (lang/scatter.py builds them)
    Op("scatter_add", "scatter", 3, "given", _scatter_add,
       doc="x with the values added at the positions idx along an axis, in order (numpy.add.at); "
           "`along`: idx has x's rank and names a position on the axis for every other position",
       grad=lambda d: d.scatter_add_rule(), fails=Fails("values", operand=1, domain=1, safe=_scatter_in_range)),
    Op("take_along_axis", "gather", 2, "given", _take_along_axis,
       doc="x read at the positions idx along an axis, every other axis in place",
       grad=lambda d: d.take_along_rule(), fails=Fails("values", operand=1, domain=1, safe=_take_in_range)),
]


# Counter-based random numbers (lang/rng.py builds them; lang/philox.py is the reference). Each
# op is elementwise over (key, position): a value depends on its key and its flat position only,
# so it fuses into its consumers and never depends on threads or work-items. The preludes hold
# Philox-4x64-10 itself (tdsl_philox_word: word w of key's stream, as NumPy's Philox(key=key)).
_RANDOM_HELPERS = """
/* Uniform on [0, 1) at a position of key's stream, as NumPy's Generator(Philox(key)).random:
   f64: (word p >> 11) * 2^-53; f32: the low, then the high half of word p / 2, (u32 >> 8) * 2^-24. */
static inline $C tdsl_uniform_$T(tdsl_u64 key, tdsl_u64 p)
{
    tdsl_u64 word, low_high;
    if (sizeof($C) == 8) return ($C)(tdsl_philox_word(key, p) >> 11) * ($C)1.1102230246251565404236316680908203125e-16;
    word = tdsl_philox_word(key, p >> 1);
    low_high = (p & 1) ? word >> 32 : word & 0xFFFFFFFFu;
    return ($C)(low_high >> 8) * ($C)5.9604644775390625e-08;
}

/* Standard normal at a position: Box-Muller of words 2p and 2p + 1 as uniforms u1, u2 of $T's
   mantissa ((word >> 11) * 2^-53, or (word >> 40) * 2^-24): sqrt(-2 log(1 - u1)) cos(2 pi u2). */
static TDSL_SCALAR_HELPER $C tdsl_normal_$T(tdsl_u64 key, tdsl_u64 p)
{
    const int shift = sizeof($C) == 8 ? 11 : 40;
    const $C scale = sizeof($C) == 8 ? ($C)1.1102230246251565404236316680908203125e-16 : ($C)5.9604644775390625e-08;
    const $C u1 = ($C)(tdsl_philox_word(key, 2 * p) >> shift) * scale;
    const $C u2 = ($C)(tdsl_philox_word(key, 2 * p + 1) >> shift) * scale;
    return sqrt$f(($C)-2 * log$f(($C)1 - u1)) * cos$f(($C)6.283185307179586476925286766559 * u2);
}
"""


def _randint_span(span, flag):
    if np.any(np.asarray(flag) < 0):
        raise RuntimeCheckFailed(RANDINT_EMPTY)
    return np.asarray(span)


RANDINT_EMPTY = "randint needs low < high"


def _random(name: str, impl: Callable, c: str, **props) -> Op:
    """An elementwise op of integer operands (a key and a position, mostly): a constant for grad."""
    return _binary(name, "given", impl, {"int": c}, grad=lambda d: [None, None], **props)


RANDOM: list[Op] = [     # counter-based random numbers (Philox-4x64-10)
    _random("philox_f64", _philox.uniform_f64, "tdsl_uniform_f64({0}, {1})", helper=_RANDOM_HELPERS,
            doc="uniform f64 on [0, 1): word `position` of `key`'s stream, as NumPy's Philox"),
    _random("philox_f32", _philox.uniform_f32, "tdsl_uniform_f32({0}, {1})",
            doc="uniform f32 on [0, 1): half `position` of `key`'s stream, as NumPy's Philox"),
    _random("philox_normal_f64", lambda k, p: _philox.normal(k, p, np.float64), "tdsl_normal_f64({0}, {1})",
            doc="standard normal f64 (Box-Muller of words 2p and 2p + 1)"),
    _random("philox_normal_f32", lambda k, p: _philox.normal(k, p, np.float32), "tdsl_normal_f32({0}, {1})",
            doc="standard normal f32 (Box-Muller in f32 of words 2p and 2p + 1)"),
    _random("philox_bits", _philox.bits, "tdsl_philox_bits({0}, {1})",
            doc="word `position` of `key`'s stream as i64"),
    _random("mulhi", _philox.mulhi, "tdsl_mulhi_i64({0}, {1})",
            doc="the high 64 bits of the product of two i64 read as unsigned (Lemire's range map)"),
    _random("fold_in", _philox.fold_in, "tdsl_fold_in({0}, {1})",
            doc="a new key from a key and an integer: one Philox block no stream uses"),
    _random("randint_span", _randint_span, "{0}",
            doc="the span high - low of randint, checked: `flag` is negative where low >= high",
            fails=Fails("values", kinds=("int",), operand=1, message=RANDINT_EMPTY, check=None,
                        safe=lambda flag, node: not bool(np.any(flag < 0)))),
]

OPS: dict[str, Op] = {op.name: op for op in ELEMENTWISE + REDUCTIONS + STRUCTURAL + ORDERING
                      + GATHER_SCATTER + RANDOM}


# -- properties read across the table -----------------------------------------------------

# Elementwise ops whose result is finite whenever their float operands are (bounded, or at most
# as large as an operand): the NaN guard (tdsl/nanguard.py) never checks them.
BOUNDED = frozenset({"neg", "abs", "sign", "relu", "floor", "ceil", "round", "sin", "cos", "tanh",
                     "atan", "atan2", "sigmoid", "softplus", "erf", "cbrt", "maximum", "minimum",
                     "copysign", "logaddexp"})

def math_ops() -> frozenset[str]:
    """The ops that call math functions (codegen/render.py MATH_OPS: their cost): a call with
    vector forms, or a helper that makes such calls."""
    return frozenset(name for name, op in OPS.items() if op.vector_math or op.helper)


def libmvec_functions() -> list[tuple[int, str, int]]:
    """(libmvec level, libm name, arity) of each math call whose SIMD forms the C prelude declares."""
    return sorted({(op.libmvec, op.libm, op.arity) for op in OPS.values() if op.libmvec})


def lanewise_ops() -> frozenset[str]:
    """The elementwise ops whose OpenCL float expression applies to vector types lane by lane."""
    return frozenset(name for name, op in OPS.items() if op.lanewise)


def operator_symbols(arity: int) -> dict[str, str]:
    """Op name -> its operator symbol, for the operators of one arity (`add` -> `+`)."""
    return {name: op.symbol for name, op in OPS.items() if op.symbol and op.arity == arity}


def helpers() -> list[Op]:
    """The ops whose expression calls a prelude helper they carry (`Op.helper`), in table order."""
    return [op for op in OPS.values() if op.helper]


# -- what a failed check says ----------------------------------------------------------------
# Every target words a failed check the same way: the reference from RuntimeCheckFailed
# (`located`), the compiled ones from the error table their lowering writes (codegen/lower.py),
# where `value` is unknown until the call ("an index", filled in then) and `length` is "{extent}".

def check_message(check: str | None, op: str, value, axis: int | None, length) -> str:
    """The message of a failed check, without its place: "index 7 is out of range for axis 0 of
    length 5". `check`: "index", "slice" (run-time bounds), "empty" (a reduction over an empty
    axis), "empty array" (argmax of no elements), "power" (a negative exponent of an integer)."""
    on = f"axis {axis}" if axis is not None else "an axis"
    if check == "index":
        found = "an index" if value is None else f"index {value}"
        return f"{found} is out of range for {on} of length {length}"
    if check == "slice":
        return f"a slice with run-time bounds is out of range for {on} of length {length}, " \
               "so NumPy's slice would be shorter than written"
    if check == "empty":
        return f"{op} over {on} of length 0 has " + ("no identity" if op in ("max", "min") else "no result")
    if check == "empty array":
        return f"{op} of an empty array has no result: {on} has length 0"
    if check == "power":
        return "an integer raised to a negative integer power"
    raise ValueError(f"unknown check {check!r}")


def check_place(check: str | None, operand: str | None, loc) -> str:
    """What a failed check's message ends with: the value by its name, or by its role when it has
    none, and the place of the expression: " (x at model.tdsl:3:12)"."""
    at = f" at {loc}" if loc is not None else ""
    if operand:
        return f" ({operand}{at})"
    if loc is None:
        return ""
    role = {"power": "the exponent", "empty": "the value reduced", "empty array": "the value reduced"}
    return f" ({role.get(check, 'the value indexed')}{at})"


def failure_site(node, axis: int | None) -> tuple[str | None, int | None]:
    """(name, axis) of the value a failing node checks, as the source has it: the value indexed,
    reduced or written into (the exponent of a power), and `axis`, an axis of the node's own
    operand, as an axis of that value. The views one subscript makes (`x[0, j]` reads `x[0]` at
    `j`) are seen through, back to the value the expression indexes: its name, or None when it has
    none (`(a + b)[i]`); the axis is None where no axis of that value is the one checked."""
    x = node.inputs[OPS[node.op].fails.operand if OPS[node.op].kind == "elementwise" else 0]
    if axis is not None and x.ndim:
        axis %= x.ndim
    while x.name is None and x.loc == node.loc and x.inputs and x.op in _SEEN_THROUGH:
        if axis is not None:
            axis = _input_axis(x, axis)
            if axis is None:
                return None, None
        elif x.op not in ("cast", "broadcast"):
            break
        x = x.inputs[0]
    return x.name, axis


_SEEN_THROUGH = ("cast", "slice", "reshape", "transpose", "broadcast", "take")


def _input_axis(node, axis: int) -> int | None:
    """The axis of a view's (or a take's) operand that its `axis` is, or None (none is)."""
    x = node.inputs[0]
    if node.op in ("cast", "slice"):
        return axis
    if node.op == "transpose":
        return node.attr("perm")[axis]
    if node.op == "broadcast":
        k = axis - (node.ndim - x.ndim)
        return k if k >= 0 and x.shape[k] == node.shape[axis] else None
    if node.op == "take":   # the operand's axis t is replaced by the indices' axes
        t, rank = node.attr("axis") % x.ndim, node.inputs[1].ndim
        return axis if axis < t else None if axis < t + rank else axis - rank + 1
    # a reshape that adds or drops axes of length 1 only (x[0], x[None]): the others in order
    kept = [k for k, d in enumerate(node.shape) if d != 1]
    before = [k for k, d in enumerate(x.shape) if d != 1]
    if axis not in kept or [node.shape[k] for k in kept] != [x.shape[k] for k in before]:
        return None
    return before[kept.index(axis)]


def located(err: RuntimeCheckFailed, node) -> TdslRuntimeError:
    """The TdslRuntimeError of a check that failed at `node` in the reference interpreter."""
    if err.check is None:
        return TdslRuntimeError(str(err), node.loc)
    operand, axis = failure_site(node, err.axis)
    message = check_message(err.check, node.op, err.value, axis, err.length) + check_place(err.check, operand, node.loc)
    return TdslRuntimeError(message, node.loc, value=err.value, axis=axis, length=err.length, operand=operand)
