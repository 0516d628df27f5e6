"""`tdslc`: check, run, inspect, format and build .tdsl files from the command line."""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import numpy as np

from . import targets
from .errors import TdslError
from .pipeline import GRAPH_STAGES


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise TdslError(f"cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise TdslError(f"cannot read {path}: not UTF-8 text (byte {err.start})") from None


# `--stage` of `tdslc graph`: the pipeline's graph stages, and the names they had before
STAGE_ALIASES = {"parsed": "check", "rewritten": "rewrite"}


def _graphs(path: str, stage: str = "check"):
    """The graphs of a file after the pipeline stage `stage` ("check" or "rewrite")."""
    from .pipeline import compile_module
    from .targets import REFERENCE
    return compile_module(REFERENCE, _read(path), path, until=STAGE_ALIASES.get(stage, stage))


def cmd_check(args) -> int:
    """Every file is checked, whatever the ones before gave: each error is printed, and the
    status is 1 when any file failed."""
    failed = False
    for path in args.files:
        try:
            graphs = _graphs(path)
        except TdslError as err:
            print(err.render(), file=sys.stderr)
            failed = True
            continue
        for g in graphs:
            print(g.signature if len(args.files) == 1 else f"{path}: {g.signature}")
    return 1 if failed else 0


def _parse_arg(text: str):
    """`name=file.npy` or `name=literal` (a number, true/false, nan/inf, or a nested list)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise TdslError(f"--arg needs the form name=value, got '{text}'")
    if value.endswith(".npy"):
        try:
            return name, np.load(value, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise TdslError(f"cannot load {value} for argument '{name}': {err}") from None
    try:
        return name, _literal(ast.parse(value.strip(), mode="eval").body)
    except (ValueError, SyntaxError, RecursionError, MemoryError):
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise TdslError(f"argument '{name}': '{shown}' is neither a .npy file nor a literal "
                        f"(a number, true, false, nan, inf or a nested list of them)") from None


# Names a literal may hold: JSON's booleans, and the special floats as Python's float() (and so
# NumPy's) spells them, in any case: nan, inf, infinity (signed with - or + like any number).
_NAMES = {"true": True, "false": False}
_FLOATS = {"nan", "inf", "infinity"}


def _literal(node: ast.AST):
    """The value of a literal's syntax tree: numbers, booleans, strings, nan and inf, in nested
    lists and tuples; ast.literal_eval's safety (nothing is called or looked up)."""
    if isinstance(node, ast.Constant) and not isinstance(node.value, (bytes, type(...))):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Name):
        if node.id in _NAMES:
            return _NAMES[node.id]
        if node.id.lower() in _FLOATS:
            return float(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    raise ValueError("not a literal")


def cmd_run(args) -> int:
    from .pipeline import compile_module
    if args.repeat is not None and not args.profile:
        raise TdslError("--repeat counts the calls of --profile: add --profile")
    if args.repeat is not None and args.repeat < 1:
        raise TdslError(f"--repeat must be at least 1, got {args.repeat}")
    module = compile_module(args.target, _read(args.file), args.file,
                            nan_guard=True if args.nan_guard else None)
    if args.fn not in module:   # by name, never an attribute: a function may be called `functions`
        raise TdslError(f"{args.file} has no function '{args.fn}' (it has {', '.join(f.name for f in module)})")
    kwargs = dict(_parse_arg(a) for a in args.arg)
    result = module[args.fn](**kwargs)
    results = result if isinstance(result, tuple) else (result,)
    if args.output:
        names = ["result"] if len(results) == 1 else [f"result{i}" for i in range(len(results))]
        np.savez(args.output, **dict(zip(names, results)))
        print(f"wrote {', '.join(names)} to {args.output}")
    else:
        for r in results:
            print(np.array2string(np.asarray(r), threshold=50) if np.ndim(r) else r)
    if args.profile:   # (through tdsl.profile: a parameter may be called `repeat`)
        from .profile import profile
        print()
        print(profile(module[args.fn], (), kwargs, args.repeat or 10))
    return 0


def cmd_graph(args) -> int:
    from .printer import graph_dot, graph_text
    graphs = _graphs(args.file, "rewrite" if args.chunks else args.stage)
    if args.fn:
        graphs = [g for g in graphs if g.name == args.fn]
        if not graphs:
            raise TdslError(f"{args.file} has no function '{args.fn}'")
    if args.chunks:   # how each value splits when these size variables are chunked (docs/dask.md)
        from .daskarray import explain_graph
        names = [v.strip() for v in args.chunks.split(",")]
        print("\n\n".join(text for g in graphs if (text := explain_graph(g, names, only_present=True))))
        return 0
    render = graph_dot if args.format == "dot" else graph_text
    print("\n\n".join(render(g) for g in graphs))
    return 0


def cmd_build(args) -> int:
    from .targets import get
    graphs = _graphs(args.file, "rewrite")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = args.prefix or out.stem
    if not (prefix.isascii() and prefix.isidentifier()) or prefix.startswith("_") or \
            prefix.lower() == "tdsl" or prefix.lower().startswith("tdsl_"):
        raise TdslError(f"'{prefix}' cannot start the C names of the module (a C identifier, not starting "
                        f"with '_' or 'tdsl_'); pass --prefix NAME")
    target = get(args.target)
    if not target.standalone_suffixes:
        raise TdslError(f"the {args.target} target writes no standalone files")
    files = target.emit(graphs, prefix)
    for suffix, text in files.items():
        out.with_suffix(suffix).write_text(text, encoding="utf-8")
    print("wrote " + " and ".join(str(out.with_suffix(suffix)) for suffix in files))
    return 0


def cmd_cache(args) -> int:
    from tdsl.codegen import cache_admin
    if args.action == "info":
        print(cache_admin.info())
    elif args.action == "clear":
        print(cache_admin.empty().summary())
    else:
        print(cache_admin.prune(args.older_than, args.max_size).summary())
    return 0


def cmd_lsp(args) -> int:
    try:
        from .lsp import main as serve
    except ImportError as err:
        raise TdslError(f"tdslc lsp needs pygls ({err}); install it with pip install 'tdsl[editor]'") from None
    sys.exit(serve())   # now: the server has closed stdout, which main() would flush


def cmd_fmt(args) -> int:
    """Every file is formatted, whatever the ones before gave: each error is printed, and the
    status is 1 when any file failed (or, with --check, would change)."""
    from .fmt import format_text
    failed = changed = False
    for path in args.files:
        name = "<stdin>" if path == "-" else path
        try:
            text = _read_exact(path)
            new = format_text(text, name)
            changed = changed or new != text
            if args.diff:
                sys.stdout.writelines(_diff(text, new, name))
            elif args.check:
                if new != text:
                    print(name)
            elif path == "-":
                sys.stdout.write(new)
            elif new != text:
                _replace_text(path, new)
        except TdslError as err:
            print(err.render(), file=sys.stderr)
            failed = True
    return 1 if failed or (args.check and changed) else 0


def _read_exact(path: str) -> str:
    """The text of a file (`-`: stdin), line ends as they are (read_text would turn CRLF into LF)."""
    name = "<stdin>" if path == "-" else path
    try:
        if path != "-":
            return Path(path).read_bytes().decode("utf-8")
        binary = getattr(sys.stdin, "buffer", None)
        return sys.stdin.read() if binary is None else binary.read().decode("utf-8")
    except OSError as err:
        raise TdslError(f"cannot read {name}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise TdslError(f"cannot read {name}: not UTF-8 text (byte {err.start})") from None


def _diff(old: str, new: str, name: str) -> list[str]:
    import difflib
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                 f"{name} (original)", f"{name} (formatted)")
    return [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines]


def _replace_text(path: str, text: str) -> None:
    """Write `text` into the file at `path` atomically (a temporary file in the same folder,
    then a rename), keeping its mode; a symbolic link keeps pointing at the file it names."""
    import os
    import stat
    import tempfile
    target = os.path.realpath(path)
    temporary = None
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
        fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                                         dir=os.path.dirname(target))
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode("utf-8"))
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except OSError as err:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)
        raise TdslError(f"cannot write {path}: {err.strerror or err}") from None


def _cache_parser(sub) -> None:
    """`tdslc cache info|clear|prune`: the compile cache (codegen/cache_admin.py)."""
    from tdsl.codegen import cache_admin

    def checked(parse):
        def convert(text: str):
            try:
                return parse(text)
            except ValueError as err:
                raise argparse.ArgumentTypeError(str(err)) from None
        convert.__name__ = parse.__name__.removeprefix("parse_")   # argparse names it in errors
        return convert

    cache = sub.add_parser("cache", help="show, clear or prune the compile cache",
                           description="The compile cache: an entry being built by another process "
                                       "is never removed; leftovers of dead builders always are.")
    actions = cache.add_subparsers(dest="action", required=True)
    actions.add_parser("info", help="where the cache is, what it holds, entries in use, leftovers")
    actions.add_parser("clear", help="remove every entry no process is building, the leftovers of "
                                     "dead builders and the opencl folder")
    prune = actions.add_parser(
        "prune", help="remove entries not used lately, and the least recently used over a size",
        description="Remove the entries not used for DAYS, then the least recently used ones until the "
                    "cache is at most SIZE, and the leftovers of dead builders. An entry's last use is "
                    "the newest modification time of its files; entries being built are kept; the "
                    "opencl folder is left alone.")
    prune.add_argument("--older-than", type=checked(cache_admin.parse_days), metavar="DAYS",
                       default=cache_admin.DEFAULT_PRUNE_DAYS,
                       help=f"remove entries not used for DAYS days (a number >= 0, `inf`: no age limit; "
                            f"default {cache_admin.DEFAULT_PRUNE_DAYS:g})")
    prune.add_argument("--max-size", type=checked(cache_admin.parse_size), metavar="SIZE",
                       help="then remove the least recently used entries until the cache holds at most "
                            "SIZE: bytes, or a number with K, M, G or T (powers of 1024), e.g. 500M; "
                            "default: no size limit")
    cache.set_defaults(run=cmd_cache)


def parser() -> argparse.ArgumentParser:
    from .version import __version__
    p = argparse.ArgumentParser(prog="tdslc", description="The tdsl compiler.")
    p.add_argument("--version", action="version", version=f"tdslc {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="parse and type-check; print each signature")
    check.add_argument("files", nargs="+")
    check.set_defaults(run=cmd_check)
    run = sub.add_parser("run", help="run one function on arguments from .npy files or literals")
    run.add_argument("file")
    run.add_argument("fn")
    run.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE")
    run.add_argument("-t", "--target", default="c", choices=targets.names())
    run.add_argument("-o", "--output", help="write the results to an .npz file")
    run.add_argument("--nan-guard", action="store_true",
                     help="stop at the first value that becomes NaN or inf from finite inputs, naming its line "
                          "(docs/debugging.md)")
    run.add_argument("--profile", action="store_true",
                     help="then print the per-line profile: each kernel's .tdsl lines, time, share, "
                          "bytes moved and GB/s (compiled targets; docs/debugging.md)")
    run.add_argument("--repeat", type=int, metavar="N",
                     help="the calls --profile times (default 10, after one untimed call)")
    run.set_defaults(run=cmd_run)
    graph = sub.add_parser("graph", help="print the typed graph of each function")
    graph.add_argument("file")
    graph.add_argument("--fn")
    graph.add_argument("--format", choices=["text", "dot"], default="text")
    graph.add_argument("--stage", choices=[*GRAPH_STAGES, *STAGE_ALIASES], default="check",
                       help="the pipeline stage to print the graphs after")
    graph.add_argument("--chunks", metavar="VAR[,VAR...]",
                       help="print how each value splits when these size variables are chunked "
                            "(Dask arrays, docs/dask.md)")
    graph.set_defaults(run=cmd_graph)
    build = sub.add_parser("build", help="write standalone C (OUT.c, OUT.h) or OpenCL (OUT.py)")
    build.add_argument("file")
    build.add_argument("-t", "--target", default="c", choices=targets.compiled())   # (importing none)
    build.add_argument("-o", "--output", required=True)
    build.add_argument("--prefix")
    build.set_defaults(run=cmd_build)
    _cache_parser(sub)
    fmt = sub.add_parser("fmt", help="format .tdsl files in place in the house style (- for stdin)",
                         description="Rewrite each file in the house style (whitespace only; a file that "
                                     "does not parse is reported and left alone). FILE - reads stdin "
                                     "and writes stdout.")
    fmt.add_argument("files", nargs="+", metavar="FILE")
    fmt.add_argument("--check", action="store_true",
                     help="write nothing; print each file that would change, and exit 1 if any would")
    fmt.add_argument("--diff", action="store_true", help="write nothing; print a unified diff of the changes")
    fmt.set_defaults(run=cmd_fmt)
    lsp = sub.add_parser("lsp", help="run the language server on stdio (needs the editor extra)",
                         description="A language server for .tdsl files over stdin and stdout: "
                                     "docs/editors.md, \"Language server\".")
    lsp.set_defaults(run=cmd_lsp)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        status = args.run(args)
        sys.stdout.flush()   # a closed pipe is met here, not at the interpreter's exit
        return status
    except TdslError as err:
        print(err.render(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:   # the output went to a pipe that closed (`tdslc graph F | head`)
        _quiet_stdout()
        return 0
    except OSError as err:   # the file system refused something no tdsl check foresaw: no traceback
        where = f" ({err.filename})" if err.filename else ""
        print(f"error: {err.strerror or err}{where}", file=sys.stderr)
        return 1


def _quiet_stdout() -> None:
    """Point stdout at /dev/null: what is left in its buffer is dropped at exit, with no second
    BrokenPipeError ("Exception ignored ...") when Python flushes it."""
    import os
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):   # stdout without a file descriptor (captured)
        pass


if __name__ == "__main__":
    sys.exit(main())
