"""The host side of the opencl target as plain data: what to allocate, check and launch, per function.

A plan holds only strings, numbers, lists and dicts, so the same plan drives the
runtime inside tdsl and is written as a literal into the standalone OUT.py. Sizes
are Python expressions over `S`, the dict of size-variable values (`S['n'] * 2`).
"""
from __future__ import annotations

from tdsl.dims import Dim, FloorDivAtom, shape_size

from .kernels import FunctionIR, ModuleIR
from .opencl_render import KIND_OF, kernel_name, kernel_nodes, strip_reduction, vector_width


def program_and_plan(module: ModuleIR) -> tuple[str, dict]:
    """The OpenCL program text of a lowered module and the host plan that runs it."""
    from .opencl_render import render_program
    source, kernel_args = render_program(module)
    return source, module_plan(module, source, kernel_args)


def module_plan(module: ModuleIR, source: str, kernel_args: dict[str, list[list]]) -> dict:
    """Every function's plan, the module's error messages and whether it needs f64.

    `kernel_args` holds the argument list of each kernel (see opencl_render.render_program).
    """
    kernels = source.split("__kernel", 1)[-1] if "__kernel" in source else ""
    return {
        "functions": {fn.name: function_plan(fn, kernel_args[fn.name]) for fn in module.functions},
        "errors": [error_plan(e) for e in module.errors],
        "uses_f64": "double" in kernels,
    }


def error_plan(info) -> list:
    """[message, extent]: the message with its .tdsl place; `{extent}` is filled in when raised."""
    message = f"{info.loc}: {info.message}" if info.loc else info.message
    return [message, py_dim(info.extent) if info.extent is not None else None]


def function_plan(fn: FunctionIR, kernel_args: list[list]) -> dict:
    alloc = dict(fn.alloc_errors)   # buffer name -> error code of a failed allocation
    first_seen: dict[str, list[int]] = {}
    for i, p in enumerate(fn.params):
        for axis, d in enumerate(p.shape):
            if not d.is_const and d.terms == (((str(d),), 1),):
                first_seen.setdefault(str(d), [i, axis])
    return {
        "name": fn.name,
        "signature": fn.signature,
        "size_vars": list(fn.size_vars),
        "first_seen": first_seen,
        "params": [{"name": p.name, "dtype": p.dtype, "shape": [py_dim(d) for d in p.shape],
                    "alloc": alloc.get(f"param {p.name}", 1)} for p in fn.params],
        "outputs": [{"dtype": o.dtype, "shape": [py_dim(d) for d in o.shape], "alloc": alloc.get(o.name, 1)}
                    for o in fn.outputs],
        "temps": [{"dtype": t.dtype, "count": py_dim(shape_size(t.shape)), "alloc": alloc.get(t.name, 1)}
                  for t in fn.temps],
        "limits": [[[py_dim(d) for d in lim.shape], lim.itemsize, lim.error] for lim in fn.limits],
        "checks": [[check_condition(c.conditions), c.error] for c in fn.checks],
        "launches": [launch_plan(k, kernel_name(fn, i), args)
                     for i, (k, args) in enumerate(zip(fn.kernels, kernel_args))],
        "fails": any(["err"] in args for args in kernel_args),
    }


def launch_plan(k, name: str, args: list[list]) -> dict:
    """The kernel, its arguments, its kind and the counts that size its NDRange."""
    count = lambda loops: py_dim(shape_size(tuple(l.extent for l in loops)))  # noqa: E731
    kind = KIND_OF[k.kind]
    if kind == "map":
        width = vector_width(k)
        total = count(k.loops)
        counts = [total if width == 1 else f"({total} + {width - 1}) // {width}"]
        if width == 1 and k.loops:   # work-items per run of the last axis: outer points, last extent
            counts = [count(k.loops[:-1]), py_dim(k.loops[-1].extent)]
    elif kind == "reduce":
        counts = [count(k.loops), count(k.reduce_loops)]
    else:
        counts = [py_dim(k.col.extent), py_dim(k.loops[-1].extent), count(k.loops[:-1])]
    launch = {"kernel": name, "kind": kind, "counts": counts, "args": args}
    if kind == "map" and width > 1:
        launch["chunked"] = True   # a work-item takes TDSL_MAP_CHUNK of the counted vectors
    elif kind == "map" and k.loops:
        launch["runs"] = True      # a work-item takes a run of TDSL_MAP_RUN elements of the last axis
    elif strip_reduction(k):
        launch["strip"] = True     # on a CPU, a work-item takes TDSL_REDUCE_STRIP neighbouring results
    if kind != "matmul":
        launch["local_max"] = local_limit(len(kernel_nodes(k)) * 8 * (width if kind == "map" else 1))
    return launch


STACK_BUDGET = 1 << 20   # bytes of per-work-item values one work-group may hold (PoCL: on a thread's stack)


def local_limit(per_item: int) -> int:
    """The largest power-of-two work-group whose work-items' values fit in STACK_BUDGET."""
    limit = 1
    while limit < 4096 and 2 * limit * per_item <= STACK_BUDGET:
        limit *= 2
    return limit


def check_condition(conditions) -> str:
    """A SizeCheck as a Python condition (the error happens when it holds)."""
    ops = {"<0": "< 0", "!=0": "!= 0", "==0": "== 0"}
    return " and ".join(f"({py_dim(d)}) {ops[rel]}" for d, rel in conditions)


def py_dim(d: Dim) -> str:
    """A size as a Python expression over the dict `S` of size variables (parenthesised when compound)."""
    if d.is_const:
        return f"({d.const})" if d.const < 0 else str(d.const)
    pieces = []
    for mono, coef in d.terms:
        factors = [f"S[{a!r}]" if isinstance(a, str) else _floordiv(a) for a in mono]
        if coef != 1 or not factors:
            factors.insert(0, str(coef))
        pieces.append(" * ".join(factors))
    text = " + ".join(pieces)
    return f"({text})" if " " in text else text


def _floordiv(atom: FloorDivAtom) -> str:
    return f"(({py_dim(atom.expr)}) // {atom.divisor})"
