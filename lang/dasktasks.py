"""Functions that travel to Dask tasks as their source, and errors raised in tasks at the user's places.

A task's callable pickles as tdsl text (a generated module's, lang/chunked.py, or a Function's
own, printed by to_tdsl), its target and a map from the lines of that text to the places in the
user's .tdsl file (`line_map`), and is compiled on first use, once per process (the compile cache
makes a worker's compile a load). A TdslError such a function raises is `located` at the user's
place, never at a line of the text the process compiled (`<tdsl-dask>`). `reduce_function` is
what `Function.__reduce__` returns: an unpickled Function compiles on its first call or first
attribute use, so a scheduler that passes it on never compiles it. See docs/dask.md.
"""
from __future__ import annotations

import copy
import re
import threading
import weakref

from .errors import TdslError

GENERATED = "<tdsl-dask>"   # the file name of the text a process compiles

_MODULES: dict = {}
_MODULES_LOCK = threading.Lock()


def _module(text: str, target: str):
    """The module compiled from `text` for `target`, once per process."""
    key = (text, target)
    with _MODULES_LOCK:
        found = _MODULES.get(key)
        if found is None:
            from .pipeline import compile_source
            found = _MODULES[key] = compile_source(text, GENERATED, target)
        return found


def line_map(graphs: list, text: str) -> dict:
    """{function name: {line of `text`: the Location in the user's .tdsl file of the value that line
    computes}}: `text` is `graphs` printed by to_tdsl (one statement per node), whose nodes carry the
    user's places; parsed back, equal nodes are found by structure (a node's place is no part of
    its equality)."""
    from .graph import toposort
    from .pipeline import check_source
    parsed = {g.name: g for g in check_source(text, GENERATED)}
    out = {}
    for graph in graphs:
        origin = {}
        for node in toposort(list(graph.outputs)):
            if node.loc is not None:
                origin.setdefault(node, node.loc)
        lines = out[graph.name] = {}
        again = parsed.get(graph.name)
        for node in toposort(list(again.outputs)) if again is not None else ():
            if node.loc is not None and node in origin:
                lines[node.loc.line] = origin[node]   # in order: a line's last node is its statement
    return out


_PLACE = re.compile(re.escape(GENERATED) + r":(\d+):(\d+)")


def located(err: TdslError, lines: dict, where: str | None = None) -> TdslError:
    """`err`, raised by a function compiled from text, at the place in the user's .tdsl file of the
    line that failed (`lines`: line_map()'s for that function), its message ending with `where`
    (which task of which call) when given; the same type, with the same attributes."""
    def place(match):
        loc = lines.get(int(match[1]))
        return str(loc) if loc is not None else match[0]
    new = copy.copy(err)
    if err.loc is not None and err.loc.file == GENERATED and err.loc.line in lines:
        new.loc = lines[err.loc.line]
    new.message = _PLACE.sub(place, err.message) + (f", {where}" if where else "")
    new.args = (new.render(),)
    return new


def _invoke(fn, where: str, *args):
    """A task: fn(*args); a TdslError names the user's line and the task (`where`)."""
    try:
        return fn(*args)
    except TdslError as err:
        raise located(err, fn.lines, where) from None


class StageFunction:
    """A function of a generated module, callable in any process: it pickles as (text, target,
    name, the places in the user's file of its lines) and compiles on first use."""

    def __init__(self, text: str, target: str, name: str, lines: dict | None = None):
        self.text, self.target, self.name, self.lines = text, target, name, lines or {}

    def __reduce__(self):
        return (StageFunction, (self.text, self.target, self.name, self.lines))

    def __call__(self, *args):
        return _module(self.text, self.target)[self.name](*args)

    def __repr__(self) -> str:
        return f"<tdsl stage {self.name} target={self.target}>"


# -- a compiled Function, pickled -------------------------------------------------------------

_RECIPES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # Function -> its pickled form


def reduce_function(function):
    """What `Function.__reduce__` returns: a `LazyFunction` of the function's .tdsl text (or of its
    graph where the graph has no source form), its target, name and options, and the places in the
    user's file of the text's lines (worked out once per function)."""
    found = _RECIPES.get(function)
    if found is None:
        from .printer import to_tdsl
        guarded = bool(getattr(function, "guarded", False))   # its options: the NaN guard
        try:
            text = to_tdsl(function.graph)
        except ValueError:   # already at the user's places: it is compiled from the graph
            recipe, lines = (_function_from_graph, (function.graph, function.target, guarded)), {}
        else:
            recipe = (_function_from_text, (text, function.target, function.name, guarded))
            lines = line_map([function.graph], text).get(function.name, {})
        found = _RECIPES[function] = (LazyFunction, (function.name, function.target, recipe, lines))
    return found


class LazyFunction:
    """An unpickled Function: compiled on its first call or first attribute use (`name` and `target`
    excepted), then every attribute is the compiled Function's. Pickled again before that, it sends
    on what it came as. A TdslError its call raises names the user's .tdsl file:line:col."""

    def __init__(self, name: str, target: str, recipe: tuple, lines: dict):
        self.name, self.target, self._recipe, self._lines = name, target, recipe, lines
        self._function = None
        self._lock = threading.Lock()

    def __reduce__(self):
        return (LazyFunction, (self.name, self.target, self._recipe, self._lines))

    def _built(self):
        with self._lock:
            if self._function is None:
                rebuild, args = self._recipe
                self._function = rebuild(*args)
            return self._function

    def __call__(self, *args, **kwargs):
        function = self._built()
        try:
            return function(*args, **kwargs)
        except TdslError as err:
            if not self._lines:
                raise
            raise located(err, self._lines) from None

    def __getattr__(self, attr: str):
        if attr.startswith("__") or attr in ("_recipe", "_lines", "_function", "_lock"):
            raise AttributeError(attr)   # (copy and pickle probe these before __init__ runs)
        return getattr(self._built(), attr)

    def __repr__(self) -> str:
        state = "compiled" if self._function is not None else "compiled on first use"
        return f"<tdsl function {self.name} target={self.target} ({state})>"


def _with_options(function, guarded: bool):
    return function._variant(True) if guarded else function


def _function_from_text(text: str, target: str, name: str, guarded: bool = False):
    return _with_options(_module(text, target)[name], guarded)


_GRAPH_MODULES: dict = {}


def _function_from_graph(graph, target: str, guarded: bool = False):
    from .pipeline import load_graphs
    with _MODULES_LOCK:
        key = (graph.name, graph.outputs, target)
        if key not in _GRAPH_MODULES:
            _GRAPH_MODULES[key] = load_graphs([graph], target, graph.name)[graph.name]
        return _with_options(_GRAPH_MODULES[key], guarded)


class FunctionRef:
    """A compiled Function as a task's callable: results always a tuple. The function pickles as a
    LazyFunction, so a scheduler that unpickles a graph and pickles it again for a worker sends
    it on as it came, without compiling it; its errors already name the user's places."""

    lines: dict = {}

    def __init__(self, function):
        self.function = function

    def __call__(self, *args):
        out = self.function(*args)
        return out if self.function.graph.tuple_result else (out,)
