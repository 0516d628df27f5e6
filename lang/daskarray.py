"""Calling a compiled function with Dask arrays: the Dask graph of its split (lang/chunked.py).

`maybe_call(function, args, kwargs)` returns NotImplemented unless an argument is a
`dask.array.Array` (and never imports Dask: it looks in `sys.modules`); otherwise it returns
lazy Dask arrays whose tasks run the split's generated tdsl functions, each a `StageFunction`
that pickles as its tdsl text and target and is compiled once per worker process
(lang/dasktasks.py, which also places a TdslError raised inside a task at the user's .tdsl
line and names the task's block). With two chunked size variables the call runs in blocks of
them (lang/chunked_blocks.py). `explain(function, chunks)` prints how each value splits.
See docs/dask.md.
"""
from __future__ import annotations

import contextvars
import itertools
import os
import sys
import warnings
import weakref

import numpy as np

from .chunked import Obstacle, Split, roles_of_param, split
from .dasktasks import FunctionRef, StageFunction, _invoke, _module, line_map
from .dims import Dim
from .dtypes import to_numpy
from .errors import TdslArgumentError, TdslWarning

FAN_IN = 8   # partial states folded by one task of the tree reduction
# where a call of a generated function in blocks comes from (lang/chunked_blocks.py), for its tasks' errors
CALLER: contextvars.ContextVar = contextvars.ContextVar("tdsl_dask_caller", default="")


# -- the split of a function, once per (function, variable) ------------------------------------

_SPLITS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def split_of(function, var: str) -> Split | Obstacle:
    """The split of `function` along `var`, or the Obstacle that prevents it (worked out once)."""
    cache = _SPLITS.setdefault(function, {})
    if var not in cache:
        try:
            cache[var] = split(function.graph, var)
            _module(cache[var].text, function.target)   # a build error shows at the call
        except Obstacle as obstacle:
            cache[var] = obstacle
    return cache[var]


def lines_of(function, var: str) -> dict:
    """line_map() of the module of `function`'s split along `var`, worked out once."""
    cache = _SPLITS.setdefault(function, {})
    if ("lines", var) not in cache:
        plan = split_of(function, var)
        cache[("lines", var)] = line_map(plan.graphs, plan.text)
    return cache[("lines", var)]


def _dask_array_type():
    module = sys.modules.get("dask.array")
    return getattr(module, "Array", None) if module is not None else None


def maybe_call(function, args: tuple, kwargs: dict):
    """The call with Dask arrays (lazy Dask arrays back), or NotImplemented when no argument is one."""
    array = _dask_array_type()
    if array is None or not any(isinstance(v, array) for v in itertools.chain(args, kwargs.values())):
        return NotImplemented
    return call(function, args, kwargs)


def call(function, args: tuple, kwargs: dict, strict: bool | None = None):
    """Run `function` lazily on Dask arrays (docs/dask.md). `strict` (None: dask's config
    `tdsl.strict`, default False): raise a TdslError where the function cannot be split along a
    chunked size variable, instead of rechunking it to one chunk with a TdslWarning."""
    import dask
    import dask.array as da
    if strict is None:
        strict = bool(dask.config.get("tdsl.strict", False))
    binder = function._binder
    if "out" in kwargs and function._takes_out:
        raise TdslArgumentError(f"{function.name}() cannot write Dask results into out= buffers",
                                hint="call .compute() on the results, or pass NumPy arrays")
    values = binder._order(args, kwargs)
    values = [_checked_dask(function, p, v) if isinstance(v, da.Array) else binder._convert(p, v)
              for p, v in zip(binder.params, values)]
    sizes = binder._sizes(values)
    binder.run_checks(sizes)
    from .chunked_blocks import maybe_blocks
    found = maybe_blocks(function, values, sizes)   # two chunked variables: blocks of them
    if found is not NotImplemented:
        return found
    var, plan = _choose(function, values, strict)
    values = _aligned(function.graph, values, var, sizes)
    return _build(function, plan, values, var, sizes)


def _checked_dask(function, param, value):
    where = f"argument '{param.name}' of {function.name}()"
    if any(np.isnan(s) for s in value.shape):
        raise TdslArgumentError(f"{where} has unknown chunk sizes ({value.shape})",
                                hint="call .compute_chunk_sizes() on it first")
    if not np.can_cast(value.dtype, to_numpy(param.dtype), "safe"):
        raise TdslArgumentError(f"{where} is {value.dtype}, which cannot be cast safely to {param.dtype}",
                                hint=f"convert it with .astype(numpy.{to_numpy(param.dtype)})")
    if value.ndim != len(param.shape):
        raise TdslArgumentError(f"{where} must have rank {len(param.shape)} ({param.type_str}), "
                                f"got shape {value.shape}")
    return value


def _choose(function, values: list, strict: bool):
    """The size variable to split along and its Split, or (None, None): every chunked variable, in
    signature order, until one splits; an Obstacle warns (or, strict, raises) naming its line."""
    import dask.array as da
    graph = function.graph
    chunked = []
    for var in graph.size_vars:
        for p, v in zip(graph.params, values):
            if isinstance(v, da.Array) and any(d == Dim.of(var) and len(c) > 1 for d, c in zip(p.shape, v.chunks)):
                chunked.append(var)
                break
    first = None
    for var in chunked:
        found = split_of(function, var)
        if isinstance(found, Split):
            return var, found
        first = first or (var, found)
    if first is not None:
        var, obstacle = first
        where = obstacle.where()
        message = (f"{graph.name}() cannot run chunk by chunk along {var}: "
                   f"{where + ': ' if where else ''}{obstacle.reason}")
        if strict:
            raise TdslArgumentError(message, obstacle.loc,
                                    hint=f"rechunk {var} to one chunk, or call without tdsl.strict")
        warnings.warn(TdslWarning(message + f"; rechunking {var} to one chunk"), stacklevel=_user_level())
    return None, None


def _user_level() -> int:
    """The stack level of the first caller outside tdsl's own folders (a warning names the user's
    line, however many of tdsl's frames the call went through)."""
    from .api import _own_folders
    own = _own_folders()
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and os.path.dirname(frame.f_code.co_filename) in own:
        frame, level = frame.f_back, level + 1
    return level


def _aligned(graph, values: list, var: str | None, sizes: dict) -> list:
    """The arguments as Dask arrays chunked along `var` alone, with the first chunked argument's
    chunks (NumPy arguments with a `var` axis are cut the same way); others as they are."""
    import dask.array as da
    reference = None
    for p, v in zip(graph.params, values):
        if var is not None and isinstance(v, da.Array) and roles_of_param(p, var):
            reference = v.chunks[[str(d) for d in p.shape].index(var)]
            reference = tuple(c for c in reference if c) or reference[:1]   # no empty chunk (max of none fails)
            break
    out = []
    for p, v in zip(graph.params, values):
        if not isinstance(v, da.Array) and not (var is not None and roles_of_param(p, var)):
            out.append(v)
            continue
        chunks = tuple(reference if (var is not None and d == Dim.of(var)) else (n,)
                       for d, n in zip(p.shape, (d.evaluate(sizes) for d in p.shape)))
        if isinstance(v, da.Array):
            out.append(v if v.chunks == chunks else v.rechunk(chunks))
        else:
            out.append(da.from_array(v, chunks=chunks))
    return out


# -- the Dask graph ------------------------------------------------------------------------------

def _pick(result, index: int):
    return result[index]


def _block(result, index: int):
    return np.asarray(result[index])


def _as_block(value):
    return np.asarray(value)


def _first_row(block, axis: int):
    """At most one position of a chunk along `axis` (it binds the sizes of the other axes; none
    when the axis is empty)."""
    return np.ascontiguousarray(block[(slice(None),) * axis + (slice(0, 1),)])


def _fold(combine, where: str, select, *items):
    """Partial states of consecutive chunks, combined in order (the earlier chunk on the left)."""
    states = [tuple(item[i] for i in select) if select is not None else item for item in items]
    acc = states[0]
    for state in states[1:]:
        acc = _invoke(combine, where, *acc, *state)
    return tuple(acc)


class _Graph:
    """The tasks of one call: its layer of the Dask graph and where each input comes from."""

    def __init__(self, function, values: list, var: str | None, sizes: dict, token: str):
        import dask.array as da
        self.function, self.values, self.var, self.sizes = function, values, var, sizes
        self.prefix = f"tdsl-{function.name}-{token}"
        self.layer: dict = {}
        self.arrays = [v if isinstance(v, da.Array) else None for v in values]
        params = function.graph.params
        self.axes = [[str(d) for d in p.shape].index(var) if var is not None and roles_of_param(p, var) else None
                     for p in params]
        ref = next((a.chunks[ax] for a, ax in zip(self.arrays, self.axes) if ax is not None), None)
        self.chunks = ref if ref is not None else (sizes.get(var, 1),)
        self.offsets = [int(o) for o in np.cumsum((0,) + tuple(self.chunks))[:-1]]
        self.first = next((p for p, ax in enumerate(self.axes) if ax is not None), None)

    def where(self, i: int | None, stage: str = "") -> str:
        """Which task of the call: chunk i's (a block of the first chunked argument), or a `stage`."""
        call = f"of the Dask call of {self.function.name}(){CALLER.get()}"
        if i is None or self.first is None:
            return f"in {stage or 'the one task'} {call}"
        name = self.function.graph.params[self.first].name
        block = self.block_key(self.first, i)[1:]
        lo = self.offsets[i]
        return f"in block {block} of {name} (positions {lo}:{lo + self.chunks[i]} along {self.var}) {call}"

    def block_key(self, p: int, i: int) -> tuple:
        array, axis = self.arrays[p], self.axes[p]
        return (array.name,) + tuple(i if a == axis else 0 for a in range(array.ndim))

    def source(self, spec: tuple, i: int):
        """The key or value a stage's input `spec` reads for chunk `i`."""
        kind = spec[0]
        if kind == "chunk":
            return self.block_key(spec[1], i)
        if kind == "whole":
            p = spec[1]
            if self.arrays[p] is not None:
                return self.block_key(p, 0)
            key = (f"{self.prefix}-arg", p)
            value = self.values[p]
            # a scalar as a NumPy scalar, not a 0-d array: the tasks' calls take the fast path
            # (which reuses dropped results) instead of converting it on every call
            self.layer.setdefault(key, value[()] if isinstance(value, np.ndarray) and value.ndim == 0 else value)
            return key
        if kind == "row":
            key = (f"{self.prefix}-row", spec[1])
            self.layer[key] = (_first_row, self.block_key(spec[1], 0), self.axes[spec[1]])
            return key
        if kind == "global":
            return (f"{self.prefix}-g", spec[1])
        if kind == "size":
            return self.sizes[self.var]
        if kind == "offset":
            return self.offsets[i]
        raise ValueError(spec)

    def fn_key(self, name: str, fn) -> tuple:
        """The key of a task's function: data of the graph, so that a cluster sends each worker
        its source once, not once per task."""
        key = (f"{self.prefix}-fn", name)
        self.layer.setdefault(key, fn)
        return key

    def task(self, fn_key: tuple, stage, i: int, where: str, extra: dict | None = None) -> tuple:
        return (_invoke, fn_key, where,
                *[extra[s] if extra and s in extra else self.source(s, i) for s in stage.inputs])

    def output(self, k: int, chunk_axis: int | None, block) -> object:
        """Result k of the function as a Dask array; `block(i)` is the task of its chunk i."""
        import dask.array as da
        from dask.highlevelgraph import HighLevelGraph
        node = self.function.graph.outputs[k]
        shape = [d.evaluate(self.sizes) for d in node.shape]
        name = f"{self.prefix}-out{k}"
        chunks = tuple(tuple(self.chunks) if a == chunk_axis else (n,) for a, n in enumerate(shape))
        count = len(self.chunks) if chunk_axis is not None else 1
        for i in range(count):
            self.layer[(name,) + tuple(i if a == chunk_axis else 0 for a in range(len(shape)))] = block(i)
        deps = [a for a in self.arrays if a is not None]
        return name, chunks, to_numpy(node.dtype), lambda layer: da.Array(
            HighLevelGraph.from_collections(name, layer, dependencies=deps), name, chunks, dtype=to_numpy(node.dtype))


def _build(function, plan: Split | None, values: list, var: str | None, sizes: dict):
    import dask.array as da
    from dask.base import tokenize
    token = tokenize(plan.text if plan else function.signature, function.target, var,
                     *[v.name if isinstance(v, da.Array) else v for v in values])
    g = _Graph(function, values, var, sizes, token)
    outputs = _whole(g) if plan is None else _passes(g, plan)
    layer = dict(g.layer)   # every result shares the one layer: computed together, tasks run once
    arrays = [make(layer) for _, _, _, make in outputs]
    return tuple(arrays) if function.graph.tuple_result else arrays[0]


def _whole(g: _Graph) -> list:
    """The function on whole arrays, one task (nothing chunked, or nothing splits)."""
    key = (f"{g.prefix}-whole", 0)
    fn = g.fn_key("whole", FunctionRef(g.function))
    g.layer[key] = (_invoke, fn, g.where(None), *[g.source(("whole", p), 0) for p in range(len(g.values))])
    return [g.output(k, None, lambda i, k=k: (_block, key, k)) for k in range(len(g.function.graph.outputs))]


def _passes(g: _Graph, plan: Split) -> list:
    text, target, prefix = plan.text, g.function.target, g.prefix
    lines = lines_of(g.function, plan.var)

    def stage(name: str) -> StageFunction:
        return StageFunction(text, target, name, lines.get(name))
    for p in plan.passes:
        chunk_fn = g.fn_key(p.chunk.name, stage(p.chunk.name))
        for i in range(len(g.chunks)):
            g.layer[(f"{prefix}-chunk{p.level}", i)] = g.task(chunk_fn, p.chunk, i, g.where(i))
        if p.combine is None:
            continue
        root = _tree(g, p, g.fn_key(p.combine.name, stage(p.combine.name)))
        states = {}
        for idx, spec in enumerate(p.combine.outputs):
            key = (f"{prefix}-state{p.level}", idx)
            g.layer[key] = (_pick, root, idx)
            states[spec] = key
        fin = (f"{prefix}-finalize{p.level}", 0)
        fn = g.fn_key(p.finalize.name, stage(p.finalize.name))
        g.layer[fin] = g.task(fn, p.finalize, 0, g.where(None, f"the finalize of pass {p.level}"), states)
        for idx, (_, gid) in enumerate(p.finalize.outputs):
            g.layer[(f"{prefix}-g", gid)] = (_pick, fin, idx)
    outputs = []
    for k, where in enumerate(plan.results):
        if where[0] == "global":
            outputs.append(g.output(k, None, lambda i, gid=where[1]: (_as_block, (f"{prefix}-g", gid))))
        elif where[0] == "first":
            outputs.append(g.output(k, None, lambda i, w=where: (_block, (f"{prefix}-chunk0", 0), w[2])))
        else:
            axis = plan.roles[plan.graph.outputs[k]].axis
            outputs.append(g.output(k, axis, lambda i, w=where: (_block, (f"{prefix}-chunk{w[1]}", i), w[2])))
    return outputs


def _tree(g: _Graph, p, combine) -> tuple:
    """The tree reduction of pass p's partial states, in chunk order; the key of the root."""
    select = [idx for idx, spec in enumerate(p.chunk.outputs) if spec[0] == "state"]
    items = [(f"{g.prefix}-chunk{p.level}", i) for i in range(len(g.chunks))]
    depth = 0
    while depth == 0 or len(items) > 1:
        groups = [items[a:a + FAN_IN] for a in range(0, len(items), FAN_IN)]
        items = []
        for j, group in enumerate(groups):
            key = (f"{g.prefix}-fold{p.level}-{depth}", j)
            g.layer[key] = (_fold, combine, g.where(None, f"the combine of pass {p.level}"),
                            select if depth == 0 else None, *group)
            items.append(key)
        depth += 1
    return items[0]


def explain(function, chunks) -> str:
    """`Function.explain(chunks={"n": ...})`: how each value splits along each chunked size
    variable named (a dict's keys, or names), one section per variable."""
    return explain_graph(function.graph, chunks)


def explain_graph(graph, chunks, only_present: bool = False) -> str:
    """explain() of a function graph (`tdslc graph --chunks n`); `only_present`: leave out the
    names that are not size variables of `graph` instead of raising."""
    from .chunked import explain_text
    names = [chunks] if isinstance(chunks, str) else list(chunks)
    if only_present:
        names = [v for v in names if v in graph.size_vars]
    sections = []
    for var in names:
        try:
            sections.append(explain_text(graph, var))
        except ValueError as err:
            raise TdslArgumentError(str(err)) from None
    if len(names) == 2:   # both chunked: blocks of them
        from .chunked_blocks import explain_blocks
        sections.append(explain_blocks(graph, *names))
    return "\n\n".join(sections)
