"""Lowering: a typed function graph becomes buffers and fused kernels (see kernels.py).

Planning decides which nodes get a buffer: parameters, results, reductions,
matmuls, concatenations, and elementwise work that would otherwise be recomputed
for every element of a broadcast (or of a matmul operand). Everything else is
fused: elementwise chains into one loop, elementwise producers into the
reduction that consumes them, and layout ops (transpose, slice, broadcast,
reshape) into the index arithmetic of the loads.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import replace

from tdsl.dims import Dim, shape_size, shape_str
from tdsl.dtypes import kind, to_numpy
from tdsl.graph import REGION_OPS, FunctionGraph, Node, deep_recursion, in_place_results, toposort
from tdsl.limits import (collect_checks, computed_roots, const_value, covered, no_memory_message, size_key,
                         too_big_message, value_checked, value_sizes)
from tdsl.nanguard import FLOATS, guarded, op_text, source_name
from tdsl.ops import OPS, check_message, check_place, failure_site

from .kernels import (ONE, OUT_OF_MEMORY, Affine, Apply, ArgReduceKernel, Buffer, Check, Const,
                      ErrorInfo, FunctionIR, Gather, Load, Loop, MapKernel, MatmulKernel,
                      ModuleIR, Origin, Position, ReduceKernel, RegionKernel, RowKernel, SizeCheck, SizeLimit, SizeVar,
                      row_major, with_calls)
from .layout import LAYOUT, broadcast_index, input_index
from .loops import MAX_KERNEL_OPS, expression_children, expressions_under, simplify

ALWAYS_BUFFERED = ("reduce", "argreduce", "matmul", "concat", "region", "update", "scatter", "ordering")


class ErrorTable:
    """Runtime errors of a module; code k + 1 is entry k, code 1 is 'out of memory'."""

    def __init__(self):
        self.entries: list[ErrorInfo] = [OUT_OF_MEMORY]
        self.regions = 0   # loop and branch bodies lowered in the module (their C functions' numbers)

    def code(self, info: ErrorInfo) -> int:
        if info not in self.entries:
            self.entries.append(info)
        return self.entries.index(info) + 1


def lower_module(graphs: list[FunctionGraph], prefix: str, guard: bool = False) -> ModuleIR:
    """Every function of a module, sharing one table of error codes, with how to call each
    (`guard`: the NaN guard's checks, tdsl/nanguard.py)."""
    errors = ErrorTable()
    with deep_recursion():
        functions = tuple(Lowering(g, errors, guard=guard).run() for g in graphs)
    file = graphs[0].file if graphs else "<string>"
    return with_calls(ModuleIR(prefix, functions, tuple(errors.entries), file), graphs)



def _kind(node: Node) -> str:
    return OPS[node.op].kind


def _through_layout(node: Node) -> Node:
    while node.op in LAYOUT:
        node = node.inputs[0]
    return node


def _merged_view(node: Node) -> bool:
    """Whether a reshape merges axes of a transposed, sliced or broadcast view: its elements are
    then no strided matrix, and a matmul reading it would run its own loops, not BLAS."""
    reshaped = False
    while node.op in LAYOUT:
        if node.op == "reshape" and _drop_ones(node.shape) != _drop_ones(node.inputs[0].shape):
            reshaped = True   # (a reshape that only adds or drops axes of length 1 merges nothing: xs[i])
        elif reshaped:
            return True
        node = node.inputs[0]
    return False


def _drop_ones(shape) -> tuple:
    return tuple(d for d in shape if d != 1)


def _computes(node: Node) -> bool:
    """Whether reading `node` inline does arithmetic (rather than loads and casts)."""
    while node.op in LAYOUT or node.op == "cast":
        node = node.inputs[0]
    return _kind(node) in ("elementwise", "gather")


class Lowering:
    """Lowers one function graph."""

    def __init__(self, graph: FunctionGraph, errors: ErrorTable, name: str | None = None,
                 in_place: dict | None = None, index: str | None = None, body: bool = False,
                 guard: bool = False):
        self.graph = graph
        self.guard = guard                  # the NaN guard: each float op checks what it produces
        self.guard_nodes: dict[int, Node] = {}   # id(Apply) -> the node it computes, for the guard
        self.errors = errors
        self.name = name or graph.name      # a region body's C-safe name (its graph's is 'f:for@3')
        self.in_place = in_place or {}      # result index -> the parameter whose buffer it shares (a body)
        self.regions: dict = {}             # (region, inputs) -> its kernel, once
        self.index = index                  # a loop body's index (its last size variable), if any
        self.body = body                    # a loop or branch body: its checks name the sizes' values
        self.nodes = toposort(computed_roots(graph))   # the results, and named values that can fail unread
        self.computed = _computed_nodes(graph, self.nodes)
        self.buffer_of: dict[int, Buffer] = {}
        self.memo: dict = {}
        self.interned: dict = {}
        self.temps: list[Buffer] = []
        self.temp_nodes: dict[str, Node] = {}   # temporary buffer name -> the value it holds
        self.consts: list[Buffer] = []
        self.checked: dict[int, list] = {}   # id(failing node) -> [(check-domain index, its expression)]

    def run(self) -> FunctionIR:
        g = self.graph
        params = tuple(Buffer(p.name, p.dtype, p.shape, "param", source_name=p.name) for p in g.params)
        outputs = tuple(Buffer(f"out{i}", o.dtype, o.shape, "output") for i, o in enumerate(g.outputs))
        jobs = self.assign_buffers(params, outputs, self.cut_long_chains(self.plan()))
        raw = [k for node, target in jobs for k in self.kernels_for(node, target)]
        kernels = tuple(simplify(k) for k in raw + self.check_kernels(raw))   # checks read raw's buffers
        return FunctionIR(self.name, g.signature, g.size_vars, params, outputs, tuple(self.temps),
                          tuple(self.consts), self.size_checks(), kernels, g.loc,
                          self.size_limits(kernels), self.alloc_errors(outputs))

    # -- planning ------------------------------------------------------------------
    def plan(self) -> set[int]:
        """The ids of the nodes that get a buffer of their own."""
        keep = {id(o) for o in self.graph.outputs}
        keep.update(id(n) for n in self.computed if _kind(n) in ALWAYS_BUFFERED)
        for node in self.computed:
            if _kind(node) == "region":
                keep.update(id(i) for i in node.inputs if not (i.op == "param" or i.op == "const"))
            elif node.op == "matmul":
                for view in node.inputs:
                    operand = _through_layout(view)
                    if not (operand.op in ("param", "const", "sizevar", "iota")
                            or _kind(operand) in ALWAYS_BUFFERED):
                        keep.add(id(operand))
                    if _merged_view(view) and node.dtype in ("f32", "f64"):
                        keep.add(id(view))   # a contiguous copy that BLAS can read
            elif node.op == "take":
                x, indices = node.inputs
                self._keep_if_expanded(x, None, keep)
                self._keep_if_expanded(indices, node, keep)
            elif _kind(node) in ("elementwise", "cast") or node.op == "broadcast":
                for operand in node.inputs:
                    self._keep_if_expanded(operand, node, keep)
        return keep

    @staticmethod
    def _keep_if_expanded(operand: Node, user: Node | None, keep: set) -> None:
        """Arithmetic read through a broadcast would be redone per element: give it a buffer."""
        if user is not None and shape_size(operand.shape) == shape_size(user.shape):
            return
        if _computes(operand):
            keep.add(id(_through_layout(operand)))

    def cut_long_chains(self, keep: set[int]) -> set[int]:
        """`keep`, plus every MAX_KERNEL_OPS-th op of a longer fused chain that no other kernel
        reads into (so a cut recomputes nothing): C compilers take time quadratic in a loop body's
        length (10,000 fused ops: 17 s of gcc; cut in ten: 2.5 s)."""
        users = Counter(id(x) for node in self.computed for x in dict.fromkeys(node.inputs))
        ops: dict[int, int | None] = {}   # fused ops since the last buffer; None: one is read twice
        for node in self.computed:
            if id(node) in keep or not node.inputs:
                ops[id(node)] = 0
                continue
            below = [ops[id(x)] if ops[id(x)] == 0 or users[id(x)] == 1 else None for x in node.inputs]
            count = None if None in below else 1 + max(below)
            if count is not None and count >= MAX_KERNEL_OPS and _kind(node) in ("elementwise", "cast"):
                keep.add(id(node))
                count = 0
            ops[id(node)] = count
        return keep

    def assign_buffers(self, params, outputs, keep: set[int]) -> list[tuple[Node, Buffer]]:
        """Give planned nodes their buffers; the (node, buffer) kernels to run, in order."""
        by_name = {p.name: p for p in params}
        first_output: dict[int, int] = {}
        for i, out in enumerate(self.graph.outputs):
            first_output.setdefault(id(out), i)
        jobs = []
        shared: dict = {}   # (region, inputs, result) -> the buffer of the first of equal region results
        for node in self.computed:
            if _kind(node) == "region" and (node.attr("region"), node.inputs, node.attr("result")) in shared:
                # an equal result node (another object): the region writes one buffer for both
                self.buffer_of[id(node)] = shared[(node.attr("region"), node.inputs, node.attr("result"))]
                continue
            if node.op == "param":
                self.buffer_of[id(node)] = by_name[node.attr("name")]
            elif node.op == "const" and node.ndim:
                self.buffer_of[id(node)] = self.const_buffer(node)
            elif id(node) in keep:
                i = first_output.get(id(node))
                target = outputs[i] if i is not None else self.temp_buffer(node)
                self.buffer_of[id(node)] = target
                jobs.append((node, target))
                if _kind(node) == "region":
                    shared[(node.attr("region"), node.inputs, node.attr("result"))] = target
        for out, target in zip(self.graph.outputs, outputs):
            if self.buffer_of[id(out)] is not target:
                jobs.append((out, target))   # a parameter, a constant or a repeated result: copy it
        return jobs

    def temp_buffer(self, node: Node) -> Buffer:
        name = f"t{len(self.temps)}" + (f"_{node.name}" if node.name else "")
        buf = Buffer(name, node.dtype, node.shape, "temp", source_name=node.name)
        self.temps.append(buf)
        self.temp_nodes[name] = node
        return buf

    def const_buffer(self, node: Node) -> Buffer:
        data = tuple(const_value(node).ravel().tolist())
        buf = Buffer(f"c{len(self.consts)}", node.dtype, node.shape, "const", data)
        self.consts.append(buf)
        return buf

    # -- kernels ---------------------------------------------------------------------
    def kernels_for(self, node: Node, target: Buffer) -> list:
        if self.buffer_of.get(id(node)) is not target:
            return [self.map_kernel(node, target, copy=True)]
        build = {"reduce": self.reduce_kernel, "argreduce": self.argreduce_kernel,
                 "matmul": self.matmul_kernel, "concat": self.concat_kernels, "region": self.region_kernels,
                 "update": self.update_kernels, "scatter": self.scatter_kernels,
                 "ordering": self.row_kernels}.get(_kind(node))
        kernels = build(node, target) if build else [self.map_kernel(node, target)]
        if self.guard:
            kernels = [self.guard_values(k) for k in kernels]
            if _kind(node) in ("reduce", "matmul") and guarded(node):
                kernels.append(self.guard_kernel(node, target))
        return kernels

    @staticmethod
    def origin(node: Node, what: str | None = None) -> Origin:
        label = what or node.op
        return Origin(f"{node.name} = {label}" if node.name else label, node.loc)

    @staticmethod
    def index_space(shape, prefix: str) -> tuple[list[Loop], tuple[Affine, ...]]:
        """Loops over the axes of `shape` that are not a literal 1, and the index they make."""
        loops, idx = [], []
        for k, dim in enumerate(shape):
            if dim == 1:
                idx.append(Affine())
                continue
            loops.append(Loop(f"{prefix}{k}", dim))
            idx.append(Affine.var(loops[-1].var))
        return loops, tuple(idx)

    def map_kernel(self, node: Node, target: Buffer, copy: bool = False) -> MapKernel:
        loops, idx = self.index_space(node.shape, "i")
        value = self.value(node, idx) if copy else self.compute(node, idx)
        origin = self.origin(node, f"copy of {node.op}" if copy else None)
        return MapKernel(origin, target, row_major(idx, target.shape), tuple(loops), value)

    def _reduction_space(self, x: Node, axes, keepdims: bool):
        """(outer loops, reduce loops, input index, output index) of a reduction over `axes`."""
        outer, inner, in_idx, out_idx = [], [], [], []
        for a, dim in enumerate(x.shape):
            reduced = a in axes
            loops = inner if reduced else outer
            if dim == 1:
                aff = Affine()
            else:
                loops.append(Loop(f"{'r' if reduced else 'i'}{a}", dim))
                aff = Affine.var(loops[-1].var)
            in_idx.append(aff)
            if not reduced:
                out_idx.append(aff)
            elif keepdims:
                out_idx.append(Affine())
        return tuple(outer), tuple(inner), tuple(in_idx), tuple(out_idx)

    def reduce_kernel(self, node: Node, target: Buffer) -> list:
        x = node.inputs[0]
        outer, inner, in_idx, out_idx = self._reduction_space(x, node.attr("axes"), node.attr("keepdims"))
        return [ReduceKernel(self.origin(node), target, row_major(out_idx, node.shape), outer, inner,
                             node.op, self.value(x, in_idx))]

    def argreduce_kernel(self, node: Node, target: Buffer) -> list:
        x, axis = node.inputs[0], node.attr("axis")
        axes = tuple(range(x.ndim)) if axis is None else (axis,)
        outer, inner, in_idx, out_idx = self._reduction_space(x, axes, node.attr("keepdims"))
        if axis is None:
            position, out_idx = row_major(in_idx, x.shape), tuple(Affine() for _ in node.shape)
        else:
            position = in_idx[axis]
        return [ArgReduceKernel(self.origin(node), target, row_major(out_idx, node.shape), outer, inner,
                                node.op, self.value(x, in_idx), position)]

    def matmul_kernel(self, node: Node, target: Buffer) -> list:
        a, b = node.inputs
        nb = node.ndim - 2
        inner = Loop("r0", a.shape[-1])
        k = Affine.var(inner.var)
        if node.shape[-1] == 1:   # a matrix-vector product: one dot product per row
            loops, idx = self.index_space(node.shape, "i")
            product = self.intern(Apply, "mul", node.dtype, (self.value(a, idx[:-1] + (k,)),
                                                             self.value(b, idx[:nb] + (k, idx[-1]))), None)
            return [ReduceKernel(self.origin(node, "matmul"), target, row_major(idx, node.shape),
                                 tuple(loops), (inner,), "sum", product)]
        loops = [Loop(f"i{j}", d) for j, d in enumerate(node.shape)]
        batch = tuple(Affine.var(l.var) for l in loops[:nb])
        row, col = Affine.var(loops[nb].var), Affine.var(loops[nb + 1].var)
        lhs = self.value(a, batch + (row, k))
        rhs = self.value(b, batch + (k, col))
        out = row_major(batch + (row, col), node.shape)
        return [MatmulKernel(self.origin(node, "matmul"), target, out, tuple(loops[:-1]), loops[-1],
                             inner, lhs, rhs)]

    def concat_kernels(self, node: Node, target: Buffer) -> list:
        axis, start, kernels = node.attr("axis"), Dim.of(0), []
        for piece in node.inputs:
            loops, idx = self.index_space(piece.shape, "i")
            placed = idx[:axis] + (idx[axis].shift(start),) + idx[axis + 1:]
            kernels.append(MapKernel(self.origin(node, "concat"), target, row_major(placed, node.shape),
                                     tuple(loops), self.value(piece, idx)))
            start = start + piece.shape[axis]
        return kernels

    def update_kernels(self, node: Node, target: Buffer) -> list:
        """A copy of x (left out when x's buffer is the target: a body updating in place), then
        the region's values written over it."""
        x, v = node.inputs
        starts, steps = node.attr("starts"), node.attr("steps")
        if self._in_place(x, target):
            kernels = []
        elif all(step == 1 for step in steps):
            kernels = self.copy_around(node, x, target, starts, v.shape)
        else:
            kernels = [self.map_kernel(x, target, copy=True)]
        loops, idx = self.index_space(v.shape, "i")
        placed = tuple(i.scale(step).shift(start) for i, start, step in zip(idx, starts, steps))
        kernels.append(MapKernel(self.origin(node, "update"), target, row_major(placed, target.shape),
                                 tuple(loops), self.value(v, idx)))
        return kernels

    def copy_around(self, node: Node, x: Node, target: Buffer, starts, lengths) -> list:
        """x copied to the target everywhere but the box the update writes (contiguous on every
        axis): per axis, the slabs before and after the box, within the box on earlier axes."""
        kernels = []
        for axis in range(x.ndim):
            for lo, size in ((Dim.of(0), starts[axis]),
                             (starts[axis] + lengths[axis], x.shape[axis] - starts[axis] - lengths[axis])):
                if size.is_const and size.const == 0:
                    continue
                shape = tuple(lengths[:axis]) + (size,) + tuple(x.shape[axis + 1:])
                loops, idx = self.index_space(shape, "i")
                offsets = tuple(starts[:axis]) + (lo,) + (Dim.of(0),) * (x.ndim - axis - 1)
                at = tuple(i.shift(o) for i, o in zip(idx, offsets))
                kernels.append(MapKernel(self.origin(node, "copy around the update"), target,
                                         row_major(at, target.shape), tuple(loops), self.value(x, at)))
        return kernels

    def scatter_kernels(self, node: Node, target: Buffer) -> list:
        """A copy of x, then each value written (`scatter`: the last write wins, as in NumPy's
        assignment) or added (`scatter_add`: numpy.add.at, a read-modify-write in order) at its
        gathered position. The index's loops run in order; the other loops (`free`) never write
        the same element twice, so they may run in parallel (see MapKernel)."""
        x, indices, v = node.inputs
        axis, along = node.attr("axis"), bool(node.attr("along"))
        kernels = [] if self._in_place(x, target) else [self.map_kernel(x, target, copy=True)]
        loops, idx = self.index_space(v.shape, "i")
        extent = x.shape[axis]
        error = self.errors.code(_range_error(node, extent))
        stop = axis + 1 if along else axis + indices.ndim    # the index's axes of v: [axis, stop)
        at = idx if along else idx[axis:stop]
        gathered = self.intern(Gather, self.value(indices, at), extent, error)
        placed = idx[:axis] + (Affine(((gathered, ONE),)),) + idx[stop:]
        value = self.value(v, idx)
        if node.op == "scatter_add":
            value = self.intern(Apply, "add", node.dtype, (self.load(target, placed), value), None)
        serial = {f"i{k}" for k in range(axis, stop)}
        free = tuple(loop.var for loop in loops if loop.var not in serial)
        kernels.append(MapKernel(self.origin(node), target, row_major(placed, target.shape),
                                 tuple(loops), value, serial=True, free=free))
        return kernels

    def _in_place(self, x: Node, target: Buffer) -> bool:
        """Whether `x` is a parameter whose buffer is the target's (a body's in-place result)."""
        if x.op != "param" or target.role != "output":
            return False
        return self.in_place.get(int(target.name[3:])) == x.attr("name")

    def region_kernels(self, node: Node, target: Buffer) -> list:
        """The one kernel of a loop or branch, at its first result; its bodies lowered as
        functions of their own (sharing the module's error table)."""
        region = node.attr("region")
        key = (region, node.inputs)
        if key in self.regions:
            return []
        results = []
        outs = region.graphs[-1].outputs if region.kind != "if" else region.graphs[0].outputs
        for k, out in enumerate(outs):
            found = next((b for n, b in self._region_nodes(key) if n.attr("result") == k), None)
            results.append(found or self.temp_buffer(Node(node.op, out.dtype, out.shape, node.inputs,
                                                          node.attrs, False, node.loc, None)))
        in_place = {} if region.kind == "if" else in_place_results(region)
        scratch = tuple(None if k in in_place or region.kind == "if" else
                        self.scratch_buffer(results[k]) for k in range(len(results)))
        bodies = []
        for j, g in enumerate(region.graphs):
            body_in_place = in_place if region.kind != "if" and j == len(region.graphs) - 1 else None
            self.errors.regions += 1   # a name no function has (names start with a letter)
            index = region.index if region.kind == "for" and not region.index_param else None
            bodies.append(Lowering(g, self.errors, f"{self.errors.regions}r", body_in_place, index, True,
                                   self.guard).run())
        inputs = tuple(self.operand(i) for i in node.inputs)
        kernel = RegionKernel(self.origin(node, f"{region.kind} loop" if region.kind != "if" else "if"),
                              region.kind, tuple(bodies), inputs, tuple(results), scratch, region.step,
                              region.index, region.index_param)
        self.regions[key] = kernel
        return [kernel]

    def _region_nodes(self, key) -> list:
        return [(n, self.buffer_of[id(n)]) for n in self.computed
                if _kind(n) == "region" and (n.attr("region"), n.inputs) == key and id(n) in self.buffer_of]

    def scratch_buffer(self, like: Buffer) -> Buffer:
        buf = Buffer(f"t{len(self.temps)}_next", like.dtype, like.shape, "temp", source_name=like.source_name)
        self.temps.append(buf)
        self.temp_nodes[buf.name] = self.temp_nodes.get(like.name) or next(
            n for n in self.computed if self.buffer_of.get(id(n)) is like)
        return buf

    def operand(self, node: Node):
        """A region input: its buffer, or a literal scalar."""
        buf = self.buffer_of.get(id(node))
        if buf is not None:
            return buf
        if node.op == "const" and node.ndim == 0:
            return self.const(node.attr("value"), node.dtype)
        raise AssertionError(f"region input {node.op} has no buffer")

    # -- row routines (section 12: cumsum, sort, top_k, ...) ---------------------------
    def row_kernels(self, node: Node, target: Buffer) -> list:
        """One RowKernel: its operands copied into contiguous rows with the axis last (the copy
        fuses their elementwise producers), its results copied back when the axis is not last."""
        axis, x = node.attr("axis"), node.inputs[0]
        if node.op in ("cumsum", "cumprod"):
            return self.running_kernels(node, target)
        sibling = self.top_k_sibling(node) if node.op == "top_k" else None
        if sibling is True:
            return []   # the routine of top_k's other result wrote this one
        rows = shape_size(x.shape[:axis] + x.shape[axis + 1:])
        length = node.attr("length") if node.op == "unsort" else x.shape[axis]
        count = node.shape[axis] if node.op == "top_k" else x.shape[axis]
        kernels, ins = [], []
        for operand in node.inputs:
            buf, copy = self.row_operand(node, operand, axis)
            ins.append(buf)
            kernels += copy
        out, back = self.row_result(node, axis, target)
        outs = (out,)
        if node.op == "top_k":
            outs, back = self.top_k_outputs(node, sibling, out, back, rows, count)
        key = "i64" if to_numpy(x.dtype).itemsize == 8 else "i32"
        scratch = {"sort": [key] * 2, "argsort": [key] * 2 + ["i64"], "top_k": [key] * 2 + ["i64"] * 2}
        work = tuple(self.row_buffer(node, dtype, (rows, length), "work") for dtype in scratch.get(node.op, ()))
        kernels.append(RowKernel(self.origin(node), node.op, outs, tuple(ins), work, rows, length, count,
                                 node.inputs[0].dtype))
        return kernels + back

    def running_kernels(self, node: Node, target: Buffer) -> list:
        """cumsum and cumprod in place: the operand in its own layout (a copy only when it has no
        buffer), each block of `inner` interleaved rows walked along the axis at once."""
        axis, x = node.attr("axis"), node.inputs[0]
        kernels = []
        buf = self.buffer_of.get(id(x))
        if buf is None or buf.role == "const":
            buf = self.row_buffer(node, x.dtype, x.shape, "rows")
            loops, idx = self.index_space(x.shape, "i")
            kernels.append(MapKernel(self.origin(node, f"operand of {node.op}"), buf, row_major(idx, x.shape),
                                     tuple(loops), self.value(x, idx)))
        n = x.shape[axis]
        kernels.append(RowKernel(self.origin(node), node.op, (target,), (buf,), (), shape_size(x.shape[:axis]),
                                 n, n, x.dtype, shape_size(x.shape[axis + 1:])))
        return kernels

    def top_k_sibling(self, node: Node):
        """The node of top_k's other result, when a kernel needs it too (one routine writes both),
        else None; True when that routine is made already (this node's is then none)."""
        rest = lambda n: tuple((k, v) for k, v in n.attrs if k != "result")   # noqa: E731
        key = ("top_k", node.inputs, rest(node))
        if key in self.regions:   # the memo of kernels made once: loops, branches, and these
            return True
        self.regions[key] = node
        return next((n for n in self.computed if n.op == "top_k" and n.attr("result") != node.attr("result")
                     and n.inputs == node.inputs and rest(n) == key[2] and id(n) in self.buffer_of), None)

    def top_k_outputs(self, node: Node, sibling, out: Buffer, back: list, rows, count) -> tuple[tuple, list]:
        """(values, positions) rows of a top_k, and the copies back: the other result's own rows
        when a node computes it too (`sibling`), else work rows."""
        mine = node.attr("result")
        if sibling is not None:
            second, more = self.row_result(sibling, node.attr("axis"), self.buffer_of[id(sibling)])
            back = back + more
        else:
            second = self.row_buffer(node, "i64" if mine == 0 else node.inputs[0].dtype, (rows, count), "other")
        return ((out, second) if mine == 0 else (second, out)), back

    def row_buffer(self, node: Node, dtype: str, shape: tuple, what: str) -> Buffer:
        buf = Buffer(f"t{len(self.temps)}_{what}", dtype, tuple(shape), "temp")
        self.temps.append(buf)
        self.temp_nodes[buf.name] = node
        return buf

    def row_operand(self, node: Node, operand: Node, axis: int) -> tuple[Buffer, list]:
        """`operand` as contiguous rows along `axis`: its own buffer when it is one, else a copy."""
        buf = self.buffer_of.get(id(operand))
        if buf is not None and buf.role != "const" and axis == operand.ndim - 1:
            return buf, []
        shape = operand.shape[:axis] + operand.shape[axis + 1:] + (operand.shape[axis],)
        rows = self.row_buffer(node, operand.dtype, shape, "rows")
        loops, idx = self.index_space(shape, "i")
        at = idx[:axis] + (idx[-1],) + idx[axis:-1]
        return rows, [MapKernel(self.origin(node, f"rows of {node.op}"), rows, row_major(idx, shape),
                                tuple(loops), self.value(operand, at))]

    def row_result(self, node: Node, axis: int, target: Buffer) -> tuple[Buffer, list]:
        """Where the routine writes: the target itself when the axis is last, else rows copied back."""
        if axis == node.ndim - 1:
            return target, []
        shape = node.shape[:axis] + node.shape[axis + 1:] + (node.shape[axis],)
        rows = self.row_buffer(node, node.dtype, shape, "rows")
        loops, idx = self.index_space(node.shape, "i")
        at = idx[:axis] + idx[axis + 1:] + (idx[axis],)
        return rows, [MapKernel(self.origin(node, f"{node.op} along axis {axis}"), target,
                                row_major(idx, node.shape), tuple(loops), self.load(rows, at))]

    # -- values ----------------------------------------------------------------------
    def value(self, node: Node, idx: tuple) -> object:
        """The value of `node` at `idx`: a load when it has a buffer, else its fused expression."""
        buf = self.buffer_of.get(id(node))
        if buf is not None:
            return self.load(buf, idx)
        key = (id(node), idx)
        if key not in self.memo:
            self.fill_memo(node, idx)
        return self.memo[key]

    def fill_memo(self, node: Node, idx: tuple) -> None:
        """Compute `node` at `idx` after its fused operands, in the order recursion would, but
        with an explicit stack: a chain of 10,000 statements is 10,000 operands deep."""
        stack = [(node, idx, False)]
        while stack:
            item, at, ready = stack.pop()
            if (id(item), at) in self.memo:
                continue
            if ready:   # its operands are in the memo (or buffers): compute() reads them directly
                self.memo[(id(item), at)] = self.compute(item, at)
                continue
            stack.append((item, at, True))
            for operand, where in reversed(_fused_operands(item, at)):
                if id(operand) not in self.buffer_of:
                    stack.append((operand, where, False))

    def compute(self, node: Node, idx: tuple) -> object:
        """The expression computing `node` itself at `idx` from the values of its inputs."""
        op = node.op
        if op == "const":
            return self.const(node.attr("value"), node.dtype)
        if op == "sizevar":
            return self.intern(SizeVar, node.attr("name"))
        if op == "iota":
            return self.intern(Position, idx[0])
        if op in LAYOUT:
            return self.value(node.inputs[0], input_index(node, idx))
        if op == "take":
            return self.take(node, idx)
        if op == "take_along_axis":
            return self.take_along(node, idx)
        if _kind(node) not in ("elementwise", "cast"):
            raise AssertionError(f"{op} must have a buffer")
        args = tuple(self.value(x, broadcast_index(idx, node.shape, x.shape)) for x in node.inputs)
        expr = self.intern(Apply, op, node.dtype, args, node.name, loc=node.loc)
        if value_checked(node):
            cond, error = self.negative_power(node, idx)
            expr = self.intern(Check, cond, error, expr)
            self.checked.setdefault(id(node), []).append((idx, expr))
        if self.guard and guarded(node):
            self.guard_nodes[id(expr)] = node
        return expr

    # -- the NaN guard (tdsl/nanguard.py) ---------------------------------------------------
    def guard_values(self, kernel):
        """`kernel` with its value checked at each point: its error when an op it computes gives a
        non-finite result from finite operands. Flags are 0/1 integers combined with min (and) and
        max (or), a few vector instructions per op; the one code per kernel names its ops, and the
        call's failure path asks the reference which op it was (Function._guarded_call)."""
        if kernel.kind not in ("map", "reduce", "argreduce"):
            return kernel
        ops = [item for item in expressions_under([kernel.value]) if id(item) in self.guard_nodes]
        if not ops:
            return kernel
        born = None
        for item in ops:
            flag = self.intern(Apply, "not", "i32", (self.finite(item),), None)
            for arg in dict.fromkeys(a for a in item.args if a.dtype in FLOATS):
                flag = self.intern(Apply, "minimum", "i32", (flag, self.finite(arg)), None)
            born = flag if born is None else self.intern(Apply, "maximum", "i32", (born, flag), None)
        nodes = [self.guard_nodes[id(item)] for item in reversed(ops)]   # (the walk finds the last first)
        error = self.errors.code(guard_error(nodes))
        return replace(kernel, value=self.intern(Check, born, error, kernel.value, True))

    def finite(self, expr) -> Apply:
        """isfinite(expr) as a 0/1 int32 (a loop mixing bytes with doubles does not vectorize)."""
        if isinstance(expr, Check):
            expr = expr.value
        return self.intern(Apply, "isfinite", "i32", (expr,), None)

    def guard_kernel(self, node: Node, target: Buffer) -> ReduceKernel:
        """After a sum, product or matmul: its error when an element of its result is not finite
        (an overflow, or non-finite operands carried: the call's failure path tells them apart)."""
        loops, idx = self.index_space(node.shape, "g")
        bad = self.intern(Apply, "not", "i32", (self.finite(self.load(target, idx)),), None)
        flag = Buffer(f"t{len(self.temps)}_guard", "bool", (ONE,), "temp")
        self.temps.append(flag)
        self.temp_nodes[flag.name] = node
        code = self.errors.code(guard_error([node], "candidate"))
        value = self.intern(Check, bad, code, self.const(False, "bool"), True)
        return ReduceKernel(self.origin(node, f"NaN guard of {node.op}"), flag, Affine(), (), tuple(loops),
                            "any", value)

    def negative_power(self, node: Node, idx: tuple, gate=None) -> tuple:
        """The condition of an integer `pow` failing at `idx` (and `gate`, if given), and its error."""
        y = node.inputs[1]
        cond = self.intern(Apply, "lt", "bool", (self.value(y, broadcast_index(idx, node.shape, y.shape)),
                                                  self.const(0, node.dtype)), None)
        if gate is not None:
            cond = self.intern(Apply, "and", "bool", (gate, cond), None)
        fails = OPS[node.op].fails
        info = _check_error(node, fails.check) if fails.check else ErrorInfo(fails.message, node.loc)
        error = self.errors.code(info)
        return cond, error

    def gathered(self, node: Node, at: tuple, gate=None) -> Gather:
        """The checked index of `take` at the position `at` of its indices (0 unless `gate`, if given)."""
        x, indices = node.inputs
        extent = x.shape[node.attr("axis")]
        error = self.errors.code(_range_error(node, extent))
        index = self.value(indices, at)
        if gate is not None:
            index = self.intern(Apply, "where", index.dtype, (gate, index, self.const(0, index.dtype)), None)
        return self.intern(Gather, index, extent, error)

    def take(self, node: Node, idx: tuple) -> object:
        x, indices = node.inputs
        axis, rank = node.attr("axis"), indices.ndim
        gathered = self.gathered(node, idx[axis:axis + rank])
        value = self.value(x, idx[:axis] + (Affine(((gathered, ONE),)),) + idx[axis + rank:])
        if not _mentions(value, gathered):
            # `x` does not vary along the axis (a broadcast, a constant): its value never reads the
            # index, so a check that the gathered position is negative (never) keeps the range check
            value = self.intern(Check, self.never(gathered), gathered.error, value)
        self.checked.setdefault(id(node), []).append((idx[axis:axis + rank], value))
        return value

    def take_along(self, node: Node, idx: tuple) -> object:
        """take_along_axis: x at the position idx holds on the axis, every other axis in place."""
        x, axis = node.inputs[0], node.attr("axis")
        gathered = self.gathered(node, idx)
        value = self.value(x, idx[:axis] + (Affine(((gathered, ONE),)),) + idx[axis + 1:])
        if not _mentions(value, gathered):   # as in take: keep the range check
            value = self.intern(Check, self.never(gathered), gathered.error, value)
        self.checked.setdefault(id(node), []).append((idx, value))
        return value

    def never(self, gathered: Gather) -> Apply:
        """A condition that never holds but reads (and so range-checks) a gathered index."""
        position = self.intern(Position, Affine(((gathered, ONE),)))
        return self.intern(Apply, "lt", "bool", (position, self.const(0, "i64")), None)

    # -- checks of values that fusion would not compute in full ---------------------------
    def check_kernels(self, kernels: list) -> list:
        """A pass over the check domain of each failing value that `kernels` do not check in full
        (a value sliced, left unread by its user, or computed under loops that may run zero times).
        Only the points no kernel reached are in doubt, so the pass is gated on that."""
        failing = [n for n in self.nodes if value_checked(n) and _kind(n) != "scatter"]   # a scatter checks as it writes
        doubt = {id(n): [] for n in failing}
        for k in kernels if failing else ():
            if k.kind in ("region", "row"):
                continue
            live = _live_expressions(k)
            loops = {l.var: l.extent for l in _work_loops(k)}
            for node in failing:
                for at, expr in self.checked.get(id(node), ()) if id(node) in doubt else ():
                    missed = _missed_points(at, _check_domain(node), loops) if id(expr) in live else None
                    if missed is not None and missed.is_const and missed.const > 0:
                        doubt.pop(id(node))
                        break
                    if missed is not None:
                        doubt[id(node)].append(missed)
        return [self.check_kernel(n, doubt[id(n)]) for n in failing if id(n) in doubt]

    def check_kernel(self, node: Node, missed: list) -> ReduceKernel:
        """`any` over the check domain of `node`, where each point records the node's error; gated on
        the points some kernel skipped (`missed`: their counts), if a kernel reached its whole domain."""
        loops, idx = self.index_space(_check_domain(node), "c")
        gate = None
        if missed:   # a kernel checked every point unless another of its loops ran zero times
            count = self.intern(Position, Affine((), min(missed, key=lambda d: len(d.terms))))
            gate = self.intern(Apply, "eq", "bool", (count, self.const(0, "i64")), None)
        if _kind(node) == "gather":
            gathered = self.gathered(node, idx, gate)
            cond, error = self.never(gathered), gathered.error
        else:
            cond, error = self.negative_power(node, idx, gate)
        flag = Buffer(f"t{len(self.temps)}_check", "bool", (ONE,), "temp")
        self.temps.append(flag)          # a one-element array: a scalar set and never read warns in C
        self.temp_nodes[flag.name] = node
        value = self.intern(Check, cond, error, self.const(False, "bool"))
        return ReduceKernel(self.origin(node, f"check of {node.op}"), flag, Affine(), (), tuple(loops),
                            "any", value)

    def load(self, buf: Buffer, idx: tuple) -> Load:
        return self.intern(Load, buf, row_major(idx, buf.shape), buf.dtype)

    def const(self, value, dtype: str) -> Const:
        return self.intern(Const, value, dtype)

    def intern(self, cls, *fields, loc=None):
        """One object per distinct expression, so equal subexpressions are computed once; `loc`
        (an op's statement, for a debug build's #line) is not part of what is equal: the first
        statement computing a value names it."""
        key = (cls,) + tuple(_key(f) for f in fields)
        if key not in self.interned:
            self.interned[key] = cls(*fields) if loc is None else cls(*fields, loc=loc)
        return self.interned[key]

    # -- call-time checks of sizes -------------------------------------------------
    def size_limits(self, kernels) -> tuple[SizeLimit, ...]:
        """Shapes that must fit in memory: every value's (as the reference checks them) and
        every loop nest's (a count of points, item size 1) that no value's shape covers."""
        limits = []
        checked = [(Counter(size_key(p.shape)), 1) for p in self.graph.params]   # these exist
        for shape, itemsize, node in value_sizes(self.graph):
            checked.append((Counter(size_key(shape)), 1))
            limits.append(SizeLimit(shape, itemsize, self.errors.code(ErrorInfo(too_big_message(node), node.loc))))
        for k in kernels:
            space = tuple(l.extent for l in _work_loops(k))
            if all(d.is_const for d in space) or covered(space, 1, checked):
                continue
            checked.append((Counter(size_key(space)), 1))
            message = f"{k.origin.label}: its loops over {shape_str(space)} are too many to count in int64"
            limits.append(SizeLimit(space, 1, self.errors.code(ErrorInfo(message, k.origin.loc))))
        return tuple(limits)

    def alloc_errors(self, outputs) -> tuple[tuple[str, int], ...]:
        """The error of each result, temporary and argument array whose allocation fails (its
        bytes as the extent); an argument's key is 'param NAME' (no buffer is named so)."""
        found = []
        buffers = [(o, out) for o, out in zip(outputs, self.graph.outputs)]
        buffers += [(t, self.temp_nodes[t.name]) for t in self.temps]
        for buf, node in buffers:
            if buf.is_scalar:
                continue
            nbytes = shape_size(buf.shape) * to_numpy(buf.dtype).itemsize
            info = ErrorInfo(no_memory_message(node), node.loc, nbytes)
            found.append((buf.name, self.errors.code(info)))
        for p in self.graph.params:   # a device (OpenCL) may not hold a copy of an argument
            if p.shape:
                nbytes = shape_size(p.shape) * to_numpy(p.dtype).itemsize
                info = ErrorInfo(f"cannot allocate {{extent}} bytes for the argument '{p.name}'", self.graph.loc, nbytes)
                found.append((f"param {p.name}", self.errors.code(info)))
        return tuple(found)

    def size_checks(self) -> tuple[SizeCheck, ...]:
        """Errors that depend on sizes only: checked before any work (also by the standalone C)."""
        checks = []
        for var in self.graph.size_vars:
            code = self.errors.code(ErrorInfo(f"the size {var} is negative", self.graph.loc))
            checks.append(SizeCheck(((Dim.of(var), "<0"),), code))
        for op, dim, message, loc in collect_checks(self.graph):   # named values no result reads too
            relation = "<0" if op == ">=" else "!=0"
            in_loop = self.index is not None and self.index in dim.variables()
            info = ErrorInfo(message, loc, bound=dim, index=self.index if in_loop else None) if self.body \
                else ErrorInfo(message, loc)
            checks.append(SizeCheck(((dim, relation),), self.errors.code(info)))
        for node in self.nodes:
            checks.extend(self._empty_checks(node))
        return tuple(c for c in checks if not _never(c))

    def _empty_checks(self, node: Node) -> list[SizeCheck]:
        x = node.inputs[0] if node.inputs else None
        fails = OPS[node.op].fails
        if (_kind(node) == "reduce" and fails and fails.on == "empty" and not node.attr("empty_ok")) \
                or _kind(node) == "argreduce":
            # as NumPy: max/min over no elements have no identity, argmax/argmin no result; one
            # check per axis reduced, in order, so the error names the first empty one
            axes = node.attr("axes") if _kind(node) == "reduce" else (node.attr("axis"),)
            check = "empty array" if axes == (None,) else "empty"
            axes = range(x.ndim) if axes == (None,) else axes
            return [SizeCheck(((x.shape[a], "==0"),), self.errors.code(_check_error(node, check, a, x.shape[a])))
                    for a in axes]
        if _kind(node) in ("gather", "scatter"):
            # no position exists on an empty axis (a scatter would write past its result's end);
            # a size check knows no index, so its message names none
            extent = x.shape[node.attr("axis")]
            code = self.errors.code(replace(_range_error(node, extent), value=False))
            return [SizeCheck(((extent, "==0"), (shape_size(node.inputs[1].shape), "!=0")), code)]
        return []


def _computed_nodes(graph: FunctionGraph, nodes: list[Node]) -> list[Node]:
    """The nodes kernels compute: what the results need, and the operand that the check of a
    failing value no result reads needs (the exponent, the indices). Any other unread value
    only has size checks, which need no kernel."""
    reached = set(toposort(graph.outputs))
    operands = [n.inputs[OPS[n.op].fails.operand] for n in nodes if value_checked(n) and n not in reached]
    # loops and scatters run for their checks (a scatter checks its positions as it writes them)
    regions = [n for n in nodes if (n.op in REGION_OPS or _kind(n) == "scatter") and n not in reached]
    return toposort(list(graph.outputs) + operands + regions)


def _fused_operands(node: Node, idx: tuple) -> list[tuple[Node, tuple]]:
    """The (operand, index) pairs `compute` reads through `value` before anything else; a take's
    are left to it (the gathered index is an expression, and take nests shallowly)."""
    if node.op in LAYOUT:
        return [(node.inputs[0], input_index(node, idx))]
    if node.op != "take" and _kind(node) in ("elementwise", "cast"):
        return [(x, broadcast_index(idx, node.shape, x.shape)) for x in node.inputs]
    return []


def _check_domain(node: Node) -> tuple[Dim, ...]:
    """The shape every point of which a failing node's check must read (`Op.fails.domain`: the
    result's, broadcast included, or an operand's). NumPy computes every value of a program, so
    the check covers that whole domain even where fusion computes only the elements a later op uses."""
    operand = OPS[node.op].fails.domain
    return node.shape if operand is None else node.inputs[operand].shape


def _missed_points(at: tuple, domain: tuple, loops: dict):
    """None unless the index `at` walks all of `domain` in a kernel with `loops` (var -> extent):
    then the number of points of the kernel's other loops (when 0, the kernel checked nothing)."""
    used = set()
    for aff, dim in zip(at, domain):
        if dim == 1 and aff.is_zero:
            continue
        if len(aff.terms) != 1 or aff.offset != 0 or aff.terms[0][1] != 1:
            return None
        var = aff.terms[0][0]
        if not isinstance(var, str) or var in used or loops.get(var) != dim:
            return None
        used.add(var)
    return shape_size(tuple(extent for var, extent in loops.items() if var not in used))


def _live_expressions(kernel) -> set[int]:
    """The ids of the expressions a kernel evaluates: operands an op's expression does not read
    (isnan of an integer is 0 in C and OpenCL) are never computed."""
    stack = [kernel.value] if hasattr(kernel, "value") else [kernel.lhs, kernel.rhs]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Apply):
            stack.extend(a for i, a in enumerate(item.args) if _reads(item, i))
        else:
            stack.extend(expression_children(item))
    return seen


def _reads(item: Apply, i: int) -> bool:
    """Whether the C and OpenCL expressions of `item` read its operand `i`."""
    operand = item.args[1] if item.op == "where" else item.args[0]
    return all("{%d}" % i in (OPS[item.op].c_template(kind(operand.dtype), dialect) or "{%d}" % i)
               for dialect in ("c", "opencl"))


def _work_loops(k) -> list:
    """The loops of a kernel's whole iteration space."""
    return list(k.loops) + list(getattr(k, "reduce_loops", ())) + (
        [k.col, k.inner] if k.kind == "matmul" else [])


def _key(field) -> object:
    """A hashable key for a field of an expression: values by value, sub-expressions by identity."""
    if field is None or isinstance(field, (bool, int, float, str)):
        return (type(field).__name__, repr(field))
    if isinstance(field, (Affine, Dim)):
        return field
    if isinstance(field, tuple):
        return tuple(_key(f) for f in field)
    return id(field)


def _mentions(root, gather: Gather) -> bool:
    """Whether the expression `root` reads the gathered index `gather` (iteratively: DAGs are deep)."""
    stack, seen = [root], set()
    while stack:
        item = stack.pop()
        if item is gather:
            return True
        if id(item) in seen:
            continue
        seen.add(id(item))
        stack.extend(expression_children(item))
    return False


def _range_error(node: Node, extent) -> ErrorInfo:
    """The error of a gather or scatter position out of range (a run-time slice's says so)."""
    return _check_error(node, "slice" if node.attr("of_slice") else "index", node.attr("axis"), extent)


def _check_error(node: Node, check: str, axis: int | None = None, extent: Dim | None = None) -> ErrorInfo:
    """The error of a check of `node` failing (see tdsl.ops.check_message) about its operand's
    `axis` of length `extent`, naming the value and the axis as the source has them; the index
    found ("an index" until the call says which) is the code's value, if the target notes it."""
    operand, axis = failure_site(node, axis)
    length = "0" if check in ("empty", "empty array") else "{extent}"
    message = check_message(check, node.op, None, axis, length) + check_place(check, operand, node.loc)
    return ErrorInfo(message, node.loc, extent, value=check == "index", axis=axis, operand=operand,
                     length=extent is not None)


def guard_error(nodes: list, kind: str = "point") -> ErrorInfo:
    """The error of the NaN guard's check of a kernel computing `nodes` (in program order):
    `point` (one of them gave a non-finite result from finite operands) or `candidate` (a sum,
    product or matmul whose result is not finite)."""
    first = nodes[0]
    texts = ", ".join(dict.fromkeys(op_text(n) for n in nodes))
    what = f"NaN or an infinity born from finite inputs in {texts}" if kind == "point" else \
        f"{op_text(first)} produced a value that is not finite"
    return ErrorInfo(what, first.loc, operand=source_name(first.inputs[0]), guard=kind)


def _never(check: SizeCheck) -> bool:
    """A check whose condition is false for every size."""
    for dim, relation in check.conditions:
        if dim.is_const:
            value = dim.const
            holds = {"<0": value < 0, "!=0": value != 0, "==0": value == 0}[relation]
            if not holds:
                return True
    return False
