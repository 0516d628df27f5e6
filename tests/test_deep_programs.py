"""Deep programs through every stage of every target (issue 11, item 11): a chain of 4,000
statements, a sum of 10,000 terms and the gradient of a chain 2,000 deep compile and agree
with NumPy. Lowering walks expressions with an explicit stack (it recursed once per node and
overflowed at 10,000; test_lowering_is_iterative_and_cuts_long_chains runs it under Python's
default recursion limit of 1,000, so 4,000 statements prove it; the chain was 10,000 long
before, which cost CI half a minute of GCC), cuts a long fused chain so that no loop body holds more than
MAX_KERNEL_OPS operations (GCC's time grows with the square of a body's length: 17 s for the
chain in one body, 3 s in ten), and OpenCL builds on a large stack (PoCL's compiler recursed
past the main thread's on the gradient and crashed the process). One module per target."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_same, compiled, run
from tdsl.codegen import lower
from tdsl.codegen.fuse import fuse_module
from tdsl.codegen.kernels import Apply
from tdsl.codegen.loops import MAX_KERNEL_OPS, kernel_expressions
from tdsl.codegen.render import render_module
from tdsl.pipeline import check_source
from tdsl.rewrite import simplify_graph

CHAIN, TERMS, GRAD = 4_000, 10_000, 2_000
OPERANDS = 5_000   # the parser's bound on one operator chain (docs/decisions.md)


def _chain(n: int) -> str:
    body = "".join("    t = t * 1.0001\n" for _ in range(n))
    return f"fn chain(x: f64[n]) -> f64[n] {{\n    t = x\n{body}    return t\n}}\n"


def _sum(n: int) -> str:
    """`x + x + ... + x`, n terms, as few statements as the parser's bound allows."""
    lines, done = [], 0
    while done < n:
        k = min(OPERANDS - (done > 0), n - done)
        lines.append("    s = " + " + ".join(["s"] * (done > 0) + ["x"] * k) + "\n")
        done += k
    return "fn flat(x: f64[n]) -> f64[n] {\n" + "".join(lines) + "    return s\n}\n"


def _grad(n: int) -> str:
    body = "".join("    t = sin(t)\n" for _ in range(n))
    return f"fn dsin(x: f64[n]) -> f64[n] {{\n    t = x\n{body}    return grad(sum(t), x)\n}}\n"


DEEP = _chain(CHAIN) + _sum(TERMS) + _grad(GRAD)
X = np.array([1.0, -2.0, 0.5, 0.0, 3.25, -0.75, 1e-3])


def _numpy_chain(x):
    t = x
    for _ in range(CHAIN):
        t = t * 1.0001
    return t


def _numpy_sum(x):
    s = x
    for _ in range(TERMS - 1):
        s = s + x
    return s


def _numpy_dsin(x):
    """d/dx of sin applied GRAD times: the product of cos along the chain (forward mode)."""
    t, d = x, np.ones_like(x)
    for _ in range(GRAD):
        d = d * np.cos(t)
        t = np.sin(t)
    return d


@pytest.mark.parametrize("fn, oracle", [("chain", _numpy_chain), ("flat", _numpy_sum), ("dsin", _numpy_dsin)])
def test_deep_programs_compute_like_numpy(target, fn, oracle):
    assert len(DEEP.splitlines()) > CHAIN + GRAD
    got = run(DEEP, fn, target, X)
    assert_same(got, oracle(X), rtol=1e-12, atol=1e-300)


def test_a_result_depending_on_every_statement_is_exact(target):
    """The chain multiplies in the order written, once per statement, as NumPy does."""
    np.testing.assert_array_equal(compiled(DEEP, target).chain(X), _numpy_chain(X))


def _kernel_ops(fn_ir) -> list[int]:
    return [sum(isinstance(e, Apply) for e in kernel_expressions(k)) for k in fn_ir.kernels]


def test_lowering_is_iterative_and_cuts_long_chains(monkeypatch):
    """Lowering needs no deep recursion; every loop body stays under MAX_KERNEL_OPS operations and
    the cuts recompute nothing (the gradient reads each sin of the chain twice: no cut there)."""
    monkeypatch.setattr(lower, "deep_recursion", _no_deeper_recursion)
    graphs = [simplify_graph(g) for g in check_source(DEEP)]
    module = fuse_module(lower.lower_module(graphs, "deep"))
    ops = {fn.name: _kernel_ops(fn) for fn in module.functions}
    assert max(ops["chain"]) <= MAX_KERNEL_OPS and sum(ops["chain"]) == CHAIN
    assert len(ops["chain"]) == -(-CHAIN // MAX_KERNEL_OPS)
    assert max(ops["flat"]) <= MAX_KERNEL_OPS and sum(ops["flat"]) == TERMS - 1
    assert sum(ops["dsin"]) <= 3 * GRAD + 1   # sin, cos and a product per link, computed once
    source, _ = render_module(module)
    assert source.count("TDSL_OMP(parallel for") >= len(ops["chain"]) + len(ops["flat"])


class _no_deeper_recursion:
    """Stands for graph.deep_recursion: keeps Python's default limit, so recursion per node fails."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
