"""tdsl.fmt and `tdslc fmt`: the house style, kept by the examples and the docs; messy versions
of them come back exactly; the rules one by one; broken code is refused; the safety net; the CLI."""
from __future__ import annotations

import io
import os
import random
import re
import stat
from functools import lru_cache
from pathlib import Path

import pytest

from tdsl import cli, fmt
from tdsl.errors import TdslError, TdslSyntaxError
from tdsl.fmt import format_text
from tdsl.grammar import parse

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def sources() -> list:
    """(name, text) of every example and every ```tdsl or ```tdsl-error block of the docs."""
    found = [pytest.param(p.read_text(encoding="utf-8"), id=f"examples/{p.name}")
             for p in sorted((ROOT / "examples").glob("*.tdsl"))]
    for doc in sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]:
        text = doc.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) in ("tdsl", "tdsl-error"):
                line = text.count("\n", 0, match.start()) + 1
                found.append(pytest.param(match.group(2), id=f"{doc.name}:{line}"))
    return found


SOURCES = sources()


@lru_cache(maxsize=None)
def formatted(text: str) -> str | None:
    """format_text(text), once per text; None if the text does not parse."""
    try:
        return format_text(text)
    except TdslSyntaxError:
        return None


PARSING = [p for p in SOURCES if formatted(p.values[0]) is not None]
BROKEN = [p for p in SOURCES if formatted(p.values[0]) is None]


# -- the examples and the docs ---------------------------------------------------------------

@pytest.mark.parametrize("source", PARSING)
def test_formats_idempotently_to_the_same_tree(source):
    once = formatted(source)
    assert format_text(once) == once
    assert parse(once) == parse(source)


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.tdsl")), ids=lambda p: p.name)
def test_the_examples_are_in_the_house_style(path):
    text = path.read_text(encoding="utf-8")
    assert format_text(text, str(path)) == text


def test_docs_blocks_nearly_all_in_the_house_style():
    changed = [p.id for p in PARSING if formatted(p.values[0]) != p.values[0]]
    assert len(changed) <= 3, changed
    assert len(PARSING) > 60


@pytest.mark.parametrize("source", BROKEN)
def test_a_block_that_does_not_parse_is_refused(source):
    with pytest.raises(TdslSyntaxError):
        format_text(source)


# -- messy versions come back exactly ----------------------------------------------------------

SPACES = ["", " ", "  ", "\t", " \t "]
OPERATOR_CHARS = set("+-*/%@<>=!.")


def word_char(char: str) -> bool:
    return char.isalnum() or char in "_.\""


def can_touch(a: str, b: str) -> bool:
    """Whether the tokens a and b may be written with nothing between them."""
    if word_char(a[-1]) and word_char(b[0]):
        return False
    return not (a[-1] in OPERATOR_CHARS and b[0] in OPERATOR_CHARS)


def mess_line(line: str, rng: random.Random) -> str:
    """`line` (formatted) with other whitespace wherever it is free."""
    code, comment, gap = line.strip(), "", ""
    tokens = [m for m in fmt._TOKEN.finditer(code) if m.lastgroup != "space"]
    if tokens and tokens[-1].lastgroup == "comment":
        comment = tokens.pop().group()
        if re.match(r"# [A-Za-z0-9]", comment) and rng.random() < 0.5:
            comment = "#" + comment[2:]   # `#text` becomes `# text`
        if tokens:
            gap = code[tokens[-1].end():code.index("#", tokens[-1].end())]
    out = "".join(rng.choice(SPACES[1:]) if rng.random() < 0.3 else "" for _ in range(2))
    for i, token in enumerate(tokens):
        if i:
            space = rng.choice(SPACES)
            if space == "" and not can_touch(tokens[i - 1].group(), token.group()):
                space = " "
            out += space
        out += token.group()
    return out + gap + comment + rng.choice(["", "", " ", "\t ", "   "])


def mess(clean: str, rng: random.Random) -> str:
    """`clean` with whitespace changed where it is free: spaces, tabs, indentation, blank lines
    (more of them where there are some, and where none may stay), trailing spaces, CRLF."""
    lines = clean.splitlines()
    out = [rng.choice(["", " ", "\t"]) for _ in range(rng.randrange(3))]
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            # as many blank lines as may stay, or more: 1 in a body, 2 between top-level items
            at_most = 2 if not lines[i + 1].startswith((" ", "}")) else 1
            run = lines[i - 1].strip() == "" or lines[i + 1].strip() == ""
            extra = rng.randrange(3) if run or at_most == 1 else 0
            out += [rng.choice(["", "  ", "\t"]) for _ in range(1 + extra)]
            continue
        if stripped.startswith("}") and rng.random() < 0.3:
            out.append(rng.choice(["", "    "]))
        out.append(mess_line(line, rng))
        if stripped.endswith("{") and rng.random() < 0.3:
            out.append("")
    out += [""] * rng.randrange(3)
    newline = "\r\n" if rng.random() < 0.5 else "\n"
    return newline.join(out) + rng.choice(["", newline])


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("source", PARSING)
def test_messy_versions_come_back_exactly(source, seed):
    clean = formatted(source)
    messy = mess(clean, random.Random(f"{seed}:{clean}"))
    assert messy != clean
    assert format_text(messy) == clean, messy


# -- the rules, one by one ---------------------------------------------------------------------

def body(*lines: str) -> str:
    """A function around `lines`, formatted as the house style writes it."""
    return "fn f(x: f64, y: f64[n, k], c: bool) -> f64 {\n" + "".join(f"    {line}\n" for line in lines) + "}\n"


CASES = [
    # unary - and + (after return, (, ',', =, **, *, an operator, a keyword) and binary ones
    ("return - x", "return -x"),
    ("return f( -x, - 1)", "return f(-x, -1)"),
    ("z=- x", "z = -x"),
    ("z = x**-1", "z = x ** -1"),
    ("z = x*-x+ +1", "z = x * -x + +1"),
    ("z = x-1", "z = x - 1"),
    ("z = y[0, 1]-x", "z = y[0, 1] - x"),
    ("z = (x)-1", "z = (x) - 1"),
    ("z = - - x", "z = --x"),
    ("c = not-x < 0 and-x > 0", "c = not -x < 0 and -x > 0"),
    ("z = x // 2 % 3 @ y / 1", "z = x // 2 % 3 @ y / 1"),
    ("c = x==1 or x!=2 and x<=3 or x>=4 and x<5 or x>6", "c = x == 1 or x != 2 and x <= 3 or x >= 4 and x < 5 or x > 6"),
    ("z+=1;z-=1;z*=2;z/=2;z//=2;z%=2;z**=2;y@=y", "z += 1; z -= 1; z *= 2; z /= 2; z //= 2; z %= 2; z **= 2; y @= y"),
    # slices and subscripts
    ("z = y[ : , 1 : 3 ]", "z = y[:, 1:3]"),
    ("z = y[: : 2, :-1]", "z = y[::2, :-1]"),
    ("z = y[n//2 :, ... ]", "z = y[n // 2:, ...]"),
    ("z = y[1:n - 1, None]", "z = y[1:n - 1, None]"),
    ("y[ 0 ]=x", "y[0] = x"),
    # calls, keyword arguments, tuples, attributes
    ("z = sum( y , axis = 1 , keepdims = true )", "z = sum(y, axis=1, keepdims=true)"),
    ("z = reshape(y, (n * k , ))", "z = reshape(y, (n * k,))"),
    ("z = y . T", "z = y.T"),
    ("z = f(x) [0]", "z = f(x)[0]"),
    ("return(x)", "return (x)"),
    ("c = not(c)", "c = not (c)"),
    ("z = [ 1.0 ,2.5E+4,.5 , 1_000 ]", "z = [1.0, 2.5E+4, .5, 1_000]"),
    # strings stay as written
    ('z = einsum( "ij , jk->ik" ,y,y )', 'z = einsum("ij , jk->ik", y, y)'),
    ('z = einsum("i#j  ->", y)  # a "string" # in it', 'z = einsum("i#j  ->", y)  # a "string" # in it'),
    ('z = conv2d(y, y, padding = "same")', 'z = conv2d(y, y, padding="same")'),
    # trailing comments
    ("z = x # why", "z = x  # why"),
    ("z = x#why", "z = x  # why"),
    ("z = x        # aligned", "z = x        # aligned"),
    ("z = x\t# tab", "z = x   # tab"),   # (columns 10 to 12: a tab stop every 4 columns)
    ("z = x  # >>> f(x)", "z = x  # >>> f(x)"),
    ("z = x  #>>> f(x)", "z = x  #>>> f(x)"),
    ("z = x  #: kept, #! kept", "z = x  #: kept, #! kept"),
    # control flow
    ("if c{z=1}else if x<0{z=2}else{z=3}", "if c { z = 1 } else if x < 0 { z = 2 } else { z = 3 }"),
    ("for i in range(n-1,-1,-1){z=x}", "for i in range(n - 1, -1, -1) { z = x }"),
    ("while x>0 {x=x-1}", "while x > 0 { x = x - 1 }"),
]


@pytest.mark.parametrize("before, after", CASES, ids=[c[1] for c in CASES])
def test_rule_within_a_line(before, after):
    assert format_text(body(before, "return x")) == body(after, "return x")


TEXT_CASES = {
    "types": ("fn f(x : f32[ n,d ],k:i64)->( f32[n - 1] , f32 ){return x,x}\n",
              "fn f(x: f32[n, d], k: i64) -> (f32[n - 1], f32) { return x, x }\n"),
    "else if": ("fn f(c: bool) -> f64 {\n    if c {\n        y = 1.0\n    }else if not c{\n"
                "        y = 2.0\n    }   else {\n        y = 3.0\n    }\n    return y\n}\n",
                "fn f(c: bool) -> f64 {\n    if c {\n        y = 1.0\n    } else if not c {\n"
                "        y = 2.0\n    } else {\n        y = 3.0\n    }\n    return y\n}\n"),
    "semicolons": ("const A = 1 ;const B=-2.5\nfn f() -> i64 {a=1 ;b=2;return a}\n",
                   "const A = 1; const B = -2.5\nfn f() -> i64 { a = 1; b = 2; return a }\n"),
    "indentation, tabs and a one-line body": (
        "fn f(x: f64) -> f64 {\n\tfor i in range(3) {\n  x = x + 1\n\t}\n        return x }\n",
        "fn f(x: f64) -> f64 {\n    for i in range(3) {\n        x = x + 1\n    }\n    return x }\n"),
    "aligned continuation lines": (
        "fn f(x: f64[n],\n  y: f64[n]) -> f64[n] {\n  t = max(x,\n   sum(y,\n axis=0))\n"
        "  return (x\n  + t)\n}\n",
        "fn f(x: f64[n],\n     y: f64[n]) -> f64[n] {\n    t = max(x,\n            sum(y,\n"
        "                axis=0))\n    return (x\n            + t)\n}\n"),
    "hanging continuation lines": (
        "fn f(\nx: f64[n],\ny: f64[n]) -> (\nf64[n], f64) {\n    t = concat(\n(x,\ny),\n"
        "axis=0\n)\n    return x, sum(\n   t)\n}\n",
        "fn f(\n        x: f64[n],\n        y: f64[n]) -> (\n        f64[n], f64) {\n    t = concat(\n"
        "        (x,\n         y),\n        axis=0\n    )\n    return x, sum(\n        t)\n}\n"),
    "a header whose closing bracket starts a line": (
        "fn f(\nx: f64,\ny: f64,\n) -> f64 {\n  if any(\n [x > 0.0,\n y > 0.0]) {\n x = y\n }\n return x\n}\n",
        "fn f(\n    x: f64,\n    y: f64,\n) -> f64 {\n    if any(\n            [x > 0.0,\n             y > 0.0]) {\n"
        "        x = y\n    }\n    return x\n}\n"),
    "nested hanging brackets": (
        "fn f(x: f64) -> f64 {\n    return max(\nmin(\nx,\n1.0\n),\n0.0)\n}\n",
        "fn f(x: f64) -> f64 {\n    return max(\n        min(\n            x,\n            1.0\n        ),\n"
        "        0.0)\n}\n"),
    "a header broken outside brackets": ("fn f(x: f64)\n-> f64\n  {\nreturn x\n}\n",
                                         "fn f(x: f64)\n        -> f64\n{\n    return x\n}\n"),
    "comments": ("#!tdsl\n#top\n  # indented\nfn f(x: f64) -> f64 {\n# in the body\n  return x   #  kept\n"
                 "   # before the end\n}\n#\n",
                 "#!tdsl\n# top\n# indented\nfn f(x: f64) -> f64 {\n    # in the body\n    return x   #  kept\n"
                 "    # before the end\n}\n#\n"),
    "comments inside brackets": ("fn f(x: f64,  # first\n# own line\n y: f64) -> f64 {\n    return x\n}\n",
                                 "fn f(x: f64,  # first\n     # own line\n     y: f64) -> f64 {\n    return x\n}\n"),
    "blank lines": ("\n\n\nconst A = 1\n\n\n\n\nfn f() -> i64 {\n\n\n    a = 1\n\n\n\n    b = 2\n\n\n}\n\n\n\n",
                    "const A = 1\n\n\nfn f() -> i64 {\n    a = 1\n\n    b = 2\n}\n"),
    "one blank line between items stays": ("const A = 1\n\nfn f() -> i64 {\n    return A\n}\n",
                                           "const A = 1\n\nfn f() -> i64 {\n    return A\n}\n"),
    "trailing whitespace, CRLF and the last newline": ("const A = 1   \r\nconst B = 2\t\r\n\r\n\r\n",
                                                        "const A = 1\nconst B = 2\n"),
    "no newline at the end": ("const A = 1", "const A = 1\n"),
    "empty": ("\n \n\t\n", ""),
    "a comment alone": ("   # only a comment", "# only a comment\n"),
    "a comment's own characters stay": ("const A = 1  # \tx\u00a0\u2028 \t\r\n", "const A = 1  # \tx\u00a0\u2028\n"),
}


@pytest.mark.parametrize("before, after", TEXT_CASES.values(), ids=TEXT_CASES.keys())
def test_rule_over_lines(before, after):
    assert format_text(before) == after
    assert format_text(after) == after


def test_a_long_operator_chain():
    """1,100 operands nest the tree deeper than Python's recursion limit (Lark's `==` recurses)."""
    text = "fn f(x: f64) -> f64 {\n    return " + "+".join(["x"] * 1100) + "\n}\n"
    assert format_text(text) == text.replace("+", " + ")


# -- errors ----------------------------------------------------------------------------------

def test_a_syntax_error_is_the_parser_s_with_its_place():
    text = "fn f(x: f64) -> f64 {\n    y = (x +\n        1\n    return y\n}\n"
    with pytest.raises(TdslSyntaxError) as caught:
        format_text(text, "bad.tdsl")
    assert str(caught.value.loc) == "bad.tdsl:2:9"
    assert caught.value.message == "'(' is never closed"
    with pytest.raises(TdslSyntaxError) as caught:
        format_text("fn f(x f32) {}\n", "bad.tdsl")
    assert str(caught.value.loc) == "bad.tdsl:1:8"
    assert "a parameter needs a type" in caught.value.message


def test_the_safety_net_refuses_a_result_that_is_another_program(monkeypatch):
    monkeypatch.setattr(fmt._Layout, "space", lambda self, a, b: "")   # `return x` -> `returnx`
    with pytest.raises(TdslError) as caught:
        format_text("fn f(x: f64) -> f64 {\n    return x\n}\n", "prog.tdsl")
    assert "tdsl could not format prog.tdsl (the result does not parse" in caught.value.message
    assert "This is a bug in tdsl: please report it" in caught.value.message


def test_the_safety_net_refuses_a_different_tree(monkeypatch):
    original = fmt._layout
    monkeypatch.setattr(fmt, "_layout", lambda text, path: original(text, path).replace("x - 1", "x + 1"))
    with pytest.raises(TdslError, match=r"could not format <string> \(the result is another program\)"):
        format_text("fn f(x: f64) -> f64 { return x-1 }\n")


def test_the_safety_net_refuses_a_lost_comment(monkeypatch):
    original = fmt._layout
    monkeypatch.setattr(fmt, "_layout", lambda text, path: original(text, path).replace("  # why", ""))
    with pytest.raises(TdslError, match=r"could not format <string> \(the result lost or changed a comment\)"):
        format_text("fn f(x: f64) -> f64 { return x }  # why\n")


# -- tdslc fmt ---------------------------------------------------------------------------------

MESSY = "fn f(x:f64)->f64{return -x}\r\n"
CLEAN = "fn f(x: f64) -> f64 { return -x }\n"
BAD = "fn f(x f64) { return x }\n"


@pytest.fixture
def files(tmp_path):
    (tmp_path / "messy.tdsl").write_bytes(MESSY.encode())
    (tmp_path / "clean.tdsl").write_text(CLEAN)
    (tmp_path / "bad.tdsl").write_text(BAD)
    os.chmod(tmp_path / "messy.tdsl", 0o640)
    return tmp_path


def test_fmt_rewrites_in_place_keeping_the_mode(files, capsys):
    clean_inode = (files / "clean.tdsl").stat().st_ino
    assert cli.main(["fmt", str(files / "messy.tdsl"), str(files / "clean.tdsl")]) == 0
    assert (files / "messy.tdsl").read_bytes() == CLEAN.encode()
    assert stat.S_IMODE((files / "messy.tdsl").stat().st_mode) == 0o640
    assert (files / "clean.tdsl").stat().st_ino == clean_inode    # already formatted: not rewritten
    assert capsys.readouterr() == ("", "")
    assert sorted(p.name for p in files.iterdir()) == ["bad.tdsl", "clean.tdsl", "messy.tdsl"]


def test_fmt_check_writes_nothing_and_names_what_would_change(files, capsys):
    assert cli.main(["fmt", "--check", str(files / "messy.tdsl"), str(files / "clean.tdsl")]) == 1
    assert capsys.readouterr() == (f"{files / 'messy.tdsl'}\n", "")
    assert (files / "messy.tdsl").read_bytes() == MESSY.encode()
    assert cli.main(["fmt", "--check", str(files / "clean.tdsl")]) == 0
    assert capsys.readouterr() == ("", "")


def test_fmt_diff_prints_a_unified_diff(files, capsys):
    path = str(files / "messy.tdsl")
    assert cli.main(["fmt", "--diff", path]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:3] == [f"--- {path} (original)", f"+++ {path} (formatted)", "@@ -1 +1 @@"]
    assert f"+{CLEAN}" in out and "-fn f(x:f64)->f64{return -x}" in out
    assert (files / "messy.tdsl").read_bytes() == MESSY.encode()


def test_fmt_check_and_diff_together(files, capsys):
    assert cli.main(["fmt", "--check", "--diff", str(files / "messy.tdsl"), str(files / "clean.tdsl")]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"--- {files / 'messy.tdsl'} (original)\n") and "clean.tdsl" not in out
    assert (files / "messy.tdsl").read_bytes() == MESSY.encode()


def test_fmt_reads_stdin_and_writes_stdout(monkeypatch, capsys):
    def stdin(data: bytes):
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    stdin(b"const  A=1")
    assert cli.main(["fmt", "-"]) == 0
    assert capsys.readouterr() == ("const A = 1\n", "")
    stdin(b"const A = 1\r\n")   # read as it is: CRLF is a change
    assert cli.main(["fmt", "--check", "-"]) == 1
    assert capsys.readouterr() == ("<stdin>\n", "")
    stdin(b"const A = 1\n")
    assert cli.main(["fmt", "--check", "-"]) == 0
    assert capsys.readouterr() == ("", "")
    stdin(b"const A 1\n")
    assert cli.main(["fmt", "-"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("<stdin>:1:9: error: a const is 'const NAME = value'")


def test_fmt_goes_on_after_a_bad_file(files, capsys):
    assert cli.main(["fmt", str(files / "bad.tdsl"), str(files / "messy.tdsl")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"{files / 'bad.tdsl'}:1:8: error: a parameter needs a type")
    assert (files / "messy.tdsl").read_bytes() == CLEAN.encode()
    assert (files / "bad.tdsl").read_text() == BAD


def test_fmt_reports_a_file_it_cannot_read(files, capsys):
    (files / "latin1.tdsl").write_bytes(b"# caf\xe9\n")
    paths = [str(files / "missing.tdsl"), str(files), str(files / "latin1.tdsl"), str(files / "messy.tdsl")]
    assert cli.main(["fmt", *paths]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [f"error: cannot read {paths[0]}: No such file or directory",
                                f"error: cannot read {paths[1]}: Is a directory",
                                f"error: cannot read {paths[2]}: not UTF-8 text (byte 5)"]
    assert (files / "messy.tdsl").read_bytes() == CLEAN.encode()


def test_fmt_reports_a_file_it_cannot_write(files, capsys, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(os, "replace", refuse)
    assert cli.main(["fmt", str(files / "messy.tdsl")]) == 1
    assert capsys.readouterr().err == f"error: cannot write {files / 'messy.tdsl'}: Permission denied\n"
    assert (files / "messy.tdsl").read_bytes() == MESSY.encode()
    assert sorted(p.name for p in files.iterdir()) == ["bad.tdsl", "clean.tdsl", "messy.tdsl"]   # no temporary left


def test_fmt_through_a_link_rewrites_the_file_it_names(files):
    (files / "link.tdsl").symlink_to(files / "messy.tdsl")
    assert cli.main(["fmt", str(files / "link.tdsl")]) == 0
    assert (files / "link.tdsl").is_symlink()
    assert (files / "messy.tdsl").read_text() == CLEAN
