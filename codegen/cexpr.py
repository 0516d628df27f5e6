"""Expressions of the kernel IR as C text: literals, dims, indices and one local per operation.

The op table (`tdsl.ops`) supplies the expression of every op; this module fills
its placeholders: `{0}`.. the operands, `{T}`/`{C}`/`{f}` the operand dtype, its
C type and math suffix, `{R}`/`{RT}` the result's C type and dtype.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from tdsl.dims import Dim, FloorDivAtom
from tdsl.dtypes import kind
from tdsl.ops import OPS

from .kernels import Affine, Apply, Buffer, Check, Const, DivMod, Gather, Load, Position, SizeVar


@dataclass(frozen=True)
class Dialect:
    """What differs between the C and OpenCL renderings of the same IR."""

    name: str = "c"
    types: dict = field(default_factory=lambda: {
        "bool": "bool", "i32": "int32_t", "i64": "int64_t", "f32": "float", "f64": "double"})
    math_suffix: dict = field(default_factory=lambda: {"f32": "f", "f64": ""})  # expf / exp
    reserved: frozenset = frozenset()   # names the dialect uses beyond C's (a parameter gets `u_`)

    def ctype(self, dtype: str) -> str:
        return self.types[dtype]


C = Dialect()
MATH_SUFFIX = {"f32": "f", "f64": ""}
INT_MIN = {"i32": ("INT32_MIN", -2**31), "i64": ("INT64_MIN", -2**63)}

_KEYWORDS = """auto break case char const continue default do double else enum extern float for goto if
inline int long register restrict return short signed sizeof static struct switch typedef union
unsigned void volatile while _Bool _Complex _Imaginary bool true false NULL size_t err done acc blk
blk_start blk_end blk_at blk_lane any_nan best best_at at lhs main errno assert offsetof isnan isinf isfinite signbit
fpclassify isnormal isgreater isgreaterequal isless islessequal islessgreater isunordered
malloc free calloc realloc abs labs llabs""".split()


def _called_names() -> set[str]:
    """Every function the op table's C expressions call (a parameter must not shadow one)."""
    found = set()
    for op in OPS.values():
        for field_ in (op.c, op.opencl):
            templates = field_.values() if isinstance(field_, dict) else (
                field_ if isinstance(field_, tuple) else [field_])
            for tpl in templates:
                for t in (tpl.values() if isinstance(tpl, dict) else [tpl]):
                    if isinstance(t, str):
                        found.update(re.findall(r"([A-Za-z_]\w*)(?:\{f\})?\(", t))
    return found | {name + "f" for name in found}   # expf, sqrtf, ...: the f32 spellings


RESERVED = set(_KEYWORDS) | _called_names()
# loop variables, locals and buffers of the generated code; macros (upper case); type names (`*_t`)
_INTERNAL = re.compile(r"^((v|i|r|t|g|out)\d|tdsl_)|^[A-Z][A-Z0-9_]+$|^\w*_t$")


def safe_names(names: list[str], reserved: frozenset = frozenset()) -> dict[str, str]:
    """C identifiers for source names: a name C or the generated code uses gets a `u_` prefix."""
    taken = set(names)
    result = {}
    for name in names:
        clash = name in RESERVED or name in reserved or _INTERNAL.match(name)
        c_name = "u_" + name if clash else name
        while c_name != name and c_name in taken:
            c_name = "u_" + c_name
        taken.add(c_name)
        result[name] = c_name
    return result


def literal(value, dtype: str) -> str:
    """A C literal of `dtype` with exactly this value."""
    if dtype == "bool":
        return "true" if value else "false"
    if kind(dtype) == "int":
        value = int(value)
        if value == INT_MIN[dtype][1]:
            return INT_MIN[dtype][0]
        return f"({value})" if value < 0 else str(value)
    value = float(value)
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INFINITY" if value > 0 else "(-INFINITY)"
    text = repr(value) if dtype == "f64" else str(np.float32(value))
    if not any(ch in text for ch in ".e"):
        text += ".0"
    text += "f" if dtype == "f32" else ""
    return f"({text})" if text.startswith("-") else text


def c_string(text: str) -> str:
    """A C string literal (no trigraphs, quotes and backslashes escaped)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("?", "\\?")
    return f'"{escaped}"'


def c_comment(text: str) -> str:
    return text.replace("*/", "* /").replace("??", "? ?").replace("\n", " ")


def paren(text: str) -> str:
    return f"({text})" if (" " in text or text.startswith("-")) and not _wrapped(text) else text


def _wrapped(text: str) -> bool:
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and i < len(text) - 1:
            return False
    return True


class Names:
    """The C spelling of a function's size variables and buffers."""

    def __init__(self, size_vars, buffers, fn_name: str, dialect: Dialect = C):
        user = list(size_vars) + [b.name for b in buffers if b.role == "param"]
        self.user = safe_names(user, dialect.reserved)
        self.fn_name = fn_name

    def size(self, name: str) -> str:
        return self.user[name]

    def buffer(self, buf: Buffer) -> str:
        if buf.role == "param":
            return self.user[buf.name]
        if buf.role == "const":
            return f"tdsl_const_{self.fn_name}_{buf.name[1:]}"
        return buf.name

    def dim(self, d: Dim) -> str:
        """A size expression, with `//` as C division (sizes are never negative)."""
        if d.is_const:
            return str(d.const)
        out = ""
        for mono, coef in sorted(d.terms, key=lambda t: (t[0] == (), str(t[0]))):
            factors = [self._dim_atom(a) for a in mono]
            mag = abs(coef)
            piece = " * ".join(([str(mag)] if mag != 1 or not factors else []) + factors)
            out = (piece if coef > 0 else f"-{piece}") if not out else \
                out + (f" + {piece}" if coef > 0 else f" - {piece}")
        return out

    def _dim_atom(self, atom) -> str:
        if isinstance(atom, FloorDivAtom):
            return f"({paren(self.dim(atom.expr))} / {atom.divisor})"
        return self.size(atom)


class Body:
    """Statements that compute expressions inside a loop nest: one `const` local per operation."""

    def __init__(self, names: Names, counter: list[int], dialect: Dialect = C):
        self.names = names
        self.dialect = dialect
        self.counter = counter
        self.lines: list[str] = []
        self.done: dict[int, str] = {}
        self.fails = False

    def local(self, dtype: str, text: str, hint: str | None = None, prefix: str = "v") -> str:
        name = f"{prefix}{self.counter[0]}" + (f"_{hint}" if hint else "")
        self.counter[0] += 1
        self.lines.append(f"const {self.dialect.ctype(dtype)} {name} = {text};")
        return name

    def value(self, root) -> str:
        """The C text of `root`'s value, emitting the statements it needs first (iteratively)."""
        stack = [(root, False)]
        while stack:
            item, ready = stack.pop()
            if id(item) in self.done:
                continue
            children = [c for c in self._children(item) if id(c) not in self.done]
            if children and not ready:
                stack.append((item, True))
                stack.extend((c, False) for c in children)
                continue
            self.done[id(item)] = self._emit(item)
        return self.done[id(root)]

    def _children(self, item) -> list:
        if isinstance(item, Apply):
            tpl = self.template(item)
            return [a for i, a in enumerate(item.args) if "{%d}" % i in tpl]
        if isinstance(item, Check):
            return [item.cond, item.value]
        if isinstance(item, Gather):
            return [item.value]
        if isinstance(item, (Load, Position)):
            return _gathers(item.offset if isinstance(item, Load) else item.index)
        return []

    def _emit(self, item) -> str:
        if isinstance(item, Const):
            return literal(item.value, item.dtype)
        if isinstance(item, SizeVar):
            return self.names.size(item.name)
        if isinstance(item, Position):
            return self.local("i64", self.index(item.index))
        if isinstance(item, Load):
            return self.load(item)
        if isinstance(item, Apply):
            return self.local(item.dtype, self.apply(item), item.name)
        if isinstance(item, Check):
            self.fails = True
            self.lines.append(f"if ({self.done[id(item.cond)]}) err = {item.error};")
            return self.done[id(item.value)]
        if isinstance(item, Gather):
            self.fails = True
            text = f"tdsl_index({self.done[id(item.value)]}, {self.names.dim(item.extent)}, &err, {item.error})"
            return self.local("i64", text, prefix="g")
        raise TypeError(f"cannot render {item!r}")

    def load(self, item: Load) -> str:
        buf = item.buffer
        if buf.is_scalar and buf.role in ("param", "temp"):
            return self.names.buffer(buf)   # passed by value, or a local variable
        return self.local(item.dtype, f"{self.names.buffer(buf)}[{self.index(item.offset)}]")

    def template(self, item: Apply) -> str:
        operand = item.args[1] if item.op == "where" else item.args[0]
        tpl = OPS[item.op].c_template(kind(operand.dtype), self.dialect.name)
        if tpl is None:
            raise NotImplementedError(f"no {self.dialect.name} expression for {item.op} of {operand.dtype}")
        return tpl

    def apply(self, item: Apply) -> str:
        operand = item.args[1] if item.op == "where" else item.args[0]
        args = [self.done.get(id(a), "") for a in item.args]
        return self.template(item).format(*args, **self.type_fields(operand.dtype, item.dtype))

    def type_fields(self, dtype: str, result: str | None = None) -> dict:
        result = result or dtype
        return {"T": dtype, "C": self.dialect.ctype(dtype), "f": self.dialect.math_suffix.get(dtype, ""),
                "R": self.dialect.ctype(result), "RT": result}

    def index(self, aff: Affine) -> str:
        """An index expression (int64 arithmetic; indices are never negative)."""
        out = ""
        for atom, coef in aff.terms:
            text = self._atom(atom)
            if coef.is_const and coef.const < 0:
                piece, sign = (text if coef.const == -1 else f"{-coef.const} * {text}"), "-"
            else:
                piece, sign = (text if coef == 1 else f"{paren(self.names.dim(coef))} * {text}"), "+"
            out = (piece if sign == "+" else f"-{piece}") if not out else f"{out} {sign} {piece}"
        offset = aff.offset
        if offset != 0 or not out:
            text = self.names.dim(offset)
            if not out:
                return text
            if offset.is_const and offset.const < 0:
                return f"{out} - {-offset.const}"
            return f"{out} + {paren(text)}" if text.startswith("-") else f"{out} + {text}"
        return out

    def _atom(self, atom) -> str:
        if isinstance(atom, str):
            return atom
        if isinstance(atom, Gather):
            return self.done[id(atom)]
        text = f"{paren(self.index(atom.index))} / {paren(self.names.dim(atom.divisor))}"
        if atom.modulus is not None:
            text = f"{text} % {paren(self.names.dim(atom.modulus))}"
        return f"({text})"


def _gathers(aff: Affine) -> list:
    found = []
    for atom, _ in aff.terms:
        if isinstance(atom, Gather):
            found.append(atom)
        elif isinstance(atom, DivMod):
            found.extend(_gathers(atom.index))
    return found
