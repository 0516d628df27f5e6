"""The language server (`tdslc lsp`, tdsl.lsp) and its analysis layer (tdsl.analysis).

The end-to-end test drives the server as an editor does: a subprocess spoken to in JSON-RPC
over its stdin and stdout, with Content-Length framing, and a timeout on every read.
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time

import pytest

from tdsl.analysis import (Range, analyse, eval_comments, evaluate, evaluate_isolated, evaluation_edit, hover,
                           inlay_hints)

pytest.importorskip("pygls")   # the editor extra (in the test extra too)

GOOD = """\
const EPS = 1e-7

fn predict(x: f32[n, d], w: f32[d], b: f32) -> f32[n] {
    return sigmoid(x @ w + b)
}

fn loss(x: f32[n, d], y: f32[n], w: f32[d], b: f32) -> f32 {
    p = predict(x, w, b)
    p = p + EPS
    return -mean(y * log(p) + (1 - y) * log(1 - p))
}
"""

BAD = """\
fn f(x: f32[n]) -> f32[n] {
    y = x + foo
    return y
}
"""


# ---- the analysis layer -------------------------------------------------------------------------

def test_diagnostic_has_the_compilers_message_and_a_0_based_range():
    a = analyse(BAD, "bad.tdsl")
    assert [(d.range, d.message) for d in a.diagnostics] == [
        (Range((1, 12), (1, 15)), "undefined name 'foo'")]
    assert list(a.functions) == ["f"]   # what parsed is still indexed
    assert a.functions["f"].locals == []


def test_each_function_that_does_not_check_has_its_error_the_others_their_types():
    text = BAD + GOOD + ("fn g(x: f32[n]) -> f32 {\n    return sum(x) + bar\n}\n"
                         "fn h(x: f32[n]) -> f32[n] {\n    return f(x)\n}\n")
    a = analyse(text, "mixed.tdsl")
    assert [(d.range.start, d.message) for d in a.diagnostics] == [
        ((1, 12), "undefined name 'foo'"),                 # f's, and h's call of f: once
        ((16, 20), "undefined name 'bar'")]                # g's
    assert [f.locals for f in (a.functions["f"], a.functions["g"], a.functions["h"])] == [[], [], []]
    assert hover(a, (11, 5))[0] == "p: f32[n]"             # loss still has its types


def test_syntax_error_is_a_diagnostic_with_its_hint():
    a = analyse("fn f(x: f32) -> f32 {\n    return x +\n}\n", "s.tdsl")
    assert len(a.diagnostics) == 1
    d = a.diagnostics[0]
    assert d.range.start == (1, 14) and "expected an expression" in d.message
    assert a.functions == {}


def test_a_crash_of_the_checker_is_a_diagnostic_not_an_exception(monkeypatch):
    from tdsl import frontend

    def broken(self, name):
        raise RuntimeError("boom")
    monkeypatch.setattr(frontend.Program, "top_level", broken)
    a = analyse(GOOD, "good.tdsl")
    assert [(d.range, d.message) for d in a.diagnostics] == [
        (Range((0, 0), (0, 0)), "tdsl could not check this file: RuntimeError: boom "
                                "(a bug in tdsl: please report it, with the file)")]
    assert list(a.functions) == ["predict", "loss"]


def test_a_text_that_does_not_parse_keeps_the_earlier_index_marked_stale():
    good = analyse(GOOD, "good.tdsl")
    typing = GOOD.replace("    p = p + EPS\n", "    p = p + EPS\n    q = predict(\n")
    a = analyse(typing, "good.tdsl", previous=good)
    assert len(a.diagnostics) == 1 and a.stale
    assert {s.name for s in a.in_scope((9, 10))} >= {"p", "x", "y"}   # still completes
    assert a.resolve("predict", (9, 8)).type == good.functions["predict"].signature
    assert inlay_hints(a, (0, 0), (20, 0)) == []   # the places may have moved: no hints
    assert analyse(typing, "good.tdsl").functions == {}   # with no earlier index: empty


def test_index_of_functions_params_values_and_consts():
    a = analyse(GOOD, "good.tdsl")
    assert a.diagnostics == []
    assert a.consts["EPS"].range == Range((0, 6), (0, 9)) and a.consts["EPS"].type == "f64"
    assert list(a.functions) == ["predict", "loss"]
    loss = a.functions["loss"]
    assert loss.range == Range((6, 3), (6, 7))
    assert loss.signature == "loss(x: f32[n, d], y: f32[n], w: f32[d], b: f32) -> f32"
    assert [(s.name, s.kind, s.range.start, s.type) for s in loss.locals] == [
        ("x", "param", (6, 8), "f32[n, d]"), ("y", "param", (6, 22), "f32[n]"),
        ("w", "param", (6, 33), "f32[d]"), ("b", "param", (6, 44), "f32"),
        ("n", "size", (6, 15), "i64"), ("d", "size", (6, 18), "i64"),
        ("p", "value", (7, 4), "f32[n]"), ("p", "value", (8, 4), "f32[n]")]


def test_names_resolve_by_scope_to_the_latest_binding_before_them():
    a = analyse(GOOD, "good.tdsl")
    assert a.resolve("p", (8, 8)).range.start == (7, 4)    # `p + EPS` reads the first p
    assert a.resolve("p", (9, 26)).range.start == (8, 4)   # the return reads the second
    assert a.resolve("x", (7, 16)).range.start == (6, 8)   # loss's x, not predict's
    assert a.resolve("predict", (7, 9)).kind == "function"
    assert a.resolve("EPS", (8, 12)).kind == "const"
    assert a.resolve("p", (3, 4)) is None                  # predict has no p


def test_hover_texts():
    a = analyse(GOOD, "good.tdsl")
    assert hover(a, (7, 5))[:2] == ("p: f32[n]", "")
    assert hover(a, (7, 10))[0] == "predict(x: f32[n, d], w: f32[d], b: f32) -> f32[n]"
    assert hover(a, (8, 13))[0] == "const EPS: f64"
    assert hover(a, (9, 14))[0] == "mean(x, axis=None, keepdims=False)"   # a builtin
    assert hover(a, (5, 0)) is None
    assert hover(analyse("fn f(x: f32) -> f32 {\n    return x * pi\n}\n", "pi.tdsl"), (1, 16))[0] == "const pi: f64"
    commented = analyse(GOOD.replace("p = p + EPS", "p = p + EPS   # p again"), "c.tdsl")
    assert hover(commented, (8, commented.lines[8].index("p again"))) is None   # in a comment
    header = GOOD.splitlines()[6]
    assert hover(a, (6, header.index("y: f32[n]") + 7))[0] == "size n: i64"   # the n of y's type
    assert a.resolve("d", (6, header.index("w: f32[d]") + 7)).range == Range((6, 18), (6, 19))


def test_hover_on_a_sub_expression_shows_the_innermost_ones_type():
    a = analyse(GOOD, "good.tdsl")
    line = GOOD.splitlines()[9]           # return -mean(y * log(p) + (1 - y) * log(1 - p))
    col = line.index("1 - y") + 2         # the `-` of `1 - y`
    assert hover(a, (9, col)) == ("1 - y: f32[n]", "", Range((9, col - 2), (9, col + 3)))
    assert hover(a, (9, line.index("-mean")))[0] == "-mean(y * log(p) + (1 - y) * log(1 - p)): f32"
    body = GOOD.splitlines()[3]           # return sigmoid(x @ w + b)
    assert hover(a, (3, body.index("@")))[0] == "x @ w: f32[n]"
    assert hover(a, (3, body.index("+")))[0] == "x @ w + b: f32[n]"
    assert hover(a, (9, 0)) is None                      # indentation: no expression


def test_importing_tdsl_its_cli_and_the_analysis_does_not_import_pygls():
    code = ("import sys, tdsl, tdsl.cli, tdsl.analysis; "
            "print(sorted(m for m in ('pygls', 'lsprotocol', 'tdsl.lsp') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_tdslc_lsp_without_pygls_says_what_to_install():
    code = ("import sys; sys.modules['pygls'] = None; sys.modules['pygls.lsp'] = None; "
            "from tdsl.cli import main; sys.exit(main(['lsp']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.startswith("error: tdslc lsp needs pygls (")
    assert out.stderr.rstrip().endswith("); install it with pip install 'tdsl[editor]'")


LOOP = """\
fn horner(c: f64[k], x: f64) -> f64 {
    p = 0.0
    for i in range(k) {
        p = p * x + c[i]
    }
    return p
}
"""


def test_values_bound_in_a_loop_body():
    a = analyse(LOOP, "loop.tdsl")
    assert a.diagnostics == []
    assert hover(a, (3, 8))[0] == "p: f64"
    assert a.resolve("p", (5, 11)).range.start == (3, 8)   # after the loop: the body's p
    assert hover(a, (3, 22))[0] == "index i: i64"           # the i of c[i]
    assert a.resolve("i", (3, 22)).range == Range((2, 8), (2, 9))
    assert a.resolve("i", (5, 11)) is None                  # not after its loop
    # a hint after each name bound in the text; none on the `for` that the loop's results carry
    assert inlay_hints(a, (0, 0), (7, 0)) == [((1, 5), ": f64"), ((3, 9), ": f64")]


MULTI = """\
fn f(x: f32[n, d], w: f32[d]) -> f32[n] {
    y = tanh(x @ w
             + 1.0) * 2.0
    z = sum(x,
            axis=1) + y
    return z
}
"""


def test_hover_on_a_sub_expression_over_several_lines():
    a = analyse(MULTI, "multi.tdsl")
    assert a.diagnostics == []
    # the `+` of `x @ w + 1.0`, on the second line of it
    assert hover(a, (2, 13)) == ("x @ w ... + 1.0: f32[n]", "", Range((1, 13), (2, 18)))
    # the `*` of the whole right side of `y = ...`: the value y binds
    assert hover(a, (2, 20)) == ("tanh(x @ w ... + 1.0) * 2.0: f32[n]", "", Range((1, 8), (2, 25)))
    assert hover(a, (3, 14))[0] == "sum(x, ... axis=1): f32[n]"      # the `,` inside the call
    assert hover(a, (4, 20))[0] == "sum(x, ... axis=1) + y: f32[n]"  # the `+` after it
    long = analyse("fn g(x: f32[n]) -> f32 {\n    return sum(x * 2.0 + x * 3.0 + x * 4.0 + x * 5.0 + x * 6.0"
                   " + x * 7.0)\n}\n", "long.tdsl")
    code = hover(long, (1, long.lines[1].rindex(")")))[0]   # sum's `)`: a text longer than 60 characters
    assert code == "sum(x * 2.0 + x * 3.0 + x * ... * 5.0 + x * 6.0 + x * 7.0): f32"


EVAL_PROGRAM = """\
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

# >>> predict([[1.0, 2.0]], [0.5, 0.5], 0.0)
# an old result
# and its second line

# >>> EPS * 2
"""


def test_evaluation_comments_are_found_with_their_expression():
    lines = EVAL_PROGRAM.splitlines()
    assert eval_comments(lines) == [(16, "predict([[1.0, 2.0]], [0.5, 0.5], 0.0)"), (20, "EPS * 2")]
    assert eval_comments(["    #>>>   softmax([1.0])  ", "# >>>", "# >> 1", "x = 1  # >>> 2"]) == [
        (0, "softmax([1.0])")]


def test_evaluate_runs_a_call_as_from_python():
    # each literal argument is an array of the parameter's dtype, keywords too
    assert evaluate(EVAL_PROGRAM, "p.tdsl", "predict([[1.0, 2.0]], [0.5, 0.5], 0.0)") == ["[0.8175745]"]
    assert evaluate(EVAL_PROGRAM, "p.tdsl", "predict(x=[[1, 2]], w=[1, 2], b=-1)") == ["[0.98201376]"]
    # a parameter stays a parameter: grad with respect to it works (literals inlined would not)
    assert evaluate(EVAL_PROGRAM, "p.tdsl", "train_step([[1.0, 2.0], [0.0, 1.0]], [1.0, 0.0], [0.0, 0.0], "
                                            "0.0, lr=0.1)") == ["[0.02499999 0.02499999]", "0.0"]
    # an argument that is not a literal keeps its dtype, and the call checks it as Python's does
    [error] = evaluate(EVAL_PROGRAM, "p.tdsl", "predict(eye(2), [1, 2], 0)")
    assert error.startswith("error: argument 'x' of predict() is float64, which cannot be cast safely to f32")
    assert evaluate(EVAL_PROGRAM, "p.tdsl", "predict([[1, 2]], [1, 2])") == [
        "error: predict() is missing argument 'b'; the signature is "
        "predict(x: f32[n, d], w: f32[d], b: f32) -> f32[n]"]


def test_evaluate_any_other_expression_and_its_errors():
    assert evaluate(EVAL_PROGRAM, "p.tdsl", "EPS * 2") == ["2e-07"]
    assert evaluate(EVAL_PROGRAM, "p.tdsl", "eye(2), 7 // -2, -7 % 3") == ["[[1. 0.]", " [0. 1.]]", "-4", "2"]
    assert evaluate(EVAL_PROGRAM, "p.tdsl", "foo(1)") == ["error: unknown function 'foo' (hint: did you mean 'floor'?)"]
    assert evaluate(EVAL_PROGRAM, "p.tdsl", "1 +") == ["error: unexpected end of line; expected an expression"]
    # an error of the program itself names its place there
    broken = EVAL_PROGRAM.replace("return sigmoid(x @ w + b)", "return sigmoid(x @ w + c)")
    assert evaluate(broken, "p.tdsl", "EPS") == ["error: p.tdsl:4:28: undefined name 'c'"]
    # a program that names its own function tdsl_eval: the added one takes another name
    assert evaluate("fn tdsl_eval() -> i64 {\n    return 3\n}\n", "p.tdsl", "tdsl_eval() + 1") == ["4"]


def test_evaluation_edit_replaces_the_result_under_the_comment():
    lines = EVAL_PROGRAM.splitlines()
    rng, new = evaluation_edit(EVAL_PROGRAM, 16, ["[0.8175745]"])
    assert rng == Range((17, 0), (19, 0)) and new == "# [0.8175745]\n"   # the old two lines, not the blank
    rng, new = evaluation_edit(EVAL_PROGRAM, 20, ["2e-07"])
    assert rng == Range((21, 0), (21, 0)) and new == "# 2e-07\n"          # nothing under it yet: inserted
    assert lines[20] == "# >>> EPS * 2"
    # indented, at the end of a text with no last newline; two result lines
    assert evaluation_edit("    # >>> 1\n    # 5", 0, ["2", "3"]) == (Range((0, 11), (1, 7)), "\n    # 2\n    # 3")
    # the next evaluation comment is not a result
    assert evaluation_edit("# >>> 1\n# >>> 2\n", 0, ["1"]) == (Range((1, 0), (1, 0)), "# 1\n")


def test_evaluation_in_a_child_process_has_a_time_limit():
    assert evaluate_isolated(EVAL_PROGRAM, "p.tdsl", "EPS * 2") == ["2e-07"]
    spin = "fn spin(x: f64) -> f64 {\n    while x > 0.0 {\n        x = x + 1.0\n    }\n    return x\n}\n"
    assert evaluate_isolated(spin, "s.tdsl", "spin(1.0)", timeout=1.5) == [
        "error: the evaluation took longer than 1.5 s and was stopped (TDSL_EVAL_TIMEOUT sets the limit)"]


# ---- the server over JSON-RPC -------------------------------------------------------------------

class Client:
    """A minimal LSP client: Content-Length framed JSON-RPC over a subprocess's pipes."""

    def __init__(self, tmp_path):
        env = dict(os.environ, TDSL_CACHE_DIR=str(tmp_path / "cache"))
        self.stderr = open(tmp_path / "lsp-stderr.txt", "wb")   # a file: a full pipe would block it
        self.proc = subprocess.Popen([sys.executable, "-m", "tdsl.cli", "lsp"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, env=env)
        self.messages: queue.Queue = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        out = self.proc.stdout
        while True:
            headers = {}
            while True:
                line = out.readline()
                if not line:
                    return
                line = line.decode("ascii").strip()
                if not line:
                    break
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            self.messages.put(json.loads(out.read(int(headers["content-length"]))))

    def send(self, method, params=None, request=True):
        message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        if request:
            self.next_id += 1
            message["id"] = self.next_id
        body = json.dumps(message).encode("utf-8")
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        return message.get("id")

    def wait(self, match, timeout=20.0):
        """The first message `match` accepts (others are dropped); a timeout fails the test."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail("the language server did not answer in time")
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if match(message):
                return message

    def reply(self, rid, result):
        """Answer a request of the server's (workspace/applyEdit)."""
        body = json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}).encode("utf-8")
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, method, params, timeout=20.0):
        rid = self.send(method, params)
        reply = self.wait(lambda m: m.get("id") == rid and "method" not in m, timeout)
        assert "error" not in reply, reply
        return reply["result"]

    def diagnostics(self, uri):
        return self.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                         and m["params"]["uri"] == uri)["params"]["diagnostics"]

    def close(self):
        try:
            self.request("shutdown", None)
            self.send("exit", None, request=False)
            assert self.proc.wait(timeout=10) == 0
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.stderr.close()


def _at(uri, line, character):
    return {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}


def test_server_over_stdio(tmp_path):
    path = tmp_path / "prog.tdsl"
    uri = path.as_uri()
    client = Client(tmp_path)
    try:
        init = client.request("initialize", {"processId": os.getpid(), "rootUri": tmp_path.as_uri(),
                                             "capabilities": {}}, timeout=60)
        caps = init["capabilities"]
        assert caps["hoverProvider"] and caps["definitionProvider"] and caps["documentSymbolProvider"]
        client.send("initialized", {}, request=False)

        client.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "tdsl", "version": 1,
                                                              "text": BAD}}, request=False)
        [d] = client.diagnostics(uri)
        assert d["message"] == "undefined name 'foo'" and d["severity"] == 1
        assert d["range"] == {"start": {"line": 1, "character": 12}, "end": {"line": 1, "character": 15}}

        client.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                               "contentChanges": [{"text": GOOD}]}, request=False)
        assert client.diagnostics(uri) == []

        h = client.request("textDocument/hover", _at(uri, 7, 5))
        assert h["contents"]["kind"] == "markdown" and "p: f32[n]" in h["contents"]["value"]
        assert h["range"] == {"start": {"line": 7, "character": 4}, "end": {"line": 7, "character": 5}}

        loc = client.request("textDocument/definition", _at(uri, 7, 10))   # predict
        assert loc["uri"] == uri and loc["range"]["start"] == {"line": 2, "character": 3}
        loc = client.request("textDocument/definition", _at(uri, 9, 26))   # the second p
        assert loc["range"]["start"] == {"line": 8, "character": 4}

        symbols = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
        assert [(s["name"], s["kind"]) for s in symbols] == [("EPS", 14), ("predict", 12), ("loss", 12)]

        items = client.request("textDocument/completion", _at(uri, 9, 4))["items"]
        labels = {i["label"]: i.get("detail") for i in items}
        assert labels["p"] == "f32[n]" and labels["y"] == "f32[n]" and "predict" in labels
        assert labels["softmax"] == "softmax(x, axis=-1)"
        assert labels["while"] == "keyword" and labels["pi"] == "f64 (a predefined const)"

        hints = client.request("textDocument/inlayHint", {"textDocument": {"uri": uri}, "range": {
            "start": {"line": 0, "character": 0}, "end": {"line": 11, "character": 0}}})
        assert [(h["position"], h["label"]) for h in hints] == [
            ({"line": 7, "character": 5}, ": f32[n]"), ({"line": 8, "character": 5}, ": f32[n]")]

        # typing `q = predict(`: a syntax error, and the names of the text before still complete
        typing = GOOD.replace("    p = p + EPS\n", "    p = p + EPS\n    q = predict(\n")
        client.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": 3},
                                               "contentChanges": [{"text": typing}]}, request=False)
        [d] = client.diagnostics(uri)
        assert d["range"]["start"]["line"] == 9   # the line of `q = predict(`
        items = client.request("textDocument/completion", _at(uri, 9, 16))["items"]
        assert {"p", "x", "predict", "softmax"} <= {i["label"] for i in items}
    finally:
        client.close()


def _long_program(lines: int) -> str:
    """A program of about `lines` lines: functions of ten bindings each."""
    out, k = [], 0
    while len(out) < lines:
        out.append(f"fn f{k}(x: f32[n, d], w: f32[d]) -> f32[n] {{")
        out.append("    h0 = x @ w")
        for i in range(1, 9):
            out.append(f"    h{i} = tanh(h{i - 1}) * 2.0 + h{i - 1}")
        out.append("    return h8")
        out.append("}")
        k += 1
    return "\n".join(out) + "\n"


def test_hover_latency_on_a_300_line_file(tmp_path):
    text = _long_program(300)
    assert len(text.splitlines()) >= 300
    uri = (tmp_path / "long.tdsl").as_uri()
    client = Client(tmp_path)
    try:
        client.request("initialize", {"processId": os.getpid(), "capabilities": {}}, timeout=60)
        client.send("initialized", {}, request=False)
        client.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "tdsl", "version": 1,
                                                              "text": text}}, request=False)
        assert client.diagnostics(uri) == []
        times = []
        for _ in range(5):
            start = time.perf_counter()
            h = client.request("textDocument/hover", _at(uri, 290, 5))
            times.append(time.perf_counter() - start)
            assert ": f32[n]" in h["contents"]["value"]
        # after an edit, the hover re-checks the new text first
        client.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                               "contentChanges": [{"text": text + "\n"}]}, request=False)
        start = time.perf_counter()
        client.request("textDocument/hover", _at(uri, 290, 5))
        edited = time.perf_counter() - start
        print(f"hover on a {len(text.splitlines())}-line file: {min(times) * 1000:.1f} ms "
              f"(after an edit: {edited * 1000:.1f} ms)")
        assert min(times) < 0.5
        assert edited < 1.0
    finally:
        client.close()


def test_evaluation_comments_over_stdio(tmp_path):
    uri = (tmp_path / "eval.tdsl").as_uri()
    client = Client(tmp_path)
    try:
        init = client.request("initialize", {"processId": os.getpid(), "capabilities": {
            "workspace": {"applyEdit": True}}}, timeout=60)
        assert "tdsl.evaluate" in init["capabilities"]["executeCommandProvider"]["commands"]
        assert "codeLensProvider" in init["capabilities"]
        client.send("initialized", {}, request=False)
        client.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "tdsl", "version": 1,
                                                              "text": EVAL_PROGRAM}}, request=False)
        assert client.diagnostics(uri) == []
        lenses = client.request("textDocument/codeLens", {"textDocument": {"uri": uri}})
        assert [(lens["range"]["start"]["line"], lens["command"]["title"], lens["command"]["arguments"])
                for lens in lenses] == [(16, "Evaluate", [uri, 16]), (20, "Evaluate", [uri, 20])]
        command = lenses[0]["command"]
        rid = client.send("workspace/executeCommand", {"command": command["command"],
                                                       "arguments": command["arguments"]})
        # the server asks the editor to write the result under the comment, over the old one
        ask = client.wait(lambda m: m.get("method") == "workspace/applyEdit")
        client.reply(ask["id"], {"applied": True})
        [edit] = ask["params"]["edit"]["changes"][uri]
        assert edit == {"range": {"start": {"line": 17, "character": 0}, "end": {"line": 19, "character": 0}},
                        "newText": "# [0.8175745]\n"}
        done = client.wait(lambda m: m.get("id") == rid and "method" not in m)
        assert done["result"] == ["[0.8175745]"]
        # an argument that is not an evaluation comment's line: nothing to do
        assert client.request("workspace/executeCommand", {"command": "tdsl.evaluate",
                                                           "arguments": [uri, 2]}) is None

        # formatting: the whole text in the house style, as one edit; none when it is already
        messy = EVAL_PROGRAM.replace("    return sigmoid(x @ w + b)", "  return sigmoid( x@w+b )   ")
        client.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                               "contentChanges": [{"text": messy}]}, request=False)
        formatting = {"textDocument": {"uri": uri}, "options": {"tabSize": 4, "insertSpaces": True}}
        [edit] = client.request("textDocument/formatting", formatting)
        assert edit["range"] == {"start": {"line": 0, "character": 0},
                                 "end": {"line": len(messy.splitlines()), "character": 0}}
        assert edit["newText"] == EVAL_PROGRAM
        client.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": 3},
                                               "contentChanges": [{"text": EVAL_PROGRAM}]}, request=False)
        assert client.request("textDocument/formatting", formatting) == []
        client.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": 4},
                                               "contentChanges": [{"text": "fn f( {\n"}]}, request=False)
        assert client.request("textDocument/formatting", formatting) is None   # does not parse
    finally:
        client.close()


def test_positions_count_utf16_code_units(tmp_path):
    # the client counts an emoji as two UTF-16 units; the analysis counts it as one character
    uri = (tmp_path / "emoji.tdsl").as_uri()
    text = 'fn f(x: f32) -> f32 {\n    y = x  # \U0001F600\n    return 😀😀 + y\n}\n'.replace("😀", "\U0001F600")
    client = Client(tmp_path)
    try:
        client.request("initialize", {"processId": os.getpid(), "capabilities": {}}, timeout=60)
        client.send("initialized", {}, request=False)
        client.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "tdsl", "version": 1,
                                                              "text": text}}, request=False)
        [d] = client.diagnostics(uri)
        assert d["range"] == {"start": {"line": 2, "character": 11}, "end": {"line": 2, "character": 13}}
    finally:
        client.close()


def test_position_conversion_for_each_encoding():
    from types import SimpleNamespace

    from lsprotocol import types as lsp_types

    from tdsl.lsp import _Text
    line = 'y = einsum("\U0001F600é", x) + x'
    col = line.rindex("x")          # 30 characters before the last x
    for encoding, units in [("utf-16", col + 1), ("utf-8", col + 4), ("utf-32", col), (None, col + 1)]:
        doc = SimpleNamespace(source=line + "\n")
        ls = SimpleNamespace(workspace=SimpleNamespace(position_encoding=encoding,
                                                       get_text_document=lambda uri, doc=doc: doc))
        t = _Text(ls, "file:///e.tdsl")
        assert t.client((0, col)) == lsp_types.Position(line=0, character=units), encoding
        assert t.position(lsp_types.Position(line=0, character=units)) == (0, col), encoding
        assert t.position(lsp_types.Position(line=3, character=7)) == (3, 7)   # past the end: as is


def test_the_evaluation_example_of_docs_editors_md_is_what_evaluate_writes():
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    docs = (root / "docs" / "editors.md").read_text()
    block = docs.split("### Evaluation comments", 1)[1].split("```tdsl\n", 1)[1].split("```", 1)[0]
    program = (root / "examples" / "logistic.tdsl").read_text()
    lines = block.splitlines()
    comments = eval_comments(lines)
    assert len(comments) == 3
    for line, expr in comments:
        rng, new = evaluation_edit(block, line, evaluate(program, "logistic.tdsl", expr))
        assert "".join(f"{text}\n" for text in lines[rng.start[0]:rng.end[0]]) == new, expr


def test_items_parsed_one_by_one_give_the_whole_parse_s_index():
    """After an edit only the changed functions are parsed (tdsl.analysis._parse_items); the pieces
    kept from before, moved to their new lines, give the index a whole parse gives."""
    from tdsl import analysis
    text = GOOD + LOOP + MULTI + EVAL_PROGRAM
    analyse(text, "items.tdsl")   # every piece kept
    lines = text.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("fn horner"))
    edits = [
        "".join(lines[:at] + ["\n", "# a comment\n"] + lines[at:]),                   # lines added above
        "".join(lines[:3] + lines[4:]),                                                 # a line removed
        text.replace("    p = p + EPS\n", "    p = p + EPS * 2.0\n    q = p - 1.0\n"),  # inside one
        text.replace("return sigmoid(x @ w + b)", "return sigmoid(x @ w + c)"),        # an error
        text.replace("    p = p + EPS\n", "    p = p +\n"),                             # a syntax error
    ]
    for edited in edits:
        kept = analyse(edited, "items.tdsl")
        analysis._PIECES.clear()
        whole = analyse(edited, "items.tdsl")
        assert kept.diagnostics == whole.diagnostics
        assert kept.consts == whole.consts
        assert {n: (f.range, f.body, f.signature, f.locals, f.exprs) for n, f in kept.functions.items()} == \
               {n: (f.range, f.body, f.signature, f.locals, f.exprs) for n, f in whole.functions.items()}
        analyse(text, "items.tdsl")   # back to the first text, its pieces kept again
