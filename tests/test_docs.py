"""The examples of the user documentation work.

- ```tdsl blocks of docs/language.md compile on the numpy target, and a comment
  `# TYPE` after `name = ...` is the type `Function.explain()` gives that name;
- ```tdsl-error blocks raise `tdsl.TdslError` when compiled, at a line that
  carries a comment (the comment says what is wrong there);
- ```pycon blocks of docs/language.md and docs/python.md run as doctests, each
  file's blocks in order in one namespace, from the repository root.

The ```python blocks of docs/python.md are only parsed.
"""
from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

import tdsl

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
TYPE_COMMENT = re.compile(r"^\s*([A-Za-z_]\w*)\s*=(?!=).*#\s*((?:bool|i32|i64|f32|f64)(?:\[[^\]]*\])?)\s*$")
EXPLAIN_VALUE = re.compile(r"^\s*value\s+(\w+): (.+?)(?:  \(line \d+\))?$")


def blocks(name: str, kinds: tuple[str, ...]) -> list:
    """pytest params (kind, text), with the file and line as id, of the fenced blocks of `kinds` in docs/`name`."""
    text = (DOCS / name).read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        if match.group(1) in kinds:
            line = text.count("\n", 0, match.start()) + 1
            found.append(pytest.param(match.group(1), match.group(2), id=f"{name}:{line}"))
    return found


def explained_types(module) -> dict[str, set[str]]:
    """name -> the types explain() gives it, over every function of `module`."""
    types: dict[str, set[str]] = {}
    for function in module:
        for line in function.explain().splitlines():
            match = EXPLAIN_VALUE.match(line)
            if match:
                types.setdefault(match.group(1), set()).add(match.group(2))
    return types


@pytest.mark.parametrize("kind, source", blocks("language.md", ("tdsl", "tdsl-error")))
def test_tdsl_block(kind: str, source: str):
    if kind == "tdsl-error":
        with pytest.raises(tdsl.TdslError) as caught:
            tdsl.compile(source, target="numpy")
        loc = caught.value.loc
        assert loc is not None, caught.value
        assert "#" in source.splitlines()[loc.line - 1], f"the error is not the documented one: {caught.value}"
        return
    module = tdsl.compile(source, target="numpy")
    types = explained_types(module)
    for number, line in enumerate(source.splitlines(), start=1):
        match = TYPE_COMMENT.match(line)
        if match:
            name, documented = match.groups()
            assert documented in types.get(name, set()), f"line {number}: {line.strip()}: {types.get(name)}"


@pytest.mark.parametrize("name", ["language.md", "python.md"])
def test_pycon_blocks(name: str, monkeypatch):
    sessions = [p.values[1] for p in blocks(name, ("pycon",))]
    assert sessions, f"docs/{name} has no pycon blocks"
    monkeypatch.chdir(ROOT)
    parser = doctest.DocTestParser()
    test = parser.get_doctest("\n".join(sessions), {}, f"docs/{name}", str(DOCS / name), 0)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    output: list[str] = []
    runner.run(test, out=output.append)
    assert runner.failures == 0, "".join(output)


@pytest.mark.parametrize("kind, source", blocks("python.md", ("python",)))
def test_python_block_parses(kind: str, source: str):
    compile(source, "<docs/python.md>", "exec")  # illustrations, parsed only: some need a C compiler


def test_python_dask_explain_is_real():
    """docs/python.md, "Dask arrays": the explain output printed under the program is what it prints."""
    text = (DOCS / "python.md").read_text(encoding="utf-8")
    section = text[text.index("### Dask arrays"):]
    fenced = {}
    for match in FENCE.finditer(section):
        fenced.setdefault(match.group(1), match.group(2))
    module = tdsl.compile(fenced["tdsl"], target="numpy")
    printed = "\n".join([module.step.explain(chunks={"n": 100_000}), module.normalize.explain(chunks={"n": 100_000}),
                         module.normalize.explain(chunks={"d": 100})])
    assert printed.strip() == fenced["text"].strip()
