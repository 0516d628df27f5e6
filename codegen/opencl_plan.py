"""The host side of the opencl target as plain data: what to allocate, check and launch, per function.

A plan holds only strings, numbers, lists and dicts, so the same plan drives the
runtime inside tdsl and is written as a literal into the standalone OUT.py. Sizes
are Python expressions over `S`, the dict of size-variable values (`S['n'] * 2`).
The launches are the module's schedule (opencl_schedule.py) written as such data: the
plan decides nothing the schedule has not.
"""
from __future__ import annotations

from tdsl.callspec import CallSpec
from tdsl.dims import Dim, FloorDivAtom, shape_size

from .kernels import FunctionIR, ModuleIR
from .opencl_schedule import Launch, ModuleSchedule, module_schedule


def program_and_plan(module: ModuleIR) -> tuple[str, dict]:
    """The OpenCL program text of a lowered module and the host plan that runs it (one schedule)."""
    from .opencl_render import render_program
    source, schedule = render_program(module, module_schedule(module))
    return source, module_plan(module, schedule)


def module_plan(module: ModuleIR, schedule: ModuleSchedule) -> dict:
    """Every function's plan, the module's error messages and whether it needs f64."""
    return {
        "functions": {fn.name: function_plan(fn, call, schedule)
                      for fn, call in zip(module.functions, module.calls)},
        "errors": [[e.text(), py_dim(e.extent) if e.extent is not None else None, e.value,
                    e.bound.variables() if e.bound is not None else []] for e in module.errors],
        "uses_f64": schedule.uses_f64,
    }


def function_plan(fn: FunctionIR, call: CallSpec, schedule: ModuleSchedule) -> dict:
    """The function's call (its CallSpec as data: what OUT.py binds with) and its buffers and launches."""
    alloc = dict(fn.alloc_errors)   # buffer name -> error code of a failed allocation
    return {
        "name": call.name,
        "signature": call.signature,
        "size_vars": list(call.size_vars),
        "first_seen": {v: [i, axis] for v, i, axis in call.first_seen},
        "params": [{"name": p.name, "dtype": p.dtype, "shape": [py_dim(d) for d in p.shape],
                    "alloc": alloc.get(f"param {p.name}", 1)} for p in call.params],
        "outputs": [{"dtype": dtype, "shape": [py_dim(d) for d in shape], "alloc": alloc.get(o.name, 1)}
                    for o, (shape, dtype) in zip(fn.outputs, call.outputs)],
        **work_plan(fn, steps(fn, schedule)),
    }


def work_plan(fn: FunctionIR, launches: list[dict]) -> dict:
    """What a function or a body allocates, checks and launches."""
    alloc = dict(fn.alloc_errors)
    return {
        "temps": [{"dtype": t.dtype, "count": py_dim(shape_size(t.shape)), "alloc": alloc.get(t.name, 1)}
                  for t in fn.temps],
        "limits": [[[py_dim(d) for d in lim.shape], lim.itemsize, lim.error] for lim in fn.limits],
        "checks": [[check_condition(c.conditions), c.error] for c in fn.checks],
        "launches": launches,
        "fails": fails(launches),
    }


def steps(fn: FunctionIR, schedule: ModuleSchedule) -> list[dict]:
    """What the host does for each kernel of `fn`: a launch, or a loop or branch it runs itself."""
    return [region_plan(fn, k, schedule) if launch is None else launch_plan(launch)
            for k, launch in zip(fn.kernels, schedule.functions[fn.name])]


def fails(launches: list[dict]) -> bool:
    """Whether some kernel (of the function, or of a body of its loops and branches) can fail."""
    return any(any(fails(b["launches"]) for b in l["bodies"]) if "region" in l else l["fails"]
               for l in launches)


def region_plan(fn: FunctionIR, k, schedule: ModuleSchedule) -> dict:
    """A loop or branch (codegen/kernels.py RegionKernel) as data: the host runs it, calling its
    bodies' launches per iteration (opencl_runtime.FunctionRunner._region)."""
    def ref(item):
        if item is None:
            return None
        if not hasattr(item, "role"):   # a literal scalar
            return ["const", item.value, item.dtype]
        if item.role == "const":        # a constant array (its flat values)
            return ["array", list(item.data), item.dtype]
        group = {"param": fn.params, "output": fn.outputs, "temp": fn.temps}[item.role]
        return [item.role, next(i for i, b in enumerate(group) if b.name == item.name)]
    return {"region": k.region, "step": k.step, "index": k.index, "index_param": k.index_param,
            "inputs": [ref(x) for x in k.inputs], "results": [ref(b) for b in k.results],
            "scratch": [ref(b) for b in k.scratch], "bodies": [body_plan(b, schedule) for b in k.bodies]}


def body_plan(fn: FunctionIR, schedule: ModuleSchedule) -> dict:
    """A body's buffers, checks and launches (its parameters and results are the loop's buffers)."""
    return {
        "size_vars": list(fn.size_vars),
        "outputs": [{"dtype": o.dtype, "count": py_dim(shape_size(o.shape))} for o in fn.outputs],
        **work_plan(fn, steps(fn, schedule)),
    }


def launch_plan(launch: Launch) -> dict:
    """The kernel, its arguments, its kind and the counts that size its NDRange (see Launch)."""
    plan = {"kernel": launch.name, "kind": launch.kind, "counts": [py_dim(c) for c in launch.counts],
            "args": [list(arg) for arg in launch.args]}
    if launch.width > 1:
        plan["width"] = launch.width   # a map of vectors: counts[0] elements, `width` per vector ...
        plan["chunked"] = True         # ... and a work-item takes TDSL_MAP_CHUNK of them
    elif launch.runs:
        plan["runs"] = True      # a work-item takes a run of TDSL_MAP_RUN elements of the last axis
    elif launch.strip:
        plan["strip"] = True     # on a CPU, a work-item takes TDSL_REDUCE_STRIP neighbouring results
    if launch.local_max is not None:
        plan["local_max"] = launch.local_max
    if launch.serial:
        plan["serial"] = True    # a work-item per free point runs the other points in order
    plan["fails"] = launch.fails
    return plan


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
