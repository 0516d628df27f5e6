"""Graph rewrites, as data: each rule is a pattern and a function returning a replacement or None."""
from __future__ import annotations

from .graph import FunctionGraph


def simplify_graph(graph: FunctionGraph) -> FunctionGraph:
    """The graph after the standard rewrites (none yet)."""
    return graph
