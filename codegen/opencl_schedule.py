"""The OpenCL launch schedule: how each kernel of a module runs, decided once from the kernel IR.

For every kernel this module decides its launch kind, the counts that size its NDRange
(symbolic, in the size variables), the elements a work-item of a map takes at once (a
vector width), whether a map runs along its last axis or a reduction in strips, the
largest work-group its per-work-item values allow, and its argument list: the size
variables, buffers and error flag that its IR reads and writes. The renderer
(opencl_render.py) writes kernel text from these decisions and the plan
(opencl_plan.py) writes them down as data for the host; neither decides anything again,
and nothing here reads generated text.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from tdsl.dims import Dim, shape_size
from tdsl.ops import OPS

from .kernels import Affine, Apply, Check, Const, DivMod, FunctionIR, Gather, Load, ModuleIR, SizeVar
from .loops import kernel_affines, kernel_expressions

KIND_OF = {"map": "map", "reduce": "reduce", "argreduce": "reduce", "matmul": "matmul", "row": "row"}
ROW_ITEM_BYTES = 16 * 1024   # a row routine's radix counts (8 x 256 longs) per work-item
VECTOR_WIDTH = {"f32": 16, "f64": 8}        # two 256-bit vectors: AVX2 CPUs (PoCL) overlap their work
VECTOR_MAX_NODES = 200   # PoCL keeps a kernel's values per work-item on a worker's stack: long
                         # chains of vectors (a thousand statements) would overflow it
INLINE_TRIG = 16         # a kernel with more sines and cosines calls them out of line
STACK_BUDGET = 1 << 20   # bytes of per-work-item values one work-group may hold (PoCL: on a thread's stack)

@dataclass(frozen=True)
class Launch:
    """How one kernel runs: what the renderer writes and the host plan launches.

    `counts`: map [elements] (vector maps), [outer points, last extent] (maps in runs) or
    [points] (a map without loops); reduce [results, reduced elements]; matmul [columns,
    rows, batch points]; row [rows] (a work-item per row, interleaved ones too). `args` are ("size", name), ("param" | "output" | "temp", index)
    or ("err",), in that order.
    """

    name: str
    kind: str                 # map | reduce | matmul | row: the host's launch model
    counts: tuple[Dim, ...]
    args: tuple[tuple, ...]
    fails: bool               # some work-item can raise the error flag
    width: int = 1            # map: elements per vector (1: no vectors)
    runs: bool = False        # map: a work-item takes a run of the last axis
    strip: bool = False       # reduce: on a CPU, a work-item takes a strip of neighbouring results
    local_max: int | None = None   # the largest work-group (None: the device's, for matmul)
    serial: bool = False      # map: a work-item per point of the free loops, each writing the
                              # points of the others in order (a scatter; counts [free, serial])
    outline: bool = False     # sines and cosines called out of line (too many to inline)
    f64: bool = False         # the kernel holds f64 values

    @property
    def takes_lanes(self) -> bool:
        """Whether the kernel's last argument is the host's `lanes` (work-items per result)."""
        return self.kind == "reduce"


@dataclass(frozen=True)
class ModuleSchedule:
    functions: dict           # function name -> tuple[Launch, ...], one per kernel in order
    uses_f64: bool            # the program needs cl_khr_fp64


def kernel_name(fn: FunctionIR, index: int) -> str:
    return f"k{index}_{fn.name}"


def all_functions(module: ModuleIR) -> list[FunctionIR]:
    """The module's functions and, after them, the bodies of their loops and branches (nested too):
    the program holds the kernels of every one."""
    found, stack = [], list(module.functions)
    while stack:
        fn = stack.pop(0)
        found.append(fn)
        stack += [b for k in fn.kernels if k.kind == "region" for b in k.bodies]
    return found


def module_schedule(module: ModuleIR) -> ModuleSchedule:
    """The launch of every kernel of every function (and region body), and whether the program
    computes in f64. A loop or branch has no launch (None): the host runs it (opencl_runtime)."""
    functions = {fn.name: tuple(None if k.kind == "region" else kernel_launch(fn, k, kernel_name(fn, i))
                                for i, k in enumerate(fn.kernels))
                 for fn in all_functions(module)}
    consts = any(c.dtype == "f64" for fn in all_functions(module) for c in fn.consts)   # program-scope arrays
    return ModuleSchedule(functions, consts or any(l.f64 for launches in functions.values() for l in launches
                                                   if l is not None))


def kernel_launch(fn: FunctionIR, k, name: str) -> Launch:
    """The launch of kernel `k` of `fn`."""
    if k.kind == "row":
        return row_launch(fn, k, name)
    kind = KIND_OF[k.kind]
    nodes = kernel_expressions(k)
    serial = getattr(k, "serial", False)
    width = 1 if serial else vector_width(k)
    runs = kind == "map" and width == 1 and bool(k.loops) and not serial
    local_max = None if kind == "matmul" else local_limit(len(nodes) * 8 * (width if kind == "map" else 1))
    return Launch(name=name, kind=kind, counts=launch_counts(k, runs), args=kernel_args(fn, k, nodes),
                  fails=fails(nodes), width=width, runs=runs, strip=strip_reduction(k, nodes), local_max=local_max,
                  outline=trig_count(nodes) > INLINE_TRIG, f64=holds_f64(k, nodes), serial=serial)


def row_launch(fn: FunctionIR, k, name: str) -> Launch:
    """A row routine (kernels.RowKernel): a work-item per row, taking the sizes and buffers it names."""
    sizes = set().union(*(d.variables() for d in (k.rows, k.length, k.count, k.inner)))
    names = {b.name for b in k.buffers}
    args = [("size", v) for v in fn.size_vars if v in sizes]
    for role, group in (("param", fn.params), ("output", fn.outputs), ("temp", fn.temps)):
        args += [(role, i) for i, b in enumerate(group) if b.role == role and b.name in names]
    return Launch(name=name, kind="row", counts=(k.rows * k.inner,), args=tuple(args), fails=False,
                  local_max=local_limit(ROW_ITEM_BYTES), f64=any(b.dtype == "f64" for b in k.buffers))


def launch_counts(k, runs: bool) -> tuple[Dim, ...]:
    """The counts that size the kernel's NDRange (see Launch)."""
    count = lambda loops: shape_size(tuple(l.extent for l in loops))  # noqa: E731
    if k.kind == "map" and getattr(k, "serial", False):
        free, ordered = serial_loops(k)
        return (count(free), count(ordered))
    if k.kind == "map":
        return (count(k.loops[:-1]), k.loops[-1].extent) if runs else (count(k.loops),)
    if k.kind == "matmul":
        return (k.col.extent, k.loops[-1].extent, count(k.loops[:-1]))
    return (count(k.loops), count(k.reduce_loops))


def serial_loops(k) -> tuple[list, list]:
    """A serial map's free loops (a work-item per point) and the loops each work-item runs in order."""
    return [l for l in k.loops if l.var in k.free], [l for l in k.loops if l.var not in k.free]


def fails(nodes) -> bool:
    """Whether a kernel can raise the error flag: a check, or a gathered index out of range."""
    return any(isinstance(item, (Check, Gather)) for item in nodes)


def trig_count(nodes) -> int:
    """How many sines and cosines a kernel computes."""
    return sum(1 for item in nodes if isinstance(item, Apply) and item.op in ("sin", "cos"))


def local_limit(per_item: int) -> int:
    """The largest power-of-two work-group whose work-items' values fit in STACK_BUDGET."""
    limit = 1
    while limit < 4096 and 2 * limit * per_item <= STACK_BUDGET:
        limit *= 2
    return limit


# -- arguments ---------------------------------------------------------------------------

def kernel_args(fn: FunctionIR, k, nodes) -> tuple[tuple, ...]:
    """What the kernel reads and writes, in argument order: its size variables, then its
    parameters, results and temporaries (constant arrays are program scope), then the flag."""
    sizes = kernel_sizes(k, nodes)
    loads = [item for item in nodes if isinstance(item, Load)]
    buffers = {(k.out.role, k.out.name)} | {(load.buffer.role, load.buffer.name) for load in loads}
    args = [("size", v) for v in fn.size_vars if v in sizes]
    for role, group in (("param", fn.params), ("output", fn.outputs), ("temp", fn.temps)):
        args += [(role, i) for i, b in enumerate(group) if (role, b.name) in buffers]
    return tuple(args) + ((("err",),) if fails(nodes) else ())


def kernel_sizes(k, nodes) -> set[str]:
    """The size variables a kernel's text can name: in its loop extents, its indices (strides,
    offsets, the digits of merged indices, gathered axes) and its values."""
    dims = [loop.extent for loop in all_loops(k)]
    for aff in kernel_affines(k)[0]:
        dims += affine_dims(aff)
    dims += [item.extent for item in nodes if isinstance(item, Gather)]
    found = {item.name for item in nodes if isinstance(item, SizeVar)}
    for d in dims:
        found.update(d.variables())
    return found


def all_loops(k) -> list:
    """The loops whose extents a kernel prints (a matmul's first batch axis only counts points)."""
    if k.kind == "matmul":
        return list(k.loops[1:-1]) + [k.loops[-1], k.col, k.inner]
    return list(k.loops) + list(getattr(k, "reduce_loops", ()))


def affine_dims(aff: Affine) -> list[Dim]:
    """Every size an index prints: coefficients, offset, and those of the merged indices inside."""
    dims = [aff.offset]
    for atom, coef in aff.terms:
        dims.append(coef)
        if isinstance(atom, DivMod):
            dims += list(atom.group) + affine_dims(atom.index)
        elif isinstance(atom, Gather):
            dims.append(atom.extent)
    return dims


def holds_f64(k, nodes) -> bool:
    """Whether a kernel computes, reads or writes f64 values (its nodes' and buffers' dtypes)."""
    return k.out.dtype == "f64" or any(getattr(item, "dtype", None) == "f64" for item in nodes)


# -- vectors and strips -----------------------------------------------------------------

def lanewise(item: Apply) -> bool:
    """Whether an op node computes a vector lane by lane: float operands, a lane-wise op (the op table's
    `lanewise`: arithmetic, math builtins overloaded for floatN/doubleN, tdsl's vector sin and cos)."""
    return OPS[item.op].lanewise and all(getattr(a, "dtype", None) in VECTOR_WIDTH for a in item.args)


def vector_width(k) -> int:
    """Elements per work-item of a map: a vector when all of it is contiguous float arithmetic."""
    dtype = k.out.dtype
    if k.kind != "map" or len(k.loops) != 1 or dtype not in VECTOR_WIDTH:
        return 1
    if isinstance(k.value, Check) and k.value.guard:   # the NaN guard's check works on vectors too
        return vector_width(replace(k, value=k.value.value))
    var = k.loops[0].var
    moving = lambda aff: all(a == var and c == 1 for a, c in aff.terms)  # noqa: E731
    if not moving(k.out_index) or not k.out_index.terms:
        return 1
    stack, seen = [k.value], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if getattr(item, "dtype", None) != dtype or len(seen) > VECTOR_MAX_NODES:
            return 1
        if isinstance(item, Load) and moving(item.offset):
            continue
        if isinstance(item, Apply) and lanewise(item):
            stack.extend(item.args)
        elif not isinstance(item, Const):
            return 1
    return VECTOR_WIDTH[dtype]


def strip_reduction(k, nodes) -> bool:
    """Whether a reduction reads along its results, across the reduced axis (a column sum).

    On a CPU such a reduction runs in strips: a work-item takes TDSL_REDUCE_STRIP
    neighbouring results and walks the reduced axis once for all of them, reading a
    stretch of memory per step, where a work-item per result would read a cache line
    for one element.
    """
    if k.kind != "reduce" or not k.loops or not k.reduce_loops:
        return False
    out, red = k.loops[-1].var, k.reduce_loops[-1].var
    loads = [item for item in nodes if isinstance(item, Load)]
    return any(dict(load.offset.terms).get(out) == 1 and dict(load.offset.terms).get(red, 0) not in (0, 1)
               for load in loads)
