"""`tdslc lsp`: a language server for .tdsl files over stdio (the `editor` extra: pygls).

It runs the front end (parse and check, no compile) on every open and change, publishes the
compiler's own errors, and answers hover, go to definition, completion, document symbols and
inlay hints from the index tdsl.analysis builds. pygls 1.x and 2.x are both supported.
"""
from __future__ import annotations

from lsprotocol import types

try:   # pygls 2.x
    from pygls.lsp.server import LanguageServer
    _PYGLS2 = True
except ImportError:   # pygls 1.x
    from pygls.server import LanguageServer
    _PYGLS2 = False
from pygls.uris import to_fs_path

from . import analysis
from .errors import TdslError
from .version import __version__

server = LanguageServer("tdsl", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Full)
_analyses: dict[str, tuple[str, analysis.Analysis]] = {}   # uri -> (text, its analysis)


def _units(text: str, encoding) -> int:
    """The length of `text` in the client's units: UTF-16 code units unless it asked otherwise."""
    if encoding == types.PositionEncodingKind.Utf32:
        return len(text)
    if encoding == types.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


class _Text:
    """A document's lines and the client's position encoding: positions to and from the
    analysis, which counts characters (code points)."""

    def __init__(self, ls, uri: str):
        self.lines = ls.workspace.get_text_document(uri).source.splitlines()
        self.encoding = getattr(ls.workspace, "position_encoding", None) or types.PositionEncodingKind.Utf16

    def position(self, p: types.Position) -> analysis.Position:
        if p.line >= len(self.lines) or self.encoding == types.PositionEncodingKind.Utf32:
            return p.line, p.character
        line, units, col = self.lines[p.line], 0, 0
        while col < len(line) and units < p.character:
            units += _units(line[col], self.encoding)
            col += 1
        return p.line, col

    def client(self, pos: analysis.Position) -> types.Position:
        line, col = pos
        if line >= len(self.lines) or self.encoding == types.PositionEncodingKind.Utf32:
            return types.Position(line=line, character=col)
        return types.Position(line=line, character=_units(self.lines[line][:col], self.encoding))

    def range(self, r: analysis.Range) -> types.Range:
        return types.Range(start=self.client(r.start), end=self.client(r.end))


def _analysis(ls, uri: str) -> analysis.Analysis:
    """The analysis of the document's current text (computed once per text)."""
    doc = ls.workspace.get_text_document(uri)
    cached = _analyses.get(uri)
    if cached is None or cached[0] != doc.source:
        previous = cached[1] if cached else None
        cached = doc.source, analysis.analyse(doc.source, to_fs_path(uri) or uri, previous)
        _analyses[uri] = cached
    return cached[1]


def _publish(ls, uri: str) -> None:
    t = _Text(ls, uri)
    diagnostics = [types.Diagnostic(range=t.range(d.range), message=d.message, source="tdsl",
                                    severity=types.DiagnosticSeverity.Error)
                   for d in _analysis(ls, uri).diagnostics]
    if _PYGLS2:
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics))
    else:
        ls.publish_diagnostics(uri, diagnostics)


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls, params: types.DidOpenTextDocumentParams):
    _publish(ls, params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls, params: types.DidChangeTextDocumentParams):
    _publish(ls, params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls, params: types.DidCloseTextDocumentParams):
    _analyses.pop(params.text_document.uri, None)


@server.feature(types.TEXT_DOCUMENT_HOVER)
def hover(ls, params: types.HoverParams):
    uri = params.text_document.uri
    t = _Text(ls, uri)
    found = analysis.hover(_analysis(ls, uri), t.position(params.position))
    if found is None:
        return None
    code, doc, rng = found
    value = f"```tdsl\n{code}\n```" + (f"\n\n{doc}" if doc else "")
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=value),
                       range=t.range(rng))


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
def definition(ls, params: types.DefinitionParams):
    uri = params.text_document.uri
    t, a = _Text(ls, uri), _analysis(ls, uri)
    pos = t.position(params.position)
    found = a.word_at(pos)
    symbol = found and a.resolve(found[0], pos)
    if not symbol:
        return None
    return types.Location(uri=uri, range=t.range(symbol.range))


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def document_symbol(ls, params: types.DocumentSymbolParams):
    uri = params.text_document.uri
    t, a = _Text(ls, uri), _analysis(ls, uri)
    symbols = []
    for c in a.consts.values():
        symbols.append(types.DocumentSymbol(name=c.name, kind=types.SymbolKind.Constant, detail=c.type,
                                            range=t.range(c.range), selection_range=t.range(c.range)))
    for f in a.functions.values():
        children = [types.DocumentSymbol(name=s.name, detail=s.type, range=t.range(s.range),
                                         selection_range=t.range(s.range),
                                         kind=types.SymbolKind.TypeParameter if s.kind == "size"
                                         else types.SymbolKind.Variable)
                    for s in f.locals]
        symbols.append(types.DocumentSymbol(name=f.name, kind=types.SymbolKind.Function, detail=f.signature,
                                            range=t.range(f.body), selection_range=t.range(f.range),
                                            children=children))
    symbols.sort(key=lambda s: (s.range.start.line, s.range.start.character))
    return symbols


@server.feature(types.TEXT_DOCUMENT_COMPLETION)
def completion(ls, params: types.CompletionParams):
    uri = params.text_document.uri
    t, a = _Text(ls, uri), _analysis(ls, uri)
    items = [types.CompletionItem(label=s.name, kind=types.CompletionItemKind.Variable, detail=s.type)
             for s in a.in_scope(t.position(params.position))]
    items += [types.CompletionItem(label=f.name, kind=types.CompletionItemKind.Function, detail=f.signature)
              for f in a.functions.values()]
    items += [types.CompletionItem(label=c.name, kind=types.CompletionItemKind.Constant, detail=c.type)
              for c in a.consts.values()]
    for name, signature, doc in analysis.all_builtins():
        items.append(types.CompletionItem(label=name, kind=types.CompletionItemKind.Function,
                                          detail=signature, documentation=doc or None))
    names = {i.label for i in items}
    items += [types.CompletionItem(label=word, kind=types.CompletionItemKind.Keyword, detail=what)
              for word, what in analysis.language_words() if word not in names]
    return types.CompletionList(is_incomplete=False, items=items)


@server.feature(types.TEXT_DOCUMENT_INLAY_HINT)
def inlay_hint(ls, params: types.InlayHintParams):
    uri = params.text_document.uri
    t, a = _Text(ls, uri), _analysis(ls, uri)
    lo, hi = t.position(params.range.start), t.position(params.range.end)
    return [types.InlayHint(position=t.client(pos), label=label, kind=types.InlayHintKind.Type)
            for pos, label in analysis.inlay_hints(a, lo, hi)]


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
def formatting(ls, params: types.DocumentFormattingParams):
    """The whole text in tdsl's house style (`tdslc fmt`), as one edit; none when it is already,
    or when it does not parse (the diagnostics say why: nothing is formatted then)."""
    from . import fmt
    uri = params.text_document.uri
    text = ls.workspace.get_text_document(uri).source
    try:
        new = fmt.format_text(text, to_fs_path(uri) or uri)
    except TdslError:
        return None
    if new == text:
        return []
    t = _Text(ls, uri)
    end = (len(t.lines), 0) if text.endswith(("\n", "\r")) or not t.lines else \
        (len(t.lines) - 1, len(t.lines[-1]))
    return [types.TextEdit(range=t.range(analysis.Range((0, 0), end)), new_text=new)]


# ---- evaluation comments ------------------------------------------------------------------------

EVALUATE = "tdsl.evaluate"


@server.feature(types.TEXT_DOCUMENT_CODE_LENS)
def code_lens(ls, params: types.CodeLensParams):
    """An "Evaluate" lens on every `# >>> EXPR` line: it runs the command below."""
    uri = params.text_document.uri
    t = _Text(ls, uri)
    return [types.CodeLens(range=t.range(analysis.Range((line, 0), (line, len(t.lines[line])))),
                           command=types.Command(title="Evaluate", command=EVALUATE, arguments=[uri, line]))
            for line, _ in analysis.eval_comments(t.lines)]


@server.command(EVALUATE)
@server.thread()   # in a worker thread: the server answers hovers while it runs
def evaluate(ls, *arguments):
    """Run the expression of the evaluation comment at (uri, line) on the reference target and
    write its result (or its error) in the comment lines under it, in place of the last one.
    Returns the result's lines; an argument that names no evaluation comment gives None."""
    if len(arguments) == 1 and isinstance(arguments[0], (list, tuple)):   # pygls 1.x: one list
        arguments = tuple(arguments[0])
    if len(arguments) != 2 or not isinstance(arguments[0], str) or type(arguments[1]) is not int:
        return None
    uri, line = arguments
    doc = ls.workspace.get_text_document(uri)
    text = doc.source
    lines = text.splitlines()
    if not 0 <= line < len(lines) or not analysis.EVAL.match(lines[line]) \
            or not analysis.EVAL.match(lines[line]).group("expr"):
        return None
    expr = analysis.EVAL.match(lines[line]).group("expr")
    result = analysis.evaluate_isolated(text, to_fs_path(uri) or uri, expr)
    if ls.workspace.get_text_document(uri).source != text:   # edited meanwhile: write nothing
        return result
    rng, new = analysis.evaluation_edit(text, line, result)
    edit = types.WorkspaceEdit(changes={uri: [types.TextEdit(range=_Text(ls, uri).range(rng), new_text=new)]})
    if _PYGLS2:
        ls.workspace_apply_edit(types.ApplyWorkspaceEditParams(edit=edit, label="tdsl: evaluate"))
    else:
        ls.apply_edit(edit, "tdsl: evaluate")
    return result


def main() -> int:
    """Serve on stdin and stdout until the client's `exit`: 0 after a `shutdown`, else 1 (as the
    protocol asks)."""
    server.start_io()
    protocol = server.protocol if _PYGLS2 else server.lsp
    return 0 if getattr(protocol, "_shutdown", True) else 1
