"""Format .tdsl source in one house style (`tdslc fmt`): only whitespace changes.

The style is the one of examples/*.tdsl and the docs:

- 4 spaces per open `{`; a line that starts with `}` (or `)`, `]`) is dedented.
- A line continued inside `(` or `[` lines up just after the bracket when code follows the
  bracket on its line (`fn f(x: f32,` / `     y: f32)`); when the bracket ends its line, the
  next lines are indented 4 more than the enclosing statement or bracket, 8 in the header of a
  fn, if, while or for whose closing bracket is not at the start of a line (so the header does
  not line up with the body). A line that starts with the closing bracket goes back to where
  the statement or the enclosing bracket is.
- One space around binary operators, `=`, augmented assignments, `->`, `**` and the keywords;
  none after a unary `-` or `+`; none before `,` `;` `:` or a closing bracket, one after `,`
  and `;` and after the `:` of `x: f32`; none just inside brackets, around `.`, around the
  `:` of a slice (`x[1:n - 1]`) or around the `=` of a keyword argument (`axis=1`); one
  space around `{` and `}` (`} else {`, `{ return x }`).
- A trailing comment keeps the spaces before it when there are two or more (aligned comments
  stay aligned), else gets two; `#text` becomes `# text` (not `#!`, `#:`, `##`, `#'`, `#>`);
  comments, strings and numbers are otherwise kept as written.
- Every line break is the user's. Blank lines: none at the start of the file or of a body or
  before a `}`, at most one in a row inside a function, at most two between top-level items.
  No trailing whitespace; LF line ends; the text ends with one newline.

`format_text` refuses a text that does not parse (the parser's error), and checks that the
result parses to the same tree, with the same comments, before returning it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import TdslError

__all__ = ["format_text"]

_DIGITS = r"[0-9](?:_?[0-9])*"
_EXPONENT = rf"[eE][+-]?{_DIGITS}"
# The grammar's terminals (grammar/tdsl.lark); operators longest first, as the lexer matches.
_TOKEN = re.compile(rf"""
    (?P<comment>\#[^\n]*)
  | (?P<string>"[^"\n]*")
  | (?P<newline>\n)
  | (?P<space>[ \t\f\r]+)
  | (?P<number>{_DIGITS}\.(?:{_DIGITS})?(?:{_EXPONENT})?|\.{_DIGITS}(?:{_EXPONENT})?
               |{_DIGITS}(?:{_EXPONENT})?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\.\.\.|\*\*=|//=|->|\*\*|//|==|!=|<=|>=|[-+*/%@]=|[-+*/%@<>=,:;.()\[\]{{}}])
""", re.VERBOSE)

_OPENERS = ("(", "[")
_CLOSERS = (")", "]")
# Words that are not values: after one of them a `-` or `+` is unary.
_NOT_VALUES = ("fn", "const", "return", "and", "or", "not", "for", "in", "if", "else", "while")
_HEADERS = ("fn", "if", "while", "for")   # their statement's header runs up to its `{`
# After `#`, these leave a comment as written: `#!`, `#:`, `##` banners, `#>>>` evaluations
_COMMENT_KEEP = " \t!:#'>"
_TAB = 4   # columns of a tab before a trailing comment
_BLANKS = " \t\f\r"   # the grammar's whitespace (other characters of a comment are its text)


@dataclass(eq=False)
class _Token:
    kind: str                  # name, number, string or op
    text: str
    unary: bool = False        # a `-` or `+` before its operand
    closer_starts_line: bool = False   # an opening bracket whose closing one starts a line


@dataclass
class _Line:
    tokens: list[_Token] = field(default_factory=list)
    comment: str | None = None
    gap: int = 0               # columns between the code and a trailing comment


def _lines(text: str, path: str) -> list[_Line]:
    """The physical lines of `text` (LF line ends), as tokens and a comment each."""
    lines, line = [], _Line()
    pos, code_end = 0, 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:   # the text parsed, so this is a bug here
            raise _bug(path, f"no token at {text[pos:pos + 10]!r}")
        kind, value = match.lastgroup, match.group()
        if kind == "newline":
            lines.append(line)
            line = _Line()
        elif kind == "comment":
            line.comment = _comment(value)
            start = text.rfind("\n", 0, pos) + 1
            line.gap = len(text[start:pos].expandtabs(_TAB)) - len(text[start:code_end].expandtabs(_TAB))
        elif kind != "space":
            line.tokens.append(_Token(kind, value))
            code_end = match.end()
        pos = match.end()
    lines.append(line)
    _mark_closers(lines)
    return lines


def _comment(text: str) -> str:
    """A comment as the house style writes it: `# text`, no trailing whitespace."""
    text = text.rstrip(_BLANKS)
    if len(text) > 1 and text[1] not in _COMMENT_KEEP:
        text = "# " + text[1:]
    return text


def _mark_closers(lines: list[_Line]) -> None:
    """Mark each opening bracket whose closing bracket is the first token of its line."""
    stack: list[_Token] = []
    for line in lines:
        for i, token in enumerate(line.tokens):
            if token.text in _OPENERS:
                stack.append(token)
            elif token.text in _CLOSERS and stack:
                stack.pop().closer_starts_line = i == 0


def _ends_value(token: _Token | None) -> bool:
    """Whether `token` can end an operand (so a `-` after it is binary, a `(` after it a call)."""
    if token is None:
        return False
    if token.kind == "name":
        return token.text not in _NOT_VALUES
    return token.kind in ("number", "string") or token.text in (")", "]", "...")


@dataclass
class _Bracket:
    opener: str
    cont: int     # the indentation of the lines it continues
    close: int    # the indentation of a line that starts with its closing bracket


class _Layout:
    """Lays out the lines of a text one after another, tracking braces, brackets and headers."""

    def __init__(self):
        self.braces = 0
        self.brackets: list[_Bracket] = []
        self.statement_indent = 0
        self.prev: _Token | None = None   # the statement's previous token; None at its start
        self.header = False     # in the header of a fn, if, while or for, before its `{`
        self.fn_header = False  # in the header of a fn (it may break its line outside brackets)

    def at_top(self) -> bool:
        return not (self.braces or self.brackets or self.fn_header)

    def indent(self, line: _Line) -> int:
        first = line.tokens[0].text if line.tokens else None
        if self.brackets:
            top = self.brackets[-1]
            return top.close if first in _CLOSERS else top.cont
        if self.fn_header:   # `-> T` or `{` on a line of its own
            return self.statement_indent if first == "{" else self.statement_indent + 8
        self.prev = None     # a new statement
        closing = 0
        while closing < len(line.tokens) and line.tokens[closing].text == "}":
            closing += 1
        indent = 4 * max(self.braces - closing, 0)
        if line.tokens:
            self.statement_indent = indent
        return indent

    def render(self, line: _Line) -> str:
        """The formatted text of `line`."""
        out = " " * self.indent(line)
        before = None
        for i, token in enumerate(line.tokens):
            if before is not None:
                out += self.space(before, token)
            token.unary = token.text in ("-", "+") and not _ends_value(self.prev)
            column = len(out)
            out += token.text
            self.advance(token, column, hanging=i == len(line.tokens) - 1)
            before = token
        if line.comment is not None:
            out += " " * max(2, line.gap) if line.tokens else ""
            out += line.comment
        return out

    def space(self, a: _Token, b: _Token) -> str:
        """The space between the tokens `a` and `b` of one line."""
        x, y = a.text, b.text
        inside = self.brackets[-1].opener if self.brackets else None
        if y in (",", ";") or y in _CLOSERS or x in _OPENERS:
            return ""
        if x in (",", ";"):
            return " "
        if y in (":", ".") or x == ".":
            return ""
        if x == ":":
            return "" if inside == "[" else " "   # a slice, or `name: type`
        if a.unary or ("=" in (x, y) and inside):  # `-x`, `axis=1`
            return ""
        if y in _OPENERS:
            return "" if _ends_value(a) else " "   # a call, an index, `f32[n]`
        if x == "{" and y == "}":
            return ""
        return " "

    def advance(self, token: _Token, column: int, hanging: bool) -> None:
        """Take `token`, written at `column`, into the state."""
        text = token.text
        if text in _OPENERS:
            base = self.brackets[-1].cont if self.brackets else self.statement_indent
            if not hanging:
                cont = column + 1
            elif not self.brackets and self.header and not token.closer_starts_line:
                cont = base + 8
            else:
                cont = base + 4
            self.brackets.append(_Bracket(text, cont, base))
        elif text in _CLOSERS and self.brackets:
            self.brackets.pop()
        elif text == "{":
            self.braces += 1
            self.header = self.fn_header = False
        elif text == "}":
            self.braces = max(self.braces - 1, 0)
        elif token.kind == "name" and text in _HEADERS:
            self.header = True
            self.fn_header = text == "fn"
        self.prev = None if text in ("{", "}", ";") else token


def _layout(text: str, path: str) -> str:
    """`text` (LF line ends) laid out in the house style."""
    layout = _Layout()
    out: list[str] = []
    blanks = 0
    after_open = True   # no blank line at the start of the file or of a body
    for line in _lines(text, path):
        if not line.tokens and line.comment is None:
            blanks += 1
            continue
        closing = bool(line.tokens) and line.tokens[0].text == "}"
        if out and not after_open and not closing:
            out += [""] * min(blanks, 2 if layout.at_top() else 1)
        blanks = 0
        out.append(layout.render(line).rstrip(_BLANKS))
        after_open = bool(line.tokens) and line.tokens[-1].text == "{"
    return "\n".join(out) + "\n" if out else ""


def format_text(text: str, path: str = "<string>") -> str:
    """`text` formatted in the house style; the parser's TdslError if it does not parse."""
    from tdsl.grammar import parse
    tree = parse(text, path)
    result = _layout(text.replace("\r\n", "\n"), path)
    if result != text:
        _check(text, tree, result, path)
    return result


def _check(text: str, tree, result: str, path: str) -> None:
    """Raise unless `result` parses to `tree` and holds the comments of `text`."""
    from tdsl.grammar import parse
    try:
        same = _same_tree(parse(result, path), tree)
    except TdslError as err:
        raise _bug(path, f"the result does not parse: {err.message}") from None
    if not same:
        raise _bug(path, "the result is another program")
    before = [line.comment for line in _lines(text.replace("\r\n", "\n"), path) if line.comment]
    after = [line.comment for line in _lines(result, path) if line.comment]
    if before != after:
        raise _bug(path, "the result lost or changed a comment")


def _same_tree(a, b) -> bool:
    """Whether two parse trees are equal, positions aside (Lark's `==` without its recursion: an
    operator chain of a few thousand operands is as deep)."""
    from lark import Tree
    pairs = [(a, b)]
    while pairs:
        a, b = pairs.pop()
        if isinstance(a, Tree) != isinstance(b, Tree):
            return False
        if not isinstance(a, Tree):
            if a != b or getattr(a, "type", None) != getattr(b, "type", None):
                return False
        elif a.data != b.data or len(a.children) != len(b.children):
            return False
        else:
            pairs += zip(a.children, b.children)
    return True


def _bug(path: str, why: str) -> TdslError:
    return TdslError(f"tdsl could not format {path} ({why}); the file is left as it was. This is a bug "
                     f"in tdsl: please report it, with the file")
