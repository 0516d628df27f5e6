"""Section-11 programs: for / while / if, indexed updates, augmented assignment, run-time indices and slices,
carried and local names, per-step outputs, and grads through loops, branches and updates.

A control-flow program is a list of statements (tree.Stmt) whose expressions are the generator's trees, over
leaves that name what a name holds at that point ("var" nodes, with the static dtype and shape tdsl gives it).
The oracle (oracle.run_stmts) runs the statements as Python with NumPy values: Python loops and ifs, copies
updated with NumPy's own `x[key] = v`, so repeated integer-array indices keep NumPy's last write and negative
indices count from the end. Every program is well typed by construction: a name rebound in a loop or branch
keeps its dtype and shape, a value written into an array casts safely to it.
"""
from __future__ import annotations

import random
from dataclasses import replace

import numpy as np

from .tree import (AVOID, broadcast, is_lit, is_simple, lit, make_elementwise, Node, NP, NP_BINARY, NP_UNARY, numeric,
    numpy_dtype, Program, Stmt)
from .gen import (define_size_vars, Gen, GRAD_LITERALS, mk_binary, mk_cast, mk_clip, mk_matmul, mk_reduce,
    mk_unary, mk_where, SMOOTH)
from .shapes import mk_index, mk_layout
from .gen import uses_sec12
from .sec12 import CONTROL_MAKERS12, mk_scatter


BOUNDED = ("tanh", "sin", "cos", "sigmoid", "atan", "erf")




class CGen(Gen):
    """The state of one control-flow program: what each name holds, the loops around, the consts."""

    def __init__(self, rng: random.Random, name: str):
        super().__init__(rng, name)
        self.scope = {}       # name -> the leaf of what it holds now
        self.readonly = set()  # names the current block must not rebind (weak values, loop variables)
        self.loops = []       # (loop variable's leaf, dim, offset, room): q - offset + r is in range of an axis
                              # `dim` for 0 <= r <= room
        self.consts = {}
        self.nvar = self.nloop = 0
        self.depth = 0
        self.nested = False
        self.rebound = []     # names rebound by statements (the current block's, stacked)
        self.grad = False
        self.promoted = set()  # weak names a loop made strong: every rebinding casts explicitly (see promote)
        self.hidden = {}       # names not read any more (hide_promoted), still possible results
        self.own = set()       # the names the loops being made (the enclosing ones too) promoted

    def fresh(self) -> str:
        self.nvar += 1
        return f"v{self.nvar}"

    def leaf(self, name: str, like: Node, weak: bool = False) -> Node:
        return Node("var", attrs={"name": name}, dtype=like.dtype, shape=like.shape, weak=weak)

    def bind(self, name: str, value: Node) -> None:
        self.scope[name] = self.leaf(name, value, weak=value.weak)
        if self.rebound:
            self.rebound[-1].add(name)

    def const(self, value: int) -> Node:
        name = f"K_{self.name}_{len(self.consts)}"
        self.consts[name] = value
        return Node("size", attrs={"name": name}, dtype="i64", weak=True)

    def operand(self, like: Node, numeric: bool) -> Node:
        """As Gen's, and sometimes a loop variable (a weak integer)."""
        loops = [q for q, *_ in self.loops]
        if numeric and loops and self.chance(0.15):
            return self.rng.choice(loops)
        return super().operand(like, numeric)

    def strong(self, pred=lambda v: True) -> list:
        return [v for v in self.scope.values() if not v.weak and pred(v)]


# ---------------------------------------------------------------------------------------------------------
# run-time indices

def sized(n: str) -> Node:
    return Node("size", attrs={"name": n}, dtype="i64", weak=True)


def binop(fn: str, a: Node, b: Node) -> Node:
    return make_elementwise("bin", fn, [a, b], NP_BINARY[fn])


def index_param(g: CGen, d: str) -> Node:
    """An integer scalar parameter, an index into an axis of length d (rarely out of range)."""
    return g.param(g.rng.choice(["i64", "i32"]), (), index_for=d)


def run_time_index(g: CGen, d: str) -> Node | None:
    """An integer scalar in range of an axis of length d (mostly): a loop variable moved, a parameter, argmax."""
    near = [(q, off) for q, dim, off, _ in g.loops if dim == d]
    choice = g.rng.random()
    if near and choice < 0.7:
        q, off = g.rng.choice(near)
        base = binop("-", q, lit(off)) if off else q
        form = g.rng.choice(["q", "q", "prev", "neg", "back"])
        if form == "prev":     # -1 at the first step: counts from the end
            return binop("-", base, lit(1))
        if form == "neg":      # -1, -2, ..., -d
            return binop("-", lit(-1), base)
        if form == "back" and is_simple(d):
            return binop("-", binop("-", sized(d), lit(1)), base)
        return base
    if choice < 0.85:
        vec = [v for v in g.strong(lambda v: v.shape == (d,) and numeric(v))]
        if vec:
            return Node("reduce", (g.rng.choice(vec),), {"fn": g.rng.choice(["argmax", "argmin"]), "axis": None,
                                                          "keepdims": False}, "i64", ())
    return index_param(g, d)


def region(g: CGen, x: Node, allow_array: bool = True):
    """A subscript of x for a gather or an update: (subs, kids, shape), with static, dim-expression and
    run-time indices and slices, and at most one integer array (combined with slices only)."""
    rank = len(x.shape)
    count = g.rng.randint(1, rank)
    subs, kids, out = [], [], []
    array_at = g.rng.randrange(count) if allow_array and g.chance(0.15) else None
    for axis in range(count):
        d = x.shape[axis]
        if axis == array_at:
            idx = g.param(g.rng.choice(["i64", "i32"]), (g.rng.choice(g.vars + ["3"]),), index_for=d)
            kids.append(idx)
            subs.append(("a", len(kids)))
            out += list(idx.shape)
            continue
        kind = g.rng.choice(["all", "dyn", "dyn", "dyn", "static", "dims", "window"])
        if array_at is not None and kind in ("dyn", "static"):
            kind = "all"
        if kind == "dyn":
            j = run_time_index(g, d)
            if j is not None:
                kids.append(j)
                subs.append(("d", len(kids)))
                continue
            kind = "all"
        if kind == "window":   # x[j:j + 2]: run-time start, length a dim
            near = [(q, room) for q, dim, off, room in g.loops if dim == d and off == 0]
            j, room = g.rng.choice(near) if near and g.chance(0.7) else (index_param(g, d), 1)
            step = 2 if g.chance(0.2) else None
            length = g.rng.choice(["1", "2"]) if room or step else "1"
            kids.append(j)
            dim = length if step is None else str((int(length) + 1) // 2)
            subs.append(("ds", len(kids), length, step, dim))
            out.append(dim)
            continue
        if kind == "static" and is_simple(d) and d != "0":
            i = g.rng.choice([0, 1, -1, -2])
            if is_lit(d):
                i = max(-int(d), min(i, int(d) - 1))
            g.need(d, i + 1 if i >= 0 else -i)
            subs.append(("i", i))
            continue
        if kind == "dims" and d in g.vars:
            form = g.rng.choice(["inner", "upper", "lower", "rev", "every2"])
            sub, dim = {"inner": (("s", 1, f"{d} - 1", None), f"{d} - 2"),
                        "upper": (("s", f"{d} // 2", None, None), f"{d} - {d} // 2"),
                        "lower": (("s", None, f"{d} // 2", None), f"{d} // 2"),
                        "rev": (("s", None, None, -1), d),
                        "every2": (("s", None, None, 2), f"({d} + 1) // 2")}[form]
            if form == "inner":
                g.need(d, 2)
            subs.append(sub + (dim,))
            out.append(dim)
            continue
        subs.append(("s", None, None, None, d))
        out.append(d)
    out += list(x.shape[count:])
    return subs, kids, tuple(out)


def mk_dyn(g: CGen, x: Node | None = None) -> Node | None:
    """A gather with run-time indices or slices (or an integer array)."""
    x = x or g.pick(lambda v: v.shape)
    if x is None:
        return None
    subs, kids, shape = region(g, x)
    return Node("dindex", (x, *kids), {"subs": subs}, x.dtype, shape)


# ---------------------------------------------------------------------------------------------------------
# expressions

EXPR_MAKERS = ((mk_unary, 4), (mk_binary, 8), (mk_where, 1), (mk_clip, 1), (mk_reduce, 3), (mk_index, 1.5),
               (mk_matmul, 1), (mk_dyn, 4), (mk_cast, 0.4), (mk_layout, 0.5))


def expression(g: CGen, steps: int | None = None) -> Node | None:
    """A value over the names in scope (the generic makers, plus run-time subscripts)."""
    g.pool = g.strong()
    made = None
    makers = EXPR_MAKERS + (CONTROL_MAKERS12 if g.sec12 else ())
    for _ in range(steps or g.rng.randint(1, 3)):
        maker = g.rng.choices([m for m, _ in makers], [w for _, w in makers])[0]
        node = maker(g)
        if node is not None:
            g.pool.append(node)
            made = node
    return made or g.pick()


def as_scalar(g: CGen, e: Node) -> Node:
    fn = g.rng.choice(["sum", "mean", "max", "min"] if e.dtype != "bool" else ["any", "all"])
    typed = make_reduce_dtype(fn, e)
    return Node("reduce", (e,), {"fn": fn, "axis": None, "keepdims": False}, typed, ())


def make_reduce_dtype(fn: str, e: Node) -> str:
    probe = getattr(np, fn)(np.ones((1,) * len(e.shape), NP[e.dtype]))
    return {v: k for k, v in NP.items()}[np.asarray(probe).dtype]


def cast(node: Node, dtype: str, always: bool = False) -> Node:
    if node.dtype == dtype and not node.weak and not always:
        return node
    return Node("cast", (node,), {"to": dtype}, dtype, node.shape)


def fit(g: CGen, t: Node, e: Node | None, combine: float = 0.6) -> Node:
    """A value of exactly t's dtype and shape made of e (and usually of t itself): what rebinding t may take."""
    if e is None:
        e = g.literal(t.dtype)
    if broadcast(e.shape, t.shape) != t.shape:
        e = as_scalar(g, e)
    if t.dtype == "bool":
        if e.dtype != "bool":
            e = binop(g.rng.choice([">", "<="]), e, lit(0))
        node = binop(g.rng.choice(["and", "or", "!=", "=="]), t, e) if e.shape != t.shape or g.chance(combine) \
            else e
        return node if node.dtype == "bool" and node.shape == t.shape else cast(binop("or", t, e), "bool")
    if e.dtype == "bool":
        e = cast(e, t.dtype)
    if e.shape != t.shape or g.chance(combine):
        fn = g.rng.choice(["+", "-", "*", "maximum", "minimum"] + (["mix"] * 3 if t.dtype.startswith("f") else []))
        if fn == "mix":   # bounded: values stay moderate over many iterations
            node = make_elementwise("un", g.rng.choice(BOUNDED),
                                    [binop("+", binop("*", t, lit(g.rng.choice([0.5, -0.9, 1.5]))), e)],
                                    NP_UNARY["tanh"])
            node = node or binop("+", t, e)
        else:
            node = binop(fn, t, e) if g.chance(0.5) or fn in ("+", "*", "maximum", "minimum") else binop(fn, e, t)
    else:
        node = e
    if node is None or node.shape != t.shape:
        node = binop("+", t, as_scalar(g, e))
    # a name that was weak before its loop: the body's first pass sees it weak, so only a cast makes the
    # value's dtype the same in every pass (tdsl's, and the generator's, which sees it strong)
    return cast(node, t.dtype, always=t.attrs.get("name") in g.promoted)


def condition(g: CGen) -> Node:
    """A bool scalar that decides a branch: a comparison of data (guarded), of integers, or a combination."""
    def atom():
        loops = [q for q, *_ in g.loops]
        if loops and g.chance(0.25):
            q = g.rng.choice(loops)
            return binop(g.rng.choice(["==", "<", ">="]), binop("%", q, lit(g.rng.choice([2, 3]))), lit(0)) \
                if g.chance(0.5) else binop(g.rng.choice(["<", ">"]), q, lit(g.rng.choice([1, 2])))
        e = expression(g, g.rng.randint(0, 2))
        if e is None or e.dtype == "bool":
            if e is not None and g.chance(0.7):
                return Node("reduce", (e,), {"fn": g.rng.choice(["any", "all"]), "axis": None, "keepdims": False},
                            "bool", ()) if e.shape else e
            e = lit(1.0)
        red = None if not e.shape or g.chance(0.5) else g.rng.choice(["any", "all"])
        if red is None and e.shape:
            e = as_scalar(g, e)
        if e.dtype == "bool":
            e = cast(e, "i64")
        cmp = g.rng.choice(["<", ">", "<=", ">="] + (["==", "!="] if not e.dtype.startswith("f") else []))
        threshold = lit(g.rng.choice([0, 1, -1, 0.5, 2.5] if e.dtype.startswith("f") else [0, 1, 2, -1]))
        return Node("guard", (e, threshold), {"cmp": cmp, "red": red}, "bool", ())
    c = atom()
    if g.chance(0.3):
        c = binop(g.rng.choice(["and", "or"]), c, atom())
    if g.chance(0.15):
        c = Node("not", (c,), dtype="bool", shape=())
    return c


# ---------------------------------------------------------------------------------------------------------
# statements

def writable(g: CGen, pred=lambda v: True) -> list:
    return [v for n, v in g.scope.items() if n not in g.readonly and not v.weak and pred(v)]


def st_rebind(g: CGen) -> Stmt | None:
    """name = value of the same type, or name op= value."""
    names = writable(g)
    if not names:
        return None
    t = g.rng.choice(names)
    name = t.attrs["name"]
    e = expression(g, g.rng.randint(1, 2))
    if e is not None and g.chance(0.4) and t.dtype != "bool" and e.dtype != "bool":
        op = g.rng.choice(["+", "-", "*", "/", "//", "%", "**"] + (["@"] if len(t.shape) >= 1 else []))
        if op == "@":
            sq = g.strong(lambda v: len(v.shape) == 2 and v.shape[0] == v.shape[1] == t.shape[-1] and numeric(v))
            typed = numpy_dtype(np.matmul, t, sq[0]) if sq else None
            if typed and typed[0] == t.dtype and not typed[1]:
                node = Node("matmul", (t, sq[0]), {"form": "@"}, t.dtype, t.shape)
                return _rebind(g, Stmt("aug", name, node, op="@"), t)
        else:
            if broadcast(e.shape, t.shape) != t.shape:
                e = as_scalar(g, e)
            if name in g.promoted:
                e = cast(e, t.dtype, always=True)
            node = binop(op, t, e)
            if node is not None and node.dtype == t.dtype and node.shape == t.shape and not node.weak:
                return _rebind(g, Stmt("aug", name, node, op=op), t)
    return _rebind(g, Stmt("assign", name, fit(g, t, e)), t)


def st_scatter(g: CGen) -> Stmt | None:
    """name = scatter_add(name, idx, values, axis): section 12's update of a (carried) value, done in place."""
    names = writable(g, lambda v: v.shape and v.dtype != "bool")
    if not names:
        return None
    t = g.rng.choice(names)
    g.pool = g.strong()
    node = mk_scatter(g, t)
    return _rebind(g, Stmt("assign", t.attrs["name"], node), t) if node is not None else None


def _rebind(g: CGen, stmt: Stmt, t: Node) -> Stmt:
    g.bind(stmt.name, t)
    return stmt


def st_local(g: CGen) -> Stmt | None:
    """A new name (local when inside a loop or branch)."""
    e = expression(g)
    if e is None or e.weak:
        return None
    name = g.fresh()
    g.bind(name, e)
    return Stmt("assign", name, e)


def st_set(g: CGen) -> Stmt | None:
    """x[subs] = v or x[subs] op= v: static, dim-expression, run-time indices and slices, integer arrays."""
    arrays = writable(g, lambda v: v.shape)
    if not arrays:
        return None
    x = g.rng.choice(arrays)
    name = x.attrs["name"]
    subs, kids, shape = region(g, x)
    target = Node("dindex", (x, *kids), {"subs": subs}, x.dtype, shape)
    slot = Node("var", attrs={"name": "_"}, dtype=x.dtype, shape=shape)   # stands for the region in fit
    e = expression(g, g.rng.randint(0, 2)) if g.chance(0.8) else None
    op = g.rng.choice([None, None, "+", "-", "*", "/"]) if x.dtype != "bool" else None
    value = None
    if op is not None and e is not None and e.dtype != "bool":
        if broadcast(e.shape, shape) != shape:
            e = as_scalar(g, e)
        node = binop(op, target, e)
        if node is not None and node.shape == shape and np.can_cast(NP[node.dtype], NP[x.dtype], "same_kind") \
                and np.can_cast(NP[node.dtype], NP[x.dtype], "safe"):
            value = node
    if value is None:
        op = None
        if e is not None and e.weak and g.chance(0.5) and x.dtype != "bool" and e.dtype != "bool" \
                and (x.dtype.startswith("f") or e.dtype != "f64"):
            value = e   # a weak value takes the array's dtype
        else:
            value = fit(g, slot, e, combine=0.3)
            value = _replace_slot(value, slot, target)
    if "index-before-run-time-index-in-update" in AVOID:
        kinds = [sub[0] for sub in subs]
        if any(k in ("d", "ds") and any(j in ("i", "d") for j in kinds[:i]) for i, k in enumerate(kinds)):
            return None
    g.bind(name, x)
    return Stmt("set", name, value, op=op, region=target)


def _replace_slot(node: Node, slot: Node, target: Node) -> Node:
    if node is slot:
        return target
    kids = tuple(_replace_slot(k, slot, target) for k in node.kids)
    return node if all(a is b for a, b in zip(kids, node.kids)) else replace(node, kids=kids)


def body(g: CGen, count: int) -> list:
    """A block's statements."""
    out = []
    makers = [(st_rebind, 4), (st_set, 4), (st_local, 2)] + ([(st_scatter, 1.5)] if g.sec12 else [])
    if g.depth < 2:
        makers += [(st_for, 1.5), (st_if, 1.5), (st_while, 0.7)]
    for _ in range(count):
        maker = g.rng.choices([m for m, _ in makers], [w for _, w in makers])[0]
        stmt = maker(g)
        if stmt is not None:
            out += stmt if isinstance(stmt, list) else [stmt]
    return out


def block(g: CGen, count: int, loop: bool = False):
    """Statements in a new scope: names first bound there are local; returns (stmts, names rebound)."""
    before = dict(g.scope)
    g.depth += 1
    g.rebound.append(set())
    if loop:
        g.nested |= g.depth > 1
    stmts = body(g, count)
    rebound = g.rebound.pop()
    g.depth -= 1
    g.scope = {n: (g.leaf(n, v, v.weak) if n in rebound else v) for n, v in before.items()}
    if g.rebound:
        g.rebound[-1] |= rebound & set(before)
    if loop:
        hide_promoted(g, keep=g.own)
    return stmts, rebound & set(before)


def promote(g: CGen) -> dict:
    """Weak scalars the loop will accumulate into: each becomes the strong dtype its body gives it."""
    out = {}
    for name, v in list(g.scope.items()):
        if v.weak and not v.shape and name.startswith("v") and name not in g.readonly and g.chance(0.8):
            floats = [p.dtype for p in g.strong(lambda p: p.dtype.startswith("f"))]
            ints = [p.dtype for p in g.strong(lambda p: p.dtype in ("i32", "i64"))]
            choices = floats + (ints if v.dtype == "i64" else [])
            if choices:
                out[name] = g.rng.choice(choices)
                g.promoted.add(name)
                g.scope[name] = Node("var", attrs={"name": name}, dtype=out[name], shape=())
    return out


def accumulate(g: CGen, name: str) -> Stmt:
    """name += something of its dtype (a weak accumulator's first strong value)."""
    t = g.scope[name]
    e = expression(g, 1)
    if e is None or e.dtype == "bool":
        e = lit(1)
    if e.shape:
        e = as_scalar(g, e)
    g.bind(name, t)
    return Stmt("aug", name, binop("+", t, cast(e, t.dtype, always=True)), op="+")


def loop_body(g: CGen, stmt: Stmt, count: int) -> Stmt:
    carried = promote(g)
    weak = {n for n, v in g.scope.items() if v.weak}
    saved, own = set(g.readonly), g.own
    g.readonly |= weak
    g.own = own | set(carried)
    stmts, rebound = block(g, count, loop=True)
    g.readonly, g.own = saved, own
    first = "weak-carried-read-before-rebound" in AVOID
    for name in carried:
        if name not in rebound or first:
            g.rebound.append(set())
            made = accumulate(g, name)
            stmts = [made] + stmts if first else stmts + [made]
            g.rebound.pop()
    stmt.body = stmts + stmt.body
    stmt.carried = carried
    for name in carried:
        g.scope[name] = Node("var", attrs={"name": name}, dtype=carried[name], shape=())
        if g.rebound:
            g.rebound[-1].add(name)
    hide_promoted(g, keep=g.own)
    return stmt


def hide_promoted(g: CGen, keep: set = frozenset()) -> None:
    """While fuzz finding 8 is open (a weak value a loop made strong still promotes as a weak one after the
    loop), such a name is not read after its loop; it may still be the result."""
    if "weak-carried-stays-weak-after-loop" in AVOID:
        for name in g.promoted - set(keep):
            if name in g.scope:
                g.hidden[name] = Node("var", attrs={"name": name}, dtype=g.scope[name].dtype, shape=())
                del g.scope[name]


def loop_bounds(g: CGen):
    """range(...) arguments and what the loop variable indexes: (bounds, dim, offset, room)."""
    dims = sorted({d for v in g.scope.values() for d in v.shape if d in g.vars})
    if dims and g.chance(0.8):
        d = g.rng.choice(dims)
        n = sized(d)
        form = g.rng.choice(["A", "A", "B", "C", "D", "E", "F"])
        if form == "A":
            return (n,), d, 0, 0
        if form == "B":
            return (binop("-", n, lit(1)), lit(-1), lit(-1) if g.chance(0.7) else g.const(-1)), d, 0, 0
        if form == "C":
            return (lit(1), n), d, 0, 0
        if form == "D":
            step = g.rng.choice([-1, -2])
            return (n, lit(0), lit(step) if g.chance(0.6) else g.const(step)), d, 1, 0
        if form == "E":
            step = g.rng.choice([2, 3])
            return (lit(0), n, lit(step) if g.chance(0.6) else g.const(step)), d, 0, 0
        return (binop("-", n, lit(1)),), d, 0, 1
    choice = g.rng.random()
    if choice < 0.4:
        return (lit(g.rng.randint(0, 4)),), None, 0, 0
    if choice < 0.6:
        p = g.param(g.rng.choice(["i64", "i32"]), ())
        g.params[-1].values_in = (-2, 5)
        g.pool.remove(p) if p in g.pool else None
        return ((p,) if g.chance(0.6) else (lit(-1), p)), None, 0, 0
    if choice < 0.8:
        return (g.const(g.rng.randint(1, 4)),), None, 0, 0
    d = g.rng.choice(g.vars)
    return (binop("+", binop("//", sized(d), lit(2)), lit(1)),), None, 0, 0


def st_for(g: CGen) -> Stmt | None:
    bounds, d, off, room = loop_bounds(g)
    g.nloop += 1
    q = f"q{g.nloop}"
    leaf = Node("var", attrs={"name": q}, dtype="i64", weak=True)
    stmt = Stmt("for", q, bounds=bounds)
    prologue = []
    # the per-step pattern: hs = zeros((d, ...)); ... hs[q] = h
    steps = [v for v in writable(g, lambda v: v.dtype.startswith("f") and len(v.shape) <= 1
                                 and v.attrs.get("name") not in g.promoted)]
    per_step = d is not None and off == 0 and steps and g.chance(0.4)
    if per_step:
        h = g.rng.choice(steps)
        hs = g.fresh()
        made = Node("zeros", (), {"fn": "zeros", "dt": h.dtype}, h.dtype, (d,) + h.shape)
        prologue.append(Stmt("assign", hs, made))
        g.bind(hs, made)
    g.scope[q] = leaf
    g.readonly.add(q)
    if d is not None:
        g.loops.append((leaf, d, off, room))
    loop_body(g, stmt, g.rng.randint(1, 4))
    if per_step:
        g.rebound.append(set())
        cur = g.scope[h.attrs["name"]]
        sub = ("d", 1)
        target = Node("dindex", (g.scope[hs], leaf), {"subs": [sub]}, cur.dtype, cur.shape)
        stmt.body.append(Stmt("set", hs, g.leaf(h.attrs["name"], cur), region=target))
        g.rebound.pop()
    if d is not None:
        g.loops.pop()
    g.readonly.discard(q)
    g.scope.pop(q, None)
    return prologue + [stmt] if prologue else stmt


def st_while(g: CGen) -> list | None:
    """A while loop bounded by a counter carried alongside: c < limit [and a data condition]."""
    c = g.fresh()
    strong = g.chance(0.3)
    init = cast(lit(0), "i32") if strong else lit(0)
    dims = [d for v in g.scope.values() for d in v.shape if d in g.vars]
    choice = g.rng.random()
    if dims and choice < 0.4:
        d = g.rng.choice(dims)
        limit = sized(d)
    elif choice < 0.6:
        limit, d = g.param("i64", ()), None
        g.params[-1].values_in = (-1, 5)
        g.pool.remove(limit) if limit in g.pool else None
    else:
        limit, d = lit(g.rng.randint(0, 5)), None
    first = Stmt("assign", c, init)
    g.bind(c, init)
    counter = g.scope[c]
    stop = binop("<", counter, limit)
    g.readonly.add(c)
    if d is not None and not strong:
        g.loops.append((counter, d, 0, 0))
    data = condition(g) if g.chance(0.5) else None
    cond = binop("and", stop, data) if data is not None else stop
    stmt = Stmt("while", expr=cond)
    loop_body(g, stmt, g.rng.randint(1, 3))
    if d is not None and not strong:
        g.loops.pop()
    g.readonly.discard(c)
    step = binop("+", counter, lit(1))
    stmt.body.append(Stmt("aug", c, step, op="+") if g.chance(0.6) else Stmt("assign", c, step))
    return [first, stmt]


def st_if(g: CGen) -> Stmt | None:
    """if / else if / else on scalar conditions; sometimes a name first bound on every path."""
    weak = {n for n, v in g.scope.items() if v.weak}
    saved = set(g.readonly)
    g.readonly |= weak
    paths = g.rng.choice([1, 2, 2, 3])   # if; if/else; if/else if/else
    has_else = paths >= 2 and g.chance(0.85)
    common = None
    typed = writable(g)
    if has_else and typed and g.chance(0.35):
        common = (g.fresh(), g.rng.choice(typed))
    stmts, conds = [], []
    for p in range(paths):
        if p < paths - 1 or not has_else:
            conds.append(condition(g))
        part, _ = block(g, g.rng.randint(1, 2))
        if common is not None:
            t = g.scope[common[1].attrs["name"]]
            part.append(Stmt("assign", common[0], fit(g, t, expression(g, 1))))
        stmts.append(part)
    g.readonly = saved
    if common is not None:
        g.bind(common[0], common[1])
    # else-if chain: nest from the end
    tail = stmts[-1] if has_else else []
    chain = conds[::-1]
    parts = stmts[:len(conds)][::-1]
    node = None
    for cond, part in zip(chain, parts):
        node = Stmt("if", "elif", cond, body=part, orelse=[node] if node is not None else tail)
    node.name = None
    return node


def initial(g: CGen) -> list:
    """Names bound before the control flow: copies of parameters, weak accumulators, fresh arrays."""
    out = []
    for _ in range(g.rng.randint(1, 3)):
        choice = g.rng.random()
        arrays = g.strong(lambda v: v.shape)
        name = g.fresh()
        if choice < 0.35 and arrays:
            e = g.rng.choice(arrays)
            if g.chance(0.4):
                g.pool = g.strong()
                e = mk_unary(g) or e
        elif choice < 0.7:
            e = lit(g.rng.choice([0.0, 0.0, 1.0, 0, 0, -1.5]))
        elif arrays:
            like = g.rng.choice(arrays)
            e = Node("zeros", (), {"fn": g.rng.choice(["zeros", "ones"]), "dt": like.dtype}, like.dtype, like.shape) \
                if g.chance(0.5) else Node("like", (like,), {"fn": "zeros_like"}, like.dtype, like.shape)
        else:
            continue
        out.append(Stmt("assign", name, e))
        g.bind(name, e)
    return out


def rename_params(g: CGen) -> None:
    """Parameters in scope by their names (leaves); rebinding one makes it a var."""
    for p in g.params:
        if p.index_for is None and p.values_in is None and p.name not in g.scope:
            g.scope[p.name] = Node("param", attrs={"name": p.name}, dtype=p.dtype, shape=p.shape)


def generate_control(seed: int, name: str = "f") -> Program:
    """A random well-typed program with loops, branches and updates."""
    rng = random.Random(seed)
    g = CGen(rng, name)
    g.sec12 = uses_sec12(seed)
    for i in range(rng.randint(1, 3)):
        dtype = rng.choice(["f32", "f64", "f64", "f32", "i32", "i64", "bool"] if i else ["f32", "f64"])
        shape = g.shape(max_rank=2)
        g.param(dtype, shape or (g.rng.choice(g.vars),))
    rename_params(g)
    stmts = initial(g)
    g.rebound.append(set())
    for _ in range(rng.randint(1, 3)):
        maker = rng.choices([st_for, st_while, st_if, st_set, st_rebind], [5, 1.5, 2, 1.5, 0.5])[0]
        made = maker(g)
        if made is not None:
            stmts += made if isinstance(made, list) else [made]
    changed = g.rebound.pop()
    visible = {**g.scope, **g.hidden}
    candidates = [v for n, v in visible.items() if n in changed] or list(g.scope.values())
    arrays = [v for v in candidates if v.shape]
    result = rng.choice(arrays if arrays and rng.random() < 0.7 else candidates)
    if rng.random() < 0.2:
        g.pool = g.strong()
        result = mk_reduce(g, x=result) if result.shape else result
    rank3 = any(len(v.shape) >= 3 for v in g.scope.values())
    prog = Program(name, g.params, result, dict(g.min_size), seed=seed, stmts=stmts, consts=dict(g.consts),
                   no_large=g.nested or rank3)
    define_size_vars(prog)
    return prog


# ---------------------------------------------------------------------------------------------------------
# grads through for, if and updates

def generate_control_grad(seed: int, name: str = "f") -> Program:
    """y, a float scalar computed through a for loop, branches and updates; the program returns grad(y, x0)."""
    rng = random.Random(seed)
    g = CGen(rng, name)
    g.grad = True
    g.vars = ["n", "m"][: rng.randint(1, 2)]
    dtype = "f32" if rng.random() < 0.2 else "f64"
    x = g.param(dtype, tuple(g.vars) if rng.random() < 0.5 else (g.vars[0],))
    w = g.param(dtype, (x.shape[-1],)) if rng.random() < 0.6 else None

    def smooth(a: Node) -> Node:
        return make_elementwise("un", rng.choice(SMOOTH[:6]), [a], NP_UNARY["tanh"])

    def mix(h: Node) -> Node:
        other = x if rng.random() < 0.6 or w is None else w
        form = rng.choice(["tanh", "scale", "prod", "smooth"])
        if form == "tanh":
            return make_elementwise("un", "tanh", [binop("+", binop("*", h, lit(rng.choice([0.5, 0.9, -0.7]))),
                                                         other)], np.tanh)
        if form == "scale":
            return binop("+", binop("*", h, lit(0.5)), binop("*", other, lit(rng.choice(GRAD_LITERALS))))
        if form == "prod":
            return binop("*", h, make_elementwise("un", "sigmoid", [other], NP_UNARY["sigmoid"]))
        return binop("+", smooth(h), binop("*", other, lit(0.1)))

    stmts = []
    h = "v1"
    start = rng.choice(["x", "tanh", "zeros"])
    hval = x if start == "x" else smooth(x) if start == "tanh" else Node("like", (x,), {"fn": "zeros_like"},
                                                                            dtype, x.shape)
    stmts.append(Stmt("assign", h, hval))
    hleaf = Node("var", attrs={"name": h}, dtype=dtype, shape=x.shape)
    acc = Node("var", attrs={"name": "v2"}, dtype=dtype, shape=())
    use_acc = rng.random() < 0.5
    if use_acc:
        stmts.append(Stmt("assign", "v2", lit(0.0)))
    d = g.vars[0]
    form = rng.choice(["size", "size", "lit", "const", "back", "step"])
    if form == "size":
        bounds, off = (sized(d),), 0
    elif form == "lit":
        bounds, off, d = (lit(rng.randint(0, 3)),), 0, None
    elif form == "const":
        bounds, off, d = (g.const(rng.randint(1, 3)),), 0, None
    elif form == "back":
        bounds, off = (binop("-", sized(d), lit(1)), lit(-1), lit(-1)), 0
    else:
        bounds, off = (lit(0), sized(d), lit(2)), 0
    q = Node("var", attrs={"name": "q1"}, dtype="i64", weak=True)
    loop = []
    per_step = d is not None and rng.random() < 0.4
    if per_step:   # one row per step: zeros((d, ...)) of x's dtype
        stmts.append(Stmt("assign", "v3", Node("zeros", (), {"fn": "zeros", "dt": dtype}, dtype, (d,) + x.shape)))
    loop.append(Stmt("assign", h, mix(hleaf)))
    if rng.random() < 0.4:   # a branch inside the loop
        cond = Node("guard", (Node("reduce", (hleaf,), {"fn": "sum", "axis": None, "keepdims": False}, dtype, ()),
                              lit(rng.choice([0, 0.5]))), {"cmp": rng.choice([">", "<"]), "red": None}, "bool", ()) \
            if rng.random() < 0.6 else binop("==", binop("%", q, lit(2)), lit(0))
        other = [Stmt("assign", h, smooth(hleaf))] if rng.random() < 0.7 else []
        loop.append(Stmt("if", None, cond, body=[Stmt("assign", h, binop("*", hleaf, lit(0.5)))], orelse=other))
    if d is not None and rng.random() < 0.4 and d == x.shape[0]:   # an update at the loop index
        sub = Node("dindex", (hleaf, q), {"subs": [("d", 1)]}, dtype, x.shape[1:])
        xrow = Node("dindex", (x, q), {"subs": [("d", 1)]}, dtype, x.shape[1:])
        loop.append(Stmt("set", h, binop(rng.choice(["*", "+"]), sub, smooth(xrow)), op=None, region=sub))
    if per_step:
        loop.append(Stmt("set", "v3", hleaf, region=Node("dindex", (Node("var", attrs={"name": "v3"}, dtype=dtype,
                                                                          shape=(d,) + x.shape), q),
                                                          {"subs": [("d", 1)]}, dtype, x.shape)))
    if use_acc:
        loop.append(Stmt("aug", "v2", binop("+", acc, Node("reduce", (binop("*", hleaf, x),),
                                                           {"fn": "sum", "axis": None, "keepdims": False}, dtype, ())),
                         op="+"))
    stmts.append(Stmt("for", "q1", bounds=bounds, body=loop, carried={"v2": dtype} if use_acc else {}))
    if rng.random() < 0.5:   # an update after the loop: static, run-time or integer-array index
        kind = rng.choice(["i", "d", "a"])
        if kind == "i":
            subs, kids, shape = [("i", 0)], (), x.shape[1:]
            g.need(x.shape[0], 1)
        elif kind == "d":
            j = index_param(g, x.shape[0])
            subs, kids, shape = [("d", 1)], (j,), x.shape[1:]
        else:
            idx = g.param("i64", (rng.choice(["3", g.vars[0]]),), index_for=x.shape[0])
            subs, kids, shape = [("a", 1)], (idx,), idx.shape + x.shape[1:]
        target = Node("dindex", (hleaf, *kids), {"subs": subs}, dtype, shape)
        value = binop("*", target, lit(2.0)) if rng.random() < 0.5 else smooth(target)
        stmts.append(Stmt("set", h, value, region=target))
    total = Node("reduce", (hleaf,), {"fn": rng.choice(["sum", "mean"]), "axis": None, "keepdims": False}, dtype, ())
    if use_acc:
        total = binop("+", total, acc)
    if per_step:
        hs = Node("var", attrs={"name": "v3"}, dtype=dtype, shape=(d,) + x.shape)
        total = binop("+", total, Node("reduce", (binop("*", hs, hs),), {"fn": "sum", "axis": None,
                                                                           "keepdims": False}, dtype, ()))
    stmts.append(Stmt("assign", "y", total))
    y = Node("var", attrs={"name": "y"}, dtype=dtype, shape=())
    prog = Program(name, g.params, y, dict(g.min_size), grad_of=y, smooth=True, seed=seed, stmts=stmts,
                   consts=dict(g.consts))
    return prog
