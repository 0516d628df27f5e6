"""`explain(chunks=...)`: how each value of a function splits along a chunked size variable, in
words, line by line (docs/dask.md)."""
from __future__ import annotations

from .chunked_rules import COMBINE, Obstacle, Role, analyse, chunk_axis, pass_states
from .graph import FunctionGraph, Node


def describe(role: Role, var: str, sources: list[str] = ()) -> str:
    """How one value splits, in words (`sources`: the reductions a global is computed from)."""
    if role.kind == "invariant":
        return "whole (no chunked input)"
    if role.kind == "local":
        return f"blockwise along {var} (axis {role.axis}), pass {role.level}"
    if role.reduction in ("argmax", "argmin"):
        extreme = "largest" if role.reduction == "argmax" else "smallest"
        return f"{role.reduction} over {var}: (value, index) per chunk, the first {extreme} wins; after pass {role.level}"
    if role.reduction == "moments":
        return f"sum of squared deviations over {var}: (count, mean, M2) per chunk, combined by parallel moments; after pass {role.level}"
    if role.reduction == "sumexp":
        return f"sum of exp over {var}: (max, sum of exp(x - max)) per chunk, rescaled to the larger max; after pass {role.level}"
    if role.reduction:
        how = COMBINE.get(role.reduction)
        return f"{role.reduction} over {var}: a partial per chunk, combined with {how}; after pass {role.level}"
    made = ", ".join(dict.fromkeys(f"{op} over {var}" for op in sources)) or f"reductions over {var}"
    return f"global, from {made}; after pass {role.level}"


def _sources(node: Node, roles: dict) -> list[str]:
    role = roles[node]
    if role.kind != "global" or role.reduction:
        return []
    names = {"moments": "moments (var)", "sumexp": "sum of exp (logsumexp)"}
    return [names.get(roles[n].reduction, roles[n].reduction) for n in pass_states([node], roles, role.level)]


def explain_text(graph: FunctionGraph, var: str) -> str:
    """`Function.explain(chunks=...)`: each parameter, named value and result with how it splits
    along `var` (or where and why it cannot)."""
    lines = [graph.signature]
    if var not in graph.size_vars:
        raise ValueError(f"{graph.name}() has no size variable '{var}'; its size variables: "
                         f"{', '.join(graph.size_vars) or 'none'}")
    try:
        roles = analyse(graph, var)
    except Obstacle as obstacle:
        where = obstacle.where()
        lines.append(f"  {var} chunked: cannot run chunk by chunk: {where + ': ' if where else ''}{obstacle.reason}")
        lines.append(f"  a call rechunks {var} to one chunk (with a warning; an error under tdsl.strict)")
        return "\n".join(lines)
    levels = passes(roles)
    lines.append(f"  {var} chunked: {levels} pass{'es' if levels > 1 else ''} over the chunks")
    return "\n".join(lines + table(explain_rows(graph, var, roles)))


def passes(roles: dict) -> int:
    """How many passes over the chunks a split with these roles takes."""
    return 1 + max((r.level for r in roles.values() if r.kind != "invariant"), default=0)


def explain_rows(graph: FunctionGraph, var: str, roles: dict) -> list[tuple[str, str]]:
    """(what, how it splits along `var`) for each parameter, named value and result of `graph`."""
    rows = []
    for p in graph.params:
        axis = chunk_axis(p.shape, var, None, p.name)
        rows.append((f"param  {p.name}: {p.type_str}",
                     f"chunks along {var} (axis {axis})" if axis is not None else "whole, on every chunk"))
    for name, node in graph.named:
        if node in roles:
            where = f"  (line {node.loc.line})" if node.loc else ""
            rows.append((f"value  {name}: {node.type_str}{where}", describe(roles[node], var, _sources(node, roles))))
    for k, out in enumerate(graph.outputs):
        rows.append((f"result {k}: {out.type_str}", describe(roles[out], var, _sources(out, roles))))
    return rows


def table(rows: list[tuple[str, str]]) -> list[str]:
    """The rows as lines, their second column aligned."""
    width = max(len(left) for left, _ in rows)
    return [f"  {left.ljust(width)}  {right}" for left, right in rows]
