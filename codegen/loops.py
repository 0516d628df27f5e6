"""Loop simplification on the kernel IR: adjacent loops that every access walks contiguously merge.

After merging, an elementwise kernel over C-contiguous data is one flat loop over
all its elements, and a reduction over the trailing axes of a contiguous array is
one flat inner loop: the shapes a vectorizing C compiler handles best.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from .kernels import Affine, Apply, Check, DivMod, Gather, Load, Loop, Position

AffineFn = Callable[[Affine], Affine]


def simplify(kernel):
    """The kernel with each of its loop groups coalesced as far as every access allows."""
    if kernel.kind == "matmul":
        return kernel
    kernel = _coalesce_group(kernel, "loops")
    if kernel.kind in ("reduce", "argreduce"):
        kernel = _coalesce_group(kernel, "reduce_loops")
    return kernel


def _coalesce_group(kernel, field: str):
    """Merge loops of `kernel.<field>` pairwise, innermost pair first."""
    loops = list(getattr(kernel, field))
    p = len(loops) - 2
    while p >= 0:
        outer, inner = loops[p], loops[p + 1]
        affines, blocked = kernel_affines(kernel)
        if outer.var not in blocked and inner.var not in blocked and \
                all(a.coef(outer.var) == a.coef(inner.var) * inner.extent for a in affines):
            loops[p:p + 2] = [Loop(inner.var, outer.extent * inner.extent)]
            kernel = map_affines(replace(kernel, **{field: tuple(loops)}), lambda a, v=outer.var: a.without(v))
        p -= 1
    return kernel


def _expressions(kernel) -> list:
    return [getattr(kernel, f) for f in ("value", "lhs", "rhs") if hasattr(kernel, f)]


def kernel_affines(kernel) -> tuple[list[Affine], set[str]]:
    """Every index the kernel computes, and the loop variables used inside digits (not linearly)."""
    affines = [kernel.out_index] + ([kernel.position] if hasattr(kernel, "position") else [])
    blocked: set[str] = set()
    seen: set[int] = set()
    stack = list(_expressions(kernel)) + [a for aff in affines for a, _ in aff.terms]
    for aff in list(affines):
        _note_atoms(aff, stack, blocked)
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (Load, Position)):
            aff = item.offset if isinstance(item, Load) else item.index
            affines.append(aff)
            _note_atoms(aff, stack, blocked)
        elif isinstance(item, Apply):
            stack.extend(item.args)
        elif isinstance(item, Check):
            stack.extend((item.cond, item.value))
        elif isinstance(item, Gather):
            stack.append(item.value)
    return affines, blocked


def _note_atoms(aff: Affine, stack: list, blocked: set[str]) -> None:
    for atom, _ in aff.terms:
        if isinstance(atom, Gather):
            stack.append(atom)
        elif isinstance(atom, DivMod):
            blocked.update(_all_vars(atom.index))


def _all_vars(aff: Affine) -> set[str]:
    found = set()
    for atom, _ in aff.terms:
        if isinstance(atom, str):
            found.add(atom)
        elif isinstance(atom, DivMod):
            found |= _all_vars(atom.index)
    return found


def map_affines(kernel, fn: AffineFn):
    """The kernel with `fn` applied to every index in it (expressions rebuilt as needed)."""
    rewriter = _Rewriter(fn)
    changes = {"out_index": rewriter.affine(kernel.out_index)}
    if hasattr(kernel, "position"):
        changes["position"] = rewriter.affine(kernel.position)
    for f in ("value", "lhs", "rhs"):
        if hasattr(kernel, f):
            changes[f] = rewriter.expr(getattr(kernel, f))
    return replace(kernel, **changes)


class _Rewriter:
    def __init__(self, fn: AffineFn):
        self.fn = fn
        self.done: dict[int, object] = {}

    def affine(self, aff: Affine) -> Affine:
        terms: dict = {}
        for atom, coef in aff.terms:
            if isinstance(atom, Gather):
                atom = self.expr(atom)
            terms[atom] = coef
        return self.fn(Affine.build(terms, aff.offset))

    def expr(self, e):
        """Rebuild `e` bottom-up, iteratively (expression DAGs can be deep), keeping shared nodes shared."""
        stack = [(e, False)]
        while stack:
            item, ready = stack.pop()
            if id(item) in self.done:
                continue
            children = self._children(item)
            if not ready and children:
                stack.append((item, True))
                stack.extend((c, False) for c in children if id(c) not in self.done)
                continue
            self.done[id(item)] = self._rebuild(item)
        return self.done[id(e)]

    @staticmethod
    def _children(item) -> list:
        if isinstance(item, Apply):
            return list(item.args)
        if isinstance(item, Check):
            return [item.cond, item.value]
        if isinstance(item, Gather):
            return [item.value]
        aff = item.offset if isinstance(item, Load) else item.index if isinstance(item, Position) else None
        return [a for a, _ in aff.terms if isinstance(a, Gather)] if aff is not None else []

    def _rebuild(self, item):
        get = lambda x: self.done[id(x)]  # noqa: E731
        if isinstance(item, Apply):
            return replace(item, args=tuple(get(a) for a in item.args))
        if isinstance(item, Check):
            return replace(item, cond=get(item.cond), value=get(item.value))
        if isinstance(item, Gather):
            return replace(item, value=get(item.value))
        if isinstance(item, Load):
            return replace(item, offset=self.affine(item.offset))
        if isinstance(item, Position):
            return replace(item, index=self.affine(item.index))
        return item
