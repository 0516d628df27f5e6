"""The kernel IR: loop nests over index spaces, with index arithmetic and fused expressions.

A function lowers to buffers (parameters, results, temporaries, constant arrays)
and a list of kernels. Every kernel is a loop nest whose body is an expression
DAG (`Expr`) read at affine indices (`Affine`) of the loop variables. Nothing
here is C syntax: the C renderer (and the OpenCL one) turn the same IR into
source, reading the op table for the expression of each op.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Union

from tdsl.dims import Dim
from tdsl.errors import Location
from tdsl.callspec import CallSpec
from tdsl.runner import ErrorEntry

ZERO = Dim.of(0)
ONE = Dim.of(1)


# -- index arithmetic -------------------------------------------------------------

@dataclass(frozen=True)
class DivMod:
    """One digit of a merged index: `(index // divisor) % modulus`, no modulus on the leading digit.

    `group` holds the sizes of all axes merged into `index` (by a reshape), so that
    a complete set of digits read back with matching strides recombines into `index`.
    """

    index: "Affine"
    group: tuple[Dim, ...]
    position: int

    @property
    def divisor(self) -> Dim:
        total = ONE
        for d in self.group[self.position + 1:]:
            total = total * d
        return total

    @property
    def modulus(self) -> Dim | None:
        return None if self.position == 0 else self.group[self.position]


@dataclass(frozen=True, eq=False)
class Gather:
    """A data-dependent index: `value` (i64) on an axis of `extent`, negative from the end.

    An index out of range is runtime error `error`; the index then reads element 0.
    """

    value: "Expr"
    extent: Dim
    error: int


Atom = Union[str, DivMod, Gather]  # a loop variable's name, a digit, or a gathered index


@dataclass(frozen=True)
class Affine:
    """An index: `sum(coef * atom) + offset`, coefficients and offset symbolic in the size variables."""

    terms: tuple[tuple[Atom, Dim], ...] = ()
    offset: Dim = ZERO

    @staticmethod
    def var(name: str) -> "Affine":
        return Affine(((name, ONE),))

    @staticmethod
    def const(value) -> "Affine":
        return Affine((), Dim.of(value))

    @staticmethod
    def build(terms: dict, offset: Dim) -> "Affine":
        """Normal form: no zero coefficients, complete digit sets folded back into their index."""
        terms = {a: c for a, c in terms.items() if c != 0}
        folded = _fold_digits(terms)
        if folded is not None:
            return folded + Affine((), offset)
        return Affine(tuple(terms.items()), offset)

    def __add__(self, other: "Affine") -> "Affine":
        terms = dict(self.terms)
        for atom, coef in other.terms:
            terms[atom] = terms.get(atom, ZERO) + coef
        return Affine.build(terms, self.offset + other.offset)

    def shift(self, amount: Dim) -> "Affine":
        return Affine(self.terms, self.offset + amount)

    def scale(self, factor) -> "Affine":
        factor = Dim.of(factor)
        if factor == 0:
            return Affine()
        return Affine.build({a: c * factor for a, c in self.terms}, self.offset * factor)

    def coef(self, atom: Atom) -> Dim:
        for a, c in self.terms:
            if a == atom:
                return c
        return ZERO

    def without(self, atom: Atom) -> "Affine":
        return Affine(tuple((a, c) for a, c in self.terms if a != atom), self.offset)

    @property
    def is_zero(self) -> bool:
        return not self.terms and self.offset == 0


def _fold_digits(terms: dict) -> Affine | None:
    """Digits (i // P_k) % d_k of one merged index i, with coefficients c * P_k, sum to c * i."""
    groups: dict[tuple, list] = {}
    for atom, coef in terms.items():
        if isinstance(atom, DivMod):
            groups.setdefault((atom.index, atom.group), []).append((atom, coef))
    for (index, group), digits in groups.items():
        if len(digits) != len(group):
            continue
        by_position = {d.position: c for d, c in digits}
        last = by_position.get(len(group) - 1)
        if last is None or any(by_position.get(k) != last * DivMod(index, group, k).divisor
                               for k in range(len(group))):
            continue
        rest = {a: c for a, c in terms.items() if not (isinstance(a, DivMod) and a.index == index
                                                       and a.group == group)}
        return Affine.build(rest, ZERO) + index.scale(last)
    return None


def row_major(index: tuple[Affine, ...], shape: tuple[Dim, ...]) -> Affine:
    """The flat offset of a multi-index into a C-contiguous array of `shape`."""
    offset = Affine()
    for idx, stride in zip(index, row_strides(shape)):
        offset = offset + idx.scale(stride)
    return offset


def row_strides(shape: tuple[Dim, ...]) -> list[Dim]:
    """Element strides of a C-contiguous array."""
    strides, stride = [], ONE
    for dim in reversed(shape):
        strides.append(stride)
        stride = stride * dim
    return strides[::-1]


# -- values -------------------------------------------------------------------------
# Expressions are compared by identity: the lowering builds each one once (hash-consing).

@dataclass(frozen=True, eq=False)
class Const:
    value: object
    dtype: str


@dataclass(frozen=True, eq=False)
class SizeVar:
    name: str
    dtype: str = "i64"


@dataclass(frozen=True, eq=False)
class Position:
    """An index used as a value (arange, the position found by argmax)."""

    index: Affine
    dtype: str = "i64"


@dataclass(frozen=True)
class Buffer:
    """An array the function reads or writes: a parameter, a result, a temporary or a constant."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]
    role: str                      # param | output | temp | const
    data: tuple | None = None      # const: the flat values
    source_name: str | None = None  # the name in the .tdsl source, if any

    @property
    def is_scalar(self) -> bool:
        return not self.shape


@dataclass(frozen=True, eq=False)
class Load:
    buffer: Buffer
    offset: Affine
    dtype: str


@dataclass(frozen=True, eq=False)
class Apply:
    """An op of the op table (elementwise or cast) applied to operand values; `loc`, where the
    lowering gives it, is the .tdsl statement computing it (a debug build's `#line`)."""

    op: str
    dtype: str
    args: tuple
    name: str | None = None
    loc: Location | None = None


@dataclass(frozen=True, eq=False)
class Check:
    """`value`, after recording runtime error `error` when `cond` holds; a `guard` check (the NaN
    guard's, tdsl/nanguard.py) keeps the largest code met, without a branch, so its loop vectorizes."""

    cond: object
    error: int
    value: object
    guard: bool = False

    @property
    def dtype(self) -> str:
        return self.value.dtype


Expr = Union[Const, SizeVar, Position, Load, Apply, Check]


# -- kernels -------------------------------------------------------------------------

@dataclass(frozen=True)
class Loop:
    var: str
    extent: Dim


@dataclass(frozen=True)
class Origin:
    """Where a kernel comes from: a label for readers and the .tdsl location."""

    label: str
    loc: Location | None = None


@dataclass(frozen=True)
class MapKernel:
    """`out[out_index] = value` at every point of `loops`."""

    origin: Origin
    out: Buffer
    out_index: Affine
    loops: tuple[Loop, ...]
    value: Expr
    serial: bool = False   # the points run in order (a scatter: the last write wins) ...
    free: tuple[str, ...] = ()   # ... but for these loops, whose points never write one element twice:
                                 # they may run in parallel, each running the others in order
    kind: str = field(default="map", init=False)


@dataclass(frozen=True)
class ReduceKernel:
    """`out[out_index] = op over reduce_loops of value`, at every point of `loops`."""

    origin: Origin
    out: Buffer
    out_index: Affine
    loops: tuple[Loop, ...]
    reduce_loops: tuple[Loop, ...]
    op: str                # sum | prod | max | min | any | all
    value: Expr
    kind: str = field(default="reduce", init=False)


@dataclass(frozen=True)
class ArgReduceKernel:
    """`out[out_index] = position of the first extreme value`, `position` over reduce_loops."""

    origin: Origin
    out: Buffer
    out_index: Affine
    loops: tuple[Loop, ...]
    reduce_loops: tuple[Loop, ...]
    op: str                # argmax | argmin
    value: Expr
    position: Affine
    kind: str = field(default="argreduce", init=False)


@dataclass(frozen=True)
class MatmulKernel:
    """`out[b, i, j] = sum over k of lhs[b, i, k] * rhs[b, k, j]`; `loops` are batch + (row,).

    Rendered row by row: for each k, a row of rhs scaled by lhs[b, i, k] is added to
    the row of out, so the innermost loop (over col) walks out and rhs contiguously.
    """

    origin: Origin
    out: Buffer
    out_index: Affine
    loops: tuple[Loop, ...]
    col: Loop
    inner: Loop
    lhs: Expr
    rhs: Expr
    kind: str = field(default="matmul", init=False)


@dataclass(frozen=True)
class FusedKernel:
    """Kernels that share an outer loop, run in one pass over it (made by fuse.py, C target only).

    At each point of `loop`, every part runs over its own loops, in order; `loop` has
    been taken out of each part. A part listed in `sums` is a ReduceKernel (a float
    sum) whose reduction ran over `loop`: it adds its value into its result at every
    point. `locals` are scalar temporaries that live inside the loop (a value per point).
    `stores` are (part index, buffer, index): that sum part also stores each value it
    adds at buffer[index], where a later part reads it instead of computing it again.
    """

    origin: Origin
    loop: Loop
    parts: tuple["Kernel", ...]
    sums: tuple[int, ...] = ()
    locals: tuple[Buffer, ...] = ()
    stores: tuple[tuple[int, Buffer, "Affine"], ...] = ()
    kind: str = field(default="fused", init=False)

    @property
    def loops(self) -> tuple[Loop, ...]:
        return (self.loop,)


@dataclass(frozen=True)
class RegionKernel:
    """A loop or branch (section 11): its bodies are functions of their own, called per iteration.

    `inputs` are the region node's inputs (a Buffer, or a Const for a literal scalar): for `for`
    (start, stop, carried..., captured...), for `while` (carried..., captured...), for `if`
    (pred, captured...). `results` receive the region's results; for a loop, result k is also
    the carried value's buffer, and `scratch[k]` its second buffer (the body writes the next value
    there, then the two swap), or None when the body updates it in place. A `for` body takes the
    loop index as its last size variable `index`, or as its first parameter (`index_param`).
    """

    origin: Origin
    region: str                       # for | while | if
    bodies: tuple["FunctionIR", ...]  # for: (body,); while: (cond, body); if: (then, else)
    inputs: tuple
    results: tuple[Buffer, ...]
    scratch: tuple[Buffer | None, ...] = ()
    step: int = 1
    index: str | None = None
    index_param: bool = False
    kind: str = field(default="region", init=False)

    @property
    def loops(self) -> tuple[Loop, ...]:
        return ()

    @property
    def carried(self) -> int:
        return 0 if self.region == "if" else len(self.results)


@dataclass(frozen=True)
class RowKernel:
    """One routine per row, the rows in parallel (section 12: cumsum, sort, ...).

    Every buffer holds `rows` contiguous rows with the routine's axis last (the lowering
    copies an operand into that layout first). `ins` and the first output have rows of
    `length` elements, but for `top_k` (outputs of `count` per row: values, indices) and
    `unsort` (inputs of `count` per row, written at their positions in an output row of
    `length`). `scratch` are the routine's work rows (radix keys and indices, `length` per
    row). `dtype` is the values' dtype. cumsum and cumprod read their operand in place
    instead: a block of `inner` rows, interleaved (element i of row j at `i * inner + j`),
    per each of `rows`; every other routine has `inner` 1. The routines' text is written
    once, for C and OpenCL, in templates/common/rows.j2.
    """

    origin: Origin
    routine: str                      # cumsum | cumprod | cumprod_grad | sort | argsort | top_k | unsort
    outs: tuple[Buffer, ...]
    ins: tuple[Buffer, ...]
    scratch: tuple[Buffer, ...]
    rows: Dim
    length: Dim
    count: Dim
    dtype: str
    inner: Dim = ONE
    kind: str = field(default="row", init=False)

    @property
    def loops(self) -> tuple[Loop, ...]:
        return ()   # no loop nest of the IR: the routine walks its rows (a barrier for fusion)

    @property
    def out_index(self) -> Affine:
        return Affine()   # no index expressions: the walks over kernels' indices find none

    @property
    def buffers(self) -> tuple[Buffer, ...]:
        return self.ins + self.outs + self.scratch


Kernel = Union[MapKernel, ReduceKernel, ArgReduceKernel, MatmulKernel, FusedKernel, RegionKernel, RowKernel]


# -- functions and modules -------------------------------------------------------

@dataclass(frozen=True)
class SizeCheck:
    """Runtime error `error` when every (dim, relation) holds; relation is '<0', '!=0' or '==0'."""

    conditions: tuple[tuple[Dim, str], ...]
    error: int


@dataclass(frozen=True)
class SizeLimit:
    """Runtime error `error` unless an array of `shape` can exist: its nonzero dims, each computed
    without overflow, times `itemsize` are at most 2**63 - 1 bytes (NumPy's rule). Checked at
    function entry, before the size checks and any allocation."""

    shape: tuple[Dim, ...]
    itemsize: int
    error: int


# A runtime error a function can report (code k + 1 of a module is its errors[k]):
# one type for every target's host side (tdsl/runner.py).
ErrorInfo = ErrorEntry


@dataclass(frozen=True)
class FunctionIR:
    name: str
    signature: str
    size_vars: tuple[str, ...]
    params: tuple[Buffer, ...]
    outputs: tuple[Buffer, ...]
    temps: tuple[Buffer, ...]
    consts: tuple[Buffer, ...]
    checks: tuple[SizeCheck, ...]
    kernels: tuple[Kernel, ...]
    loc: Location | None = None
    limits: tuple[SizeLimit, ...] = ()          # shapes that must fit, checked first
    alloc_errors: tuple[tuple[str, int], ...] = ()   # (buffer name, error code when its allocation fails)


@dataclass(frozen=True)
class ModuleIR:
    prefix: str
    functions: tuple[FunctionIR, ...]
    errors: tuple[ErrorInfo, ...]   # error code k + 1 is errors[k]
    file: str = "<string>"
    calls: tuple[CallSpec, ...] = ()   # how to call each function, with the module's error table


def with_calls(module: ModuleIR, graphs: list, symbols: dict[str, str] | None = None) -> ModuleIR:
    """The module with the CallSpec of each function (its C entry point from `symbols`)."""
    calls = tuple(CallSpec.of(g).compiled(module.errors, (symbols or {}).get(g.name, "")) for g in graphs)
    return replace(module, calls=calls)


def with_symbols(module: ModuleIR, symbols: dict[str, str]) -> ModuleIR:
    """The module with each function's C entry point in its CallSpec."""
    return replace(module, calls=tuple(replace(c, symbol=symbols[c.name]) for c in module.calls))


OUT_OF_MEMORY = ErrorInfo("out of memory")
