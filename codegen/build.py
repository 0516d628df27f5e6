"""Building a C module: one compiler call into the compile cache, then ctypes loads the library.

The compiler is `TDSL_CC`, else `CC`, else `cc`. A build asks for every optional
feature (OpenMP, `-march=native`, glibc's SIMD math library); when the compiler or
the system refuses one, the build is retried without it, and what works is
remembered in the cache, so no probe runs before the first build. With
`TDSL_SANITIZE=1` modules are built with AddressSanitizer and UBSan (see
tests/test_c_backend.py for how to run a process with them).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
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
LIBS = ("-lm",)
NO_COMPILER_HINT = ("install one (e.g. `apt install gcc`, or `xcode-select --install` on macOS), "
                    "name it with TDSL_CC or CC, or use target=\"numpy\"")


def compiler() -> tuple[str, ...]:
    """The compiler command: `TDSL_CC`, else `CC`, else `cc` (it may hold options)."""
    return tuple(shlex.split(os.environ.get("TDSL_CC") or os.environ.get("CC") or "cc"))


def sanitizing() -> bool:
    return os.environ.get("TDSL_SANITIZE", "") not in ("", "0")


@lru_cache(maxsize=None)
def compiler_version(cc: tuple[str, ...]) -> str:
    """The compiler's resolved path and first line of `--version`; an error when there is none."""
    import shutil
    import subprocess
    path = shutil.which(cc[0]) if cc else None
    if path is None:
        raise TdslBuildError(f"no C compiler found (looked for '{' '.join(cc) or 'cc'}'): {NO_COMPILER_HINT}")
    try:
        result = subprocess.run(list(cc) + ["--version"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as err:
        raise TdslBuildError(f"cannot run the C compiler '{cc[0]}': {err}; {NO_COMPILER_HINT}") from None
    first = (result.stdout or result.stderr).strip().splitlines()
    return f"{path}: {first[0] if first else 'unknown version'}"


def flags(cc: tuple[str, ...], features: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The flags of a module build: optimization, the optional features, sanitizers when asked."""
    features = usable_features(cc) if features is None else features
    extra = tuple(flag for name in features for flag in FEATURE_FLAGS[name]())
    return BASE_FLAGS + extra + (SANITIZE_FLAGS if sanitizing() else ())


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


# Optional features, dropped from the end when a build with them fails. `-z defs` turns a
# missing libmvec function into a link error (and so into a build without vector math).
FEATURE_FLAGS = {
    "openmp": lambda: ("-fopenmp",),
    "native": lambda: ("-march=native",),
    "vector_math": lambda: (f"-DTDSL_VECTOR_MATH={vector_math_level()}", "-Wl,-z,defs"),
    # TLS descriptors: a module's thread-local data (the Philox block cache of rand, in the C
    # prelude) is read without a __tls_get_addr call per element (rand of 10M f64: 1.3x faster)
    "tls_descriptors": lambda: ("-mtls-dialect=gnu2",),
}


def wanted_features() -> tuple[str, ...]:
    import platform
    return ("openmp", "native") + (("vector_math",) if vector_math_level() else ()) + \
        (("tls_descriptors",) if platform.machine() in ("x86_64", "AMD64") else ())


@lru_cache(maxsize=None)
def usable_features(cc: tuple[str, ...]) -> tuple[str, ...]:
    """The features a build uses: all that apply, less those a failed build ruled out here."""
    try:
        return tuple(features_marker(cc).read_text().split())
    except OSError:
        return wanted_features()


def features_marker(cc: tuple[str, ...]) -> Path:
    key = cache.key(*cc, compiler_version(cc), cpu_identity(), "sanitize" if sanitizing() else "")
    return cache.entry("features", key, ".txt")


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
    try:
        return marker.read_text().strip() == "yes"
    except OSError:
        pass
    supported = _probe_openmp(cc)
    cache.write_atomic(marker, b"yes\n" if supported else b"no\n")
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
    """The library built from `source`, from the cache or built now (a broken entry is rebuilt)."""
    library = library or library_path(source, name)
    if library.exists():
        loaded = _try_load(library)
        if loaded is not None:
            return loaded
    return build_library(source, library)


def load_built(library: Path) -> ctypes.CDLL | None:
    """A library built before, if it is still there and intact."""
    return _try_load(library)


def library_path(source: str, name: str) -> Path:
    """Where the library built from `source` lives in the cache."""
    from tdsl.version import __version__
    cc = compiler()
    build_flags = flags(cc)
    identity = cpu_identity() if "-march=native" in build_flags else ""
    digest = cache.key(source, " ".join(cc), compiler_version(cc), " ".join(build_flags), __version__, identity)
    return cache.entry(name, digest, ".so")


def build_library(source: str, library: Path) -> ctypes.CDLL:
    """Build `library` with every usable feature, dropping features from the end while it fails."""
    cc = compiler()
    source_path = library.with_suffix(".c")
    cache.write_atomic(source_path, source.encode("utf-8"))
    features = usable_features(cc)
    while True:
        try:
            compile_library(cc, flags(cc, features), source_path, library)
        except TdslBuildError:
            if not features:
                raise
            features = features[:-1]
            continue
        loaded = _try_load(library)
        if loaded is not None:
            break
        if not features:
            raise TdslBuildError(f"the library {library} was built but cannot be loaded; "
                                 f"the generated source is kept at {source_path}")
        features = features[:-1]
    if features != usable_features(cc):
        cache.write_atomic(features_marker(cc), (" ".join(features) + "\n").encode())
        usable_features.cache_clear()
    return loaded


def compile_library(cc: tuple[str, ...], build_flags: tuple[str, ...], source: Path, library: Path) -> None:
    """One compiler call into a temporary file, renamed onto `library` when it succeeds."""
    import subprocess   # here: a warm load never compiles
    output = cache.temporary(library)
    command = list(cc) + list(build_flags) + [str(source), "-o", str(output)] + list(LIBS)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as err:
        output.unlink(missing_ok=True)
        raise TdslBuildError(f"cannot run the C compiler '{cc[0]}': {err}; {NO_COMPILER_HINT}") from None
    if result.returncode != 0:
        output.unlink(missing_ok=True)
        message = (result.stderr or result.stdout).strip()
        raise TdslBuildError(f"the C compiler failed ({shlex.join(command)}):\n{message}\n"
                             f"the generated source is kept at {source}")
    with open(output, "ab") as f:
        f.write(_trailer(output.read_bytes()))
    os.replace(output, library)


# A library ends with a trailer: a magic word and the SHA-256 of everything before it (the
# dynamic loader ignores bytes after the ELF data). A truncated or damaged file fails the
# check and is rebuilt instead of being loaded, which could crash the process.
_MAGIC = b"TDSLSUM1"


def _trailer(content: bytes) -> bytes:
    return _MAGIC + hashlib.sha256(content).digest()


def intact(path: Path) -> bool:
    """Whether a built library is complete: its trailer matches its contents."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    size = len(_MAGIC) + hashlib.sha256().digest_size
    return len(data) > size and data[-size:] == _trailer(data[:-size])


def _try_load(path: Path) -> ctypes.CDLL | None:
    if not intact(path):
        return None
    _openmp_waits_passively()
    try:
        return ctypes.CDLL(str(path))
    except OSError:
        return None


def _openmp_waits_passively() -> None:
    """OMP_WAIT_POLICY=passive unless the user chose: read once, when libgomp first loads.

    Spinning threads answer a parallel loop a few microseconds sooner, but when another
    process holds a core, a spinning thread waits for a descheduled one for whole
    scheduler ticks (4 ms and more per loop, measured); passive threads sleep and wake.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
