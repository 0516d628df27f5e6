"""The compiler, stage by stage: source text to callable functions.

    parse -> check -> rewrite -> (lower -> render -> build, in the backend) -> load
"""
from __future__ import annotations

from pathlib import Path

from .errors import TdslError
from .compiled import Function, Module
from .graph import FunctionGraph

TARGETS = ("numpy", "c", "opencl")


def compile_source(text: str, filename: str = "<string>", target: str = "c") -> Module:
    """Compile the text of a .tdsl file for `target` and load its functions.

    A backend with `load_warm` recognizes text it has compiled before and loads it
    without parsing (see codegen/warm.py); otherwise every stage runs.
    """
    load_warm = getattr(backend(target), "load_warm", None)
    found = load_warm(text, filename) if load_warm else None
    if found is not None:
        return Module([Function(g, target, runner, source) for g, runner, source in found], filename, target)
    graphs = check_source(text, filename)
    return load_graphs(graphs, target, filename, text)


def check_source(text: str, filename: str = "<string>") -> list[FunctionGraph]:
    """Parse and type-check: every function as a checked graph."""
    from tdsl.grammar import parse
    from .frontend import check
    tree = parse(text, filename)
    return check(tree, text, filename)


def load_graphs(graphs: list[FunctionGraph], target: str, path: str = "<string>",
                text: str | None = None) -> Module:
    """Rewrite the graphs and hand them to the target's backend (with the source text, if it keeps warm entries)."""
    from .rewrite import simplify_graph
    graphs = [simplify_graph(g) for g in graphs]
    back = backend(target)
    if text is not None and hasattr(back, "load_warm"):
        runners = back.load(graphs, Path(path).stem or "module", text=text, path=path)
    else:
        runners = back.load(graphs, Path(path).stem or "module")
    functions = [Function(g, target, *runners[g.name]) for g in graphs]
    return Module(functions, path, target)


def backend(target: str):
    """The module implementing `target`: `load(graphs, name) -> {fn name: (runner, source)}`."""
    if target == "numpy":
        from . import numpy_backend
        return numpy_backend
    if target == "c":
        from tdsl.codegen import c_backend
        return c_backend
    if target == "opencl":
        from tdsl.codegen import opencl_backend
        return opencl_backend
    raise TdslError(f"unknown target '{target}' (choose one of {', '.join(TARGETS)})")
