"""The typed symbolic graph: frozen nodes and the function graphs that hold them."""
from __future__ import annotations

import gc
import sys
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from .dims import Dim, shape_str
from .errors import Location, TdslTypeError

MAX_DIMS = 64   # NumPy's limit on the number of dimensions of an array


@dataclass(frozen=True, eq=False)
class Node:
    """One value: an op applied to input nodes, with its dtype and symbolic shape.

    `attrs` is a sorted tuple of (key, value) pairs so nodes hash and compare by
    structure; `loc` and `name` are carried along but take no part in equality.
    """

    op: str
    dtype: str
    shape: tuple[Dim, ...]
    inputs: tuple["Node", ...] = ()
    attrs: tuple[tuple[str, Any], ...] = ()
    weak: bool = False
    loc: Location | None = field(default=None, compare=False)
    name: str | None = field(default=None, compare=False)

    def __post_init__(self):
        if len(self.shape) > MAX_DIMS:   # checked here, once for every way of building a value
            raise TdslTypeError(f"a value can have at most {MAX_DIMS} dimensions (NumPy's limit), "
                                f"this one would have {len(self.shape)}", self.loc)
        # a literal compares by its exact bits: -0.0 is not 0.0, and a NaN equals itself
        attrs_key = _exact(self.attrs) if self.op == "const" else self.attrs
        object.__setattr__(self, "_attrs_key", attrs_key)
        key = (self.op, self.dtype, self.shape, self.inputs, attrs_key, self.weak)
        object.__setattr__(self, "_hash", hash(key))
        # Hash-consing: structurally equal nodes share one _Structure, so equality is one
        # identity test instead of a walk over the whole graph below (which made memo
        # lookups in the rewriter quadratic in the length of a program).
        object.__setattr__(self, "_structure", _intern(
            (self.op, self.dtype, self.shape, tuple(i._structure for i in self.inputs), attrs_key, self.weak)))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Node) and self._structure is other._structure)

    def __reduce__(self):
        # Rebuilt through the constructor, so an unpickled node is interned (and hashed) in
        # this process; pickle's loader is iterative, so long chains load without recursion.
        return (Node, (self.op, self.dtype, self.shape, self.inputs, self.attrs, self.weak, self.loc, self.name))

    def attr(self, key: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == key:
                return v
        return default

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def type_str(self) -> str:
        """The type as the language writes it: `f32[n, d]`."""
        return self.dtype + shape_str(self.shape)

    def with_name(self, name: str | None, loc: Location | None = None) -> "Node":
        """The same value labelled with a source name (and location)."""
        return Node(self.op, self.dtype, self.shape, self.inputs, self.attrs, self.weak,
                    loc or self.loc, name)

    def __repr__(self) -> str:
        label = f" {self.name}" if self.name else ""
        return f"<Node {self.op}{label}: {self.type_str}>"


class _Structure:
    """The identity of one structure of nodes: equal nodes hold the same instance."""

    __slots__ = ("__weakref__",)


_STRUCTURES: "weakref.WeakValueDictionary[tuple, _Structure]" = weakref.WeakValueDictionary()
_STRUCTURES_LOCK = threading.Lock()  # two threads compiling must not mint two identities


def _intern(key: tuple) -> _Structure:
    """The one _Structure for `key` (op, dtype, shape, input structures, attrs, weak)."""
    with _STRUCTURES_LOCK:
        found = _STRUCTURES.get(key)
        if found is None:
            found = _Structure()
            _STRUCTURES[key] = found
        return found


def _exact(value: Any) -> Any:
    if isinstance(value, float):
        return (float, value.hex())
    if isinstance(value, tuple):
        return tuple(_exact(v) for v in value)
    return value


def make_attrs(**attrs: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(attrs.items()))


@dataclass(frozen=True)
class Check:
    """A condition on size variables checked at call time: `dim >= 0` must hold."""

    dim: Dim
    message: str
    loc: Location | None = None


@dataclass(frozen=True)
class Param:
    name: str
    dtype: str
    shape: tuple[Dim, ...]
    loc: Location | None = None

    @property
    def type_str(self) -> str:
        return self.dtype + shape_str(self.shape)


@dataclass(frozen=True)
class FunctionGraph:
    """A checked function: parameters, results, and every named value for explain/trace."""

    name: str
    params: tuple[Param, ...]
    size_vars: tuple[str, ...]
    outputs: tuple[Node, ...]
    named: tuple[tuple[str, Node], ...] = ()
    checks: tuple[Check, ...] = ()
    tuple_result: bool = False
    loc: Location | None = None
    file: str = "<string>"
    effects: tuple[Node, ...] = ()   # loops and branches with no results whose bodies can fail

    @property
    def signature(self) -> str:
        params = ", ".join(f"{p.name}: {p.type_str}" for p in self.params)
        results = [o.type_str for o in self.outputs]
        ret = f"({', '.join(results)}{',' if len(results) == 1 else ''})" if self.tuple_result else results[0]
        return f"{self.name}({params}) -> {ret}"


def toposort(roots: Iterable[Node], key=id, leaf=None) -> list[Node]:
    """Every node reachable from `roots`, inputs before users, in a deterministic order.

    Nodes are told apart by `key` (`id`: each object once; the node itself: each structural
    value once); `leaf(node)`, if given, says where to stop (its inputs are not visited)."""
    order: list[Node] = []
    seen: set = set()
    for root in roots:
        if key(root) in seen:
            continue
        seen.add(key(root))
        stack: list[tuple[Node, Iterator[Node]]] = [(root, iter(() if leaf and leaf(root) else root.inputs))]
        while stack:
            node, it = stack[-1]
            child = next(it, None)
            if child is None:
                stack.pop()
                order.append(node)
            elif key(child) not in seen:
                seen.add(key(child))
                stack.append((child, iter(() if leaf and leaf(child) else child.inputs)))
    return order


@contextmanager
def deep_recursion(limit: int = 20000):
    """Long expression chains (autodiff makes them) nest deeply: elaborating, checking or
    lowering them recurses once per node, past Python's default limit."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_was_enabled = False


@contextmanager
def paused_gc():
    """Compiling allocates many small objects that all stay alive; Python's cyclic collector
    would rescan the growing heap again and again (a third of a long program's compile time)."""
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


REGION_OPS = ("for", "while", "if")


@dataclass(frozen=True)
class Region:
    """Control flow (section 11): the function graphs one `for`, `while` or `if` runs.

    `graphs` are (body,) for `for`, (cond, body) for `while` and (then, else) for `if`; all of
    one region take the same parameters: the carried values first (`carried` of them), then the
    captured ones (values of the enclosing scope the bodies read). A region node's inputs are
    (start, stop, carried..., captured...) for `for`, (carried..., captured...) for `while` and
    (pred, captured...) for `if`; each result of the region is a node of its own, `result` k.

    A `for` body sees its loop index as the size variable `index` when the range makes the
    index non-negative (so `x[i]` is a strided view), else as a weak i64 first parameter
    named `index` (`index_param`), read through a gather that counts negatives from the end.
    """

    kind: str
    graphs: tuple[FunctionGraph, ...]
    carried: int = 0
    step: int = 1
    index: str | None = None
    index_param: bool = False
    loc: Location | None = field(default=None, compare=False)
    stores: "Region | None" = None   # grad's rerun of this loop that also stores its carried values

    @property
    def body(self) -> FunctionGraph:
        return self.graphs[-1] if self.kind != "if" else self.graphs[0]

    @property
    def leading(self) -> int:
        """How many inputs of a region node come before the carried values."""
        return {"for": 2, "while": 0, "if": 1}[self.kind]


def in_place_results(region: Region) -> dict[int, str]:
    """The carried values a loop body may update in place ({result index: parameter name}): the
    body's result is an update or scatter of the value's own parameter, which nothing else in the
    body reads. Every target uses it: the per-step output `hs[i] = h` costs no copy per iteration."""
    body = region.graphs[-1]
    lead = 1 if region.index_param else 0
    names = [p.name for p in body.params]
    users: dict[str, int] = {}   # readers among every value the body may compute (named ones too)
    for n in toposort(list(body.outputs) + [v for _, v in body.named] + list(body.effects)):
        for i in dict.fromkeys(n.inputs):
            if i.op == "param":
                users[i.attr("name")] = users.get(i.attr("name"), 0) + 1
    for out in body.outputs:   # a result that is a parameter itself (`t = s`) reads it too
        if out.op == "param":
            users[out.attr("name")] = users.get(out.attr("name"), 0) + 1
    found = {}
    for k, out in enumerate(body.outputs):
        if out.op in ("update", "scatter", "scatter_add") and out.inputs[0].op == "param":
            name = out.inputs[0].attr("name")
            if name == names[lead + k] and users.get(name) == 1 and list(body.outputs).count(out) == 1 \
                    and out.inputs[0] not in out.inputs[1:]:   # `x = scatter_add(x, i, x)` reads x as it writes
                found[k] = name
    return found


def region_of(node: Node) -> Region | None:
    return node.attr("region") if node.op in REGION_OPS else None


def region_results(node: Node) -> tuple[Region, tuple]:
    """The identity of a region node's computation: every result of one loop shares it."""
    return node.attr("region"), node.inputs


def subgraphs(graph: FunctionGraph) -> Iterator[FunctionGraph]:
    """Every function graph nested in `graph`'s regions, depth first (not `graph` itself)."""
    stack = [graph]
    while stack:
        g = stack.pop()
        for node in toposort(list(g.outputs) + [n for _, n in g.named]):
            region = region_of(node)
            if region is not None and node.attr("result") == 0:
                for sub in region.graphs:
                    yield sub
                    stack.append(sub)
