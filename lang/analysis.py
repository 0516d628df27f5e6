"""What an editor asks of a .tdsl text: its diagnostics and an index of its names, with types.

The language server (tdsl.lsp) answers from here; this module does not import pygls. Positions
are 0-based (line, character), as the Language Server Protocol counts them; tdsl's Locations are
1-based. Columns count characters (names are ASCII, so they agree with UTF-16 on every name).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import Location, TdslError

# (line, character), both 0-based
Position = tuple[int, int]
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Range:
    start: Position
    end: Position

    def contains(self, pos: Position) -> bool:
        return self.start <= pos <= self.end


@dataclass(frozen=True)
class Diagnostic:
    range: Range
    message: str


@dataclass(frozen=True)
class Symbol:
    """A name the program binds: a function, a const, a parameter or a named value."""

    name: str
    kind: str            # "function", "const", "param", "size" (a size variable), "index" (of a
                         # `for` loop), "value"
    range: Range         # the name where it is bound
    type: str = ""       # `f32[n, d]`; a function's whole signature; "" when it did not check
    function: str = ""   # the function a param or value belongs to
    scope: Range | None = None   # where a loop index is seen: its `for` loop


@dataclass
class Function:
    name: str
    range: Range         # its name in the header
    body: Range          # from `fn` to its closing brace
    signature: str = ""
    locals: list[Symbol] = field(default_factory=list)   # params, then values in source order
    exprs: dict[Range, str] = field(default_factory=dict)   # each sub-expression's type


@dataclass
class Analysis:
    diagnostics: list[Diagnostic] = field(default_factory=list)
    functions: dict[str, Function] = field(default_factory=dict)
    consts: dict[str, Symbol] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    stale: bool = False   # the index is an earlier text's (this one does not parse)

    def function_at(self, pos: Position) -> Function | None:
        for f in self.functions.values():
            if f.body.contains(pos):
                return f
        return None

    def in_scope(self, pos: Position) -> list[Symbol]:
        """The params and values of the function around `pos` bound before it, innermost
        (latest) binding of each name only. A binding is seen from the next line on (the right
        side of `p = p + 1` reads the p before), and on its own name."""
        f = self.function_at(pos)
        if f is None:
            return []
        seen: dict[str, Symbol] = {}
        for s in f.locals:
            if s.scope is not None:
                if s.scope.contains(pos):
                    seen[s.name] = s
            elif s.kind in ("param", "size") or s.range.start[0] < pos[0] or s.range.contains(pos):
                seen[s.name] = s
        return list(seen.values())

    def resolve(self, name: str, pos: Position) -> Symbol | None:
        """The binding `name` at `pos` refers to: the same function's latest binding of it at or
        before `pos` (a parameter otherwise), then a function, then a const."""
        for s in self.in_scope(pos):
            if s.name == name:
                return s
        if name in self.functions:
            f = self.functions[name]
            return Symbol(name, "function", f.range, f.signature)
        return self.consts.get(name)

    def word_at(self, pos: Position) -> tuple[str, Range] | None:
        line, char = pos
        if not 0 <= line < len(self.lines):
            return None
        for m in NAME.finditer(self.lines[line].split("#", 1)[0]):   # not in a comment
            if m.start() <= char <= m.end():
                return m.group(), Range((line, m.start()), (line, m.end()))
        return None


def _range(loc: Location | None, length: int | None = None) -> Range:
    """The 0-based range of a Location: to its end column, else `length` characters, else the
    rest of the word it starts."""
    if loc is None:
        return Range((0, 0), (0, 0))
    line, col = loc.line - 1, loc.col - 1
    if loc.end is not None and loc.end > (loc.line, loc.col):
        return Range((line, col), (loc.end[0] - 1, loc.end[1] - 1))
    if loc.end_col and loc.end_col > loc.col:
        end = loc.end_col - 1
    elif length is not None:
        end = col + length
    else:
        m = NAME.match(loc.source_line, col) if loc.source_line else None
        end = m.end() if m else col + 1
    return Range((line, col), (line, end))


def _token_range(tok) -> Range:
    line, col = tok.line - 1, tok.column - 1
    return Range((line, col), (line, col + len(str(tok))))


def diagnostic(err: TdslError) -> Diagnostic:
    message = err.message + (f" (hint: {err.hint})" if err.hint else "")
    return Diagnostic(_range(err.loc), message)


def _sizes(lines: list[str], f: Function, names) -> list[Symbol]:
    """The size variables of `f`, each bound where its header first names it (`n` of `f32[n]`)."""
    found = []
    for name in names:
        word = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])")
        for line in range(f.range.start[0], min(f.body.end[0] + 1, len(lines))):
            start = f.range.end[1] if line == f.range.start[0] else 0
            m = word.search(lines[line], start)
            if m:
                found.append(Symbol(name, "size", Range((line, m.start()), (line, m.end())), "i64", f.name))
                break
    return found


_FOR = re.compile(r"(?<![A-Za-z0-9_])for\s+([A-Za-z_][A-Za-z0-9_]*)\s+in(?![A-Za-z0-9_])")


def _loop_indices(lines: list[str], f: Function) -> list[Symbol]:
    """The index of every `for` loop of `f`, seen from the `for` to the loop's closing brace."""
    found = []
    last = min(f.body.end[0], len(lines) - 1)
    for line in range(f.body.start[0], last + 1):
        for m in _FOR.finditer(lines[line].split("#", 1)[0]):
            depth, end = 0, None
            for row in range(line, last + 1):
                text = lines[row].split("#", 1)[0]
                for col in range(m.end() if row == line else 0, len(text)):
                    depth += {"{": 1, "}": -1}.get(text[col], 0)
                    if text[col] == "}" and depth == 0:
                        end = (row, col + 1)
                        break
                if end:
                    break
            rng = Range((line, m.start(1)), (line, m.end(1)))
            found.append(Symbol(m.group(1), "index", rng, "i64", f.name, Range(rng.start, end or f.body.end)))
    return found


def _internal(err: Exception) -> Diagnostic:
    return Diagnostic(Range((0, 0), (0, 0)), f"tdsl could not check this file: {type(err).__name__}: {err} "
                                             f"(a bug in tdsl: please report it, with the file)")


# ---- parsing item by item: after an edit, only the functions whose text changed are parsed ------

_ITEM = re.compile(r"^(?:fn|const)(?![A-Za-z0-9_])", re.MULTILINE)   # `fn` and `const` are keywords
_PIECES: dict = {}    # (path, the text of one item) -> [its tree, the 0-based line it was parsed at]
_MAX_PIECES = 2048


def _shift(tree, delta: int) -> None:
    """Move every position of a parse tree `delta` lines down (a piece parsed at another line)."""
    for sub in tree.iter_subtrees():
        meta = sub.meta
        if not meta.empty:
            meta.line += delta
            meta.end_line += delta
        for child in sub.children:
            if hasattr(child, "end_line") and not hasattr(child, "children"):   # a token
                child.line += delta
                child.end_line += delta


def _parse_items(text: str, path: str):
    """The parse tree of `text`, as tdsl.grammar.parse gives it, made of the trees of its items
    (each function or const with the comments after it), each parsed once per text and kept:
    typing in one function parses that function only. Any piece that does not parse makes it a
    whole parse, so syntax errors are the compiler's own."""
    from lark import Tree

    from tdsl.grammar import parse
    starts = [m.start() for m in _ITEM.finditer(text)]
    if len(starts) < 2:
        return parse(text, path)
    bounds = [0] + starts[1:] + [len(text)]
    children, line = [], 0
    for lo, hi in zip(bounds, bounds[1:]):
        piece = text[lo:hi]
        key = (path, piece)
        found = _PIECES.get(key)
        try:
            if found is None:
                found = _PIECES[key] = [parse("\n" * line + piece, path), line]
                if len(_PIECES) > _MAX_PIECES:
                    del _PIECES[next(iter(_PIECES))]
            elif found[1] != line:
                _shift(found[0], line - found[1])
                found[1] = line
        except TdslError:
            return parse(text, path)   # the whole text's error, as the compiler reports it
        children += found[0].children
        line += piece.count("\n")
    return Tree("module", children)


def analyse(text: str, path: str = "<string>", previous: Analysis | None = None) -> Analysis:
    """Parse and check `text` (the front end only: no rewrite, no compile): its diagnostics and
    the index of its functions, consts, parameters and named values. A text that does not parse
    gives its syntax error and the index of `previous` (an earlier text's, marked stale: a
    name half typed still completes), else an empty one; one that does not check, the first
    error of each function that does not, and the index of what parsed (the types of the
    functions that check; the names and places of the others)."""
    from tdsl.grammar import parse
    from .frontend import Program
    from .graph import deep_recursion, paused_gc, subgraphs, toposort
    result = Analysis(lines=text.splitlines())
    try:
        tree = _parse_items(text, path)
    except TdslError as err:
        result.diagnostics.append(diagnostic(err))
        if previous is not None and (previous.functions or previous.consts):
            result.functions, result.consts, result.stale = previous.functions, previous.consts, True
        return result
    except Exception as err:   # a bug of the front end: said where the editor shows errors
        result.diagnostics.append(_internal(err))
        return result
    items = {}   # function name -> its parse tree
    for item in tree.children:
        name = item.children[0]
        if item.data == "fn_def":
            items[str(name)] = item
            m = item.meta
            body = Range((m.line - 1, m.column - 1), (m.end_line - 1, m.end_column - 1))
            result.functions[str(name)] = Function(str(name), _token_range(name), body)
        else:
            result.consts[str(name)] = Symbol(str(name), "const", _token_range(name))
    graphs = []
    try:
        with deep_recursion(), paused_gc():
            program = Program(tree, text, path)
            for name, value in program.consts.items():
                if name in result.consts and value is not None:
                    old = result.consts[name]
                    result.consts[name] = Symbol(name, "const", old.range, value.type_str)
            # each function on its own (as Program.function_graphs does, one after the other): the
            # first error of each is shown, and the functions that check keep their types
            for name in program.fns:
                try:
                    graphs.append(program.top_level(name))
                except TdslError as err:   # a caller of a broken function meets the same error
                    if (found := diagnostic(err)) not in result.diagnostics:
                        result.diagnostics.append(found)
    except TdslError as err:
        result.diagnostics.append(diagnostic(err))
        return result
    except Exception as err:   # a bug of the front end: said where the editor shows errors
        result.diagnostics.append(_internal(err))
        return result
    for g in graphs:
        f = result.functions.get(g.name)
        if f is None:
            continue
        f.signature = g.signature
        f.locals = [Symbol(p.name, "param", _range(p.loc, len(p.name)), p.type_str, g.name) for p in g.params]
        f.locals += _sizes(result.lines, f, g.size_vars)
        f.locals += _loop_indices(result.lines, f)
        values = {}
        graphs_of_f = (g, *subgraphs(g))   # the function's own values, then its loop and branch bodies'
        for sub in graphs_of_f:
            roots = list(sub.outputs) + [node for _, node in sub.named] + list(sub.effects)
            for node in toposort(roots):   # a value after its operands: an expression's own node
                loc = node.loc             # comes after the ones a builtin builds it from
                if loc is not None and loc.file == path and loc.end is not None and node.op != "sizevar":
                    rng = _range(loc)
                    if f.body.contains(rng.start):   # not the body of a function inlined here
                        f.exprs[rng] = node.type_str
        for sub in graphs_of_f:
            for name, node in sub.named:
                if node.loc is not None and node.loc.file == path:
                    key = (name, node.loc.line, node.loc.col)
                    rng = _range(node.loc, len(name))
                    if node.loc.source_line[rng.start[1]:rng.start[1] + len(name)] != name:
                        # a loop's or a branch's result, placed at its `for`, `while` or `if`
                        rng = Range(rng.start, rng.start)
                    values.setdefault(key, Symbol(name, "value", rng, node.type_str, g.name))
        f.locals += sorted(values.values(), key=lambda s: s.range.start)
        _assigned_exprs(f, items.get(g.name))
    return result


def _assigned_exprs(f: Function, item) -> None:
    """The right side of each `name = expr` of `f` has the type of the value it binds (the graph
    knows that value by its name's place only)."""
    if item is None:
        return
    bound = {s.range.start: s for s in f.locals if s.kind == "value"}
    for stmt in item.find_data("assign"):
        name, expr = stmt.children[0], stmt.children[-1]
        s = bound.get((name.line - 1, name.column - 1))
        if s is None or not s.type:
            continue
        m = getattr(expr, "meta", None) if not hasattr(expr, "end_column") else expr
        if m is not None and getattr(m, "line", None) is not None:
            rng = Range((m.line - 1, m.column - 1), (m.end_line - 1, m.end_column - 1))
            f.exprs.setdefault(rng, s.type)


def builtin_signature(name: str) -> str | None:
    """`softmax(x, axis=-1)` for a builtin, its first doc line after it when it has one."""
    from . import builtins
    if name not in builtins.BUILDERS:
        return None
    builder = builtins.BUILDERS[name]
    names = builtins.param_names(name)
    defaults = builtins._defaults(builder, names)
    args = [f"{n}={defaults[n]!r}" if n in defaults else n for n in names]
    return f"{name}({', '.join(args)})"


def builtin_doc(name: str) -> str:
    from . import builtins
    from .ops import OPS
    doc = getattr(builtins.BUILDERS.get(name), "__doc__", None) or ""
    if not doc and name in OPS:
        doc = getattr(OPS[name], "doc", "") or ""
    lines = [ln.strip() for ln in doc.strip().splitlines()]
    return lines[0] if lines and lines[0] else ""


def inlay_hints(a: Analysis, lo: Position, hi: Position) -> list[tuple[Position, str]]:
    """`: f32[n]` after the name of every binding between `lo` and `hi` (not a loop's or a
    branch's results, which have no name of their own in the text)."""
    if a.stale:   # an earlier text's places: they may have moved
        return []
    return [(s.range.end, f": {s.type}") for f in a.functions.values() for s in f.locals
            if s.kind == "value" and s.type and s.range.start != s.range.end and lo <= s.range.end <= hi]


def hover_name(a: Analysis, pos: Position) -> tuple[str, str, Range] | None:
    """What to show for the name at `pos`: (code, doc, its range). The code is `name: type`, a
    function's signature, or a builtin's signature (its doc line then in doc)."""
    found = a.word_at(pos)
    if found is None:
        return None
    word, rng = found
    s = a.resolve(word, pos)
    if s is not None:
        if s.kind == "function":
            return s.type or f"fn {word}", "", rng
        kind = f"{s.kind} " if s.kind in ("const", "size", "index") else ""
        return (f"{kind}{word}: {s.type}" if s.type else f"{kind}{word}"), "", rng
    sig = builtin_signature(word)
    if sig is not None:
        return sig, builtin_doc(word), rng
    if word in ("inf", "nan", "pi", "e"):
        return f"const {word}: f64", "a predefined const (weak: it takes the dtype of what it meets)", rng
    return None


def hover(a: Analysis, pos: Position) -> tuple[str, str, Range] | None:
    """What to show at `pos`: for a name, as `hover_name`; elsewhere (an operator, a number, a
    bracket), the innermost sub-expression around it, as `x @ w + b: f32[n]`. One that spans
    several lines shows its first line, `...` and its last."""
    found = hover_name(a, pos)
    if found is not None:
        return found
    f = a.function_at(pos)
    if f is None or a.stale:
        return None
    around = [r for r in f.exprs if r.start <= pos < r.end]
    if not around:
        return None
    # sub-expressions nest: the innermost starts last, and of those that start there ends first
    rng = min(around, key=lambda r: (-r.start[0], -r.start[1], r.end))
    return f"{_excerpt(a.lines, rng)}: {f.exprs[rng]}", "", rng


def _excerpt(lines: list[str], rng: Range, width: int = 60) -> str:
    """The text of `rng`: itself when it is one short line, else its start and end around `...`."""
    (l0, c0), (l1, c1) = rng.start, rng.end
    if l0 == l1:
        text = lines[l0][c0:c1]
    else:
        text = lines[l0][c0:].rstrip() + " ... " + lines[l1][:c1].lstrip()
    if len(text) > width:
        text = text[:width // 2 - 2].rstrip() + " ... " + text[-(width // 2 - 3):].lstrip()
    return text


def language_words() -> list[tuple[str, str]]:
    """The keywords, dtypes, predefined consts and special forms, each with what it is."""
    from tdsl.grammar import KEYWORDS
    from .dtypes import DTYPES
    from .extras import CONSTS
    return ([(k, "keyword") for k in KEYWORDS] + [(d, "dtype") for d in DTYPES]
            + [(c, "f64 (a predefined const)") for c in CONSTS]
            + [("grad", "grad(value, wrt...): derivatives"), ("range", "range(stop) or range(start, stop[, step])")])


def all_builtins() -> list[tuple[str, str, str]]:
    """Every builtin as (name, signature, doc line), by name."""
    from . import builtins as registry
    return [(name, builtin_signature(name), builtin_doc(name)) for name in sorted(registry.BUILDERS)]


# ---- evaluation comments: `# >>> EXPR` runs EXPR on the reference target -------------------------

EVAL = re.compile(r"^(?P<indent>[ \t]*)#[ \t]*>>>[ \t]*(?P<expr>.*?)\s*$")
EVAL_TIMEOUT = 30.0   # seconds; TDSL_EVAL_TIMEOUT changes it


def eval_comments(lines: list[str]) -> list[tuple[int, str]]:
    """The evaluation comments of a text: (0-based line, expression) of each `# >>> EXPR`."""
    found = []
    for i, line in enumerate(lines):
        m = EVAL.match(line)
        if m and m.group("expr"):
            found.append((i, m.group("expr")))
    return found


def result_lines(lines: list[str], line: int) -> Range:
    """The lines below the evaluation comment at `line` that hold its last result: the comment
    lines right under it, at its indentation, up to a blank line, code or the next `# >>>`.
    The range runs from the start of the line after the comment to the start of the first line
    that is not part of the result."""
    indent = EVAL.match(lines[line]).group("indent")
    end = line + 1
    while end < len(lines) and lines[end].startswith(indent + "#") and not EVAL.match(lines[end]):
        end += 1
    return Range((line + 1, 0), (end, 0))


def _eval_function_name(text: str) -> str:
    name = "tdsl_eval"
    while re.search(rf"(?<![A-Za-z0-9_]){name}(?![A-Za-z0-9_])", text):
        name += "_"
    return name


_LITERAL_PARTS = {"int_lit", "float_lit", "true_lit", "false_lit", "array_lit", "neg", "pos"}


def _is_literal(tree) -> bool:
    """Whether an expression is made of literals only (`[[1, 2]]`, `-0.5`): weak, it takes the
    dtype of the parameter it is passed to."""
    return getattr(tree, "data", None) in _LITERAL_PARTS and all(
        _is_literal(c) for c in tree.children if hasattr(c, "data"))


def _source(lines: list[str], meta) -> str:
    (l0, c0), (l1, c1) = (meta.line - 1, meta.column - 1), (meta.end_line - 1, meta.end_column - 1)
    return lines[l0][c0:c1] if l0 == l1 else "\n".join([lines[l0][c0:], *lines[l0 + 1:l1], lines[l1][:c1]])


def evaluate(text: str, path: str, expr: str) -> list[str]:
    """Run the tdsl expression `expr` in the program `text` (its functions and consts are in
    scope) on the reference target (numpy); the result's lines as `tdslc run` prints them (one
    value per line or block), or one line `error: ...`.

    A call of one of the program's functions, `f(ARG, ...)`, is a call from Python: each argument
    is evaluated first (a literal one as an array of the parameter's dtype), and f runs on
    those arrays, so it checks and differentiates as it does for a user's arrays. Any other
    expression is the result of a function of its own, added to the program."""
    import numpy as np
    from tdsl.grammar import parse
    from .dtypes import to_numpy
    from .pipeline import compile_source
    name = _eval_function_name(text)
    base = text.rstrip("\n")
    first = len(base.splitlines()) + 3   # the 1-based line of the first added `return`

    def located(err: TdslError) -> list[str]:
        loc = err.loc
        message = err.message + (f" (hint: {err.hint})" if err.hint else "")
        if loc is not None and loc.line < first and loc.file == path:   # elsewhere in the file: say where
            message = f"{loc.file}:{loc.line}:{loc.col}: {message}"
        return [f"error: {message}"]

    try:
        returned = parse(f"fn {name}() {{\n    return {expr}\n}}\n", "<evaluation>").children[0].children[-1].children[0]
        call = returned.children[0] if len(returned.children) == 1 else None   # return EXPR
        program = parse(text, path)
        own = {str(item.children[0]) for item in program.children if item.data == "fn_def"}
        lines = [f"fn {name}() {{", f"    return {expr}", "}"]
        if getattr(call, "data", None) == "call" and str(call.children[0]) in own:
            args = call.children[1].children
            texts = [_source(lines, a.children[-1].meta) for a in args]
            added = "".join(f"\n\nfn {name}_{k}() {{\n    return {t}\n}}\n" for k, t in enumerate(texts))
            module = compile_source(base + added, path, "numpy")
            fn = module[str(call.children[0])]
            params = {p.name: p for p in fn.graph.params}
            order = [p.name for p in fn.graph.params]
            positional, keywords = [], {}
            for k, a in enumerate(args):
                value = module[f"{name}_{k}"]()
                keyword = str(a.children[0]) if a.data == "arg_kw" else None
                param = params.get(keyword) if keyword else (params[order[k]] if k < len(order) else None)
                if param is not None and _is_literal(a.children[-1]):
                    value = np.asarray(value).astype(to_numpy(param.dtype))
                if keyword:
                    keywords[keyword] = value
                else:
                    positional.append(value)
            result = fn(*positional, **keywords)
        else:
            module = compile_source(base + f"\n\nfn {name}() {{\n    return {expr}\n}}\n", path, "numpy")
            result = module[name]()
    except TdslError as err:
        return located(err)
    except Exception as err:   # a failure at run time that is not a tdsl error: say what it was
        return [f"error: {type(err).__name__}: {err}"]
    out = []
    for r in result if isinstance(result, tuple) else (result,):
        out += (np.array2string(np.asarray(r), threshold=50) if np.ndim(r) else str(r)).splitlines()
    return out


def evaluate_isolated(text: str, path: str, expr: str, timeout: float | None = None) -> list[str]:
    """`evaluate` in a child process, which is killed after `timeout` seconds (TDSL_EVAL_TIMEOUT,
    else EVAL_TIMEOUT): a loop that never ends or a value too large for memory costs the editor
    nothing but that process."""
    import json
    import os
    import subprocess
    import sys
    if timeout is None:
        try:
            timeout = float(os.environ.get("TDSL_EVAL_TIMEOUT", EVAL_TIMEOUT))
        except ValueError:
            timeout = EVAL_TIMEOUT
    request = json.dumps({"text": text, "path": path, "expr": expr})
    code = "from tdsl.analysis import _evaluate_stdio; _evaluate_stdio()"
    try:
        done = subprocess.run([sys.executable, "-c", code], input=request, capture_output=True, text=True,
                              timeout=timeout, encoding="utf-8", errors="replace")
    except subprocess.TimeoutExpired:
        return [f"error: the evaluation took longer than {timeout:g} s and was stopped (TDSL_EVAL_TIMEOUT "
                f"sets the limit)"]
    except OSError as err:
        return [f"error: could not start Python to evaluate it: {err.strerror or err}"]
    try:
        return json.loads(done.stdout)
    except ValueError:
        why = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return [f"error: the evaluation failed: {why[0]}"]


def _evaluate_stdio() -> None:
    """The child process of `evaluate_isolated`: a JSON request on stdin, the lines on stdout."""
    import json
    import sys
    request = json.load(sys.stdin)
    lines = evaluate(request["text"], request["path"], request["expr"])
    sys.stdout.write(json.dumps(lines))


def evaluation_edit(text: str, line: int, result: list[str]) -> tuple[Range, str]:
    """The edit that writes `result` under the evaluation comment at `line` of `text`, in place of
    the result there before: (range to replace, new text)."""
    lines = text.splitlines()
    indent = EVAL.match(lines[line]).group("indent")
    rng = result_lines(lines, line)
    new = "".join(f"{indent}# {r}".rstrip() + "\n" for r in result)
    if rng.end[0] >= len(lines) and not text.endswith(("\n", "\r")):
        # the result runs to the end of a text without a last newline: start on a new line there
        last = len(lines) - 1
        return Range((line, len(lines[line])), (last, len(lines[last]))), "\n" + new.rstrip("\n")
    return rng, new
