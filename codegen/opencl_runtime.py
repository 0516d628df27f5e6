"""Host code of the opencl target: choose a device, build a program, launch a function's kernels.

It needs only NumPy, pyopencl and codegen/host.py, never the rest of tdsl: tdsl's
opencl backend uses it as is, and `tdslc build -t opencl` copies its text (and
host.py's) into OUT.py, so both run the same host code. A function is described by a plan (codegen/opencl_plan.py): plain data
naming its buffers, size checks and kernel launches.

NumPy arguments give NumPy results: inputs and results of 64 KiB or more are wrapped
in place (CL_MEM_USE_HOST_PTR, no copy on a CPU device), smaller ones copied, and the
call waits for its kernels.
When any argument is a `pyopencl.array.Array`, results are device arrays and the
call returns without waiting (unless a kernel can fail, when it reads the flag).
"""
from __future__ import annotations

import os
import threading
import warnings

import numpy as np

try:   # result recycling and size checks, shared with the c target's call path
    from .host import Spare, too_big
except ImportError:   # in OUT.py, which hands in codegen/host.py as `_tdsl_host` (templates/opencl/module.py.j2)
    Spare, too_big = _tdsl_host.Spare, _tdsl_host.too_big  # noqa: F821

try:
    import pyopencl as cl
    import pyopencl.array as cl_array
    import pyopencl.tools as cl_tools
except ImportError:   # reported as Unavailable when a program is built
    cl = cl_array = cl_tools = None

DTYPES = {"bool": np.dtype(np.bool_), "i32": np.dtype(np.int32), "i64": np.dtype(np.int64),
          "f32": np.dtype(np.float32), "f64": np.dtype(np.float64)}
DEVICE_ARRAYS = (cl_array.Array,) if cl_array is not None else ()
REDUCE_WG = 256     # at most TDSL_WG in the program
MAP_WG = 128
SMALL_RESULT = 1 << 16   # bytes: smaller NumPy arguments and results are copied, larger ones wrapped
MAP_CHUNK_CPU = 16   # vectors per work-item of a vector map on a CPU device
MAP_RUN_CPU = 64     # elements of the last axis per work-item of another map on a CPU device
REDUCE_LANES_CPU = 4   # work-items per output point of a reduction on a CPU device
REDUCE_STRIP_CPU = 32  # neighbouring results per work-item of a column-like reduction on a CPU device
MATMUL_STRIP_CPU = 32  # results of a row per work-item of a matmul on a CPU device


class Unavailable(Exception):
    """No pyopencl, no OpenCL platform or device, or a device that cannot run the program."""


class BuildFailed(Exception):
    """The OpenCL compiler rejected the program; the message holds its log."""


class CheckFailed(RuntimeError):
    """A call-time check failed: `code` indexes the module's error messages (from 1)."""

    def __init__(self, code: int, sizes: dict, message: str = "", value=None):
        super().__init__(message or f"error code {code}")
        self.code, self.sizes, self.value = code, sizes, value   # value: an index out of range


# -- devices ----------------------------------------------------------------------------

def choose_device():
    """TDSL_OPENCL_DEVICE ('P:D' indices or part of a name), else PYOPENCL_CTX, else the first GPU, else the first device."""
    if cl is None:
        raise Unavailable("pyopencl is not installed (pip install pyopencl)")
    try:
        devices = [d for p in cl.get_platforms() for d in p.get_devices()]
    except cl.Error as err:
        raise Unavailable(f"no OpenCL platform is available ({err})") from None
    if not devices:
        raise Unavailable("no OpenCL device is available")
    wanted = os.environ.get("TDSL_OPENCL_DEVICE", "").strip()
    if wanted:
        return _named_device(wanted)
    if os.environ.get("PYOPENCL_CTX"):
        return cl.create_some_context(interactive=False).devices[0]
    gpus = [d for d in devices if d.type & cl.device_type.GPU]
    return (gpus or devices)[0]


def _named_device(wanted: str):
    platforms = cl.get_platforms()
    numbers = wanted.split(":")
    if all(n.isdigit() for n in numbers) and len(numbers) <= 2:
        p, d = int(numbers[0]), int(numbers[1]) if len(numbers) > 1 else 0
        if p < len(platforms) and d < len(platforms[p].get_devices()):
            return platforms[p].get_devices()[d]
    for platform in platforms:
        for device in platform.get_devices():
            if wanted.lower() in f"{platform.name} {device.name}".lower():
                return device
    known = "; ".join(f"{i}:{j} {p.name} / {d.name}" for i, p in enumerate(platforms)
                      for j, d in enumerate(p.get_devices()))
    raise Unavailable(f"TDSL_OPENCL_DEVICE={wanted!r} matches no OpenCL device (there are: {known})")


_QUEUES: dict = {}


def default_queue():
    """The command queue of the chosen device (one context and in-order queue per process)."""
    device = choose_device()
    if device not in _QUEUES:
        _QUEUES[device] = cl.CommandQueue(cl.Context([device]))
    return _QUEUES[device]


def profiling_queue():
    """An in-order queue with profiling enabled, in the chosen device's context: a profiling
    build's kernels run on it, and each kernel's event then holds its start and end."""
    base = default_queue()
    key = ("profiling", base.device)
    if key not in _QUEUES:
        _QUEUES[key] = cl.CommandQueue(base.context, properties=cl.command_queue_properties.PROFILING_ENABLE)
    return _QUEUES[key]


def has_fp64(device) -> bool:
    return "cl_khr_fp64" in device.extensions.split() or bool(getattr(device, "double_fp_config", 0))


# -- programs ----------------------------------------------------------------------------

class Program:
    """A built program on one queue, with the work-group sizes its launches use."""

    def __init__(self, source: str, uses_f64: bool, build=None, queue=None, debug: bool = False):
        self.queue = queue or default_queue()
        self.context = self.queue.context
        device = self.device = self.queue.device
        if uses_f64 and not has_fp64(device):
            raise Unavailable(f"this program uses f64, but the OpenCL device '{device.name.strip()}' "
                              "has no double precision (cl_khr_fp64)")
        largest = device.max_work_group_size
        self.wg = _pow2_floor(min(REDUCE_WG, largest))
        self.tile = 16 if largest >= 256 else 8 if largest >= 64 else 4 if largest >= 16 else 1
        # A CPU device (PoCL) runs a work-group's work-items one after another: a work-item of a
        # map there takes a stretch of elements, which saves scheduling work-groups.
        layout = os.environ.get("TDSL_OPENCL_LAYOUT", "").strip().lower()   # "cpu" or "gpu": for tests
        cpu = layout == "cpu" if layout in ("cpu", "gpu") else bool(device.type & cl.device_type.CPU)
        self.map_chunk, self.map_run = (MAP_CHUNK_CPU, MAP_RUN_CPU) if cpu else (1, 1)
        # Work-items that share one output point of a reduction: a GPU wants them many (they read
        # neighbouring elements at once); a CPU runs them one after another, each striding
        # through the reduced elements, then meets them in a tree of barriers: few pay there.
        self.max_lanes = REDUCE_LANES_CPU if cpu else REDUCE_WG
        self.reduce_strip = REDUCE_STRIP_CPU if cpu else 1   # column-like reductions, see kernels.cl.j2
        # Matmul: tiles through local memory on a GPU; strips of a row, no barriers, on a CPU.
        self.matmul_strip = MATMUL_STRIP_CPU if cpu else 1
        options = [f"-DTDSL_WG={self.wg}", f"-DTDSL_TILE={self.tile}", f"-DTDSL_MAP_CHUNK={self.map_chunk}",
                   f"-DTDSL_MAP_RUN={self.map_run}", f"-DTDSL_MATMUL_STRIP={self.matmul_strip}",
                   f"-DTDSL_REDUCE_STRIP={self.reduce_strip}", "-w"]   # -w: no notes on stderr
        if device.single_fp_config & cl.device_fp_config.CORRECTLY_ROUNDED_DIVIDE_SQRT:
            options.append("-cl-fp32-correctly-rounded-divide-sqrt")
        if debug:   # a debug build (docs/debugging.md): kernels with line tables, unoptimized
            options += ["-g", "-cl-opt-disable"]
        # `build(context, device, source, options)`: tdsl's binary cache (opencl_backend), or a
        # build from source
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.program = (build or build_from_source)(self.context, device, source, options)
        except cl.Error as err:
            raise BuildFailed(str(err)) from None
        self.kernels = {k.function_name: k for k in self.program.all_kernels()}
        self.local_sizes = {name: _pow2_floor(min(
            k.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, device), largest))
            for name, k in self.kernels.items()}
        self.dummy = cl.Buffer(self.context, cl.mem_flags.READ_WRITE, 8)   # stands for empty arrays
        # Device results and temporaries come from a pool: memory freed by one call serves the
        # next (fresh memory costs page faults, as much as a memory-bound kernel's own time).
        self.pool = cl_tools.MemoryPool(cl_tools.ImmediateAllocator(self.queue))
        self.lock = threading.Lock()   # kernel objects hold their arguments: one call at a time


def build_from_source(context, device, source: str, options: list[str], cache_dir: str | None = None):
    """A program built from `source` (PoCL compiles each kernel's work-group function when it is
    first enqueued, or when the program's binary is asked for: program_binary). pyopencl keeps
    binaries in `cache_dir`, except for drivers that cache builds themselves (PoCL, Nvidia)."""
    return _on_big_stack(lambda: cl.Program(context, source).build(options=options, cache_dir=cache_dir))


def program_binary(program) -> bytes | None:
    """The device binary of a built program of one device (PoCL's holds every kernel's compiled
    work-group function, which asking for it builds), or None when the driver gives none."""
    try:
        (binary,) = program.get_info(cl.program_info.BINARIES)
    except (cl.Error, ValueError):
        return None
    return bytes(binary) if binary else None


def program_from_binary(context, device, binary: bytes, options: list[str]):
    """The program built from a binary `program_binary` returned; None when the driver refuses it
    (another driver version, a damaged binary): the caller then builds from source."""
    try:
        return cl.Program(context, [device], [binary]).build(options=options)
    except cl.Error:
        return None


def binary_identity(device, options: list[str]) -> tuple[str, ...]:
    """What a program binary depends on besides its source: the platform, the device and its
    driver version, the build options (pyopencl's too) and the PoCL settings that change code."""
    platform = device.platform
    pocl = sorted(f"{k}={v}" for k, v in os.environ.items()
                  if k.startswith("POCL_") and k not in ("POCL_CACHE_DIR", "POCL_DEBUG", "POCL_TRACING"))
    return (platform.name, platform.vendor, platform.version, device.name, device.vendor, device.version,
            device.driver_version, str(device.type), " ".join(options), os.environ.get("PYOPENCL_BUILD_OPTIONS", ""),
            cl.VERSION_TEXT, *pocl)


BUILD_STACK = 1 << 29   # bytes; address space only, pages are committed as the compiler uses them
_stack_lock = threading.Lock()


def _on_big_stack(work):
    """`work()` on a thread with a large stack: PoCL's compiler recurses along a long dependency
    chain (the gradient of 2,000 nested sin overflowed the 8 MB main stack: a segfault)."""
    result: dict = {}

    def run():
        try:
            result["value"] = work()
        except BaseException as err:   # re-raised on the caller's thread
            result["error"] = err
    with _stack_lock:
        try:
            old = threading.stack_size(BUILD_STACK)
        except (ValueError, RuntimeError):   # no settable stack size here: build where we are
            return work()
        try:
            thread = threading.Thread(target=run, name="tdsl-opencl-build")
            thread.start()
        finally:
            threading.stack_size(old)
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def _pow2_floor(n: int) -> int:
    p = 1
    while p * 2 <= n:
        p *= 2
    return p


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def allocating(code: int, sizes: dict, allocate, *args):
    """`allocate(*args)`, or CheckFailed(code) when the memory cannot be had (NumPy's MemoryError,
    pyopencl's errors for a buffer the device cannot hold)."""
    try:
        return allocate(*args)
    except (MemoryError, ValueError, OverflowError) as err:
        raise CheckFailed(code, sizes, str(err)) from None
    except Exception as err:
        if cl is not None and isinstance(err, cl.Error):
            raise CheckFailed(code, sizes, str(err)) from None
        raise


_CODE: dict = {}


def evaluate(expr: str, sizes: dict) -> int:
    """A plan's size arithmetic (a Python expression over S[...]) for these sizes."""
    code = _CODE.get(expr)
    if code is None:
        code = _CODE[expr] = compile(expr, "<tdsl size>", "eval")
    return int(eval(code, {"__builtins__": {}}, {"S": sizes}))  # plans hold size arithmetic only


# -- calls ---------------------------------------------------------------------------------

class FunctionRunner:
    """Runs one function of a program: arrays in parameter order and the size variables in."""

    # A profiling run (tdsl/profile.py) sets `events` to a list: each kernel launched appends
    # (the function's step it belongs to, the call's number, its event, and inside loops and
    # branches where: (id of the body's plan, the run's number, step in that body) per level,
    # outermost first).
    events = None
    step = calls = runs = 0
    where: tuple = ()

    def __init__(self, program: Program, plan: dict):
        self.program, self.plan = program, plan
        self.dtypes = [DTYPES[p["dtype"]] for p in plan["params"]]
        self.spares = [Spare() for _ in plan["outputs"]]

    def __call__(self, arrays: list, sizes: dict) -> list:
        for dims, itemsize, code in self.plan.get("limits", ()):
            if too_big([evaluate(d, sizes) for d in dims], itemsize):
                raise CheckFailed(code, sizes)
        for condition, code in self.plan["checks"]:
            if evaluate(condition, sizes):
                raise CheckFailed(code, sizes)
        device = any(isinstance(a, DEVICE_ARRAYS) for a in arrays)
        prog, plan = self.program, self.plan
        results = [allocating(o.get("alloc", 1), sizes, self._output, o, spare, sizes, device)
                   for o, spare in zip(plan["outputs"], self.spares)]
        flag = np.zeros(3, np.int32)   # the first error's code, and the index it met (two halves)
        values = {   # what a kernel argument ["role", key] refers to
            "size": {v: np.int64(sizes[v]) for v in plan["size_vars"]},
            "param": [allocating(p.get("alloc", 1), sizes, self._input, a, dtype, device)
                      for a, dtype, p in zip(arrays, self.dtypes, plan["params"])],
            "output": [buffer for _, buffer in results],
            "temp": [allocating(t.get("alloc", 1), sizes, self._buffer,
                                evaluate(t["count"], sizes) * DTYPES[t["dtype"]].itemsize) for t in plan["temps"]],
            "err": cl.Buffer(prog.context, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=flag)
            if plan["fails"] else None,
        }
        with prog.lock:
            self.calls, self.where = self.calls + 1, ()
            self._run(plan["launches"], values, sizes, top=True)
        if plan["fails"]:
            cl.enqueue_copy(prog.queue, flag, values["err"])
            if flag[0]:
                raise CheckFailed(int(flag[0]), sizes, value=int(flag[1:].view(np.int64)[0]))
        finished = [self._finish(result, buffer) for result, buffer in results]
        if not device:
            for spare, result in zip(self.spares, finished):
                spare.keep(result)
        return finished

    def _run(self, launches: list, values: dict, sizes: dict, top: bool = False) -> None:
        for step, launch in enumerate(launches):
            if top:
                self.step = step
            elif self.events is not None:
                self.where = self.where[:-1] + (self.where[-1][:2] + (step,),)
            if "region" in launch:
                self._region(launch, values, sizes)
                continue
            args = [values["err"] if ref == ["err"] else values[ref[0]][ref[1]] for ref in launch["args"]]
            self._launch(launch, args, sizes)

    # -- loops and branches (section 11): the host runs them, enqueueing each body's kernels --
    def _region(self, launch: dict, values: dict, sizes: dict) -> None:
        """A for loop enqueues its body's kernels per iteration without waiting (its bounds are read
        once); a while loop reads its condition back per iteration; a branch reads its condition."""
        queue = self.program.queue

        def get(ref):
            if ref is None:
                return None
            if ref[0] in ("const", "array"):   # a literal, or a constant array (a loop's first value)
                return self._scalar_buffer(ref[1], ref[2])
            return values[ref[0]][ref[1]]
        kind, bodies = launch["region"], launch["bodies"]
        inputs = [get(r) for r in launch["inputs"]]
        results = [get(r) for r in launch["results"]]
        if kind == "if":
            body = bodies[0] if self._read(inputs[0], "bool") else bodies[1]
            self._body(body, inputs[1:], results, sizes, values["err"])
            return
        lead = 2 if kind == "for" else 0
        count = len(results)
        cur = list(results)
        nxt = [get(r) if r is not None else c for r, c in zip(launch["scratch"], cur)]
        captured = inputs[lead + count:]
        for buf, init, spec in zip(cur, inputs[lead:lead + count], bodies[-1]["outputs"]):
            nbytes = evaluate(spec["count"], sizes) * DTYPES[spec["dtype"]].itemsize
            if nbytes:
                cl.enqueue_copy(queue, buf, init, byte_count=nbytes)

        def swap():
            for j, r in enumerate(launch["scratch"]):
                if r is not None:
                    cur[j], nxt[j] = nxt[j], cur[j]
        if kind == "for":
            start, stop = self._read(inputs[0], "i64"), self._read(inputs[1], "i64")
            for i in range(start, stop, launch["step"]):
                if launch["index_param"]:
                    self._body(bodies[0], [self._scalar_buffer(i, "i64")] + cur + captured, nxt, sizes,
                               values["err"])
                else:
                    self._body(bodies[0], cur + captured, nxt, {**sizes, launch["index"]: i}, values["err"])
                swap()
        else:
            flag = self._buffer(1)
            while True:
                self._body(bodies[0], cur + captured, [flag], sizes, values["err"])
                if not self._read(flag, "bool"):
                    break
                self._body(bodies[1], cur + captured, nxt, sizes, values["err"])
                swap()
        for buf, result, spec in zip(cur, results, bodies[-1]["outputs"]):
            nbytes = evaluate(spec["count"], sizes) * DTYPES[spec["dtype"]].itemsize
            if buf is not result and nbytes:
                cl.enqueue_copy(queue, result, buf, byte_count=nbytes)

    def _body(self, plan: dict, params: list, outputs: list, sizes: dict, err) -> None:
        """One run of a loop or branch body: its checks, its temporaries, its kernels."""
        for dims, itemsize, code in plan["limits"]:
            if too_big([evaluate(d, sizes) for d in dims], itemsize):
                raise CheckFailed(code, sizes)
        for condition, code in plan["checks"]:
            if evaluate(condition, sizes):
                raise CheckFailed(code, sizes)
        temps = [allocating(t.get("alloc", 1), sizes, self._buffer,
                            evaluate(t["count"], sizes) * DTYPES[t["dtype"]].itemsize) for t in plan["temps"]]
        values = {"size": {v: np.int64(sizes[v]) for v in plan["size_vars"]}, "param": params,
                  "output": outputs, "temp": temps, "err": err}
        if self.events is None:
            self._run(plan["launches"], values, sizes)
            return
        outer = self.where   # a profiling run: where each kernel of the body is
        self.runs += 1
        self.where = outer + ((id(plan), self.runs, 0),)
        try:
            self._run(plan["launches"], values, sizes)
        finally:
            self.where = outer

    def _scalar_buffer(self, value, dtype: str):
        """A read-only device buffer holding `value` (a scalar, or a constant array's flat values)."""
        data = np.array(value if isinstance(value, list) else [value], DTYPES[dtype])
        return cl.Buffer(self.program.context, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR, hostbuf=data)

    def _read(self, buffer, dtype: str):
        """A scalar's value on the host (waits for the kernels that compute it)."""
        out = np.zeros(1, DTYPES[dtype])
        cl.enqueue_copy(self.program.queue, out, buffer, is_blocking=True)
        return out[0].item()

    def _buffer(self, nbytes: int, flags=None, hostbuf=None):
        if nbytes == 0:
            return self.program.dummy
        if hostbuf is None:
            return self.program.pool.allocate(nbytes)
        return cl.Buffer(self.program.context, flags, 0, hostbuf=hostbuf)

    def _input(self, value, dtype, device: bool):
        if isinstance(value, DEVICE_ARRAYS):
            return self._device_input(value, dtype)
        arr = np.ascontiguousarray(value, dtype)
        mf = cl.mem_flags
        # Copied as the buffer is made when the call may return before its kernels run, or when the
        # array is small (a copy costs less than wrapping it); otherwise wrapped in place.
        if device or not arr.flags.writeable or arr.nbytes < SMALL_RESULT:
            return self._buffer(arr.nbytes, mf.READ_ONLY | mf.COPY_HOST_PTR, arr)
        return self._buffer(arr.nbytes, mf.READ_ONLY | mf.USE_HOST_PTR, arr)

    def _device_input(self, value, dtype):
        queue = self.program.queue
        if value.context != self.program.context:
            value = cl_array.to_device(queue, np.ascontiguousarray(value.get(), dtype))
        if value.dtype != dtype:
            value = value.astype(dtype, queue=queue)
        if value.queue is not None and value.queue != queue:
            value.queue.finish()   # its writes come first
        if value.size == 0:
            return self.program.dummy
        if not value.flags.c_contiguous:   # a strided view: gathered through the host
            base = np.empty(value.base_data.size, np.uint8)
            cl.enqueue_copy(queue, base, value.base_data)
            view = np.ndarray(value.shape, dtype, base, value.offset, value.strides)
            value = cl_array.to_device(queue, np.ascontiguousarray(view))
        if value.offset:
            copy = cl_array.empty(queue, value.shape, dtype)
            cl.enqueue_copy(queue, copy.data, value.base_data, src_offset=value.offset, byte_count=value.nbytes)
            value = copy
        return value.data

    def _output(self, spec: dict, spare: "Spare", sizes: dict, device: bool):
        shape = tuple(evaluate(d, sizes) for d in spec["shape"])
        dtype = DTYPES[spec["dtype"]]
        if device:
            arr = cl_array.empty(self.program.queue, shape, dtype, allocator=self.program.pool)
            return arr, (arr.data if arr.size else self.program.dummy)
        arr = spare.take(shape, dtype)
        if arr.nbytes < SMALL_RESULT:   # read back with one copy: fewer commands than map and unmap
            return arr, self._buffer(arr.nbytes)
        return arr, self._buffer(arr.nbytes, cl.mem_flags.WRITE_ONLY | cl.mem_flags.USE_HOST_PTR, arr)

    def _finish(self, result, buffer):
        """A NumPy result is complete once its buffer is mapped (which waits for the kernels)."""
        if isinstance(result, np.ndarray) and 0 < result.nbytes < SMALL_RESULT:
            cl.enqueue_copy(self.program.queue, result, buffer, is_blocking=True)
        elif isinstance(result, np.ndarray) and result.size:
            queue = self.program.queue
            mapped, _ = cl.enqueue_map_buffer(queue, buffer, cl.map_flags.READ, 0, (result.nbytes,),
                                              np.uint8, is_blocking=True)
            if mapped.ctypes.data != result.ctypes.data:   # a device that copied: take its bytes
                result.view(np.uint8).reshape(-1)[:] = mapped
            mapped.base.release(queue)
            queue.finish()
        return result

    def _launch(self, launch: dict, args: list, sizes: dict) -> None:
        prog = self.program
        kernel = prog.kernels[launch["kernel"]]
        counts = [evaluate(c, sizes) for c in launch["counts"]]
        if counts[0] <= 0 or (launch["kind"] != "reduce" and min(counts) <= 0):
            return   # no work-items (a reduction over nothing still writes its identity)
        local = min(prog.local_sizes[launch["kernel"]], launch.get("local_max", 4096))
        extra = []
        if launch["kind"] == "map":
            local = min(local, MAP_WG)
            if launch.get("serial"):   # a work-item per point of the free loops (opencl_schedule.Launch)
                items = counts[0]
            elif launch.get("chunked"):   # counts[0] elements, TDSL_MAP_CHUNK vectors of `width` per work-item
                items = -(-counts[0] // (launch["width"] * prog.map_chunk))
            else:   # runs: outer points times runs of the last axis; else a work-item per point
                items = counts[0] * -(-counts[1] // prog.map_run) if launch.get("runs") else counts[0]
            shape, group = (_round_up(items, local),), (local,)
        elif launch["kind"] == "reduce" and launch.get("strip") and prog.reduce_strip > 1:
            local = min(local, MAP_WG)
            shape, group = (_round_up(-(-counts[0] // prog.reduce_strip), local),), (local,)
            extra = [np.int64(1)]   # `lanes`, unused by the strip layout
        elif launch["kind"] == "row":   # a work-item per row
            shape, group = (_round_up(counts[0], local),), (local,)
        elif launch["kind"] == "reduce":
            local = min(local, prog.wg)
            lanes = min(local, _pow2_ceil(counts[1]), prog.max_lanes)
            shape, group = (_round_up(counts[0], local // lanes) * lanes,), (local,)
            extra = [np.int64(lanes)]
        else:
            tile = prog.tile
            if prog.matmul_strip > 1:   # strips: rows first, so that a work-group's work-items
                strips = -(-counts[0] // prog.matmul_strip)   # that share a strip run in a row
                shape, group = (_round_up(counts[1], tile), _round_up(strips, tile), counts[2]), (tile, tile, 1)
            else:
                shape, group = (_round_up(counts[0], tile), _round_up(counts[1], tile), counts[2]), (tile, tile, 1)
        kernel.set_args(*args, *extra)
        event = cl.enqueue_nd_range_kernel(prog.queue, kernel, shape, group)
        if self.events is not None:
            self.events.append((self.step, self.calls, event, self.where))


def _pow2_ceil(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


# -- the standalone module (OUT.py) -------------------------------------------------------------

class Error(RuntimeError):
    """A call-time check of a standalone module failed (the message names the .tdsl place)."""


class StandaloneModule:
    """The functions of OUT.py: arguments are bound and checked here, the program built on first use."""

    Error = Error

    def __init__(self, source: str, plan: dict):
        self.source, self.plan = source, plan
        self.program: Program | None = None
        self.runners: dict = {}

    @property
    def queue(self):
        """The command queue the functions run on (make device arrays on it)."""
        if self.program is None:
            self.program = Program(self.source, self.plan["uses_f64"])
        return self.program.queue

    def _runner(self, name: str) -> FunctionRunner:
        if name not in self.runners:
            self.queue   # builds the program on first use
            self.runners[name] = FunctionRunner(self.program, self.plan["functions"][name])
        return self.runners[name]

    def function(self, name: str):
        """`name` as a Python function taking positional or keyword arguments."""
        def call(*args, **kwargs):
            return self.call(name, args, kwargs)
        call.__name__ = call.__qualname__ = name
        call.__doc__ = self.plan["functions"][name]["signature"]
        return call

    def call(self, name: str, args: tuple, kwargs: dict):
        plan = self.plan["functions"][name]
        arrays, sizes = bind(plan, args, kwargs)
        try:
            results = self._runner(name)(arrays, sizes)
        except CheckFailed as failed:
            message, extent, names_value, bound = (self.plan["errors"][failed.code - 1] + [False, []])[:4]
            if extent is not None:
                message = message.replace("{extent}", str(evaluate(extent, sizes)))
            if names_value and failed.value is not None:
                message = message.replace("an index", f"index {failed.value}", 1)
            if bound and all(v in failed.sizes for v in bound):   # a loop body's check: "but i = 3, n = 3"
                message += ", but " + ", ".join(f"{v} = {failed.sizes[v]}" for v in bound)
            raise Error(message) from None
        results = [r[()] if isinstance(r, np.ndarray) and r.ndim == 0 else r for r in results]
        return results[0] if len(results) == 1 else tuple(results)


def bind(plan: dict, args: tuple, kwargs: dict) -> tuple[list, dict]:
    """Arguments in parameter order, converted to the parameters' dtypes, and the size variables."""
    params = plan["params"]
    names = [p["name"] for p in params]
    if len(args) > len(params):
        raise TypeError(f"{plan['name']}() takes {len(params)} argument(s), got {len(args)}: {plan['signature']}")
    values = list(args)
    for name in names[len(args):]:
        if name not in kwargs:
            raise TypeError(f"{plan['name']}() is missing argument '{name}': {plan['signature']}")
        values.append(kwargs[name])
    extra = [k for k in kwargs if k not in names[len(args):]]
    if extra:
        raise TypeError(f"{plan['name']}() got an unexpected argument '{extra[0]}': {plan['signature']}")
    arrays = [_convert(plan, p, v) for p, v in zip(params, values)]
    sizes = {var: arrays[i].shape[axis] for var, (i, axis) in plan["first_seen"].items()}
    for p, arr in zip(params, arrays):
        expected = tuple(evaluate(d, sizes) for d in p["shape"])
        if tuple(arr.shape) != expected:
            raise ValueError(f"argument '{p['name']}' of {plan['name']}() has shape {tuple(arr.shape)}, "
                             f"expected {expected}: {plan['signature']}")
    return arrays, sizes


def _convert(plan: dict, param: dict, value):
    dtype, where = DTYPES[param["dtype"]], f"argument '{param['name']}' of {plan['name']}()"
    if isinstance(value, DEVICE_ARRAYS + (np.ndarray, np.generic)):
        if value.dtype != dtype and not np.can_cast(value.dtype, dtype, "safe"):
            raise TypeError(f"{where} is {value.dtype}, which cannot be cast safely to {dtype}")
        arr = value if isinstance(value, DEVICE_ARRAYS) else np.asarray(value, dtype, order="C")
    else:   # Python scalars and lists are weak: any float to a float, any int to an int or float
        arr = np.asarray(value)
        kinds = {"b": 0, "i": 1, "u": 1, "f": 2}
        if arr.dtype.kind not in kinds or (arr.size and kinds[arr.dtype.kind] > kinds[dtype.kind]):
            raise TypeError(f"{where} holds {arr.dtype} values, but the parameter is {dtype}")
        if (arr.dtype.kind in "iu" and arr.size and dtype.kind == "i"
                and (arr.min() < np.iinfo(dtype).min or arr.max() > np.iinfo(dtype).max)):
            raise ValueError(f"{where} has values outside the range of {dtype}")
        arr = np.asarray(arr, dtype, order="C")
    if arr.ndim != len(param["shape"]):
        raise ValueError(f"{where} must have rank {len(param['shape'])}, got shape {tuple(arr.shape)}")
    return arr
