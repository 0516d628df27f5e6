"""Warm loads: source text this cache has compiled before loads without parsing or compiling.

An entry is keyed by the text, its file name, tdsl's version and files, the compiler
command, the processor and the sanitizer switch. It holds the checked graphs, what calling each function needs and
the library's path, so a warm load skips parsing, checking, lowering, rendering and
hashing the C source: it unpickles, checks the library's trailer and loads it.
"""
from __future__ import annotations

import os
import pickle
from functools import lru_cache
from pathlib import Path

from . import build, cache


def warm_key(text: str, path: str | None) -> str:
    """The text and everything that shapes what tdsl makes of it; not the compiler's version:
    a library an older compiler built still computes the same thing."""
    from tdsl.version import __version__
    return cache.key("warm", text, str(path), __version__, code_stamp(), " ".join(build.compiler()),
                     "sanitize" if build.sanitizing() else "", build.cpu_identity())


@lru_cache(maxsize=None)
def code_stamp() -> str:
    """Sizes and times of tdsl's own files: an edited compiler (a working copy) misses old entries."""
    import importlib.util
    parts = []
    for package in ("tdsl", "tdsl.codegen", "tdsl.grammar", "tdsl.templates"):
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            for root, _, files in sorted(os.walk(folder)):
                for name in sorted(files):
                    if name.endswith((".py", ".j2", ".lark")):
                        info = os.stat(os.path.join(root, name))
                        parts.append(f"{root}/{name} {info.st_size} {info.st_mtime_ns}")
    return "\n".join(parts)


def remember(text: str, path: str | None, graphs: list, specs: list, library: Path, prefix: str) -> None:
    """Keep a warm entry for `text`; a module too deeply nested to pickle simply has none."""
    try:
        data = pickle.dumps((tuple(graphs), tuple(specs), str(library), prefix), protocol=pickle.HIGHEST_PROTOCOL)
    except (RecursionError, pickle.PicklingError, TypeError, AttributeError):
        return
    cache.write_atomic(cache.entry("warm", warm_key(text, path), ".pkl"), data)


def recall(text: str, path: str | None) -> tuple[list, list, Path, str] | None:
    """(graphs, call specs, library path, prefix) kept for `text`, or None (absent, unreadable, stale)."""
    entry = cache.entry("warm", warm_key(text, path), ".pkl")
    try:
        data = entry.read_bytes()
    except OSError:
        return None
    try:   # the cache folder is the user's own: a damaged entry is rebuilt, whatever the damage
        graphs, specs, library, prefix = pickle.loads(data)
    except Exception:  # noqa: BLE001
        return None
    return list(graphs), list(specs), Path(library), prefix
