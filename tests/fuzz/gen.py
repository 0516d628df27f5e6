"""The program generator: hostile names, elementwise ops, reductions, matmul, whole programs and grads."""
from __future__ import annotations

import random
import re
from dataclasses import replace

import numpy as np

from .tree import (ARITH, broadcast, CALL_FORM, COMPARE, lit, make_elementwise, matmul_shape, Node, NP,
    NP_BINARY, NP_UNARY, numeric, numpy_dtype, Param, PREDICATES, Program, REDUCTIONS, render_program,
    SIZE_VARS, transposed, tup, UNARY_ARITH, UNARY_FLOAT)
from .oracle import _reduce
from .shapes import mk_create, mk_index, mk_join, mk_layout, mk_take
from .sec12 import const_node, grad12, MAKERS12


SEC12 = 0.4   # fraction of programs that draw section 12's makers too (drawn apart: other programs stay as before)


def uses_sec12(seed: int) -> bool:
    """Whether program `seed` draws section 12's builtins (from its own random stream)."""
    return random.Random(seed ^ 0x5EC12).random() < SEC12


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
    internal = sorted(set(re.findall(r"\b(?:x\d+|t\d+|v\d+|q\d+|n|m|k|y)\b", body)))
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


INT_LITERALS = (0, 1, 2, 3, 5, -1, -2, -7, 100)


FLOAT_LITERALS = (0.5, 2.0, -1.5, 1e-3, 3.0, -0.0, 0.0, 1e10, 0.1, 100.0, 2.5e-8, -7.25)


class Gen:
    """The state of one program being generated: parameters, values made so far, size minima."""

    def __init__(self, rng: random.Random, name: str):
        self.rng, self.name = rng, name
        self.vars = rng.sample(SIZE_VARS, rng.randint(1, 3))
        self.params, self.pool, self.min_size, self.count = [], [], {}, 0
        self.sec12 = False   # section 12: its makers, and the constants inf, nan, pi, e among literals

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
        if self.sec12 and context in ("f32", "f64") and self.chance(0.1):
            return const_node(self)
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


MAKERS = ((mk_unary, 6), (mk_binary, 8), (mk_where, 1.5), (mk_clip, 1), (mk_cast, 1.5), (mk_reduce, 4),
          (mk_softmax, 1), (mk_matmul, 2), (mk_index, 5), (mk_layout, 3), (mk_join, 1.2), (mk_take, 1.2),
          (mk_create, 1.2))


def generate(seed: int, name: str = "f") -> Program:
    """A random well-typed program."""
    rng = random.Random(seed)
    g = Gen(rng, name)
    g.sec12 = uses_sec12(seed)
    for _ in range(rng.randint(1, 3)):
        dtype = rng.choice(["f32", "f64", "f64", "f32", "i32", "i64", "bool"])
        g.param(dtype, g.shape())
    made = []
    # swarm testing: each program draws from a few kinds of op, so those meet each other often
    swarm = rng.sample(MAKERS, rng.randint(2, 5))
    if g.sec12:
        swarm += rng.sample(MAKERS12, rng.randint(1, 3))
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


SMOOTH = ("sin", "cos", "tanh", "sigmoid", "softplus", "atan", "erf", "sinh", "exp", "square")


KINKED = ("relu", "abs")


GRAD_LITERALS = (0.5, 2.0, -1.5, 3.0, 0.1, 1, 2, -1)   # moderate: finite differences stay accurate


def generate_grad(seed: int, name: str = "f") -> Program:
    """A float scalar of smooth ops (sometimes one kink) and its gradient with respect to x0."""
    rng = random.Random(seed)
    g = Gen(rng, name)
    g.sec12 = uses_sec12(seed)
    g.vars = ["n", "m"][: rng.randint(1, 2)]
    dtype = "f32" if rng.random() < 0.2 else "f64"
    x = g.param(dtype, tuple(g.vars))
    if rng.random() < 0.5:
        g.param(dtype, (g.vars[-1],))
    smooth = True
    for _ in range(rng.randint(1, 5)):
        a = g.pick()
        choice = rng.random()
        node = None
        if g.sec12 and a.dtype == x.dtype and random.Random(seed * 31 + len(g.pool)).random() < 0.45:
            node, ok = grad12(g, a)
            smooth &= ok
        if node is not None:
            pass
        elif choice < 0.4 or a.dtype != x.dtype:
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
