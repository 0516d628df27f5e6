"""Function and Module: what `tdsl.load`, `tdsl.compile` and `tdsl.function` hand back."""
from __future__ import annotations

from operator import attrgetter
from types import SimpleNamespace
import numpy as np

from .bind import Binder
from .dtypes import to_numpy
from .graph import FunctionGraph
from .interp import out_of_memory, run_graph
from .limits import check_sizes, value_sizes
from .runner import Runner
from .targets import REFERENCE


class Function:
    """One compiled tdsl function: call it with NumPy arrays, inspect it without running it."""

    def __init__(self, graph: FunctionGraph, target: str, runner: Runner):
        self.graph = graph
        self.target = target
        self.source = runner.source
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
        self.__name__ = graph.name
        self.__doc__ = graph.signature

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def signature(self) -> str:
        return self.graph.signature

    # Calling a Function calls `self._call` directly: a property that returns it costs no
    # Python frame (attrgetter is C), where a `def __call__` forwarding to it costs ~0.4 us.
    __call__ = property(attrgetter("_call"), doc="Run the function; `out=` (an array, or a tuple "
                        "of them) receives the results in place.")

    def _checked_call(self, /, *args, **kwargs):
        """A call with every argument converted and checked (`Binder.bind`)."""
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

    def explain(self) -> str:
        """Every parameter, named value and result with its dtype and symbolic shape."""
        g = self.graph
        lines = [g.signature]
        if g.size_vars:
            lines.append("  size variables: " + ", ".join(g.size_vars))
        for p in g.params:
            lines.append(f"  param  {p.name}: {p.type_str}")
        for name, node in g.named:
            where = f"  (line {node.loc.line})" if node.loc else ""
            lines.append(f"  value  {name}: {node.type_str}{where}")
        for i, out in enumerate(g.outputs):
            lines.append(f"  result {i}: {out.type_str}")
        return "\n".join(lines)

    def trace(self, /, *args, **kwargs) -> dict:
        """Run on the reference interpreter and return every named value, computed.

        The dict holds the parameters (as bound), each named intermediate in source
        order (a rebound name keeps its last value) and the results as `return`
        (or `return[i]` for several).
        """
        arrays, sizes = self._binder.bind(args, kwargs)
        g = self.graph
        named_nodes = [n for _, n in g.named]
        outputs, values = run_graph(g, {p.name: a for p, a in zip(g.params, arrays)}, sizes, named_nodes)
        out: dict = {p.name: a for p, a in zip(g.params, arrays)}
        for name, node in g.named:
            out[name] = _fresh(values[node], node.dtype)
        if g.tuple_result:
            for i, (o, node) in enumerate(zip(outputs, g.outputs)):
                out[f"return[{i}]"] = _fresh(o, node.dtype)
        else:
            out["return"] = _fresh(outputs[0], g.outputs[0].dtype)
        return out

    def to_tdsl(self) -> str:
        """The graph as .tdsl source text, which parses back to the same graph."""
        from .printer import to_tdsl
        return to_tdsl(self.graph)

    def __repr__(self) -> str:
        return f"<tdsl.Function {self.signature} target={self.target}>"


def _fresh(value, dtype: str):
    arr = np.array(value, dtype=to_numpy(dtype), copy=True, order="C")
    return arr[()] if arr.ndim == 0 else arr


_OWN = "<tdsl.Module>"   # where a Module keeps its own data in its __dict__: no tdsl name can be this


class _Own:
    """One of Module's own attributes (`functions`, `path`, `target`), which a function of the same
    name shadows: `m.path` is then that function, and `tdsl.Module.path(m)` is still the path."""

    def __set_name__(self, owner, name: str):
        self.name = name

    def __get__(self, module, owner=None):
        if module is None:
            return lambda m: getattr(vars(m)[_OWN], self.name)
        return getattr(vars(module)[_OWN], self.name)


class Module:
    """The functions of one .tdsl file, as attributes (and as `m["name"]`, which always works).

    A function's attribute wins over the Module's own (`functions`, `path`, `target`), which
    stay reachable as `tdsl.Module.path(m)`; Python's own `m.__class__` and `m.__dict__` stay
    Python's, so a function with one of those names is `m["__class__"]`.
    """

    functions = _Own()
    path = _Own()
    target = _Own()

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

    def __dir__(self):
        return [name for name in object.__dir__(self) if name != _OWN]

    def __repr__(self) -> str:
        own = vars(self)[_OWN]
        return f"<tdsl.Module {own.path} target={own.target}: {', '.join(own.functions)}>"
