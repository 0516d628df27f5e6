"""The per-line profiler: `Function.profile(...)` and `tdslc run --profile` (docs/debugging.md).

A profiling build of the function (the target's `profiling()` variant: C that times each
kernel, an OpenCL queue with profiling events) is run `repeat` times; each kernel's time is
set beside the `.tdsl` lines it computes, the bytes it moves and the operations it does
(read from the kernel IR, for the call's sizes), and the machine's memory bandwidth, a
triad measured once and kept in the compile cache.
"""
from __future__ import annotations

import ctypes
import json
import os
import time
import weakref
from dataclasses import dataclass, field
from html import escape

import numpy as np

from . import targets
from .errors import TdslError
from .dtypes import to_numpy

# -- the profiling build -------------------------------------------------------------------

_BUILDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def profiling_build(function):
    """(the function's kernel IR, its profiling Runner), built once per Function."""
    found = _BUILDS.get(function)
    if found is None:
        if function.target == targets.REFERENCE:
            raise TdslError(f"profile() times compiled code, and '{function.name}' runs on the numpy "
                            "reference interpreter: load it for the c or opencl target (tdslc run -t c)")
        target = targets.get(function.target)
        if not hasattr(target, "profiling"):
            raise TdslError(f"the {function.target} target has no profiling build")
        target = target.profiling()
        from .pipeline import module_name
        # The stages of pipeline.compile_module after the rewrites (the graph is rewritten already),
        # kept here because the IR is needed too.
        lowered = target.lower([function.graph], module_name(function.graph.file))
        built = target.build(lowered, target.render(lowered))
        runner = target.load(lowered, built)[function.name]
        found = _BUILDS[function] = (getattr(lowered, "module", lowered).functions[0], runner)
    return found


# -- what a kernel does, from the kernel IR ---------------------------------------------------

FLOAT = ("f32", "f64")


def kernel_kind(k, target: str) -> str:
    """A short word for what the kernel does: elementwise, copy, reduction (sum), matmul, ..."""
    from tdsl.codegen.kernels import Const, Gather, Load
    if k.kind == "map":
        if k.serial:
            return "scatter"
        if isinstance(k.value, Load):
            return "gather" if any(isinstance(atom, Gather) for atom, _ in k.value.offset.terms) else "copy"
        return "fill" if isinstance(k.value, Const) else "elementwise"
    if k.kind == "reduce":
        return f"reduction ({k.op})"
    if k.kind == "argreduce":
        return k.op
    if k.kind == "matmul":
        return "matmul (BLAS)" if target == "c" and _blas(k) else "matmul"
    if k.kind == "fused":
        kinds = list(dict.fromkeys("sum" if i in k.sums else kernel_kind(p, target) for i, p in enumerate(k.parts)))
        return "fused " + " + ".join(kinds)
    if k.kind == "region":
        return "if" if k.region == "if" else f"{k.region} loop"
    return k.routine   # a row routine: sort, cumsum, ...


def _blas(k) -> bool:
    """Whether a C matmul kernel calls BLAS (NumPy's is found, and the operands suit it)."""
    from tdsl.codegen.blas import blas_call, gemm_pointers
    names = type("Names", (), {"dim": staticmethod(str), "buffer": staticmethod(lambda b: b.name)})
    try:
        return gemm_pointers() is not None and blas_call(k, names, lambda aff: "0") is not None
    except Exception:   # noqa: BLE001  (a layout the stub names cannot spell: say loops)
        return False


def kernel_lines(k) -> list:
    """The .tdsl locations of the statements whose operations the kernel computes, in line order."""
    from tdsl.codegen.kernels import Apply
    from tdsl.codegen.loops import kernel_expressions
    found = [k.origin.loc]
    if k.kind == "region":
        for body in k.bodies:
            found += [loc for inner in body.kernels for loc in kernel_lines(inner)]
    else:
        for part in k.parts if k.kind == "fused" else (k,):
            found.append(part.origin.loc)
        found += [e.loc for e in kernel_expressions(k) if isinstance(e, Apply)]
    places = {(loc.file, loc.line): loc for loc in found if loc is not None}
    return [places[key] for key in sorted(places)]


def _points(loops, sizes) -> int:
    total = 1
    for loop in loops:
        total *= max(loop.extent.evaluate(sizes), 0)
    return total


def _float_ops(k) -> int:
    """The floating-point operations of one point of a kernel's expression (each op one)."""
    from tdsl.codegen.kernels import Apply
    from tdsl.codegen.loops import kernel_expressions
    from .ops import OPS
    return sum(1 for e in kernel_expressions(k)
               if isinstance(e, Apply) and e.dtype in FLOAT and OPS[e.op].kind == "elementwise")


def kernel_flops(k, sizes) -> int | None:
    """Floating-point operations of one run: a matmul 2 M N K, a float sum or product one per
    element, and each float op of the op table (exp, sin included) one per point; None for a
    loop, a branch or a row routine."""
    if k.kind == "matmul":
        return 2 * _points(k.loops + (k.col, k.inner), sizes) if k.out.dtype in FLOAT else 0
    if k.kind in ("region", "row"):
        return None
    if k.kind == "fused":
        return sum(kernel_flops(p, sizes) for p in k.parts) * max(k.loop.extent.evaluate(sizes), 0)
    points = _points(k.loops + getattr(k, "reduce_loops", ()), sizes)
    combine = 1 if k.kind == "reduce" and k.op in ("sum", "prod") and k.value.dtype in FLOAT else 0
    return points * (_float_ops(k) + combine)


def kernel_traffic(k, sizes) -> tuple[int, int]:
    """(bytes read, bytes written) by one run of a kernel: each buffer once, its elements counted
    as many as it has or as the kernel's loads of it can reach (one per load per point of the
    loops around it), whichever is fewer, so a slice counts its own elements and a broadcast or
    re-read input its own size. A scalar temporary is a local variable (no traffic)."""
    reads: dict = {}
    writes: dict = {}
    if k.kind == "row":
        for b in list(k.ins) + list(k.scratch):
            reads[b.name] = (b, float("inf"))
        for b in list(k.outs) + list(k.scratch):
            writes[b.name] = (b, float("inf"))
    else:
        _note_traffic(k, 1, sizes, reads, writes)
    return _bytes(reads.values(), sizes), _bytes(writes.values(), sizes)


def _note_traffic(k, outer: int, sizes, reads: dict, writes: dict) -> None:
    """Add the elements kernel `k` (run at `outer` points of loops around it) reads and writes."""
    from tdsl.codegen.loops import kernel_loads
    if k.kind == "fused":
        outer *= max(k.loop.extent.evaluate(sizes), 0)
        for part in k.parts:
            _note_traffic(part, outer, sizes, reads, writes)
        for at, buf, _ in k.stores:
            _add(writes, buf, outer * _points(k.parts[at].loops, sizes))
        return
    inner = (k.col, k.inner) if k.kind == "matmul" else getattr(k, "reduce_loops", ())
    points = outer * _points(k.loops + tuple(inner), sizes)
    for load in kernel_loads(k):
        _add(reads, load.buffer, points)
    _add(writes, k.out, outer * _points(k.loops + ((k.col,) if k.kind == "matmul" else ()), sizes))


def _add(found: dict, buf, count) -> None:
    known = found.get(buf.name)
    found[buf.name] = (buf, count + (known[1] if known else 0))


def _bytes(touched, sizes) -> int:
    total = 0
    for b, count in touched:
        if b.is_scalar and b.role == "temp":
            continue
        size = 1
        for d in b.shape:
            size *= max(d.evaluate(sizes), 0)
        total += min(size, count) * to_numpy(b.dtype).itemsize
    return total


# -- the machine's memory bandwidth: a triad, measured once -------------------------------------

TRIAD_SOURCE = "fn triad(b: f64[n], c: f64[n], s: f64) -> f64[n] {\n    return b + s * c\n}\n"
TRIAD_MIN_BYTES = 64 << 20   # per array, at least 4 times the last-level cache
TRIAD_MAX_BYTES = 256 << 20
TRIAD_RUNS = 5


def _last_level_cache() -> int:
    """The largest CPU cache's size in bytes (Linux sysfs), or 0."""
    largest = 0
    root = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = os.listdir(root)
    except OSError:
        return 0
    for name in entries:
        try:
            with open(os.path.join(root, name, "size"), encoding="ascii") as f:
                text = f.read().strip()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            largest = max(largest, int(digits) * scale)
    return largest


def triad_bytes() -> int:
    """Bytes per array of the triad: well beyond the last-level cache."""
    return min(max(TRIAD_MIN_BYTES, 4 * _last_level_cache()), TRIAD_MAX_BYTES)


@dataclass(frozen=True)
class Bandwidth:
    """The triad's result: GB/s (1e9 bytes) and how it was measured."""

    gbs: float
    how: str
    path: str = ""   # the cache file it is kept in


def machine_bandwidth(target: str) -> Bandwidth:
    """The memory bandwidth `target` reaches on this machine (its device, for OpenCL): measured
    once, kept in the compile cache keyed by the machine, the device and the array size."""
    from tdsl.codegen import build, cache
    size = triad_bytes()
    where = build.cpu_identity()
    if target == "opencl":
        from tdsl.codegen.opencl_backend import default_queue
        device = default_queue().device
        where += f" {device.platform.name} {device.name} {device.driver_version}"
    path = cache.entry(f"triad-{target}", cache.key(target, where, str(size), str(TRIAD_RUNS),
                                                      os.environ.get("OMP_NUM_THREADS", "")), ".json")
    kept = cache.read_small(path, 4096)
    if kept is not None:
        try:
            data = json.loads(kept.decode("utf-8"))
            return Bandwidth(float(data["gbs"]), str(data["how"]), str(path))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            pass   # a damaged file: measured again
    found = measure_triad(target, size)
    try:
        cache.write_atomic(path, json.dumps({"gbs": found.gbs, "how": found.how}).encode("utf-8"))
    except cache.CacheWriteError:
        return found   # measured again next time
    return Bandwidth(found.gbs, found.how, str(path))


def measure_triad(target: str, size: int) -> Bandwidth:
    """a = b + s * c on f64 arrays of `size` bytes, compiled by tdsl for `target` (C: every
    OpenMP thread), best of TRIAD_RUNS after one warm-up; 3 arrays' bytes per run (STREAM's
    count: the write's cache-line fill is not counted)."""
    from .pipeline import compile_module
    n = size // 8
    triad = compile_module(target, TRIAD_SOURCE, "<tdsl triad>")["triad"]
    b, c = np.full(n, 1.0), np.full(n, 2.0)
    if target == "opencl":
        import pyopencl.array as cl_array
        from tdsl.codegen.opencl_backend import default_queue
        queue = default_queue()
        b, c = cl_array.to_device(queue, b), cl_array.to_device(queue, c)
        out = triad(b, c, 3.0)

        def run():
            triad(b, c, 3.0)
            queue.finish()
    else:
        out = np.empty(n)

        def run():
            triad(b, c, 3.0, out=out)
    best = float("inf")
    for i in range(TRIAD_RUNS + 1):
        start = time.perf_counter()
        run()
        elapsed = time.perf_counter() - start
        if i:
            best = min(best, elapsed)
    del out
    threads = os.environ.get("OMP_NUM_THREADS") or f"{os.cpu_count()} (all cores)"
    who = "on the OpenCL device" if target == "opencl" else f"tdsl's C, threads {threads}"
    how = (f"triad a = b + s*c, 3 x {size >> 20} MiB f64, {who}, best of {TRIAD_RUNS}, "
           f"measured {time.strftime('%Y-%m-%d')}")
    return Bandwidth(3 * size / best / 1e9, how)


# -- the result ---------------------------------------------------------------------------------

@dataclass
class Row:
    """One kernel of the profile, or (kernel False) time outside the kernels. A loop's or
    branch's row holds its bodies' kernels (`inner`), timed per iteration within its time."""

    name: str
    kind: str
    lines: list           # Locations
    calls: int
    seconds: float        # over all calls
    share: float = 0.0
    bytes_read: int | None = None
    bytes_written: int | None = None
    flops: int | None = None   # per call
    inner: list = field(default_factory=list)
    kernel: bool = True

    @property
    def per_call(self) -> float:
        return self.seconds / self.calls if self.calls else 0.0

    @property
    def moved(self) -> int | None:
        return None if self.bytes_read is None else self.bytes_read + self.bytes_written

    def gbs(self) -> float | None:
        return self.moved / self.per_call / 1e9 if self.moved and self.per_call > 0 else None

    def gflops(self) -> float | None:
        return self.flops / self.per_call / 1e9 if self.flops and self.per_call > 0 else None

    def to_dict(self, triad: float | None) -> dict:
        out = {"name": self.name, "kind": self.kind, "calls": self.calls, "seconds": self.seconds,
               "seconds_per_call": self.per_call, "share": self.share}
        if self.kernel:
            gbs = self.gbs()
            out.update(lines=[{"file": l.file, "line": l.line, "text": l.source_line.strip()} for l in self.lines],
                       bytes_read=self.bytes_read, bytes_written=self.bytes_written, bytes=self.moved,
                       flops=self.flops, gbs=gbs, gflops=self.gflops(),
                       triad_fraction=gbs / triad if gbs is not None and triad else None,
                       inner=[r.to_dict(triad) for r in self.inner])
        return out


TITLES = ["#", "kernel", "kind", "calls", "time/call", "share", "moved", "GB/s", "% triad", "GFLOP/s",
          ".tdsl lines"]


@dataclass
class Profile:
    """What `Function.profile` measured: print it for the table, `to_dict()` for scripts."""

    function: str
    signature: str
    target: str
    calls: int
    sizes: dict
    seconds: float          # the whole calls, wall clock, over all calls
    kernels: list[Row]
    other: list[Row]
    bandwidth: Bandwidth | None = None
    device: str = ""
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain data: lists, dicts, numbers and strings (times in seconds, per call and total)."""
        triad = self.bandwidth.gbs if self.bandwidth else None
        return {"function": self.function, "signature": self.signature, "target": self.target,
                "device": self.device, "calls": self.calls, "sizes": dict(self.sizes),
                "seconds": self.seconds, "seconds_per_call": self.seconds / self.calls,
                "bandwidth": None if self.bandwidth is None else
                {"gbs": self.bandwidth.gbs, "how": self.bandwidth.how, "cached_in": self.bandwidth.path},
                "kernels": [r.to_dict(triad) for r in self.kernels], "other": [r.to_dict(triad) for r in self.other],
                "notes": list(self.notes)}

    def table_rows(self) -> list[list[str]]:
        """The table's rows as cells (TITLES), a kernel's further .tdsl lines on rows of their own."""
        triad = self.bandwidth.gbs if self.bandwidth else None
        rows: list[list[str]] = []

        def add(r: Row, number: str, depth: int) -> None:
            gbs, gflops = r.gbs(), r.gflops()
            lines = [f"{_short(l.file)}:{l.line}  {_clip(l.source_line.strip())}" for l in r.lines] or [""]
            rows.append([number, "  " * depth + r.name, r.kind, str(r.calls), _time(r.per_call),
                         f"{100 * r.share:.1f}%", _size(r.moved), "" if gbs is None else f"{gbs:.2f}",
                         "" if gbs is None or not triad else f"{100 * gbs / triad:.0f}%",
                         "" if gflops is None else f"{gflops:.2f}", lines[0]])
            rows.extend([""] * 10 + [more] for more in lines[1:])
            for i, inner in enumerate(r.inner, 1):
                add(inner, f"{number}.{i}", depth + 1)
        for i, r in enumerate(self.kernels, 1):
            add(r, str(i), 0)
        for r in self.other:
            rows.append(["", r.name, r.kind, str(r.calls), _time(r.per_call), f"{100 * r.share:.1f}%"] + [""] * 5)
        rows.append(["", "total", "", str(self.calls), _time(self.seconds / self.calls), "100.0%"] + [""] * 5)
        return rows

    def header(self) -> list[str]:
        sizes = ", ".join(f"{k} = {v}" for k, v in self.sizes.items())
        head = [f"profile of {self.signature}",
                f"  target {self.target}{' (' + self.device + ')' if self.device else ''}, "
                f"{self.calls} call{'s' if self.calls != 1 else ''}" + (f", {sizes}" if sizes else "")]
        if self.bandwidth:
            head.append(f"  memory bandwidth {self.bandwidth.gbs:.2f} GB/s: {self.bandwidth.how}")
        return head

    def __str__(self) -> str:
        rows = [TITLES] + self.table_rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(TITLES) - 1)]
        right = {0, 3, 4, 5, 6, 7, 8, 9}
        out = []
        for r in rows:
            cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
            out.append(("  ".join(cells) + "  " + r[-1]).rstrip())
        return "\n".join(self.header() + out + [f"  {note}" for note in self.notes])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{escape(t)}</th>" for t in TITLES)
        body = "".join("<tr>" + "".join(f"<td style=\"text-align:left;white-space:pre\">{escape(c)}</td>"
                                        for c in r) + "</tr>" for r in self.table_rows())
        notes = "".join(f"<p><small>{escape(line.strip())}</small></p>" for line in self.header()[1:] + self.notes)
        return (f"<div class=\"tdsl-profile\"><p>profile of <code>{escape(self.signature)}</code></p>{notes}"
                f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _short(path: str) -> str:
    return os.path.basename(path) or path


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.1f} us"


def _size(count: int | None) -> str:
    if count is None:
        return ""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


# -- running it ---------------------------------------------------------------------------------

NOTES = {
    "bytes": "moved: each buffer a kernel reads once and each it writes once, as many elements as it "
             "reaches (a slice its own, a broadcast or re-read input its size); GFLOP/s: each float op "
             "one, a matmul 2 M N K",
    "opencl": "kernel times are the device's (profiling events); a loop's are its kernels' sum",
    "loops": "a loop's or branch's kernels are listed under it, timed per iteration (its time holds theirs)",
}


def profile(function, args: tuple, kwargs: dict, repeat: int = 10, warmup: int = 1,
            bandwidth: bool = True) -> Profile:
    """Run `function`'s profiling build `repeat` times (after `warmup` untimed calls) on the
    arguments and return the Profile."""
    if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
        raise TdslError(f"profile(): repeat must be a positive integer, got {repeat!r}")
    fn, runner = profiling_build(function)
    arrays, sizes = function._binder.bind(args, kwargs)

    def call():
        if runner.writes_into:
            return runner(arrays, sizes, function._fresh_results(sizes))
        return runner(arrays, sizes)
    for _ in range(warmup):
        call()
    runner.profile_finish()
    runner.profile_read(fn)   # (zeroes the tables)
    wall = 0
    for _ in range(repeat):
        start = time.perf_counter_ns()
        result = call()
        runner.profile_finish()
        wall += time.perf_counter_ns() - start
        del result
    tables, whole = runner.profile_read(fn)
    rows = _rows(fn, tables, sizes, function.target)
    kernels = sum(r.seconds for r in rows) * 1e9
    if whole is None:   # OpenCL: the rest is the host's
        other = [Row("host", "launches, transfers", [], repeat, max(wall - kernels, 0) / 1e9, kernel=False)]
    else:
        other = [Row("outside kernels", "C: checks, allocation", [], repeat, max(whole - kernels, 0) / 1e9,
                     kernel=False),
                 Row("host", "Python call, results", [], repeat, max(wall - whole, 0) / 1e9, kernel=False)]
    total = max(wall, kernels + sum(r.seconds for r in other) * 1e9)
    for r in _all_rows(rows + other):
        r.share = r.seconds * 1e9 / total if total else 0.0
    notes = [NOTES["bytes"]] + ([NOTES["opencl"]] if whole is None else []) + \
        ([NOTES["loops"]] if any(r.inner for r in rows) else [])
    return Profile(function.name, function.signature, function.target, repeat,
                   {v: sizes[v] for v in function.graph.size_vars}, total / 1e9, rows, other,
                   machine_bandwidth(function.target) if bandwidth else None,
                   getattr(runner, "device_name", ""), notes)


def _rows(fn, tables: dict, sizes: dict, target: str) -> list[Row]:
    """A row per kernel of `fn` (a function or a loop or branch body), with its measured times."""
    ns, calls = tables[id(fn)]
    rows = []
    for k, took, count in zip(fn.kernels, ns, calls):
        moved = _known(kernel_traffic, k, sizes) if k.kind != "region" else None
        row = Row(k.origin.label, kernel_kind(k, target), kernel_lines(k), count, took / 1e9,
                  bytes_read=moved and moved[0], bytes_written=moved and moved[1],
                  flops=_known(kernel_flops, k, sizes))
        if k.kind == "region":
            row.inner = [r for body in k.bodies for r in _rows(body, tables, sizes, target)]
        rows.append(row)
    return rows


def _known(measure, item, sizes):
    """`measure(item, sizes)`, or None where it cannot be known: a size that depends on a loop
    index (a body's buffers)."""
    try:
        return measure(item, sizes)
    except KeyError:
        return None


def _all_rows(rows: list[Row]) -> list[Row]:
    return [r for row in rows for r in [row] + _all_rows(row.inner)]
