"""Section 12's convolutions and pooling, composed of existing nodes (update, take, slices,
concatenation, reshapes, matmul, reductions).

Nothing here generates code: a convolution is im2col (one `take` of the flattened padded
input at the windows' positions) followed by a matmul with the kernel reshaped to a matrix,
so it fuses, runs on every target, goes through BLAS where the matmul can, and
differentiates through the existing rules (the adjoint of the `take` is one scatter-add).
"""
from __future__ import annotations

import math
from typing import Callable

from . import infer
from .builtins import as_node, dim_node, static_int, zeros
from .dims import Dim, shape_size
from .errors import TdslTypeError
from .graph import Node
from .indexing import Sub
from .updates import set_item

SPATIAL_NAMES = {1: "w", 2: "h, w"}


def _kernel_offsets(kernel: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every offset inside a window of shape `kernel`, in row-major order."""
    offsets = [()]
    for k in kernel:
        offsets = [o + (i,) for o in offsets for i in range(k)]
    return offsets


def _out_sizes(name: str, sizes, kernel, stride: int, loc) -> tuple[tuple[Dim, ...], tuple]:
    """The output sizes `(size - k) // stride + 1` and the check that the window fits."""
    out, check = [], []
    for size, k in zip(sizes, kernel):
        room = size - k
        if room.is_const and room.const < 0:
            raise TdslTypeError(f"{name}: the window ({k}) is larger than the (padded) input ({size})", loc)
        if not room.is_const:
            check.append((">=", room, f"{name}: the window ({k}) is larger than the (padded) input ({size})"))
        out.append(room // stride + 1)
    return tuple(out), tuple(check)


def _static_stride(name: str, stride, loc) -> int:
    s = static_int(stride, loc, f"{name}'s stride")
    if s <= 0:
        raise TdslTypeError(f"{name}: the stride must be positive, not {s}", loc)
    return s


def _padding(name: str, padding, kernel: tuple[int, ...], stride: int, loc) -> list[tuple[int, int]]:
    """(before, after) per spatial axis; "same" pads k - 1 in all, the odd one after."""
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * len(kernel)
        if padding != "same":
            raise TdslTypeError(f"{name}: padding must be an integer, \"same\" or \"valid\", not {padding!r}", loc)
        if stride != 1:
            raise TdslTypeError(f"{name}: padding=\"same\" needs stride 1, not {stride}", loc)
        return [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel]
    p = static_int(padding, loc, f"{name}'s padding")
    if p < 0:
        raise TdslTypeError(f"{name}: the padding cannot be negative ({p})", loc)
    return [(p, p)] * len(kernel)


def _pad(x: Node, pads: list[tuple[int, int]], loc) -> Node:
    """`x` with zeros before and after each of its last len(pads) axes: one write of x into
    zeros (its adjoint is a slice of the padded one's; padding by concatenation would copy
    once per axis)."""
    if not any(before or after for before, after in pads):
        return x
    lead = x.ndim - len(pads)
    shape = x.shape[:lead] + tuple(d + before + after for d, (before, after) in zip(x.shape[lead:], pads))
    subs = [Sub("slice")] * lead + [Sub("slice", before, d + before) for d, (before, _) in zip(x.shape[lead:], pads)]
    return set_item(zeros(loc, shape, x.dtype), subs, x, loc)


def _check_operand(name: str, x: Node, rank: int, what: str, layout: str, loc) -> None:
    if x.ndim != rank:
        raise TdslTypeError(f"{name} needs {what} of rank {rank} ([{layout}]), not {x.type_str}", loc)
    if x.dtype == "bool":
        raise TdslTypeError(f"{name}: arithmetic on bool is not allowed ({what} is {x.type_str})", loc,
                            hint=infer.BOOL_HINT)


def _conv_operands(name: str, nd: int, loc, x, w) -> tuple[Node, Node, tuple[int, ...]]:
    """x and w checked and converted to their common dtype, and the kernel's spatial sizes."""
    x, w = as_node(x, loc), as_node(w, loc)
    spatial = SPATIAL_NAMES[nd]
    _check_operand(name, x, nd + 2, "the input", f"batch, channels_in, {spatial}", loc)
    kernel_names = "kh, kw" if nd == 2 else "kw"
    _check_operand(name, w, nd + 2, "the kernel", f"channels_out, channels_in, {kernel_names}", loc)
    if x.shape[1] != w.shape[1]:
        raise TdslTypeError(f"{name}: the input has {x.shape[1]} channels and the kernel {w.shape[1]} "
                            f"({x.type_str} against {w.type_str})", loc)
    kernel = tuple(d.const for d in w.shape[2:])
    if any(k is None for k in kernel):
        raise TdslTypeError(f"{name}: the kernel's spatial sizes must be literal integers, not "
                            f"{w.type_str}", loc)
    if any(k == 0 for k in kernel):
        raise TdslTypeError(f"{name}: the kernel cannot be empty ({w.type_str})", loc)
    dtype, _ = infer.promote([(x.dtype, x.weak), (w.dtype, w.weak)])
    return infer.cast(x, dtype, loc), infer.cast(w, dtype, loc), kernel


def _conv(name: str, nd: int, loc, x, w, stride, padding) -> Node:
    x, w, kernel = _conv_operands(name, nd, loc, x, w)
    s = _static_stride(name, stride, loc)
    padded = _pad(x, _padding(name, padding, kernel, s, loc), loc)
    out, check = _out_sizes(name, padded.shape[2:], kernel, s, loc)
    batch, channels, count = x.shape[0], x.shape[1], math.prod(kernel)
    # cols[b, c, k, *out]: the k-th kernel offset's input under each output position, one
    # `take` (its adjoint one scatter-add; kh * kw slices would have a padded adjoint each)
    cols = _windows(padded, kernel, s, out, check, loc)
    cols = infer.reshape(cols, (batch, channels * count, shape_size(out)), loc)
    matrix = infer.reshape(w, (w.shape[0], channels * count), loc)
    # a GEMM per image: one for the whole batch would need the output's adjoint transposed
    # to [channels_out, batch * positions], no strided matrix, and that GEMM would miss BLAS
    result = infer.matmul(matrix, cols, loc)
    return infer.reshape(result, (batch, w.shape[0]) + out, loc)


def _windows(x: Node, kernel: tuple[int, ...], stride: int, out, check: tuple, loc) -> Node:
    """[*lead, K, *out]: for each kernel offset k (row-major), x's elements under each output
    position, gathered from x with its spatial axes flattened. `check` (the windows fit) is
    checked at call time, on a slice of the whole of x."""
    nd = len(kernel)
    if check:
        x = infer.slice_node(x, (Dim.of(0),) * x.ndim, (1,) * x.ndim, x.shape, check, loc)
    flat = infer.reshape(x, x.shape[:-nd] + (shape_size(x.shape[-nd:]),), loc)
    return infer.take(flat, _window_positions(x.shape[-nd:], kernel, stride, out, loc), x.ndim - nd, loc)


def _window_positions(sizes, kernel, stride: int, out, loc) -> Node:
    """i64[K, *out]: the flat position in an array of spatial shape `sizes` that kernel offset
    k (row-major) reads for each output position: sum over axes of (o * stride + d) * pitch."""
    nd, offsets = len(kernel), _kernel_offsets(kernel)
    total, pitch = None, Dim.of(1)
    for axis in reversed(range(nd)):
        grown = tuple(out[a] if a == axis else Dim.of(1) for a in range(nd))
        along = infer.reshape(infer.iota(out[axis], loc), (Dim.of(1),) + grown, loc)
        offset = infer.const(tuple(o[axis] for o in offsets), "i64", (Dim.of(len(offsets)),), True, loc)
        offset = infer.reshape(offset, (Dim.of(len(offsets)),) + (Dim.of(1),) * nd, loc)
        index = infer.elementwise("add", [infer.elementwise("mul", [along, _int(stride, loc)], loc), offset], loc)
        term = infer.elementwise("mul", [index, dim_node(pitch, loc)], loc)
        total = term if total is None else infer.elementwise("add", [total, term], loc)
        pitch = pitch * sizes[axis]
    return total


def _int(value: int, loc) -> Node:
    return infer.const(value, "i64", (), True, loc)


def conv1d(loc, x, w, stride=1, padding=0):
    """Cross-correlation of x [batch, channels_in, w] with w [channels_out, channels_in, kw]."""
    return _conv("conv1d", 1, loc, x, w, stride, padding)


def conv2d(loc, x, w, stride=1, padding=0):
    """Cross-correlation of x [batch, channels_in, h, w] with w [channels_out, channels_in, kh, kw]."""
    return _conv("conv2d", 2, loc, x, w, stride, padding)


def _pool(name: str, loc, x, size, stride) -> tuple[Node, tuple[int, ...]]:
    """The windows of x: [batch, channels, size*size, out_h, out_w] (or, when the windows tile
    the input, [batch, channels, out_h, size, out_w, size]), and the axes to reduce."""
    x = as_node(x, loc)
    if x.ndim != 4:
        raise TdslTypeError(f"{name} needs an input of rank 4 ([batch, channels, h, w]), not {x.type_str}", loc)
    k = static_int(size, loc, f"{name}'s size")
    if k <= 0:
        raise TdslTypeError(f"{name}: the window size must be positive, not {k}", loc)
    s = k if stride is None else _static_stride(name, stride, loc)
    out, check = _out_sizes(name, x.shape[2:], (k, k), s, loc)
    lead = x.shape[:2]
    if s == k:
        # non-overlapping windows: the covered part of x, reshaped, holds each window on two axes
        part = infer.slice_node(x, (Dim.of(0),) * 4, (1,) * 4, lead + (out[0] * k, out[1] * k), check, loc)
        tiles = infer.reshape(part, lead + (out[0], Dim.of(k), out[1], Dim.of(k)), loc)
        return tiles, (3, 5)
    return _windows(x, (k, k), s, out, check, loc), (2,)


def max_pool2d(loc, x, size, stride=None):
    """The maximum of each size x size window of x [batch, channels, h, w] (NaN propagates)."""
    windows, axes = _pool("max_pool2d", loc, x, size, stride)
    return infer.reduce("max", windows, axes, False, loc)


def avg_pool2d(loc, x, size, stride=None):
    """The mean of each size x size window of x [batch, channels, h, w] (integers, bool give f64)."""
    windows, axes = _pool("avg_pool2d", loc, x, size, stride)
    if windows.dtype not in ("f32", "f64"):   # as mean: integers and bool give f64
        windows = infer.cast(windows, "f64", loc)
    total = infer.reduce("sum", windows, axes, False, loc)
    k = static_int(size, loc, "avg_pool2d's size")
    return infer.elementwise("div", [total, infer.const(k * k, "i64", (), True, loc)], loc)


BUILDERS: dict[str, Callable] = {
    "conv1d": conv1d, "conv2d": conv2d, "max_pool2d": max_pool2d, "avg_pool2d": avg_pool2d,
}

from .builtins import register  # noqa: E402  (see builtins.register)

register(BUILDERS)
