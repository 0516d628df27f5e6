"""The `opencl` target: lower -> render -> build (pyopencl) -> load; and the OUT.py of `tdslc build -t opencl`.

    graphs --lower--> kernel IR --render--> OpenCL C + host plan --build--> program --> runners

The kernel IR is the C backend's (codegen/lower.py); codegen/opencl_render.py writes
it as OpenCL C, codegen/opencl_plan.py describes the host's work as plain data, and
codegen/opencl_runtime.py (NumPy and pyopencl only) runs it, here and in OUT.py.
A program loaded before from the same text is read from its warm entry (codegen/warm.py:
the graphs, the program text and its plan) and built from its binary when tdsl keeps one
(BinaryStore), from its text otherwise (PoCL then finds its kernels in its own cache).
"""
from __future__ import annotations

import keyword
import os
import pprint
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from tdsl.errors import TdslBuildError, TdslError
from tdsl.graph import FunctionGraph
from tdsl.callspec import CallSpec
from tdsl.runner import Runner as BaseRunner

from . import cache, host
from . import opencl_runtime as runtime

# (lowering, rendering and the templates are imported by the stages that use them: a warm load
# reads its program from the cache and never imports them)
if TYPE_CHECKING:
    from .kernels import ModuleIR


def __getattr__(name: str):
    """`program_and_plan` (codegen/opencl_plan.py), imported on first use: codegen/kernels.py and the
    schedule cost a fresh process 20-30 ms, which a warm load does without."""
    if name == "program_and_plan":
        from .opencl_plan import program_and_plan
        return program_and_plan
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

NO_DEVICE_HINT = ("install an OpenCL platform (e.g. PoCL: `apt install pocl-opencl-icd`) and pyopencl, "
                  "pick a device with TDSL_OPENCL_DEVICE, or use target=\"c\"")


class OpenCLTarget:
    """The `opencl` target: lower (with the launch schedule) -> render -> build -> load; and OUT.py."""

    name = "opencl"
    standalone_suffixes = (".py",)

    def __init__(self, debug: bool = False, profile: bool = False, guard: bool = False):
        self.debug = debug   # kernels with `#line` directives naming the .tdsl lines (docs/debugging.md)
        self.profile = profile   # the program on a profiling queue (tdsl/profile.py)
        self.guard = guard   # the NaN guard's checks in the kernels (tdsl/nanguard.py)

    def debugging(self) -> OpenCLTarget:
        """The target building debug programs: each kernel's lines named by its .tdsl line."""
        return DEBUG_TARGET

    def profiling(self) -> OpenCLTarget:
        """The target whose programs run on a queue with profiling enabled: the same program
        text, each kernel's event timed by the device (tdsl/profile.py)."""
        return PROFILE_TARGET

    def guarded(self) -> OpenCLTarget:
        """The target building guarded programs: each float op checks that it produces no NaN or
        infinity from finite operands (tdsl/nanguard.py); a debug build stays one."""
        return DEBUG_GUARD_TARGET if self.debug else GUARD_TARGET

    def unavailable(self) -> str | None:
        try:
            runtime.default_queue()
        except runtime.Unavailable as err:
            return str(err)
        except Exception as err:  # noqa: BLE001  (a broken ICD fails in pyopencl's own ways)
            return f"OpenCL is unavailable: {err}"
        return None

    def recall(self, text: str, path: str) -> list | None:
        """[(graph, runner)] of a program this cache has made from `text` before (its warm entry:
        codegen/warm.py), built from its binary when the cache holds one; None otherwise. Debug,
        profiling and guarded builds keep no entries."""
        if self.debug or self.profile or self.guard:
            return None
        from . import warm
        found = warm.recall_program(text, path)
        if found is None:
            return None
        graphs, calls, source, plan = found
        program = build(source, plan["uses_f64"], Path(path).stem or "module")   # (named as the module)
        functions = plan["functions"]
        return [(g, Runner(runtime.FunctionRunner(program, functions[call.name]), call, source))
                for g, call in zip(graphs, calls)]

    def remember(self, text: str, path: str, graphs: list, lowered, built) -> None:
        """Keep a warm entry for `text`; one that cannot be written only costs the next load its
        warm start."""
        if self.debug or self.profile or self.guard:
            return
        from . import warm
        try:
            warm.remember_program(text, path, graphs, lowered.module.calls, lowered.source, lowered.plan)
        except (OSError, TdslError):
            pass

    def lower(self, graphs: list[FunctionGraph], prefix: str) -> Lowered:
        from .c_backend import symbol_prefix
        from .lower import lower_module
        module = lower_module(graphs, symbol_prefix(prefix), guard=self.guard)
        if self.debug:   # the same schedule and plan, the program's text with #line directives
            from .opencl_plan import module_plan
            from .opencl_render import render_program
            from .opencl_schedule import module_schedule
            source, schedule = render_program(module, module_schedule(module), debug=True)
            return Lowered(module, source, module_plan(module, schedule))
        source, plan = globals().get("program_and_plan", __getattr__("program_and_plan"))(module)
        return Lowered(module, source, plan)

    def render(self, lowered: Lowered) -> str:
        return lowered.source

    def build(self, lowered: Lowered, source: str) -> runtime.Program:
        return build(source, lowered.plan["uses_f64"], lowered.module.prefix, self.debug, self.profile)

    def load(self, lowered: Lowered, program: runtime.Program) -> dict:
        functions = lowered.plan["functions"]
        return {call.name: Runner(runtime.FunctionRunner(program, functions[call.name]), call, lowered.source)
                for call in lowered.module.calls}

    def emit(self, graphs: list[FunctionGraph], prefix: str) -> dict[str, str]:
        """OUT.py: the OpenCL program, its plans and the host runtime; it needs only NumPy and pyopencl."""
        return {".py": emit_standalone(graphs, prefix)}


@dataclass(frozen=True)
class Lowered:
    """A lowered module with its OpenCL text and host plan (both made from the kernel IR at once)."""

    module: ModuleIR
    source: str
    plan: dict


def default_queue():
    """The pyopencl command queue tdsl runs on: make device arrays for it (`pyopencl.array.to_device`)."""
    try:
        return runtime.default_queue()
    except runtime.Unavailable as err:
        raise TdslBuildError(f"{err}; {NO_DEVICE_HINT}") from None


def build(source: str, uses_f64: bool, name: str, debug: bool = False, profile: bool = False) -> runtime.Program:
    """The program built for the chosen device (`debug`: with -g; `profile`: on a queue with
    profiling enabled), from its binary in tdsl's cache when it holds one (BinaryStore)."""
    try:
        queue = runtime.profiling_queue() if profile else runtime.default_queue()
        return _built(source, uses_f64, queue, os.environ.get("TDSL_OPENCL_LAYOUT", ""), debug)
    except runtime.Unavailable as err:
        raise TdslBuildError(f"{err}; {NO_DEVICE_HINT}") from None
    except runtime.BuildFailed as err:
        kept = cache.entry(name, cache.key(source), ".cl")
        try:
            cache.write_atomic(kept, source.encode("utf-8"))
            where = f"the generated source is kept at {kept}"
        except cache.CacheWriteError as failed:   # the build's error is the one to report
            where = f"the generated source could not be kept: {failed.message}"
        raise TdslBuildError(f"the OpenCL build failed:\n{err}\n{where}") from None


@lru_cache(maxsize=64)
def _built(source: str, uses_f64: bool, queue, layout: str, debug: bool = False) -> runtime.Program:
    """The program for `queue`'s device; `layout` (TDSL_OPENCL_LAYOUT) picks its launch layout."""
    return runtime.Program(source, uses_f64, BinaryStore().build, queue, debug)


class BinaryStore:
    """Program binaries in the compile cache's `opencl` folder, keyed by the source and everything
    the binary depends on (runtime.binary_identity: platform, device, driver version, build
    options); written under the entry's lock, atomically, with a checksum trailer (as libraries
    are: codegen/build.py). A binary that is damaged or that the driver refuses is built again
    from source and replaced. Drivers that keep builds themselves (PoCL, whose kernel cache holds
    each kernel compiled for its work-group size) are left to do so: asking PoCL for a binary
    compiles every kernel once more, for any work-group size (see docs/performance.md)."""

    builds = 0   # programs built from source through a store (tests count them)

    def build(self, context, device, source: str, options: list[str]):
        if not self.keeps_binaries(device):   # (pyopencl is given the folder, and leaves it to the driver)
            BinaryStore.builds += 1
            try:
                folder = str(opencl_folder())
            except cache.CacheWriteError:
                folder = None
            return runtime.build_from_source(context, device, source, options, folder)
        try:
            path = self.path(device, options, source)
        except cache.CacheWriteError:   # no opencl folder can be made: build, keep nothing
            BinaryStore.builds += 1
            return runtime.build_from_source(context, device, source, options)
        found = self.load(context, device, path, options)
        if found is not None:
            return found
        try:
            with build_module().entry_lock(path):
                found = self.load(context, device, path, options)   # built while this process waited
                if found is not None:
                    return found
                return self.build_and_keep(context, device, source, options, path)
        except cache.CacheWriteError:   # no lock file there (a full disk): build, keep nothing
            BinaryStore.builds += 1
            return runtime.build_from_source(context, device, source, options)

    @staticmethod
    def keeps_binaries(device) -> bool:
        """Whether tdsl keeps this device's binaries: not when its driver caches builds itself
        (`TDSL_OPENCL_BINARIES=1` keeps them anyway: tests run the store on PoCL)."""
        if os.environ.get("TDSL_OPENCL_BINARIES", "").strip() == "1":
            return True
        from pyopencl.characterize import has_src_build_cache
        return not has_src_build_cache(device)

    @staticmethod
    def path(device, options: list[str], source: str) -> Path:
        key = cache.key("opencl binary", source, *runtime.binary_identity(device, options))
        return opencl_folder() / f"program-{key}.bin"

    @staticmethod
    def load(context, device, path: Path, options: list[str]):
        """The program built from the binary at `path`; None when it is absent, damaged or refused."""
        build = build_module()
        binary = build.checked(path)
        program = runtime.program_from_binary(context, device, binary, options) if binary else None
        if program is not None:
            build.mark_used(path)
        return program

    @staticmethod
    def build_and_keep(context, device, source: str, options: list[str], path: Path):
        BinaryStore.builds += 1
        program = runtime.build_from_source(context, device, source, options)
        binary = runtime.program_binary(program)
        if binary:
            try:
                cache.write_atomic(path, build_module().with_trailer(binary))
            except cache.CacheWriteError:
                pass   # built; the next process builds again
        return program


def build_module():
    from . import build
    return build


def opencl_folder() -> Path:
    """The compile cache's `opencl` folder (private; a damaged cache's file in its place is removed)."""
    folder = cache.cache_dir() / "opencl"
    try:
        if not folder.is_dir():
            if os.path.lexists(folder):   # a damaged cache: a file, a FIFO, a link where the folder goes
                folder.unlink()
            folder.mkdir(exist_ok=True, mode=0o700)
    except OSError as err:
        raise cache.write_error(folder, err) from None
    return folder


# A function's constants and kernels (its loop and branch bodies' too) lie between these
# comments (templates/opencl/program.cl.j2), so that its own part of the program can be shown.
_PART = re.compile(r"^/\* tdsl:begin (\S+) \*/\n(.*?)^/\* tdsl:end \1 \*/$", re.MULTILINE | re.DOTALL)


def function_source(source: str, name: str) -> str:
    """The part of an OpenCL program that is the function `name`'s own: its constant arrays and
    kernels, with those of its loop and branch bodies, without the prelude the module's functions
    share. The whole program where it has no such part (a program of an older tdsl)."""
    parts = [m.group(2).strip("\n") for m in _PART.finditer(source) if m.group(1) == name]
    return "\n\n".join(parts) + "\n" if parts else source


class Runner(BaseRunner):
    """Calls one function: NumPy arrays (or pyopencl arrays, used in place) in, results out."""

    device_types = runtime.DEVICE_ARRAYS   # let through by the binder, see tdsl/bind.py

    def __init__(self, function: runtime.FunctionRunner, call: CallSpec, source: str):
        self.function = function
        self.call = call
        self.module_source = source   # the whole program; `source` is this function's part
        self._source: str | None = None

    @property
    def source(self) -> str:
        """The function's own part of the program (`function_source`), worked out on first use."""
        if self._source is None:
            self._source = function_source(self.module_source, self.call.name)
        return self._source

    # -- a profiling build: its queue's events (tdsl/profile.py) --------------------------------
    def profile_read(self, fn) -> tuple[dict, None]:
        """The device times of the kernels launched since the last read, from their events:
        {id of the function's or a loop or branch body's IR: (ns per kernel, calls per kernel)}
        (a loop's or branch's own entry sums its kernels'), and None (the whole calls' time is
        the host's)."""
        plans = {}   # id of a body's plan -> its IR, walking the plan and the IR together
        stack = [(fn, self.function.plan)]
        while stack:
            ir, plan = stack.pop()
            for k, launch in zip(ir.kernels, plan["launches"]):
                if k.kind == "region":
                    for body, body_plan in zip(k.bodies, launch["bodies"]):
                        plans[id(body_plan)] = body
                        stack.append((body, body_plan))
        tables = {id(ir): ([0] * len(ir.kernels), [set() for _ in ir.kernels])
                  for ir in [fn, *plans.values()]}
        for step, call, event, where in self.function.events or ():
            took = event.profile.end - event.profile.start
            places = [(fn, step, call)] + [(plans[plan], step_, run) for plan, run, step_ in where]
            for ir, at, run in places:
                ns, runs = tables[id(ir)]
                ns[at] += took
                runs[at].add(run)
        self.function.events = []
        return {key: (ns, [len(r) for r in runs]) for key, (ns, runs) in tables.items()}, None

    def profile_finish(self) -> None:
        """Wait for the kernels (a call with device arrays returns before they have run)."""
        self.function.program.queue.finish()

    @property
    def device_name(self) -> str:
        return self.function.program.device.name.strip()

    def __call__(self, arrays: list, sizes: dict, outs: list | None = None) -> list:
        try:
            return self.function(arrays, sizes)
        except runtime.CheckFailed as failed:
            raise self.call.errors.error(failed.code, failed.sizes, "OpenCL function", failed.value) from None


# -- the standalone module -----------------------------------------------------------------

def emit_standalone(graphs: list[FunctionGraph], prefix: str) -> str:
    """OUT.py: the OpenCL program, its plans and the host runtime; it needs only NumPy and pyopencl."""
    from tdsl.version import __version__
    from .c_backend import symbol_prefix
    from .lower import lower_module
    from .opencl_plan import program_and_plan
    from .templating import environment
    module = lower_module(graphs, symbol_prefix(prefix))
    source, plan = program_and_plan(module)
    functions = [{"name": fn.name, "signature": fn.signature, "params": [p.name for p in fn.params],
                  "attribute": _attribute(fn.name),
                  "plain": _attribute(fn.name) and all(_plain(n) for n in [fn.name] + [p.name for p in fn.params])}
                 for fn in module.functions]
    return environment().get_template("opencl/module.py.j2").render(
        version=__version__, file=module.file, functions=functions,
        runtime=_python_text(Path(runtime.__file__).read_text(encoding="utf-8")),
        host=_python_text(Path(host.__file__).read_text(encoding="utf-8")),
        program=_python_text(source), plan=pprint.pformat(plan, width=110, sort_dicts=False))


def _attribute(name: str) -> bool:
    """Whether a function of OUT.py can be a module attribute: not a Python special name
    (`__getattr__` would change how the module works) nor one of OUT.py's own (`_tdsl*`)."""
    return not (name.startswith("__") and name.endswith("__")) and not name.lower().startswith("_tdsl")


def _plain(name: str) -> bool:
    """Whether a tdsl name can be a Python parameter or function name as it is."""
    return (name.isidentifier() and not keyword.iskeyword(name) and name != "__debug__"
            and not name.lower().startswith("_tdsl"))


def _python_text(text: str) -> str:
    """A Python string literal of `text`: raw and triple-quoted when that keeps it exact and readable."""
    printable = all(line.isprintable() for line in text.split("\n"))
    if printable and "'''" not in text and "\\" not in text and not text.endswith("'"):
        return "r'''" + text + "'''"
    return repr(text)


TARGET = OpenCLTarget()
DEBUG_TARGET = OpenCLTarget(debug=True)
PROFILE_TARGET = OpenCLTarget(profile=True)
GUARD_TARGET = OpenCLTarget(guard=True)
DEBUG_GUARD_TARGET = OpenCLTarget(debug=True, guard=True)
