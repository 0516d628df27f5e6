"""Rendering for OpenCL: the kernel IR of a module as one OpenCL C program, via templates/opencl.

Expressions come from the op table through the same `cexpr.Body` as the C rendering,
with the OpenCL dialect (type names, overloaded math, more reserved words). What
differs is the shape of a kernel: its outer loops become the NDRange. A map is a
flat range of work-items (a vector of elements each when every access is contiguous
float arithmetic), a reduction gives each output point `lanes` work-items that meet
in a local-memory tree, and a matmul runs in 2-D tiles staged through local memory.
Every buffer is a `__global` pointer, scalars too, so device results chain.
"""
from __future__ import annotations

import re
from types import SimpleNamespace

from tdsl.dims import shape_size
from tdsl.dtypes import kind
from tdsl.ops import OPS

from .cexpr import Body, Dialect, Names, literal
from .kernels import Apply, Check, Const, FunctionIR, Load, ModuleIR
from .render import environment as render_environment
from .render import kernel_comment, scalar_math

# OpenCL C's words beyond C's (keywords, types, builtins the kernels call, vloadN/vstoreN among
# them): a parameter with one of them gets a `u_` prefix. The kernels' own locals are read from
# the templates (cexpr.template_words).
_OPENCL_WORDS = """kernel global local constant private read_only write_only read_write uniform pipe
uchar ushort uint ulong half quad complex imaginary size_t ptrdiff_t intptr_t uintptr_t sampler_t event_t
image1d_t image2d_t image3d_t get_global_id get_local_id get_group_id get_local_size get_global_size
barrier atomic_max select isnan fabs exp log1p fmod floor copysign fma""".split()
_VECTOR_NAMES = [f"{t}{n}" for t in ("char", "uchar", "short", "ushort", "int", "uint", "long", "ulong",
                                      "float", "double", "half", "bool", "quad", "vload", "vstore")
                 for n in (2, 3, 4, 8, 16)]
_TYPES = {"bool": "bool", "i32": "int", "i64": "long", "f32": "float", "f64": "double"}

OPENCL = Dialect("opencl", types=_TYPES, math_suffix={}, reserved=frozenset(_OPENCL_WORDS + _VECTOR_NAMES))
STORAGE = {**_TYPES, "bool": "uchar"}      # bool is not a buffer element type in OpenCL
VECTOR_WIDTH = {"f32": 16, "f64": 8}        # two 256-bit vectors: AVX2 CPUs (PoCL) overlap their work
VECTOR_MAX_NODES = 200   # PoCL keeps a kernel's values per work-item on a worker's stack: long
                         # chains of vectors (a thousand statements) would overflow it
KIND_OF = {"map": "map", "reduce": "reduce", "argreduce": "reduce", "matmul": "matmul"}


def environment():
    """The Jinja environment of templates/opencl/ (shared settings and bytecode cache: codegen/render.py)."""
    return render_environment("opencl")


def render_program(module: ModuleIR) -> tuple[str, dict[str, list[list]]]:
    """The OpenCL C source of a module, and for each function the argument list of each kernel.

    An argument is ["size", name], ["param" | "output" | "temp", index] or ["err"] (the flag).
    """
    from tdsl import __version__
    functions = [FunctionKernels(fn).view() for fn in module.functions]
    marker = "/* tdsl prelude */"
    program = environment().get_template("program.cl.j2").render(
        version=__version__, file=module.file, functions=functions, prelude=marker,
        consts=[c for fn in functions for c in fn.consts])
    prelude = prune_prelude(environment().get_template("prelude.cl.j2").render(), program)
    return (program.replace(marker, prelude.rstrip("\n"), 1),
            {fn.name: [k.args for k in view.kernels] for fn, view in zip(module.functions, functions)})


_HELPER = re.compile(r"^static [\w ()]*?\b(tdsl_\w+)\(")   # static inline T tdsl_name(...


def prune_prelude(prelude: str, program: str) -> str:
    """The prelude without the helper functions the program never calls (they cost build time)."""
    chunks = _helper_chunks(prelude)
    used, text = set(), program
    while True:   # the helpers the kernels call, then those that these call, ...
        words = set(re.findall(r"\btdsl_\w+", text))   # one pass: a search per helper is slow on long programs
        found = {name for name, _ in chunks if name and name not in used and name in words}
        if not found:
            break
        used |= found
        text = "".join(line for name, lines in chunks if name in found for line in lines)
    kept = "".join(line for name, lines in chunks if name is None or name in used for line in lines)
    kept = re.sub(r"#ifdef cl_khr_fp64\n\s*#endif\n", "", kept)
    return re.sub(r"\n{3,}", "\n\n", kept)


def _helper_chunks(prelude: str) -> list[tuple[str | None, list[str]]]:
    """The prelude as (helper name, lines): a helper with the comment right above it, or (None, [line])."""
    chunks: list = []
    lines = prelude.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        match = _HELPER.match(lines[i])
        if not match:
            chunks.append((None, [lines[i]]))
            i += 1
            continue
        end = i
        one_liner = "{" in lines[i] and lines[i].count("{") == lines[i].count("}")
        if not one_liner:   # up to the closing brace at the start of a line
            end = lines.index("}\n", i)
        chunks.append((match.group(1), _comment_above(chunks) + lines[i:end + 1]))
        i = end + 1
    return chunks


def _comment_above(chunks: list) -> list[str]:
    """Take the comment that ends on the line before a helper (no blank line between) out of `chunks`."""
    k = len(chunks) - 1
    if k < 0 or chunks[k][0] is not None or not chunks[k][1][0].rstrip().endswith("*/"):
        return []
    while k >= 0 and chunks[k][0] is None and chunks[k][1][0].strip() and \
            not chunks[k][1][0].startswith("/*"):
        k -= 1
    if k < 0 or chunks[k][0] is not None or not chunks[k][1][0].startswith("/*"):
        return []
    comment = [lines[0] for _, lines in chunks[k:]]
    del chunks[k:]
    return comment


def kernel_name(fn: FunctionIR, index: int) -> str:
    return f"k{index}_{fn.name}"


# Vector builtins that are wrong for some lanes when another lane is extreme (PoCL 3.1:
# double8 pow of a lane next to a subnormal one): vector maps call the scalar one per lane.
SCALAR_LANES = frozenset({("pow", "f64")})
# Vector forms that are prelude helpers (f32 tan: guarded like sin and cos, see prelude.cl.j2).
VECTOR_HELPERS = {("tan", "f32"): "tdsl_tan_{T}({0})"}


class CLBody(Body):
    """Statements of an OpenCL kernel: every buffer is a pointer, so scalars are read at [0].

    With `width` > 1 the loop variable `var` stands for `width` consecutive elements:
    contiguous loads read a vector (`vloadN`), loads that do not move stay scalar. Math in
    `scalar_ids` (values that more than one place computes: render.scalar_math) is the scalar
    builtin everywhere, lane by lane in a vector: the vector builtins round differently.
    """

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
        tpl = super().template(item)
        return _OUTLINED.sub(r"\1_outlined_", tpl) if self.outline else tpl

    def lanes(self, item: Apply) -> str:
        """A template: a vector of `item`'s scalar expression, lane by lane (operands still `{0}`...)."""
        scalar = Body.template(self, item)
        if self.outline:
            scalar = _OUTLINED.sub(r"\1_outlined_", scalar)
        fields = Body(self.names, [0], OPENCL).type_fields(item.args[0].dtype, item.dtype)
        parts = [scalar.format(*[f"{{{i}}}.s{lane:x}" if self.is_vector(a) else f"{{{i}}}"
                                 for i, a in enumerate(item.args)], **fields)
                 for lane in range(self.width)]
        return f"({self.dialect.ctype(item.dtype)})({', '.join(parts)})"

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


# What a template must not hold to apply to vectors lane by lane: helpers other than those
# with vector versions (tdsl_sin_f64x4, ...), conditionals, comparisons and logic.
_OUTLINED = re.compile(r"\b(tdsl_(?:sin|cos))_")
INLINE_TRIG = 16   # a kernel with more sines and cosines calls them out of line

_NOT_LANEWISE = re.compile(r"tdsl_(?!sin_|cos_)|\?|isnan|isinf|isfinite|[<>!=]=?|&&|\|\|")


def kernel_nodes(k) -> list:
    """The distinct operations and loads of a kernel's expressions."""
    stack = [getattr(k, f) for f in ("value", "lhs", "rhs") if hasattr(k, f)]
    seen: dict[int, object] = {}
    while stack:
        item = stack.pop()
        if id(item) not in seen:
            seen[id(item)] = item
            stack.extend(getattr(item, "args", ()))
            if isinstance(item, Check):
                stack.extend((item.cond, item.value))
    return list(seen.values())


def trig_count(k) -> int:
    """How many sines and cosines a kernel computes."""
    return sum(1 for item in kernel_nodes(k) if isinstance(item, Apply) and item.op in ("sin", "cos"))


def vector_width(k) -> int:
    """Elements per work-item of a map: a vector when all of it is contiguous float arithmetic."""
    dtype = k.out.dtype
    if k.kind != "map" or len(k.loops) != 1 or dtype not in VECTOR_WIDTH:
        return 1
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
        if isinstance(item, Apply) and not _NOT_LANEWISE.search(OPS[item.op].c_template("float", "opencl") or "?"):
            stack.extend(item.args)
        elif not isinstance(item, Const):
            return 1
    return VECTOR_WIDTH[dtype]


def strip_reduction(k) -> bool:
    """Whether a reduction reads along its results, across the reduced axis (a column sum).

    On a CPU such a reduction runs in strips: a work-item takes TDSL_REDUCE_STRIP
    neighbouring results and walks the reduced axis once for all of them, reading a
    stretch of memory per step, where a work-item per result would read a cache line
    for one element.
    """
    if k.kind != "reduce" or not k.loops or not k.reduce_loops:
        return False
    out, red = k.loops[-1].var, k.reduce_loops[-1].var
    for item in kernel_nodes(k):
        if isinstance(item, Load):
            coef = dict(item.offset.terms)
            if coef.get(out) == 1 and coef.get(red, 0) not in (0, 1):
                return True
    return False


class FunctionKernels:
    """What the program template needs for the kernels of one function."""

    def __init__(self, fn: FunctionIR):
        self.fn = fn
        self.names = Names(fn.size_vars, fn.params, fn.name, OPENCL)
        self.counter = [0]
        self.scalar_ids = frozenset(scalar_math(fn.kernels))

    def view(self) -> SimpleNamespace:
        fn = self.fn
        kernels = [self.kernel(k, kernel_name(fn, i)) for i, k in enumerate(fn.kernels)]
        return SimpleNamespace(signature=fn.signature, where=str(fn.loc) if fn.loc else "",
                               kernels=kernels, consts=[self.const(c) for c in fn.consts])

    def params(self) -> list[tuple[str, list]]:
        """Every possible kernel argument: (declaration, reference for the host)."""
        fn, names = self.fn, self.names
        out = [(f"const long {names.size(v)}", ["size", v]) for v in fn.size_vars]
        out += [(f"__global const {STORAGE[p.dtype]} *restrict {names.buffer(p)}", ["param", i])
                for i, p in enumerate(fn.params)]
        for role, buffers in (("output", fn.outputs), ("temp", fn.temps)):
            out += [(f"__global {STORAGE[b.dtype]} *restrict {names.buffer(b)}", [role, i])
                    for i, b in enumerate(buffers)]
        return out

    def const(self, buf) -> SimpleNamespace:
        values = [literal(v, buf.dtype) for v in buf.data] or [literal(0, buf.dtype)]
        rows = [", ".join(values[i:i + 8]) + "," for i in range(0, len(values), 8)]
        return SimpleNamespace(name=self.names.buffer(buf), ctype=STORAGE[buf.dtype], count=len(values),
                               rows=rows)

    def body(self, width: int = 1, var: str | None = None) -> CLBody:
        return CLBody(self.names, self.counter, width, var, self.outline, self.scalar_ids)

    def kernel(self, k, name: str) -> SimpleNamespace:
        view = SimpleNamespace(kind=k.kind, name=name, comment=kernel_comment(k.origin))
        self.outline = trig_count(k) > INLINE_TRIG
        body = getattr(self, f"_{k.kind}")(k, view)
        view.fails = body.fails or getattr(view, "fails", False)
        used = " ".join(str(v) for f, v in vars(view).items() if f != "comment")   # what its text names
        chosen = [(d, ref) for d, ref in self.params() if re.search(rf"\b{re.escape(d.split()[-1])}\b", used)]
        if view.fails:
            chosen.append(("__global int *restrict tdsl_err", ["err"]))
        view.params = [d for d, _ in chosen] + (["const long lanes"] if KIND_OF[k.kind] == "reduce" else [])
        view.args = [ref for _, ref in chosen]
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
        return f"{self.names.buffer(k.out)}[{body.index(k.out_index)}] = {value};"

    def _map(self, k, view) -> Body:
        body = self.body()
        value = body.value(k.value)
        view.total, view.decl = self.count(k.loops), self.decompose(k.loops, "point")
        view.body, view.store, view.width = body.lines, self.store(k, body, value), vector_width(k)
        view.inner_var = None
        if view.width == 1 and k.loops:   # runs along the last axis (kernels.cl.j2)
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

    def _reduction(self, k, view) -> Body:
        body = self.body()
        view.result = body.value(k.value)
        view.body = body.lines
        view.n_out, view.n_red = self.count(k.loops), self.count(k.reduce_loops)
        view.decl, view.rdecl = self.decompose(k.loops, "point"), self.decompose(k.reduce_loops, "flat")
        return body

    def _reduce(self, k, view) -> Body:
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
        view.strip = strip_reduction(k)
        if view.strip:
            view.strip_combine = pick(combine).format(acc="acc[j]", x=view.result, **fields)
            view.strip_store = self.store(k, body, f"{cast}acc[j]")
        return body

    def _argreduce(self, k, view) -> Body:
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

    def _matmul(self, k, view) -> Body:
        dtype = k.out.dtype
        lhs_body, rhs_body = self.body(), self.body()
        view.lhs, view.rhs = lhs_body.value(k.lhs), rhs_body.value(k.rhs)
        view.lhs_body, view.rhs_body = lhs_body.lines, rhs_body.lines
        view.fails = lhs_body.fails or rhs_body.fails
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
