"""Expressions of the kernel IR as C text: literals, dims, indices and one local per operation.

The op table (`tdsl.ops`) supplies the expression of every op; this module fills
its placeholders: `{0}`.. the operands, `{T}`/`{C}`/`{f}` the operand dtype, its
C type and math suffix, `{R}`/`{RT}` the result's C type and dtype.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from tdsl.dims import Dim, FloorDivAtom
from tdsl.dtypes import kind
from tdsl.ops import OPS

from .kernels import Affine, Apply, Buffer, Check, Const, Gather, Load, Position, SizeVar
from .loops import affine_gathers


@dataclass(frozen=True)
class Dialect:
    """What differs between the C and OpenCL renderings of the same IR."""

    name: str = "c"
    types: dict = field(default_factory=lambda: {
        "bool": "bool", "i32": "int32_t", "i64": "int64_t", "f32": "float", "f64": "double"})
    math_suffix: dict = field(default_factory=lambda: {"f32": "f", "f64": ""})  # expf / exp
    reserved: frozenset = frozenset()   # names the dialect uses beyond C's (a parameter gets `u_`)
    # (the locals of its templates count too: `template_words(name)`)

    def ctype(self, dtype: str) -> str:
        return self.types[dtype]


C = Dialect()
MATH_SUFFIX = {"f32": "f", "f64": ""}
INT_MIN = {"i32": ("INT32_MIN", -2**31), "i64": ("INT64_MIN", -2**63)}

# Words a user's name must not be as it is in generated C or OpenCL: the keywords of C99,
# C23 and GNU C, those of C++ (OUT.h is included from C++ too), and the names of the C
# library that the headers of the prelude define as macros or the generated code calls (and
# the macros GNU C predefines: `linux`, `unix`).
# The generated code's own locals are read from the templates (`template_words`).
_KEYWORDS = """auto break case char const continue default do double else enum extern float for goto if
inline int long register restrict return short signed sizeof static struct switch typedef union
unsigned void volatile while bool true false alignas alignof constexpr nullptr static_assert
thread_local typeof typeof_unqual asm
and_eq bitand bitor catch char8_t char16_t char32_t class compl concept consteval constinit const_cast
co_await co_return co_yield decltype delete dynamic_cast explicit export friend mutable namespace new
noexcept not_eq operator or_eq private protected public reinterpret_cast requires static_cast template
this throw try typeid typename using virtual wchar_t xor xor_eq
NULL size_t main errno math_errhandling assert offsetof isnan isinf isfinite signbit fpclassify isnormal
isgreater isgreaterequal isless islessequal islessgreater isunordered malloc free calloc realloc
abs labs llabs linux unix i386""".split()


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
# Names of the generated code's own: any starting with `_` (C reserves `__x` and `_X`, and
# PoCL renames builtins to `_cl_*`), loop variables, locals and buffers (`v3`, `i0r`, `t2_y`,
# `out0`, `tdsl_*`), macros (upper case, and OpenCL's extension macros `cl_khr_fp64`) and type
# names (`*_t`).
_INTERNAL = re.compile(r"^_|^((v|i|r|t|g|c|out)\d|tdsl_|cl_)|^[A-Z][A-Z0-9_]+$|^\w*_t$")

_JINJA = re.compile(r"\{#.*?#\}|\{%.*?%\}|(\{\{.*?\}\})", re.S)   # a printed value becomes `_`: no word
# what a template prints that declares nothing: comments, strings, member lists, directives but for
# the name a `#define` defines
_NOT_CODE = re.compile(r'/\*.*?\*/|//[^\n]*|"(?:[^"\\\n]|\\.)*"|\b(?:struct|union)\s*\w*\s*\{[^{}]*\}'
                       r"|^[ \t]*#[ \t]*(?:define[ \t]+(\w+))?(?:\\\n|[^\n])*", re.S | re.M)
_NESTED = (re.compile(r"\{[^{}]*\}"), re.compile(r"\([^()]*\)"))


@lru_cache(maxsize=None)
def template_words(target: str) -> frozenset[str]:
    """Every identifier the templates of `target` print as they are (templates/TARGET/*.j2 and
    the shared templates/common/*.j2).

    These are the locals, labels and calls of the generated code, so a user's name that
    is one of them is renamed: the templates are the one list, never kept twice. Of a
    prelude only the file-scope names count (its helpers' parameters have their own scope).
    """
    from importlib.resources import files
    words: set[str] = set()
    for path in (files("tdsl.templates") / target).iterdir():
        if path.name.endswith((".c.j2", ".cl.j2")):   # (the header declares, it has no locals)
            words |= _printed_words(path.read_text(encoding="utf-8"), "prelude" in path.name)
    for path in (files("tdsl.templates") / "common").iterdir():   # the preludes' shared helpers
        if path.name.endswith(".j2"):
            words |= _printed_words(path.read_text(encoding="utf-8"), True)
    return frozenset(words)


def _printed_words(template: str, file_scope: bool) -> set[str]:
    text = _JINJA.sub(lambda m: "_" if m.group(1) else " ", template)
    text = _NOT_CODE.sub(lambda m: f" {m.group(1) or ''} ", text)
    if file_scope:   # without bodies and parameter lists, innermost first until none is left
        for pattern in _NESTED:
            count = 1
            while count:
                text, count = pattern.subn(" ", text)
    return set(re.findall(r"[A-Za-z_]\w*", text))


def reserved(name: str, dialect: "Dialect") -> bool:
    """Whether `name` cannot be used as it is in `dialect`'s generated code."""
    return (name in RESERVED or name in dialect.reserved or name in template_words(dialect.name)
            or _INTERNAL.match(name) is not None)


def safe_names(names: list[str], dialect: "Dialect | None" = None) -> dict[str, str]:
    """C identifiers for source names: a name C or the generated code uses gets a `u_` prefix."""
    dialect = dialect or C
    taken = set(names)
    result = {}
    for name in names:
        c_name = "u_" + name if reserved(name, dialect) else name
        while c_name != name and c_name in taken:
            c_name = "u_" + c_name
        taken.add(c_name)
        result[name] = c_name
    return result


def function_symbols(names: list[str], prefix: str) -> dict[str, str]:
    """The exported C name of each function, `PREFIX_NAME`, renamed (`PREFIX_u_NAME`) where it
    would be another symbol of the module (`PREFIX_error`, `PREFIX_set_blas`, `PREFIX_blas_threads`,
    `PREFIX_blas_calls`, `PREFIX_noted_index`, `PREFIX_failed_index`, the packed entry
    `PREFIX_f_packed` of a function `f` and a profiling build's `PREFIX_f_profile`), and
    `PREFIX_u_NAME_` where it is a reserved word, macro or type name (`int64_t` of a module
    `int64`)."""
    taken = {f"{prefix}_{fixed}" for fixed in ("error", "set_blas", "blas_threads", "blas_calls", "noted_index",
                                               "failed_index")}
    result = {}
    for name in names:
        c_name = name
        while True:
            symbol = f"{prefix}_{c_name}"
            if reserved(symbol, C) and not c_name.endswith("_"):
                c_name = f"u_{c_name}_"
            elif {symbol, symbol + "_packed", symbol + "_profile"} & taken:
                c_name = "u_" + c_name
            else:
                break
        taken |= {symbol, symbol + "_packed", symbol + "_profile"}
        result[name] = symbol
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


# -- text that leaves the compiler --------------------------------------------------------
# Every piece of user text printed into generated code (file names, signatures, source
# lines, error messages) goes through one of these, as Jinja filters of every template
# (codegen/render.py): `c_comment` and `c_string` for C and OpenCL, `py_text` and
# `py_string` for Python.

def _visible(ch: str) -> str:
    """A character as it may stand in generated text: itself, or its Python escape when unprintable."""
    return ch if ch.isprintable() else repr(ch)[1:-1]


def c_comment(text: str) -> str:
    """`text` for the inside of a one-line C or OpenCL comment `/* ... */`.

    Unprintable characters (line breaks, CR, NUL, U+2028, lone surrogates) become escapes,
    so no line ends inside and no backslash-newline splices; a space goes between `*` and
    `/` either way round (no comment ends or opens) and between two `?` (no trigraph).
    """
    text = "".join(map(_visible, str(text)))
    text = re.sub(r"\*(?=/)|/(?=\*)|\?(?=\?)", lambda m: m.group() + " ", text)
    return text + " " if text.endswith("\\") else text


def c_string(text: str) -> str:
    """A C string literal of `text` in UTF-8: quotes, backslashes and `?` (trigraphs) escaped,
    unprintable characters as octal escapes of their bytes (a lone surrogate as its byte)."""
    out = []
    for ch in str(text):
        if ch in '\\"?':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append("".join(f"\\{b:03o}" for b in _utf8(ch)))
    return '"' + "".join(out) + '"'


def _utf8(ch: str) -> bytes:
    try:
        return ch.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return ch.encode("utf-8", "surrogatepass")


def py_text(text: str) -> str:
    """`text` for the inside of a Python string, docstring or comment: quotes and backslashes
    escaped, unprintable characters (line breaks, NUL, lone surrogates) as escapes."""
    return "".join("\\" + ch if ch in '\\"' else _visible(ch) for ch in str(text))


def py_string(text: str) -> str:
    """A Python string literal of `text`."""
    return '"' + py_text(text) + '"'


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
        self.user = safe_names(user, dialect)
        self.fn_name = fn_name

    def size(self, name: str) -> str:
        return self.user[name]

    def buffer(self, buf: Buffer) -> str:
        if buf.role == "param":
            return self.user[buf.name]
        if buf.role == "const":
            return f"tdsl_const_{self.fn_name}_{buf.name[1:]}"
        return buf.name

    def dim(self, d: Dim, checked: bool = False) -> str:
        """A size expression, with `//` as C division (sizes are never negative).

        A compound expression comes parenthesised, so that it can be printed into any
        larger one (`n - 1` times a count is `(n - 1) * runs`, never `n - 1 * runs`).
        `checked`: through the prelude's tdsl_size_* helpers, which give INT64_MIN for a
        result that does not fit in int64 (the size limits at function entry).
        """
        if d.is_const:
            return paren(str(d.const))
        if checked:
            total = None
            for mono, coef in d.terms:
                term = None if coef == 1 and mono else paren(str(coef))
                for atom in mono:
                    text = self._dim_atom(atom, True)
                    term = text if term is None else f"tdsl_size_mul({term}, {text})"
                total = term if total is None else f"tdsl_size_add({total}, {term})"
            return total
        out = ""
        for mono, coef in sorted(d.terms, key=lambda t: (t[0] == (), str(t[0]))):
            factors = [self._dim_atom(a) for a in mono]
            mag = abs(coef)
            piece = " * ".join(([str(mag)] if mag != 1 or not factors else []) + factors)
            out = (piece if coef > 0 else f"-{piece}") if not out else \
                out + (f" + {piece}" if coef > 0 else f" - {piece}")
        return paren(out)

    def _dim_atom(self, atom, checked: bool = False) -> str:
        if isinstance(atom, FloorDivAtom):
            if checked:
                return f"tdsl_size_div({self.dim(atom.expr, True)}, {atom.divisor})"
            return f"({paren(self.dim(atom.expr))} / {atom.divisor})"
        return self.size(atom)


class Body:
    """Statements that compute expressions inside a loop nest: one `const` local per operation."""

    noted = ""   # OpenCL: where a gathered index out of range is noted (", &noted"); C notes it statically

    def __init__(self, names: Names, counter: list[int], dialect: Dialect = C):
        self.names = names
        self.dialect = dialect
        self.counter = counter
        self.lines: list[str] = []
        self.done: dict[int, str] = {}
        self.fails = False
        self.guards = False   # the NaN guard's checks: `err` is a max-reduction, the lanes stay vector
        self.guard_codes: list[str] = []   # their codes at this point, recorded by `finish_guards`
        self.guard_target = "err"   # where: a lane of 8 (`tdsl_guard[0]`) in the loops of 8 lanes
        self.guard_type = "i32"     # their codes' type: i64 once a value tested is not f32
        # in loops of 8 lanes ("sums"): each check's sum (0, or NaN at a birth) is added into a
        # per-lane sum of its own, `tdsl_gsumCODE[0]`, instead (a vector add per point)
        self.guard_mode = "codes"
        self.guard_format = "tdsl_gsum{code}[0]"   # a lane's sum; a map's is a scalar, `tdsl_gsum{code}`
        self.guard_sums: list[tuple[int, str]] = []   # (code, dtype) of those sums
        self._guard_pending: list[tuple[str, int]] = []

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
        if isinstance(item, Check) and item.guard:
            return guard_leaves(item.cond) + [item.value]
        if isinstance(item, Check):
            return [item.cond, item.value]
        if isinstance(item, Gather):
            return [item.value]
        if isinstance(item, (Load, Position)):
            return affine_gathers(item.offset if isinstance(item, Load) else item.index)
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
        if isinstance(item, Check) and item.guard:
            # the NaN guard's: its condition written as one expression (no int locals: GCC then
            # vectorizes the flags as masks beside the doubles), its code max-reduced into err
            self.guards = True
            self.guard_line(item)
            return self.done[id(item.value)]
        if isinstance(item, Check):
            self.fails = True
            self.lines.append(f"if ({self.done[id(item.cond)]}) err = {item.error};")
            return self.done[id(item.value)]
        if isinstance(item, Gather):
            self.fails = True
            text = f"tdsl_index({self.done[id(item.value)]}, {self.names.dim(item.extent)}, &err, {item.error}" \
                   f"{self.noted})"
            return self.local("i64", text, prefix="g")
        raise TypeError(f"cannot render {item!r}")

    def finish_guards(self) -> None:
        """`err` = the largest of the NaN guard's codes met at this point, in one statement (GCC
        vectorizes one max-reduction per iteration, not a chain of them)."""
        for total, code in self._guard_pending:
            self.lines.append(f"{self.guard_format.format(code=code)} += {total};")
        self._guard_pending = []
        codes = self.guard_codes
        while len(codes) > 1:
            a, b = codes[0], codes[1]
            codes = codes[2:] + [self.local(self.guard_type, f"{a} > {b} ? {a} : {b}", prefix="e")]
        if codes:
            into = self.guard_target
            self.lines.append(f"{into} = {into} > {codes[0]} ? {into} : {codes[0]};")
        self.guard_codes = []

    def guard_line(self, item: Check) -> None:
        """The code of a guard's check at this point (0 when it holds not), as wide as the values
        tested (the flags then share their vectors' lanes); `finish_guards` max-reduces them."""
        narrow = all(v.dtype == "f32" for v in guard_leaves(item.cond))
        self.guard_type = "i32" if narrow and self.guard_type == "i32" else "i64"
        dtype = "f32" if narrow else "f64"
        total = self.local(dtype, " + ".join(self.guard_term(t) for t in guard_terms(item.cond)), prefix="g")
        if self.guard_mode == "sums":
            self._guard_pending.append((total, item.error))
            if (item.error, dtype) not in self.guard_sums:
                self.guard_sums.append((item.error, dtype))
            return
        self.guard_codes.append(self.local(self.guard_type, f"{total} != {total} ? {item.error} : 0", prefix="e"))

    def guard_term(self, term) -> str:
        """One op's part of the guard's sum: `v - v` (0 when v is finite, NaN when not) where
        the operands' `a - a` add up to 0 (all finite), else 0: the sum is NaN exactly when an op
        gave birth. Float arithmetic and compares only, so the flags stay in the vectors' lanes."""
        value, operands = term
        born = f"{self.done[id(value)]} - {self.done[id(value)]}"
        if not operands:
            return f"({born})"
        finite = " + ".join(f"({self.done[id(a)]} - {self.done[id(a)]})" for a in operands)
        return f"({finite} == 0 ? {born} : 0)"

    def guard_text(self, cond) -> str:
        """The NaN guard's condition (isfinite, not, minimum as and, maximum as or: lower.py) as
        one C expression over the values already computed."""
        if cond.op == "isfinite":
            return f"isfinite({self.done[id(cond.args[0])]})"
        parts = [self.guard_text(a) for a in cond.args]
        if cond.op == "not":
            return f"!{parts[0]}"
        return "(" + (" & " if cond.op == "minimum" else " | ").join(parts) + ")"   # (0/1 ints: no branches)

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


def guard_leaves(cond) -> list:
    """The values the NaN guard's condition tests with isfinite (lower.py builds it)."""
    if cond.op == "isfinite":
        return [cond.args[0]]
    return [leaf for a in cond.args for leaf in guard_leaves(a)]


def guard_terms(cond) -> list[tuple]:
    """The NaN guard's condition (lower.py) as (value, its float operands) per op checked."""
    if cond.op == "maximum":
        return [t for a in cond.args for t in guard_terms(a)]
    operands = []
    while cond.op == "minimum":
        operands.insert(0, cond.args[1].args[0])
        cond = cond.args[0]
    return [(cond.args[0].args[0], operands)]   # not(isfinite(value))
