"""What a call can fail on, found from the typed graph alone: sizes that cannot fit and values
that can make an op fail (the op table's `Op.fails`).

A core module: it reads only the graph, the op table, dims, dtypes and errors, so the
reference interpreter, the argument binder and the code generators share it without
reaching into the front end.
"""
from __future__ import annotations

from collections import Counter
from typing import Mapping

import numpy as np

from .dims import Dim, shape_str
from .dtypes import kind, to_numpy
from .errors import TdslRuntimeError
from .graph import REGION_OPS, FunctionGraph, Node, toposort
from .ops import OPS

MAX_BYTES = 2**63 - 1   # NumPy's limit (intp): an array's nonzero dims times its item size


def const_value(node: Node) -> np.ndarray:
    """The values of a `const` node as an array of its dtype."""
    return np.array(node.attr("value"), dtype=to_numpy(node.dtype))


# -- sizes ---------------------------------------------------------------------------------

def fits(dims, itemsize: int) -> bool:
    """Whether an array of these dims can exist (NumPy's rule: its nonzero dims times its item
    size are at most MAX_BYTES, even when another dim is 0); exact, on Python ints."""
    total = itemsize
    for d in dims:
        if d > 0:
            total *= d
    return total <= MAX_BYTES


def describe(node: Node) -> str:
    """A value as error messages name it."""
    return f"the {node.op} `{node.name}`" if node.name else f"the {node.op} value"


def too_big_message(node: Node) -> str:
    return (f"{describe(node)} of shape {shape_str(node.shape)} ({node.dtype}) is too large for an array "
            f"(more than 2**63 - 1 bytes)")


def no_memory_message(node: Node) -> str:
    """The message of a failed allocation; `{extent}` stands for the number of bytes."""
    return f"cannot allocate {{extent}} bytes for {describe(node)}"


def size_key(shape: tuple) -> tuple:
    """Shapes with the same key hold the same number of elements (the order of dims and 1s aside)."""
    return tuple(sorted((d for d in shape if d != 1), key=str))


def covered(shape: tuple, itemsize: int, arrays: list[tuple[Counter, int]]) -> bool:
    """Whether an array of `shape` is no larger than one of `arrays` ((dims counted, item size)):
    its dims are among that one's, its item size no larger."""
    dims = Counter(size_key(shape))
    return any(size >= itemsize and not dims - other for other, size in arrays)


def value_sizes(graph: FunctionGraph) -> list[tuple[tuple, int, Node]]:
    """(shape, item size, value) of the values whose shapes every target checks with `fits`
    before it allocates anything: each (shape, item size) once, first value first."""
    found, seen = [], set()
    given = [(Counter(size_key(p.shape)), to_numpy(p.dtype).itemsize) for p in graph.params]
    for node in toposort(graph.outputs):
        if node.op == "param" or not node.shape:
            continue
        itemsize = to_numpy(node.dtype).itemsize
        key = (size_key(node.shape), itemsize)
        if key in seen or all(d.is_const for d in node.shape) and fits([d.const for d in node.shape], itemsize):
            continue
        if covered(node.shape, itemsize, given):
            continue   # no larger than a parameter, which exists
        seen.add(key)
        found.append((node.shape, itemsize, node))
    return found


def check_sizes(limits: list, sizes: Mapping[str, int]) -> None:
    """Raise the error of the first value of `limits` (from `value_sizes`) whose shape cannot fit."""
    for shape, itemsize, node in limits:
        if not fits([d.evaluate(sizes) for d in shape], itemsize):
            raise TdslRuntimeError(too_big_message(node), node.loc)


# -- values that can fail ------------------------------------------------------------------

def can_fail(node: Node) -> bool:
    """Whether computing `node` itself may raise a call-time error (a size check included):
    its op's `Op.fails`, for its dtype kind, unless literal operands are known to be safe."""
    if node.attr("checks"):
        return True
    if node.op in REGION_OPS:
        return region_can_fail(node.attr("region"))
    fails = OPS[node.op].fails
    if fails is None or kind(node.dtype) not in fails.kinds:
        return False
    if fails.on == "empty":
        return not node.attr("empty_ok")   # a max given an identity (softmax's shift) never fails
    values = _literal(node.inputs[fails.operand])
    return values is None or not fails.safe(values, node)


_REGION_FAILS: dict = {}


def region_can_fail(region) -> bool:
    """Whether running a loop or branch can raise: a body's size check or a value that can fail."""
    key = id(region)
    found = _REGION_FAILS.get(key)
    if found is None or found[0] is not region:
        fails = any(collect_checks(g) or any(can_fail(n) for n in toposort(computed_roots(g)))
                    for g in region.graphs)
        found = _REGION_FAILS[key] = (region, fails)
    return found[1]


def value_checked(node: Node) -> bool:
    """Whether the values of `node`'s operands can make it fail (an integer power, a take)."""
    fails = OPS[node.op].fails
    return fails is not None and fails.on == "values" and can_fail(node)


def _literal(node: Node) -> np.ndarray | None:
    """The values of a literal (broadcast or not), or None when `node` is not one."""
    while node.op in ("broadcast", "reshape") and not node.attr("checks"):
        node = node.inputs[0]
    return const_value(node) if node.op == "const" else None


def computed_roots(graph: FunctionGraph) -> list[Node]:
    """The values a call computes: the results, and each named value that no result needs but
    whose computation can fail (NumPy runs every statement, so its error is raised too)."""
    reached = set(toposort(graph.outputs))
    dead = [node for _, node in graph.named if node not in reached]
    if not dead:
        return list(graph.outputs) + list(graph.effects)
    fails: dict[Node, bool] = {}
    for node in toposort(dead):
        fails[node] = can_fail(node) or any(fails.get(i, False) for i in node.inputs)
    return list(graph.outputs) + [node for node in dead if fails[node]] + list(graph.effects)


def collect_checks(graph: FunctionGraph) -> list[tuple[str, Dim, str, object]]:
    """The size conditions the graph's slices and reshapes need, as (op, dim, message, loc);
    named values no result reads are checked too."""
    found, seen = [], set()
    for node in toposort(computed_roots(graph)):
        for check in node.attr("checks", ()):
            op, dim, message = check[:3]
            key = (op, dim, message)
            if key not in seen:
                seen.add(key)
                # a check may carry the location of the call that needs it (top_k's k): the node's
                # own location is where its value is named
                found.append((op, dim, message, check[3] if len(check) > 3 else node.loc))
    return found
