"""The fuzzer's programs: dtypes, symbolic dims, the expression tree, the op tables, rendering as .tdsl."""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field

import numpy as np


NP = {"bool": np.dtype(np.bool_), "i32": np.dtype(np.int32), "i64": np.dtype(np.int64),
      "f32": np.dtype(np.float32), "f64": np.dtype(np.float64)}


TDSL_NAME = {v: k for k, v in NP.items()}


SIZE_VARS = ("n", "m", "k")


SMALL_SIZES = (0, 1, 1, 2, 2, 3, 3, 4, 5, 7, 8, 9, 13)   # 8 and up: vector bodies and their tails


# Past TDSL_BLOCK (128, blocked float sums), the 16x16 / 32-row matmul tiles and strips,
# and, for the product of two dims, TDSL_PARALLEL_MIN (65536 points: OpenMP threads).
LARGE_SIZES = (17, 33, 129, 257, 300)


MAX_ELEMENTS = 200_000


# Open tdsl bugs the control-flow generator steps around (or the oracle does not judge), so that a campaign
# finds new ones; each should have a strict xfail in tests/test_fuzz_findings.py. Keys the code knows:
# "weak-carried-read-before-rebound", "strided-window-past-the-end", "c-undeclared-in-control-flow",
# "dead-update-errors", "dead-branch-condition-errors", "weak-carried-stays-weak-after-loop" (all fixed, in
# 054074d and c86300d, so none is set: every program is judged).
# None open ("scatter-add-values-alias-carried", x = scatter_add(x, i, x) in a loop: finding 11, fixed).
AVOID: set[str] = set()


class Expected(Exception):
    """The program must fail on this input (NumPy raises, or tdsl's contract requires an error)."""


class Unspecified(Exception):
    """The contract leaves this input's result unspecified (a float-to-int cast of NaN, ...)."""


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
    values_in: tuple | None = None   # an integer parameter drawn from [lo, hi] (a loop bound)


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
    stmts: list | None = None       # section 11: the body as statements (then `result` is the returned value)
    consts: dict = field(default_factory=dict)   # module consts the body uses (name -> int)
    no_large: bool = False          # never called with large sizes (nested loops, per-step arrays)

    @property
    def shown(self) -> str:
        """The function's name in the source."""
        return self.rename.get(self.name, self.name)


@dataclass(eq=False)
class Stmt:
    """A section-11 statement of a control-flow program."""

    kind: str                     # assign | aug | set | for | while | if
    name: str | None = None       # the name bound (assign, aug, set) or the loop variable (for)
    expr: Node | None = None      # the value (assign, aug, set) or the condition (while, if)
    op: str | None = None         # aug and set: the operator of `+=`, `-=`, ...
    region: Node | None = None    # set: the subscripted target (a dindex node of the name)
    bounds: tuple = ()            # for: the range arguments (Nodes)
    body: list = field(default_factory=list)
    orelse: list = field(default_factory=list)   # if: the else branch (one if statement: `else if`)
    carried: dict = field(default_factory=dict)  # for/while: weak names bound before -> the dtype they carry


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
    if node.weak:   # a weak value of its kind: a Python bool, int or float
        return {"bool": True, "i64": 1, "f64": 1.0}.get(node.dtype, 1)
    return np.ones((1,) * len(node.shape), NP[node.dtype])


def numpy_dtype(fn, *kids):
    """The dtype NumPy gives `fn` of these operands, (dtype, weak); None when NumPy refuses."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(*[dummy(k) for k in kids])
    except (TypeError, ValueError, OverflowError):
        return None
    if type(out) in (bool, int, float):   # not numpy.float64, a subclass of float: a strong scalar
        return ("bool" if isinstance(out, bool) else "i64" if isinstance(out, int) else "f64"), True
    name = TDSL_NAME.get(np.asarray(out).dtype)
    return (name, False) if name else None


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


def dsub_text(sub, kids) -> str:
    """One subscript of a dindex node as .tdsl text (run-time parts are kids' texts)."""
    kind = sub[0]
    if kind == "i":
        return lit_text(sub[1]) if sub[1] >= 0 else f"-{-sub[1]}"
    if kind in ("d", "a"):
        return kids[sub[1]]
    if kind == "ds":
        j = kids[sub[1]]
        return f"{j}:{j} + {sub[2]}" + (f":{sub[3]}" if sub[3] else "")
    if kind == "none":
        return "None"
    if kind == "ell":
        return "..."
    start, stop, step = (("" if v is None else str(v)) for v in sub[1:4])
    return f"{start}:{stop}" + (f":{step}" if step else "")


GUARD_REDUCE = {None: "{}", "any": "any({})", "all": "all({})"}


RENDER = {
    "lit": lambda n, k: lit_text(n.attrs["value"]),
    "var": lambda n, k: n.attrs["name"],
    "dindex": lambda n, k: f"{k[0]}[{', '.join(dsub_text(s, k) for s in n.attrs['subs'])}]",
    "guard": lambda n, k: GUARD_REDUCE[n.attrs["red"]].format(f"({k[0]} {n.attrs['cmp']} {k[1]})"),
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


def render_stmts(stmts: list, expr, indent: str = "    ") -> list:
    """Statements as .tdsl lines."""
    out = []
    for s in stmts:
        if s.kind == "assign":
            out.append(f"{indent}{s.name} = {expr(s.expr)}")
        elif s.kind == "aug":   # the value is `name op e`: e is its second operand
            out.append(f"{indent}{s.name} {s.op}= {expr(s.expr.kids[1])}")
        elif s.kind == "set":   # with an operator, the value is `region op e`
            out.append(f"{indent}{expr(s.region)} {s.op or ''}= {expr(s.expr.kids[1] if s.op else s.expr)}")
        elif s.kind == "for":
            out.append(f"{indent}for {s.name} in range({', '.join(expr(b) for b in s.bounds)}) {{")
            out += render_stmts(s.body, expr, indent + "    ") + [indent + "}"]
        elif s.kind == "while":
            out.append(f"{indent}while {expr(s.expr)} {{")
            out += render_stmts(s.body, expr, indent + "    ") + [indent + "}"]
        else:
            out.append(f"{indent}if {expr(s.expr)} {{")
            out += render_stmts(s.body, expr, indent + "    ")
            node = s
            while len(node.orelse) == 1 and node.orelse[0].kind == "if" and node.orelse[0].name == "elif":
                node = node.orelse[0]
                out.append(f"{indent}}} else if {expr(node.expr)} {{")
                out += render_stmts(node.body, expr, indent + "    ")
            if node.orelse:
                out.append(f"{indent}}} else {{")
                out += render_stmts(node.orelse, expr, indent + "    ")
            out.append(indent + "}")
    return out


def render_program(prog: Program) -> str:
    """The program as one .tdsl function."""
    lines, seen = [], set()
    if prog.stmts is not None:
        def flat(node: Node) -> str:
            return RENDER[node.op](node, [flat(k) for k in node.kids])
        lines = render_stmts(prog.stmts, flat)
        out = f"grad({prog.grad_of.attrs['name']}, {prog.params[0].name})" if prog.grad_of is not None \
            else flat(prog.result)
        params = ", ".join(f"{p.name}: {p.dtype}" + (f"[{', '.join(p.shape)}]" if p.shape else "")
                           for p in prog.params)
        body = "\n".join(lines + [f"    return {out}"])
        consts = "".join(f"const {c} = {v}\n" for c, v in prog.consts.items())
        text = f"{consts}fn {prog.name}({params}) {{\n{body}\n}}\n"
        if prog.rename:
            text = re.sub(r"\b(x\d+|t\d+|g\d+|v\d+|q\d+|n|m|k|y)\b",
                          lambda m: prog.rename.get(m.group(), m.group()), text)
        return text

    def expr(node: Node, top: bool = False) -> str:
        if node.op == "topk_part":   # a tuple statement `v, i = top_k(...)`, once per pair
            pair = node.kids[0]
            if id(pair) not in seen:
                seen.add(id(pair))
                text = expr(pair, True)
                lines.append(f"    {pair.attrs['names'][0]}, {pair.attrs['names'][1]} = {text}")
            if not node.name or top:
                return pair.attrs["names"][node.attrs["part"]]
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


def numeric(v: Node) -> bool:
    """Not bool: arithmetic takes it."""
    return v.dtype != "bool"


def make_elementwise(op: str, fn: str, kids: list, np_fn) -> Node | None:
    """An elementwise node of broadcast shape and NumPy's result dtype, or None when NumPy refuses."""
    shape = broadcast(*[k.shape for k in kids])
    typed = numpy_dtype(np_fn, *kids) if shape is not None else None
    if typed is None:
        return None
    # an operator of weak operands is weak, as Python's 1 + 2 is (NumPy's np.add(1, 2) is a strong np.int64);
    # a function call (exp, maximum, where, ...) of weak operands is strong, as NumPy's
    weak = all(k.weak for k in kids) if op == "bin" and fn not in CALL_FORM else typed[1]
    return Node(op, tuple(kids), {"fn": fn}, typed[0], shape, weak)


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


from .sec12 import RENDER12  # noqa: E402 -- section 12's ops render beside the others
RENDER.update(RENDER12)
