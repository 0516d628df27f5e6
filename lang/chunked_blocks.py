"""Dask arguments chunked along two size variables at once: blocks of n × d (docs/dask.md).

The call splits along the first chunked variable (`n`) as a one-variable call does
(lang/chunked.py), and runs each of that split's generated functions on Dask arrays chunked
along the second (`d`), so that lang/daskarray.py splits each of them along `d` in turn: a
per-chunk function runs on a row of blocks (chunk i of `n`, every chunk of `d`), the combine
and finalize functions on partial states and globals still chunked along `d`. When one of the
generated functions cannot split along `d`, the call is the one-variable call (`d` merged).
"""
from __future__ import annotations

import threading
import weakref

from .chunked import Split, roles_of_param, split
from .chunked_explain import explain_rows, passes, table
from .chunked_rules import Obstacle, analyse
from .daskarray import CALLER, split_of
from .dims import Dim


def maybe_blocks(function, values: list, sizes: dict):
    """The lazy results in blocks when two size variables are chunked and every function of the
    split along the first splits along the second; else NotImplemented (lang/daskarray.py's `call`
    asks, with the checked arguments, before it splits along one variable)."""
    pair = chunked_pair(function.graph, values)
    if pair is None:
        return NotImplemented
    plans = _PLANS.setdefault(function, {})
    if pair not in plans:
        plans[pair] = isinstance(blocks_plan(function.graph, *pair), Split)
    if not plans[pair]:
        return NotImplemented
    plan = split_of(function, pair[0])
    return _run(function, plan, _aligned(function.graph, values, pair[0]), pair[0], sizes)


_PLANS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # function -> {pair: whether it splits}


def chunked_pair(graph, values: list) -> tuple[str, str] | None:
    """The first two size variables, in signature order, that a Dask argument has in more than one
    chunk, or None."""
    import dask.array as da
    chunked = [var for var in graph.size_vars if any(
        isinstance(v, da.Array) and any(d == Dim.of(var) and len(c) > 1 for d, c in zip(p.shape, v.chunks))
        for p, v in zip(graph.params, values))]
    return (chunked[0], chunked[1]) if len(chunked) > 1 else None


def blocks_plan(graph, outer: str, inner: str) -> Split | Obstacle:
    """The split of `graph` along `outer` when each of its generated functions splits along
    `inner` (or has no `inner` axis), else the first Obstacle (compiles nothing)."""
    try:
        plan = split(graph, outer)
        for stage in plan.graphs:
            if inner in stage.size_vars:
                analyse(stage, inner)
    except Obstacle as obstacle:
        return obstacle
    return plan


def _aligned(graph, values: list, var: str) -> list:
    """The arguments with a `var` axis as Dask arrays cut along it like the first chunked one (no
    empty chunk; their other axes keep their chunks); the others as they are."""
    import dask.array as da
    reference = next(v.chunks[[str(d) for d in p.shape].index(var)] for p, v in zip(graph.params, values)
                     if isinstance(v, da.Array) and roles_of_param(p, var))
    reference = tuple(c for c in reference if c) or reference[:1]
    out = []
    for p, v in zip(graph.params, values):
        if not roles_of_param(p, var):
            out.append(v)
            continue
        axis = [str(d) for d in p.shape].index(var)
        if not isinstance(v, da.Array):
            v = da.from_array(v, chunks=tuple(-1 if a != axis else reference for a in range(v.ndim)))
        out.append(v.rechunk({axis: reference}) if v.chunks[axis] != reference else v)
    return out


class _Run:
    """The values one block call reads: its arguments cut along `var`, and the globals made so far."""

    def __init__(self, function, values: list, var: str, sizes: dict):
        self.graph, self.values, self.var, self.sizes = function.graph, values, var, sizes
        self.axes = [[str(d) for d in p.shape].index(var) if roles_of_param(p, var) else None
                     for p in self.graph.params]
        self.chunks = next(v.chunks[a] for v, a in zip(values, self.axes) if a is not None)
        self.offsets = [sum(self.chunks[:i]) for i in range(len(self.chunks))]
        self.globals: dict = {}

    def source(self, spec: tuple, i: int, states: dict | None = None):
        """What an input `spec` of a generated function reads for chunk `i` (lang/chunked.py's Stage)."""
        kind = spec[0]
        if kind == "chunk":
            v, axis = self.values[spec[1]], self.axes[spec[1]]
            return v.blocks[tuple(i if a == axis else slice(None) for a in range(v.ndim))]
        if kind == "whole":
            return self.values[spec[1]]
        if kind == "row":
            v, axis = self.values[spec[1]], self.axes[spec[1]]
            return v[tuple(slice(0, 1) if a == axis else slice(None) for a in range(v.ndim))]
        if kind == "global":
            return self.globals[spec[1]]
        if kind == "size":
            return self.sizes[self.var]
        if kind == "offset":
            return self.offsets[i]
        return states[spec]


def _run(function, plan: Split, values: list, var: str, sizes: dict):
    """The lazy results: per pass, its per-chunk function on each row of blocks, its partial
    states folded in chunk order (the earlier chunk on the left) and finalized into globals."""
    import dask.array as da
    module = _stage_module(plan, function.target)
    run = _Run(function, values, var, sizes)
    rows = {}
    for p in plan.passes:
        chunk, rows[p.level] = module[p.chunk.name], []
        for i, size in enumerate(run.chunks):
            where = f", for chunk {i} (positions {run.offsets[i]}:{run.offsets[i] + size} along {var})"
            rows[p.level].append(_called(chunk, [run.source(s, i) for s in p.chunk.inputs], where, function))
        if p.combine is None:
            continue
        picked = [k for k, spec in enumerate(p.chunk.outputs) if spec[0] == "state"]
        states = [[row[k] for k in picked] for row in rows[p.level]]
        combine, where = module[p.combine.name], f", in the combine of pass {p.level} along {var}"
        while len(states) > 1:
            folded = [_called(combine, [*left, *right], where, function)
                      for left, right in zip(states[::2], states[1::2])]
            states = folded + states[len(folded) * 2:]
        combined = dict(zip(p.combine.outputs, states[0]))
        final = _called(module[p.finalize.name], [run.source(s, 0, combined) for s in p.finalize.inputs],
                        f", in the finalize of pass {p.level} along {var}", function)
        run.globals.update({gid: value for (_, gid), value in zip(p.finalize.outputs, final)})
    results = []
    for k, where in enumerate(plan.results):
        if where[0] == "global":
            results.append(run.globals[where[1]])
        elif where[0] == "first":
            results.append(rows[0][0][where[2]])
        else:
            axis = plan.roles[plan.graph.outputs[k]].axis
            results.append(da.concatenate([row[where[2]] for row in rows[where[1]]], axis=axis))
    return tuple(results) if function.graph.tuple_result else results[0]


_STAGES: dict = {}
_STAGES_LOCK = threading.Lock()


def _stage_module(plan: Split, target: str):
    """The generated functions of `plan`, compiled from their graphs (not from `plan.text`): their
    values keep the places in the user's file, so the calls along the second variable, and the
    errors their tasks raise, name the user's lines."""
    key = (plan.text, target, plan.graph.file)
    with _STAGES_LOCK:
        if key not in _STAGES:
            from .pipeline import load_graphs
            _STAGES[key] = load_graphs(plan.graphs, target, plan.graph.file)
        return _STAGES[key]


def _called(stage, args: list, where: str, function) -> list:
    """stage(*args) (its own Dask call, along the second variable), its tasks' errors naming
    `where` in the call of `function`; the results as Dask arrays."""
    token = CALLER.set(f"{where} of {function.name}(){CALLER.get()}")
    try:
        return _outputs(stage(*args))
    finally:
        CALLER.reset(token)


def _outputs(values) -> list:
    """A generated function's results as Dask arrays (they are a tuple; one may be a plain value
    when the function read no Dask argument)."""
    import dask.array as da
    return [v if isinstance(v, da.Array) else da.from_array(v, chunks=-1) for v in values]


def explain_blocks(graph, first: str, second: str) -> str:
    """How a call with both variables chunked runs, and how each value splits along each of them
    (`explain(chunks=...)` naming two size variables of `graph`)."""
    outer, inner = sorted((first, second), key=graph.size_vars.index)
    lines = [graph.signature]
    plan = blocks_plan(graph, outer, inner)
    if isinstance(plan, Obstacle):
        where = plan.where()
        lines.append(f"  {outer} and {inner} chunked: no blocks of {outer} × {inner}: "
                     f"{where + ': ' if where else ''}{plan.reason}")
        lines.append("  a call splits along one of them (above), merging the other to one chunk")
        return "\n".join(lines)
    counts = "; ".join(f"{stage.name}: " + (f"{_count(passes(analyse(stage, inner)))} over {inner}"
                                            if inner in stage.size_vars else f"no {inner} axis")
                       for stage in plan.graphs)
    lines.append(f"  {outer} and {inner} chunked: blocks of {outer} × {inner}; {_count(passes(plan.roles))} over "
                 f"the chunks of {outer}, each generated function split along {inner}")
    lines.append(f"  ({counts})")
    roles = analyse(graph, inner)
    inner_rows = dict(explain_rows(graph, inner, roles))
    rows = [(left, f"{how} | {inner_rows.get(left, 'inside a fused reduction')}")
            for left, how in explain_rows(graph, outer, plan.roles)]
    return "\n".join(lines + table(rows))


def _count(levels: int) -> str:
    return f"{levels} pass{'es' if levels > 1 else ''}"
