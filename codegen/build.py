"""Building a C module: one compiler call into the compile cache, then ctypes loads the library.

The compiler is `TDSL_CC`, else `CC`, else `cc`. OpenMP is used when the compiler
supports it (probed once per compiler and remembered in the cache). With
`TDSL_SANITIZE=1` modules are built with AddressSanitizer and UBSan (see
tests/test_c_backend.py for how to run a process with them).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from tdsl.errors import TdslBuildError

from . import cache

BASE_FLAGS = ("-std=c99", "-O3", "-fPIC", "-shared", "-fno-math-errno")
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
    path = shutil.which(cc[0]) if cc else None
    if path is None:
        raise TdslBuildError(f"no C compiler found (looked for '{' '.join(cc) or 'cc'}'): {NO_COMPILER_HINT}")
    try:
        result = subprocess.run(list(cc) + ["--version"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as err:
        raise TdslBuildError(f"cannot run the C compiler '{cc[0]}': {err}; {NO_COMPILER_HINT}") from None
    first = (result.stdout or result.stderr).strip().splitlines()
    return f"{path}: {first[0] if first else 'unknown version'}"


def flags(cc: tuple[str, ...]) -> tuple[str, ...]:
    """The flags of a module build: optimization, OpenMP when supported, sanitizers when asked."""
    extra = ("-fopenmp",) if openmp_supported(cc) else ()
    return BASE_FLAGS + extra + (SANITIZE_FLAGS if sanitizing() else ())


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
    with tempfile.TemporaryDirectory(prefix="tdsl-openmp-") as tmp:
        src, exe = Path(tmp) / "probe.c", Path(tmp) / "probe"
        src.write_text(_OPENMP_PROBE)
        try:
            built = subprocess.run(list(cc) + ["-fopenmp", str(src), "-o", str(exe)],
                                   capture_output=True, timeout=120)
            return built.returncode == 0 and subprocess.run([str(exe)], timeout=60).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False


def load_library(source: str, name: str) -> ctypes.CDLL:
    """The library built from `source`, from the cache or built now (a broken entry is rebuilt)."""
    from tdsl import __version__
    cc = compiler()
    build_flags = flags(cc)
    digest = cache.key(source, " ".join(cc), compiler_version(cc), " ".join(build_flags), __version__)
    library = cache.entry(name, digest, ".so")
    if library.exists():
        loaded = _try_load(library)
        if loaded is not None:
            return loaded
    source_path = cache.entry(name, digest, ".c")
    cache.write_atomic(source_path, source.encode("utf-8"))
    compile_library(cc, build_flags, source_path, library)
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
    try:
        return ctypes.CDLL(str(path))
    except OSError:
        return None
