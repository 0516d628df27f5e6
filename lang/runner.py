"""What every target's loaded function looks like to `tdsl.Function`: the Runner, and its error table.

A target's `load` gives one Runner per function. `Function` calls it with the bound
arguments (arrays in parameter order, the size-variable values) and reads the few
attributes below, which a target overrides where it can do more.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .dims import Dim
from .errors import Location, TdslRuntimeError

if TYPE_CHECKING:
    from .callspec import CallSpec


@dataclass(frozen=True)
class ErrorEntry:
    """What error code k + 1 of a compiled module means: the message (with `{extent}` where a
    size is named) and the .tdsl place it comes from."""

    message: str
    loc: Location | None = None
    extent: Dim | None = None
    bound: Dim | None = None      # a loop body's check: the size whose values the message names
    index: str | None = None      # ... and the loop index among them (its value comes from the call)
    value: bool = False           # "an index ..." names the index found out of range, when known
    axis: int | None = None       # the axis the check is about (TdslRuntimeError.axis)
    operand: str | None = None    # the source name of the value indexed or reduced (.operand)
    length: bool = False          # `extent` is that axis's length (.length)
    guard: str = ""               # the NaN guard's check: "point" or "candidate" (tdsl/nanguard.py)

    def text(self, extent: str | None = None) -> str:
        """The message with its place, as generated code prints it: `{extent}` stays for the
        standalone OpenCL host to fill in, or is `extent` (the C code's symbolic size)."""
        message = self.message if extent is None else self.message.replace("{extent}", extent)
        return f"{self.loc}: {message}" if self.loc else message


class ErrorTable(tuple):
    """A module's error codes, the one table every target's host side reads (code k + 1 is entry k)."""

    def error(self, code: int, sizes: dict, what: str = "compiled function", value=None) -> TdslRuntimeError:
        """The TdslRuntimeError for a code a compiled function returned (0 is success); `value`:
        the index found out of range, if the target knows it."""
        if not 0 < code <= len(self):
            return TdslRuntimeError(f"the {what} failed with error code {code}")
        entry = self[code - 1]
        if entry.guard:   # the call's failure path (Function._guarded_call) adds what explains it
            err = TdslRuntimeError(entry.message, entry.loc, operand=entry.operand, nan_guard=True)
            err.candidate = entry.guard == "candidate"
            return err
        message, extent = entry.message, None
        if entry.extent is not None:
            extent = entry.extent.evaluate(sizes)
            message = message.replace("{extent}", str(extent))
        value = int(value) if entry.value and value is not None else None
        if value is not None:
            message = message.replace("an index", f"index {value}", 1)
        if entry.bound is not None and all(v in sizes for v in entry.bound.variables()):
            # as the reference says it: "..., but i = 5, t = 5"
            message += ", but " + ", ".join(f"{v} = {sizes[v]}" for v in entry.bound.variables())
        return TdslRuntimeError(message, entry.loc, value=value, axis=entry.axis,
                                length=extent if entry.length else None, operand=entry.operand)


class Runner(ABC):
    """Runs one function on a target: `runner(arrays, sizes)` -> list of result arrays."""

    call: "CallSpec"        # how to call the function (tdsl/callspec.py): what the binders read
    source = ""            # the code it runs, as `Function.source` shows it
    device_types: tuple = ()   # array types the binder lets through unconverted (device arrays)
    writes_into = False    # whether __call__ takes `outs`: result buffers the caller has checked

    @abstractmethod
    def __call__(self, arrays: list, sizes: dict, outs: list | None = None) -> list:
        """The results for bound arguments (into `outs` where the target `writes_into`)."""

    def fast_call(self, binder, tuple_result: bool, checked, takes_out: bool):
        """A call path for arguments that need no conversion, or None (every call is checked)."""
        return None
