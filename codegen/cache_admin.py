"""Looking after the compile cache: `tdslc cache info` and `tdslc cache clear`."""
from __future__ import annotations

from pathlib import Path

from .cache import ENTRY_SUFFIXES, _remove, cache_dir


def entries() -> list[Path]:
    """The files of the cache, built libraries, kept sources and temporaries alike."""
    folder = cache_dir()
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and (p.suffix in ENTRY_SUFFIXES or p.name.endswith(".tmp")))


def info() -> str:
    """A summary for `tdslc cache info`: where the cache is and what it holds."""
    files = entries()
    libraries = [p for p in files if p.suffix == ".so"]
    size = sum(p.stat().st_size for p in files if p.exists())
    return (f"cache folder: {cache_dir()}\n"
            f"libraries: {len(libraries)}\n"
            f"files: {len(files)} ({_human(size)})")


def clear() -> int:
    """Remove every cache entry; the number of files removed."""
    return sum(_remove(p) for p in entries())


def _human(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} bytes"
