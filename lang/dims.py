"""Symbolic dimensions: normalized polynomials over size variables.

A `Dim` is a sum of integer-weighted monomials; a monomial is a sorted tuple of
atoms, an atom being a size variable name or a floor division `(expr) // k`.
Normal form makes `n + 1 - 1 == n` and `n * k == k * n` hold structurally.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Union


@dataclass(frozen=True, order=True)
class FloorDivAtom:
    """The atom `expr // divisor` with a non-constant `expr` and an integer divisor > 1."""

    expr: "Dim"
    divisor: int

    def __str__(self) -> str:
        inner = str(self.expr)
        if len(self.expr.terms) > 1 or any(c != 1 for _, c in self.expr.terms):
            inner = f"({inner})"
        return f"{inner} // {self.divisor}"


Atom = Union[str, FloorDivAtom]


def _atom_key(atom: Atom) -> tuple:
    return (0, atom) if isinstance(atom, str) else (1, str(atom))


@dataclass(frozen=True)
class Dim:
    """A dimension: `terms` maps each monomial (sorted atoms) to its coefficient; () is the constant."""

    terms: tuple[tuple[tuple[Atom, ...], int], ...]

    def __post_init__(self):
        # Dims are compared and hashed on every node built; keep the answers at hand.
        object.__setattr__(self, "_is_const", all(mono == () for mono, _ in self.terms))
        object.__setattr__(self, "_hash", None)
        object.__setattr__(self, "_str", None)   # printing sorts by the printed atoms: keep it

    def __reduce__(self):
        # the cached hash comes from str's hash, which differs between processes
        return (Dim, (self.terms,))

    @staticmethod
    def of(value: "DimLike") -> "Dim":
        """A Dim from an int, a size-variable name or a Dim."""
        if isinstance(value, Dim):
            return value
        if isinstance(value, bool):
            raise TypeError("a dimension cannot be a bool")
        if isinstance(value, int):
            return _normal({(): value})
        if isinstance(value, str):
            return Dim((((value,), 1),))
        raise TypeError(f"not a dimension: {value!r}")

    # -- queries -------------------------------------------------------------
    @property
    def is_const(self) -> bool:
        return self._is_const

    @property
    def const(self) -> int | None:
        """The integer value when the dim is constant, else None."""
        if not self.is_const:
            return None
        return self.terms[0][1] if self.terms else 0

    def variables(self) -> list[str]:
        """The size variables the dim depends on, in sorted order."""
        found: set[str] = set()
        for mono, _ in self.terms:
            for atom in mono:
                if isinstance(atom, str):
                    found.add(atom)
                else:
                    found.update(atom.expr.variables())
        return sorted(found)

    def evaluate(self, sizes: Mapping[str, int]) -> int:
        """The dim's value for concrete size-variable values."""
        total = 0
        for mono, coef in self.terms:
            prod = coef
            for atom in mono:
                prod *= sizes[atom] if isinstance(atom, str) else atom.expr.evaluate(sizes) // atom.divisor
            total += prod
        return total

    # -- arithmetic ----------------------------------------------------------
    def __add__(self, other: "DimLike") -> "Dim":
        acc = dict(self.terms)
        for mono, coef in Dim.of(other).terms:
            acc[mono] = acc.get(mono, 0) + coef
        return _normal(acc)

    __radd__ = __add__

    def __neg__(self) -> "Dim":
        return _normal({mono: -coef for mono, coef in self.terms})

    def __sub__(self, other: "DimLike") -> "Dim":
        return self + (-Dim.of(other))

    def __rsub__(self, other: "DimLike") -> "Dim":
        return Dim.of(other) - self

    def __mul__(self, other: "DimLike") -> "Dim":
        acc: dict = {}
        for m1, c1 in self.terms:
            for m2, c2 in Dim.of(other).terms:
                mono = tuple(sorted(m1 + m2, key=_atom_key))
                acc[mono] = acc.get(mono, 0) + c1 * c2
        return _normal(acc)

    __rmul__ = __mul__

    def __floordiv__(self, divisor: "DimLike") -> "Dim":
        div = Dim.of(divisor).const
        if div is None or div <= 0:
            raise ValueError("a dimension can only be floor-divided by a positive integer")
        if div == 1:
            return self
        if self.is_const:
            return Dim.of(self.const // div)
        if all(coef % div == 0 for _, coef in self.terms):
            return _normal({mono: coef // div for mono, coef in self.terms})
        if len(self.terms) == 1 and self.terms[0][1] == 1 and len(self.terms[0][0]) == 1 and isinstance(
                self.terms[0][0][0], FloorDivAtom):
            inner = self.terms[0][0][0]   # (x // a) // b is x // (a * b) for positive a, b
            return inner.expr // (inner.divisor * div)
        if div >= 2**63:   # no size reaches it; a literal that long would not even compile in C
            raise DimTooComplex("a size expression divides by 2**63 or more")
        if _floor_depth(self) >= MAX_FLOOR_DEPTH:
            raise DimTooComplex(f"a size expression is too complex (floor divisions nested more than "
                                f"{MAX_FLOOR_DEPTH} deep)")
        return _normal({(FloorDivAtom(self, div),): 1})

    # -- comparison and printing ----------------------------------------------
    def __eq__(self, other: object) -> bool:
        if isinstance(other, Dim):
            return self.terms == other.terms
        if isinstance(other, bool):
            return False
        if isinstance(other, int):
            return self.const == other
        if isinstance(other, str):
            return str(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:  # as an int or a name hashes: a Dim equals both
            object.__setattr__(self, "_hash", hash(self.const) if self._is_const else hash(str(self)))
        return self._hash

    def __lt__(self, other: "Dim") -> bool:  # only for deterministic sorting
        return str(self) < str(other)

    def __str__(self) -> str:
        if self._str is None:
            object.__setattr__(self, "_str", self._text())
        return self._str

    def _text(self) -> str:
        if not self.terms:
            return "0"
        out = ""
        ordered = sorted(self.terms, key=lambda t: (t[0] == (), -len(t[0]), [_atom_key(a) for a in t[0]]))
        for mono, coef in ordered:
            mag = abs(coef)
            # `a // 2` inside a product is parenthesized: `*` and `//` group left to right, so
            # `2 * (m - 2) // 2` would read as `(2 * (m - 2)) // 2`
            alone = len(mono) == 1 and mag == 1
            body = " * ".join(f"({a})" if isinstance(a, FloorDivAtom) and not alone else str(a) for a in mono)
            piece = str(mag) if not body else (body if mag == 1 else f"{mag} * {body}")
            if not out:
                out = piece if coef > 0 else f"-{piece}"
            else:
                out += f" + {piece}" if coef > 0 else f" - {piece}"
        return out

    def __repr__(self) -> str:
        return f"Dim({str(self)!r})"


DimLike = Union[Dim, int, str]


MAX_TERMS = 256    # monomials in one dim
MAX_FACTORS = 64   # atoms in one monomial: a product of more sizes than any array can have


MAX_FLOOR_DEPTH = 16   # `((n // 2 + 1) // 2 + 1) // 2 ...`: each level prints and compares the one inside


def _floor_depth(dim: "Dim") -> int:
    """How deeply floor divisions nest in `dim` (bounded by MAX_FLOOR_DEPTH, so this recursion is)."""
    return max((1 + _floor_depth(atom.expr) for mono, _ in dim.terms for atom in mono
                if isinstance(atom, FloorDivAtom)), default=0)


class DimTooComplex(ValueError):
    """A size expression past MAX_TERMS or MAX_FACTORS: the front end reports it, located."""


def _normal(acc: dict) -> Dim:
    items = [(tuple(mono), coef) for mono, coef in acc.items() if coef != 0]
    # Products of sums multiply out: (a + b + c) ** 20 alone has 231 terms. Stop before the
    # arithmetic (quadratic in the size of the operands) takes seconds.
    if len(items) > MAX_TERMS or any(len(mono) > MAX_FACTORS for mono, _ in items):
        raise DimTooComplex(f"a size expression is too complex (more than {MAX_TERMS} terms "
                            f"or {MAX_FACTORS} factors in a product)")
    items.sort(key=lambda t: [_atom_key(a) for a in t[0]])
    return Dim(tuple(items))


Shape = tuple  # a tuple of Dim


def is_nonnegative(dim: Dim) -> bool:
    """Whether `dim` is >= 0 for every value of its size variables (which are >= 0)."""
    return all(coef >= 0 and all(isinstance(a, str) or is_nonnegative(a.expr) for a in mono)
               for mono, coef in dim.terms)


def shape_str(shape: Shape) -> str:
    """Print a shape as the language writes it: `[n, d]`, or '' for a scalar."""
    return "[" + ", ".join(str(d) for d in shape) + "]" if shape else ""


def shape_size(shape: Shape) -> Dim:
    """The number of elements of a shape, as a Dim."""
    total = Dim.of(1)
    for d in shape:
        total = total * d
    return total


def evaluate_shape(shape: Shape, sizes: Mapping[str, int]) -> tuple[int, ...]:
    """A concrete shape from a symbolic one."""
    return tuple(d.evaluate(sizes) for d in shape)
