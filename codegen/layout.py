"""Layout ops as index arithmetic: the index into a layout op's input, given the index into its output.

Transpose permutes, slice scales and shifts, broadcast reads element 0 of size-1
axes, and reshape splits and merges axes group by group: a split axis is an affine
combination of output indices, a merged one a set of digits (`DivMod`) that fold
back into the flat index when read with matching strides.
"""
from __future__ import annotations

from tdsl.dims import shape_size
from tdsl.graph import Node

from .kernels import ONE, Affine, DivMod, row_major

LAYOUT = ("reshape", "transpose", "broadcast", "slice")


def input_index(node: Node, idx: tuple) -> tuple:
    """The index into the input of a layout op that reads it at `idx` of its output."""
    x = node.inputs[0]
    if node.op == "broadcast":
        return broadcast_index(idx, node.shape, x.shape)
    if node.op == "transpose":
        result = [None] * x.ndim
        for k, a in enumerate(node.attr("perm")):
            result[a] = idx[k]
        return tuple(result)
    if node.op == "slice":
        return tuple(i.scale(step).shift(start)
                     for i, start, step in zip(idx, node.attr("starts"), node.attr("steps")))
    return reshape_index(idx, node.shape, x.shape)


def broadcast_index(idx: tuple, out_shape: tuple, in_shape: tuple) -> tuple:
    """The index into an operand broadcast to `out_shape`: size-1 axes read element 0."""
    lead = len(out_shape) - len(in_shape)
    return tuple(Affine() if dim == 1 else idx[lead + a] for a, dim in enumerate(in_shape))


def reshape_index(idx: tuple, out_shape: tuple, in_shape: tuple) -> tuple:
    """The index into the input of a reshape: axes are split and merged group by group."""
    in_axes = [a for a, d in enumerate(in_shape) if d != 1]
    out_axes = [a for a, d in enumerate(out_shape) if d != 1]
    result = [Affine() for _ in in_shape]
    i = j = 0
    while i < len(in_axes) or j < len(out_axes):
        p, q = _group(in_shape, in_axes[i:], out_shape, out_axes[j:])
        group_in, group_out = in_axes[i:i + p], out_axes[j:j + q]
        flat = row_major(tuple(idx[a] for a in group_out), tuple(out_shape[a] for a in group_out))
        if len(group_in) == 1:
            result[group_in[0]] = flat
        else:
            sizes = tuple(in_shape[a] for a in group_in)
            for k, a in enumerate(group_in):
                result[a] = Affine(((DivMod(flat, sizes, k), ONE),))
        i, j = i + p, j + q
    return tuple(result)


def _group(in_shape, in_axes, out_shape, out_axes) -> tuple[int, int]:
    """The shortest leading groups of input and output axes with equal element counts."""
    if not in_axes or not out_axes:
        return len(in_axes), len(out_axes)
    for total in range(2, len(in_axes) + len(out_axes) + 1):
        for p in range(1, total):
            q = total - p
            if p <= len(in_axes) and q <= len(out_axes) and \
                    shape_size(tuple(in_shape[a] for a in in_axes[:p])) == \
                    shape_size(tuple(out_shape[a] for a in out_axes[:q])):
                return p, q
    return len(in_axes), len(out_axes)
