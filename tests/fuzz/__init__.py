"""A differential fuzzer: random well-typed tdsl programs checked against NumPy, and a parser fuzzer.

    python -m tests.fuzz --count 200 [--seed S] [--targets numpy,c,opencl] [--layouts cpu,gpu]
                         [--sanitize] [--parser N] [--findings FILE]

The generator builds each program as an expression tree that knows every value's dtype and
symbolic shape, so programs are well typed by construction. The oracle evaluates the same
tree with NumPy directly (np.exp, np.sum, np.matmul, ...): it never goes through tdsl, so a
wrong answer of the reference interpreter shows up too. Each program runs on every target
(OpenCL once per launch layout) and is compared with the oracle and with the reference
interpreter (target numpy). A disagreement is shrunk (smaller expression, smaller sizes) and
printed as a .tdsl source with its inputs, ready to paste. See docs/testing.md.

Modules, in pipeline order: tree (dtypes, dims, the expression tree, rendering), oracle (NumPy
evaluation, tolerances), shapes and gen (the generator), inputs, runner (compile, run, judge per
target and layout; the sanitized subprocess), shrinking, report (reproductions, the run loop),
parser_fuzz, and __main__ (the command line).
"""
from __future__ import annotations

from .tree import (ARITH, AVOID, COMPARE, Expected, Node, Param, PREDICATES, Program, REDUCTIONS, Stmt,
    UNARY_ARITH, UNARY_FLOAT, Unspecified, lit, make_elementwise, render_program)
from .oracle import compare, oracle, precision
from .gen import generate, generate_grad
from .control import generate_control, generate_control_grad
from .inputs import Inputs, index_values, make_inputs
from .runner import (Config, Finding, check_call, expected_outcome, inputs_for, judge, libasan, ops_of,
    program, run_batch, sanitized_run)
from .shrinking import reproduces, shrink
from .report import Report, describe, reproduction, run
from .parser_fuzz import parser_case, parser_fuzz

__all__ = [
    'ARITH', 'AVOID', 'Stmt', 'generate_control', 'generate_control_grad', 'COMPARE', 'Expected', 'Node', 'Param', 'PREDICATES', 'Program', 'REDUCTIONS', 'UNARY_ARITH',
    'UNARY_FLOAT', 'Unspecified', 'lit', 'make_elementwise', 'render_program', 'compare', 'oracle', 'precision',
    'generate', 'generate_grad', 'Inputs', 'index_values', 'make_inputs', 'Config', 'Finding', 'check_call',
    'expected_outcome', 'inputs_for', 'judge', 'libasan', 'ops_of', 'program', 'run_batch', 'sanitized_run',
    'reproduces', 'shrink', 'Report', 'describe', 'reproduction', 'run', 'parser_case', 'parser_fuzz'
]
