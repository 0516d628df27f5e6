"""Rendering for OpenCL: the kernel IR of a module as one OpenCL C program, via templates/opencl.

Expressions come from the op table through the same `cexpr.Body` as the C rendering,
with the OpenCL dialect (type names, overloaded math, more reserved words). What
differs is the shape of a kernel: its outer loops become the NDRange. A map is a
flat range of work-items (a vector of elements each when every access is contiguous
float arithmetic), a reduction gives each output point `lanes` work-items that meet
in a local-memory tree, and a matmul runs in 2-D tiles staged through local memory.
Every buffer is a `__global` pointer, scalars too, so device results chain.
How each kernel runs (its vector width, runs, strips, arguments) is decided before, in
opencl_schedule.py: this module writes the text those decisions call for.
"""
from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from tdsl.dims import shape_size
from tdsl.dtypes import kind
from tdsl.ops import OPS

from .cexpr import Body, Dialect, Names, literal
from .kernels import Check, Apply, FunctionIR, Gather, Load, ModuleIR
from .loops import affine_gathers, kernel_expressions
from .opencl_schedule import Launch, ModuleSchedule, all_functions, module_schedule, serial_loops
from .render import (RESUME, StatementLines, generated_lines, kernel_comment, line_directive, located,
                     row_routine, scalar_math)
from .templating import environment

# OpenCL C's words beyond C's (keywords, types, builtins the kernels call, vloadN/vstoreN among
# them): a parameter with one of them gets a `u_` prefix. The kernels' own locals are read from
# the templates (cexpr.template_words).
_OPENCL_WORDS = """kernel global local constant private read_only write_only read_write uniform pipe
uchar ushort uint ulong half quad complex imaginary size_t ptrdiff_t intptr_t uintptr_t sampler_t event_t
image1d_t image2d_t image3d_t get_global_id get_local_id get_group_id get_local_size get_global_size
barrier atomic_max atomic_cmpxchg select isnan fabs exp log1p fmod floor copysign fma""".split()
_VECTOR_NAMES = [f"{t}{n}" for t in ("char", "uchar", "short", "ushort", "int", "uint", "long", "ulong",
                                      "float", "double", "half", "bool", "quad", "vload", "vstore")
                 for n in (2, 3, 4, 8, 16)]
_TYPES = {"bool": "bool", "i32": "int", "i64": "long", "f32": "float", "f64": "double"}

OPENCL = Dialect("opencl", types=_TYPES, math_suffix={}, reserved=frozenset(_OPENCL_WORDS + _VECTOR_NAMES))
STORAGE = {**_TYPES, "bool": "uchar"}      # bool is not a buffer element type in OpenCL


def render_program(module: ModuleIR, schedule: ModuleSchedule | None = None,
                   debug: bool = False) -> tuple[str, ModuleSchedule]:
    """The OpenCL C source of a module, written as `schedule` (by default the module's) has it run.

    `debug`: each kernel's lines carry `#line` directives naming its statement's .tdsl line, and
    the code after it goes back to the program's own lines, named `PREFIX.cl` (codegen/render.py).
    """
    from tdsl.version import __version__
    schedule = schedule or module_schedule(module)
    owner = owners(module)
    functions = []
    for fn in all_functions(module):
        view = FunctionKernels(fn, schedule.functions[fn.name], debug).view()
        view.owner = owner[id(fn)]   # its part of the program: `tdsl:begin`/`tdsl:end` markers
        for c in view.consts:
            c.owner = view.owner
        functions.append(view)
    schedule = shared_kernels(module, functions, schedule, debug)
    prelude = environment().get_template("opencl/prelude.cl.j2").render(needs=prelude_needs(module))
    program = environment().get_template("opencl/program.cl.j2").render(
        version=__version__, file=module.file, functions=functions, prelude=prelude.rstrip("\n"),
        consts=[c for fn in functions for c in fn.consts], debug=debug,
        located=located if debug else (lambda text, directive: text), resume=RESUME)
    return (generated_lines(program, f"{module.prefix}.cl") if debug else program), schedule


def shared_kernels(module: ModuleIR, functions: list[SimpleNamespace], schedule: ModuleSchedule,
                   debug: bool = False) -> ModuleSchedule:
    """One kernel for each text: a kernel that is an earlier one but for the names of its sizes
    and buffers (a function called from another one is lowered into it, so `predict` holds
    `forward`'s kernels, and `forward` holds `dense`'s with its own names) is written once and
    launched under the first one's name, with its own arguments (the same kinds, in the same
    order: the kernels' texts agree with their arguments named by position, CanonicalNames). A
    device compiles each kernel of a program (PoCL: at its first launch, 0.05-0.35 s of CPU
    each); the MLP example's 16 kernels become 8. The later one leaves a comment naming the
    kernel it shares (`f.source` shows it). Returns the schedule with those launches renamed."""
    macros = environment().get_template("opencl/kernels.cl.j2").module
    first: dict[tuple, str] = {}
    renamed: dict[str, str] = {}
    for fn, view in zip(all_functions(module), functions):
        canonical = FunctionKernels(fn, schedule.functions[fn.name], debug, CanonicalNames(fn)).view()
        for k, twin in zip(view.kernels, canonical.kernels):
            twin.name = "tdsl_kernel"
            owner = first.setdefault((str(getattr(macros, twin.kind)(twin)), k.line), k.name)
            k.shares = owner if owner != k.name else None
            if k.shares:
                renamed[k.name] = owner
    if not renamed:
        return schedule
    functions_ = {fn: tuple(l if l is None or l.name not in renamed else replace(l, name=renamed[l.name])
                            for l in launches) for fn, launches in schedule.functions.items()}
    return replace(schedule, functions=functions_)


class CanonicalNames(Names):
    """A function's sizes and buffers named by position (`tdsl_s0`, `tdsl_p0`, `tdsl_t0`, ...):
    two kernels written alike with these names are one kernel but for their names. Constant
    arrays keep their function's own name (such kernels are never shared)."""

    def __init__(self, fn: FunctionIR):
        super().__init__(fn.size_vars, fn.params, fn.name, OPENCL)
        self.user = {**{v: f"tdsl_s{i}" for i, v in enumerate(fn.size_vars)},
                     **{b.name: f"tdsl_p{i}" for i, b in enumerate(fn.params)}}
        self.others = {b.name: f"tdsl_{b.role[0]}{i}" for group in (fn.outputs, fn.temps) for i, b in enumerate(group)}

    def buffer(self, buf) -> str:
        if buf.role in ("param", "const") or buf.name not in self.others:
            return super().buffer(buf)
        return self.others[buf.name]


def owners(module: ModuleIR) -> dict[int, str]:
    """id(function IR) -> the name of the module's function it belongs to: its own name, or for
    the body of a loop or branch (nested too) the function holding the loop."""
    found: dict[int, str] = {}
    for top in module.functions:
        stack = [top]
        while stack:
            fn = stack.pop()
            found[id(fn)] = top.name
            stack += [b for k in fn.kernels if k.kind == "region" for b in k.bodies]
    return found


TRIG = ("sin", "cos", "tan")


def prelude_needs(module: ModuleIR) -> SimpleNamespace:
    """Which groups of prelude helpers the module's kernels can call, from their IR: the helpers
    of each dtype its values have, the gathered index, and the trigonometry of f32 and f64."""
    dtypes, trig, gather = {"bool"}, set(), False
    for fn in all_functions(module):
        dtypes.update(b.dtype for b in fn.params + fn.outputs + fn.temps + fn.consts)
        for k in fn.kernels:
            for item in kernel_expressions(k):
                if getattr(item, "dtype", None):   # an operation's, a constant's, a check's
                    dtypes.add(item.dtype)
                if isinstance(item, Load):
                    dtypes.add(item.buffer.dtype)
                elif isinstance(item, Apply) and item.op in TRIG:
                    trig.update(a.dtype for a in item.args)
                gather = gather or isinstance(item, Gather)
    return SimpleNamespace(dtypes=dtypes, trig=trig, gather=gather)


# Vector builtins that are wrong for some lanes when another lane is extreme (PoCL 3.1:
# double8 pow of a lane next to a subnormal one): vector maps call the scalar one per lane.
SCALAR_LANES = frozenset({("pow", "f64")})
# Vector forms that are prelude helpers (f32 tan: guarded like sin and cos, see prelude.cl.j2).
VECTOR_HELPERS = {("tan", "f32"): "tdsl_tan_{T}({0})"}


class CLBody(StatementLines, Body):
    """Statements of an OpenCL kernel: every buffer is a pointer, so scalars are read at [0].

    With `width` > 1 the loop variable `var` stands for `width` consecutive elements:
    contiguous loads read a vector (`vloadN`), loads that do not move stay scalar. Math in
    `scalar_ids` (values that more than one place computes: render.scalar_math) is the scalar
    builtin everywhere, lane by lane in a vector: the vector builtins round differently.
    """

    noted = ", &noted"   # the kernel's `noted` local: the index out of range, reported with the error

    def __init__(self, names: Names, counter: list[int], width: int = 1, var: str | None = None,
                 outline: bool = False, scalar_ids: frozenset = frozenset()):
        dialect = OPENCL if width == 1 else Dialect(
            "opencl", {d: f"{t}{width}" for d, t in _TYPES.items()}, {}, OPENCL.reserved)
        super().__init__(names, counter, dialect)
        self.width, self.var, self.outline, self.scalar_ids = width, var, outline, scalar_ids

    def template(self, item: Apply) -> str:
        if self.width > 1 and OPS[item.op].vector_math:
            if id(item) in self.scalar_ids or (item.op, item.dtype) in SCALAR_LANES:
                return self.lanes(item)
            if (item.op, item.dtype) in VECTOR_HELPERS:
                return VECTOR_HELPERS[item.op, item.dtype]
        return self.scalar_template(item)

    def scalar_template(self, item: Apply) -> str:
        """The op table's template of `item`; in a kernel with many sines and cosines (Launch.outline),
        their out-of-line form (the prelude's noinline wrappers: dozens of inlined polynomials cost)."""
        if self.outline and OPS[item.op].opencl_outlined is not None:
            return OPS[item.op].c_template(kind(item.args[0].dtype), "opencl", outlined=True)
        return Body.template(self, item)

    def lanes(self, item: Apply) -> str:
        """A template: a vector of `item`'s scalar expression, lane by lane (operands still `{0}`...)."""
        scalar = self.scalar_template(item)
        fields = Body(self.names, [0], OPENCL).type_fields(item.args[0].dtype, item.dtype)
        parts = [scalar.format(*[f"{{{i}}}.s{lane:x}" if self.is_vector(a) else f"{{{i}}}"
                                 for i, a in enumerate(item.args)], **fields)
                 for lane in range(self.width)]
        return f"({self.dialect.ctype(item.dtype)})({', '.join(parts)})"

    def guard_line(self, item: Check) -> None:
        """The NaN guard's check: its code into the work-item's `err` (a vector body's, if any lane)."""
        cond = self.guard_text(item.cond)
        if self.width > 1:
            cond = f"any({cond})"
        self.lines.append(f"err = max(err, ({cond}) ? {item.error} : 0);")   # (no branch: work-items stay in lanes)

    def is_vector(self, item) -> bool:
        """Whether `item` is a vector in this body (operations and moving loads; not constants)."""
        return isinstance(item, Apply) or isinstance(item, Load) and item.offset.coef(self.var) == 1

    def type_fields(self, dtype: str, result: str | None = None) -> dict:
        fields = super().type_fields(dtype, result)
        if self.width > 1:   # helpers with vector versions are named for them: tdsl_sin_f64x4
            fields["T"] = f"{dtype}x{self.width}"
        return fields

    def load(self, item: Load) -> str:
        pointer, index = self.names.buffer(item.buffer), self.index(item.offset)
        if self.width > 1 and item.offset.coef(self.var) == 1:
            return self.local(item.dtype, f"vload{self.width}(0, {pointer} + {index})")
        name = f"v{self.counter[0]}"
        self.counter[0] += 1
        self.lines.append(f"const {_TYPES[item.dtype]} {name} = {pointer}[{index}];")
        return name


def _constant(value, dtype: str) -> str:
    """A literal for a program-scope initializer: PoCL's NAN (`as_float(INT_MAX)`) is not a
    constant expression there, a quotient of zeros is."""
    text = literal(value, dtype)
    if text == "NAN":
        return "(0.0f / 0.0f)" if dtype == "f32" else "(0.0 / 0.0)"
    return text


class FunctionKernels:
    """What the program template needs for the kernels of one function."""

    def __init__(self, fn: FunctionIR, launches: tuple[Launch, ...], debug: bool = False,
                 names: Names | None = None):
        self.fn, self.launches = fn, launches
        self.debug = debug   # each located op's statement gets its own `#line` (render.StatementLines)
        self.names = names or Names(fn.size_vars, fn.params, fn.name, OPENCL)
        self.counter = [0]
        self.scalar_ids = frozenset(scalar_math(fn.kernels))

    def view(self) -> SimpleNamespace:
        fn = self.fn
        kernels = [self.kernel(k, launch) for k, launch in zip(fn.kernels, self.launches) if launch is not None]
        return SimpleNamespace(signature=fn.signature, where=str(fn.loc) if fn.loc else "",
                               kernels=kernels, consts=[self.const(c) for c in fn.consts])

    def param(self, arg: tuple) -> str:
        """The declaration of a kernel argument of the schedule (see opencl_schedule.Launch)."""
        role, names = arg[0], self.names
        if role == "size":
            return f"const long {names.size(arg[1])}"
        if role == "err":
            return "__global int *restrict tdsl_err"
        buf = {"param": self.fn.params, "output": self.fn.outputs, "temp": self.fn.temps}[role][arg[1]]
        qualifier = "const " if role == "param" else ""
        return f"__global {qualifier}{STORAGE[buf.dtype]} *restrict {names.buffer(buf)}"

    def const(self, buf) -> SimpleNamespace:
        values = [_constant(v, buf.dtype) for v in buf.data] or [literal(0, buf.dtype)]
        rows = [", ".join(values[i:i + 8]) + "," for i in range(0, len(values), 8)]
        return SimpleNamespace(name=self.names.buffer(buf), ctype=STORAGE[buf.dtype], count=len(values),
                               rows=rows)

    def body(self, width: int = 1, var: str | None = None) -> CLBody:
        body = CLBody(self.names, self.counter, width, var, self.outline, self.scalar_ids)
        body.debug = self.debug
        return body

    def kernel(self, k, launch: Launch) -> SimpleNamespace:
        view = SimpleNamespace(kind=k.kind, name=launch.name, comment=kernel_comment(k.origin),
                               line=line_directive(k.origin.loc), fails=launch.fails)
        self.outline = launch.outline
        getattr(self, f"_{k.kind}")(k, view, launch)
        view.params = [self.param(arg) for arg in launch.args] + (["const long lanes"] if launch.takes_lanes else [])
        return view

    def decompose(self, loops, flat: str) -> list[str]:
        """Declarations of the loop variables of `loops` from a row-major flat index."""
        lines, stride = [], shape_size(())
        for i, loop in reversed(list(enumerate(loops))):
            text = flat if stride == 1 else f"{flat} / ({self.names.dim(stride)})"
            if i > 0:
                text = f"({text}) % ({self.names.dim(loop.extent)})"
            lines.insert(0, f"const long {loop.var} = {text};")
            stride = stride * loop.extent
        return lines

    def count(self, loops) -> str:
        return self.names.dim(shape_size(tuple(l.extent for l in loops)))

    def store(self, k, body: Body, value: str) -> str:
        for gathered in affine_gathers(k.out_index):   # a scatter's positions, checked first
            body.value(gathered)
        return f"{self.names.buffer(k.out)}[{body.index(k.out_index)}] = {value};"

    def _map(self, k, view, launch: Launch) -> Body:
        body = self.body()
        value = body.value(k.value)
        view.total, view.decl = self.count(k.loops), self.decompose(k.loops, "point")
        view.body, view.store, view.width = body.lines, self.store(k, body, value), launch.width
        view.inner_var, view.serial = None, launch.serial
        if launch.serial:   # a work-item per point of the free loops, the others in order (kernels.cl.j2)
            free, ordered = serial_loops(k)
            view.free_total, view.free_decl = self.count(free), self.decompose(free, "item")
            view.total, view.decl = self.count(ordered), self.decompose(ordered, "point")
        if launch.runs:   # runs along the last axis (kernels.cl.j2)
            view.inner_var, view.inner_extent = k.loops[-1].var, self.names.dim(k.loops[-1].extent)
            view.outer_total, view.decl = self.count(k.loops[:-1]), self.decompose(k.loops[:-1], "outer")
        if view.width > 1:
            var = k.loops[0].var
            vector = self.body(view.width, var)
            result = vector.value(k.value)
            target = f"{self.names.buffer(k.out)} + {vector.index(k.out_index)}"
            view.var, view.vbody = var, vector.lines
            view.vstore = f"vstore{view.width}(({vector.dialect.ctype(k.out.dtype)})({result}), 0, {target});"
        return body

    def _row(self, k, view, launch: Launch) -> None:
        """A work-item per row runs the routine (templates/common/rows.j2, C's text too)."""
        view.r = row_routine(k, self.names, STORAGE.get, opencl=True)

    def _reduction(self, k, view) -> Body:
        body = self.body()
        view.result = body.value(k.value)
        view.body = body.lines
        view.n_out, view.n_red = self.count(k.loops), self.count(k.reduce_loops)
        view.decl, view.rdecl = self.decompose(k.loops, "point"), self.decompose(k.reduce_loops, "flat")
        return body

    def _reduce(self, k, view, launch: Launch) -> Body:
        body = self._reduction(k, view)
        dtype = k.value.dtype
        init, combine = OPS[k.op].c
        fields = body.type_fields(dtype)
        pick = lambda t: t.get(kind(dtype), t.get("any")) if isinstance(t, dict) else t  # noqa: E731
        view.blocked = k.op == "sum" and kind(dtype) == "float"
        view.acc_type = "tdsl_acc_f32" if view.blocked and dtype == "f32" else STORAGE[dtype]
        view.blk_type = STORAGE[dtype]
        view.init = pick(init).format(**fields)
        view.combine = pick(combine).format(acc="acc", x=view.result, **fields)
        view.tree = pick(combine).format(acc="scratch[lid]", x="scratch[lid + stride]", **fields)
        cast = f"({STORAGE[dtype]})" if view.acc_type != STORAGE[dtype] else ""
        view.store = self.store(k, body, f"{cast}scratch[lid]")
        view.strip = launch.strip
        if view.strip:
            view.strip_combine = pick(combine).format(acc="acc[j]", x=view.result, **fields)
            view.strip_store = self.store(k, body, f"{cast}acc[j]")
        return body

    def _argreduce(self, k, view, launch: Launch) -> Body:
        body = self._reduction(k, view)
        dtype, op = k.value.dtype, OPS[k.op].c
        view.position = body.index(k.position) if k.reduce_loops else "0"
        view.value_type = STORAGE[dtype]
        view.better = self.better(view.result, "best", op, dtype)
        view.other_better = self.better("other", "best", op, dtype)
        view.tie = "other == best" + (" || (isnan(other) && isnan(best))" if kind(dtype) == "float" else "")
        view.store = self.store(k, body, "scratch_at[lid]")
        return body

    @staticmethod
    def better(value: str, best: str, op: str, dtype: str) -> str:
        text = f"{value} {op} {best}"
        return text + (f" || (isnan({value}) && !isnan({best}))" if kind(dtype) == "float" else "")

    def _matmul(self, k, view, launch: Launch) -> Body:
        dtype = k.out.dtype
        lhs_body, rhs_body = self.body(), self.body()
        view.lhs, view.rhs = lhs_body.value(k.lhs), rhs_body.value(k.rhs)
        view.lhs_body, view.rhs_body = lhs_body.lines, rhs_body.lines
        row = k.loops[-1]
        view.row, view.col, view.inner = row.var, k.col.var, k.inner.var
        view.rows, view.cols = self.names.dim(row.extent), self.names.dim(k.col.extent)
        view.depth = self.names.dim(k.inner.extent)
        view.decl = self.decompose(k.loops[:-1], "point")
        view.value_type = STORAGE[dtype]
        view.zero = literal(0, dtype)
        fields = lhs_body.type_fields(dtype)
        product = OPS["mul"].c_template(kind(dtype)).format("lhs_tile[ly][kk]", "rhs_tile[kk][lx]", **fields)
        view.update = f"acc = {OPS['add'].c_template(kind(dtype)).format('acc', product, **fields)};"
        view.store = self.store(k, lhs_body, "acc")
        strip_product = OPS["mul"].c_template(kind(dtype)).format("lhs_value", view.rhs, **fields)
        view.strip_update = f"acc[j] = {OPS['add'].c_template(kind(dtype)).format('acc[j]', strip_product, **fields)};"
        view.strip_store = self.store(k, lhs_body, "acc[j]")
        return lhs_body
