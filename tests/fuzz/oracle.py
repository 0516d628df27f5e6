"""The NumPy oracle: evaluates a program's tree with NumPy alone, and the tolerances results are compared with."""
from __future__ import annotations

import math
import warnings

import numpy as np

from .tree import (_as_float, AVOID, dim_value, Expected, Node, NP, NP_BINARY, NP_UNARY, Program, TDSL_NAME,
    Unspecified)


# The oracle's settings for a control-flow program: how close a float comparison deciding a branch may be
# to its threshold before the call is not judged, and whether f32 values are kept in f64 (finite differences).
GUARD = {"margin": 1e-7, "promote32": False}


LOOP_LIMIT = 100_000   # iterations of one loop the oracle runs before it calls the program unspecified


def _reduce(fn: str, x, axis, keepdims: bool):
    x = np.asarray(x)
    if fn == "logsumexp":
        return _logsumexp(x, axis, keepdims)
    if fn in ("argmax", "argmin"):
        return getattr(np, fn)(x, axis=axis)
    return getattr(np, fn)(x, axis=axis, keepdims=keepdims)


def _logsumexp(x, axis, keepdims):
    """log(sum(exp(x))) computed stably; over no elements it is log(0) = -inf."""
    x = _as_float(x)
    if x.size == 0 or any(x.shape[a] == 0 for a in _axes(axis, x.ndim)):
        return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, np.zeros((), x.dtype))
    out = np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top
    return out if keepdims else np.squeeze(out, axis=_axes(axis, x.ndim))


def _axes(axis, rank: int) -> tuple:
    if axis is None:
        return tuple(range(rank))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(a % rank for a in axes)


def _softmax(fn: str, x, axis):
    """Shifted by the axis' finite max (an inf among finite values gives 0 and -inf, not NaN everywhere)."""
    x = _as_float(x)
    if fn == "softmax" and np.isposinf(x).any():
        # the contract is silent; tdsl gives NaN for large finite values next to +inf and 0 for
        # small ones (reported in docs/testing.md's list of open questions), so not compared
        raise Unspecified("softmax of an axis holding +inf")
    if x.size == 0 or x.shape[axis] == 0:
        return x.copy()
    top = np.max(x, axis=axis, keepdims=True)
    shifted = x - np.where(np.isfinite(top), top, np.zeros((), x.dtype))
    # not x - logsumexp(x): next to 9.2e18 the log of the sum (log 2 for two tied maxima) is absorbed
    total = np.sum(np.exp(shifted), axis=axis, keepdims=True)
    return shifted - np.log(total) if fn == "log_softmax" else np.exp(shifted) / total


def _index(x, subs):
    """x[subs], raising Expected where tdsl's contract wants the axis longer than it is."""
    x = np.asarray(x)
    named = [s for s in subs if s[0] not in ("none", "ell")]
    axis = x.ndim - len(named) if subs and subs[0][0] == "ell" else 0
    for sub in named:
        need = sub[-1] if sub[0] == "s" else (sub[1] + 1 if sub[1] >= 0 else -sub[1])
        if x.shape[axis] < need:
            raise Expected(f"axis {axis} of length {x.shape[axis]} is shorter than {need}")
        axis += 1
    return x[tuple(_np_sub(s) for s in subs)]


def _np_sub(sub):
    return {"i": lambda: sub[1], "none": lambda: None, "ell": lambda: Ellipsis,
            "s": lambda: slice(sub[1], sub[2], sub[3])}[sub[0]]()


def _cast(x, to: str):
    x = np.asarray(x)
    if x.dtype.kind == "f" and to in ("i32", "i64") and x.size:
        info = np.iinfo(NP[to])
        with np.errstate(all="ignore"):
            bad = ~np.isfinite(x) | (np.trunc(x) < info.min) | (np.trunc(x) >= float(info.max) + 1)
        if bad.any():
            raise Unspecified("a float-to-int cast of NaN, inf or an out-of-range value")
    return x.astype(NP[to])


def _periodic(node: Node, x):
    """sin, cos, tan; unspecified where the argument's rounding error alone is a good part of a period
    (cos of a sum of -1e20 values: any order of the sum is right, and each gives another cosine)."""
    out = NP_UNARY[node.attrs["fn"]](x)
    a = np.asarray(x)
    if a.dtype.kind == "f" and a.size and not exact(node.kids[0]):
        with np.errstate(all="ignore"):
            err = _rounding_error(node.kids[0], a)
            if np.any(np.isfinite(a) & (err > 1e-2)):
                raise Unspecified(f"{node.attrs['fn']} of a rounded argument too large to have a precise value")
    return out


def _reciprocal(x):
    x = np.asarray(x)
    if x.dtype.kind in "iu" and (x == 0).any():
        raise Unspecified("an integer reciprocal of 0")
    return np.reciprocal(x)


def _take(x, idx, axis):
    x, idx = np.asarray(x), np.asarray(idx)
    length = x.shape[axis]
    if idx.size and ((idx < -length) | (idx >= length)).any():
        # the contract: out-of-range indices are an error, even where the result is empty
        # (NumPy checks them only when it gathers something)
        raise Expected(f"take: an index is out of range for an axis of length {length}")
    return np.take(x, idx, axis=axis)


def _matmul(a, b):
    """np.matmul; where a fused and an unfused sum of products disagree on inf or NaN, unspecified."""
    out = np.matmul(a, b)
    if np.asarray(out).dtype.kind != "f" or np.isfinite(out).all():
        return out
    # BLAS fuses multiply and add: -1.4 * 3e38 does not overflow there, and inf stays inf; one product at a
    # time it is -inf, and inf + -inf is NaN. Both are right for floats; the contract cannot pick one.
    a2, b2 = np.asarray(a), np.asarray(b)
    a3 = a2[..., None, :] if a2.ndim == 1 else a2
    b3 = b2[..., :, None] if b2.ndim == 1 else b2
    unfused = np.sum(a3[..., :, :, None] * b3[..., None, :, :], axis=-2)
    unfused = unfused.reshape(np.shape(out))
    if (np.isnan(out) != np.isnan(unfused)).any() or (np.isinf(out) != np.isinf(unfused)).any():
        raise Unspecified("a matmul next to overflow: fused and unfused products disagree on inf or NaN")
    return out


# Ops whose value is one of their operands' values (or a constant): they round nothing themselves.
EXACT_OPS = {"param", "lit", "size", "neg", "index", "T", "transpose", "reshape", "expand_dims", "squeeze", "flip",
             "broadcast_to", "concat", "stack", "take", "where", "clip", "zeros", "full", "arange", "eye", "one_hot",
             "like"}


ROUNDING_ULPS = 8   # a few roundings' worth of error, relative to the largest magnitude around


def exact(node: Node) -> bool:
    """Whether `node` is computed without rounding: parameters, literals, values moved, selected or made integral."""
    fn = node.attrs.get("fn")
    if node.op == "bin" and fn in ("-", "/", "%", "//") and node.kids[0] is node.kids[1]:
        return True   # x - x, x / x, x % x, x // x: whatever x's rounding, 0, 1 (or NaN) exactly
    selects = node.op == "bin" and fn in ("maximum", "minimum") or \
        node.op == "un" and fn in ("abs", "relu", "sign", "floor", "ceil", "round")
    return (node.op in EXACT_OPS or selects) and all(exact(k) for k in node.kids)


def rounded_to_f32(node: Node, memo: dict) -> bool:
    """Whether any step computing `node` rounded to f32 (an f32 parameter, moved or selected, rounds nothing)."""
    if id(node) not in memo:
        moves = node.op in EXACT_OPS and all(k.dtype == "f32" for k in node.kids)
        memo[id(node)] = node.dtype == "f32" and not moves or any(rounded_to_f32(k, memo) for k in node.kids)
    return memo[id(node)]


def precision(node: Node) -> str:
    """The dtype whose tolerance a value gets: f32 where any step computing it rounded to f32, even if it is f64."""
    return "f32" if node.dtype in ("f32", "f64") and rounded_to_f32(node, {}) else node.dtype


def _scale(values) -> float:
    """The largest finite |value| (at least 1): the scale of compare's absolute tolerance."""
    finite = values[np.isfinite(values)]
    return max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0


def _rounding_error(node: Node, value):
    """About how far a computed float operand may be from the oracle's: none when exact, else a few ulps of the scale."""
    value = np.asarray(value, np.float64)
    if exact(node) or node.dtype not in ("f32", "f64"):
        return np.zeros_like(value)
    return ROUNDING_ULPS * np.finfo(NP[precision(node)]).eps * _scale(value)


def _binary(node: Node, a, b):
    """An operator; a float % or // next to one of its steps after rounding is unspecified."""
    fn = node.attrs["fn"]
    out = NP_BINARY[fn](a, b)
    if fn in ("%", "//") and node.dtype in ("f32", "f64") and not exact(node):
        x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
        # x % y jumps from ~0 to ~|y| where x / y crosses an integer: a value within the operands' rounding
        # error of that step (log_softmax(x) % 9.2e18: -1e-17 or 0.0) may land on either side
        slack = _rounding_error(node.kids[0], x) + np.abs(np.floor(x / y)) * _rounding_error(node.kids[1], y)
        rest = np.abs(np.mod(x, y))
        near = np.isfinite(rest) & (np.minimum(rest, np.abs(y) - rest) <= slack) & (slack > 0)
        if near.any():
            raise Unspecified(f"a float {fn} within rounding error of a step")
    return out


def _summed(node: Node, x):
    """sum or mean; unspecified where a few roundings of sum(|x|) exceed the comparison's tolerance (cancellation)."""
    fn, axis, keepdims = node.attrs["fn"], _np_axis(node), node.attrs.get("keepdims", False)
    out = _reduce(fn, x, axis, keepdims)
    if node.dtype in ("f32", "f64") and np.size(x):
        mass = _reduce(fn, np.abs(np.asarray(x, np.float64)), axis, keepdims)   # sum(|x|) or mean(|x|)
        rtol, atol = TOLERANCE[precision(node)]
        value = np.asarray(out, np.float64)
        allowed = atol * _scale(value) + rtol * np.abs(value)
        with np.errstate(all="ignore"):
            loose = np.isfinite(mass) & (ROUNDING_ULPS * np.finfo(NP[precision(node)]).eps * mass > allowed)
        if loose.any():   # int64 max and min in one mean: 0.0 or -0.16, by the order of the float sum
            raise Unspecified(f"a {fn} with catastrophic cancellation")
    return out


def _one_hot(labels, k: int, dt: str | None):
    labels = np.asarray(labels)
    return (labels[..., None] == np.arange(k)).astype(NP[dt or "f64"])


def _shape(node: Node, sizes: dict) -> tuple:
    return tuple(dim_value(d, sizes) for d in node.shape)


def _dt(node: Node):
    dt = node.attrs.get("dt") or "f64"
    return NP["f64" if dt == "f32" and GUARD["promote32"] else dt]


EVAL = {
    "un": lambda n, v, s: (_reciprocal(v[0]) if n.attrs["fn"] == "reciprocal" else _periodic(n, v[0])
                           if n.attrs["fn"] in ("sin", "cos", "tan") else NP_UNARY[n.attrs["fn"]](v[0])),
    "neg": lambda n, v, s: np.negative(v[0]),
    "not": lambda n, v, s: np.logical_not(v[0]),
    "bin": lambda n, v, s: _binary(n, v[0], v[1]),
    "where": lambda n, v, s: np.where(v[0], v[1], v[2]),
    "clip": lambda n, v, s: np.clip(v[0], v[1], v[2]),
    "cast": lambda n, v, s: _cast(v[0], n.attrs["to"]),
    "reduce": lambda n, v, s: (_summed(n, v[0]) if n.attrs["fn"] in ("sum", "mean") else
                               _reduce(n.attrs["fn"], v[0], _np_axis(n), n.attrs.get("keepdims", False))),
    "softmax": lambda n, v, s: _softmax(n.attrs["fn"], v[0], -1 if n.attrs.get("axis") is None else n.attrs["axis"]),
    "matmul": lambda n, v, s: _matmul(v[0], v[1]),
    "index": lambda n, v, s: _index(v[0], n.attrs["subs"]),
    "T": lambda n, v, s: np.transpose(v[0]),
    "transpose": lambda n, v, s: np.transpose(v[0], n.attrs["perm"]),
    # tdsl resolves a -1 from the symbolic shape, so it is defined even for an empty array (NumPy refuses)
    "reshape": lambda n, v, s: np.reshape(v[0], tuple(dim_value(n.shape[i] if d == -1 else d, s)
                                                      for i, d in enumerate(n.attrs["dims"]))),
    "expand_dims": lambda n, v, s: np.expand_dims(v[0], n.attrs["axis"]),
    "squeeze": lambda n, v, s: np.squeeze(v[0], n.attrs["axis"] if n.attrs["axis"] is not None else
                                          tuple(i for i, d in enumerate(n.kids[0].shape) if d == "1")),
    "flip": lambda n, v, s: np.flip(v[0], n.attrs["axis"]),
    "broadcast_to": lambda n, v, s: np.broadcast_to(v[0], _shape(n, s)),
    "concat": lambda n, v, s: np.concatenate(v, axis=n.attrs["axis"]),
    "stack": lambda n, v, s: np.stack(v, axis=n.attrs["axis"]),
    "take": lambda n, v, s: _take(v[0], v[1], n.attrs["axis"]),
    "zeros": lambda n, v, s: getattr(np, n.attrs["fn"])(_shape(n, s), _dt(n)),
    "full": lambda n, v, s: (np.full(_shape(n, s), v[0], _dt(n)) if n.attrs.get("dt")
                             else np.full(_shape(n, s), v[0])),
    "arange": lambda n, v, s: np.arange(_shape(n, s)[0], dtype=np.int64),
    "eye": lambda n, v, s: np.eye(_shape(n, s)[0], dtype=_dt(n)),
    "one_hot": lambda n, v, s: _one_hot(v[0], int(n.shape[-1]), n.attrs.get("dt")),
    "like": lambda n, v, s: getattr(np, n.attrs["fn"])(v[0]),
    "dindex": lambda n, v, s: np.asarray(v[0])[_resolve(n, v, s)],
    "guard": lambda n, v, s: _guard(n, v[0], v[1]),
}


from .sec12 import EVAL12, EXACT12  # noqa: E402
EVAL.update(EVAL12)
EXACT_OPS |= EXACT12


def _slice_len(sl: slice, length: int) -> int:
    return len(range(*sl.indices(length)))


def _resolve(node: Node, values: list, sizes: dict) -> tuple:
    """The NumPy subscript of a dindex node (run-time parts from `values`, the kids' values), raising
    Expected where tdsl must raise: an index out of range, a slice shorter than its written length."""
    x = np.asarray(values[0])
    subs = node.attrs["subs"]
    named = [s for s in subs if s[0] not in ("none", "ell")]
    axis = x.ndim - len(named) if subs and subs[0][0] == "ell" else 0
    out = []
    for sub in subs:
        kind = sub[0]
        if kind in ("none", "ell"):
            out.append(None if kind == "none" else Ellipsis)
            continue
        length = x.shape[axis]
        if kind == "i":
            if length < (sub[1] + 1 if sub[1] >= 0 else -sub[1]):
                raise Expected(f"index {sub[1]} of an axis of length {length}")
            out.append(sub[1])
        elif kind == "d":
            i = int(values[sub[1]])
            if not -length <= i < length:
                raise Expected(f"run-time index {i} of an axis of length {length}")
            out.append(i)
        elif kind == "a":
            idx = np.asarray(values[sub[1]]).astype(np.int64)
            if idx.size and ((idx < -length) | (idx >= length)).any():
                raise Expected(f"an integer-array index out of range for an axis of length {length}")
            out.append(idx)
        elif kind == "ds":
            j = int(values[sub[1]])
            sl = slice(j, j + dim_value(sub[2], sizes), sub[3])
            if _slice_len(sl, length) != dim_value(sub[4], sizes):
                raise Expected(f"run-time slice {j}:{j} + {sub[2]} of an axis of length {length}")
            if sub[3] and "strided-window-past-the-end" in AVOID and (j < 0 or j + dim_value(sub[2], sizes) > length):
                raise Unspecified("a strided run-time slice whose stop is past the end (tdsl raises; NumPy's count fits)")
            out.append(sl)
        else:
            start, stop = (None if v is None else dim_value(str(v), sizes) for v in sub[1:3])
            sl = slice(start, stop, sub[3])
            if _slice_len(sl, length) != dim_value(sub[4], sizes):
                raise Expected(f"slice {sub[1:4]} of an axis of length {length} is not {sub[4]} long")
            out.append(sl)
        axis += 1
    return tuple(out)


def _guard(node: Node, a, b):
    """A comparison deciding a branch or loop; unspecified when a float operand computed with rounding lies
    within GUARD's margin of the threshold and the decision depends on it."""
    out = np.asarray(NP_BINARY[node.attrs["cmp"]](a, b))
    fa, fb = np.asarray(a), np.asarray(b)
    unsure = np.zeros(out.shape, bool)
    if (fa.dtype.kind == "f" or fb.dtype.kind == "f") and not (exact(node.kids[0]) and exact(node.kids[1])):
        fa, fb = fa.astype(np.float64), fb.astype(np.float64)
        scale = np.maximum(1.0, np.maximum(np.abs(fa), np.abs(fb)))
        diff = np.abs(fa - fb)
        unsure = np.broadcast_to(np.isfinite(diff) & (diff <= GUARD["margin"] * scale), out.shape)
    red = node.attrs["red"]
    if red is None:
        if unsure.any():
            raise Unspecified("a float comparison deciding a branch lies within rounding error of its threshold")
        return np.bool_(out)
    decided = out & ~unsure if red == "any" else ~out & ~unsure
    if decided.any():
        return np.bool_(red == "any")
    if unsure.any():
        raise Unspecified(f"{red}() of float comparisons within rounding error of their threshold")
    return np.bool_(red == "all")


def _value(node: Node, env: dict, sizes: dict):
    return evaluate(node, env, sizes, {})


def _carry(stmt, env: dict) -> None:
    """A weak value carried by a loop takes the dtype its body gives it (section 11), from the start."""
    for name, dtype in stmt.carried.items():
        if name in env:
            env[name] = NP["f64" if dtype == "f32" and GUARD["promote32"] else dtype].type(env[name])


def _names(node: Node, out: set) -> set:
    stack = [node]
    while stack:
        n = stack.pop()
        if n.op in ("var", "param"):
            out.add(n.attrs["name"])
        stack.extend(n.kids)
    return out


def dead_stmts(prog: Program) -> set:
    """ids of the statements whose values nothing reads afterwards (a backward liveness analysis; a loop or
    branch is dead when its whole body is). tdsl need not compute them, nor raise their errors."""
    dead = set()

    def reads(s) -> set:
        out = set()
        for node in (s.expr, s.region, *s.bounds):
            if node is not None:
                _names(node, out)
        return out

    def analyze(stmts: list, live: set) -> set:
        live = set(live)
        for s in reversed(stmts):
            if s.kind in ("assign", "aug", "set"):
                if s.name in live:
                    dead.discard(id(s))
                    live = (live - {s.name}) | reads(s) | ({s.name} if s.kind == "set" else set())
                else:
                    dead.add(id(s))
            elif s.kind == "if":
                inner = analyze(s.body, live) | analyze(s.orelse, live)
                if all(id(b) in dead for b in s.body + s.orelse):
                    dead.add(id(s))
                else:
                    dead.discard(id(s))
                    live = inner | reads(s)
            else:
                cond = reads(s) if s.kind == "while" else set()
                after = live | cond
                while True:
                    start = analyze(s.body, after) - ({s.name} if s.kind == "for" else set())
                    grown = after | start
                    if grown == after:
                        break
                    after = grown
                if all(id(b) in dead for b in s.body):
                    dead.add(id(s))
                else:
                    dead.discard(id(s))
                    live = after | reads(s)
        return live
    analyze(prog.stmts, _names(prog.grad_of or prog.result, set()))
    return dead


def run_stmts(stmts: list, env: dict, sizes: dict, trace: list, dead: set | None = None, top: bool = True) -> None:
    """Run statements as Python does with NumPy values; `trace` records each decision (branch, trip count)."""
    for s in stmts:
        try:
            _run_stmt(s, env, sizes, trace, dead or set())
        except Expected as err:
            # an error in a value nothing reads, inside a loop or branch (or a whole dead loop or branch): tdsl
            # leaves such values out (straight-line ones it still checks); see the fuzzer's findings
            if dead and id(s) in dead and ("dead-update-errors" in AVOID and s.kind == "set" or "dead-block-errors"
                                           in AVOID and (not top or s.kind in ("for", "while", "if"))):
                raise Unspecified(f"an error in a value nothing reads: {err}") from None
            raise


def _run_stmt(s, env: dict, sizes: dict, trace: list, dead: set) -> None:
    """One statement (a loop or branch with its body)."""
    def run_stmts_(body):
        run_stmts(body, env, sizes, trace, dead, top=False)
    if s.kind in ("assign", "aug"):
        env[s.name] = _value(s.expr, env, sizes)
    elif s.kind == "set":
        x = np.array(env[s.name], copy=True)
        region = s.region
        key = _resolve(region, [x] + [_value(k, env, sizes) for k in region.kids[1:]], sizes)
        value = _value(s.expr, env, sizes)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x[key] = value
        env[s.name] = x
    elif s.kind == "for":
        steps = range(*[int(_value(b, env, sizes)) for b in s.bounds])
        if len(steps) > LOOP_LIMIT:
            raise Unspecified("a loop of too many iterations for the oracle")
        trace.append(len(steps))
        _carry(s, env)
        for i in steps:
            env[s.name] = i
            run_stmts_(s.body)
        env.pop(s.name, None)
    elif s.kind == "while":
        _carry(s, env)
        count = 0
        while bool(_value(s.expr, env, sizes)):
            count += 1
            if count > LOOP_LIMIT:
                raise Unspecified("a while loop the oracle gave up on")
            run_stmts_(s.body)
        trace.append(count)
    else:
        try:
            taken = bool(_value(s.expr, env, sizes))
        except Expected as err:
            if "dead-branch-condition-errors" in AVOID and id(s) in dead:
                raise Unspecified(f"an error in the condition of a branch without effect: {err}") from None
            raise
        trace.append(taken)
        run_stmts_(s.body if taken else s.orelse)


def stmt_nodes(prog: Program) -> list:
    """Every expression root of a control-flow program (statements, conditions, bounds, the result)."""
    out = []

    def walk(stmts):
        for s in stmts:
            out.extend(n for n in (s.expr, s.region) if n is not None)
            out.extend(s.bounds)
            walk(s.body)
            walk(s.orelse)
    walk(prog.stmts or [])
    return out + [prog.grad_of or prog.result]


def result_precision(prog: Program):
    """The tolerance's dtype: f32 when any value of a control-flow program is or was rounded to f32."""
    if prog.stmts is None:
        return precision(prog.result)
    memo = {}
    stack, seen = list(stmt_nodes(prog)), set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.dtype == "f32" or rounded_to_f32(node, memo) or node.attrs.get("dt") == "f32":
            return "f32"
        stack.extend(node.kids)
    return None


def run_program(prog: Program, env: dict, sizes: dict, trace: list):
    """A control-flow program's result (or its grad's y) by NumPy alone."""
    run_stmts(prog.stmts, env, sizes, trace, dead_stmts(prog))
    return evaluate(prog.grad_of or prog.result, env, sizes, {})


def evaluate(node: Node, env: dict, sizes: dict, memo: dict):
    """The value of `node` computed by NumPy; raises Expected or Unspecified."""
    if id(node) in memo:
        return memo[id(node)]
    if node.op == "lit":
        value = node.attrs["value"]
    elif node.op in ("param", "size", "var"):
        value = env[node.attrs["name"]]
    else:
        kids = [evaluate(k, env, sizes, memo) for k in node.kids]
        try:
            value = EVAL[node.op](node, kids, sizes)
        except (ValueError, IndexError, OverflowError, ZeroDivisionError) as err:
            raise Expected(f"NumPy raises {type(err).__name__}: {err}") from None
        if node.weak and isinstance(value, np.generic):
            value = value.item()   # a weak value stays a Python scalar (NumPy's ufuncs give a strong np.int64)
    memo[id(node)] = value
    return value


def oracle(prog: Program, args: dict, sizes: dict):
    """The program's result by NumPy alone: a value, or raises Expected / Unspecified."""
    env = dict(args, **sizes, **prog.consts)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        GUARD["margin"] = 1e-3 if result_precision(prog) == "f32" else 1e-7
        if prog.grad_of is not None:
            return finite_difference(prog, env, sizes)
        if prog.stmts is not None:
            out = run_program(prog, env, sizes, [])
        else:
            out = evaluate(prog.result, env, sizes, {})
    return weak_default(out)


def weak_default(out):
    """A Python scalar result (all operands weak) as tdsl returns it: i64, f64 or bool."""
    if isinstance(out, bool):
        return np.bool_(out)
    if isinstance(out, int):
        return np.int64(out)
    if isinstance(out, float):
        return np.float64(out)
    return out


def _difference(values: list, h: float) -> float:
    """A central difference; 0 where y does not move (an infinite y: logsumexp of nothing is -inf)."""
    if values[0] == values[1]:
        return 0.0
    if not (math.isfinite(values[0]) and math.isfinite(values[1])):
        raise Unspecified("y is not finite next to x: no finite difference")
    return (values[0] - values[1]) / (2 * h)


def finite_difference(prog: Program, env: dict, sizes: dict):
    """d y / d x by central differences in f64 (smooth programs only; see docs/testing.md)."""
    x_name = prog.params[0].name
    x = np.array(env[x_name], dtype=np.float64)
    grad = np.zeros_like(x)
    if prog.stmts is not None:
        GUARD["promote32"] = True
        try:
            decided = []
            run_program(prog, dict(env, **{x_name: x}), sizes, decided)
            for i in np.ndindex(x.shape):
                h = 1e-6 * max(1.0, abs(x[i]))
                values = []
                for sign in (1, -1):
                    moved = x.copy()
                    moved[i] += sign * h
                    trace = []
                    values.append(float(run_program(prog, dict(env, **{x_name: moved}), sizes, trace)))
                    if trace != decided:
                        raise Unspecified("a branch or trip count changes within the finite difference's step")
                grad[i] = _difference(values, h)
        finally:
            GUARD["promote32"] = False
        return grad.astype(NP[prog.params[0].dtype])
    for i in np.ndindex(x.shape):
        h = 1e-6 * max(1.0, abs(x[i]))
        values = []
        for sign in (1, -1):
            moved = x.copy()
            moved[i] += sign * h
            local = dict(env, **{x_name: moved.astype(env[x_name].dtype) if prog.params[0].dtype == "f64" else moved})
            values.append(float(evaluate(prog.grad_of, local, sizes, {})))
        grad[i] = _difference(values, h)
    return grad.astype(NP[prog.params[0].dtype])


def _np_axis(node: Node):
    """The axis attribute of a reduce node as NumPy takes it."""
    axis = node.attrs.get("axis")
    return eval(axis) if isinstance(axis, str) else axis   # noqa: S307 -- our own tuple text


TOLERANCE = {"f32": (2e-3, 1e-4), "f64": (1e-6, 1e-9)}   # (rtol, atol as a fraction of the largest |value|)


def compare(got, expected, grad: bool = False, precision: str | None = None) -> str | None:
    """Why `got` is not `expected` (dtype, shape, NaN places, values beyond tolerance), or None.

    `precision` is the least precise float dtype the value was computed in (f64 = f64 @ sin(f32) gets f32's).
    """
    if isinstance(got, tuple) or isinstance(expected, tuple):
        return f"a tuple result {type(got).__name__}"
    g, e = np.asarray(got), np.asarray(expected)
    if g.dtype != e.dtype:
        return f"dtype {g.dtype} != expected {e.dtype}"
    if g.shape != e.shape:
        return f"shape {g.shape} != expected {e.shape}"
    if g.dtype.kind != "f":
        bad = g != e
    else:
        rtol, atol = TOLERANCE[precision if precision in TOLERANCE else TDSL_NAME[g.dtype]]
        if grad:
            rtol, atol = (2e-2, 1e-3) if g.dtype == np.float32 else (1e-4, 1e-6)
        finite = np.isfinite(e)
        scale = max(1.0, float(np.max(np.abs(e[finite]))) if finite.any() else 1.0)
        with np.errstate(all="ignore"):
            close = np.abs(g - e) <= atol * scale + rtol * np.abs(e)
        bad = np.where(finite, ~close, (np.isnan(g) != np.isnan(e)) | (~np.isnan(e) & (g != e)))
        # next to overflow, the order of a product or sum decides between a huge value and inf
        huge = np.finfo(g.dtype).max * 1e-4
        with np.errstate(all="ignore"):
            near_overflow = (np.abs(g) >= huge) & (np.abs(e) >= huge) & (np.sign(g) == np.sign(e))
        bad &= ~near_overflow
    if not bad.any():
        return None
    where = [tuple(int(i) for i in w) for w in zip(*np.nonzero(np.atleast_1d(bad)))][:3]
    gf, ef = np.atleast_1d(g), np.atleast_1d(e)
    shown = ", ".join(f"at {w}: got {gf[w]!r}, expected {ef[w]!r}" for w in where)
    return f"{int(bad.sum())} of {bad.size} values differ; {shown}"
