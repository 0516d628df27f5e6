"""Tests of the grammar and its parser glue: the tree contract and the syntax errors."""
from __future__ import annotations

import importlib
import importlib.util
import sys
import time
import types
from pathlib import Path

import pytest
from lark import Token, Tree


def _import_grammar():
    """tdsl.grammar, mapped from the source tree as pyproject.toml does when not installed."""
    try:
        return importlib.import_module("tdsl.grammar")
    except ModuleNotFoundError as err:
        if err.name != "tdsl":
            raise
    root = Path(__file__).resolve().parents[1]
    package = types.ModuleType("tdsl")
    package.__path__ = [str(root / "lang"), str(root)]  # tdsl.* in lang/, tdsl.grammar in grammar/
    sys.modules["tdsl"] = package
    init = root / "lang" / "__init__.py"
    if init.exists():
        spec = importlib.util.spec_from_file_location("tdsl", init, submodule_search_locations=package.__path__)
        package.__spec__, package.__file__ = spec, str(init)
        try:
            spec.loader.exec_module(package)
        except ImportError:
            pass  # a sibling module not written yet; the grammar needs only tdsl.errors
    return importlib.import_module("tdsl.grammar")


grammar = _import_grammar()
parse = grammar.parse
from tdsl.errors import TdslSyntaxError  # noqa: E402

LOGISTIC = """\
# examples/logistic.tdsl
const EPS = 1e-7

fn predict(x: f32[n, d], w: f32[d], b: f32) -> f32[n] {
    return sigmoid(x @ w + b)
}

fn loss(x: f32[n, d], y: f32[n], w: f32[d], b: f32) -> f32 {
    p = predict(x, w, b)
    return -mean(y * log(p + EPS) + (1 - y) * log(1 - p + EPS))
}

fn train_step(x: f32[n, d], y: f32[n], w: f32[d], b: f32, lr: f32) -> (f32[d], f32) {
    gw, gb = grad(loss(x, y, w, b), w, b)
    return w - lr * gw, b - lr * gb
}
fn g() { return 1 }
fn h(x: f64[n]) -> f64[n - 1] { return x[1:] }
"""


def shape(node):
    """A tree as nested tuples: (rule, children...), tokens as their text, None as None."""
    if isinstance(node, Tree):
        return (str(node.data), *(shape(child) for child in node.children))
    return node if node is None else str(node)


def expr(source: str):
    """The shape of one expression, parsed as the result of a function."""
    tree = parse(f"fn f() {{ return {source} }}")
    return shape(tree.children[0].children[3].children[0].children[0])


def N(name):
    return ("name", name)


def I(text):
    return ("int_lit", text)


# ---- programs, items, types ----

def test_logistic_example_parses_to_the_documented_items():
    tree = parse(LOGISTIC, "logistic.tdsl")
    assert tree.data == "module"
    assert [str(item.data) for item in tree.children] == ["const_def"] + ["fn_def"] * 5
    const = tree.children[0]
    assert shape(const) == ("const_def", "EPS", ("float_lit", "1e-7"))
    predict = tree.children[1]
    assert shape(predict.children[1]) == ("params",
                                          ("param", "x", ("type", "f32", ("dims", "n", "d"))),
                                          ("param", "w", ("type", "f32", ("dims", "d"))),
                                          ("param", "b", ("type", "f32", None)))
    assert shape(predict.children[2]) == ("ret_single", ("type", "f32", ("dims", "n")))
    train_step = tree.children[3]
    assert shape(train_step.children[2]) == ("ret_tuple", ("type", "f32", ("dims", "d")),
                                             ("type", "f32", None))
    body = shape(train_step.children[3])
    assert body[1][:3] == ("destructure", "gw", "gb")
    assert body[1][3][:2] == ("call", "grad")
    assert body[2][0] == "return_stmt" and len(body[2]) == 3
    g, h = tree.children[4], tree.children[5]
    assert g.children[2] is None and shape(g.children[1]) == ("params",)
    assert shape(h.children[2]) == ("ret_single", ("type", "f64", ("dims", ("dim_expr", "n", "-", "1"))))
    assert shape(h.children[3]) == ("body", ("return_stmt", ("index", N("x"), ("subscripts",
                                    ("sub_slice", I("1"), None, None)))))


def test_every_node_has_a_position_and_tokens_keep_theirs():
    tree = parse(LOGISTIC)
    for node in tree.iter_subtrees():
        assert not node.meta.empty, node.data
        assert node.meta.line >= 1 and node.meta.column >= 1
    loss = tree.children[2]
    assert isinstance(loss.children[0], Token) and loss.children[0].type == "NAME"
    assert (loss.children[0].line, loss.children[0].column) == (8, 4)
    assign = loss.children[3].children[0]
    assert (assign.data, assign.meta.line, assign.meta.column) == ("assign", 9, 5)
    for empty in ("", "# only a comment\n", "fn f() {}", "fn f() { return () }", "fn f() { return g() }"):
        for node in parse(empty).iter_subtrees():
            assert not node.meta.empty, (empty, node.data)


def test_dims_are_tokens_or_small_expressions():
    def dims(text):
        return shape(parse(f"fn f(x: {text}) {{ return x }}").children[0].children[1].children[0].children[1])
    assert dims("f32") == ("type", "f32", None)
    assert dims("i64[3]") == ("type", "i64", ("dims", "3"))
    assert dims("bool[n, 3,]") == ("type", "bool", ("dims", "n", "3"))
    assert dims("f32[n * k // 2, m + 1]") == ("type", "f32", ("dims",
        ("dim_expr", ("dim_expr", "n", "*", "k"), "//", "2"), ("dim_expr", "m", "+", "1")))
    token = parse("fn f(x: f32[n, 3]) {}").children[0].children[1].children[0].children[1].children[1]
    assert [t.type for t in token.children] == ["NAME", "INT"]


def test_return_annotations():
    def ret(text):
        return shape(parse(f"fn f() {text} {{ return 1 }}").children[0].children[2])
    assert ret("") is None
    assert ret("-> f32") == ("ret_single", ("type", "f32", None))
    assert ret("-> (f32)") == ("ret_single", ("type", "f32", None))
    assert ret("-> (f32[n], i64,)") == ("ret_tuple", ("type", "f32", ("dims", "n")), ("type", "i64", None))


def test_statements_and_separators():
    source = """
# leading comment

const A = -1   # trailing comment
const B = [1.0, 2.0]


fn f(a: f32,
     b: f32,) -> f32
{
    x = a; y = b   ;
    # a comment line

    p, q = (x,
             y)
    return x + f(p,
                 q)
}
fn g() { x = 1; return x, x }
"""
    tree = parse(source)
    assert shape(tree.children[0]) == ("const_def", "A", ("neg", I("1")))
    assert shape(tree.children[1]) == ("const_def", "B", ("array_lit", ("float_lit", "1.0"), ("float_lit", "2.0")))
    body = shape(tree.children[2].children[3])
    assert [stmt[0] for stmt in body[1:]] == ["assign", "assign", "destructure", "return_stmt"]
    assert body[3] == ("destructure", "p", "q", ("tuple_lit", N("x"), N("y")))
    assert shape(tree.children[3].children[3]) == ("body", ("assign", "x", I("1")),
                                                   ("return_stmt", N("x"), N("x")))


# ---- expressions ----

@pytest.mark.parametrize("source, expected", [
    ("a or b and c", ("or_op", N("a"), ("and_op", N("b"), N("c")))),
    ("a or b or c", ("or_op", ("or_op", N("a"), N("b")), N("c"))),
    ("a and b and c", ("and_op", ("and_op", N("a"), N("b")), N("c"))),
    ("not a == b", ("not_op", ("compare", N("a"), "==", N("b")))),
    ("not not a", ("not_op", ("not_op", N("a")))),
    ("a == b and c != d", ("and_op", ("compare", N("a"), "==", N("b")), ("compare", N("c"), "!=", N("d")))),
    ("a + b < c * d", ("compare", ("binop", N("a"), "+", N("b")), "<", ("binop", N("c"), "*", N("d")))),
    ("a + b * c", ("binop", N("a"), "+", ("binop", N("b"), "*", N("c")))),
    ("a - b - c", ("binop", ("binop", N("a"), "-", N("b")), "-", N("c"))),
    ("a @ b / c // d % e", ("binop", ("binop", ("binop", ("binop", N("a"), "@", N("b")), "/", N("c")),
                                      "//", N("d")), "%", N("e"))),
    ("-a * b", ("binop", ("neg", N("a")), "*", N("b"))),
    ("+a", ("pos", N("a"))),
    ("- -a", ("neg", ("neg", N("a")))),
    ("-x**2", ("neg", ("power", N("x"), I("2")))),
    ("2 ** -1", ("power", I("2"), ("neg", I("1")))),
    ("a ** b ** c", ("power", N("a"), ("power", N("b"), N("c")))),
    ("(a + b) * c", ("binop", ("binop", N("a"), "+", N("b")), "*", N("c"))),
    ("((a))", N("a")),
    ("f(x)[0].T", ("attr", ("index", ("call", "f", ("args", ("arg_pos", N("x")))),
                            ("subscripts", ("sub_expr", I("0")))), "T")),
    ("x.T.T", ("attr", ("attr", N("x"), "T"), "T")),
    ("f()", ("call", "f", ("args",))),
    ("sum(x, axis=1,)", ("call", "sum", ("args", ("arg_pos", N("x")), ("arg_kw", "axis", I("1"))))),
    ("x[1:]", ("index", N("x"), ("subscripts", ("sub_slice", I("1"), None, None)))),
    ("x[::2]", ("index", N("x"), ("subscripts", ("sub_slice", None, None, I("2"))))),
    ("x[:]", ("index", N("x"), ("subscripts", ("sub_slice", None, None, None)))),
    ("x[1:-1:2]", ("index", N("x"), ("subscripts", ("sub_slice", I("1"), ("neg", I("1")), I("2"))))),
    ("x[:3, None]", ("index", N("x"), ("subscripts", ("sub_slice", None, I("3"), None), ("sub_none",)))),
    ("x[..., -1]", ("index", N("x"), ("subscripts", ("sub_ellipsis",), ("sub_expr", ("neg", I("1")))))),
    ("x[i][j]", ("index", ("index", N("x"), ("subscripts", ("sub_expr", N("i")))),
                 ("subscripts", ("sub_expr", N("j"))))),
    ("true", ("true_lit",)),
    ("false", ("false_lit",)),
    ("None", N("None")),
    ("()", ("tuple_lit",)),
    ("(n,)", ("tuple_lit", N("n"))),
    ("(n, k,)", ("tuple_lit", N("n"), N("k"))),
    ("[1.0, 2.0]", ("array_lit", ("float_lit", "1.0"), ("float_lit", "2.0"))),
    ("[[1, 2], [3, 4],]", ("array_lit", ("array_lit", I("1"), I("2")), ("array_lit", I("3"), I("4")))),
    ("a.b", ("attr", N("a"), "b")),
    ("format + inner + iffy", ("binop", ("binop", N("format"), "+", N("inner")), "+", N("iffy"))),
])
def test_expression_trees(source, expected):
    assert expr(source) == expected


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
def test_comparison_operators(op):
    assert expr(f"a {op} b") == ("compare", N("a"), op, N("b"))


@pytest.mark.parametrize("text, kind", [
    ("12", "INT"), ("1_000", "INT"), ("0", "INT"),
    ("1.5", "FLOAT"), (".5", "FLOAT"), ("1e-3", "FLOAT"), ("2.5E+4", "FLOAT"), ("1.", "FLOAT"),
    ("1_000.000_1", "FLOAT"), ("3e10", "FLOAT"),
])
def test_number_literals(text, kind):
    literal = parse(f"const C = {text}").children[0].children[1]
    assert literal.data == ("int_lit" if kind == "INT" else "float_lit")
    assert literal.children[0].type == kind and literal.children[0] == text


def test_operator_tokens_keep_positions():
    tree = parse("fn f() {\n    return a  //  b\n}")
    op = tree.children[0].children[3].children[0].children[0].children[1]
    assert isinstance(op, Token) and op == "//" and (op.line, op.column) == (2, 15)


def test_thousand_line_program_parses_quickly():
    source = "".join(f"fn f{i}(x: f32[n]) -> f32[n] {{\n    y = x * 2.0 + {i}\n    return y\n}}\n\n"
                     for i in range(200))
    assert source.count("\n") == 1000
    parse("const A = 1")  # build the parser outside the timing
    start = time.perf_counter()
    tree = parse(source)
    assert len(tree.children) == 200
    assert time.perf_counter() - start < 5.0


# ---- syntax errors ----

@pytest.mark.parametrize("source, line, col, message", [
    ("fn f() {\n    return 1\n", 2, 13, "missing '}' at end of file"),
    ("fn f() {", 1, 9, "missing '}' at end of file"),
    ("fn f() {\n    return 1\nfn g() { return 2 }\n", 3, 1, "missing '}' before 'fn'"),
    ("fn f() {\n    y = g(x\n    return y\n}\n", 2, 10, "'(' is never closed"),
    ("fn f() {\n    return [1, 2\n}\n", 2, 12, "'[' is never closed"),
    ("fn f() {\n    return (a + b\n}\nfn g() { return (1) }\n", 2, 12, "'(' is never closed"),
    ("fn f() {\n    return f(a b)\n}", 2, 16, "unexpected name 'b'; expected ')', ',' or '='"),
    ("fn f() {\n    return f(1 b)\n}", 2, 16, "unexpected name 'b'; expected ')' or ','"),
    ("fn f() {\n    return f(1; b)\n}", 2, 15, "unexpected ';'"),
    ("fn f() {\n    return a = b\n}", 2, 14, "'=' cannot appear inside an expression"),
    ("fn f() {\n    y = a + b = c\n}", 2, 15, "'=' cannot appear inside an expression"),
    ("fn f() {\n    return a < b < c\n}", 2, 18, "comparisons do not chain"),
    ("fn f() {\n    return a == b * 2 != c\n}", 2, 23, "comparisons do not chain"),
    ("fn f() {\n    for = 1\n}", 2, 9, "'for' is a keyword and cannot be used as a name"),
    ("fn f() {\n    loop x { return 1 }\n}", 2, 5, "'loop' is a reserved word"),
    ("fn f(in: f32) { return 1 }", 1, 6, "'in' is a keyword and cannot be used as a name"),
    ("fn f() {\n    fn = 1\n}", 2, 5, "'fn' is a keyword and cannot be used as a name"),
    ("fn f() {\n    a, return = g()\n}", 2, 8, "'return' is a keyword and cannot be used as a name"),
    ("fn return() { return 1 }", 1, 4, "'return' is a keyword and cannot be used as a name"),
    ("const true = 1", 1, 7, "'true' is a keyword and cannot be used as a name"),
    ("fn f(x: f32) f32 { return x }", 1, 14, "missing '->' before the return type"),
    ("fn f(x: f32 y: f32) { return x }", 1, 13, "missing ',' before 'y'"),
    ("fn f() { return 1 }\nfn g(x: f32[n]\n      y: f32) { return x }", 3, 7, "missing ',' before 'y'"),
    ("fn f(x) { return x }", 1, 7, "a parameter needs a type"),
    ("fn f() { return 1 }\nfn g(x: f32) {\n    y = x\n    x + 1\n}", 4, 7, "a statement is 'name = expr'"),
    ("const X 1", 1, 9, "a const is 'const NAME = value'"),
    ("fn f() {\n    return x $ 2\n}", 2, 14, "unexpected character '$'"),
    ("fn f() {\n    x = \n}", 2, 9, "unexpected end of line; expected an expression"),
    ("fn f() { return x[] }", 1, 19, "expected '...', ':' or an expression"),
    ("fn f() { return 1 } fn g() { return 2 }", 1, 21, "unexpected keyword 'fn'"),
    ("fn f() {\n    return\n}", 2, 11, "expected an expression"),
])
def test_syntax_errors(source, line, col, message):
    with pytest.raises(TdslSyntaxError) as caught:
        parse(source, "prog.tdsl")
    err = caught.value
    assert message in err.message
    assert (err.loc.file, err.loc.line, err.loc.col) == ("prog.tdsl", line, col)
    assert err.loc.source_line == source.splitlines()[line - 1]
    assert str(err).startswith(f"prog.tdsl:{line}:{col}: error: ")


def test_error_messages_name_tokens_in_words_and_are_deterministic():
    source = "fn f(x: f32) {\n    return g(x,\n             y z)\n}\n"
    messages = set()
    for _ in range(3):
        with pytest.raises(TdslSyntaxError) as caught:
            parse(source)
        messages.add(caught.value.message)
    assert messages == {"unexpected name 'z'; expected ')', ',' or '='"}
    assert "RPAR" not in str(caught.value) and "COMMA" not in str(caught.value)
