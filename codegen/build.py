"""Building a C module: one compiler call into the compile cache, then ctypes loads the library.

The compiler is `TDSL_CC`, else `CC`, else `cc`. The optional features (OpenMP,
`-march=native`, glibc's SIMD math library, TLS descriptors) are probed once per
compiler, each with a tiny test program of its own, and the answer is kept in the
cache (the features marker); a failed build of a module never changes it, and is
reported as the build error it is. A compiler run that takes longer than
`TDSL_CC_TIMEOUT` seconds (default 300) is stopped with its whole process group.
Processes loading the same new module take a file lock on its cache entry, so one
compiles and the others load what it built. With `TDSL_SANITIZE=1` modules are
built with AddressSanitizer and UBSan (see tests/test_c_backend.py for how to run a
process with them). A debug build (`debug=True`, TDSL_DEBUG=1: docs/debugging.md) adds
DEBUG_FLAGS, with sanitizers or without.
"""
from __future__ import annotations

import ctypes
import hashlib
import math
import os
import shlex
import threading
import time
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from tdsl.errors import TdslBuildError

from . import cache

# Never -ffast-math: NaN, infinities, -0.0 and rounding stay as in NumPy. -ffp-contract=off
# keeps a * b + c two roundings under -march=native (FMA), as NumPy computes it.
# TDSL_BLAS: float matmuls may call the BLAS the loader hands in (codegen/blas.py).
# -O2: the loops that matter carry `omp simd` and vectorize as at -O3 (measured: the same
# speed), and a module compiles 25-30% faster, which a first load waits for (GCC's -O2
# vectorizer cost model leaves the other loops scalar).
# -fvisibility=hidden: a module exports only its entry points (TDSL_EXPORT, templates/c/module.c.j2).
BASE_FLAGS = ("-std=c99", "-O2", "-fPIC", "-shared", "-fvisibility=hidden", "-fno-math-errno", "-ffp-contract=off",
              "-DTDSL_BLAS")
SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                  "-fno-omit-frame-pointer", "-g")
# A debug build: the later -O0 wins over -O2, so gdb sees every local and every line as
# written (-Og may drop locals); frame pointers give sanitizers and perf whole backtraces.
DEBUG_FLAGS = ("-O0", "-g", "-fno-omit-frame-pointer")
LIBS = ("-lm",)
NO_COMPILER_HINT = ("install one (e.g. `apt install gcc`, or `xcode-select --install` on macOS), "
                    "name it with TDSL_CC or CC, or use target=\"numpy\"")
DEFAULT_CC_TIMEOUT_S = 300.0
MAX_CC_TIMEOUT_S = 1e6   # (11 days; the waits below take no more)
# How much longer than the compiler timeout a process waits for another one's lock on a cache
# entry (the holder runs the compiler once, then writes the entry).
LOCK_MARGIN_S = 60.0


def compiler() -> tuple[str, ...]:
    """The compiler command: `TDSL_CC`, else `CC`, else `cc` (it may hold options, quoted as in
    a POSIX shell)."""
    name = "TDSL_CC" if os.environ.get("TDSL_CC") else "CC" if os.environ.get("CC") else None
    text = os.environ.get(name, "") if name else "cc"
    try:
        words = tuple(shlex.split(text))
    except ValueError as err:   # an unterminated quote, a trailing backslash
        raise TdslBuildError(f"{name} is not a command line tdsl can read ({err}): {text!r}; quote its words "
                             f"as a POSIX shell would (e.g. TDSL_CC='gcc -I\"/my dir/include\"')") from None
    if not words or not words[0]:
        raise TdslBuildError(f"{name} names no command: {text!r}; set it to a C compiler (e.g. TDSL_CC=gcc), or "
                             f"unset it to use {'CC or ' if name == 'TDSL_CC' else ''}cc")
    return words


def cc_timeout() -> float:
    """Seconds one compiler run may take: `TDSL_CC_TIMEOUT`, else 300."""
    text = os.environ.get("TDSL_CC_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_CC_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_CC_TIMEOUT_S):
        raise TdslBuildError(f"TDSL_CC_TIMEOUT must be a positive number of seconds (at most "
                             f"{MAX_CC_TIMEOUT_S:,.0f}), not {text!r}")
    return value


class CompilerTimeout(TdslBuildError):
    """The compiler ran longer than `TDSL_CC_TIMEOUT` and was stopped."""


def run_compiler(command: list[str], timeout: float):
    """Run the compiler in a process group of its own; the whole group is killed after `timeout` s.

    A CompletedProcess with text output; `CompilerTimeout` when it ran too long (never retried),
    `TdslBuildError` when it cannot be started.
    """
    import subprocess
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except (OSError, ValueError) as err:
        raise TdslBuildError(f"cannot run the C compiler '{command[0]}': {err}; {NO_COMPILER_HINT}") from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise CompilerTimeout(f"the C compiler timed out after {timeout:g} s and was stopped with its child "
                              f"processes ({shlex.join(command)}); set TDSL_CC_TIMEOUT to a number of "
                              f"seconds to allow it longer") from None
    except BaseException:
        _kill_group(proc)
        raise
    return subprocess.CompletedProcess(command, proc.returncode, out.decode("utf-8", "replace"),
                                       err.decode("utf-8", "replace"))


def _kill_group(proc) -> None:
    """Kill the compiler's process group (it leads it) and reap the compiler."""
    import signal
    import subprocess
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except OSError:
        pass
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:   # a child that left the group still holds the pipes
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()


@contextmanager
def entry_lock(path: Path):
    """Hold the file lock of the cache entry `path` (`path.lock`): one process builds it at a time."""
    lock_path = lock_file(path)
    wait = cc_timeout() + LOCK_MARGIN_S
    lock = _acquire(lock_path, wait)
    if lock is None:
        raise TdslBuildError(f"waited {wait:g} s for the lock file {lock_path}, which another process building "
                             f"the same cache entry holds (the compiler timeout, TDSL_CC_TIMEOUT, plus "
                             f"{LOCK_MARGIN_S:g} s); if no tdsl process is building, remove that file")
    try:
        yield
    finally:
        lock.release()


@contextmanager
def entry_lock_if_free(path: Path):
    """Hold the lock of the cache entry `path` if no process holds it now: yields True when held
    (nobody is building the entry, which may then be removed with its lock file), else False."""
    lock = _acquire(lock_file(path), 0)
    try:
        yield lock is not None
    finally:
        if lock is not None:
            lock.release()


def lock_file(path: Path) -> Path:
    """The lock file of the cache entry `path`."""
    return path.with_name(path.name + ".lock")


def _acquire(lock_path: Path, wait: float):
    """The held lock on `lock_path`, or None when it stays taken for `wait` s.

    A lock file removed (`tdslc cache clear`) while a process waited on it is not the lock any
    more: holding it is checked against the file now at `lock_path`, and taken again if needed.
    """
    import filelock
    deadline = time.monotonic() + wait
    _only_a_file(lock_path)
    while True:
        # 0600: another user who can read the folder cannot open the lock, so cannot hold it
        lock = filelock.FileLock(str(lock_path), timeout=max(0.0, deadline - time.monotonic()), mode=0o600)
        try:
            lock.acquire()
        except filelock.Timeout:
            return None
        except OSError as err:   # a full disk (no inode left), a folder made read-only: built elsewhere
            raise cache.write_error(lock_path, err) from None
        if _holds_current(lock, lock_path):
            return lock
        lock.release()
        if time.monotonic() > deadline:
            return None


def _only_a_file(lock_path: Path) -> None:
    """Remove what a damaged cache holds in place of a lock file (a folder, a FIFO, a link to a
    device: locking one of those would hang or lock something shared)."""
    import stat
    try:
        mode = os.lstat(lock_path).st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        cache.make_room(lock_path)
        if stat.S_ISLNK(mode):
            try:
                os.unlink(lock_path)
            except OSError:
                pass


def _holds_current(lock, lock_path: Path) -> bool:
    fd = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
    if fd is None:
        return True
    try:
        return os.fstat(fd).st_ino == os.stat(lock_path).st_ino
    except OSError:
        return False


def sanitizing() -> bool:
    return os.environ.get("TDSL_SANITIZE", "") not in ("", "0")


@lru_cache(maxsize=None)
def compiler_version(cc: tuple[str, ...]) -> str:
    """The compiler's resolved path and first line of `--version`; an error when there is none."""
    import shutil
    path = shutil.which(cc[0]) if cc else None
    if path is None:
        raise TdslBuildError(f"no C compiler found (looked for '{' '.join(cc) or 'cc'}'): {NO_COMPILER_HINT}")
    result = run_compiler(list(cc) + ["--version"], cc_timeout())
    first = (result.stdout or result.stderr).strip().splitlines()
    return f"{path}: {first[0] if first else 'unknown version'}"


def flags(cc: tuple[str, ...], features: tuple[str, ...] | None = None, debug: bool = False) -> tuple[str, ...]:
    """The flags of a module build: optimization, the optional features, sanitizers when asked,
    and those of a debug build when `debug`."""
    features = usable_features(cc) if features is None else features
    extra = tuple(flag for name in features for flag in FEATURE_FLAGS[name]())
    return BASE_FLAGS + extra + (SANITIZE_FLAGS if sanitizing() else ()) + (DEBUG_FLAGS if debug else ())


def vector_math_level() -> int:
    """Which set of glibc's libmvec functions exists: 2 (glibc >= 2.35), 1 (>= 2.22) or 0 (none)."""
    import platform
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        major, minor = (int(p) for p in version.split(".")[:2])
    except (AttributeError, ValueError, OSError):
        return 0
    if name != "glibc" or platform.machine() not in ("x86_64", "AMD64"):
        return 0
    return 2 if (major, minor) >= (2, 35) else 1 if (major, minor) >= (2, 22) else 0


# Optional features, each probed once per compiler with a test program of its own (_PROBES).
# `-z defs` turns a missing libmvec function into a link error (and so into no vector math).
FEATURE_FLAGS = {
    "openmp": lambda: ("-fopenmp",),
    "native": lambda: ("-march=native",),
    "vector_math": lambda: (f"-DTDSL_VECTOR_MATH={vector_math_level()}", "-Wl,-z,defs"),
    # Not -mtls-dialect=gnu2 (TLS descriptors): before glibc 2.40 the descriptor's slow path
    # (a thread's first read of a module's thread-local data once a process has loaded more
    # modules than the static TLS space holds) does not keep the vector registers, and the
    # compiler keeps floats in them across the read: rand came back scaled by ~1e-306
    # (tests/test_random.py, a process that loads 60 modules; docs/decisions.md).
}
# A feature whose probe (and use) needs another one: the SIMD math declarations are OpenMP's.
_PROBE_NEEDS = {"vector_math": ("openmp",)}


def wanted_features() -> tuple[str, ...]:
    return ("openmp", "native") + (("vector_math",) if vector_math_level() else ())


_MARKER_HEADER = "tdsl build features 1"
_features: dict[Path, tuple[str, ...]] = {}


def usable_features(cc: tuple[str, ...], timeout: float | None = None) -> tuple[str, ...]:
    """The features a module build uses: those this compiler's probes passed (probed once, kept).

    When the compiler cannot build even the plain probe, nothing is recorded and a module is
    built without features, so its build reports the compiler's own error.
    """
    marker = features_marker(cc)
    found = _features.get(marker)
    if found is not None:
        return found
    with _probing:   # one thread probes (prefetch_features), the others wait for its answer
        found = _features.get(marker)
        failed, when = _probe_failures.pop(marker, (None, 0.0))
        if failed is not None and time.monotonic() - when < 30:   # the background probe failed
            raise failed   # (timed out, say): its error, not a second wait as long
        if found is None:
            found = read_features(marker)
        if found is None:
            try:
                found = _probe_and_record(cc, marker, timeout)
            except TdslBuildError as err:
                if threading.current_thread() is not threading.main_thread() and _prefetching.is_set():
                    _probe_failures[marker] = (err, time.monotonic())   # for the load waiting on it
                raise
            if found is None:
                return ()
        _features[marker] = found
    return found


def _probe_and_record(cc: tuple[str, ...], marker: Path, timeout: float | None) -> tuple[str, ...] | None:
    try:
        lock = entry_lock(marker)
        lock.__enter__()   # one process probes, the others wait and read its answer
    except cache.CacheWriteError:   # no lock file can be made there: probe for this process only
        return probe_features(cc, timeout)[0]
    try:
        found = read_features(marker)
        if found is not None:
            return found
        found, conclusive = probe_features(cc, timeout)
        if found is not None and conclusive:   # (a probe killed by a signal proves nothing)
            try:
                cache.write_atomic(marker, f"{_MARKER_HEADER}\n{' '.join(found)}\n".encode())
            except cache.CacheWriteError:
                pass   # known to this process; the module's own build moves to another folder
        return found
    finally:
        lock.__exit__(None, None, None)


def prefetch_features() -> None:
    """Start finding the compiler's features in a background thread, when this process knows
    none yet: a first load then probes (compiler runs, on other cores) while it parses, checks
    and lowers, and its build waits only for what is left."""
    global _prefetch_thread
    if _features or _probing.locked() or _prefetching.is_set():
        return

    try:   # read now: the settings of the load that starts it, whatever happens to them later
        cc, timeout = compiler(), cc_timeout()
    except TdslBuildError:
        return   # (the load reports it)

    def find() -> None:
        try:
            usable_features(cc, timeout)
        except Exception:  # noqa: BLE001 - the build asks again, and gets the error kept for it
            pass
        finally:
            _prefetching.clear()

    _prefetching.set()
    _prefetch_thread = threading.Thread(target=find, name="tdsl-features", daemon=True)
    _prefetch_thread.start()


def _new_probing_lock() -> None:
    global _probing, _prefetching, _prefetch_thread
    _probing = threading.Lock()   # a child forked while a thread probed must not inherit it held
    _prefetching = threading.Event()
    _prefetch_thread = None


_probing = threading.Lock()
_prefetching = threading.Event()   # set while a background thread probes
_prefetch_thread: threading.Thread | None = None
# {marker: (the error of a background probe, when)}, raised once to the load that waited for it
_probe_failures: dict[Path, tuple[TdslBuildError, float]] = {}
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_probing_lock)


def forget_features() -> None:
    """Drop this process's memory of the features markers (they are read again), once a
    background probe has ended."""
    if _prefetch_thread is not None and _prefetch_thread is not threading.current_thread():
        _prefetch_thread.join()
    _features.clear()
    _probe_failures.clear()


usable_features.cache_clear = forget_features   # as when it was an lru_cache


def read_features(marker: Path) -> tuple[str, ...] | None:
    """The features a marker records; None when it is absent, unreadable or not a marker."""
    data = cache.read_small(marker, 4096)
    try:
        lines = data.decode("ascii").splitlines() if data is not None else []
    except UnicodeDecodeError:
        return None
    if len(lines) != 2 or lines[0] != _MARKER_HEADER:
        return None
    names = tuple(lines[1].split())
    if len(set(names)) != len(names) or not all(name in FEATURE_FLAGS for name in names):
        return None
    return names


def features_marker(cc: tuple[str, ...]) -> Path:
    from tdsl.version import __version__
    key = cache.key(*cc, compiler_version(cc), cpu_identity(), "sanitize" if sanitizing() else "",
                    __version__, " ".join(wanted_features()))
    return cache.entry("features", key, ".txt")


# One test per feature (and "" for none): C text defining `{fn}`, a function that returns 1
# when the feature works. A probe is a library exporting `int tdsl_probe(void)`, built as a
# module is (flags, -shared, LIBS), loaded and called: first one testing every wanted feature
# at once (one compiler run, which passes on a usual machine), and only when that fails one
# probe per feature, to learn which ones work.
_PROBES = {
    "": "{fn} { volatile int one = 1; return one; }\n",
    "openmp": """#include <omp.h>
{fn}
{
    int n = 0;
#pragma omp parallel reduction(+: n)
    n += omp_get_num_threads() > 0;
    return n > 0;
}
""",
    "native": "{fn} { volatile double x = 1.5; return x * x == 2.25; }\n",
    "vector_math": """#pragma omp declare simd notinbranch
double exp(double);
#if TDSL_VECTOR_MATH >= 2
#pragma omp declare simd notinbranch
double exp2(double);
#define TDSL_PROBE_F(x) exp2(x)
#else
#define TDSL_PROBE_F(x) exp(x)
#endif
static double tdsl_probe_values[64];
{fn}
{
    int i;
    double sum = 0.0;
    for (i = 0; i < 64; i++) tdsl_probe_values[i] = i * 0.001;
#pragma omp simd
    for (i = 0; i < 64; i++) tdsl_probe_values[i] = TDSL_PROBE_F(tdsl_probe_values[i]);
    for (i = 0; i < 64; i++) sum += tdsl_probe_values[i];
    return sum > 64.0 && sum < 68.0;   /* 1 <= f(x) < 1.05 */
}
""",
}
_EXPORT = '__attribute__((visibility("default"))) int tdsl_probe(void)'


def probe_source(names: tuple[str, ...]) -> str:
    """The probe testing the features `names` ("" alone: the plain one)."""
    if len(names) == 1:
        return _PROBES[names[0]].replace("{fn}", _EXPORT)
    parts = [_PROBES[name].replace("{fn}", f"static int tdsl_probe_{name or 'plain'}(void)") for name in names]
    calls = " && ".join(f"tdsl_probe_{name or 'plain'}()" for name in names)
    return "".join(parts) + f"{_EXPORT} {{ return {calls}; }}\n"


def probe_features(cc: tuple[str, ...], timeout: float | None = None) -> tuple[tuple[str, ...] | None, bool]:
    """(the wanted features whose probes build, load and run here, or None when the plain probe
    fails; whether the answer is conclusive: no compiler run was killed by a signal).

    One probe tests them all; when it fails, each is probed on its own, and a failed probe of
    a feature is run twice before the feature counts as refused. A probe that times out raises
    (the compiler hangs: no module would build either).
    """
    import tempfile
    from concurrent.futures import ThreadPoolExecutor
    wanted = wanted_features()
    timeout = cc_timeout() if timeout is None else timeout
    killed = []   # probes that proved nothing: killed by a signal, or not even written (a full disk)
    try:
        folder = tempfile.TemporaryDirectory(prefix=f"tdsl-probe-{os.getpid()}-", ignore_cleanup_errors=True)
    except OSError:   # no temporary folder: no probe, no features (the module's build says why)
        return None, False
    with folder as tmp:
        def passes(label: str, names: tuple[str, ...], tries: int = 1) -> bool:
            source = Path(tmp) / f"tdsl-probe-{label}.c"
            library = source.with_suffix(".so")
            try:
                source.write_text(probe_source(names))
            except OSError:
                killed.append(label)
                return False
            features = tuple(n for n in names if n)
            command = list(cc) + list(flags(cc, features)) + [str(source), "-o", str(library)] + list(LIBS)
            # a feature's probe that fails is run once more before the feature is recorded off:
            # a passing failure (a killed or starved compiler) must not cost it for good
            for _ in range(tries):
                code = run_compiler(command, timeout).returncode
                if code == 0:
                    return _probe_runs(library)
                if code < 0:   # killed by a signal (the OOM killer, say): no answer about the feature
                    killed.append(label)
            return False

        if wanted and passes("all", ("",) + wanted):
            return wanted, True
        names = ("",) + wanted
        with ThreadPoolExecutor(len(names)) as pool:
            results = pool.map(lambda name: passes(name or "plain", _PROBE_NEEDS.get(name, ()) + (name,),
                                                   2 if name else 1), names)
            passed = {name for name, ok in zip(names, results) if ok}
    conclusive = not killed
    if "" not in passed:
        return None, conclusive
    return tuple(name for name in wanted
                 if name in passed and all(n in passed for n in _PROBE_NEEDS.get(name, ()))), conclusive


def _probe_runs(library: Path) -> bool:
    _openmp_waits_passively()
    try:
        probe = ctypes.CDLL(str(library)).tdsl_probe
    except (OSError, AttributeError):
        return False
    probe.restype = ctypes.c_int
    probe.argtypes = []
    return probe() == 1


@lru_cache(maxsize=None)
def cpu_identity() -> str:
    """The processor model and its feature flags (`-march=native` builds are only valid on it)."""
    import platform
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 16)
    except OSError:
        return platform.machine() + " " + platform.processor()
    first = text.split("\n\n", 1)[0]
    keep = [line for line in first.splitlines() if line.split(":")[0].strip() in ("model name", "flags")]
    return platform.machine() + " " + " ".join(keep)


@lru_cache(maxsize=None)
def openmp_supported(cc: tuple[str, ...]) -> bool:
    """Whether `cc -fopenmp` builds and runs a parallel program; asked once per compiler."""
    marker = cache.entry("openmp", cache.key(*cc, compiler_version(cc)), ".txt")
    answer = cache.read_small(marker, 16)
    if answer in (b"yes\n", b"no\n"):
        return answer == b"yes\n"
    supported = _probe_openmp(cc)
    try:
        cache.write_atomic(marker, b"yes\n" if supported else b"no\n")
    except cache.CacheWriteError:
        pass
    return supported


_OPENMP_PROBE = """#include <omp.h>
int main(void)
{
    int n = 0;
#pragma omp parallel reduction(+: n)
    n += omp_get_num_threads() > 0;
    return n > 0 ? 0 : 1;
}
"""


def _probe_openmp(cc: tuple[str, ...]) -> bool:
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory(prefix="tdsl-openmp-") as tmp:
        src, exe = Path(tmp) / "probe.c", Path(tmp) / "probe"
        src.write_text(_OPENMP_PROBE)
        try:
            built = subprocess.run(list(cc) + ["-fopenmp", str(src), "-o", str(exe)],
                                   capture_output=True, timeout=120)
            return built.returncode == 0 and subprocess.run([str(exe)], timeout=60).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False


def load_library(source: str, name: str, library: Path | None = None) -> ctypes.CDLL:
    """The library built from `source`, from the cache or built now (a broken entry is rebuilt).

    Building holds the entry's file lock: of the processes loading the same new module, one
    compiles and the others wait for it and load what it built.
    """
    library = library or library_path(source, name)
    loaded = _try_load(library)
    if loaded is None:
        try:
            loaded = _locked_build(source, library)
        except cache.CacheWriteError as err:   # a full disk: build in a temporary folder instead
            moved = cache.fall_back(library.parent, err.message) / library.name
            _keyed_flags[moved] = _keyed_flags.get(library) or flags(compiler())
            return _locked_build(source, moved)
    _keep_source(source, library.with_suffix(".c"))
    return loaded


def _locked_build(source: str, library: Path) -> ctypes.CDLL:
    with entry_lock(library):
        loaded = _try_load(library)   # built while this process waited
        return loaded if loaded is not None else build_library(source, library)


def _keep_source(source: str, path: Path) -> None:
    """Write the kept source of a library again when it is missing or damaged (warm loads read it)."""
    data = source.encode("utf-8")
    if cache.read_small(path, len(data)) != data:
        try:
            cache.write_atomic(path, data)
        except cache.CacheWriteError:
            pass


def load_built(library: Path) -> ctypes.CDLL | None:
    """A library built before, if it is still there and intact."""
    return _try_load(library)


USED_EVERY_S = 86400.0


def mark_used(path: Path) -> None:
    """Move a cache entry's modification time to now, at most once a day: `tdslc cache prune`
    removes the entries not used lately by that time."""
    try:
        if time.time() - os.stat(path).st_mtime > USED_EVERY_S:
            os.utime(path)
    except OSError:
        pass


def library_path(source: str, name: str, debug: bool = False) -> Path:
    """Where the library built from `source` lives in the cache (a debug build's flags are part
    of its key: it never shares an entry with a normal build)."""
    from tdsl.version import __version__
    cc = compiler()
    build_flags = flags(cc, debug=debug)
    identity = cpu_identity() if "-march=native" in build_flags else ""
    digest = cache.key(source, " ".join(cc), compiler_version(cc), " ".join(build_flags), __version__, identity)
    path = cache.entry(name, digest, ".so")
    _keyed_flags[path] = build_flags
    return path


# The flags each library path was keyed by, so its build uses them even when the features were
# not determined (and so not recorded) and another probe now gives a different answer.
_keyed_flags: dict[Path, tuple[str, ...]] = {}


def build_library(source: str, library: Path) -> ctypes.CDLL:
    """Build `library` once, with the probed features; a failure is the build's error, as it is."""
    cc = compiler()
    source_path = library.with_suffix(".c")
    cache.write_atomic(source_path, source.encode("utf-8"))
    compile_library(cc, _keyed_flags.get(library) or flags(cc), source_path, library)
    loaded = _try_load(library)
    if loaded is None:
        raise TdslBuildError(f"the library {library} was built but cannot be loaded; "
                             f"the generated source is kept at {source_path}")
    return loaded


def compile_library(cc: tuple[str, ...], build_flags: tuple[str, ...], source: Path, library: Path) -> None:
    """One compiler call into a temporary file, renamed onto `library` when it succeeds."""
    output = cache.temporary(library)
    command = list(cc) + list(build_flags) + [str(source), "-o", str(output)] + list(LIBS)
    try:
        result = run_compiler(command, cc_timeout())
    except CompilerTimeout as err:
        output.unlink(missing_ok=True)
        raise CompilerTimeout(f"{err.message}; the generated source is kept at {source}") from None
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    if result.returncode != 0:
        output.unlink(missing_ok=True)
        message = (result.stderr or result.stdout).strip()
        full = _disk_full(library.parent)
        error = cache.CacheWriteError if full else TdslBuildError   # (a full disk: built elsewhere)
        raise error(f"the C compiler failed ({shlex.join(command)}):\n{message}\n"
                    f"the generated source is kept at {source}{full}")
    try:
        with open(output, "ab") as f:
            f.write(_trailer(output.read_bytes()))
        cache.make_room(library)
        os.replace(output, library)
    except OSError as err:
        output.unlink(missing_ok=True)
        raise cache.write_error(library, err) from None


def _disk_full(folder: Path) -> str:
    """A line saying the folder's disk is full (under 1 MiB free), or "": the compiler's own
    message may not say so."""
    try:
        info = os.statvfs(folder)
    except (OSError, AttributeError):
        return ""
    free = info.f_bavail * info.f_frsize
    return (f"\nthe disk of {folder} is full ({free} bytes free): free some space, or remove old builds "
            f"with `tdslc cache prune`") if free < (1 << 20) else ""


# A library ends with a trailer: a magic word and the SHA-256 of everything before it (the
# dynamic loader ignores bytes after the ELF data). A truncated or damaged file fails the
# check and is rebuilt instead of being loaded, which could crash the process.
_MAGIC = b"TDSLSUM1"


def _trailer(content: bytes) -> bytes:
    return _MAGIC + hashlib.sha256(content).digest()


LIBRARY_LIMIT = 1 << 30   # bytes: a larger file in the cache is no library of ours


def intact(path: Path) -> bool:
    """Whether a built library is complete: a regular file whose trailer matches its contents
    (a folder, a FIFO or a link in its place is not: never opened for reading)."""
    return checked(path) is not None


def checked(path: Path) -> bytes | None:
    """The contents of a cache file written `with_trailer`, without the trailer; None when it is
    absent, not a regular file, larger than LIBRARY_LIMIT, or its checksum does not match."""
    data = cache.read_small(path, LIBRARY_LIMIT)
    if data is None:
        return None
    size = len(_MAGIC) + hashlib.sha256().digest_size
    return data[:-size] if len(data) > size and data[-size:] == _trailer(data[:-size]) else None


def with_trailer(content: bytes) -> bytes:
    """`content` followed by its checksum trailer (read back with `checked`)."""
    return content + _trailer(content)


def _try_load(path: Path) -> ctypes.CDLL | None:
    if not intact(path):
        return None
    _openmp_waits_passively()
    try:
        library = ctypes.CDLL(str(path))
    except OSError:
        return None
    mark_used(path)
    return library


def _openmp_waits_passively() -> None:
    """OMP_WAIT_POLICY=passive unless the user chose: read once, when libgomp first loads.

    Spinning threads answer a parallel loop a few microseconds sooner, but when another
    process holds a core, a spinning thread waits for a descheduled one for whole
    scheduler ticks (4 ms and more per loop, measured); passive threads sleep and wake.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
