"""Typed errors of tdsl, each carrying the place in the source it is about."""
from __future__ import annotations

import os
import types
from dataclasses import dataclass
from functools import lru_cache, wraps
from importlib.util import find_spec


@dataclass(frozen=True)
class Location:
    """A place in a source text: file name, 1-based line and column, and the line itself."""

    file: str
    line: int
    col: int
    source_line: str = ""
    end_col: int | None = None          # the end column (exclusive) when it ends on the same line
    end: tuple[int, int] | None = None  # (line, column), 1-based, exclusive: where it ends

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
    end_col = end = None
    end_line = getattr(meta, "end_line", None)
    if end_line is not None and getattr(meta, "end_column", None) is not None:
        end = end_line, meta.end_column
        if end_line == line:
            end_col = meta.end_column
    return Location(file, line, col, source_line, end_col, end)


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

    @property
    def location(self) -> Location | None:
        """The place in the source the error is about (`loc`), or None."""
        return self.loc

    def __reduce__(self):
        """Pickled as its parts, so that an error raised in another process (a Dask worker)
        reads the same there: its text, place and attributes (not its rendered text as a message)."""
        return type(self), (self.message, self.loc, self.hint), self.__dict__


class TdslSyntaxError(TdslError):
    """The source text does not follow the grammar."""


class TdslTypeError(TdslError):
    """A program is well formed but its dtypes, shapes or names do not check."""


class TdslArgumentError(TdslError):
    """A call received arguments that do not fit the function's signature."""


class TdslRuntimeError(TdslError):
    """A check that can only run with the data failed (an empty max, an index out of range).

    Besides the message and its place, it holds what the check knows, the same on every target
    where it can (None otherwise): `value`, the index found out of range (as the call passed it,
    negative ones too); `axis` and `length`, the axis the check is about and its length; and
    `operand`, the source name of the value indexed or reduced (a parameter or a bound name).
    The NaN guard's errors (`nan_guard` True, docs/debugging.md) hold the value produced in `value`
    (nan, inf or -inf), the operand that explains it in `operand`, the first point born in
    `position` and, in a loop body, the loop's iteration in `iteration`."""

    def __init__(self, message: str, loc: Location | None = None, hint: str | None = None, *,
                 value: int | float | None = None, axis: int | None = None, length: int | None = None,
                 operand: str | None = None, position: tuple | None = None, iteration: int | None = None,
                 nan_guard: bool = False):
        self.value, self.axis, self.length, self.operand = value, axis, length, operand
        self.position, self.iteration, self.nan_guard = position, iteration, nan_guard
        super().__init__(message, loc, hint)


class TdslBuildError(TdslError):
    """The C compiler or the OpenCL build failed, or no toolchain is available."""


class TdslWarning(UserWarning):
    """Something worth knowing that does not stop tdsl (a cache folder it cannot write)."""


# -- what a user's traceback shows -------------------------------------------------------
# A TdslError that leaves an entry point (`tdsl.load`, `tdsl.compile`) is about the user's
# program, not about tdsl's code: the frames of tdsl's own files are cut from its traceback, as
# JAX does, so the traceback ends at the user's line and the located message. TDSL_TRACEBACK=full
# keeps them (for debugging tdsl itself).

@lru_cache(maxsize=None)
def _package_dirs() -> tuple[str, ...]:
    """The folders of tdsl's own code: the package, codegen, grammar and templates."""
    here = os.path.dirname(os.path.realpath(__file__))
    dirs = {here}
    for sub in ("codegen", "grammar", "templates"):
        try:
            spec = find_spec(f"{__package__}.{sub}")
        except (ImportError, ValueError):
            spec = None
        for location in (spec.submodule_search_locations or []) if spec else []:
            dirs.add(os.path.realpath(location))
    return tuple(sorted(dirs))


@lru_cache(maxsize=None)
def _is_internal(filename: str) -> bool:
    if filename.startswith("<"):   # `<string>`, `<stdin>`: the user's code; `<tdsl fast call of f>`
        return filename.startswith("<tdsl ")   # is code tdsl wrote (codegen/fastcall.py)
    folder = os.path.dirname(os.path.realpath(filename))
    return any(folder == d or folder.startswith(d + os.sep) for d in _package_dirs())


def full_tracebacks() -> bool:
    """Whether TDSL_TRACEBACK=full asks for tdsl's own frames in tracebacks."""
    return os.environ.get("TDSL_TRACEBACK", "").strip().lower() == "full"


def user_traceback(tb):
    """`tb` without the frames of tdsl's own files (a new chain; `tb` is left as it is)."""
    frames = []
    while tb is not None:
        if not _is_internal(tb.tb_frame.f_code.co_filename):
            frames.append(tb)
        tb = tb.tb_next
    cut = None
    for entry in reversed(frames):
        cut = types.TracebackType(cut, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return cut


def hide_internal_frames(err: BaseException) -> BaseException:
    """`err` with tdsl's frames cut from its traceback and the internal exception it was raised
    while handling left out of the report; unchanged under TDSL_TRACEBACK=full. Re-raise it with a
    bare `raise` (which adds no frame) in the `except` clause of the entry point."""
    if not full_tracebacks():
        err.with_traceback(user_traceback(err.__traceback__))
        err.__suppress_context__ = True
        if err.__cause__ is not None:
            err.__cause__.with_traceback(user_traceback(err.__cause__.__traceback__))
    return err


def public_entry(fn):
    """An entry point of the API: a TdslError leaving it shows the user's frames only
    (`hide_internal_frames`)."""

    @wraps(fn)
    def entry(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TdslError as err:
            hide_internal_frames(err)
            raise
    return entry
