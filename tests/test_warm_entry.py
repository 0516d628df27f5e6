"""The warm-load entry (codegen/warm.py) is data read through an allow-list, never code.

A warm load gives the same graphs and results as a cold one; a crafted entry (a pickle, a
JSON entry naming another class, a library outside the cache folder) runs nothing and loads
nothing; a damaged entry or kept `.c` of any kind (a FIFO, a link to /dev/zero, a folder) is
ignored, without hanging; an entry that cannot be written costs only the next warm start.
Each load runs in a child process (its own node tables, and a timeout instead of a hang).
"""
from __future__ import annotations

import errno
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tdsl
from tdsl.codegen import cache, warm
from tdsl.dims import Dim
from tdsl.graph import Node

# Control flow, a gradient through a loop and section-12 builtins, literals that are not plain
# numbers (-0.0, nan, inf, a float beyond 2**64) and sizes with floor divisions.
PROGRAM = """
const LIMITS = [-inf, -0.0, nan, inf]

fn halves(x: f64[n]) -> (f64[n - n // 2], f64[n // 2]) {
    return x[n // 2:], x[:n // 2]
}

fn consts(x: f64[n]) {
    return x * -0.0, where(x > 0.0, x, -inf), nan + x, LIMITS * max(x), x + 123456789012345678901234567890.0
}

fn loops(x: f64[n], k: i64) -> (f64, i64, f64[n]) {
    s = 0.0
    for i in range(n) { s = s + x[i] * x[(i + 1) // 2] }
    c = k
    while c > 1 { c = c // 3 }
    y = x
    if c == 1 { y = x * 2.0 } else { y = x - 1.0 }
    return s, c, y
}

fn loss(x: f64[n], w: f64) -> f64 {
    h = x
    for i in range(3) { h = tanh(h * w) }
    return sum(h * cumprod(sort(x)))
}

fn dloss(x: f64[n], w: f64) -> (f64, f64[n]) {
    return grad(loss(x, w), w, x)
}
"""

# The same file name and functions computing something else: a library "built elsewhere".
FOREIGN = "fn loops(x: f64[n], k: i64) -> (f64, i64, f64[n]) { return 100.0, k, x + 100.0 }\n"
SMALL = "fn loops(x: f64[n], k: i64) -> (f64, i64, f64[n]) { return sum(x), k * 2, x * 3.0 }\n"

LOAD = """
    import os, sys, numpy as np, tdsl
    from tdsl import printer
    m = tdsl.load(sys.argv[1])
    print("parsed" if "lark" in sys.modules else "warm")
    x = np.array([0.5, -1.25, 2.0, 3.5, -0.0])
    print(repr(m.loops(x, 100)))
    if hasattr(m, "dloss"):
        print(repr(m.halves(x)), repr(m.consts(x)), repr(m.dloss(x, 0.75)))
        for f in m:
            print(f.explain(), printer.graph_text(f.graph), printer.to_tdsl(f.graph), f.source, sep="\\n")
    maps = open("/proc/self/maps").read()
    print("libraries:", " ".join(sorted({line.split()[-1] for line in maps.splitlines() if ".so" in line})))
    """


def load(cache_dir: Path, program: Path) -> list[str]:
    """What loading `program` with this cache prints: parsed or warm, results, graphs, libraries."""
    env = dict(os.environ, TDSL_CACHE_DIR=str(cache_dir))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(LOAD), str(program)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def results(lines: list[str]) -> list[str]:
    return [line for line in lines[1:] if not line.startswith("libraries:")]


def seeded(tmp_path_factory, text: str) -> tuple[Path, Path, list[str]]:
    """A program file, a cache folder holding its library and warm entry, and the cold load's output."""
    folder = tmp_path_factory.mktemp("seed")
    program = folder / "prog.tdsl"
    program.write_text(text)
    cold = load(folder / "cache", program)
    assert cold[0] == "parsed"
    return program, folder / "cache", cold


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return seeded(tmp_path_factory, SMALL)


def copy_of(seed, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(program, cache folder, warm entry) of a fresh copy of a seeded cache."""
    program, cache_dir, _ = seed
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy, symlinks=True)
    (entry,) = [p for p in copy.iterdir() if p.name.startswith("warm-") and p.suffix != ".lock"]
    return program, copy, entry


def rows_of(entry: Path) -> list:
    data = entry.read_bytes()
    assert data.startswith(b"tdsl warm 1\n")
    return json.loads(data[len(b"tdsl warm 1\n"):])


def write_rows(entry: Path, rows: list) -> None:
    entry.write_bytes(b"tdsl warm 1\n" + json.dumps(rows).encode())


# -- a warm load is the cold one ------------------------------------------------------------------

def test_a_warm_load_gives_the_same_graphs_and_results(tmp_path_factory):
    program, cache_dir, cold = seeded(tmp_path_factory, PROGRAM)
    (entry,) = cache_dir.glob("warm-*.json")
    assert not list(cache_dir.glob("warm-*.pkl"))
    library = rows_of(entry)[-1][3]   # the library: a file name in the cache folder, no path
    assert "/" not in library and (cache_dir / library).is_file()
    warm_load = load(cache_dir, program)
    assert warm_load[0] == "warm"
    assert results(warm_load) == results(cold)
    text = entry.read_text()
    assert '"Region"' in text and '"FloorDivAtom"' in text and "-0.0" in text
    assert '"7ff8000000000000"' in text and '"fff0000000000000"' in text   # nan and -inf, bit for bit


# -- a crafted entry runs nothing and loads nothing ------------------------------------------------

class _Opens:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class _Shell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}-system",))


def test_a_pickle_in_the_entry_runs_nothing(small, tmp_path):
    program, cache_dir, entry = copy_of(small, tmp_path)
    marker = tmp_path / "marker"
    payload = pickle.dumps((_Opens(marker), _Shell(marker)))
    for path in (entry, entry.with_suffix(".pkl")):   # the old entry's name too
        path.write_bytes(payload)
    got = load(cache_dir, program)
    assert not marker.exists() and not Path(f"{marker}-system").exists()
    assert got[0] == "parsed" and results(got) == results(small[2])


@pytest.mark.parametrize("tag, argument", [("os.system", "touch {marker}"),
                                           ("subprocess.getoutput", "touch {marker}"),
                                           ("builtins.eval", "open({marker!r}, 'w')"),
                                           ("posix.system", "touch {marker}")])
def test_an_entry_naming_another_class_runs_nothing(small, tmp_path, tag, argument):
    program, cache_dir, entry = copy_of(small, tmp_path)
    marker = str(tmp_path / "marker")
    rows = rows_of(entry)
    root = rows.pop()
    rows.append([tag, argument.format(marker=marker)])
    rows.append(root[:4] + [[len(rows) - 1]])   # the prefix is now that object
    write_rows(entry, rows)
    got = load(cache_dir, program)
    assert not Path(marker).exists()
    assert got[0] == "parsed" and results(got) == results(small[2])


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """A library of the same module name and functions, built in another cache folder."""
    _, cache_dir, _ = seeded(tmp_path_factory, FOREIGN)
    (library,) = cache_dir.glob("prog-*.so")
    return library


@pytest.mark.parametrize("where", ["absolute", "parent", "subfolder"])
def test_an_entry_cannot_name_a_library_outside_the_cache_folder(small, foreign, tmp_path, where):
    program, cache_dir, entry = copy_of(small, tmp_path)
    if where == "absolute":
        name, library = str(foreign), foreign
    else:
        folder = tmp_path / "elsewhere" if where == "parent" else cache_dir / "sub"
        folder.mkdir()
        library = folder / foreign.name
        shutil.copy(foreign, library)
        shutil.copy(foreign.with_suffix(".c"), library.with_suffix(".c"))
        name = f"../elsewhere/{foreign.name}" if where == "parent" else f"sub/{foreign.name}"
    rows = rows_of(entry)
    rows[-1][3] = name
    write_rows(entry, rows)
    got = load(cache_dir, program)
    assert got[0] == "parsed" and results(got) == results(small[2])
    assert str(library) not in got[-1] and foreign.name not in got[-1]


# -- a damaged entry or kept source is ignored -----------------------------------------------------

def damage(path: Path, kind: str) -> None:
    data = path.read_bytes()
    path.unlink()
    if kind == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif kind == "random":
        path.write_bytes(random.Random(7).randbytes(4096))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "header only":
        path.write_bytes(data[:data.index(b"\n") + 1])
    elif kind == "not utf-8":
        path.write_bytes(data[:100] + b"\xff\xfe\x80" + data[100:])
    elif kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "link to /dev/zero":
        path.symlink_to("/dev/zero")


@pytest.mark.parametrize("kind", ["truncated", "random", "empty", "header only", "not utf-8", "folder", "fifo",
                                  "link to /dev/zero"])
def test_a_damaged_entry_is_ignored(small, tmp_path, kind):
    program, cache_dir, entry = copy_of(small, tmp_path)
    damage(entry, kind)
    got = load(cache_dir, program)
    assert got[0] == "parsed" and results(got) == results(small[2])


@pytest.mark.parametrize("kind", ["not utf-8", "fifo", "folder", "link to /dev/zero"])
def test_a_damaged_kept_source_is_ignored(small, tmp_path, kind):
    program, cache_dir, _ = copy_of(small, tmp_path)
    (source,) = cache_dir.glob("prog-*.c")
    damage(source, kind)
    got = load(cache_dir, program)
    assert got[0] == "parsed" and results(got) == results(small[2])


def names_row(rows: list) -> list:
    """A reference to a tuple of strings (the size variables): a valid row, of the wrong kind for a shape."""
    return [next(k for k, row in enumerate(rows) if row[0] == "t" and row[1:] and all(isinstance(p, str) for p in row[1:]))]


@pytest.mark.parametrize("change", [
    lambda rows: rows[-1].__setitem__(0, "Node"),                   # the root as a node: wrong fields
    lambda rows: rows[-1].__setitem__(0, "tdsl.graph.Node"),        # a name that is not a tag
    lambda rows: rows[-1].append("x"),                              # the root with five parts
    lambda rows: rows[-1].__setitem__(1, [len(rows)]),              # a row not written yet
    lambda rows: rows[-1].__setitem__(1, []),                       # a reference to nothing
    lambda rows: rows[-1].__setitem__(3, "prog.so\x00.so"),        # a library name with a NUL
    lambda rows: rows[-1].__setitem__(3, "prog.dylib"),             # ... not a .so
    lambda rows: rows[-1].__setitem__(4, "x; rm"),                  # a prefix that is no C name
    lambda rows: rows.__setitem__(0, ["Location", "f", 1, 2, "line"]),   # a field too few
    lambda rows: rows.__setitem__(0, ["f", "7ff8"]),                # a float of two bytes
    lambda rows: rows.__setitem__(0, ["t", {"a": 1}]),              # a JSON object
    lambda rows: rows.__setitem__(0, ["t", float("nan")]),          # NaN as JSON writes it
    lambda rows: [row.__setitem__(6, 1) for row in rows if row[0] == "Node"],        # weak: not a bool
    lambda rows: [row.__setitem__(3, names_row(rows)) for row in rows if row[0] == "Param"],   # a shape of names
    lambda rows: rows.clear(),
])
def test_entries_not_as_written_are_read_as_none(small, tmp_path, change):
    _, _, entry = copy_of(small, tmp_path)
    rows = rows_of(entry)
    assert warm.read_entry(entry.read_bytes()) is not None
    change(rows)
    assert warm.read_entry(b"tdsl warm 1\n" + json.dumps(rows).encode()) is None


def test_other_headers_are_read_as_none(small, tmp_path):
    _, _, entry = copy_of(small, tmp_path)
    data = entry.read_bytes()
    for header in (b"tdsl warm 2\n", b"tdsl warm 1 \n", b""):
        assert warm.read_entry(header + data[len(b"tdsl warm 1\n"):]) is None


# -- the format itself --------------------------------------------------------------------------

def test_long_chains_and_shared_nodes_round_trip_without_recursion():
    x = Node("param", "f64", (Dim.of("n"),), (), (("name", "x"),))
    y = x
    for k in range(30000):   # far past the recursion limit
        y = Node("add", "f64", y.shape, (y, x), (("k", k),) if k % 1000 == 0 else ())
    rows = warm.encode((y, y, -0.0, float("nan"), 2**100))
    back = warm.decode(json.loads(json.dumps(rows, allow_nan=False)))
    assert back[0] is back[1] and back[0] == y and back[0].inputs[1] is back[0].inputs[0].inputs[1]
    assert str(back[2]) == "-0.0" and back[3] != back[3] and back[4] == 2**100


@pytest.mark.parametrize("value", [np.float64(1.5), {"a": 1}, {1, 2}, b"bytes", 1j, Path("x"), type])
def test_values_the_format_does_not_know_are_refused(value):
    node = Node("const", "f64", (), (), (("value", value),) if not isinstance(value, (dict, set)) else ())
    with pytest.raises(warm.UnknownValue):
        warm.encode((node, value))


def test_an_entry_that_cannot_be_written_costs_only_the_warm_start(monkeypatch, tmp_path):
    monkeypatch.setenv("TDSL_CACHE_DIR", str(tmp_path / "cache"))
    write = cache.write_atomic

    def full(path, data):
        if path.name.startswith("warm-"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        write(path, data)

    monkeypatch.setattr(cache, "write_atomic", full)
    m = tdsl.compile(SMALL, filename="full.tdsl")
    assert m.loops(np.arange(3.0), 2)[1] == 4
    assert not list((tmp_path / "cache").glob("warm-*"))
