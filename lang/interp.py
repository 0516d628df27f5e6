"""The reference interpreter: runs a function graph with NumPy, op by op.

It is the `numpy` target and the oracle every other target is tested against.
"""
from __future__ import annotations

from collections import Counter
from typing import Mapping

import numpy as np

from .dims import Dim, shape_str
from .dtypes import to_numpy
from .errors import TdslRuntimeError
from .graph import FunctionGraph, Node, toposort
from .infer import const_value
from .ops import OPS, RuntimeCheckFailed


MAX_BYTES = 2**63 - 1   # NumPy's limit (intp): an array's nonzero dims times its item size


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


# Ops that can fail at call time: on an empty reduction, or on their operands' values (an
# integer power fails only for integers: `can_fail` reads the dtype).
FAILING_OPS = ("max", "min", "argmax", "argmin", "take", "pow")


def can_fail(node: Node) -> bool:
    """Whether computing `node` itself may raise a call-time error (a size check included)."""
    if node.attr("checks"):
        return True
    if node.op == "pow":   # only integers, and a literal exponent fails only when negative
        exponent = _literal(node.inputs[1])
        return to_numpy(node.dtype).kind in "iu" and (exponent is None or bool(np.any(exponent < 0)))
    if node.op == "take":   # literal indices on an axis of known length fail only out of range
        indices, extent = _literal(node.inputs[1]), node.inputs[0].shape[node.attr("axis")]
        return indices is None or not extent.is_const or bool(np.any((indices < -extent.const) |
                                                                      (indices >= extent.const)))
    return node.op in FAILING_OPS and not node.attr("empty_ok")   # a max given an identity (softmax's shift)


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
        return list(graph.outputs)
    fails: dict[Node, bool] = {}
    for node in toposort(dead):
        fails[node] = can_fail(node) or any(fails.get(i, False) for i in node.inputs)
    return list(graph.outputs) + [node for node in dead if fails[node]]


def _concrete(value, sizes: Mapping[str, int]):
    """Attribute values with every Dim replaced by its integer value."""
    if isinstance(value, Dim):
        return value.evaluate(sizes)
    if isinstance(value, tuple):
        return tuple(_concrete(v, sizes) for v in value)
    return value


def evaluate_node(node: Node, values: list, sizes: Mapping[str, int], args: Mapping[str, np.ndarray]):
    """The value of one node given the values of its inputs."""
    op = OPS[node.op]
    attrs = {k: _concrete(v, sizes) for k, v in node.attrs if k != "checks"}
    dtype = to_numpy(node.dtype)
    if node.op == "param":
        return args[attrs["name"]]
    if node.op == "sizevar":
        return np.int64(sizes[attrs["name"]])
    if node.op == "const":
        return const_value(node)
    if node.op == "iota":
        return np.arange(node.shape[0].evaluate(sizes), dtype=np.int64)
    if node.op == "cast":
        with np.errstate(all="ignore"):
            return np.asarray(values[0]).astype(dtype)
    if op.kind == "reduce":
        return op.impl(values[0], attrs["axes"], attrs["keepdims"], dtype, attrs.get("empty_ok", False))
    if op.kind == "argreduce":
        return op.impl(values[0], attrs["axis"], attrs["keepdims"])
    if node.op == "slice":
        return op.impl(values[0], attrs["starts"], attrs["steps"], attrs["shape"])
    out = op.impl(*values, **attrs)
    return np.asarray(out).astype(dtype, copy=False)


def run_graph(graph: FunctionGraph, args: Mapping[str, np.ndarray], sizes: Mapping[str, int],
              keep: list[Node] | None = None, limits: list | None = None,
              roots: list[Node] | None = None) -> tuple[list, dict]:
    """Evaluate the outputs of `graph` (and any `keep` nodes); returns (outputs, values by node).

    Every value's size is checked first (`limits`: the graph's `value_sizes`, if known); `roots`
    are the graph's `computed_roots`, if known."""
    roots = (computed_roots(graph) if roots is None else list(roots)) + list(keep or [])
    values: dict[Node, object] = {}
    check_sizes(value_sizes(graph) if limits is None else limits, sizes)
    for node in toposort(roots):
        if node in values:
            continue
        try:
            values[node] = evaluate_node(node, [values[i] for i in node.inputs], sizes, args)
        except RuntimeCheckFailed as err:
            raise TdslRuntimeError(str(err), node.loc) from None
        except MemoryError:
            raise out_of_memory(node, sizes) from None
    return [values[o] for o in graph.outputs], values


def out_of_memory(node: Node, sizes: Mapping[str, int]) -> TdslRuntimeError:
    """The error of a value whose memory could not be allocated."""
    count = 1
    for d in node.shape:
        count *= d.evaluate(sizes)
    nbytes = count * to_numpy(node.dtype).itemsize
    return TdslRuntimeError(no_memory_message(node).replace("{extent}", str(nbytes)), node.loc)


def run(graph: FunctionGraph, arrays: list[np.ndarray], sizes: Mapping[str, int],
        limits: list | None = None, roots: list[Node] | None = None) -> list[np.ndarray]:
    """The numpy target's entry point: arrays in parameter order, results as new arrays."""
    args = {p.name: a for p, a in zip(graph.params, arrays)}
    outputs, _ = run_graph(graph, args, sizes, limits=limits, roots=roots)
    results = []
    for o, node in zip(outputs, graph.outputs):
        try:
            results.append(np.array(o, dtype=to_numpy(node.dtype), copy=True, order="C"))
        except MemoryError:
            raise out_of_memory(node, sizes) from None
    return results
