"""Which values of a function split along a chunked size variable, and how (docs/dask.md).

`analyse(graph, var)` gives every value a `Role`: invariant (it reads nothing chunked), local
(blockwise along `var`: each chunk of it is a function of the same chunk of its inputs) or
global (`var` reduced away; it is known after the pass that computes its reduction), or raises
an `Obstacle` naming the first value that reads across chunks. lang/chunked.py turns the roles
into the generated functions of the split.
"""
from __future__ import annotations

from dataclasses import dataclass

from .dims import Dim, shape_size, shape_str
from .errors import Location
from .graph import REGION_OPS, FunctionGraph, Node, Param, subgraphs, toposort
from .ops import OPS


@dataclass(frozen=True)
class Role:
    """How one value splits: `kind` invariant | local | global; `level` the pass that computes it
    (a global: whose combine makes it known); `axis` a local value's chunked axis; `reduction`
    a global computed from partial states (the op whose partials combine)."""

    kind: str
    level: int = 0
    axis: int | None = None
    reduction: str | None = None


INVARIANT = Role("invariant")


class Obstacle(Exception):
    """A value that cannot be computed chunk by chunk along the variable."""

    def __init__(self, node: Node | None, reason: str, loc: Location | None = None):
        super().__init__(reason)
        self.node, self.reason = node, reason
        self.loc = loc if loc is not None else (node.loc if node is not None else None)

    def where(self) -> str:
        """`file:line` of the value (its source line), or '' when it has none."""
        if self.loc is None:
            return ""
        return f"{self.loc.file}:{self.loc.line}"


def analyse(graph: FunctionGraph, var: str) -> dict[Node, Role]:
    """The role of every value of `graph` that its results need when `var` is chunked; raises
    Obstacle at the first value (in graph order) that cannot be split."""
    roles: dict[Node, Role] = {}
    for p in graph.params:
        chunk_axis(p.shape, var, None, f"the parameter {p.name}: {p.type_str}", p.loc)
    _analyse_into(list(graph.outputs) + list(graph.effects), roles, var)
    return roles


def _analyse_into(roots: list[Node], roles: dict, var: str) -> None:
    """Roles of `roots` and what they read. A fused reduction (`fusion`) reads only its input
    when that input is chunked along an axis it reduces; otherwise its own inputs are analysed."""
    for node in toposort(roots, key=_same, leaf=lambda n: n in roles or fusion(n) is not None):
        if node in roles:
            continue
        found = fusion(node)
        if found:
            _analyse_into([found[1]], roles, var)
            rx = roles[found[1]]
            if rx.kind == "local" and rx.axis in node.attr("axes") and _countable(found[1], node.attr("axes"), var):
                roles[node] = Role("global", rx.level, reduction=found[0])
                continue
            _analyse_into(list(node.inputs), roles, var)
        roles[node] = _role(node, [roles[i] for i in node.inputs], var)


def _same(node: Node) -> Node:
    """toposort's key: a node is told apart by its value, as the roles' dict does."""
    return node


def live(graph: FunctionGraph, roles: dict) -> list[Node]:
    """The values the split computes, in graph order (a fused reduction reads only its input)."""
    order: list[Node] = []
    done: set = set()

    def visit(roots: list[Node]) -> None:
        for node in toposort(roots, key=_same, leaf=lambda n: n in done or roles[n].reduction in FUSED):
            if node in done:
                continue
            if roles[node].reduction in FUSED:
                visit([fusion(node)[1]])
            done.add(node)
            order.append(node)
    visit(list(graph.outputs))
    return order


# Reductions whose builtins take two passes over the data, fused into one state per chunk:
# var's sum of squared deviations (count, mean, sum of squares about the mean: Chan's parallel
# moments) and logsumexp's or softmax's sum of exponentials (the max and the sum about it).
FUSED = ("moments", "sumexp")

# How two partial states of each splittable reduction combine (an elementwise op of the table).
COMBINE = {"sum": "add", "prod": "mul", "max": "maximum", "min": "minimum", "any": "or", "all": "and",
           "matmul": "add", "moments": "parallel moments", "sumexp": "rescaled sums"}


def fusion(node: Node) -> tuple[str, Node] | None:
    """("moments", x) for sum(square(x - sum(x, A, keepdims) / count), A), ("sumexp", x) for
    sum(exp(x - where(isfinite(m), m, 0)), A, keepdims) with m = max(x, A, keepdims); else None."""
    if node.op != "sum" or not node.inputs or node.inputs[0].op not in ("square", "exp"):
        return None
    inner = node.inputs[0].inputs[0]
    if inner.op != "sub":
        return None
    x, center = inner.inputs
    axes = node.attr("axes")
    if node.inputs[0].op == "square" and center.op == "div" and center.inputs[0].op == "sum":
        total = center.inputs[0]
        count = shape_size(tuple(x.shape[a] for a in axes))
        if total.inputs[0] == x and total.attr("axes") == axes and total.attr("keepdims") \
                and x.dtype.startswith("f") and _dim_value(center.inputs[1]) == count:   # the mean itself
            return ("moments", x)
    if node.inputs[0].op == "exp" and node.attr("keepdims") and center.op == "where" \
            and center.inputs[0].op == "isfinite" and _dim_value(center.inputs[2]) == Dim.of(0):
        top = center.inputs[1]
        if center.inputs[0].inputs[0] == top and top.op == "max" and top.inputs[0] == x \
                and top.attr("axes") == axes and top.attr("keepdims"):
            return ("sumexp", x)
    return None


def _dim_value(node: Node) -> Dim | None:
    """The dim expression a scalar node computes (a size, a count: `f64(n * d)`), or None."""
    if node.op == "cast" or (node.op == "reshape" and not node.shape):
        return _dim_value(node.inputs[0])
    if node.op == "sizevar":
        return Dim.of(node.attr("name"))
    if node.op == "const" and not node.shape:
        value = node.attr("value")
        return Dim.of(int(value)) if isinstance(value, (int, float)) and float(value).is_integer() else None
    if node.op in ("add", "mul", "floordiv"):
        a, b = (_dim_value(i) for i in node.inputs)
        if a is None or b is None:
            return None
        if node.op == "floordiv":
            return a // b.const if b.is_const and b.const > 0 else None
        return a + b if node.op == "add" else a * b
    return None


def _countable(x: Node, axes, var: str) -> bool:
    """Whether a chunk's element count over `axes` can be written (literal or size-variable dims)."""
    return all(x.shape[a].is_const or x.shape[a] == Dim.of(str(x.shape[a])) for a in axes)


def chunk_axis(shape, var: str, node: Node | None, what: str, loc=None) -> int | None:
    """The one axis of `shape` that is `var` (None if no dim mentions it); Obstacle if `var` is
    part of a dim expression or names two axes."""
    mentions = [a for a, d in enumerate(shape) if var in d.variables()]
    if not mentions:
        return None
    if len(mentions) > 1 or shape[mentions[0]] != Dim.of(var):
        raise Obstacle(node, f"{what} has {var} in {shape_str(shape)}: chunks of {var} would not be "
                             f"chunks of it", loc)
    return mentions[0]


def _role(node: Node, ins: list[Role], var: str) -> Role:
    if node.op == "param":
        axis = chunk_axis(node.shape, var, node, f"the parameter {node.attr('name')}")
        return INVARIANT if axis is None else Role("local", 0, axis)
    locals_ = [(i, r) for i, r in zip(node.inputs, ins) if r.kind == "local"]
    globals_ = [r.level for r in ins if r.kind == "global"]
    if node.op in REGION_OPS:
        region = node.attr("region")
        if locals_ or any(_mentions(g, var) for g in [*region.graphs, *_nested(region)]):
            level = max([r.level for _, r in locals_] + [g + 1 for g in globals_], default=0)
            return Role("local", level, _region_axis(node, var))
    if not locals_ and not any(var in d.variables() for d in node.shape):
        return Role("global", max(globals_)) if globals_ else INVARIANT
    level = max([r.level for _, r in locals_] + [g + 1 for g in globals_], default=0)
    axis = _local_axis(node, locals_, var)
    if isinstance(axis, str):   # a reduction over the chunked axis: partial states
        return Role("global", locals_[0][1].level, reduction=axis)
    if chunk_axis(node.shape, var, node, f"the {node.op}") != axis:
        raise Obstacle(node, f"{node.op} moves the chunked axis {var}")
    return Role("local", level, axis)


def _nested(region) -> list[FunctionGraph]:
    return [sub for g in region.graphs for sub in subgraphs(g)]


def _mentions(graph: FunctionGraph, var: str) -> bool:
    """Whether a loop or branch body reads `var`: as a value, or in a shape."""
    shapes = [p.shape for p in graph.params] + [n.shape for n in toposort(graph.outputs)]
    return any(var in d.variables() for shape in shapes for d in shape) or any(
        n.op == "sizevar" and n.attr("name") == var for n in toposort(graph.outputs))


def _region_axis(node: Node, var: str) -> int:
    """The chunked axis of a result of a loop or branch that reads chunked values: it is blockwise
    when each of its bodies is (no reduction over `var`, no read of `var`'s value or positions)
    and the result keeps its chunked axis; else Obstacle at the loop's line."""
    region, k = node.attr("region"), node.attr("result")
    where = region.loc or node.loc
    outputs = []
    for graph in region.graphs:
        roles: dict[Node, Role] = {}
        _analyse_into(list(graph.outputs) + list(graph.effects), roles, var)
        for n, role in roles.items():
            if role.kind == "global":
                raise Obstacle(node, f"a {region.kind} whose body reduces over {var} (each iteration "
                                     f"needs every chunk)", where)
            if (n.op == "sizevar" and n.attr("name") == var) or (n.op == "iota" and n.shape[0] == Dim.of(var)):
                raise Obstacle(node, f"a {region.kind} whose body reads the value or positions of {var}", where)
        outputs.append(roles[graph.outputs[k]] if region.kind != "while" or graph is region.body else None)
    axis = chunk_axis(node.shape, var, node, f"result {k} of the {region.kind}", where)
    if axis is None or any(r is not None and (r.kind, r.axis) != ("local", axis) for r in outputs):
        raise Obstacle(node, f"a {region.kind} whose result {k} is not blockwise along {var}", where)
    return axis


def _local_axis(node: Node, locals_: list, var: str):
    """The chunked axis of a value computed from local inputs, or the name of the reduction whose
    partial states it is; Obstacle when it reads across chunks."""
    op, kind = node.op, OPS[node.op].kind
    first = locals_[0][1].axis if locals_ else None
    if kind in ("elementwise", "cast"):
        axes = {r.axis + node.ndim - i.ndim for i, r in locals_}
        if len(axes) != 1:
            raise Obstacle(node, f"{op} pairs different positions along {var} (an outer product)")
        return axes.pop()
    if op == "broadcast":
        if locals_:
            return first + node.ndim - locals_[0][0].ndim
        return chunk_axis(node.shape, var, node, "the broadcast")
    if op == "iota":
        return 0
    if op == "transpose":
        return node.attr("perm").index(first)
    if op == "reshape":
        x = node.inputs[0]
        out = chunk_axis(node.shape, var, node, "the reshape")
        if out is None or shape_size(x.shape[:first]) != shape_size(node.shape[:out]):
            raise Obstacle(node, f"a reshape that merges {var} with other axes")
        return out
    if op == "slice":
        start, step, length = (node.attr(k)[first] for k in ("starts", "steps", "shape"))
        if Dim.of(start) != Dim.of(0) or step != 1 or Dim.of(length) != Dim.of(var):
            raise Obstacle(node, f"a slice along {var} (it reads across chunk boundaries)")
        return first
    if kind == "reduce":
        axes = node.attr("axes")
        if first in axes:
            return op
        return first if node.attr("keepdims") else first - sum(a < first for a in axes)
    if kind == "argreduce":
        axis = node.attr("axis")
        if axis is None and node.inputs[0].ndim == 1:
            return op                 # the flat index of a vector is its index
        if axis is None:
            raise Obstacle(node, f"{op} over all axes of a matrix with {var} chunked (give an axis)")
        if axis == first:
            return op
        return first if node.attr("keepdims") or axis > first else first - 1
    if op == "matmul":
        return _matmul_axis(node, locals_, var)
    if op == "take":
        return _take_axis(node, locals_, var)
    if op == "update":
        return _update_axis(node, locals_, var)
    if op == "concat" or kind == "ordering":   # blockwise when along another axis than var's
        axes = {r.axis for _, r in locals_}
        if len(locals_) != len(node.inputs) or len(axes) != 1 or node.attr("axis") == first:
            raise Obstacle(node, f"a concat along {var}" if op == "concat"
                           else f"{op} along {var} (it reads the whole axis)")
        return first
    raise Obstacle(node, f"{op} reading values along {var}")


def _matmul_axis(node: Node, locals_: list, var: str):
    a, b = node.inputs
    axes = {id(i): r.axis for i, r in locals_}
    aa, ab, nd = axes.get(id(a)), axes.get(id(b)), node.ndim
    if aa is not None and ab is not None and aa == ab and aa < nd - 2:
        return aa                     # a batch axis of both
    if aa == nd - 1 and ab == nd - 2:
        return "matmul"               # contracted: partial products, summed
    if aa == nd - 2 and ab is None:
        return nd - 2                 # rows of a
    if ab == nd - 1 and aa is None:
        return nd - 1                 # columns of b
    raise Obstacle(node, f"a matmul that pairs different positions along {var}")


def _take_axis(node: Node, locals_: list, var: str):
    x, idx = node.inputs
    axis = node.attr("axis")
    axes = {id(i): r.axis for i, r in locals_}
    if id(x) in axes and id(idx) not in axes and axes[id(x)] != axis:   # other rows of a chunk
        return axes[id(x)] if axes[id(x)] < axis else axes[id(x)] + idx.ndim - 1
    if id(idx) in axes and id(x) not in axes:                           # a table read by chunked indices
        return axis + axes[id(idx)]
    raise Obstacle(node, f"take reading across chunks of {var}")



def roles_of_param(p: Param, var: str) -> bool:
    """Whether parameter `p` is chunked along `var` (one of its axes is `var`)."""
    return any(var in d.variables() for d in p.shape)


def _update_axis(node: Node, locals_: list, var: str) -> int:
    """An indexed update is blockwise when its region keeps all of `var` (`hs[t] = h`, `x[:, 1] = 0`)
    and the new values are the same chunk (or hold no `var`: broadcast to every chunk)."""
    x, v = node.inputs
    axis = chunk_axis(node.shape, var, node, "the update")
    start, step, length = (node.attr(k)[axis] for k in ("starts", "steps", "shape"))
    v_axis = {id(i): r.axis for i, r in locals_}.get(id(v))
    keeps = Dim.of(start) == Dim.of(0) and step == 1 and Dim.of(length) == Dim.of(var) and \
        not any(var in Dim.of(check[1]).variables() for check in node.attr("checks") or ())
    if not keeps or (v_axis is not None and v_axis != axis + v.ndim - x.ndim):
        raise Obstacle(node, f"an indexed update of part of {var} (it writes across chunks)")
    return axis


def pass_states(exported: list[Node], roles: dict, level: int) -> list[Node]:
    """The reductions of pass `level` that its exported globals are computed from, in graph order."""
    def leaf(n: Node) -> bool:
        r = roles[n]
        return r.kind != "global" or r.reduction is not None or r.level != level
    return [n for n in toposort(exported, leaf=leaf)
            if roles[n].kind == "global" and roles[n].reduction and roles[n].level == level]
