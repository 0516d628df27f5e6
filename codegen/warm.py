"""Warm loads: source text this cache has compiled before loads without parsing or compiling.

An OpenCL program's entry (remember_program) holds the program's text and host plan instead of
a library's name; its binary is in the cache's opencl folder (codegen/opencl_backend.py).

An entry is keyed by the text, its file name, tdsl's version and files, the compiler
command, the processor and the sanitizer switch. It holds the checked graphs, what calling each function needs and
the library's file name, so a warm load skips parsing, checking, lowering, rendering and
hashing the C source: it reads the entry, checks the library's trailer and loads it.

The entry is data, never code: a header line, then JSON rows `[tag, field, ...]`, one per
tuple, list or object of tdsl's own classes (ALLOWED), each referring to the rows before it
as `[k]`. Reading one builds each object through its constructor (a node is interned as when
it was first built) in one loop, however deep the graph; an entry that is damaged in any way,
or names anything else, is ignored and the module is compiled again.
"""
from __future__ import annotations

import json
import math
import os
import re
import struct
from dataclasses import fields
from functools import lru_cache
from itertools import repeat
from pathlib import Path

from . import build, cache

HEADER = b"tdsl warm 1\n"
PROGRAM_HEADER = b"tdsl warm opencl 1\n"   # an OpenCL program's entry (recall_program)
SUFFIX = ".json"
LIMIT = 64 << 20   # bytes: far above any real module's entry, and never read past
LIBRARY_NAME = re.compile(r"[^/\\\x00]+\.so")   # a file in the cache folder, nothing else
PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SCALARS = (str, int, bool, type(None))
_VALUES = ("t", "Dim", "FloorDivAtom", "Location", "f")   # rows an equal one may stand for


class UnknownValue(Exception):
    """A value the entry format does not hold: the module gets no warm entry."""


def warm_key(text: str, path: str | None) -> str:
    """The text and everything that shapes what tdsl makes of it; not the compiler's version:
    a library an older compiler built still computes the same thing."""
    from tdsl.version import __version__
    import os
    return cache.key("warm", text, str(path), __version__, code_stamp(), " ".join(build.compiler()),
                     "sanitize" if build.sanitizing() else "", build.cpu_identity(),
                     os.environ.get("TDSL_STABILIZE", ""))   # (the rewrites it selects: lang/rewrite.py)


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


def program_key(text: str, path: str | None) -> str:
    """The key of an OpenCL program's warm entry: the text and what shapes the program made of it
    (the device is not part of it: what depends on the device is chosen when it is built)."""
    from tdsl.version import __version__
    return cache.key("warm opencl", text, str(path), __version__, code_stamp(),
                     os.environ.get("TDSL_STABILIZE", ""))


def remember_program(text: str, path: str | None, graphs: list, specs: list, source: str, plan: dict) -> None:
    """Keep a warm entry for `text` on the opencl target: the graphs, the calls, the program's text
    and its host plan (plain data, kept as JSON text)."""
    try:
        rows = encode((tuple(graphs), tuple(specs), source, json.dumps(plan, allow_nan=False)))
        data = PROGRAM_HEADER + json.dumps(rows, separators=(",", ":"), allow_nan=False).encode("ascii")
    except (UnknownValue, ValueError, TypeError, RecursionError):
        return
    if len(data) <= LIMIT:
        cache.write_atomic(cache.entry("warm", program_key(text, path), SUFFIX), data)


def recall_program(text: str, path: str | None) -> tuple[list, list, str, dict] | None:
    """(graphs, call specs, OpenCL program text, host plan) kept for `text`, or None."""
    entry = cache.entry("warm", program_key(text, path), SUFFIX)
    data = cache.read_small(entry, LIMIT)
    if data is None or not data.startswith(PROGRAM_HEADER):
        return None
    try:   # as read_entry: whatever is wrong with it, the module is compiled again
        rows = json.loads(data[len(PROGRAM_HEADER):], parse_constant=_not_written, object_hook=_not_written)
        graphs, specs, source, plan_text = decode(rows)
        plan = json.loads(plan_text, parse_constant=_not_written)
        function_graph, call_spec = _allowed()["FunctionGraph"][0], _allowed()["CallSpec"][0]
        if not (type(graphs) is tuple and type(specs) is tuple and len(graphs) == len(specs)
                and all(type(g) is function_graph for g in graphs) and all(type(s) is call_spec for s in specs)
                and type(source) is str and type(plan) is dict and type(plan.get("functions")) is dict
                and type(plan.get("uses_f64")) is bool
                and all(type(plan["functions"].get(s.name)) is dict for s in specs)):
            return None
    except Exception:  # noqa: BLE001
        return None
    build.mark_used(entry)
    return list(graphs), list(specs), source, plan


def remember(text: str, path: str | None, graphs: list, specs: list, library: Path, prefix: str) -> None:
    """Keep a warm entry for `text`; a module holding a value the format does not know has none."""
    if library.parent != cache.cache_dir() or not valid_library_name(library.name):
        return
    try:
        rows = encode((tuple(graphs), tuple(specs), library.name, prefix))
        data = HEADER + json.dumps(rows, separators=(",", ":"), allow_nan=False).encode("ascii")
    except (UnknownValue, ValueError, TypeError, RecursionError):
        return   # ValueError: an int too long for json's text conversion
    if len(data) <= LIMIT:   # a larger one would never be read
        cache.write_atomic(cache.entry("warm", warm_key(text, path), SUFFIX), data)


def recall(text: str, path: str | None) -> tuple[list, list, str, str] | None:
    """(graphs, call specs, library file name, prefix) kept for `text`, or None (absent, damaged)."""
    entry = cache.entry("warm", warm_key(text, path), SUFFIX)
    data = cache.read_small(entry, LIMIT)
    found = None if data is None else read_entry(data)
    if found is not None:
        build.mark_used(entry)   # (`tdslc cache prune` goes by last use)
    return found


def read_entry(data: bytes) -> tuple[list, list, str, str] | None:
    """What an entry's bytes hold, or None when they are not exactly what `remember` writes."""
    if not data.startswith(HEADER):
        return None
    try:   # whatever is wrong with it, an entry is data: the module is compiled again
        rows = json.loads(data[len(HEADER):], parse_constant=_not_written, object_hook=_not_written)
        graphs, specs, library, prefix = decode(rows)
        function_graph, call_spec = _allowed()["FunctionGraph"][0], _allowed()["CallSpec"][0]
        if not (type(graphs) is tuple and type(specs) is tuple and len(graphs) == len(specs)
                and all(type(g) is function_graph for g in graphs) and all(type(s) is call_spec for s in specs)
                and type(library) is str and valid_library_name(library)
                and type(prefix) is str and PREFIX.fullmatch(prefix)):
            return None
    except Exception:  # noqa: BLE001
        return None
    return list(graphs), list(specs), library, prefix


def valid_library_name(name: str) -> bool:
    """A plain file name ending in .so: joined with the cache folder, it names a file there."""
    return bool(LIBRARY_NAME.fullmatch(name)) and ".." not in name


def _not_written(found):
    """NaN, Infinity or a JSON object: `encode` writes none (a float that is not finite has a row)."""
    raise ValueError(f"a warm entry holds {found!r}")


@lru_cache(maxsize=None)
def _allowed() -> dict[str, tuple[type, tuple[str, ...], tuple]]:
    """{tag: (class, field names, field types)} of every class an entry may hold: tdsl's own."""
    from tdsl.callspec import CallSpec
    from tdsl.dims import Dim, FloorDivAtom
    from tdsl.errors import Location
    from tdsl.graph import Check, FunctionGraph, Node, Param, Region
    from tdsl.runner import ErrorEntry, ErrorTable
    opt_loc, opt_str, opt_dim = (Location, type(None)), (str, type(None)), (Dim, type(None))
    types = {
        Node: (str, str, tuple, tuple, tuple, bool, opt_loc, opt_str),
        Param: (str, str, tuple, opt_loc),
        FunctionGraph: (str, tuple, tuple, tuple, tuple, tuple, bool, opt_loc, str, tuple),
        Region: (str, tuple, int, int, opt_str, bool, opt_loc, (Region, type(None))),
        Check: (Dim, str, opt_loc),
        Dim: (tuple,),
        FloorDivAtom: (Dim, int),
        Location: (str, int, int, str, (int, type(None)), (tuple, type(None))),
        CallSpec: (str, str, tuple, tuple, tuple, tuple, tuple, bool, ErrorTable, str),
        ErrorEntry: (str, opt_loc, opt_dim, opt_dim, opt_str, bool, (int, type(None)), opt_str, bool, str),
    }
    table = {}
    for cls, field_types in types.items():
        names = tuple(f.name for f in fields(cls))
        assert len(names) == len(field_types) and all(f.init for f in fields(cls)), cls
        table[cls.__name__] = (cls, names, field_types)
    return table


@lru_cache(maxsize=None)
def _elements() -> dict[str, tuple[tuple[int, type], ...]]:
    """{tag: ((field index, class of every element of that tuple), ...)}: the tuples a graph is made of."""
    from tdsl.dims import Dim
    from tdsl.graph import FunctionGraph, Node, Param
    return {"Node": ((2, Dim), (3, Node)), "Param": ((2, Dim),), "Dim": ((0, tuple),),
            "FunctionGraph": ((1, Param), (2, str), (3, Node), (9, Node)), "Region": ((1, FunctionGraph),),
            "CallSpec": ((2, Param), (3, str)), "Location": ((5, int),)}


@lru_cache(maxsize=None)
def _tags() -> dict[type, str]:
    from tdsl.runner import ErrorTable
    return {**{cls: tag for tag, (cls, _, _) in _allowed().items()}, tuple: "t", list: "l", ErrorTable: "E"}


def _parts(value) -> tuple[str, list | tuple]:
    """The tag and the fields of a value the format holds in a row of its own."""
    kind = type(value)
    tag = _tags().get(kind)
    if tag is None:
        if kind is float:   # not finite (finite floats are JSON numbers): its exact bits
            return "f", (struct.pack(">d", value).hex(),)
        raise UnknownValue(f"a warm entry cannot hold a {kind.__module__}.{kind.__qualname__}")
    if tag in ("t", "l", "E"):
        return tag, value
    return tag, [getattr(value, name) for name in _allowed()[tag][1]]


def _inline(value) -> bool:
    return type(value) in _SCALARS or (type(value) is float and math.isfinite(value))


def encode(root) -> list:
    """Rows [tag, field...], each field a JSON scalar or [k] (row k, always an earlier one); the
    last row is `root`. An object met twice is one row, and so are equal values whose identity
    nothing reads (tuples, sizes, places). Iterative: a long chain of nodes is fine."""
    rows: list = []
    row_of: dict[int, int] = {}   # id of an object (all alive inside root) -> its row
    same: dict[str, int] = {}     # the exact text of a value row -> the row
    stack = [(root, False)]
    while stack:
        value, ready = stack.pop()
        if id(value) in row_of:
            continue
        tag, parts = _parts(value)
        if not ready:
            stack.append((value, True))
            stack.extend((p, False) for p in reversed(parts) if not _inline(p) and id(p) not in row_of)
            continue
        row = [tag, *(p if _inline(p) else [row_of[id(p)]] for p in parts)]
        if tag in _VALUES:
            text = json.dumps(row, allow_nan=False)   # exact: 1, 1.0, True and -0.0 all differ
            row_of[id(value)] = same.setdefault(text, len(rows))
            if row_of[id(value)] < len(rows):
                continue
        rows.append(row)
        row_of[id(value)] = len(rows) - 1
    return rows


def decode(rows: list):
    """The object of the last row, every row built through its class's constructor from the ones
    before it. Raises (anything) on an entry that is not exactly what `encode` writes."""
    from tdsl.runner import ErrorTable
    allowed, elements = _allowed(), _elements()
    error_entry = allowed["ErrorEntry"][0]
    built: list = []
    for row in rows:
        tag = row[0]
        # [k] is a row built before this one (k < 0 counts back from the last): never one ahead
        values = [built[part[0]] if type(part) is list else part for part in row[1:]]
        if tag == "t":
            built.append(tuple(values))
        elif tag == "l":
            built.append(values)
        elif tag == "E":
            if not all(map(isinstance, values, repeat(error_entry))):
                raise ValueError("a warm entry's error table holds something else")
            built.append(ErrorTable(values))
        elif tag == "f":
            (bits,) = values
            if len(bits) != 16:
                raise ValueError("a warm entry's float is not 8 bytes")
            built.append(struct.unpack(">d", bytes.fromhex(bits))[0])
        else:
            cls, names, types = allowed[tag]   # KeyError: a tag that is not on the list
            if len(values) != len(names) or not all(map(isinstance, values, types)) \
                    or not all(all(map(isinstance, values[i], repeat(kind))) for i, kind in elements.get(tag, ())):
                raise ValueError(f"a warm entry's {tag} does not have the right fields")
            built.append(cls(*values))
    return built[-1]
