"""Reverse-mode automatic differentiation on the typed graph: `grad` (section 7).

The gradient rule of each op lives in its op-table entry (`Op.grad` in ops.py): a
function of a `GradContext` returning one adjoint per input (None: no gradient).
This module walks the graph backwards from the cost, calls those rules, sums the
contributions of every user of a node, and fits each one to its input's shape
(summing over broadcast axes) and dtype. Every node it builds goes through the
infer.py builders and carries the location of the `grad` call.
"""
from __future__ import annotations

from . import builtins, infer
from .dims import Dim, shape_size
from .dtypes import is_float
from .errors import Location, TdslTypeError
from .graph import REGION_OPS, Node, region_results, toposort
from .ops import OPS


def _node(value, loc: Location | None) -> Node:
    if isinstance(value, Sym):
        return value.node
    return builtins.as_node(value, loc)


class Sym:
    """A node with Python operators that build typed nodes at one fixed location."""

    __slots__ = ("node", "loc")

    def __init__(self, node: Node, loc: Location | None):
        self.node, self.loc = node, loc

    @property
    def shape(self):
        return self.node.shape

    @property
    def dtype(self) -> str:
        return self.node.dtype

    def apply(self, op: str, *others, reflected: bool = False) -> "Sym":
        operands = [self.node] + [_node(o, self.loc) for o in others]
        if reflected:
            operands.reverse()
        return Sym(infer.elementwise(op, operands, self.loc), self.loc)

    def __add__(self, o): return self.apply("add", o)
    def __radd__(self, o): return self.apply("add", o, reflected=True)
    def __sub__(self, o): return self.apply("sub", o)
    def __rsub__(self, o): return self.apply("sub", o, reflected=True)
    def __mul__(self, o): return self.apply("mul", o)
    def __rmul__(self, o): return self.apply("mul", o, reflected=True)
    def __truediv__(self, o): return self.apply("div", o)
    def __rtruediv__(self, o): return self.apply("div", o, reflected=True)
    def __floordiv__(self, o): return self.apply("floordiv", o)
    def __mod__(self, o): return self.apply("mod", o)
    def __pow__(self, o): return self.apply("pow", o)
    def __neg__(self): return self.apply("neg")
    def __gt__(self, o): return self.apply("gt", o)
    def __ge__(self, o): return self.apply("ge", o)
    def __lt__(self, o): return self.apply("lt", o)
    def __le__(self, o): return self.apply("le", o)
    def __and__(self, o): return self.apply("and", o)

    def eq(self, o) -> "Sym":
        return self.apply("eq", o)


class GradContext:
    """What a gradient rule sees: the forward node, its adjoint `g`, and builders.

    `x`, `y`, `z` are the node's inputs and `out` the node itself, as `Sym`s;
    `ctx.exp(v)` (any elementwise op name) builds that op. The methods below
    hold the rules of the reductions and layout ops, which need more than a line.
    """

    def __init__(self, node: Node, g: Node, loc: Location | None):
        self.node, self.loc = node, loc
        self.out, self.g = Sym(node, loc), Sym(g, loc)
        ins = [Sym(i, loc) for i in node.inputs] + [None] * 3
        self.x, self.y, self.z = ins[:3]

    def __getattr__(self, name: str):
        if name in OPS and OPS[name].kind == "elementwise":
            return lambda *xs: Sym(infer.elementwise(name, [_node(x, self.loc) for x in xs], self.loc), self.loc)
        raise AttributeError(name)

    # -- small builders ---------------------------------------------------------------
    def sym(self, node: Node) -> Sym:
        return Sym(node, self.loc)

    def where(self, cond, a, b) -> Sym:
        return self.sym(infer.elementwise("where", [_node(cond, self.loc), _node(a, self.loc),
                                                    _node(b, self.loc)], self.loc))

    def cast(self, v, dtype: str) -> Sym:
        return self.sym(infer.cast(_node(v, self.loc), dtype, self.loc))

    def reshape(self, v, shape) -> Sym:
        return self.sym(infer.reshape(_node(v, self.loc), tuple(shape), self.loc))

    def reduce(self, op: str, v, axes, keepdims: bool = True) -> Sym:
        return self.sym(infer.reduce(op, _node(v, self.loc), axes, keepdims, self.loc))

    def zeros(self, shape, dtype: str) -> Sym:
        return self.sym(_zeros(shape, dtype, self.loc))

    def unbroadcast(self, v, shape) -> Sym:
        return self.sym(unbroadcast(_node(v, self.loc), tuple(shape), self.loc))

    def dim(self, d: Dim) -> Sym:
        return self.sym(builtins.dim_node(Dim.of(d), self.loc))

    def split(self, wins: Sym, ties: Sym) -> Sym:
        """The adjoint where an operand wins, half of it where it ties (maximum, minimum)."""
        return self.where(wins, self.g, self.where(ties, self.g * 0.5, 0))

    # -- reductions ------------------------------------------------------------------
    def kept(self, v: Sym) -> Sym:
        """A reduction's result (or adjoint) with the reduced axes kept as 1s."""
        axes, x = self.node.attr("axes"), self.node.inputs[0]
        return self.reshape(v, tuple(Dim.of(1) if i in axes else d for i, d in enumerate(x.shape)))

    def spread(self, v: Sym) -> Sym:
        """A reduction's adjoint, broadcast back over the reduced axes."""
        return self.sym(infer.broadcast_to(self.kept(v).node, self.node.inputs[0].shape, self.loc))

    def prod_rule(self) -> list:
        """d prod / d x_i = product of the others, exact when some x are zero."""
        x, axes = self.x, self.node.attr("axes")
        zero = x.eq(0)
        safe = self.where(zero, 1, x)
        nonzero_prod = self.reduce("prod", safe, axes)
        zeros = self.reduce("sum", self.cast(zero, x.dtype), axes)
        others = self.where(zero, self.where(zeros.eq(1), nonzero_prod, 0),
                            self.where(zeros.eq(0), nonzero_prod / safe, 0))
        return [others * self.spread(self.g)]

    def extreme_rule(self) -> list:
        """max/min: tied elements share the adjoint equally."""
        x, axes = self.x, self.node.attr("axes")
        hit = x.eq(self.kept(self.out))
        count = self.reduce("sum", self.cast(hit, x.dtype), axes)
        return [self.where(hit, self.kept(self.g) / count, 0)]

    # -- layout ops ------------------------------------------------------------------
    def transpose_rule(self) -> list:
        perm = self.node.attr("perm")
        inverse = tuple(perm.index(i) for i in range(len(perm)))
        return [self.sym(infer.transpose(self.g.node, inverse, self.loc))]

    def slice_rule(self) -> list:
        """Scatter the adjoint back into zeros of the input's shape, one axis at a time."""
        x = self.node.inputs[0]
        cur = self.g
        for axis, (dim, start, step, length) in enumerate(zip(
                x.shape, self.node.attr("starts"), self.node.attr("steps"), self.node.attr("shape"))):
            if start == 0 and step == 1 and length == dim:
                continue
            if step == 1:
                cur = self._pad(cur, axis, Dim.of(start), dim - start - length)
            else:
                cur = self._strided_scatter(cur, axis, dim, Dim.of(start), step, Dim.of(length))
        return [cur]

    def _pad(self, v: Sym, axis: int, before: Dim, after: Dim) -> Sym:
        pieces = []
        for size in (before, None, after):
            if size is None:
                pieces.append(v.node)
            elif not (size.is_const and size.const == 0):
                shape = v.shape[:axis] + (size,) + v.shape[axis + 1:]
                pieces.append(self.zeros(shape, v.dtype).node)
        return self.sym(infer.concat(pieces, axis, self.loc))

    def _strided_scatter(self, v: Sym, axis: int, dim: Dim, start: Dim, step: int, length: Dim) -> Sym:
        """Element j of the axis takes v[(j - start) / step] when that is a whole index in range, else 0.

        v gets one zero appended along the axis so that every j has an index to gather.
        """
        padded = self._pad(v, axis, Dim.of(0), Dim.of(1))
        offset = self.sym(infer.iota(dim, self.loc)) - self.dim(start)
        index = offset // step
        valid = (offset % step).eq(0) & (index >= 0) & (index < self.dim(length))
        chosen = self.where(valid, index, self.dim(length))
        return self.sym(infer.take(padded.node, chosen.node, axis, self.loc))

    def concat_rule(self) -> list:
        """Each input's part of the adjoint: a slice where .tdsl can write one, else a gather."""
        g, axis, offset, out = self.g.node, self.node.attr("axis"), Dim.of(0), []
        for x in self.node.inputs:
            length = x.shape[axis]
            if _literal_bound(offset, g.shape[axis]) and _literal_bound(offset + length, g.shape[axis]):
                starts = tuple(offset if i == axis else Dim.of(0) for i in range(x.ndim))
                out.append(self.sym(infer.slice_node(g, starts, (1,) * x.ndim, x.shape, (), self.loc)))
            else:
                index = self.sym(infer.iota(length, self.loc)) + self.dim(offset)
                out.append(self.sym(infer.take(g, index.node, axis, self.loc)))
            offset = offset + length
        return out

    def take_rule(self) -> list:
        """A scatter-add of the adjoint into zeros of x's shape: memory the size of x, never
        len(idx) x len(x) (section 12)."""
        from .scatter import scatter_add_node
        x, idx = self.node.inputs
        zeros = _zeros(x.shape, self.g.dtype, self.loc)
        return [self.sym(scatter_add_node(zeros, idx, self.g.node, self.node.attr("axis"), self.loc)), None]

    def take_along_rule(self) -> list:
        """take_along_axis: the adjoint added back along the axis (put_along_axis with add)."""
        from .scatter import scatter_add_node
        x, idx = self.node.inputs
        zeros = _zeros(x.shape, self.g.dtype, self.loc)
        return [self.sym(scatter_add_node(zeros, idx, self.g.node, self.node.attr("axis"), self.loc,
                                          along=True)), None]

    def scatter_add_rule(self) -> list:
        """x passes the adjoint through; each value gets the adjoint at the position it was added to."""
        from .scatter import take_along_node
        x, idx, v = self.node.inputs
        axis = self.node.attr("axis")
        if self.node.attr("along"):
            part = take_along_node(self.g.node, idx, axis, self.loc)
        else:
            part = infer.take(self.g.node, idx, axis, self.loc)
        return [self.g, None, self.sym(part)]

    def update_rule(self) -> list:
        """The overwritten region of x gets no gradient; v gets the adjoint of its region."""
        from .updates import _write_region
        x, v = self.node.inputs
        starts, steps, shape = (self.node.attr(k) for k in ("starts", "steps", "shape"))
        cleared = _write_region(self.g.node, starts, steps, shape, (), _zeros(v.shape, self.g.dtype, self.loc),
                                self.loc)
        part = infer.slice_node(self.g.node, starts, steps, shape, (), self.loc)
        return [self.sym(cleared), self.sym(part)]

    def scatter_rule(self) -> list:
        """x keeps the adjoint where nothing was written; each written position's adjoint goes to
        the write that won it (the last, as in NumPy's assignment), the others get none."""
        from .updates import scatter
        x, idx, v = self.node.inputs
        axis = self.node.attr("axis")
        cleared = scatter(self.g.node, idx, _zeros(v.shape, self.g.dtype, self.loc), axis, self.loc)
        count = shape_size(idx.shape)
        order = infer.reshape(infer.iota(count, self.loc), idx.shape, self.loc)
        base = _zeros((x.shape[axis],), "i64", self.loc)
        winner = infer.take(scatter(base, idx, order, 0, self.loc), idx, 0, self.loc)
        won = infer.cast(infer.elementwise("eq", [winner, order], self.loc), self.g.dtype, self.loc)
        won = infer.reshape(won, (Dim.of(1),) * axis + idx.shape + (Dim.of(1),) * (x.ndim - axis - 1), self.loc)
        part = infer.elementwise("mul", [infer.take(self.g.node, idx, axis, self.loc), won], self.loc)
        return [self.sym(cleared), None, self.sym(part)]

    def matmul_rule(self) -> list:
        a, b = self.node.inputs
        return [self.sym(infer.matmul(self.g.node, _swap(b, self.loc), self.loc)),
                self.sym(infer.matmul(_swap(a, self.loc), self.g.node, self.loc))]


def _literal_bound(bound: Dim, dim: Dim) -> bool:
    """Whether .tdsl can write `bound` on an axis of size `dim`: a literal, or counted from the end."""
    from_end = bound - dim
    return bound.is_const or (from_end.is_const and from_end.const <= 0)


def _zeros(shape, dtype: str, loc) -> Node:
    zero = infer.const(0.0 if is_float(dtype) else 0, dtype, (), False, loc)
    return infer.broadcast_to(zero, tuple(shape), loc)


def _swap(x: Node, loc) -> Node:
    """x with its last two axes exchanged."""
    perm = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return infer.transpose(x, perm, loc)


# -- the reverse sweep -------------------------------------------------------------------

def _structural_toposort(roots) -> list[Node]:
    """Nodes reachable from the roots, inputs first, each structural value once."""
    return toposort([roots] if isinstance(roots, Node) else list(roots), key=lambda n: n)


def unbroadcast(v: Node, shape: tuple, loc) -> Node:
    """Sum `v` over the axes that broadcasting added or stretched, giving `shape`."""
    extra = v.ndim - len(shape)
    axes = list(range(extra)) + [extra + i for i, d in enumerate(shape)
                                 if d == 1 and v.shape[extra + i] != 1]
    if axes:
        v = infer.reduce("sum", v, tuple(axes), True, loc)
    return infer.reshape(v, shape, loc)


def _fit(adjoint, target: Node, loc) -> Node:
    """An adjoint contribution with the shape and dtype of the node it belongs to."""
    v = _node(adjoint, loc)
    if v.shape != target.shape:
        v = unbroadcast(v, target.shape, loc)
    return infer.cast(v, target.dtype, loc)


def _total(parts: list[Node], loc) -> Node:
    total = parts[0]
    for part in parts[1:]:
        total = infer.elementwise("add", [total, part], loc)
    return total


def _check(cost, wrt, loc) -> None:
    if not isinstance(cost, Node):
        what = "a tuple" if isinstance(cost, tuple) else repr(cost)
        raise TdslTypeError(f"grad needs a single value to differentiate, not {what}", loc)
    if not is_float(cost.dtype) or cost.ndim != 0:
        raise TdslTypeError(f"grad needs a float scalar to differentiate, not {cost.type_str}", loc,
                            hint="reduce it first, e.g. sum(...) or mean(...)" if cost.ndim else None)
    if not wrt:
        raise TdslTypeError("grad needs at least one variable: grad(y, v1, v2, ...)", loc)
    for v in wrt:
        if not isinstance(v, Node):
            raise TdslTypeError("each variable of grad must be a parameter or a bound name", loc)
        if v.op == "const":
            raise TdslTypeError("cannot differentiate with respect to a literal", loc)
        if not is_float(v.dtype):
            raise TdslTypeError(f"cannot differentiate with respect to a {v.type_str} value; "
                                "gradients need float variables", loc)


def grad_nodes(cost: Node, wrt: list[Node], loc: Location | None) -> list[Node]:
    """d cost / d v for each v of `wrt`: each of v's shape and dtype."""
    _check(cost, wrt, loc)
    if all(v.op == "param" for v in wrt):
        # Differentiate the stabilized form (log(sigmoid) -> -softplus(-x), ...): its
        # gradient is stable too. Not for bound names, whose nodes a rewrite may merge.
        from .rewrite import simplify_node
        cost = simplify_node(cost)
    grads = vjp([cost], [infer.const(1.0, cost.dtype, (), False, loc)], wrt, loc)
    return [builtins._strong(g if g is not None else _zeros(v.shape, v.dtype, loc), loc)
            for g, v in zip(grads, wrt)]


def vjp(roots: list[Node], seeds: list[Node], wrt: list[Node], loc: Location | None) -> list[Node | None]:
    """The vector-Jacobian product: with adjoint `seeds[k]` for `roots[k]`, the adjoint of each
    node of `wrt` (None where it does not depend on the roots)."""
    order = _structural_toposort(roots)
    targets = set(wrt)
    depends = set()
    for node in order:
        if node in targets or any(i in depends for i in node.inputs):
            depends.add(node)
    adjoints: dict[Node, list[Node]] = {}
    for root, seed in zip(roots, seeds):
        if root in depends and seed is not None:
            adjoints.setdefault(root, []).append(_fit(seed, root, loc))
    # the results of one loop or branch are differentiated together, at the first of them in
    # `order` (every user of any of them comes later in `order`, so all their adjoints are in)
    first_result: dict = {}
    results: dict = {}
    for node in order:
        if node.op in REGION_OPS:
            key = region_results(node)
            first_result.setdefault(key, node)
            results.setdefault(key, {})[node.attr("result")] = node
    for node in reversed(order):
        if node.op in REGION_OPS:
            key = region_results(node)
            if first_result[key] is not node:
                continue
            siblings = results[key]
            gs = {k: _total(adjoints[n], loc) for k, n in siblings.items() if n in adjoints}
            if not gs or node not in depends:
                continue
            parts = region_vjp(node, gs, loc, [i in depends and is_float(i.dtype) for i in node.inputs])
        elif node not in adjoints or not node.inputs:
            continue
        else:
            rule = OPS[node.op].grad
            if rule is None:
                raise TdslTypeError(f"cannot differentiate through '{node.op}'", node.loc or loc)
            parts = rule(GradContext(node, _total(adjoints[node], loc), loc))
        for inp, part in zip(node.inputs, parts):
            if part is not None and inp in depends and is_float(inp.dtype):
                adjoints.setdefault(inp, []).append(_fit(part, inp, loc))
    return [_total(adjoints[v], loc) if v in adjoints else None for v in wrt]


def region_vjp(node: Node, gs: dict, loc: Location | None, needed: list[bool]) -> list:
    from .control_grad import region_vjp as rule
    return rule(node, gs, loc, needed)


def grad_call(args: list, kwargs: dict, loc: Location | None):
    """`grad(y, v1, v2, ...)` in .tdsl: one gradient, or a tuple of them."""
    if kwargs:
        raise TdslTypeError(f"grad takes no keyword arguments (got '{next(iter(kwargs))}')", loc)
    if not args:
        raise TdslTypeError("grad needs a value and at least one variable: grad(y, v1, ...)", loc)
    grads = grad_nodes(args[0], list(args[1:]), loc)
    return grads[0] if len(grads) == 1 else tuple(grads)
