"""The `numpy` target: the reference interpreter, behind the same Target interface as the others.

It has no passes and builds nothing: each function runs its checked graph on NumPy
(tdsl/interp.py), and its source is the graph printed as .tdsl text.
"""
from __future__ import annotations

from .callspec import CallSpec
from .graph import FunctionGraph
from .interp import run
from .limits import computed_roots, value_sizes
from .printer import graph_text, to_tdsl
from .runner import Runner


class ReferenceRunner(Runner):
    """One function on the reference interpreter; every value that can fail is computed."""

    def __init__(self, graph: FunctionGraph):
        self.graph = graph
        self.call = CallSpec.of(graph)
        self.limits = value_sizes(graph)
        self.roots = computed_roots(graph)
        self.source = _source(graph)

    def __call__(self, arrays: list, sizes: dict, outs: list | None = None) -> list:
        return run(self.graph, arrays, sizes, limits=self.limits, roots=self.roots)


def _source(graph: FunctionGraph) -> str:
    """The graph as .tdsl text, or as a listing when some value has no .tdsl spelling."""
    try:
        return to_tdsl(graph)
    except ValueError:
        return graph_text(graph)


class NumpyTarget:
    """The reference: lowering keeps the graphs, and loading wraps each in a ReferenceRunner."""

    name = "numpy"
    standalone_suffixes: tuple[str, ...] = ()

    def unavailable(self) -> None:
        return None   # NumPy is a dependency of tdsl

    def recall(self, text: str, path: str) -> None:
        return None

    def remember(self, text: str, path: str, graphs: list, lowered, built) -> None:
        return None

    def lower(self, graphs: list[FunctionGraph], prefix: str) -> list[FunctionGraph]:
        return graphs

    def render(self, graphs: list[FunctionGraph]) -> str:
        return "\n\n".join(_source(g) for g in graphs)

    def build(self, graphs: list[FunctionGraph], source: str) -> None:
        return None

    def load(self, graphs: list[FunctionGraph], built) -> dict[str, Runner]:
        return {g.name: ReferenceRunner(g) for g in graphs}

    def emit(self, graphs: list[FunctionGraph], prefix: str) -> dict[str, str]:
        return {}


TARGET = NumpyTarget()
