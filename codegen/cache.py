"""The compile cache: built libraries keyed by a hash of everything that went into them.

It lives in the platform's user cache folder, or in `TDSL_CACHE_DIR`. Entries are
written under a temporary name and renamed into place, so a reader (another
process building the same module at the same time) never sees half a file, and a
process building an entry holds its file lock (`NAME.lock`, codegen/build.py), so
processes loading the same new module compile it once.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

ENTRY_SUFFIXES = (".so", ".c", ".txt", ".pkl", ".lock")


def cache_dir() -> Path:
    """The cache folder (created on demand): `TDSL_CACHE_DIR`, else the user cache folder."""
    override = os.environ.get("TDSL_CACHE_DIR")
    if override:
        path = Path(override).expanduser()
    else:
        import platformdirs
        path = Path(platformdirs.user_cache_dir("tdsl", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def key(*parts: str) -> str:
    """A stable hash of the parts (source, compiler and version, flags, tdsl version)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")   # a file name may hold undecodable bytes
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:32]


def entry(name: str, digest: str, suffix: str) -> Path:
    """The path of a cache entry: readable name first, then the key."""
    return cache_dir() / f"{name}-{digest}{suffix}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    import tempfile
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        _remove(Path(tmp))
        raise


def read_small(path: Path, limit: int) -> bytes | None:
    """The bytes of a regular file of at most `limit` bytes; None when it is absent, unreadable,
    larger, or not a regular file (a FIFO, a device, a link to one: never opened for reading)."""
    import stat
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) <= limit else None


def temporary_prefix(path: Path) -> str:
    """How the temporary files for `path` begin: `NAME.PID.` (then a random part and `.tmp`), so
    the leftovers of a builder that died can be told from the files of one still writing."""
    return f"{path.name}.{os.getpid()}."


def temporary(path: Path) -> Path:
    """A fresh name next to `path`, for a file to be renamed onto it."""
    import tempfile
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False
