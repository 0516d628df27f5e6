"""Rendering: the kernel IR of a module as C text (a .c file and its header), via templates/c.

Templates hold the structure (file, functions, loop nests, pragmas); this module
prepares for each kernel its loops and the statements of its expressions
(`cexpr.Body`), reading the op table for every operation.
"""
from __future__ import annotations

import re
from types import SimpleNamespace

from tdsl.dims import shape_size
from tdsl.dtypes import kind
from tdsl.ops import OPS, math_ops

from .blas import blas_call
from .cexpr import C, Body, Dialect, Names, c_string, function_symbols, literal, paren
from .kernels import Apply, Check, Const, FunctionIR, Load, ModuleIR, Position, SizeVar
from .loops import affine_gathers, all_vars, expression_children, kernel_expressions, kernel_loads, value_children
from .templating import environment


def render_module(module: ModuleIR, standalone_header: bool = False,
                  debug: bool = False, profile: bool = False) -> tuple[str, str | None]:
    """The C source of a module, and its header when asked for.

    `debug`: each statement's code carries `#line` directives naming its .tdsl line, and a
    RESUME line follows it (see `generated_lines`, which makes it a directive too).
    `profile`: each function times its calls and each of its kernels into a table of its own,
    which `SYMBOL_profile` reads (tdsl/profile.py).
    """
    from tdsl.version import __version__
    calls: dict = {}
    symbols = function_symbols([fn.name for fn in module.functions], module.prefix)
    functions = [FunctionView(fn, module.prefix, calls=calls, symbol=symbols[fn.name], debug=debug,
                              timed=profile).view()
                 for fn in module.functions]
    bodies = [FunctionView(b, module.prefix, calls=calls, symbol=region_symbol(b), restrict=False,
                           workspace=hoisted_temps(b, index), debug=debug, timed=profile).view()
              for fn in module.functions for b, index in region_bodies(fn)]
    context = dict(version=__version__, file=module.file, prefix=module.prefix,
                   functions=functions, bodies=bodies, packed=not standalone_header, errors=error_views(module.errors),
                   consts=[c for fn in functions + bodies for c in fn.consts], scalar_math=scalar_functions(calls),
                   debug=debug, located=located if debug else _as_written, resume=RESUME, profile=profile)
    source = environment().get_template("c/module.c.j2").render(**context)
    header = None
    if standalone_header:
        guard = re.sub(r"\W", "_", module.prefix).upper() + "_H"
        header = environment().get_template("c/header.h.j2").render(guard=guard, **context)
    return source, header


# -- debug builds: generated code named by the .tdsl lines it comes from ------------------
# A line the templates write after each part mapped to .tdsl lines; `generated_lines` turns it
# into `#line N "FILE.c"`, the real number of the next line in the generated file. (A compiler
# given it as it is ignores an unknown pragma.)
RESUME = "#pragma tdsl resume"


def line_file(name: str) -> str:
    """A file name as the C string literal of a `#line` directive: the file name is user text,
    so quotes, backslashes, `?`, unprintable and non-ASCII characters become escapes (the
    non-ASCII ones octal escapes of their UTF-8 bytes: the compiler reads them back as those bytes)."""
    return "".join(ch if ch.isascii() else "".join(f"\\{b:03o}" for b in ch.encode("utf-8", "surrogatepass"))
                   for ch in c_string(name))


def line_directive(loc) -> str | None:
    """`#line LINE "FILE"` of a .tdsl location, or None where there is none."""
    if loc is None or not loc.file or loc.line < 1:
        return None
    return f"#line {loc.line} {line_file(loc.file)}"


def located(text: str, directive: str | None) -> str:
    """`text`, C the templates wrote for one .tdsl statement, with `directive` before each of
    its lines that holds code: every line is that statement's. A line an inner statement
    placed already (it follows a `#line` written by its own `located` or, indented, by the op's
    statement: StatementLines) keeps its place; the directives start their lines."""
    out, placed = [], False
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("#line "):
            placed, line = True, line.lstrip()
        elif directive is not None and not placed and line.strip():
            out.append(directive + "\n")
        else:
            placed = False
        out.append(line)
    return "".join(out)


def _as_written(text: str, directive: str | None) -> str:
    return text


def generated_lines(text: str, name: str) -> str:
    """A debug build's C with each RESUME line made `#line N "NAME"`: the code after it (entry
    points, the next function's header) is named by its own line in the generated file NAME."""
    lines = text.split("\n")
    directive = f" {line_file(name)}"
    return "\n".join(f"#line {i + 2}{directive}" if line == RESUME else line for i, line in enumerate(lines))


def region_bodies(fn: FunctionIR) -> list[tuple[FunctionIR, str | None]]:
    """The bodies of the loops and branches of `fn` with their loop index's size variable (if
    any), nested ones first (C declares before use)."""
    found = []
    for k in fn.kernels:
        if k.kind == "region":
            for b in k.bodies:
                found += region_bodies(b) + [(b, _index_var(k))]
    return found


def _index_var(k) -> str | None:
    return k.index if k.region == "for" and not k.index_param else None


def hoisted_temps(body: FunctionIR, index: str | None) -> list:
    """A body's arrays whose size does not depend on its loop index: the loop allocates them once
    and passes them to every call (no allocation per iteration)."""
    return [t for t in body.temps if not t.is_scalar
            and not any(index in d.variables() for d in t.shape)]


def profile_getter(prefix: str, symbol: str, function: bool = True) -> str:
    """The exported function that reads a profiling build's table of a function (its symbol
    starts with the prefix already) or of a loop or branch body (`tdsl_region_N`)."""
    return f"{symbol}_profile" if function else f"{prefix}_{symbol}_profile"


def region_symbol(body: FunctionIR) -> str:
    """The static C function of a loop or branch body (its name is a module-wide number: `7r`)."""
    return f"tdsl_region_{body.name[:-1]}"


def error_views(errors) -> list:
    """The module's error table as the C code reports it (sizes shown symbolically)."""
    return [SimpleNamespace(code=i + 1, message=e.text(str(e.extent) if e.extent is not None else None))
            for i, e in enumerate(errors)]


# Ops that call a math function: vectorized (libmvec), one costs about what loading and
# storing an element does, so each counts as one more point when deciding on threads
# (measured: bench/threshold.py, docs/performance.md).
MATH_OPS = math_ops()
MATH_COST = 1


def _loop_vars(root) -> set[str]:
    """The loop variables an expression reads (through its loads' and positions' indices)."""
    found, seen, stack = set(), set(), [root]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        index = item.offset if isinstance(item, Load) else item.index if isinstance(item, Position) else None
        if index is not None:
            found |= all_vars(index)
        stack.extend(expression_children(item))
    return found


def point_cost(k) -> int:
    """The work of one point of a kernel: 1, plus MATH_COST per math function it calls."""
    calls = sum(1 for e in kernel_expressions(k) if isinstance(e, Apply) and e.op in MATH_OPS)
    return 1 + MATH_COST * calls


def kernel_comment(origin) -> str:
    where = ""
    if origin.loc is not None:
        where = f" -- {origin.loc.file}:{origin.loc.line}"
        if origin.loc.source_line.strip():
            where += f": {origin.loc.source_line.strip()}"
    return origin.label + where   # printed through the c_comment filter


# -- one bit pattern per value ----------------------------------------------------------
# libmvec's vector functions round differently from libm's scalar ones (and from each
# other: the AVX2 and AVX-512 variants differ too), and a SIMD loop calls them in its
# body but libm in its tail, as do the loops that are not vectorized. A value computed
# at one place has one bit pattern wherever it is read; a value that two places
# compute (two kernels, two parts of a fused pass, two indices of one loop) would get
# two. So math that is computed at more than one place goes through a scalar function
# that is never inlined (`tdsl_scalar_<op>_<T>`, the prelude): every place gets libm's
# bits, and `x == max(x)` holds where NumPy says it does.

def _evaluation_sites(k) -> list:
    """The kernels whose expressions are evaluated separately: the parts of a fused pass apart."""
    return [site for part in k.parts for site in _evaluation_sites(part)] if k.kind == "fused" else [k]


def scalar_math(kernels) -> set[int]:
    """The ids of the math nodes whose value is computed at more than one place."""
    keys, count, found = _ValueKeys(), {}, []
    for k in kernels:
        for site in _evaluation_sites(k):
            for e in kernel_expressions(site):
                if isinstance(e, Apply) and OPS[e.op].vector_math:
                    key = keys.of(e)
                    # a matmul operand is read once per column of the result: computed many times
                    count[key] = count.get(key, 0) + (2 if site.kind == "matmul" else 1)
                    found.append((e, key))
    return {id(e) for e, key in found if count[key] > 1}


class _ValueKeys:
    """Numbers for expressions by value, indices left out: equal numbers may compute equal values.

    Loads of one buffer at any index count as equal, so `exp(x[i + 1])` and `exp(x[i])`
    (one element, two loop iterations) are seen as the same value too.
    """

    def __init__(self):
        self.numbers: dict[tuple, int] = {}
        self.memo: dict[int, int] = {}

    def of(self, root) -> int:
        stack = [(root, False)]
        while stack:
            item, ready = stack.pop()
            if id(item) in self.memo:
                continue
            children = [c for c in value_children(item) if id(c) not in self.memo]
            if children and not ready:
                stack.append((item, True))
                stack.extend((c, False) for c in children)
                continue
            shape = _value_shape(item, [self.memo[id(c)] for c in value_children(item)])
            self.memo[id(item)] = self.numbers.setdefault(shape, len(self.numbers))
        return self.memo[id(root)]


def _value_shape(item, children: list[int]) -> tuple:
    if isinstance(item, Apply):
        return ("apply", item.op, item.dtype, *children)
    if isinstance(item, Load):
        return ("load", item.buffer.name, item.buffer.role, item.dtype)
    if isinstance(item, Const):
        return ("const", item.dtype, repr(item.value))
    if isinstance(item, SizeVar):
        return ("size", item.name)
    if isinstance(item, Check):
        return ("check", item.error, *children)
    return (type(item).__name__, *children)   # positions (any index), gathers


class StatementLines:
    """A Body that, in a debug build (`debug`), writes the `#line` of an op's own .tdsl statement
    before the statement computing it, where the lowering located the op (`Apply.loc`): the
    other lines of a kernel are its kernel's statement's (`located`)."""

    debug = False

    def _emit(self, item):
        directive = line_directive(item.loc) if self.debug and isinstance(item, Apply) else None
        if directive is not None:
            self.lines.append(directive)
        return super()._emit(item)


class ScalarMathBody(StatementLines, Body):
    """A body whose math nodes in `scalar_ids` call the prelude's scalar functions (noted in `calls`)."""

    def __init__(self, names: Names, counter: list[int], dialect: Dialect, scalar_ids: set[int], calls: dict,
                 debug: bool = False):
        super().__init__(names, counter, dialect)
        self.scalar_ids, self.calls, self.debug = scalar_ids, calls, debug

    def template(self, item: Apply) -> str:
        if id(item) not in self.scalar_ids:
            return super().template(item)
        dtype = item.args[0].dtype
        name = f"tdsl_scalar_{item.op}_{dtype}"
        self.calls.setdefault(name, (item.op, dtype, len(item.args)))
        return f"{name}({', '.join('{%d}' % i for i in range(len(item.args)))})"


def scalar_functions(calls: dict, dialect: Dialect = C) -> list[SimpleNamespace]:
    """The prelude's scalar math functions that a module calls (see ScalarMathBody)."""
    out = []
    for name, (op, dtype, arity) in sorted(calls.items()):
        ctype = dialect.ctype(dtype)
        params = [f"a{i}" for i in range(arity)]
        fields = Body(None, [0], dialect).type_fields(dtype)
        expr = OPS[op].c_template("float", dialect.name).format(*params, **fields)
        out.append(SimpleNamespace(name=name, ctype=ctype, expr=expr,
                                   params=", ".join(f"{ctype} {p}" for p in params)))
    return out


_KEY_TYPES = {False: {32: "uint32_t", 64: "uint64_t"}, True: {32: "uint", 64: "ulong"}}


def row_routine(k, names: Names, ctype, opencl: bool) -> SimpleNamespace:
    """What templates/common/rows.j2 needs to write a RowKernel's routine in one dialect:
    `ctype` gives the buffers' element types (OpenCL stores bool as uchar)."""
    dtype = k.dtype
    bits = 64 if dtype in ("f64", "i64") else 32
    acc = "tdsl_prev[tdsl_j]", "tdsl_here[tdsl_j]"
    combine = ""
    if k.routine in ("cumsum", "cumprod"):
        op = "add" if k.routine == "cumsum" else "mul"
        fields = Body(None, [0], C).type_fields(dtype)
        combine = OPS[op].c_template(kind(dtype)).format(*acc, **fields)
    buffer = names.buffer
    return SimpleNamespace(
        routine=k.routine, G="__global " if opencl else "", vt=ctype(dtype), kt=_KEY_TYPES[opencl][bits],
        it="long" if opencl else "int64_t", ft={"f32": "float", "f64": "double"}.get(dtype, ""),
        bits=bits, kind=kind(dtype), ins=[buffer(b) for b in k.ins], outs=[buffer(b) for b in k.outs],
        scratch=[buffer(b) for b in k.scratch], rows=names.dim(k.rows), n=paren(names.dim(k.length)),
        k=paren(names.dim(k.count)), inner=paren(names.dim(k.inner)), combine=combine,
        simd="" if opencl else "TDSL_OMP(simd)")


def surely_read(fn: FunctionIR) -> set[str]:
    """The parameters and size variables a function's C surely names, from its kernel IR: the
    buffers its kernels load and the sizes of their loops. Every other one gets a `(void)`, which
    silences -Wunused-parameter and is harmless where the C names it after all."""
    found: set[str] = set()
    for k in fn.kernels:
        if k.kind == "region":
            found.update(b.name for b in k.inputs if hasattr(b, "role"))
            found.update(v for b in k.bodies for v in b.size_vars)
            continue
        if k.kind == "row":
            found.update(b.name for b in k.buffers)
            found.update(v for d in (k.rows, k.length, k.count, k.inner) for v in d.variables())
            continue
        found.update(load.buffer.name for load in kernel_loads(k))
        for part in (k, *k.parts) if k.kind == "fused" else (k,):
            loops = list(part.loops) + list(getattr(part, "reduce_loops", ())) + (
                [part.col, part.inner] if part.kind == "matmul" else [])
            for loop in loops:
                found.update(loop.extent.variables())
    return found


class FunctionView:
    """What the module template needs to write one function."""

    def __init__(self, fn: FunctionIR, prefix: str, dialect: Dialect = C, calls: dict | None = None,
                 symbol: str | None = None, restrict: bool = True, workspace: list | None = None,
                 debug: bool = False, timed: bool = False):
        self.fn = fn
        self.timed = timed   # a profiling build: the calls and each kernel are timed
        self.debug = debug   # each located op's statement gets its own `#line` (StatementLines)
        self.workspace = workspace or []   # a body's arrays its loop allocates (extra pointer parameters)
        self.restrict = restrict   # a loop body's result may share its parameter's buffer (in place)
        self.prefix = prefix
        self.symbol = symbol or f"{prefix}_{fn.name}"   # cexpr.function_symbols
        self.dialect = dialect
        self.names = Names(fn.size_vars, fn.params, fn.name)
        self.counter = [0]
        self.scalar_ids = scalar_math(fn.kernels)
        self.calls = {} if calls is None else calls   # the scalar math functions the bodies call

    def body(self) -> Body:
        return ScalarMathBody(self.names, self.counter, self.dialect, self.scalar_ids, self.calls, self.debug)

    def view(self) -> SimpleNamespace:
        fn, names = self.fn, self.names
        kernels = [self.kernel(k) for k in fn.kernels]
        given = {t.name for t in self.workspace}
        arrays = [self.temp(t) for t in fn.temps if not t.is_scalar and t.name not in given]
        checks = [SimpleNamespace(cond=self.limit(c), code=c.error, index=None) for c in fn.limits] + \
            [SimpleNamespace(cond=self.condition(c), code=c.error, index=self.failed_index(c)) for c in fn.checks]
        user = [names.size(v) for v in fn.size_vars] + [names.buffer(p) for p in fn.params]
        read = surely_read(fn)
        unused = [names.size(v) for v in fn.size_vars if v not in read] + \
            [names.buffer(p) for p in fn.params if p.name not in read]
        return SimpleNamespace(
            symbol=self.symbol, signature=fn.signature, args=user + [o.name for o in fn.outputs],
            where=str(fn.loc) if fn.loc else "", params=self.params(True), decl_params=self.params(False),
            unused=unused, scalars=[self.temp(t) for t in fn.temps if t.is_scalar], arrays=arrays,
            checks=checks, kernels=kernels, line=line_directive(fn.loc),
            label=bool(arrays) or any(k.fails or k.kind == "fused" and k.sums or k.kind == "region"
                                      for k in kernels),
            consts=[self.const(c) for c in fn.consts], slots=self.slots(), timed=self.timed,
            profile_getter=profile_getter(self.prefix, self.symbol, self.restrict))

    def failed_index(self, check) -> str | None:
        """In a loop body, the loop index a failing check reports (its value goes in the message)."""
        if self.restrict or not self.fn.size_vars:
            return None
        index = self.fn.size_vars[-1]
        return self.names.size(index) if any(index in d.variables() for d, _ in check.conditions) else None

    def params(self, definition: bool) -> list[str]:
        restrict = "restrict " if definition and self.restrict else ""
        out = [f"int64_t {self.names.size(v)}" for v in self.fn.size_vars]
        for p in self.fn.params:
            ctype = self.dialect.ctype(p.dtype)
            out.append(f"{ctype} {self.names.buffer(p)}" if p.is_scalar else
                       f"const {ctype} *{restrict}{self.names.buffer(p)}")
        out += [f"{self.dialect.ctype(o.dtype)} *{restrict}{o.name}" for o in self.fn.outputs]
        out += [f"{self.dialect.ctype(t.dtype)} *{self.names.buffer(t)}" for t in self.workspace]
        return out

    def slots(self) -> list[str]:
        """Per argument of the C function, its field of `tdsl_slot` (the packed entry's union)."""
        return (["i64"] * len(self.fn.size_vars)
                + [("b" if p.dtype == "bool" else p.dtype) if p.is_scalar else "p" for p in self.fn.params] + ["p"] * len(self.fn.outputs))

    def temp(self, buf) -> SimpleNamespace:
        return SimpleNamespace(name=self.names.buffer(buf), ctype=self.dialect.ctype(buf.dtype),
                               count=self.names.dim(shape_size(buf.shape)),
                               code=dict(self.fn.alloc_errors).get(buf.name, 1))

    def limit(self, limit) -> str:
        """A SizeLimit as a C condition (codegen/kernels.py): true when the shape cannot fit."""
        dims = ", ".join(self.names.dim(d, checked=True) for d in limit.shape)
        return f"tdsl_too_big((const int64_t[]){{{dims}}}, {len(limit.shape)}, {limit.itemsize})"

    def const(self, buf) -> SimpleNamespace:
        values = [literal(v, buf.dtype) for v in buf.data] or [literal(0, buf.dtype)]
        rows = [", ".join(values[i:i + 8]) + "," for i in range(0, len(values), 8)]
        return SimpleNamespace(name=self.names.buffer(buf), ctype=self.dialect.ctype(buf.dtype),
                               count=len(values), rows=rows)

    def condition(self, check) -> str:
        ops = {"<0": "< 0", "!=0": "!= 0", "==0": "== 0"}
        return " && ".join(f"{paren(self.names.dim(d))} {ops[rel]}" for d, rel in check.conditions)

    # -- kernels ---------------------------------------------------------------------
    def kernel(self, k, nested: bool = False) -> SimpleNamespace:
        """The view of one kernel; `nested` for a part of a fused kernel (no threads of its own)."""
        body = self.body()
        view = SimpleNamespace(kind=k.kind, comment=kernel_comment(k.origin), line=line_directive(k.origin.loc),
                               loops=self.loops(k.loops), omp=None, fails=False, simd=None)
        # the NaN guard's checks add their sums (0, or NaN at a birth) into float sums of their own:
        # per lane in loops of 8 lanes (a blocked sum, a fused pass), per map (an OpenMP reduction)
        # (a part with loops of its own keeps `err`: a sum in memory would race in its SIMD lanes)
        map_sums = k.kind == "map" and not nested and not getattr(k, "serial", False)
        blocked = k.kind == "reduce" and k.op == "sum" and kind(k.value.dtype) == "float" and bool(k.reduce_loops)
        if map_sums or blocked or (nested and not k.loops and not getattr(k, "reduce_loops", ())):
            body.guard_mode = "sums"
            if map_sums:
                body.guard_format = "tdsl_gsum{code}"
        getattr(self, f"_{k.kind}")(k, body, view)
        found = {g.code: g for g in getattr(view, "guard_sums", []) + self.guard_sums(body)}   # (a fused pass: its parts')
        view.guard_sums = list(found.values())
        view.guard_scalars = map_sums   # (else a fused pass or a blocked sum declares them per lane)
        body.finish_guards()
        view.fails = view.fails or body.fails
        # the NaN guard's checks record their error as a max-reduction of `err` (no branch): they
        # keep the loops vector, and only add `err` to the reductions of the loops' pragmas
        guards = getattr(view, "guards", False) or body.guards
        view.strict, view.guards = view.fails, guards
        view.guard_type = getattr(view, "guard_type", None) or self.dialect.ctype(body.guard_type)
        work = self.work(k)
        # `simd` marks the innermost loop of a map: its lanes are independent (outputs never
        # overlap inputs), so math calls vectorize; not where a lane may record an error.
        vector = k.kind == "map" and bool(k.loops) and not view.fails and not getattr(k, "serial", False)
        if getattr(k, "serial", False):
            view.omp = self.serial_omp(k, view, work) if not nested else None
        elif k.loops and not nested and k.kind != "fused":
            view.omp = self.omp(self.size(work, k), view.fails or guards and not map_sums,
                                simd=vector and len(k.loops) == 1)
        if vector and (nested or len(k.loops) > 1):
            view.simd = "TDSL_OMP(simd)"
        if map_sums and view.guard_sums:
            sums = "reduction(+: " + ", ".join(f"tdsl_gsum{g.code}" for g in view.guard_sums) + "))"
            view.omp = view.omp and view.omp[:-1] + " " + sums
            view.simd = view.simd and view.simd[:-1] + " " + sums
        if k.kind == "reduce" and not view.fails:
            self._vector_reduce(k, view, work, nested)
        if k.kind == "matmul" and not view.fails:
            view.simd = "TDSL_OMP(simd)"   # the columns of a row of the result are independent
        if guards:   # (a `simd` pragma is left as it is: with `err` in its reduction clause, GCC 12
            # vectorizes no loop that also sums into lanes; without it, GCC finds the max-reduction
            # of `err` by itself, as it must for any scalar cycle)
            view.fails = True
            view.reduce_omp = with_err(getattr(view, "reduce_omp", None))
        return view

    @staticmethod
    def work(k) -> list:
        """The loops of a kernel's whole iteration space."""
        if k.kind == "fused":
            return [k.loop]
        return list(k.loops) + list(getattr(k, "reduce_loops", ())) + (
            [k.col, k.inner] if k.kind == "matmul" else [])

    def _vector_reduce(self, k, view, work, nested: bool = False) -> None:
        """SIMD (and, for a whole-array reduction, threads) for float sums and extremes.

        A float sum adds each block into 8 partial sums (`blk[8]`, one vector of lanes),
        then adds those pairwise, as NumPy's pairwise sum does; max/min keep NaN out of the
        lanes and record it apart (`any_nan`), so the lanes need no NaN-aware comparison
        and the result is NaN exactly when NumPy's is.
        """
        integer = k.op in ("max", "min") and kind(k.value.dtype) == "int" and bool(k.reduce_loops)
        clauses = "" if view.blocked else \
            "reduction(max: acc) reduction(|: any_nan)" if view.extreme == ">" else \
            "reduction(min: acc) reduction(|: any_nan)" if view.extreme == "<" else \
            f"reduction({k.op}: acc)" if integer else None
        if clauses is None:
            return
        view.simd = f"TDSL_OMP(simd {clauses})" if clauses else "TDSL_OMP(simd)"
        if k.loops or nested:
            return
        outer = "reduction(+: acc)" if view.blocked else clauses
        single = len(k.reduce_loops) == 1 and not view.blocked
        view.reduce_omp = f"TDSL_OMP(parallel for{' simd' if single else ''} {outer} " \
                          f"if (parallel: {self.size(work, k)} > TDSL_PARALLEL_MIN))"
        if single:
            view.simd = None

    def loops(self, loops) -> list:
        return [SimpleNamespace(var=l.var, extent=self.names.dim(l.extent)) for l in loops]

    def size(self, loops, k) -> str:
        """The work of a loop nest for the threads' threshold: points times the cost of one."""
        dims = [paren(self.names.dim(l.extent)) for l in loops if l.extent != 1]
        cost = point_cost(k)
        return " * ".join(dims + ([str(cost)] if cost > 1 else [])) or "1"

    def omp(self, size: str, fails: bool, simd: bool = False) -> str:
        # `if (parallel: ...)`: a bare `if` would also turn off the `simd` of `parallel for simd`
        clause = f"TDSL_OMP(parallel for{' simd' if simd else ''} if (parallel: {size} > TDSL_PARALLEL_MIN)"
        return clause + (" reduction(max: err))" if fails else ")")

    def serial_omp(self, k, view, work) -> str | None:
        """A scatter's points run in order, but for its free loops (kernels.MapKernel): threads
        share the outermost loop when it is free (an axis before the scattered one), never
        otherwise. No atomics: each element is written by one thread, in the order NumPy's is, so
        the result is deterministic, and the serial inner loop runs at the speed of memory."""
        if not k.loops or k.loops[0].var not in k.free:
            return None
        return self.omp(self.size(work, k), view.fails)

    def store(self, k, body: Body, value: str) -> str:
        target = self.names.buffer(k.out)
        if k.out.is_scalar and k.out.role == "temp":
            return f"{target} = {value};"
        for gathered in affine_gathers(k.out_index):   # a scatter's positions, checked first
            body.value(gathered)
        return f"{target}[{body.index(k.out_index)}] = {value};"

    # -- loops and branches (section 11) -------------------------------------------------
    def _region(self, k, body: Body, view) -> None:
        """A loop calls its body's function once per iteration, with the carried values in two
        buffers that swap (or one, updated in place); a branch calls one of its two functions."""
        names, ctype = self.names, self.dialect.ctype
        view.fails = True
        view.region = k.region
        carried = k.carried
        lead = {"for": 2, "while": 0, "if": 1}[k.region]
        outer = k.bodies[-1].size_vars
        if k.region == "for" and not k.index_param:
            outer = outer[:-1]   # the body's last size variable is the loop index
        sizes = [names.size(v) for v in outer]
        view.carried = []
        for j, res in enumerate(k.results[:carried]):
            nxt = k.scratch[j] if j < len(k.scratch) else None
            init = k.inputs[lead + j]
            view.carried.append(SimpleNamespace(
                ctype=ctype(res.dtype), cur=f"tdsl_c{j}", nxt=f"tdsl_n{j}", result=self.pointer(res),
                scratch=self.pointer(nxt) if nxt is not None else None, scalar=res.is_scalar,
                count=names.dim(shape_size(res.shape)), init=self.operand(init),
                init_scalar=getattr(init, "is_scalar", True)))
        view.work = []
        work_of = []
        for b in k.bodies:
            names_of_b = []
            for t in hoisted_temps(b, _index_var(k)):
                w = SimpleNamespace(name=f"tdsl_w{len(view.work)}", ctype=ctype(t.dtype),
                                    count=names.dim(shape_size(t.shape)), code=dict(b.alloc_errors).get(t.name, 1))
                view.work.append(w)
                names_of_b.append(w.name)
            work_of.append(names_of_b)
        cur = [f"*{c.cur}" if c.scalar else c.cur for c in view.carried]
        captured = [self.operand(x) for x in k.inputs[lead + carried:]]
        if k.region == "for":
            view.start, view.stop, view.step = self.operand(k.inputs[0]), self.operand(k.inputs[1]), k.step
            index = ["tdsl_i"]
            sizes_call = sizes + ([] if k.index_param else index)
            first = index if k.index_param else []
            view.call = f"{region_symbol(k.bodies[0])}({', '.join(sizes_call + first + cur + captured + [c.nxt for c in view.carried] + work_of[0])})"
        elif k.region == "while":
            view.cond = f"{region_symbol(k.bodies[0])}({', '.join(sizes + cur + captured + ['&tdsl_go'] + work_of[0])})"
            view.call = f"{region_symbol(k.bodies[1])}({', '.join(sizes + cur + captured + [c.nxt for c in view.carried] + work_of[1])})"
        else:
            view.pred = self.operand(k.inputs[0])
            outs = [self.pointer(r) for r in k.results]
            view.then, view.other = (f"{region_symbol(b)}({', '.join(sizes + captured + outs + w)})"
                                     for b, w in zip(k.bodies, work_of))

    def pointer(self, buf) -> str:
        """A buffer as a pointer (a scalar temporary is a local variable)."""
        name = self.names.buffer(buf)
        return f"&{name}" if buf.is_scalar and buf.role == "temp" else name

    def operand(self, item) -> str:
        """A region input as an argument: a literal, a scalar's value or an array's pointer."""
        if isinstance(item, Const):
            return literal(item.value, item.dtype)
        name = self.names.buffer(item)
        if item.is_scalar and item.role in ("output", "const"):
            return f"{name}[0]"
        return name

    def _row(self, k, body: Body, view) -> None:
        """A routine per row (templates/common/rows.j2), the rows on threads."""
        view.r = row_routine(k, self.names, self.dialect.ctype, opencl=False)
        view.rows = view.r.rows
        work = f"{paren(view.r.rows)} * {view.r.n} * {view.r.inner}"
        view.omp = f"TDSL_OMP(parallel for if (parallel: {work} > TDSL_PARALLEL_MIN))"

    def _map(self, k, body: Body, view) -> None:
        view.head = []
        view.split = self.hoist_positions(k, body, view) if getattr(k, "serial", False) else 0
        value = body.value(k.value)
        view.body = body.lines
        view.store = self.store(k, body, value)
        if view.split and not body.fails:   # the inner loops are free: their lanes write distinct elements
            view.simd = "TDSL_OMP(simd)"

    def hoist_positions(self, k, body: Body, view) -> int:
        """A scatter whose positions depend on its outer loops only, its inner loops free (the rows
        of an embedding): the positions and their range checks are computed once per outer point
        (`view.head`), before the inner loops. The number of outer loops, or 0 (no split)."""
        gathers = affine_gathers(k.out_index)
        used = set().union(*(_loop_vars(g.value) for g in gathers))
        split = max((j + 1 for j, loop in enumerate(k.loops) if loop.var in used), default=0)
        if split in (0, len(k.loops)) or any(loop.var not in k.free for loop in k.loops[split:]):
            return 0
        for gathered in gathers:
            body.value(gathered)
        view.head, body.lines = body.lines, []
        view.fails, body.fails = body.fails, False
        return split

    def _reduce(self, k, body: Body, view) -> None:
        dtype = k.value.dtype
        init, combine = OPS[k.op].c
        fields = body.type_fields(dtype)
        pick = lambda t: t.get(kind(dtype), t.get("any")) if isinstance(t, dict) else t  # noqa: E731
        result = body.value(k.value)
        view.body, view.result = body.lines, result
        view.reduce_loops = self.loops(k.reduce_loops)
        view.blocked = k.op == "sum" and kind(dtype) == "float" and bool(k.reduce_loops)
        view.extreme = {"max": ">", "min": "<"}.get(k.op) if kind(dtype) == "float" and k.reduce_loops else None
        view.reduce_omp = None
        view.also = []   # stores of each summed value (FusedKernel.stores)
        view.acc_type = self.dialect.ctype("f64" if view.blocked else dtype)
        view.blk_type = self.dialect.ctype(dtype)
        view.init = pick(init).format(**fields)
        view.combine = pick(combine).format(acc="acc", x=result, **fields)
        cast = f"({self.dialect.ctype(dtype)})" if view.blocked and dtype != "f64" else ""
        view.store = self.store(k, body, f"{cast}acc")

    def _argreduce(self, k, body: Body, view) -> None:
        dtype = k.value.dtype
        result = body.value(k.value)
        position = body.index(k.position) if k.reduce_loops else "0"
        better = f"{result} {OPS[k.op].c} best"
        if kind(dtype) == "float":
            better = f"{better} || (isnan({result}) && !isnan(best))"
        view.body, view.result, view.position, view.better = body.lines, result, position, better
        view.reduce_loops = self.loops(k.reduce_loops)
        view.value_type = self.dialect.ctype(dtype)
        view.store = self.store(k, body, "best_at")

    def _matmul(self, k, body: Body, view) -> None:
        dtype = k.out.dtype
        fields = body.type_fields(dtype)
        lhs = body.value(k.lhs)
        view.lhs_body = list(body.lines)
        del body.lines[:]
        rhs = body.value(k.rhs)
        view.rhs_body = body.lines
        target = f"{self.names.buffer(k.out)}[{body.index(k.out_index)}]"
        product = OPS["mul"].c_template(kind(dtype)).format(lhs, rhs, **fields)
        total = OPS["add"].c_template(kind(dtype)).format(target, product, **fields)
        view.update = f"{target} = {total};"
        view.zero = f"{target} = {literal(0, dtype)};"
        view.col = SimpleNamespace(var=k.col.var, extent=self.names.dim(k.col.extent))
        view.inner = SimpleNamespace(var=k.inner.var, extent=self.names.dim(k.inner.extent))
        view.blas = blas_call(k, self.names, body.index) if self.dialect is C else None

    # -- fused kernels (codegen/fuse.py) ----------------------------------------------
    def _fused(self, k, body: Body, view) -> None:
        """Parts at each point of the shared loop; sums go to per-chunk partials, added in order.

        A chunk adds TDSL_BLOCK points at a time in the sum's own dtype, then adds that block
        into its double partial: the accuracy of the blocked sums of reduce kernels, and
        SIMD lanes as wide as the dtype allows.
        """
        view.loop = SimpleNamespace(var=k.loop.var, extent=self.names.dim(k.loop.extent))
        view.locals = [self.temp(b) for b in k.locals]
        view.parts, view.sums, offset = [], [], "0"
        for i, part in enumerate(k.parts):
            if i not in k.sums:
                view.parts.append(self.kernel(part, nested=True))
                for at, buf, index in k.stores:
                    if at == i:
                        target = f"{self.names.buffer(buf)}[{Body(self.names, self.counter).index(index)}]"
                        view.parts[-1].also.append(f"{target} = {view.parts[-1].result};")
                continue
            size = self.names.dim(shape_size(part.out.shape))
            j = len(view.sums)
            total = SimpleNamespace(name=f"tdsl_sum{j}", block=f"tdsl_blk{j}", size=size, offset=offset,
                                    out=self.names.buffer(part.out), ctype=self.dialect.ctype(part.out.dtype),
                                    block_type=self.dialect.ctype(part.value.dtype),
                                    scalar=part.out.is_scalar and part.out.role == "temp")
            view.sums.append(total)
            view.parts.append(self._accumulation(part, total.block))
            offset = f"{offset} + {paren(size)}" if offset != "0" else size
        for total in view.sums:   # the blocks follow the partial sums, one double slot per element
            total.block_offset = f"{paren(offset)} + {total.offset}" if total.offset != "0" else paren(offset)
        # a chunk's partials and blocks, rounded up to whole cache lines (no false sharing)
        view.partial_size = f"(2 * {paren(offset)} + 7) / 8 * 8" if view.sums else "0"
        view.fails = any(p.strict for p in view.parts)
        view.guards = any(p.guards for p in view.parts)
        found = {g.code: g for p in view.parts for g in getattr(p, "guard_sums", ())}   # (a check two parts share)
        view.guard_sums = list(found.values())
        wide = any(p.guard_type != self.dialect.ctype("i32") for p in view.parts if p.guards)
        view.guard_type = self.dialect.ctype("i64" if wide else "i32")
        # scalar sums of points that loop over nothing else: the points run in SIMD lanes of 8,
        # each lane adding into a sum of its own, as reduce kernels do (else the sum, added in
        # memory, keeps the whole loop scalar: exp and sin one point at a time)
        view.lanes = bool(view.sums) and not view.fails and all(t.size == "1" for t in view.sums) and \
            all(p.kind in ("map", "accumulate") and not p.loops for p in view.parts)
        inner = " + ".join(self.size(self.work(p), p) for p in k.parts)
        view.omp = self.omp(f"{paren(view.loop.extent)} * ({inner})", view.fails or view.guards)
        view.groups = self.row_groups(view, inner)

    @staticmethod
    def row_groups(view, inner: str) -> str | None:
        """The size of a fused kernel's groups of points (templates/c/kernels.c.j2, row_groups),
        or None to run each point's parts in turn: grouped when a part that loops over nothing
        can run in SIMD lanes across points (a per-row formula) beside parts with loops."""
        for p in view.parts:
            p.row_simd = p.kind == "map" and not p.loops and not p.fails and not getattr(p, "guards", False)
        if view.lanes or view.fails or view.guards or view.guard_sums or \
                not any(p.row_simd for p in view.parts) or all(not p.loops for p in view.parts):
            return None
        return f"({inner}) <= TDSL_ROW_GROUP_WORK ? TDSL_ROW_GROUP : 1"

    def guard_sums(self, body: Body) -> list:
        """The NaN guard's per-lane sums a body adds into (their C type and code)."""
        return [SimpleNamespace(code=code, ctype=self.dialect.ctype(dtype)) for code, dtype in body.guard_sums]

    def _accumulation(self, part, name: str) -> SimpleNamespace:
        """A summing part: at each point, its value is added into this chunk's block of sums."""
        body = self.body()
        if not part.loops:   # (else its SIMD loop keeps `err`: see `kernel`)
            body.guard_mode = "sums"
        result = body.value(part.value)
        vector = part.loops and not body.fails
        view = SimpleNamespace(kind="accumulate", comment=kernel_comment(part.origin),
                               line=line_directive(part.origin.loc), loops=self.loops(part.loops),
                               omp=None, simd="TDSL_OMP(simd)" if vector else None, body=body.lines)
        view.update = f"{name}[{body.index(part.out_index)}] += {result};"
        body.finish_guards()
        view.guard_sums = self.guard_sums(body)
        view.fails = body.fails or body.guards
        view.strict, view.guards = body.fails, body.guards
        view.guard_type = self.dialect.ctype(body.guard_type)
        return view


def with_err(pragma: str | None) -> str | None:
    """An OpenMP pragma (`TDSL_OMP(...)`) that also max-reduces `err` (the NaN guard's checks)."""
    if not pragma or "reduction(max: err)" in pragma:
        return pragma
    return pragma[:-1] + " reduction(max: err))"
