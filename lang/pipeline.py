"""The compiler in one screen: every stage from .tdsl text to loaded functions, in order.

`compile_module` is the only place the stages are strung together; `tdsl.load`,
`tdsl.compile`, `tdsl.function`, `check_grad`, `tdslc` and the tests all come through it.
The target (tdsl/targets.py) supplies the stages after the rewrites.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import targets
from .compiled import Function, Module
from .graph import FunctionGraph
from .nanguard import guard_requested

# The stages, in order: `tdslc graph --stage` and `compile_module(until=...)` name them.
STAGES = ("parse", "check", "rewrite", "lower", "render", "build", "load")
GRAPH_STAGES = ("check", "rewrite")   # the stages whose result is a list of function graphs


def compile_module(target: str, text: str | None = None, path: str = "<string>",
                   graphs: list[FunctionGraph] | None = None, until: str = "load", debug: bool | None = None,
                   nan_guard: bool | None = None):
    """Compile `text` (or already checked `graphs`) for `target`, up to and including stage `until`.

    Returns what that stage makes: the parse tree, a list of graphs, the target's lowered
    module, the rendered source text, the built artefact, or (after "load") a Module.
    `debug` (None: TDSL_DEBUG) asks a target that has one for its debug build, `nan_guard` (None:
    TDSL_NAN_GUARD) for its guarded build, whose every call runs the NaN guard (docs/debugging.md;
    the reference guards as it interprets).
    """
    target_ = targets.get(target)
    if debug_requested(debug) and hasattr(target_, "debugging"):   # (the reference has none)
        target_ = target_.debugging()
    guard = guard_requested(nan_guard)
    if guard and hasattr(target_, "guarded"):
        target_ = target_.guarded()
    if graphs is None:
        if until == "load":   # text this cache has compiled before skips every stage
            found = target_.recall(text, path)
            if found is not None:
                return Module([Function(g, target, runner, guard) for g, runner in found], path, target)
        from tdsl.grammar import parse
        from .frontend import check
        tree = parse(text, path)                                        # parse
        if until == "parse":
            return tree
        graphs = check(tree, text, path)                                # check: types, shapes, grad
        if until == "check":
            return graphs
    from .rewrite import simplify_graph
    graphs = [simplify_graph(g) for g in graphs]                        # rewrite
    if until == "rewrite":
        return graphs
    lowered = target_.lower(graphs, module_name(path))                  # lower: the target's passes
    if until == "lower":
        return lowered
    source = target_.render(lowered)                                    # render
    if until == "render":
        return source
    built = target_.build(lowered, source)                              # build
    if until == "build":
        return built
    runners = target_.load(lowered, built)                              # load
    if text is not None:
        target_.remember(text, path, graphs, lowered, built)
    return Module([Function(g, target, runners[g.name], guard) for g in graphs], path, target)


def debug_requested(debug: bool | None = None) -> bool:
    """Whether to build for debugging: `debug` when given, else TDSL_DEBUG (set, and not 0)."""
    if debug is None:
        return os.environ.get("TDSL_DEBUG", "").strip() not in ("", "0")
    return bool(debug)


def module_name(path: str) -> str:
    """The name a module's generated symbols start from: its file's stem."""
    return Path(path).stem or "module"


def compile_source(text: str, filename: str = "<string>", target: str = "c",
                   debug: bool | None = None, nan_guard: bool | None = None) -> Module:
    """Compile the text of a .tdsl file for `target` and load its functions (`debug`, `nan_guard`:
    see `compile_module`)."""
    return compile_module(target, text, filename, debug=debug, nan_guard=nan_guard)


def load_graphs(graphs: list[FunctionGraph], target: str, path: str = "<string>",
                debug: bool | None = None, nan_guard: bool | None = None) -> Module:
    """Compile checked graphs (the Python builder API, `check_grad`) for `target` and load them."""
    return compile_module(target, graphs=graphs, path=path, debug=debug, nan_guard=nan_guard)


def check_source(text: str, filename: str = "<string>") -> list[FunctionGraph]:
    """Parse and type-check: every function as a checked graph."""
    return compile_module(targets.REFERENCE, text, filename, until="check")
