"""The parser fuzzer: mutated sources must compile or raise a located TdslError quickly."""
from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time

import tdsl
from tdsl.errors import TdslError

from .tree import render_program
from .gen import generate
from .runner import _repo_root


TOKEN = re.compile(r"\s+|#[^\n]*|[A-Za-z_]\w*|\d[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+|\*\*|//|==|!=|<=|>=|->|\.\.\.|.",
                   re.S)


KEYWORDS = ("fn", "const", "return", "true", "false", "and", "or", "not", "for", "in", "if", "else", "while",
            "loop", "None", "range", "grad", "f32", "i64")


ODD_TEXT = ("(", ")", "[", "]", "{", "}", ",", ":", ";", "\n", "\r", "\r\n", "\x00", "é", "\u2028", "∑", "$", "`",
            '"', '"x"', "'", "\\", "@", ".T", "...", "-", "**", "=", "\t", "\ufeff", "1e999999", "0x1F", "1__0",
            "\udcff", "\x0b", "# comment\n", "x:", "->", "[1, [2]]", "1.", ".5e", "9" * 30)


DEPTHS = (50, 300, 1000, 3000, 10000, 40000)


def parser_corpus() -> list:
    """The sources mutated: the examples and a few generated programs."""
    folder = os.path.join(_repo_root(), "examples")
    texts = [open(os.path.join(folder, f), encoding="utf-8").read()
             for f in sorted(os.listdir(folder)) if f.endswith(".tdsl")]
    return texts + [render_program(generate(s, "f")) for s in range(20)]


def nest(token: str, depth: int, rng: random.Random) -> str:
    """`token` buried `depth` levels deep in one construct."""
    form = rng.choice(["paren", "neg", "not", "plus", "pow", "call", "T", "slice", "list"])
    return {"paren": lambda: "(" * depth + token + ")" * depth, "neg": lambda: "-" * depth + token,
            "not": lambda: "not " * depth + token, "plus": lambda: " + ".join([token] * depth),
            "pow": lambda: " ** ".join([token] * depth), "call": lambda: "exp(" * depth + token + ")" * depth,
            "T": lambda: token + ".T" * depth, "slice": lambda: token + "[0:]" * depth,
            "list": lambda: "[" * depth + "1.0" + "]" * depth}[form]()


def mutate(text: str, rng: random.Random) -> tuple[str, str]:
    """A mutated source and a word on what was done."""
    tokens = TOKEN.findall(text)
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        i = rng.randrange(len(tokens)) if tokens else 0
        op = rng.choice(["delete", "duplicate", "swap", "insert", "keyword", "number", "nest", "nest", "unbalanced",
                         "cut"])
        if not tokens:
            tokens, op = [""], "insert"
        if op == "delete":
            del tokens[i]
        elif op == "duplicate":
            tokens.insert(i, tokens[i])
        elif op == "swap":
            j = rng.randrange(len(tokens))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif op == "insert":
            tokens.insert(i, rng.choice(ODD_TEXT))
        elif op == "keyword":
            tokens.insert(i, f" {rng.choice(KEYWORDS)} ")
        elif op == "number":
            digits = rng.choice((20, 400, 4400, 10000))
            tokens.insert(i, rng.choice(["9" * digits, "1" + "0" * digits + ".5", f"1e{digits}", "-" + "9" * digits]))
        elif op == "nest":
            names = [j for j, t in enumerate(tokens) if re.fullmatch(r"[A-Za-z_]\w*|\d+(\.\d*)?", t)
                     and t not in KEYWORDS]
            j = rng.choice(names) if names else i
            depth = rng.choice(DEPTHS)
            tokens[j] = nest(tokens[j] if names else "x", depth, rng)
            op = f"nest x{depth}"
        elif op == "unbalanced":
            tokens.insert(i, rng.choice("([{)]}") * rng.choice((1, 2, 50, 5000)))
        else:
            tokens = tokens[:i]
        done.append(op)
    return "".join(tokens), ", ".join(done)


def parser_case(seed: int, index: int, corpus: list | None = None) -> tuple[str, str]:
    """Mutated source number `index` of a parser-fuzz run (depends only on seed and index)."""
    rng = random.Random(seed * 1_000_003 + index)
    corpus = corpus or parser_corpus()
    return mutate(rng.choice(corpus), rng)


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


def check_parse(text: str, limit: float = 10.0) -> tuple[str | None, float, str]:
    """(problem or None, seconds, detail): only a located TdslError, or success, is acceptable."""
    from tdsl.pipeline import check_source
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    start = time.perf_counter()
    problem, detail = None, "ok"
    try:
        check_source(text, "mutant.tdsl")   # the `tdslc check` path: parse + frontend.check
        tdsl.compile(text, target="numpy", filename="mutant.tdsl")
    except Timeout:
        problem, detail = "hang", f"no answer within {limit} s"
    except TdslError as err:
        loc = err.loc
        detail = f"{type(err).__name__}: {err.message[:200]}"
        located = loc is not None and all(isinstance(v, int) and v >= 1 for v in (loc.line, loc.col))
        if not located:
            problem = "unlocated-error"
    except RecursionError as err:
        problem, detail = "recursion-error", f"RecursionError: {str(err)[:200]}"
    except Exception as err:   # the point of the parser fuzzer: any other exception is a finding
        problem, detail = "raw-exception", f"{type(err).__name__}: {str(err)[:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    seconds = time.perf_counter() - start
    if problem is None and seconds > 1.0:
        problem = "slow"
    return problem, seconds, detail


def parser_child(seed: int, start: int, count: int) -> None:
    """Run parser cases start..count-1, one line each on stdout (the parent survives our crashes)."""
    corpus = parser_corpus()
    for index in range(start, count):
        text, how = parser_case(seed, index, corpus)
        problem, seconds, detail = check_parse(text)
        print(repr((index, problem, round(seconds, 4), how, detail)), flush=True)


def parser_fuzz(count: int, seed: int, path: str | None, log=print) -> dict:
    """Run `count` mutated sources in child processes; record problems, the slowest case, crashes."""
    import ast
    results, start, index = [], time.perf_counter(), 0
    while index < count:
        child = subprocess.run([sys.executable, "-m", "tests.fuzz", "--parser-child", str(index), "--seed", str(seed),
                                "--parser", str(count)], capture_output=True, text=True, cwd=_repo_root())
        lines = [ast.literal_eval(line) for line in child.stdout.splitlines() if line.startswith("(")]
        results += lines
        index = lines[-1][0] + 1 if lines else index
        if child.returncode != 0 and index < count:
            results.append((index, "crash", 0.0, parser_case(seed, index)[1], child.stderr[-800:]))
            index += 1
    return parser_summary(results, seed, path, time.perf_counter() - start, log)


def parser_summary(results: list, seed: int, path: str | None, seconds: float, log=print) -> dict:
    """Group parser problems by kind and first line of detail; write each group once."""
    groups = {}
    for index, problem, secs, how, detail in results:
        if problem:
            groups.setdefault((problem, re.sub(r"\d+", "N", detail.split("\n")[0])[:80]), []).append((index, secs, how))
    slowest = max(results, key=lambda r: r[2]) if results else None
    for (problem, detail), cases in groups.items():
        index, secs, how = cases[0]
        text, _ = parser_case(seed, index)
        shown = repr(text) if len(text) < 600 else f"{len(text)} characters: {text[:200]!r} ... {text[-100:]!r}"
        entry = (f"### parser: {problem} ({len(cases)} cases)\n\n{detail}\n\nfirst: case {index} of seed {seed} "
                 f"({how}), {secs:.2f} s. Source: {shown}\n\n```python\nimport tests.fuzz as F, tdsl\n"
                 f"src, how = F.parser_case({seed}, {index})\ntdsl.compile(src, target='numpy')\n```\n")
        log(entry)
        if path:
            with open(path, "a", encoding="utf-8") as out:
                out.write(entry + "\n")
    return {"cases": len(results), "problems": sum(len(c) for c in groups.values()), "groups": len(groups),
            "seconds": seconds, "slowest": slowest[:4] if slowest else None,
            "kinds": sorted({k[0] for k in groups})}
