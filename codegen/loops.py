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
# The most operations one loop body holds (lowering cuts longer fused chains, fusion stops a pass
# there): GCC's time grows with the square of a body's length, and no ordinary program comes near.
MAX_KERNEL_OPS = 1000


def simplify(kernel):
    """The kernel with each of its loop groups coalesced as far as every access allows."""
    if kernel.kind in ("matmul", "fused", "region"):
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
            blocked.update(all_vars(atom.index))
            stack.extend(affine_gathers(atom.index))   # a gather read through a reshape's digits


def affine_gathers(aff: Affine) -> list[Gather]:
    """The gathered indices an index reads, those inside the digits of a merged index included."""
    found = []
    for atom, _ in aff.terms:
        if isinstance(atom, Gather):
            found.append(atom)
        elif isinstance(atom, DivMod):
            found.extend(affine_gathers(atom.index))
    return found


def value_children(item) -> list:
    """The values an operation, a check or a gather computes from (a load's index aside)."""
    if isinstance(item, Apply):
        return list(item.args)
    if isinstance(item, Check):
        return [item.cond, item.value]
    if isinstance(item, Gather):
        return [item.value]
    return []


def expression_children(item) -> list:
    """The expressions `item` reads: operands, and the gathered indices of its index."""
    return _Rewriter._children(item)


def all_vars(aff: Affine) -> set[str]:
    found = set()
    for atom, _ in aff.terms:
        if isinstance(atom, str):
            found.add(atom)
        elif isinstance(atom, DivMod):
            found |= all_vars(atom.index)
    return found


def kernel_expressions(kernel) -> list:
    """Every node of the kernel's expressions (gathered indices included), each once."""
    if kernel.kind == "fused":
        return [e for part in kernel.parts for e in kernel_expressions(part)]
    if kernel.kind == "region":
        return []
    return expressions_under(list(_expressions(kernel)) +
                             [g for aff in kernel_affines(kernel)[0] for g in affine_gathers(aff)])


def expressions_under(roots: list) -> list:
    """Every expression under `roots` (operands and gathered indices), each once, found
    iteratively (expression DAGs are deep); later ones first."""
    found, seen, stack = [], set(), list(roots)
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        found.append(item)
        stack.extend(_Rewriter._children(item))
    return found


def kernel_loads(kernel) -> list[Load]:
    """Every load of the kernel's expressions (gathered indices included), each once."""
    return [e for e in kernel_expressions(kernel) if isinstance(e, Load)]


def rename_loop(kernel, old: str, new: str):
    """The kernel with loop variable `old` called `new` in its indices (not in its loop lists)."""
    def rename(aff: Affine) -> Affine:
        return Affine.build({(new if atom == old else atom): c for atom, c in aff.terms}, aff.offset)
    return map_affines(kernel, rename)


def map_affines(kernel, fn: AffineFn, load_fn: Callable | None = None):
    """The kernel with `fn` applied to every index in it (expressions rebuilt as needed).

    `load_fn`, if given, then maps every (re-indexed) load to the expression replacing it.
    """
    rewriter = _Rewriter(fn, load_fn)
    changes = {"out_index": rewriter.affine(kernel.out_index)}
    if hasattr(kernel, "position"):
        changes["position"] = rewriter.affine(kernel.position)
    for f in ("value", "lhs", "rhs"):
        if hasattr(kernel, f):
            changes[f] = rewriter.expr(getattr(kernel, f))
    return replace(kernel, **changes)


def replace_nodes(kernel, mapping: dict):
    """The kernel with expression nodes replaced: `mapping` takes id(node) to its replacement."""
    rewriter = _Rewriter(lambda a: a)
    rewriter.done.update(mapping)
    return replace(kernel, value=rewriter.expr(kernel.value))


class _Rewriter:
    def __init__(self, fn: AffineFn, load_fn: Callable | None = None):
        self.fn = fn
        self.load_fn = load_fn
        self.done: dict[int, object] = {}

    def affine(self, aff: Affine) -> Affine:
        terms: dict = {}
        for atom, coef in aff.terms:
            if isinstance(atom, Gather):
                atom = self.expr(atom)
            elif isinstance(atom, DivMod) and affine_gathers(atom.index):
                # the digits of a gathered index: the loads inside it are re-indexed too
                atom = replace(atom, index=self.affine(atom.index))
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
        aff = item.offset if isinstance(item, Load) else item.index if isinstance(item, Position) else None
        return affine_gathers(aff) if aff is not None else value_children(item)

    def _rebuild(self, item):
        get = lambda x: self.done[id(x)]  # noqa: E731
        if isinstance(item, Apply):
            return replace(item, args=tuple(get(a) for a in item.args))
        if isinstance(item, Check):
            return replace(item, cond=get(item.cond), value=get(item.value))
        if isinstance(item, Gather):
            return replace(item, value=get(item.value))
        if isinstance(item, Load):
            load = replace(item, offset=self.affine(item.offset))
            return self.load_fn(load) if self.load_fn else load
        if isinstance(item, Position):
            return replace(item, index=self.affine(item.index))
        return item
