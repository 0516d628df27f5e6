"""A Pygments lexer for tdsl, registered as `tdsl` (entry point `pygments.lexers`).

It follows grammar/tdsl.lark and LANGUAGE.md section 2. Its word lists are static, so
importing it loads neither the compiler nor its builtin registry; tests/test_lexer.py checks
them against tdsl.grammar.KEYWORDS, tdsl.dtypes.DTYPES and tdsl.builtins.BUILDERS.
"""
from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, include, words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Text

__all__ = ["TdslLexer"]

Whitespace = Text.Whitespace

# Words end where a name would: names are ASCII only (`[A-Za-z_][A-Za-z0-9_]*`).
_END = r"(?![A-Za-z0-9_])"
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_DIGITS = r"[0-9](?:_?[0-9])*"
_EXPONENT = rf"[eE][+-]?{_DIGITS}"
_FLOAT = rf"(?:{_DIGITS}\.(?:{_DIGITS})?(?:{_EXPONENT})?|\.{_DIGITS}(?:{_EXPONENT})?|{_DIGITS}{_EXPONENT})"

DECLARATIONS = ("fn", "const")
KEYWORDS = ("return", "for", "in", "if", "else", "while")
WORD_OPERATORS = ("and", "or", "not")
BOOLEANS = ("true", "false")
RESERVED = ("loop",)
DTYPES = ("bool", "i32", "i64", "f32", "f64")
# The predefined weak float consts (section 12); a user's name shadows them.
CONSTS = ("inf", "nan", "pi", "e")
# Names the compiler treats specially rather than through the builtin registry.
SPECIAL_FORMS = ("grad", "range")
# Every name of tdsl.builtins.BUILDERS but the dtypes (casts, lexed as types).
BUILTINS = (
    "abs", "acos", "all", "any", "arange", "argmax", "argmin", "argsort", "asin", "atan", "atan2",
    "avg_pool2d", "bernoulli", "broadcast_to", "cbrt", "ceil", "clip", "concat", "conv1d", "conv2d",
    "copysign", "cos", "cosh", "cumprod", "cumsum", "diff", "dot", "einsum", "erf", "exp", "exp2",
    "expand_dims", "expm1", "eye", "flip", "floor", "fold_in", "full", "hypot", "isfinite", "isinf",
    "isnan", "log", "log10", "log1p", "log2", "log_softmax", "logaddexp", "logsumexp", "matmul", "max",
    "max_pool2d", "maximum", "mean", "min", "minimum", "mulhi", "norm", "one_hot", "ones", "ones_like",
    "outer", "philox_bits", "philox_f32", "philox_f64", "philox_normal_f32", "philox_normal_f64", "pow",
    "prod", "rand", "randint", "randint_span", "randn", "reciprocal", "relu", "reshape", "round", "rsqrt",
    "scatter_add", "sigmoid", "sign", "sin", "sinh", "softmax", "softplus", "sort", "sqrt", "square",
    "squeeze", "stack", "std", "sum", "take", "take_along_axis", "tan", "tanh", "top_k", "transpose",
    "var", "where", "zeros", "zeros_like",
)
# Longest first, so `**=` is one token and not `**` then `=`.
OPERATORS = ("**=", "//=", "+=", "-=", "*=", "/=", "%=", "@=", "->", "**", "//", "==", "!=", "<=",
             ">=", "<", ">", "=", "+", "-", "*", "/", "%", "@")


class TdslLexer(RegexLexer):
    """Lexer for tdsl, the tensor language (.tdsl files)."""

    name = "tdsl"
    aliases = ["tdsl", "tdsl-error"]   # tdsl-error: the docs' blocks of programs that are refused
    filenames = ["*.tdsl"]
    mimetypes = ["text/x-tdsl"]

    tokens = {
        "root": [
            # `fn name` and `const NAME`: the name being defined.
            (rf"(fn)(\s+)({_NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (rf"(const)(\s+)({_NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Constant)),
            # A dtype with dims, `f32[n, d - 1]`: the dims are size variables.
            (words(DTYPES, suffix=r"(\s*)(\[)"), bygroups(Keyword.Type, Whitespace, Punctuation), "dims"),
            include("common"),
        ],
        "dims": [
            (r"\[", Punctuation, "#push"),
            (r"\]", Punctuation, "#pop"),
            (r"[{};]", Punctuation, "#pop"),   # never in a type: a broken program goes on being lexed
            (words(DTYPES + DECLARATIONS + KEYWORDS + WORD_OPERATORS + BOOLEANS + RESERVED, suffix=_END),
             Keyword),
            (_NAME, Name.Variable),
            include("common"),
        ],
        "common": [
            (r"\n", Whitespace),
            (r"[ \t\f\r]+", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (r'"[^"\n]*"', String.Double),
            (words(DECLARATIONS, suffix=_END), Keyword.Declaration),
            (words(KEYWORDS, suffix=_END), Keyword),
            (words(WORD_OPERATORS, suffix=_END), Operator.Word),
            (words(BOOLEANS + ("None",), suffix=_END), Keyword.Constant),
            (words(RESERVED, suffix=_END), Keyword.Reserved),
            (words(DTYPES, suffix=_END), Keyword.Type),
            (words(CONSTS, suffix=_END), Name.Builtin.Pseudo),
            (words(BUILTINS + SPECIAL_FORMS, suffix=_END), Name.Builtin),
            (r"\.\.\.", Punctuation),
            (_FLOAT, Number.Float),
            (_DIGITS, Number.Integer),
            (rf"(\.)(\s*)({_NAME})", bygroups(Punctuation, Whitespace, Name.Attribute)),
            (words(OPERATORS), Operator),
            (r"[()\[\]{},:;.]", Punctuation),
            (_NAME, Name),
        ],
    }
