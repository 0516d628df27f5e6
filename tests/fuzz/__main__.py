"""A differential fuzzer: random well-typed tdsl programs checked against NumPy, and a parser fuzzer.

The command line (`python -m tests.fuzz --help`); the package docstring says more.
"""
from __future__ import annotations

import argparse
import faulthandler
import os
import random
import sys
import tempfile

from . import gen
from .runner import Config, sanitized_run
from .report import Report, run
from .parser_fuzz import parser_child, parser_fuzz


def labels_of(targets: list, layouts: list) -> list:
    """Target labels: c, and opencl once per launch layout."""
    out = []
    for target in targets:
        if target == "opencl":
            out += [f"opencl:{layout}" for layout in layouts]
        elif target != "numpy":
            out.append(target)
    return out


def main(argv: list | None = None) -> int:
    """The command line: see the module docstring."""
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100, help="random programs to run")
    ap.add_argument("--seed", type=int, default=None, help="the run's seed (printed when not given)")
    ap.add_argument("--targets", default="numpy,c,opencl")
    ap.add_argument("--layouts", default="cpu,gpu", help="OpenCL launch layouts (TDSL_OPENCL_LAYOUT)")
    ap.add_argument("--sanitize", action="store_true", help="also run the c target under ASan and UBSan")
    ap.add_argument("--parser", type=int, default=0, metavar="N", help="also run N mutated sources")
    ap.add_argument("--batch", type=int, default=40, help="functions per compiled module")
    ap.add_argument("--large", type=float, default=0.1, help="fraction of programs called with large sizes")
    ap.add_argument("--grads", type=float, default=0.15, help="fraction of programs that are a grad")
    ap.add_argument("--control", type=float, default=0.3,
                    help="fraction of programs with loops, branches and indexed updates (section 11)")
    ap.add_argument("--sec12", type=float, default=None,
                    help="fraction of programs that also draw section 12's builtins (default: gen.SEC12)")
    ap.add_argument("--max-shrink", type=int, default=12, help="findings to shrink (the rest are counted)")
    ap.add_argument("--findings", default=None, help="append findings (markdown) to this file")
    ap.add_argument("--parser-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    if args.parser_child is not None:
        parser_child(seed, args.parser_child, args.parser)
        return 0
    if args.sec12 is not None:
        gen.SEC12 = args.sec12
    faulthandler.enable()
    own_cache = None
    if "TDSL_CACHE_DIR" not in os.environ:   # a run's modules do not pile up in the user's cache
        own_cache = tempfile.TemporaryDirectory(prefix="tdsl-fuzz-")
        os.environ["TDSL_CACHE_DIR"] = own_cache.name
    status = 0
    print(f"seed {seed}", flush=True)
    if args.count:
        cfg = Config(labels_of(args.targets.split(","), args.layouts.split(",")), args.large, args.grads,
                     batch=args.batch, control=args.control)
        report = Report(args.findings, f"`python -m tests.fuzz --seed {seed} --count {args.count}`", args.max_shrink)
        stats = run(args.count, seed, cfg, report)
        per = stats["seconds"] / max(1, args.count)
        print(f"programs: {stats} ({per:.2f} s per program)", flush=True)
        status |= 1 if report.distinct else 0
    if args.parser:
        stats = parser_fuzz(args.parser, seed, args.findings)
        print(f"parser: {stats}", flush=True)
        status |= 1 if stats["problems"] else 0
    if args.sanitize and not os.environ.get("TDSL_SANITIZE") and args.count:
        rc = sanitized_run(["--count", str(args.count), "--seed", str(seed), "--batch", str(args.batch)]
                           + (["--findings", args.findings] if args.findings else [])
                           + (["--sec12", str(args.sec12)] if args.sec12 is not None else []))
        status |= 0 if rc == 0 else 1
    return status


if __name__ == "__main__":
    sys.exit(main())
