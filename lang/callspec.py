"""How to call one function, described once: every binder and call path reads a CallSpec.

The Python checked path (bind.py), the C fast paths (codegen/fastcall.py and the
native `_callpath`), the C and OpenCL runners and the plan the standalone OUT.py binds
with (codegen/opencl_plan.py) are all made from this description, so a parameter, a
size variable, a check, a result or an error message is defined in one place.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .dims import Dim
from .errors import Location
from .graph import FunctionGraph, Param
from .limits import collect_checks
from .runner import ErrorTable


@dataclass(frozen=True)
class CallSpec:
    """Parameters, size variables (and where each is first read), checks, results, errors."""

    name: str
    signature: str
    params: tuple[Param, ...]
    size_vars: tuple[str, ...]
    first_seen: tuple[tuple[str, int, int], ...]        # (size variable, parameter index, axis)
    checks: tuple[tuple[str, Dim, str, Location | None], ...]   # (">=" or "==", dim, message, place)
    outputs: tuple[tuple[tuple[Dim, ...], str], ...]    # (shape, dtype) of each result
    tuple_result: bool = False
    errors: ErrorTable = ErrorTable()                   # what a compiled function's error code k + 1 means
    symbol: str = ""                                    # the C entry point (the c target)

    @staticmethod
    def of(graph: FunctionGraph) -> "CallSpec":
        """The description of a checked function graph."""
        first_seen: dict[str, tuple[int, int]] = {}
        for i, p in enumerate(graph.params):
            for axis, d in enumerate(p.shape):
                if not d.is_const and d.terms == (((str(d),), 1),):   # a lone size variable
                    first_seen.setdefault(str(d), (i, axis))
        return CallSpec(graph.name, graph.signature, graph.params, graph.size_vars,
                        tuple((v, i, axis) for v, (i, axis) in first_seen.items()),
                        tuple(collect_checks(graph)),
                        tuple((o.shape, o.dtype) for o in graph.outputs), graph.tuple_result)

    def compiled(self, errors, symbol: str = "") -> "CallSpec":
        """The same description with a compiled module's error table (and its C entry point)."""
        return replace(self, errors=ErrorTable(errors), symbol=symbol)

    def first_seen_at(self) -> dict[str, tuple[int, int]]:
        """{size variable: (parameter index, axis)} where its value is read from an argument."""
        return {v: (i, axis) for v, i, axis in self.first_seen}

    def output_shapes(self, sizes: dict) -> list[tuple[int, ...]]:
        """The results' shapes for these size-variable values."""
        return [tuple(d.evaluate(sizes) for d in shape) for shape, _ in self.outputs]
