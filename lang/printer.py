"""Printing graphs: back to .tdsl source (`to_tdsl`), as a text listing, or as Graphviz dot."""
from __future__ import annotations

from .dims import Dim
from .dtypes import DTYPES
from .graph import FunctionGraph, Node, toposort
from .ops import OPS, empty_value, operator_symbols

SYMBOLS = operator_symbols(2)          # add -> +, ...: binary operators, from the op table
PREFIX_SYMBOLS = operator_symbols(1)   # neg -> -, not -> not


def _literal(value, dtype: str) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_literal(v, dtype) for v in value) + "]"
    if dtype == "bool":
        return "true" if value else "false"
    if dtype.startswith("f"):
        text = repr(float(value))
        # 1e400 reads back as an infinite literal; NaN has no literal and prints as an expression
        return {"inf": "1e400", "-inf": "-1e400", "nan": "(0.0 / 0.0)"}.get(text, text)
    return str(int(value))


def _dims(shape) -> str:
    inner = ", ".join(str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _axes(axes) -> str:
    return "(" + ", ".join(str(a) for a in axes) + ("," if len(axes) == 1 else "") + ")"


def _slice_text(node: Node, x: Node) -> str:
    """The subscripts of a strided slice, with the stop left out wherever it can be."""
    parts = []
    for dim, start, step, length in zip(x.shape, node.attr("starts"), node.attr("steps"), node.attr("shape")):
        reach = dim - start if step > 0 else start + 1  # elements from start to the end, by |step| 1
        if (reach + (abs(step) - 1)) // abs(step) == length:
            stop = ""
        elif length == 0:
            stop = _bound(start, dim)
        else:
            stop = _stop_for(dim, start, step, length)
        parts.append(f"{_bound(start, dim)}:{stop}:{step}")
    return ", ".join(parts)


def _stop_for(dim: Dim, start: Dim, step: int, length: Dim) -> str:
    """A stop, as a literal or counted from the end, that gives `length` elements from `start`."""
    nearest = start + (length - 1) * step + (1 if step > 0 else -1)
    candidates = ([nearest] + [dim + c for c in range(-1, -2 * abs(step) - 2, -1)]
                  + [Dim.of(c) for c in range(0, 2 * abs(step) + 1)])
    for stop in candidates:
        span = stop - start if step > 0 else start - stop
        if (span + (abs(step) - 1)) // abs(step) == length:
            try:
                return _bound(stop, dim)
            except ValueError:
                continue
    raise ValueError(f"a slice of length {length} from {start} cannot be written with literal bounds")


def _bound(value: Dim, dim: Dim) -> str:
    if value.is_const:
        return str(value.const)
    from_end = value - dim
    if from_end.is_const and from_end.const < 0:
        return str(from_end.const)
    raise ValueError(f"a slice bound {value} cannot be written as a literal")


def expression(node: Node, names: dict) -> str:
    """One node as an expression over the names of its inputs."""
    a = [names[i] for i in node.inputs]
    op = node.op
    if op == "const":
        text = _literal(node.attr("value"), node.dtype)
        # A weak literal prints bare: parsed back, it takes its dtype from its use again
        # (a weak f32 literal is a float literal that met an f32 operand).
        return text if node.weak else f"{node.dtype}({text})"
    if op == "param" or op == "sizevar":
        return node.attr("name")
    if op in SYMBOLS:
        return f"{a[0]} {SYMBOLS[op]} {a[1]}"
    if op in PREFIX_SYMBOLS:
        symbol = PREFIX_SYMBOLS[op]
        return f"{symbol} {a[0]}" if symbol.isalpha() else f"{symbol}{a[0]}"
    if op == "cast":
        return f"{node.dtype}({a[0]})"
    if op == "iota":
        return f"arange({node.shape[0]})"
    if OPS[op].kind == "elementwise":
        return f"{op}({', '.join(a)})"
    if OPS[op].kind == "reduce":
        keep = "true" if node.attr("keepdims") else "false"
        initial = ""
        if node.attr("empty_ok"):   # built by max/min with NumPy's initial= at their identity
            initial = f", initial={_literal(empty_value(op, node.dtype), node.dtype)}"
        return f"{op}({a[0]}, axis={_axes(node.attr('axes'))}, keepdims={keep}{initial})"
    if OPS[op].kind == "argreduce":
        axis = node.attr("axis")
        keep = "true" if node.attr("keepdims") else "false"
        return f"{op}({a[0]}{'' if axis is None else f', axis={axis}'}, keepdims={keep})"
    if op == "reshape":
        return f"reshape({a[0]}, {_dims(node.shape)})" if node.shape else f"reshape({a[0]}, ())"
    if op == "broadcast":
        return f"broadcast_to({a[0]}, {_dims(node.shape)})" if node.shape else a[0]
    if op == "transpose":
        return f"transpose({a[0]}, {_axes(node.attr('perm'))})"
    if op == "slice":
        return f"{a[0]}[{_slice_text(node, node.inputs[0])}]"
    if op == "concat":
        return f"concat(({', '.join(a)}), axis={node.attr('axis')})"
    if op == "take":
        return f"take({a[0]}, {a[1]}, axis={node.attr('axis')})"
    if op == "matmul":
        return f"matmul({a[0]}, {a[1]})"
    raise ValueError(f"no source form for op {op}")


def _usable_name(name: str | None) -> bool:
    """Whether a value's name (say, from Var.named) can be bound in .tdsl source."""
    from tdsl.grammar import KEYWORDS, RESERVED_WORDS
    return bool(name) and name.isidentifier() and name.isascii() and name not in (
        *KEYWORDS, *RESERVED_WORDS, "None")


def to_tdsl(graph: FunctionGraph) -> str:
    """A .tdsl function whose checked graph equals `graph` (one statement per node)."""
    names: dict[Node, str] = {}
    body: list[str] = []
    used = {p.name for p in graph.params} | set(graph.size_vars) | {graph.name} | set(DTYPES)
    for node in toposort(graph.outputs):
        if node in names:
            continue
        if node.op in ("param", "sizevar"):
            names[node] = node.attr("name")
            continue
        base = node.name if _usable_name(node.name) and node.name not in used else f"t{len(body)}"
        while base in used:
            base = f"{base}_"
        used.add(base)
        body.append(f"    {base} = {expression(node, names)}")
        names[node] = base
    params = ", ".join(f"{p.name}: {p.type_str}" for p in graph.params)
    results = [o.type_str for o in graph.outputs]
    ret = f" -> ({', '.join(results)}{',' if len(results) == 1 else ''})" if graph.tuple_result else f" -> {results[0]}"
    outs = ", ".join(names[o] for o in graph.outputs)
    return "\n".join([f"fn {graph.name}({params}){ret} {{", *body, f"    return {outs}", "}", ""])


def graph_text(graph: FunctionGraph) -> str:
    """A readable listing: one line per node with its type and source line."""
    names: dict[Node, str] = {}
    lines = [graph.signature]
    for node in toposort(graph.outputs):
        if node in names:
            continue
        label = node.name or (node.attr("name") if node.op in ("param", "sizevar") else None)
        names[node] = f"%{len(names)}" + (f" {label}" if label else "")
        where = f"  # line {node.loc.line}" if node.loc else ""
        lines.append(f"  {names[node]:<14} : {node.type_str:<16} = {node.op}"
                     f"({', '.join(names[i].split()[0] for i in node.inputs)}){_attr_text(node)}{where}")
    lines.append("  return " + ", ".join(names[o].split()[0] for o in graph.outputs))
    return "\n".join(lines)


def _attr_text(node: Node) -> str:
    shown = [(k, v) for k, v in node.attrs if k not in ("checks",)]
    if not shown:
        return ""
    def fmt(v):
        if isinstance(v, tuple):
            return "(" + ", ".join(fmt(x) for x in v) + ")"
        return str(v)
    return " {" + ", ".join(f"{k}={fmt(v)}" for k, v in shown) + "}"


def graph_dot(graph: FunctionGraph) -> str:
    """The graph in Graphviz dot."""
    ids: dict[Node, str] = {}
    lines = [f'digraph "{graph.name}" {{', "  node [shape=box, fontname=monospace];"]
    for node in toposort(graph.outputs):
        if node in ids:
            continue
        ids[node] = f"n{len(ids)}"
        label = node.op + (f" {node.name}" if node.name else "")
        if node.op in ("param", "sizevar"):
            label = f"{node.op} {node.attr('name')}"
        lines.append(f'  {ids[node]} [label="{label}\\n{node.type_str}"];')
        for i in node.inputs:
            lines.append(f"  {ids[i]} -> {ids[node]};")
    for k, o in enumerate(graph.outputs):
        lines.append(f'  out{k} [label="result {k}", shape=ellipse];')
        lines.append(f"  {ids[o]} -> out{k};")
    lines.append("}")
    return "\n".join(lines)
