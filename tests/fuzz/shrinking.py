"""Shrinking a finding: smaller expressions, plainer names, smaller sizes, while it still fails."""
from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from .tree import lit, Node, Program, render_program, SIZE_VARS, Stmt
from .inputs import Inputs
from .runner import build, check_call, Finding


def reproduces(finding: Finding, prog: Program, inputs: Inputs | None, label: str | None = None) -> str | None:
    """The detail when `prog` on `inputs` still fails the way `finding` did (same kind, same target), else None."""
    label = label or finding.label
    found, fns = [], {}
    for each in dict.fromkeys(["numpy", label]):
        built = build(each, [prog], found)
        if prog.name in built:
            fns[each] = built[prog.name]
    if finding.inputs is None:
        if label != "numpy" and "numpy" not in fns:
            return None   # the reference refuses it too: a different failure
        return next((f.detail for f in found if f.kind == finding.kind and f.label == label), None)
    if found or inputs is None:
        return None
    problems = check_call(prog, inputs, fns, [label] if label != "numpy" else [])
    return next((detail for lab, kind, detail in problems if lab == label and kind == finding.kind), None)


def nodes_of(root: Node) -> list:
    """Every node under `root`, once, parents first."""
    seen, out = set(), []

    def walk(node: Node):
        if id(node) not in seen:
            seen.add(id(node))
            out.append(node)
            for kid in node.kids:
                walk(kid)
    walk(root)
    return out


def substitute(root: Node, old: Node, new: Node) -> Node:
    """`root` with the node `old` replaced by `new` (ancestors rebuilt, sharing kept)."""
    memo = {}

    def walk(node: Node) -> Node:
        if node is old:
            return new
        if id(node) not in memo:
            kids = tuple(walk(k) for k in node.kids)
            memo[id(node)] = node if all(a is b for a, b in zip(kids, node.kids)) else replace(node, kids=kids)
        return memo[id(node)]
    return walk(root)


def _all_stmts(stmts: list) -> list:
    out = []
    for s in stmts:
        out.append(s)
        out += _all_stmts(s.body) + _all_stmts(s.orelse)
    return out


def _rewrite(stmts: list, target: Stmt, repl: list) -> list:
    """The statements with `target` replaced by the statements `repl` (its ancestors copied)."""
    out = []
    for s in stmts:
        if s is target:
            out += repl
        elif s.body or s.orelse:
            out.append(replace(s, body=_rewrite(s.body, target, repl), orelse=_rewrite(s.orelse, target, repl)))
        else:
            out.append(s)
    return out


def smaller_control(prog: Program):
    """Candidates for a control-flow program: a statement removed, a loop run once or unrolled into its body,
    a branch replaced by one of its paths, a statement's value replaced by an operand of the same type."""
    every = _all_stmts(prog.stmts)
    for s in every:
        yield replace(prog, stmts=_rewrite(prog.stmts, s, []))
    for s in every:
        if s.kind == "for":
            yield replace(prog, stmts=_rewrite(prog.stmts, s, [replace(s, bounds=(lit(1),))]))
            yield replace(prog, stmts=_rewrite(prog.stmts, s, [Stmt("assign", s.name, lit(0))] + s.body))
        elif s.kind == "while":
            yield replace(prog, stmts=_rewrite(prog.stmts, s, s.body[-1:]))
        elif s.kind == "if":
            yield replace(prog, stmts=_rewrite(prog.stmts, s, s.body))
            yield replace(prog, stmts=_rewrite(prog.stmts, s, s.orelse))
    for s in every:
        if s.kind in ("assign",) and s.expr is not None:
            for node in nodes_of(s.expr):
                for kid in node.kids:
                    if kid.dtype == node.dtype and kid.shape == node.shape and not kid.weak:
                        new = replace(s, expr=substitute(s.expr, node, kid))
                        yield replace(prog, stmts=_rewrite(prog.stmts, s, [new]))


def smaller_programs(prog: Program):
    """Candidate simplifications: a subexpression as the whole result, a node replaced by an operand."""
    if prog.stmts is not None:
        yield from (prune(p) for p in smaller_control(prog))
        return
    root = prog.grad_of or prog.result
    nodes = nodes_of(root)
    if prog.grad_of is None:
        for node in nodes[1:]:
            if not node.weak:
                yield prune(replace(prog, result=replace(node, name=None)))
    for node in nodes:
        for kid in node.kids:
            same = kid.dtype == node.dtype and kid.shape == node.shape
            if same or (prog.grad_of is None and not kid.weak and node is not root):
                new_root = substitute(root, node, kid)
                if prog.grad_of is not None:
                    new_root = replace(new_root, name="y")
                    yield prune(replace(prog, result=new_root, grad_of=new_root))
                else:
                    yield prune(replace(prog, result=new_root))


def prune(prog: Program) -> Program:
    """Drop the parameters the body no longer uses (keeping one that gives each size variable used)."""
    text = render_program(prog)
    body = text.split("\n", 1)[1]
    shown = prog.rename.get

    def uses(name: str) -> bool:
        return re.search(rf"(?<![\w]){re.escape(shown(name, name))}(?![\w])", body) is not None
    used = [p for p in prog.params if uses(p.name) or (p is prog.params[0] and prog.grad_of is not None)]
    for var in SIZE_VARS:
        if uses(var) and not any(var in p.shape for p in used):
            used += [p for p in prog.params if var in p.shape][:1]
    return replace(prog, params=[p for p in prog.params if p in used])


def plainer_names(prog: Program):
    """The program with one hostile name given back its plain one."""
    for name in prog.rename:
        yield replace(prog, rename={k: v for k, v in prog.rename.items() if k != name})


def smaller_inputs(prog: Program, inputs: Inputs):
    """The same inputs with one size variable smaller (arrays cut along its axes)."""
    for var, size in inputs.sizes.items():
        for new in sorted({0, 1, 2, size // 2} - {size}):
            if new >= size:
                continue
            sizes = dict(inputs.sizes, **{var: new})
            args = {}
            for p in prog.params:
                value = inputs.args[p.name]
                for axis, d in enumerate(p.shape):
                    if d == var:
                        value = np.take(value, np.arange(new), axis=axis)
                args[p.name] = value
            yield Inputs(args, sizes, inputs.layouts)


def shrink(finding: Finding, budget: int = 60) -> Finding:
    """A smaller program and inputs that fail the same way (greedy, at most `budget` checks)."""
    prog, inputs = finding.prog, finding.inputs
    checks, improved, detail = 0, True, finding.detail
    while improved and checks < budget:
        improved = False
        options = [prune(prog)] + list(smaller_programs(prog)) + list(plainer_names(prog))
        if inputs is not None:
            options += [(prog, i) for i in smaller_inputs(prog, inputs)]
        current = render_program(prog)
        for option in options:
            cand, cand_inputs = option if isinstance(option, tuple) else (option, inputs)
            if not isinstance(option, tuple) and render_program(cand) == current:
                continue
            if cand_inputs is not None:
                cand_inputs = Inputs({p.name: cand_inputs.args[p.name] for p in cand.params},
                                     cand_inputs.sizes, cand_inputs.layouts)
            checks += 1
            if checks > budget:
                break
            found = reproduces(finding, cand, cand_inputs)
            if found:
                prog, inputs, improved, detail = cand, cand_inputs, True, found
                break
    return replace(finding, prog=prog, inputs=inputs, detail=detail, shrunk=True, original=finding.prog)
