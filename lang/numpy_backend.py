"""The `numpy` target: the reference interpreter behind the common Function interface."""
from __future__ import annotations

from functools import partial

from .graph import FunctionGraph
from .interp import computed_roots, run, value_sizes
from .printer import graph_text, to_tdsl


def load(graphs: list[FunctionGraph], module_name: str) -> dict:
    return {g.name: (partial(run, g, limits=value_sizes(g), roots=computed_roots(g)), _source(g)) for g in graphs}


def _source(graph: FunctionGraph) -> str:
    """The graph as .tdsl text, or as a listing when some value has no .tdsl spelling."""
    try:
        return to_tdsl(graph)
    except ValueError:
        return graph_text(graph)
