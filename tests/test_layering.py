"""Layering: the code generators (tdsl.codegen) read only the core of the language (graph, ops,
dims, dtypes, errors, limits, ...), never the front end, the binder or the interpreter."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODEGEN = sorted(p.stem for p in (ROOT / "codegen").glob("*.py") if p.stem != "__init__")
FRONT = ("infer", "frontend", "builtins", "api", "bind", "interp", "autodiff")
FORBIDDEN = tuple(f"tdsl.{name}" for name in FRONT)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import statement of a codegen file, at any depth (lazy ones too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:   # relative: `.` is tdsl.codegen, `..` the tdsl package
                package = {1: "tdsl.codegen", 2: "tdsl"}[node.level]
                base = f"{package}.{base}" if base else package
            found += [(node.lineno, base)] + [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


@pytest.mark.parametrize("name", CODEGEN)
def test_codegen_names_no_front_end_module(name):
    bad = [(line, module) for line, module in imported_modules(ROOT / "codegen" / f"{name}.py")
           if module in FORBIDDEN or module.startswith(tuple(m + "." for m in FORBIDDEN))]
    assert not bad, f"codegen/{name}.py imports the front end: {bad}"


# Imports every codegen module under a bare `tdsl` package (its __init__ not run), recording
# which front-end modules each import pulled in, transitively.
_PROBE = """
import importlib, json, sys, types
root, names, forbidden = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
for package, folder in (("tdsl", "lang"), ("tdsl.codegen", "codegen"), ("tdsl.templates", "templates")):
    module = types.ModuleType(package)
    module.__path__ = [f"{root}/{folder}"]
    sys.modules[package] = module
found = {}
for name in names:
    try:
        importlib.import_module("tdsl.codegen." + name)
    except ImportError as err:   # an optional dependency (pyopencl) missing: not a layering matter
        if "tdsl" in str(err):
            raise
    found[name] = [m for m in forbidden if m in sys.modules]
print(json.dumps(found))
"""


def test_codegen_modules_load_no_front_end_module():
    """Transitively: what codegen imports (limits, ops, graph, ...) does not pull the front end in."""
    out = subprocess.run([sys.executable, "-c", _PROBE, str(ROOT), json.dumps(CODEGEN), json.dumps(FORBIDDEN)],
                         capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out)
    assert {name: mods for name, mods in loaded.items() if mods} == {}


def test_importing_codegen_through_the_package_loads_no_front_end_module():
    code = ("import sys, tdsl.codegen.lower, tdsl.codegen.render, tdsl.codegen.cexpr; "
            f"print([m for m in {list(FORBIDDEN)!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
