"""The targets tdsl compiles for, in one registry: the API, the CLI, the tests and bench/ read it.

A target is one module that implements the `Target` protocol (docs/architecture.md says
how to add one). The registry holds module paths, so naming a target imports nothing
until it is used: `import tdsl` does not load a C compiler driver or pyopencl.
"""
from __future__ import annotations

from importlib import import_module
from typing import Protocol

from .errors import TdslError

# name -> module implementing it; the first one is the reference every other is tested against
REGISTRY: dict[str, str] = {
    "numpy": "tdsl.numpy_backend",
    "c": "tdsl.codegen.c_backend",
    "opencl": "tdsl.codegen.opencl_backend",
}
REFERENCE = "numpy"


class Target(Protocol):
    """What the pipeline (tdsl/pipeline.py) asks of a target, stage by stage."""

    name: str
    # what `tdslc build -t NAME` writes: file suffixes, e.g. (".c", ".h"); empty: no standalone form
    standalone_suffixes: tuple[str, ...]

    def unavailable(self) -> str | None:
        """Why the target cannot run on this machine (no compiler, no device), or None."""

    def recall(self, text: str, path: str) -> list | None:
        """[(graph, runner)] of text this target has compiled before (a warm start), or None."""

    def remember(self, text: str, path: str, graphs: list, lowered, built) -> None:
        """Keep what `recall` needs for `text` (a target without warm starts does nothing)."""

    def lower(self, graphs: list, prefix: str):
        """The target's passes after the rewrites: checked graphs to what `render` reads."""

    def render(self, lowered) -> str:
        """The lowered module as source text (C, OpenCL C, or the reference's listing)."""

    def build(self, lowered, source: str):
        """Whatever `load` needs from the source: a loaded library, a built program."""

    def load(self, lowered, built) -> dict:
        """{function name: Runner} (tdsl/runner.py): `runner(arrays, sizes) -> results`."""

    def emit(self, graphs: list, prefix: str) -> dict[str, str]:
        """The standalone files: {suffix: text}, one per entry of `standalone_suffixes`."""

    # Optional: `debugging(self) -> Target`, the variant that builds line-mapped native code
    # (debug=True, TDSL_DEBUG=1: docs/debugging.md); a target without it ignores `debug`.


def names() -> tuple[str, ...]:
    """Every target's name, the reference first."""
    return tuple(REGISTRY)


def compiled() -> tuple[str, ...]:
    """The targets that compile code: every one but the reference."""
    return tuple(name for name in REGISTRY if name != REFERENCE)


def standalone() -> tuple[str, ...]:
    """The targets `tdslc build` can write standalone files for."""
    return tuple(name for name in compiled() if get(name).standalone_suffixes)


def get(name: str) -> Target:
    """The target called `name`; an unknown name is a TdslError listing the known ones."""
    if name not in REGISTRY:
        raise TdslError(f"unknown target '{name}' (choose one of {', '.join(REGISTRY)})")
    return import_module(REGISTRY[name]).TARGET
