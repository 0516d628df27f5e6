"""Rendering: the kernel IR of a module as C text (a .c file and its header), via templates/c.

Templates hold the structure (file, functions, loop nests, pragmas); this module
prepares for each kernel its loops and the statements of its expressions
(`cexpr.Body`), reading the op table for every operation.
"""
from __future__ import annotations

import re
from functools import lru_cache
from types import SimpleNamespace

import jinja2

from tdsl.dims import shape_size
from tdsl.dtypes import kind
from tdsl.ops import OPS

from .cexpr import C, Body, Dialect, Names, c_comment, c_string, literal, paren
from .kernels import ErrorInfo, FunctionIR, ModuleIR


@lru_cache(maxsize=None)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("tdsl.templates", "c"),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.globals["pad"] = lambda depth: "    " * depth
    return env


def render_module(module: ModuleIR, standalone_header: bool = False) -> tuple[str, str | None]:
    """The C source of a module, and its header when asked for."""
    from tdsl import __version__
    functions = [FunctionView(fn, module.prefix).view() for fn in module.functions]
    context = dict(version=__version__, file=c_comment(module.file), prefix=module.prefix,
                   functions=functions, errors=error_views(module.errors),
                   consts=[c for fn in functions for c in fn.consts])
    source = environment().get_template("module.c.j2").render(**context)
    header = None
    if standalone_header:
        guard = re.sub(r"\W", "_", module.prefix).upper() + "_H"
        header = environment().get_template("header.h.j2").render(guard=guard, **context)
    return source, header


def error_message(info: ErrorInfo) -> str:
    """The message of an error as the C code reports it (sizes shown symbolically)."""
    message = info.message.replace("{extent}", str(info.extent)) if info.extent is not None else info.message
    return f"{info.loc}: {message}" if info.loc else message


def error_views(errors) -> list:
    return [SimpleNamespace(code=i + 1, text=c_string(error_message(e))) for i, e in enumerate(errors)]


def kernel_comment(origin) -> str:
    where = ""
    if origin.loc is not None:
        where = f" -- {origin.loc.file}:{origin.loc.line}"
        if origin.loc.source_line.strip():
            where += f": {origin.loc.source_line.strip()}"
    return c_comment(origin.label + where)


class FunctionView:
    """What the module template needs to write one function."""

    def __init__(self, fn: FunctionIR, prefix: str, dialect: Dialect = C):
        self.fn = fn
        self.prefix = prefix
        self.dialect = dialect
        self.names = Names(fn.size_vars, fn.params, fn.name)
        self.counter = [0]

    def view(self) -> SimpleNamespace:
        fn, names = self.fn, self.names
        kernels = [self.kernel(k) for k in fn.kernels]
        arrays = [self.temp(t) for t in fn.temps if not t.is_scalar]
        checks = [SimpleNamespace(cond=self.condition(c), code=c.error) for c in fn.checks]
        used_text = " ".join([str({f: v for f, v in vars(k).items() if f != "comment"}) for k in kernels]
                             + [c.cond for c in checks] + [a.count for a in arrays])
        user = [names.size(v) for v in fn.size_vars] + [names.buffer(p) for p in fn.params]
        unused = [u for u in user if not re.search(rf"\b{re.escape(u)}\b", used_text)]
        return SimpleNamespace(
            symbol=f"{self.prefix}_{fn.name}", signature=c_comment(fn.signature),
            where=str(fn.loc) if fn.loc else "", params=self.params(True), decl_params=self.params(False),
            unused=unused, scalars=[self.temp(t) for t in fn.temps if t.is_scalar], arrays=arrays,
            checks=checks, kernels=kernels, label=bool(arrays) or any(k.fails for k in kernels),
            consts=[self.const(c) for c in fn.consts])

    def params(self, definition: bool) -> list[str]:
        restrict = "restrict " if definition else ""
        out = [f"int64_t {self.names.size(v)}" for v in self.fn.size_vars]
        for p in self.fn.params:
            ctype = self.dialect.ctype(p.dtype)
            out.append(f"{ctype} {self.names.buffer(p)}" if p.is_scalar else
                       f"const {ctype} *{restrict}{self.names.buffer(p)}")
        out += [f"{self.dialect.ctype(o.dtype)} *{restrict}{o.name}" for o in self.fn.outputs]
        return out

    def temp(self, buf) -> SimpleNamespace:
        return SimpleNamespace(name=self.names.buffer(buf), ctype=self.dialect.ctype(buf.dtype),
                               count=self.names.dim(shape_size(buf.shape)))

    def const(self, buf) -> SimpleNamespace:
        values = [literal(v, buf.dtype) for v in buf.data] or [literal(0, buf.dtype)]
        rows = [", ".join(values[i:i + 8]) + "," for i in range(0, len(values), 8)]
        return SimpleNamespace(name=self.names.buffer(buf), ctype=self.dialect.ctype(buf.dtype),
                               count=len(values), rows=rows)

    def condition(self, check) -> str:
        ops = {"<0": "< 0", "!=0": "!= 0", "==0": "== 0"}
        return " && ".join(f"{paren(self.names.dim(d))} {ops[rel]}" for d, rel in check.conditions)

    # -- kernels ---------------------------------------------------------------------
    def kernel(self, k) -> SimpleNamespace:
        body = Body(self.names, self.counter, self.dialect)
        view = SimpleNamespace(kind=k.kind, comment=kernel_comment(k.origin),
                               loops=self.loops(k.loops), omp=None, fails=False)
        getattr(self, f"_{k.kind}")(k, body, view)
        view.fails = view.fails or body.fails
        work = list(k.loops) + list(getattr(k, "reduce_loops", ())) + (
            [k.col, k.inner] if k.kind == "matmul" else [])
        if k.loops:
            view.omp = self.omp(work, view.fails)
        return view

    def loops(self, loops) -> list:
        return [SimpleNamespace(var=l.var, extent=self.names.dim(l.extent)) for l in loops]

    def omp(self, loops, fails: bool) -> str:
        work = " * ".join(paren(self.names.dim(l.extent)) for l in loops if l.extent != 1) or "1"
        clause = f"TDSL_OMP(parallel for if ({work} > TDSL_PARALLEL_MIN)"
        return clause + (" reduction(max: err))" if fails else ")")

    def store(self, k, body: Body, value: str) -> str:
        target = self.names.buffer(k.out)
        if k.out.is_scalar and k.out.role == "temp":
            return f"{target} = {value};"
        return f"{target}[{body.index(k.out_index)}] = {value};"

    def _map(self, k, body: Body, view) -> None:
        value = body.value(k.value)
        view.body = body.lines
        view.store = self.store(k, body, value)

    def _reduce(self, k, body: Body, view) -> None:
        dtype = k.value.dtype
        init, combine = OPS[k.op].c
        fields = body.type_fields(dtype)
        pick = lambda t: t.get(kind(dtype), t.get("any")) if isinstance(t, dict) else t  # noqa: E731
        result = body.value(k.value)
        view.body, view.result = body.lines, result
        view.reduce_loops = self.loops(k.reduce_loops)
        view.blocked = k.op == "sum" and kind(dtype) == "float" and bool(k.reduce_loops)
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
