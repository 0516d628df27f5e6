"""The reference interpreter: runs a function graph with NumPy, op by op.

It is the `numpy` target and the oracle every other target is tested against.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .dims import Dim
from .dtypes import to_numpy
from .errors import TdslRuntimeError
from .graph import FunctionGraph, Node, toposort
from .limits import check_sizes, computed_roots, const_value, no_memory_message, value_sizes
from .ops import OPS, RuntimeCheckFailed


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
