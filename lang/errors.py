"""Typed errors of tdsl, each carrying the place in the source it is about."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Location:
    """A place in a source text: file name, 1-based line and column, and the line itself."""

    file: str
    line: int
    col: int
    source_line: str = ""
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@lru_cache(maxsize=8)
def _lines(text: str) -> tuple[str, ...]:
    """The lines of a source text, split once per text (every node's location needs one)."""
    return tuple(text.splitlines())


def location_of(meta, file: str, text: str) -> Location | None:
    """Build a Location from a Lark `meta` (or token) of a tree parsed from `text`."""
    line = getattr(meta, "line", None)
    if line is None:
        return None
    col = getattr(meta, "column", 1) or 1
    lines = _lines(text)
    source_line = lines[line - 1] if 0 < line <= len(lines) else ""
    end_col = None
    if getattr(meta, "end_line", None) == line:
        end_col = getattr(meta, "end_column", None)
    return Location(file, line, col, source_line, end_col)


class TdslError(Exception):
    """Base class of every error tdsl raises for a user's mistake."""

    kind = "error"

    def __init__(self, message: str, loc: Location | None = None, hint: str | None = None):
        self.message = message
        self.loc = loc
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        """The error as `FILE:LINE:COL: error: message`, the source line and a caret."""
        text = self.message
        if self.hint:
            text += f" (hint: {self.hint})"
        if self.loc is None:
            return f"error: {text}"
        head = f"{self.loc}: error: {text}"
        if not self.loc.source_line:
            return head
        width = 1
        if self.loc.end_col and self.loc.end_col > self.loc.col:
            width = self.loc.end_col - self.loc.col
        caret = " " * (self.loc.col - 1) + "^" + "~" * (width - 1)
        return f"{head}\n    {self.loc.source_line}\n    {caret}"


class TdslSyntaxError(TdslError):
    """The source text does not follow the grammar."""


class TdslTypeError(TdslError):
    """A program is well formed but its dtypes, shapes or names do not check."""


class TdslArgumentError(TdslError):
    """A call received arguments that do not fit the function's signature."""


class TdslRuntimeError(TdslError):
    """A check that can only run with the data failed (an empty max, an index out of range)."""


class TdslBuildError(TdslError):
    """The C compiler or the OpenCL build failed, or no toolchain is available."""


class TdslWarning(UserWarning):
    """Something worth knowing that does not stop tdsl (a cache folder it cannot write)."""
