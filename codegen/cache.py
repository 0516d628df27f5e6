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

from tdsl.errors import TdslBuildError

ENTRY_SUFFIXES = (".so", ".c", ".txt", ".json", ".pkl", ".cl", ".lark", ".lock")


# The folder each value of TDSL_CACHE_DIR ("" for none) resolved to in this process, and the
# temporary folder used when the configured one cannot be written.
_resolved: dict[str, tuple[Path, tuple[int, int]]] = {}
_fallback: Path | None = None


def cache_dir() -> Path:
    """The cache folder: `TDSL_CACHE_DIR`, else the user cache folder (created private, 0700).

    A folder other users can write is refused (TdslBuildError): whoever writes it could make
    tdsl load their code. A folder that cannot be created or written is replaced, for this
    process, by a temporary folder, with one warning saying so.
    """
    setting = os.environ.get("TDSL_CACHE_DIR", "")
    known = _resolved.get(setting)
    if known is not None:   # checked again when the folder is not the one checked before
        found, identity = known
        try:
            info = os.stat(found)
            if (info.st_dev, info.st_ino) == identity:
                return found
        except OSError:
            pass
    found = _usable(_configured(setting))
    info = os.stat(found)
    _resolved[setting] = (found, (info.st_dev, info.st_ino))
    return found


def configured_dir() -> Path:
    """The cache folder the settings name (`TDSL_CACHE_DIR` or the user cache folder), neither
    created nor checked (`tdslc cache` works on it)."""
    return _configured(os.environ.get("TDSL_CACHE_DIR", ""))


def _configured(setting: str) -> Path:
    if setting:   # (absolute: a process that changes its working folder keeps its cache)
        return Path(setting).expanduser().absolute()
    import platformdirs
    return Path(platformdirs.user_cache_dir("tdsl", appauthor=False)).absolute()


def _usable(path: Path) -> Path:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:   # (no C library loads from there)
        return fall_back(path, "its path is not UTF-8 text")
    try:
        made = not path.is_dir()
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if made:
            os.chmod(path, 0o700)   # whatever the umask
    except FileExistsError:
        return fall_back(path, "it is a file, not a folder")
    except OSError as err:
        return fall_back(path, err.strerror or str(err))
    check_private(path)
    if not os.access(path, os.W_OK | os.X_OK):
        return fall_back(path, "it cannot be written")
    return path


def check_private(path: Path) -> None:
    """Refuse a cache folder that another user owns or that other users can write."""
    import stat
    if not hasattr(os, "getuid"):
        return
    try:
        info = os.stat(path)
    except OSError as err:
        raise TdslBuildError(f"cannot read the cache folder {path}: {err.strerror or err}") from None
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid not in (os.getuid(), 0):
        raise TdslBuildError(f"the cache folder {path} belongs to another user (uid {info.st_uid}), who could "
                             f"make tdsl load their code; set TDSL_CACHE_DIR to a folder of your own")
    if mode & 0o022:
        raise TdslBuildError(f"the cache folder {path} can be written by other users (mode {mode:04o}), who "
                             f"could make tdsl load their code: make it private (`chmod go-w {path}`) "
                             f"or set TDSL_CACHE_DIR to a folder of your own")


def fall_back(path: Path, reason: str) -> Path:
    """The temporary cache folder of this process, used because `path` cannot be written
    (`reason`); the first call warns, and the folder is removed when the process ends."""
    global _fallback
    if _fallback is None:
        import atexit
        import shutil
        import tempfile
        import warnings
        from tdsl.errors import TdslWarning
        _fallback = Path(tempfile.mkdtemp(prefix=f"tdsl-cache-{os.getpid()}-"))
        atexit.register(shutil.rmtree, _fallback, ignore_errors=True)
        warnings.warn(f"tdsl cannot write its cache folder {path} ({reason}); so this process builds in "
                      f"the temporary folder {_fallback}, removed when it ends, so nothing it builds is "
                      f"kept: set TDSL_CACHE_DIR to a folder you can write", TdslWarning,
                      stacklevel=_caller_level())
    info = os.stat(_fallback)
    for setting, (folder, _) in list(_resolved.items()):
        if folder == path:
            _resolved[setting] = (_fallback, (info.st_dev, info.st_ino))
    return _fallback


def _caller_level() -> int:
    """The stack level of the first frame outside tdsl (the user's call), for warnings.warn."""
    import sys
    import tdsl
    own = tuple(str(Path(m.__file__).parent) for m in (tdsl, sys.modules[__name__]))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(own):
        frame, level = frame.f_back, level + 1
    return level


class CacheWriteError(TdslBuildError):
    """A file of the cache could not be written (a full disk, a folder that became read-only)."""


def write_error(path: Path, err: OSError) -> CacheWriteError:
    """The tdsl error for failing to write the cache file `path`, saying what to do."""
    import errno
    reason = err.strerror or str(err)
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        hint = "free some space, or remove old builds with `tdslc cache prune`"
    elif err.errno == errno.ENAMETOOLONG:
        hint = "set TDSL_CACHE_DIR to a folder with a shorter path"
    else:
        hint = "set TDSL_CACHE_DIR to a folder you can write"
    return CacheWriteError(f"cannot write the cache file {path}: {reason}; {hint}")


def key(*parts: str) -> str:
    """A stable hash of the parts (source, compiler and version, flags, tdsl version)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")   # a file name may hold undecodable bytes
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:32]


NAME_LIMIT = 64   # characters of a module's name in its entries' file names


def entry(name: str, digest: str, suffix: str) -> Path:
    """The path of a cache entry: readable name first (letters, digits, `_.-`, at most
    NAME_LIMIT of them: file names have a length limit), then the key."""
    import re
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:NAME_LIMIT].lstrip(".") or "module"
    return cache_dir() / f"{readable}-{digest}{suffix}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename; a folder
    or other non-file in the way is removed first. A failure is a CacheWriteError."""
    tmp = temporary(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        make_room(path)
        os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        raise write_error(path, err) from None
    except BaseException:
        _remove(tmp)
        raise


def make_room(path: Path) -> None:
    """Remove a folder (or anything but a file or a link) standing where the file `path` goes:
    a damaged cache, which a rename cannot replace."""
    import shutil
    import stat
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path, ignore_errors=True)
    elif not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        _remove(path)


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
    """A fresh name next to `path`, for a file to be renamed onto it (a CacheWriteError when
    the folder cannot take it)."""
    import tempfile
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
    except OSError as err:
        raise write_error(path, err) from None
    os.close(fd)
    return Path(tmp)


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False
