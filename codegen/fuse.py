"""Loop fusion for the C target: kernels that share an outer loop run in one pass over it.

Lowering gives one loop nest per buffered node. Where consecutive kernels loop over
the same rows (a row max, a row sum and a row-wise division in softmax; a dot
product per row, a per-row formula and a column sum in a logistic-regression step),
running them row by row keeps each row in the cache between kernels, and a
per-row temporary becomes a local variable. A sum over the rows (`X.T @ g`, `sum(x,
0)`) joins such a pass as an accumulation into a row of partial sums, which also
turns a column walk into contiguous row walks. Dependences decide what may fuse: a
part reads what an earlier part wrote only in the same row, and never a sum before
the pass ends.
"""
from __future__ import annotations

from dataclasses import replace

from tdsl.dtypes import kind

from .kernels import (Affine, Apply, Buffer, Const, FunctionIR, FusedKernel, Gather, Load, Loop, ModuleIR, Origin, SizeVar,
                      row_strides)
from .loops import MAX_KERNEL_OPS, kernel_affines, kernel_expressions, kernel_loads, map_affines, rename_loop, \
    replace_nodes

SHARED = "i0r"   # the shared loop's variable (an internal name: user names like it get a prefix)


BARRIERS = ("region", "row")   # kernels no pass fuses across: loops and branches, row routines


def fuse_module(module: ModuleIR) -> ModuleIR:
    return replace(module, functions=tuple(fuse_function(fn) for fn in module.functions))


def fuse_function(fn: FunctionIR) -> FunctionIR:
    """The function with its kernels regrouped into fused passes where dependences allow: between
    loops and branches (region kernels, whose bodies are fused on their own) and row routines
    (section 12's sorts and running sums), never across them."""
    if not any(k.kind in BARRIERS for k in fn.kernels):
        return _fuse_segment(fn)
    uses = {id(k): _buffers_used(k) for k in fn.kernels}
    kernels, locals_, segment = [], set(), []
    for k in fn.kernels + (None,):
        if k is None or k.kind in BARRIERS:
            if segment:
                inside = {id(s) for s in segment}   # what the rest of the function reads stays a buffer
                external = set().union(*(u for key, u in uses.items() if key not in inside))
                fused = _fuse_segment(replace(fn, kernels=tuple(segment)), external)
                kernels += fused.kernels
                locals_ |= {t.name for t in fn.temps} - {t.name for t in fused.temps}
                segment = []
            if k is not None and k.kind == "row":
                kernels.append(k)
            elif k is not None:
                kernels.append(replace(k, bodies=tuple(fuse_function(b) for b in k.bodies)))
        else:
            segment.append(k)
    return replace(fn, kernels=tuple(kernels), temps=tuple(t for t in fn.temps if t.name not in locals_))


def _buffers_used(k) -> set[str]:
    """The buffers a kernel reads or writes (a loop's: its inputs, results and second buffers)."""
    if k.kind == "region":
        return {b.name for b in k.inputs + k.results + k.scratch if b is not None and hasattr(b, "role")}
    if k.kind == "row":
        return {b.name for b in k.buffers}
    return {load.buffer.name for load in kernel_loads(k)} | {k.out.name} if hasattr(k, "out") else \
        {load.buffer.name for load in kernel_loads(k)}


def _fuse_segment(fn: FunctionIR, external: set[str] = frozenset()) -> FunctionIR:
    writers: dict[str, int] = {}
    for k in fn.kernels:
        writers[k.out.name] = writers.get(k.out.name, 0) + 1
    reads = {id(k): {load.buffer.name for load in kernel_loads(k)} for k in fn.kernels}
    result, rest = [], list(fn.kernels)
    while rest:
        head, rest = rest[0], rest[1:]
        group = None if getattr(head, "serial", False) else _Group.start(head, writers)
        if group is None:
            result.append(head)
            continue
        before, deferred = [], []
        for k in rest:
            blocked = {d.out.name for d in deferred}
            if reads[id(k)] & blocked or not group.add(k, writers):
                # a value computed once may run before the pass, unless it reads what the pass or a
                # kernel left after it writes, or writes what they read or write (an update's region
                # written over its copy must stay after the copy)
                touched = blocked | set(group.written) | {p.out.name for p in group.originals} | \
                    set().union(*(reads[id(d)] for d in deferred), *(reads[id(o)] for o in group.originals))
                if _is_scalar(k) and not reads[id(k)] & (blocked | set(group.written)) and k.out.name not in touched:
                    before.append(k)
                else:
                    deferred.append(k)
        result += before + [group.kernel(fn, [reads[id(k)] for k in before + deferred] + [external])]
        rest = deferred
    locals_ = {b.name for k in result if k.kind == "fused" for b in k.locals}
    temps = tuple(t for t in fn.temps if t.name not in locals_)
    return replace(fn, kernels=tuple(result), temps=temps)


def _is_scalar(k) -> bool:
    return not k.loops and not getattr(k, "reduce_loops", ()) and k.kind != "fused"


def _blocked(k) -> set[str]:
    return kernel_affines(k)[1]


class _Group:
    """Parts of one fused pass over `loop`, as they are found."""

    def __init__(self, loop: Loop):
        self.loop = loop
        self.parts: list = []
        self.originals: list = []
        self.sums: list[int] = []
        self.written: dict[str, bool] = {}   # buffer name -> written by a sum part
        self.ops = 0   # operations in the parts' bodies

    @staticmethod
    def start(k, writers: dict) -> "_Group | None":
        """A pass starting at `k`: over its first loop, or over its reduction if that walks columns."""
        column = _column_walk(k) and _role(k, None, writers, "sum") == "sum"
        role = "sum" if column else _role(k, None, writers)
        if role is None or role == "sum" and not column:
            return None
        loop = k.loops[0] if role == "point" else k.reduce_loops[0]
        group = _Group(Loop(SHARED, loop.extent))
        return group if group.add(k, writers, role) else None

    def add(self, k, writers: dict, role: str | None = None) -> bool:
        if getattr(k, "serial", False):
            return False
        role = role or _role(k, self.loop, writers)
        if role is None:
            return False
        ops = sum(isinstance(e, Apply) for e in kernel_expressions(k))
        if self.parts and self.ops + ops > MAX_KERNEL_OPS:   # lowering cut a long chain: keep it cut
            return False
        own = k.loops[0] if role == "point" else k.reduce_loops[0]
        part = rename_loop(k, own.var, SHARED)
        if role == "point":
            part = replace(part, loops=part.loops[1:])
        else:
            part = replace(part, reduce_loops=())
        for load in kernel_loads(part):
            if load.buffer.name in self.written and not self._same_row(load.buffer, load.offset):
                return False
        if role == "point" and not self._same_row(part.out, part.out_index, writing=True):
            return False
        if role == "sum":
            self.sums.append(len(self.parts))
        self.parts.append(part)
        self.originals.append(k)
        self.written[k.out.name] = role == "sum"
        self.ops += ops
        return True

    def _same_row(self, buf: Buffer, offset: Affine, writing: bool = False) -> bool:
        """Whether `offset` lies in row `i0r` of `buf` (and, read, whether a point part wrote it)."""
        if not writing and self.written.get(buf.name, True):
            return False
        if not buf.shape or buf.shape[0] != self.loop.extent:
            return False
        stride = row_strides(buf.shape)[0]
        # a gathered index is data: it may fall outside the row (and must be range-checked there)
        return offset.coef(SHARED) == stride and SHARED not in _atoms(offset.without(SHARED)) and \
            not any(isinstance(atom, Gather) for atom, _ in offset.terms)

    def kernel(self, fn: FunctionIR, outside: list[set[str]]):
        """The fused kernel (or the lone original kernel); `outside`: the buffers other kernels read."""
        if len(self.parts) == 1 and not self.sums:
            return self.originals[0]
        locals_ = self._locals(fn, outside)
        parts = [_localize(p, locals_) for p in self.parts]
        stores = _reuse_row_values(parts, self.sums)
        labels = " + ".join(dict.fromkeys(k.origin.label for k in self.originals))
        origin = Origin(labels, self.originals[0].origin.loc)
        return FusedKernel(origin, self.loop, tuple(parts), tuple(self.sums), tuple(locals_.values()),
                           tuple(stores))

    def _locals(self, fn: FunctionIR, outside: list[set[str]]) -> dict[str, Buffer]:
        """Temporaries with one value per point, read only by this pass: they become locals."""
        read_elsewhere = set().union(*outside)
        temps = {t.name: t for t in fn.temps}
        found = {}
        for i, part in enumerate(self.parts):
            buf = part.out
            if i not in self.sums and buf.name in temps and all(d == 1 for d in buf.shape[1:]) \
                    and buf.name not in read_elsewhere:
                found[buf.name] = Buffer(buf.name, buf.dtype, (), "temp", source_name=buf.source_name)
        return found


def _role(k, loop: Loop | None, writers: dict, prefer: str = "point") -> str | None:
    """'point' when `k` runs once per point of the shared loop, 'sum' when it sums over it, else None."""
    if k.kind not in ("map", "reduce", "argreduce") or writers.get(k.out.name, 0) != 1:
        return None
    blocked = _blocked(k)
    if prefer == "point" and k.loops and k.loops[0].var not in blocked and \
            (loop is None or k.loops[0].extent == loop.extent):
        return "point"
    if k.kind == "reduce" and k.op == "sum" and kind(k.value.dtype) == "float" and len(k.reduce_loops) == 1 \
            and k.reduce_loops[0].var not in blocked and (loop is None or k.reduce_loops[0].extent == loop.extent):
        return "sum"
    return None


def _column_walk(k) -> bool:
    """Whether a sum's widest load walks its reduction loop with a stride and an output loop contiguously."""
    if k.kind != "reduce" or len(k.reduce_loops) != 1 or not k.loops:
        return False
    loads = kernel_loads(k)
    if not loads:
        return False
    widest = max(loads, key=lambda load: len(_atoms(load.offset)))
    reduce_var = k.reduce_loops[0].var
    return widest.offset.coef(reduce_var) not in (0, 1) and \
        any(widest.offset.coef(l.var) == 1 for l in k.loops)


def _atoms(aff: Affine) -> set:
    return {atom for atom, _ in aff.terms if isinstance(atom, str)}


def _localize(part, locals_: dict[str, Buffer]):
    """The part with its per-point temporaries read and written as locals."""
    if not locals_:
        return part

    def load(item: Load):
        buf = locals_.get(item.buffer.name)
        return item if buf is None else Load(buf, Affine(), item.dtype)
    part = map_affines(part, lambda a: a, load)
    if part.out.name in locals_:
        part = replace(part, out=locals_[part.out.name], out_index=Affine())
    return part


def _reuse_row_values(parts: list, sums: list[int]) -> list:
    """Sums over a row whose values a later part of the same row recomputes store them instead.

    Softmax sums exp(x - m) over a row, then divides exp(x - m) by the sum: the sum part
    stores each exp into the result row and the division reads it back (one exp a point,
    not two). `parts` is updated in place; the stores for FusedKernel.stores are returned.
    """
    stores = []
    for i, part in enumerate(parts):
        if i in sums or part.kind != "reduce" or part.op != "sum" or len(part.reduce_loops) != 1:
            continue
        r = part.reduce_loops[0]
        for j in range(i + 1, len(parts)):
            user = parts[j]
            if j in sums or user.kind != "map" or len(user.loops) != 1 or user.loops[0].extent != r.extent \
                    or user.out.dtype != part.value.dtype or user.out_index.coef(user.loops[0].var) != 1 \
                    or any(user.out.name == load.buffer.name for p in parts for load in kernel_loads(p)):
                continue
            found = _find_same(user.value, part.value, r.var, user.loops[0].var)
            if found is None:
                continue
            target = rename_loop(user, user.loops[0].var, r.var).out_index
            parts[j] = replace_nodes(user, {id(found): Load(user.out, user.out_index, user.out.dtype)})
            stores.append((i, user.out, target))
            break
    return stores


def _find_same(root, value, var: str, user_var: str):
    """The node of `root`'s DAG that computes `value` with loop `var` read as `user_var`, if any."""
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if _same(node, value, user_var, var):
            return node
        if isinstance(node, Apply):
            stack.extend(node.args)
    return None


def _same(a, b, a_var: str, b_var: str) -> bool:
    """Whether expressions `a` and `b` compute the same value, `a_var` in `a` standing for `b_var` in `b`."""
    pairs, seen = [(a, b)], set()
    while pairs:
        x, y = pairs.pop()
        if (id(x), id(y)) in seen:
            continue
        seen.add((id(x), id(y)))
        if type(x) is not type(y) or getattr(x, "dtype", None) != getattr(y, "dtype", None):
            return False
        if isinstance(x, Apply):
            if x.op != y.op or len(x.args) != len(y.args):
                return False
            pairs.extend(zip(x.args, y.args))
        elif isinstance(x, Load):
            if x.buffer != y.buffer or _renamed(x.offset, a_var, b_var) != _renamed(y.offset, b_var, b_var):
                return False
        elif isinstance(x, Const):
            if repr(x.value) != repr(y.value):
                return False
        elif isinstance(x, SizeVar):
            if x.name != y.name:
                return False
        else:   # positions, checks, gathers: not worth proving equal
            return False
    return True


def _renamed(aff: Affine, old: str, new: str) -> tuple:
    """An index as a comparable value, loop variable `old` read as `new` (only plain atoms)."""
    if not all(isinstance(atom, str) for atom, _ in aff.terms):
        return ("opaque", id(aff))
    return frozenset(((new if atom == old else atom), str(coef)) for atom, coef in aff.terms), str(aff.offset)
