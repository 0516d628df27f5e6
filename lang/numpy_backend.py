"""The `numpy` target: the reference interpreter behind the common Function interface."""
from __future__ import annotations

from functools import partial

from .graph import FunctionGraph
from .interp import run
from .printer import to_tdsl


def load(graphs: list[FunctionGraph], module_name: str) -> dict:
    return {g.name: (partial(run, g), to_tdsl(g)) for g in graphs}
