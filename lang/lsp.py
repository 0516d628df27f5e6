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
from .version import __version__

server = LanguageServer("tdsl", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Full)
_analyses: dict[str, tuple[str, analysis.Analysis]] = {}   # uri -> (text, its analysis)


def _position(p: types.Position) -> analysis.Position:
    return p.line, p.character


def _range(r: analysis.Range) -> types.Range:
    return types.Range(start=types.Position(*r.start), end=types.Position(*r.end))


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
    diagnostics = [types.Diagnostic(range=_range(d.range), message=d.message, source="tdsl",
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
    found = analysis.hover(_analysis(ls, params.text_document.uri), _position(params.position))
    if found is None:
        return None
    code, doc, rng = found
    value = f"```tdsl\n{code}\n```" + (f"\n\n{doc}" if doc else "")
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=value),
                       range=_range(rng))


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
def definition(ls, params: types.DefinitionParams):
    a = _analysis(ls, params.text_document.uri)
    pos = _position(params.position)
    found = a.word_at(pos)
    symbol = found and a.resolve(found[0], pos)
    if not symbol:
        return None
    return types.Location(uri=params.text_document.uri, range=_range(symbol.range))


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def document_symbol(ls, params: types.DocumentSymbolParams):
    a = _analysis(ls, params.text_document.uri)
    symbols = []
    for c in a.consts.values():
        symbols.append(types.DocumentSymbol(name=c.name, kind=types.SymbolKind.Constant, detail=c.type,
                                            range=_range(c.range), selection_range=_range(c.range)))
    for f in a.functions.values():
        children = [types.DocumentSymbol(name=s.name, detail=s.type, range=_range(s.range),
                                         selection_range=_range(s.range),
                                         kind=types.SymbolKind.TypeParameter if s.kind == "size"
                                         else types.SymbolKind.Variable)
                    for s in f.locals]
        symbols.append(types.DocumentSymbol(name=f.name, kind=types.SymbolKind.Function, detail=f.signature,
                                            range=_range(f.body), selection_range=_range(f.range),
                                            children=children))
    symbols.sort(key=lambda s: (s.range.start.line, s.range.start.character))
    return symbols


@server.feature(types.TEXT_DOCUMENT_COMPLETION)
def completion(ls, params: types.CompletionParams):
    a = _analysis(ls, params.text_document.uri)
    items = [types.CompletionItem(label=s.name, kind=types.CompletionItemKind.Variable, detail=s.type)
             for s in a.in_scope(_position(params.position))]
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
    a = _analysis(ls, params.text_document.uri)
    lo, hi = _position(params.range.start), _position(params.range.end)
    return [types.InlayHint(position=types.Position(*pos), label=label, kind=types.InlayHintKind.Type)
            for pos, label in analysis.inlay_hints(a, lo, hi)]


def main() -> int:
    """Serve on stdin and stdout until the client's `exit`: 0 after a `shutdown`, else 1 (as the
    protocol asks)."""
    server.start_io()
    protocol = server.protocol if _PYGLS2 else server.lsp
    return 0 if getattr(protocol, "_shutdown", True) else 1
