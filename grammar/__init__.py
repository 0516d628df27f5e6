"""Parse tdsl source text into a Lark tree; syntax errors become TdslSyntaxError.

The tree contract (the front end is written against exactly this). Tokens stay
lark Tokens, so positions survive; every tree node carries `meta` positions.

    module(item*)              item: const_def(NAME, expr) | fn_def(NAME, params, ret, body)
    params(param*)             param(NAME, type)
    type(NAME, dims)           NAME is the dtype word (f32 ... bool, lexed as a NAME);
                               dims is dims(dim*) for `f32[n, 3]`, or None for a scalar
    dim                        a NAME or INT token, or dim_expr(dim, OP, dim) with OP
                               one of + - * // (`f64[n - 1]`, `f32[n * k]`)
    ret                        None without `->`; ret_single(type) or ret_tuple(type, ...)
    body(stmt*)                assign(NAME, expr), destructure(NAME, NAME, ..., expr),
                               aug_assign(NAME, AUGOP, expr) (AUGOP one of += -= *= /=
                               //= %= **= @=), index_assign(NAME, subscripts, expr),
                               index_aug_assign(NAME, subscripts, AUGOP, expr),
                               for_stmt(NAME, NAME, args, body) (`for i in range(...)`),
                               while_stmt(expr, body), if_stmt(expr, body, else) with
                               else None, a body, or another if_stmt;
                               return_stmt(expr, ...)
    expr, loosest first        or_op(a, b), and_op(a, b), not_op(a), compare(a, OP, b)
                               (OP one of == != < <= > >=, no chaining),
                               binop(a, OP, b) (OP one of + - * / // % @, left-assoc),
                               neg(a), pos(a), power(a, b) (right-assoc, `-x**2` is
                               neg(power(x, 2)), `2 ** -1` parses)
    postfix                    call(NAME, args(arg*)) with arg_pos(expr) | arg_kw(NAME, expr);
                               index(expr, subscripts(sub*)) with sub_expr(expr),
                               sub_slice(start, stop, step) (each an expr or None),
                               sub_none() for the word None, sub_ellipsis() for `...`;
                               attr(expr, NAME) for `x.T`
    atoms                      name(NAME), int_lit(INT), float_lit(FLOAT), true_lit(),
                               false_lit(), `(e)` inlined, tuple_lit(expr*) for `()`,
                               `(n,)`, `(a, b)`; array_lit(expr+) for `[1.0, 2.0]`
"""
from __future__ import annotations

import re

from pathlib import Path
from types import SimpleNamespace

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from tdsl.errors import Location, TdslSyntaxError, location_of
from tdsl.graph import paused_gc

__all__ = ["parse", "KEYWORDS", "RESERVED_WORDS"]

KEYWORDS = ("fn", "const", "return", "true", "false", "and", "or", "not", "for", "in", "if", "else", "while")
RESERVED_WORDS = ("loop",)

_CLOSERS = {"(": ")", "[": "]"}
_OPERAND_TOKENS = {"NAME", "INT", "FLOAT", "TRUE", "FALSE"}
_EXPRESSION_START = {"NAME", "INT", "FLOAT", "LPAR", "LSQB", "MINUS", "PLUS", "TRUE", "FALSE"}
_COMPARISONS = {"EQ", "NE", "LT", "LE", "GT", "GE"}
# What may follow a complete operand; listing them in "expected ..." would only be noise.
_OPERATORS = _COMPARISONS | {"PLUS", "MINUS", "STAR", "SLASH", "DSLASH", "PERCENT", "AT",
                             "POW", "AND", "OR", "LPAR", "LSQB", "DOT"}
_TOKEN_WORDS = {"NAME": "a name", "INT": "a number", "FLOAT": "a number",
                "STRING": "a string", "_NL": "a new line", "$END": "end of file", "AUGOP": "'+=' (or another augmented assignment)"}

# Slips recognised by the parser state they leave behind; "{token}" is the unexpected text.
_EXAMPLES = {
    "missing '->' before the return type": ["fn f(x: f32) f32 { return x }"],
    "missing ',' before '{token}'": ["fn f(x: f32 y: f32) { return x }",
                                     "fn f(x: f32[n] y: f32) { return x }"],
    "a parameter needs a type, as in 'x: f32[n]'": ["fn f(x) { return x }",
                                                    "fn f(x, y: f32) { return x }"],
    "a statement is 'name = expr', 'a, b = expr', 'x[i] = expr', 'name += expr', for, while, "
    "if or 'return expr'": ["fn f() { x + 1 }"],
    "a const is 'const NAME = value'": ["const X 1"],
}

MAX_NESTING = 200   # levels; Python's own parser stops at 200 nested parentheses
# Operators in one left-associative chain (`a + b - c ...`, `and`, `or`): each is a level of
# the graph, so a chain is bounded too, far above what a person writes (use sum() for more)
MAX_CHAIN = 5000
MAX_SOURCE = 10_000_000   # characters; far past any program, it bounds the time to a first error
_STACK_PER_LEVEL = 8   # parser states a nesting level can hold at most (a bound, not an exact count)


class _TooDeep(Exception):
    """Raised at the first bracket nested more than MAX_NESTING deep, or the first operator
    past MAX_CHAIN in one chain."""

    def __init__(self, where, limit: str = f"more than {MAX_NESTING} levels"):
        super().__init__("nested too deeply")
        self.where = where
        self.limit = limit


class BracketNewlines:
    """Post-lexer: drop newlines inside () and [], merge runs of newlines, flag reserved words.

    A ';' is lexed as a newline; inside brackets it becomes a SEMI token, which no rule
    accepts, so `f(a; b)` is a syntax error rather than silently ignored.
    """

    always_accept = ()

    def process(self, stream):
        depth = 0
        pending = None
        # Operators that nest without a bracket (`a ** b ** c`, `- - x`, `not not x`) count too, per
        # bracket level: a run past MAX_NESTING stops at once (parsing 40,000 of them took a second)
        runs = [0]
        after_operand = False
        for tok in stream:
            if tok.type == "_NL":
                if depth and tok.value == ";":
                    yield Token.new_borrow_pos("SEMI", ";", tok)
                elif not depth and pending is None:
                    pending = tok
                runs[-1], after_operand = 0, False
                continue
            if pending is not None:
                yield pending
                pending = None
            kind = tok.type
            if kind in ("LPAR", "LSQB"):
                depth += 1
                runs.append(0)
                if depth > MAX_NESTING:  # stop at once, not after parsing the rest
                    raise _TooDeep(tok)
            elif kind in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
                if len(runs) > 1:
                    runs.pop()
            elif kind == "NAME" and tok.value in RESERVED_WORDS:
                tok = Token.new_borrow_pos("RESERVED", tok.value, tok)
            if kind == "POW" or kind == "NOT" or (kind in ("MINUS", "PLUS") and not after_operand):
                runs[-1] += 1
                if runs[-1] > MAX_NESTING:
                    raise _TooDeep(tok)
            elif kind not in _OPERAND_TOKENS and kind not in ("RPAR", "RSQB", "LPAR", "LSQB", "DOT"):
                runs[-1] = 0   # a binary operator, a comma, a keyword: the nesting chain ends
            after_operand = kind in _OPERAND_TOKENS or kind in ("RPAR", "RSQB")
            yield tok
        if pending is not None:
            yield pending


_parser: Lark | None = None


def _get_parser() -> Lark:
    """The LALR parser, built once on first use."""
    global _parser
    if _parser is None:
        # cache: Lark keeps the analyzed grammar in a file, so a fresh process builds the
        # parser in ~20 ms instead of ~250 ms (see _parser_cache for where)
        options = dict(parser="lalr", lexer="basic", start="module", cache=_parser_cache(),
                       propagate_positions=True, postlex=BracketNewlines(), tree_class=_DepthTree)
        try:
            _parser = Lark.open_from_package("tdsl.grammar", "tdsl.lark", **options)
        except (ImportError, OSError):  # running from a source tree, not installed
            _parser = Lark.open(str(Path(__file__).with_name("tdsl.lark")), **options)
    return _parser


def _parser_cache() -> str | bool:
    """The file where Lark keeps the analyzed grammar (a pickle it loads): in tdsl's private
    cache folder, keyed by the grammar, Lark's and Python's versions. Never Lark's default, a
    predictable name in the shared temporary folder, where another user could plant a pickle
    before us. False (no cache) when there is no usable folder."""
    import sys
    import lark
    from tdsl.codegen import cache
    try:
        grammar = Path(__file__).with_name("tdsl.lark").read_bytes()
        path = cache.entry("parser", cache.key(grammar.decode("utf-8"), lark.__version__, sys.version), ".lark")
        cache.make_room(path)    # a damaged cache: a folder or a FIFO in its place
        if path.is_symlink():    # (Lark would follow it)
            path.unlink()
    except Exception:  # noqa: BLE001 - a cache folder refused or unusable: parse without the cache
        return False
    return str(path)


def parse(text: str, filename: str = "<string>") -> Tree:
    """Parse tdsl source `text` into the tree described in this module's docstring."""
    if len(text) > MAX_SOURCE:
        raise TdslSyntaxError(f"the source is too large ({len(text):,} characters; at most {MAX_SOURCE:,})",
                              Location(filename, 1, 1))
    try:
        try:
            with paused_gc():
                tree = _get_parser().parse(text)
        except UnexpectedInput as err:
            raise _syntax_error(err, text, filename) from None
    except _TooDeep as err:
        raise TdslSyntaxError(f"the program is nested too deeply ({err.limit})",
                              location_of(err.where, filename, text),
                              hint="split the expression into several statements") from None
    _finish(tree)
    return tree

# The left operand of a left-associative operator continues the same chain: `a + b + c ...`
# is flat however long, and the front end walks such a chain in a loop.
_CHAINS = ("binop", "and_op", "or_op")
# Argument lists and subscripts hold expressions without adding a level of their own.
_WRAPPERS = ("args", "arg_pos", "arg_kw", "subscripts", "sub_expr", "sub_slice")


class _DepthTree(Tree):
    """A parse tree node that knows its nesting depth, so an over-deep program stops the
    parse at the first reduction past MAX_NESTING instead of after the whole text."""

    def __init__(self, data, children, meta=None):
        if data == "sub_expr" and _is_none(children[0]):   # `None` is lexed as a name
            data, children = "sub_none", []
        super().__init__(data, children, meta)
        self.depth = self.chain = 0
        if data.startswith("_"):
            # Lark's helper for a repetition: rebuilt with every new item and inlined into its
            # parent afterwards, which counts the items once (counting here would be quadratic)
            return
        depth = 0
        for i, child in enumerate(children):
            if isinstance(child, Tree):
                flat = (i == 0 and data in _CHAINS and child.data in _CHAINS) or child.data in _WRAPPERS
                depth = max(depth, child.depth if flat else child.depth + 1)
        self.depth = depth
        if depth > MAX_NESTING:
            raise _TooDeep(children[0].meta if isinstance(children[0], Tree) else children[0])
        if data in _CHAINS:
            first = children[0]
            self.chain = (first.chain if isinstance(first, Tree) and first.data in _CHAINS else 0) + 1
            if self.chain >= MAX_CHAIN:
                last = children[-1]   # the operand past the limit
                raise _TooDeep(last.meta if isinstance(last, Tree) else last,
                               f"more than {MAX_CHAIN} operands in one operator chain")


def _is_none(node) -> bool:
    return isinstance(node, Tree) and node.data == "name" and node.children[0] == "None"


def _finish(tree: Tree) -> None:
    """Give an empty module a position (sub_expr(name(None)) became sub_none() while parsing)."""
    if tree.meta.empty:
        tree.meta.line = tree.meta.end_line = tree.meta.column = tree.meta.end_column = 1
        tree.meta.start_pos = tree.meta.end_pos = 0
        tree.meta.empty = False


def _syntax_error(err: UnexpectedInput, text: str, filename: str) -> TdslSyntaxError:
    """A friendly TdslSyntaxError for a Lark parse error."""
    if isinstance(err, UnexpectedCharacters):
        char = text[err.pos_in_stream]
        return TdslSyntaxError(f"unexpected character {char!r}", location_of(err, filename, text))
    if not isinstance(err, UnexpectedToken):
        return TdslSyntaxError("unexpected end of file", _end_of_file(text, filename))
    token = err.token
    opener = _unclosed_bracket(text, token)
    if opener is not None:
        return TdslSyntaxError(f"'{opener}' is never closed", location_of(opener, filename, text),
                               hint=f"add '{_CLOSERS[opener.value]}'")
    loc = _end_of_file(text, filename) if token.type == "$END" else location_of(token, filename, text)
    if len(err.state.state_stack) > _STACK_PER_LEVEL * MAX_NESTING:
        # prefix operators shifted without a reduction (`- - - ... =`): the nesting is the error,
        # and working out what the parser would accept there costs a copy of the stack per token
        return TdslSyntaxError(f"the program is nested too deeply (more than {MAX_NESTING} levels)", loc,
                               hint="split the expression into several statements")
    method = _method_call(token, text, filename)
    if method is not None:
        return method
    accepts = set(err.accepts or err.expected)
    message, hint = _explain_by_rule(token, accepts, text)
    if message is None:
        message = _match_example(err, accepts)
    if message is None:
        message = f"unexpected {_describe(token)}; expected {_expected_words(accepts)}"
    return TdslSyntaxError(message, loc, hint=hint)


def _explain_by_rule(token: Token, accepts: set[str], text: str) -> tuple[str | None, str | None]:
    """Slips recognised from the token alone, whatever the parser state."""
    kind, word = token.type, token.value
    if kind == "$END" and "RBRACE" in accepts:
        return "missing '}' at end of file", None
    if kind in ("FN", "CONST") and "RBRACE" in accepts and not _names_something(token, text):
        return f"missing '}}' before '{word}'", None
    if kind == "RESERVED":
        if "NAME" in accepts and _names_something(token, text):
            return f"'{word}' is a reserved word and cannot be used as a name", None
        return f"'{word}' is a reserved word, not part of tdsl yet", None
    if kind == "ELSE" and "NAME" in accepts and not _names_something(token, text):
        return "'else' must be on the line of the '}' that closes its if", "write '} else {'"
    if word in KEYWORDS and kind == word.upper() and "NAME" in accepts:
        return f"'{word}' is a keyword and cannot be used as a name", None
    if kind in ("EQUAL", "AUGOP") and "NAME" in accepts:
        before = re.search(r"([A-Za-z_][A-Za-z0-9_]*)[ \t]*$", text[:token.start_pos])
        if before and before.group(1) in KEYWORDS:
            return f"'{before.group(1)}' is a keyword and cannot be used as a name", None
    if kind == "EQUAL" and "EQ" in accepts:
        return "'=' cannot appear inside an expression", "use '==' to compare"
    if kind in _COMPARISONS and not accepts & _COMPARISONS and {"PLUS", "AND"} <= accepts:
        return "comparisons do not chain", f"write 'a {word} b and b {word} c'"
    return None, None


# What `np.NAME(...)` or `x.NAME(...)` means, where tdsl's builtin has another name
_NUMPY_NAMES = {"concatenate": "concat", "amax": "max", "amin": "min", "power": "pow", "absolute": "abs",
                "arcsin": "asin", "arccos": "acos", "arctan": "atan", "arctan2": "atan2", "float32": "f32",
                "float64": "f64", "int32": "i32", "int64": "i64", "bool_": "bool"}
_MODULES = ("np", "numpy", "jnp", "jax", "lax", "math", "torch", "tf", "tdsl", "scipy", "cp", "F")
_METHOD_NAME = re.compile(r"\.[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*$")


def _method_call(token: Token, text: str, filename: str) -> TdslSyntaxError | None:
    """`x.sum(axis=1)` or `np.sum(x)`: tdsl values have no methods and there are no modules;
    the error points at `.sum` and names the builtin call to write instead."""
    if token.type != "LPAR":
        return None
    # within the line's reach: a search from the start of a large source would take a while
    found = _METHOD_NAME.search(text, max(0, token.start_pos - 400), token.start_pos)
    receiver = _receiver(text, found.start()) if found else None
    if receiver is None:
        return None
    method = found.group(1)
    in_module = receiver.split(".")[0].strip() in _MODULES
    if in_module:
        message = f"'{receiver}.{method}(...)' calls a module, but tdsl has no modules (and values have no methods)"
    else:
        message = f"'.{method}(...)' is a method call, but tdsl values have no methods (and there are no modules)"
    call = _builtin_call(None if in_module else receiver, method, _call_arguments(text, token.start_pos), text)
    line = text.count("\n", 0, found.start()) + 1
    column = found.start() - (text.rfind("\n", 0, found.start()) + 1) + 1
    where = SimpleNamespace(line=line, column=column, end_line=line, end_column=column + found.end(1) - found.start())
    return TdslSyntaxError(message, location_of(where, filename, text),
                           hint=f"call the builtin: {call}" if call else "call a function with the value as an argument")


def _builtin_call(receiver: str | None, method: str, args: str, text: str) -> str | None:
    """The builtin call that does what `receiver.method(args)` (or a module's `method(args)`) does."""
    if receiver is not None and receiver.startswith("(") and _opener(receiver, len(receiver) - 1) == 0:
        receiver = receiver[1:-1].strip()   # (x + 1).max() is max(x + 1)
    if method == "astype" and receiver is not None:
        return f"{args}({receiver})" if args in _DTYPE_WORDS else None
    builtin = _builtin_for(method, text)
    if builtin is None or receiver is None:
        return builtin and f"{builtin}({args})"
    if builtin in ("reshape", "transpose") and _top_level_comma(args):
        args = f"({args})"   # NumPy's x.reshape(2, 3) is reshape(x, (2, 3))
    return f"{builtin}({receiver}{', ' + args if args else ''})"


_DTYPE_WORDS = ("f32", "f64", "i32", "i64", "bool")


def _builtin_for(method: str, text: str) -> str | None:
    """The tdsl function that does what NumPy's `method` does, if there is one."""
    try:
        from tdsl.builtins import BUILDERS
    except ImportError:   # the grammar alone (tdsl.errors is all it needs otherwise)
        BUILDERS = {}
    if method in BUILDERS or method == "grad" or re.search(rf"\bfn[ \t]+{method}\b", text):
        return method
    return _NUMPY_NAMES.get(method)


def _receiver(text: str, dot: int) -> str | None:
    """The text of the postfix expression that ends just before the '.' at `dot`: `x`, `x.T`,
    `x[0]`, `f(x)`, `(a + b)`, `np.linalg`; None if there is none."""
    end = i = len(text[:dot].rstrip(" \t"))
    while i > 0:
        if text[i - 1] in ")]":
            i = _opener(text, i - 1)
            if i < 0:
                return None
        else:
            start = i
            while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
                start -= 1
            if start == i or text[start].isdigit() or text[start:i] in KEYWORDS:
                break
            i = start
        if i > 0 and text[i - 1] == ".":
            i -= 1   # a dotted chain: `np.linalg`, `x.T`
        elif not (i > 0 and text[i] in "([" and (text[i - 1] in ")]_" or text[i - 1].isalnum())):
            break    # else a call or subscript of what precedes it
    return text[i:end] or None


def _opener(text: str, close: int) -> int:
    """The position of the bracket that the ')' or ']' at `close` closes, or -1."""
    depth = 0
    for pos in range(close, -1, -1):
        depth += {")": 1, "]": 1, "(": -1, "[": -1}.get(text[pos], 0)
        if depth == 0:
            return pos
    return -1


def _call_arguments(text: str, opening: int) -> str:
    """The text between the '(' at `opening` and its ')', on one line."""
    depth = 0
    for match in _BRACKETS.finditer(text, opening):
        char = match.group()
        depth += 1 if char in "([" else -1 if char in ")]" else 0
        if depth == 0:
            return " ".join(text[opening + 1:match.start()].split())
    return "..."


def _top_level_comma(args: str) -> bool:
    depth = 0
    for char in args:
        depth += 1 if char in "([" else -1 if char in ")]" else 0
        if char == "," and depth == 0:
            return True
    return False


_example_states: list[tuple[object, frozenset, str]] | None = None


def _match_example(err: UnexpectedToken, accepts: set[str]) -> str | None:
    """The _EXAMPLES label whose error leaves the parser in err's state, filled in.

    Lark's match_examples also compares the parser's stack depth, so an example
    would only match at the same nesting (say, in the first function of a file);
    the LALR state and the acceptable tokens are what identify a slip.
    """
    global _example_states
    if _example_states is None:
        _example_states = []
        for label, examples in _EXAMPLES.items():
            for example in examples:
                try:
                    _get_parser().parse(example)
                except UnexpectedToken as ex:
                    _example_states.append((ex.state.position, frozenset(ex.accepts), label))
    for position, example_accepts, label in _example_states:
        if position == err.state.position and example_accepts == accepts:
            return label.format(token=err.token.value)
    return None


_BRACKETS = re.compile(r"#[^\n]*|[()\[\]]")   # comments are skipped whole: their brackets do not count


def _unclosed_bracket(text: str, token: Token) -> Token | None:
    """The innermost '(' or '[' before `token` that is never closed anywhere in `text`.

    A regular-expression scan, not the lexer: a syntax error in a large source is reported
    in milliseconds (the lexer took over a second for 160 KB)."""
    stack: list[int] = []
    for match in _BRACKETS.finditer(text):
        char = match.group()
        if char in "([":
            stack.append(match.start())
        elif char in ")]" and stack and _CLOSERS[text[stack[-1]]] == char:
            stack.pop()
    if token.type != "$END":
        stack = [pos for pos in stack if pos < token.start_pos]
    return _bracket_token(text, stack[-1]) if stack else None


def _bracket_token(text: str, pos: int) -> Token:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    kind = "LPAR" if text[pos] == "(" else "LSQB"
    return Token(kind, text[pos], pos, line, column, line, column + 1, pos + 1)


def _names_something(token: Token, text: str) -> bool:
    """Whether `token` is followed by what follows a name being bound: '=', ',', ':', ')'."""
    rest = text[token.end_pos:].lstrip(" \t")
    return rest[:1] in (",", ":", ")") or (rest[:1] == "=" and rest[:2] != "==")


def _describe(token: Token) -> str:
    """The unexpected token, in words."""
    if token.type == "$END":
        return "end of file"
    if token.type == "_NL":
        return "end of line" if token.value != ";" else "';'"
    if token.type == "NAME":
        return f"name '{token.value}'"
    if token.type in ("INT", "FLOAT"):
        return f"number {token.value}"
    if token.value in KEYWORDS:
        return f"keyword '{token.value}'"
    return f"'{token.value}'"


def _expected_words(accepts: set[str]) -> str:
    """The terminals the parser could take, in words: "')' or ','", "an expression"."""
    names = set(accepts)
    words = set()
    if _EXPRESSION_START <= names:
        names -= _EXPRESSION_START | {"NOT", "STRING"}   # a string (einsum's spec) is an argument too
        words.add("an expression")
    if "PLUS" in names:  # after a complete operand: any operator could follow
        names -= _OPERATORS
    for name in names:
        if name in _TOKEN_WORDS:
            words.add(_TOKEN_WORDS[name])
        else:
            words.add(f"'{_get_parser().get_terminal(name).pattern.value}'")
    words = sorted(words)
    if len(words) <= 1:
        return words[0] if words else "nothing more"
    return ", ".join(words[:-1]) + " or " + words[-1]


def _end_of_file(text: str, filename: str) -> Location:
    """The place just after the last non-blank character of `text`."""
    lines = text.rstrip().splitlines() or [""]
    last = lines[-1]
    return location_of(SimpleNamespace(line=len(lines), column=len(last) + 1), filename, text)
