"""Function and Module: what `tdsl.load`, `tdsl.compile` and `tdsl.function` hand back."""
from __future__ import annotations

from difflib import get_close_matches
from html import escape
from operator import attrgetter
import shutil
import sys
from types import SimpleNamespace
import numpy as np

from .bind import Binder
from .errors import TdslError, hide_internal_frames
from .dims import shape_str
from .dtypes import to_numpy
from .graph import REGION_OPS, FunctionGraph, Region, region_results, toposort
from .interp import out_of_memory, run_graph
from .limits import check_sizes, value_sizes
from .runner import Runner
from .targets import REFERENCE
from .errors import TdslRuntimeError


class GuardedReference(Runner):
    """The reference interpreter with the NaN guard's checks after each node."""

    def __init__(self, plain: Runner):
        self.plain = plain
        self.call, self.source = plain.call, plain.source

    def __call__(self, arrays: list, sizes: dict, outs: list | None = None) -> list:
        from .interp import run as run_reference
        p = self.plain
        return run_reference(p.graph, arrays, sizes, limits=p.limits, roots=p.roots, guard=True)


class Function:
    """One compiled tdsl function: call it with NumPy arrays, inspect it without running it."""

    def __init__(self, graph: FunctionGraph, target: str, runner: Runner, nan_guard: bool = False):
        self.graph = graph
        self.target = target
        self.guarded = nan_guard      # every call runs the NaN guard (docs/debugging.md)
        self._guard: Function | None = self if nan_guard else None   # the guarded build, once made
        self._plain: Function | None = None if nan_guard else self   # the normal build, once made
        if nan_guard and target == REFERENCE:
            runner = GuardedReference(runner)
        self._runner = runner
        self._binder = Binder(runner.call, runner.device_types)
        self._takes_out = "out" not in self._binder.names   # a parameter named `out` wins
        # shapes that must fit in memory, checked before a compiled target allocates its results
        # (the reference checks them as it runs)
        self._limits = value_sizes(graph) if target != REFERENCE else []
        # A target may offer a fast path (arguments that need no converting), which hands
        # everything else to the checked path `_checked_call`.
        fast = runner.fast_call(self._binder, graph.tuple_result, self._checked_call, self._takes_out)
        self._call = fast or self._checked_call
        if nan_guard:   # (the fast path too: a guarded call recycles its results as a normal one does)
            self._unguarded_call, self._call = self._call, self._guarded_call
        self.__name__ = graph.name
        self.__doc__ = graph.signature

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def signature(self) -> str:
        return self.graph.signature

    @property
    def source(self) -> str:
        """The code the function runs: for `c`, its own part of the module's C (the module's is
        `Module.source`); OpenCL's whole program; the .tdsl text on the `numpy` target."""
        return self._runner.source

    # Calling a Function calls `self._call` directly: a property that returns it costs no
    # Python frame (attrgetter is C), where a `def __call__` forwarding to it costs ~0.4 us.
    __call__ = property(attrgetter("_call"), doc="Run the function; `out=` (an array, or a tuple "
                        "of them) receives the results in place.")

    def _checked_call(self, /, *args, **kwargs):
        """A call with every argument converted and checked (`Binder.bind`); a TdslError leaves it
        with tdsl's frames cut, as from `tdsl.load` (only in `except`: a good call pays nothing)."""
        try:
            if "dask.array" in sys.modules:   # Dask arguments: lazy Dask results (docs/dask.md)
                from .daskarray import maybe_call
                lazy = maybe_call(self, args, kwargs)
                if lazy is not NotImplemented:
                    return lazy
            out = kwargs.pop("out", None) if self._takes_out and "out" in kwargs else None
            arrays, sizes = self._binder.bind(args, kwargs)
            if self._limits:
                check_sizes(self._limits, sizes)
            if out is not None:
                return self._call_into(out, arrays, sizes)
            if self._runner.writes_into:
                results = self._runner(arrays, sizes, self._fresh_results(sizes))
            else:
                results = self._runner(arrays, sizes)
            results = [r[()] if isinstance(r, np.ndarray) and r.ndim == 0 else r for r in results]
            return tuple(results) if self.graph.tuple_result else results[0]
        except TdslError as err:
            hide_internal_frames(err)
            raise

    def nan_guard(self, /, *args, **kwargs):
        """One call with the NaN guard: the results, or a TdslRuntimeError at the first value born
        NaN or infinite from finite inputs, naming its .tdsl place, op and operand (and, in a loop,
        the iteration). Builds the function's guarded variant on first use (docs/debugging.md)."""
        try:
            guard = self._guard or self._variant(True)
            return guard._call(*args, **kwargs)
        except TdslError as err:
            hide_internal_frames(err)
            raise

    def _variant(self, nan_guard: bool) -> "Function":
        """The guarded (or normal) build of this function, compiled once and kept."""
        from .pipeline import compile_module
        if self.target == REFERENCE:
            other = Function(self.graph, self.target, getattr(self._runner, "plain", self._runner), nan_guard)
        else:
            other = compile_module(self.target, graphs=[self.graph], path=self.graph.file,
                                   nan_guard=nan_guard)[self.name]
        if nan_guard:
            self._guard, other._plain = other, self
        else:
            self._plain, other._guard = other, self
        return other

    def _guarded_call(self, /, *args, **kwargs):
        """A guarded build's call: a compiled target's check names the op; the reference, run on
        the failure path only, says which birth came first and what explains it (tdsl/nanguard.py)."""
        try:
            return self._guarded_run(args, kwargs)
        except TdslError as err:
            hide_internal_frames(err)
            raise

    def _guarded_run(self, args, kwargs):
        try:
            return self._unguarded_call(*args, **kwargs)
        except TdslRuntimeError as err:
            if not err.nan_guard or self.target == REFERENCE:
                raise
            found = self._reference_birth(args, kwargs)
            if isinstance(found, TdslRuntimeError):
                raise found from None
            if getattr(err, "candidate", False):   # a sum of non-finite operands: carried, not born
                return (self._plain or self._variant(False))._call(*args, **kwargs)
            raise

    def _reference_birth(self, args, kwargs):
        """The reference's NaN-guard error for these arguments, or None when it finds no birth."""
        from .interp import run as run_reference
        if self._takes_out:
            kwargs = {k: v for k, v in kwargs.items() if k != "out"}
        arrays, sizes = self._binder.bind(args, kwargs)
        arrays = [a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else a for a in arrays]
        try:
            run_reference(self.graph, arrays, sizes, guard=True)
        except TdslRuntimeError as err:
            return err if err.nan_guard else None
        return None

    def _fresh_results(self, sizes: dict) -> list[np.ndarray]:
        """Arrays for the results (their shapes fit: `check_sizes`); an allocation that fails is
        a TdslRuntimeError naming the value."""
        outs = []
        for node in self.graph.outputs:
            try:
                outs.append(np.empty(tuple(d.evaluate(sizes) for d in node.shape), to_numpy(node.dtype)))
            except MemoryError:
                raise out_of_memory(node, sizes) from None
        return outs

    def _call_into(self, out, arrays: list, sizes: dict):
        """Results written into caller buffers: directly when the target can and nothing overlaps."""
        shapes = [tuple(d.evaluate(sizes) for d in o.shape) for o in self.graph.outputs]
        outs = self._binder.check_out(out, shapes, [o.dtype for o in self.graph.outputs])
        overlap = any(np.may_share_memory(o, a) for o in outs for a in arrays) or \
            any(np.may_share_memory(o, p) for i, o in enumerate(outs) for p in outs[:i])
        if self._runner.writes_into and not overlap:
            self._runner(arrays, sizes, outs)
        else:
            for o, r in zip(outs, self._runner(arrays, sizes)):
                np.copyto(o, r)
        return tuple(outs) if self.graph.tuple_result else outs[0]

    def __reduce__(self):
        """A Function pickles as its .tdsl text, target and name, and is compiled again on its first
        call or attribute use where it is loaded (from the compile cache; lang/dasktasks.py): a
        Dask worker never receives a shared library, a scheduler never compiles it, and its errors
        there name this function's .tdsl file:line:col."""
        from .dasktasks import reduce_function
        return reduce_function(self)

    def explain(self, chunks=None) -> str:
        """Every parameter, named value and result with its dtype and symbolic shape; the names
        bound inside a loop or branch are listed under it, indented, with its line. `chunks`
        ({"n": ...} or size-variable names): how each value splits when they are chunked
        (Dask arrays, docs/dask.md)."""
        if chunks is not None:
            from .daskarray import explain
            return explain(self, chunks)
        g = self.graph
        lines = [g.signature]
        if g.size_vars:
            lines.append("  size variables: " + ", ".join(g.size_vars))
        for p in g.params:
            lines.append(f"  param  {p.name}: {p.type_str}")
        _explain_items(g, "  ", lines)
        for i, out in enumerate(g.outputs):
            lines.append(f"  result {i}: {out.type_str}")
        return "\n".join(lines)

    def trace(self, /, *args, **kwargs) -> dict:
        """Run on the reference interpreter and return every named value, computed.

        The dict holds the parameters (as bound), each named intermediate in source
        order (a rebound name keeps its last value) and the results as `return`
        (or `return[i]` for several). A name bound inside a loop body holds its value
        at every iteration, stacked along a new leading axis (one axis per loop level;
        a list where the shapes differ between iterations); inside an `if`, the taken
        branch's value. See docs/python.md, "Tracing loops and branches".
        """
        arrays, sizes = self._binder.bind(args, kwargs)
        g = self.graph
        named_nodes = [n for _, n in g.named]
        record: dict = {}
        outputs, values = run_graph(g, {p.name: a for p, a in zip(g.params, arrays)}, sizes, named_nodes,
                                    record=record)
        out: dict = {p.name: a for p, a in zip(g.params, arrays)}
        named = {name: _fresh(values[node], node.dtype) for name, node in g.named}   # the last binding
        out.update(_step_entries(g, {"values": named, "regions": record}, sizes))
        if g.tuple_result:
            for i, (o, node) in enumerate(zip(outputs, g.outputs)):
                out[f"return[{i}]"] = _fresh(o, node.dtype)
        else:
            out["return"] = _fresh(outputs[0], g.outputs[0].dtype)
        return out

    def profile(self, /, *args, repeat: int = 10, **kwargs):
        """Run the function's profiling build `repeat` times (after one untimed call) and return
        a `tdsl.profile.Profile`: per kernel, the .tdsl lines it computes, its time and share,
        bytes moved and GB/s against the machine's measured bandwidth. Print it for the table;
        `.to_dict()` gives plain data (docs/debugging.md, "Per-line profiler"). Compiled targets
        only; a parameter named `repeat` is then passed positionally."""
        from .profile import profile
        try:
            return profile(self, args, kwargs, repeat)
        except TdslError as err:
            hide_internal_frames(err)
            raise

    def to_tdsl(self) -> str:
        """The graph as .tdsl source text, which parses back to the same graph."""
        from .printer import to_tdsl
        return to_tdsl(self.graph)

    def __repr__(self) -> str:
        return f"<tdsl.Function {self.signature} target={self.target}>"

    def _repr_html_(self) -> str:
        """Jupyter's view: the signature, explain()'s table and the graph (SVG where Graphviz's
        `dot` is installed, its text listing otherwise)."""
        from .printer import graph_dot, graph_text
        g = self.graph
        rows = [("param", p.name, p.dtype, p.shape, None, 0) for p in g.params]
        _html_rows(g, 0, rows)
        rows += [("result", str(i), o.dtype, o.shape, None, 0) for i, o in enumerate(g.outputs)]
        body = "".join(
            f"<tr><td>{kind}</td><td style=\"text-align:left;padding-left:{1 + 1.5 * depth}em\">"
            f"<code>{escape(name)}</code></td><td>{escape(dtype)}</td>"
            f"<td>{_shape_html(shape)}</td><td>{'' if line is None else line}</td></tr>"
            for kind, name, dtype, shape, line, depth in rows)
        sizes = (f"<p>size variables: <code>{escape(', '.join(g.size_vars))}</code></p>" if g.size_vars else "")
        return (f'<div class="tdsl-function"><p><code>{escape(self.signature)}</code> '
                f"<small>(target {escape(self.target)})</small></p>{sizes}"
                "<table><thead><tr><th></th><th>name</th><th>dtype</th><th>shape</th><th>line</th></tr></thead>"
                f"<tbody>{body}</tbody></table>"
                f"<details><summary>graph</summary>{_graph_html(graph_dot(g), graph_text(g))}</details></div>")


def _html_rows(graph: FunctionGraph, depth: int, rows: list) -> None:
    """explain()'s named values, loops and branches as rows (kind, name, dtype, shape, line, depth)
    of the HTML table: a loop's or branch's names indented under it."""
    from .printer import region_title
    for item in _items(graph):
        if item[0] == "value":
            _, name, node = item
            rows.append(("value", name, node.dtype, node.shape, node.loc.line if node.loc else None, depth))
            continue
        region = item[1].attr("region")
        line = region.loc.line if region.loc else None
        title = region_title(region)
        rows.append((region.kind, title, "", None, line, depth))
        if region.kind == "if":
            _html_rows(region.graphs[0], depth + 1, rows)
            if _items(region.graphs[1]):
                other = "else" if title.startswith("if") else "false branch"
                rows.append(("else", other, "", None, None, depth))
                _html_rows(region.graphs[1], depth + 1, rows)
        else:
            _html_rows(region.body, depth + 1, rows)


def _shape_html(shape) -> str:
    """A value's shape in the table (`scalar` for none); a loop's or branch's row has none (None)."""
    return "" if shape is None else f"<code>{escape(shape_str(shape) or 'scalar')}</code>"


DOT_TIMEOUT = 10   # seconds Graphviz may take to lay out one graph for the HTML view


def _graph_html(dot_text: str, text: str) -> str:
    """The graph as inline SVG from Graphviz's `dot` where it is installed and succeeds, else its
    text listing in a <pre>."""
    dot = shutil.which("dot")
    if dot:
        import subprocess   # here: a load (and a call) never needs it
        try:
            done = subprocess.run([dot, "-Tsvg"], input=dot_text, capture_output=True, text=True,
                                  timeout=DOT_TIMEOUT)
        except (OSError, subprocess.SubprocessError):
            done = None
        if done is not None and done.returncode == 0 and "<svg" in done.stdout:
            return done.stdout[done.stdout.index("<svg"):]   # no XML prolog nor doctype inside HTML
    return f"<pre>{escape(text)}</pre>"


def _fresh(value, dtype: str):
    arr = np.array(value, dtype=to_numpy(dtype), copy=True, order="C")
    return arr[()] if arr.ndim == 0 else arr


# -- loops and branches in explain() and trace() -------------------------------------------

_ITEMS: dict[int, tuple[FunctionGraph, list[tuple]]] = {}


def _items(graph: FunctionGraph) -> list[tuple]:
    """The named values of `graph` in source order, each preceded by the loops and branches it
    depends on that come before it: ("value", name, node) and ("region", a result node).
    Regions that only the results depend on come last. Worked out once per graph (a loop body's
    are read at every iteration of a trace)."""
    found = _ITEMS.get(id(graph))
    if found is not None and found[0] is graph:
        return found[1]
    items = _list_items(graph)
    if len(_ITEMS) > 256:
        _ITEMS.clear()
    _ITEMS[id(graph)] = (graph, items)
    return items


def _list_items(graph: FunctionGraph) -> list[tuple]:
    by_id: dict[int, list[str]] = {}
    for name, node in graph.named:
        by_id.setdefault(id(node), []).append(name)
    items: list[tuple] = []
    regions: set = set()
    for node in toposort([n for _, n in graph.named] + list(graph.outputs)):
        if node.op in REGION_OPS:
            key = region_results(node)
            if key not in regions:
                regions.add(key)
                items.append(("region", node))
        for name in by_id.get(id(node), ()):
            items.append(("value", name, node))
    return items


def _header(region: Region) -> str:
    """How a loop or branch reads in explain(): its source text (`for i in range(n)`) and line."""
    from .printer import region_title
    return region_title(region) + (f"  (line {region.loc.line})" if region.loc else "")


def _explain_items(graph: FunctionGraph, indent: str, lines: list[str]) -> None:
    for item in _items(graph):
        if item[0] == "value":
            _, name, node = item
            where = f"  (line {node.loc.line})" if node.loc else ""
            lines.append(f"{indent}value  {name}: {node.type_str}{where}")
            continue
        region = item[1].attr("region")
        header = _header(region)
        lines.append(indent + header)
        if region.kind == "if":
            _explain_items(region.graphs[0], indent + "  ", lines)
            if _items(region.graphs[1]):
                lines.append(indent + ("else" if header.startswith("if") else "false branch"))
                _explain_items(region.graphs[1], indent + "  ", lines)
        else:
            _explain_items(region.body, indent + "  ", lines)


def _region_entries(region: Region, rec: dict, sizes: dict) -> dict:
    """name -> value for what one run of a loop or branch bound (a loop's per iteration, stacked)."""
    if rec.get("kind") == "if":
        taken = rec.get("taken", {})
        return _step_entries(_taken_graph(region, taken), taken, sizes)
    steps = rec.get("steps", [])
    if not steps:
        return _empty_entries(region.body, sizes)
    return _stack([_step_entries(region.body, step, sizes) for step in steps])


def _taken_graph(region: Region, taken: dict) -> FunctionGraph:
    """The branch that ran: the one whose names and nested loops the record holds."""
    names = set(taken.get("values", {}))
    nested = set(taken.get("regions", {}))
    for graph in region.graphs:
        keys = {region_results(item[1]) for item in _items(graph) if item[0] == "region"}
        if names == {n for n, _ in graph.named} and nested <= keys:
            return graph
    return region.graphs[0]


def _step_entries(graph: FunctionGraph, step: dict, sizes: dict) -> dict:
    """name -> value bound by one run of a body; a nested loop's names hold its stack."""
    values, regions = step.get("values", {}), step.get("regions", {})
    out: dict = {}
    produced: dict = {}
    for item in _items(graph):
        if item[0] == "value":
            _, name, node = item
            if node.op in REGION_OPS and name in produced.get(region_results(node), ()):
                continue   # the loop's per-iteration values of this name win over its final one
            if name in values:
                out[name] = values[name]
            continue
        key = region_results(item[1])
        if key in regions:
            entries = _region_entries(key[0], regions[key], sizes)
            produced[key] = set(entries)
            out.update(entries)
    return out


def _empty_entries(graph: FunctionGraph, sizes: dict) -> dict:
    """A loop that ran zero times: each name of its body with a leading axis of length 0 where
    its shape is known (not one that depends on the loop index); the names of nested loops and
    branches are left out."""
    out: dict = {}
    for name, node in graph.named:
        try:
            shape = tuple(d.evaluate(sizes) for d in node.shape)
        except (KeyError, ZeroDivisionError):
            out.pop(name, None)
            continue
        out[name] = np.empty((0,) + shape, to_numpy(node.dtype))
    return out


_MISSING = object()


def _stack(per_step: list[dict]) -> dict:
    """One value per name from each iteration's: stacked along a new leading axis when every
    iteration bound it with one shape and dtype, else a list (None where an iteration did not
    bind it)."""
    names: dict[str, None] = {}
    for entries in per_step:
        names.update(dict.fromkeys(entries))
    out: dict = {}
    for name in names:
        vals = [entries.get(name, _MISSING) for entries in per_step]
        arrays = [v for v in vals if v is not _MISSING and not isinstance(v, list)]
        if len(arrays) == len(vals) and len({np.shape(v) for v in arrays}) == 1 \
                and len({np.asarray(v).dtype for v in arrays}) == 1:
            out[name] = np.stack([np.asarray(v) for v in arrays])
        else:
            out[name] = [None if v is _MISSING else _copy(v) for v in vals]
    return out


def _copy(value):
    if isinstance(value, list):
        return [None if v is None else _copy(v) for v in value]
    arr = np.array(value, copy=True, order="C")
    return arr[()] if arr.ndim == 0 else arr


_OWN = "<tdsl.Module>"   # where a Module keeps its own data in its __dict__: no tdsl name can be this


class _Own:
    """One of Module's own attributes (`functions`, `path`, `target`, `source`), which a function of
    the same name shadows: `m.path` is then that function, and `tdsl.Module.path(m)` is still the
    path. `compute` works the value out from the Module's own data, if not kept there."""

    def __init__(self, compute=None):
        self.compute = compute

    def __set_name__(self, owner, name: str):
        self.name = name

    def __get__(self, module, owner=None):
        if module is None:
            return lambda m: self.value(m)
        return self.value(module)

    def value(self, module):
        own = vars(module)[_OWN]
        return self.compute(own) if self.compute else getattr(own, self.name)


def _module_source(own) -> str:
    """The whole module's code: the C module or OpenCL program its functions share, or (numpy)
    each function's .tdsl text."""
    runners = [f._runner for f in own.functions.values()]
    return "\n\n".join(dict.fromkeys(getattr(r, "module_source", None) or r.source for r in runners))


class Module:
    """The functions of one .tdsl file, as attributes (and as `m["name"]`, which always works).

    A function's attribute wins over the Module's own (`functions`, `path`, `target`, `source`), which
    stay reachable as `tdsl.Module.path(m)`; Python's own `m.__class__` and `m.__dict__` stay
    Python's, so a function with one of those names is `m["__class__"]`.
    """

    functions = _Own()
    path = _Own()
    target = _Own()
    source = _Own(_module_source)

    def __init__(self, functions: list[Function], path: str = "<string>", target: str = "c"):
        attrs = vars(self)
        attrs[_OWN] = SimpleNamespace(functions={f.name: f for f in functions}, path=path, target=target)
        for f in functions:   # into the instance dict: a non-data descriptor or method never wins over it
            attrs[f.name] = f

    def __getitem__(self, name: str) -> Function:
        return vars(self)[_OWN].functions[name]

    def __contains__(self, name: str) -> bool:
        return name in vars(self)[_OWN].functions

    def __iter__(self):
        return iter(vars(self)[_OWN].functions.values())

    def __len__(self) -> int:
        return len(vars(self)[_OWN].functions)

    def __getattr__(self, name: str):
        """Only for a name that is neither a function nor the Module's own: an AttributeError that
        names the module's functions, and the closest to `name`."""
        own = vars(self).get(_OWN)
        if own is None or name.startswith("__"):   # Python's probes (copy, pickle, NumPy), unpickling
            raise AttributeError(f"'Module' object has no attribute '{name}'", name=name, obj=self)
        names = list(own.functions)
        message = f"module '{own.path}' has no function '{name}'"
        shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
        message += f"; its functions: {shown}" if names else " (it has no functions)"
        close = get_close_matches(name, names, n=1)
        if close:
            message += f"; did you mean '{close[0]}'?"
        raise AttributeError(message, name=name)

    def __dir__(self):
        return [name for name in object.__dir__(self) if name != _OWN]

    def __repr__(self) -> str:
        own = vars(self)[_OWN]
        return f"<tdsl.Module {own.path} target={own.target}: {', '.join(own.functions)}>"

    def _repr_html_(self) -> str:
        """Jupyter's view: where the module came from, its target and each function's signature."""
        own = vars(self)[_OWN]
        rows = "".join(f"<tr><td style=\"text-align:left\"><code>{escape(f.signature)}</code></td></tr>"
                       for f in own.functions.values())
        return (f'<div class="tdsl-module"><p>tdsl module <code>{escape(str(own.path))}</code> '
                f"<small>(target {escape(own.target)})</small></p>"
                + (f"<table><tbody>{rows}</tbody></table>" if rows else "<p>(no functions)</p>") + "</div>")
