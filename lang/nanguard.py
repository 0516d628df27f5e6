"""The NaN guard: which values of a program are born NaN or infinite, and what the error says.

A float value is *born* non-finite at an op when the op's result is NaN or +-inf at a point
while every float operand it read there is finite (an elementwise op, a cast), or when a
reduction's or a matrix product's result is not finite while all of its operands are (an
overflow). NaNs that come from NaN or infinite inputs are carried, not born. The reference
interpreter checks after each node (`birth`); the compiled targets check in their kernels and
call `describe` on the failure path for the message's details (docs/debugging.md, "NaN guard").
"""
from __future__ import annotations

import os
import re

import numpy as np

from .errors import TdslRuntimeError

FLOATS = ("f32", "f64")
_SEEN_THROUGH = ("cast", "broadcast", "reshape", "slice", "transpose")
MAX_TEXT = 60   # an op's source text longer than this is named by its op instead


def guard_requested(nan_guard: bool | None = None) -> bool:
    """Whether every call is guarded: `nan_guard` when given, else TDSL_NAN_GUARD (set, not 0)."""
    if nan_guard is None:
        return os.environ.get("TDSL_NAN_GUARD", "").strip() not in ("", "0")
    return bool(nan_guard)


def guarded(node) -> bool:
    """Whether `node`'s value is checked: a float result of an op that computes (not a view, a
    parameter or a literal); a cast only from another float."""
    from .ops import BOUNDED, OPS
    if node.dtype not in FLOATS or not node.inputs:
        return False
    kind = OPS[node.op].kind
    if node.op == "cast":
        return node.inputs[0].dtype in FLOATS
    if kind == "elementwise":
        return node.op not in BOUNDED
    return node.op in ("sum", "prod", "matmul")   # (a max of finite values is finite)


def pointwise(node) -> bool:
    """Whether the guard compares points (an elementwise op, a cast) rather than whole operands."""
    from .ops import OPS
    return node.op == "cast" or OPS[node.op].kind == "elementwise"


def source_name(node) -> str | None:
    """The name the source gives a value (a named value or parameter), through views and casts."""
    while node.name is None and node.op in _SEEN_THROUGH and node.inputs:
        node = node.inputs[0]
    if node.name:
        return node.name
    return node.attr("name") if node.op == "param" else None


def op_text(node) -> str:
    """How the message names the op: its source text (`log(p)`, the right side of `l = ...`), or
    its op's name when that text is long or unknown."""
    loc = node.loc
    text = None
    if loc is not None and loc.source_line:
        line = loc.source_line
        if node.name is not None and line[loc.col - 1:].startswith(node.name):
            found = re.match(rf"\s*{re.escape(node.name)}\s*=\s*(.*?)\s*$", line)
            text = found.group(1) if found else None
        elif loc.end_col:
            text = line[loc.col - 1:loc.end_col - 1]
    if text and len(text) <= MAX_TEXT:
        return text
    names = [source_name(x) or "..." for x in node.inputs if x.dtype in FLOATS] or ["..."]
    return f"{node.op}({', '.join(names)})"


def _float_operands(node, values: list) -> list[tuple[int, np.ndarray]]:
    return [(k, np.asarray(v)) for k, (x, v) in enumerate(zip(node.inputs, values)) if x.dtype in FLOATS]


def birth(node, values: list, out) -> TdslRuntimeError | None:
    """The guard's error when `node` (with input `values`, result `out`) gives birth to a NaN or
    an infinity, else None."""
    result = np.asarray(out)
    bad = ~np.isfinite(result)
    if not bad.any():
        return None
    operands = _float_operands(node, values)
    if pointwise(node):
        ok = np.ones(result.shape, bool)
        for _, v in operands:
            ok &= np.broadcast_to(np.isfinite(v), result.shape)
        born = bad & ok
        if not born.any():
            return None
    else:   # a reduction or matmul: only when every operand it read is finite
        if not all(np.isfinite(v).all() for _, v in operands):
            return None
        born = bad
    return describe(node, values, result, born)


def describe(node, values: list, result, born, iteration=None) -> TdslRuntimeError:
    """The error for the points `born` of `result` (a bool array of its shape): the op's text, the
    first value produced there, and what explains it."""
    result = np.asarray(result)
    first = tuple(int(i) for i in np.argwhere(np.asarray(born))[0]) if np.ndim(result) else ()
    produced = float(result[first])
    word = "nan" if np.isnan(produced) else ("inf" if produced > 0 else "-inf")
    detail, operand = explain(node, values, result, born, first)
    message = f"{op_text(node)} produced {word} from finite inputs"
    if detail:
        message += f" ({detail})"
    return TdslRuntimeError(message, node.loc, value=produced, operand=operand, position=first,
                            nan_guard=True)


def _count(n: int, what: str) -> str:
    plural = {"zero": "zeros", "negative value": "negative values", "value": "values"}
    return f"{n} {what if n == 1 else plural.get(what, what + 's')}"


def explain(node, values: list, result, born, first: tuple) -> tuple[str, str | None]:
    """(detail, operand): what explains the birth, counted over the points born, and the source
    name of the operand it is about (docs/debugging.md lists each op's detail)."""
    op = node.op
    operands = _float_operands(node, values)
    shape = np.shape(result)
    if not operands:
        return "", None
    at = [(k, np.broadcast_to(v, shape)[born] if pointwise(node) else v) for k, v in operands]
    names = {k: source_name(node.inputs[k]) for k, _ in operands}
    label = {k: names[k] or _unnamed(node.inputs[k]) for k in names}
    k0, x = at[0]
    if op in ("log", "log2", "log10", "sqrt", "rsqrt") or (op == "log1p"):
        edge = -1.0 if op == "log1p" else 0.0
        zeros, below = int((x == edge).sum()), int((x < edge).sum())
        if op == "log1p":
            parts = [f"{_count(zeros, 'value')} equal to -1"] if zeros else []
            parts += [f"{_count(below, 'value')} below -1"] if below else []
        else:
            parts = [_count(zeros, "zero")] if zeros else []
            parts += [_count(below, "negative value")] if below else []
        if parts:
            return f"{label[k0]} has {' and '.join(parts)}", names[k0]
    if op in ("div", "floordiv", "mod") and len(at) == 2:
        k1, y = at[1]
        zeros = int((y == 0).sum())
        if zeros:
            return f"{label[k1]} has {_count(zeros, 'zero')}", names[k1]
    if op in ("exp", "exp2", "expm1", "sinh", "cosh") and x.size:
        info = np.finfo(x.dtype)
        limit = float(np.log2(info.max) if op == "exp2" else np.log(info.max))
        over = int((np.abs(x) > limit).sum()) if op in ("sinh", "cosh") else int((x > limit).sum())
        if over:
            bound = f"|x| above {limit:.6g}" if op in ("sinh", "cosh") else f"above {limit:.6g}"
            return f"{label[k0]} has {_count(over, 'value')} {bound}", names[k0]
    if op == "pow" and len(at) == 2:
        k1, y = at[1]
        xb, yb = np.broadcast_arrays(x, y) if pointwise(node) else (x, y)
        zero_neg = int(((xb == 0) & (yb < 0)).sum())
        if zero_neg:
            return f"{label[k0]} has {_count(zero_neg, 'zero')} raised to a negative power", names[k0]
        fractional = int(((xb < 0) & (yb != np.round(yb))).sum())
        if fractional:
            return f"{label[k0]} has {_count(fractional, 'negative value')} raised to a non-integer power", \
                names[k0]
    if not pointwise(node) or op in ("add", "sub", "mul", "square", "cast", "hypot", "pow"):
        # an overflow: the operands' largest magnitudes against the dtype's range
        top = max(at, key=lambda item: float(np.abs(item[1]).max()) if item[1].size else 0.0)
        k, v = top
        if v.size:
            big = float(np.abs(v).max())
            return f"an overflow of {node.dtype}: the largest |{label[k]}| is {big:.6g}", names[k]
    # any other op: the operands' values at the first point born
    shown = [f"{label[k]} = {float(np.broadcast_to(np.asarray(values[k]), shape)[first]):.6g}" for k, _ in operands]
    where = f" at {list(first)}" if first else ""
    return ", ".join(shown) + where, names[k0]


def _unnamed(operand) -> str:
    """How the detail names an operand the source gives no name: its text, in parentheses."""
    text = op_text(operand)
    return f"({text})" if " " in text else text


def in_iteration(err: TdslRuntimeError, name: str | None, value: int, loc) -> TdslRuntimeError:
    """The guard's error raised in a loop body, told which iteration it was (the innermost loop
    sets `.iteration`; each loop adds its own words)."""
    place = f" of the loop at line {loc.line}" if loc is not None else ""
    what = f"{name} = {value}" if name else f"{value}"
    if err.iteration is None:
        err.iteration = value
    err.message += f", in iteration {what}{place}"
    err.args = (err.render(),)
    return err
