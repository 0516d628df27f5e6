"""Printing graphs: back to .tdsl source (`to_tdsl`), as a text listing, or as Graphviz dot."""
from __future__ import annotations

from .dims import Dim
from .dtypes import DTYPES
from .graph import REGION_OPS, FunctionGraph, Node, Region, region_results, subgraphs, toposort
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


# Nodes only gradients build (section 12), printed through `grad` (_SourcePrinter.section12).
_ADJOINT_OPS = ("unsort", "cumprod_grad")


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
    if value.variables():   # a dim expression (section 11): `x[n // 2:]`, `x[i:i + 1]`
        text = str(value)
        return text if _is_name(text) else f"({text})"
    raise ValueError(f"a slice bound {value} cannot be written as a literal")


def _is_name(text: str) -> bool:
    return text.isidentifier() and text.isascii()


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
    if op in ("cumsum", "cumprod", "sort", "argsort"):
        return f"{op}({a[0]}, axis={node.attr('axis')})"
    if op == "scatter_add" and not node.attr("along"):   # the `along` form is a gradient's, unnamed
        return f"scatter_add({a[0]}, {a[1]}, {a[2]}, axis={node.attr('axis')})"
    if op == "take_along_axis":
        return f"take_along_axis({a[0]}, {a[1]}, axis={node.attr('axis')})"
    raise ValueError(f"no source form for op {op}")


def _usable_name(name: str | None) -> bool:
    """Whether a value's name (say, from Var.named) can be bound in .tdsl source."""
    from tdsl.grammar import KEYWORDS, RESERVED_WORDS
    return bool(name) and name.isidentifier() and name.isascii() and name not in (
        *KEYWORDS, *RESERVED_WORDS, "None")


def to_tdsl(graph: FunctionGraph) -> str:
    """A .tdsl function whose checked graph equals `graph` (one statement per node).

    Loops and branches (section 11) print as `for`, `while` and `if` statements, and indexed
    updates as `x[...] = v`; such a program parses back to an equivalent function (the same
    values), though not always to an equal graph. Raises ValueError for a value that has no
    source form."""
    printer = _SourcePrinter(graph)
    names = printer.block(graph, {p.name: p.name for p in graph.params}, 1)
    params = ", ".join(f"{p.name}: {p.type_str}" for p in graph.params)
    results = [o.type_str for o in graph.outputs]
    ret = f" -> ({', '.join(results)}{',' if len(results) == 1 else ''})" if graph.tuple_result else f" -> {results[0]}"
    outs = ", ".join(names[o] for o in graph.outputs)
    return "\n".join([f"fn {graph.name}({params}){ret} {{", *printer.lines, f"    return {outs}", "}", ""])


class _SourcePrinter:
    """Statements of one function, nested blocks included; every name it binds is new, so that
    a name bound in a loop body is carried only where the graph carries it."""

    def __init__(self, graph: FunctionGraph):
        self.lines: list[str] = []
        self.count = 0
        self.used = {p.name for p in graph.params} | set(graph.size_vars) | {graph.name} | set(DTYPES)
        self.loop_dims: set[str] = set()
        for sub in subgraphs(graph):
            self.used |= set(sub.size_vars)
            for node in toposort(sub.outputs):
                region = node.attr("region") if node.op in REGION_OPS else None
                if region is not None and region.kind == "for" and not region.index_param:
                    self.loop_dims.add(region.index)
        for node in toposort(graph.outputs):
            region = node.attr("region") if node.op in REGION_OPS else None
            if region is not None and region.kind == "for" and not region.index_param:
                self.loop_dims.add(region.index)
        self.used |= self.loop_dims
        if self.loop_dims & {p.name for p in graph.params}:
            raise ValueError("a loop index has the name of a parameter")

    def fresh(self, name: str | None) -> str:
        base = name if _usable_name(name) and name not in self.used else f"t{self.count}"
        while base in self.used:
            base = f"{base}_"
        self.used.add(base)
        self.count += 1
        return base

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def block(self, graph: FunctionGraph, params: dict[str, str], depth: int) -> dict[Node, str]:
        """Print the statements of `graph`, whose parameter p reads the name params[p]."""
        names: dict[Node, str] = {}
        regions: dict = {}
        for node in toposort(_roots(graph)):
            if node in names:
                continue
            if node.op == "param":
                if node.attr("name") not in params:
                    raise ValueError(f"'{node.attr('name')}' is not a parameter of the function")
                names[node] = params[node.attr("name")]
            elif node.op == "sizevar":
                names[node] = node.attr("name")
            elif node.op in REGION_OPS:
                key = region_results(node)
                if key not in regions:
                    regions[key] = self.region(node, names, depth)
                names[node] = regions[key][node.attr("result")]
            elif node.op == "update":
                x, v = (names[i] for i in node.inputs)
                name = self.fresh(node.name)
                self.emit(depth, f"{name} = {x}")
                self.emit(depth, f"{name}[{_slice_text(node, node.inputs[0])}] = {v}")
                names[node] = name
            elif node.op in _ADJOINT_OPS or node.op == "top_k" or (node.op == "scatter_add" and node.attr("along")):
                names[node] = self.section12(node, names, depth)
            elif node.op == "scatter":
                x, idx, v = (names[i] for i in node.inputs)
                name = self.fresh(node.name)
                self.emit(depth, f"{name} = {x}")
                self.emit(depth, f"{name}[{':, ' * node.attr('axis')}{idx}] = {v}")
                names[node] = name
            else:
                name = self.fresh(node.name)
                self.emit(depth, f"{name} = {expression(node, names)}")
                names[node] = name
        return names

    def section12(self, node: Node, names: dict, depth: int) -> str:
        """top_k (a tuple: one statement binds both results), and the adjoint nodes that gradients
        through sort, top_k, cumprod and take_along_axis build, which no builtin names: each prints
        as `grad` of the forward builtin with respect to zeros `z` it reads (`z` fresh, so the
        adjoint fed in, which may depend on anything else, is held constant)."""
        args = [names[i] for i in node.inputs]
        axis = node.attr("axis")
        if node.op == "top_k":
            first, second = self.fresh(None), self.fresh(None)
            self.emit(depth, f"{first}, {second} = top_k({args[0]}, {node.attr('k')}, axis={axis})")
            return (first, second)[node.attr("result")]
        z = self.fresh(None)
        name = self.fresh(node.name)
        if node.op == "unsort":            # g written at positions order along the axis
            g, order = args
            self.emit(depth, f"{z} = zeros({_dims(node.shape)}, dtype={node.dtype})")
            self.emit(depth, f"{name} = grad(sum(take_along_axis({z}, {order}, axis={axis}) * {g}), {z})")
        elif node.op == "cumprod_grad":    # (x, g) -> the adjoint of x through cumprod
            x, g = args
            self.emit(depth, f"{z} = zeros({_dims(node.shape)}, dtype={node.dtype})")
            self.emit(depth, f"{name} = grad(sum(cumprod({x} + {z}, axis={axis}) * {g}), {z})")
        else:                              # scatter_add along an axis: x plus v put at idx
            x, idx, v = args
            self.emit(depth, f"{z} = zeros({_dims(node.shape)}, dtype={node.dtype})")
            self.emit(depth, f"{name} = {x} + grad(sum(take_along_axis({z}, {idx}, axis={axis}) * {v}), {z})")
        return name

    def region(self, node: Node, names: dict, depth: int) -> list[str]:
        """Print a loop or branch; the names of its results, in order."""
        region: Region = node.attr("region")
        inputs = [names[i] for i in node.inputs]
        count = region.carried if region.kind != "if" else len(region.graphs[0].outputs)
        results = [self.fresh(node.name if k == node.attr("result") else None) for k in range(count)]
        lead = region.leading
        if region.kind == "if":
            captured = inputs[1:]
            params = dict(zip((p.name for p in region.graphs[0].params), captured))
            self.emit(depth, f"if {inputs[0]} {{")
            self.body_results(region.graphs[0], params, results, depth + 1)
            self.emit(depth, "} else {")
            self.body_results(region.graphs[1], params, results, depth + 1)
            self.emit(depth, "}")
            return results
        for name, init in zip(results, inputs[lead:lead + count]):
            self.emit(depth, f"{name} = {init}")
        body = region.body
        param_names = [p.name for p in body.params]
        if region.kind == "for":
            if region.index_param:
                var = self.fresh(param_names[0])
                params = {param_names[0]: var}
                param_names = param_names[1:]
            else:
                var, params = region.index, {}
            params.update(zip(param_names, results + inputs[lead + count:]))
            step = f", {region.step}" if region.step != 1 else ""
            self.emit(depth, f"for {var} in range({inputs[0]}, {inputs[1]}{step}) {{")
        else:
            params = dict(zip(param_names, results + inputs[lead + count:]))
            self.emit(depth, f"while {_inline(region.graphs[0], params)} {{")
        self.body_results(body, params, results, depth + 1)
        self.emit(depth, "}")
        return results

    def body_results(self, graph: FunctionGraph, params: dict, results: list[str], depth: int) -> None:
        """A body's statements, then its results bound to `results` (through new names where a
        result reads one of them, so that no assignment sees another's new value)."""
        names = self.block(graph, params, depth)
        outs = [names[o] for o in graph.outputs]
        for k, out in enumerate(outs):
            if out in results and out != results[k]:
                copy = self.fresh(None)
                self.emit(depth, f"{copy} = {out}")
                outs[k] = copy
        for name, out in zip(results, outs):
            self.emit(depth, f"{name} = {out}")


def _roots(graph: FunctionGraph) -> list[Node]:
    """What a function or a body computes: its results, then what runs for its errors only (the
    named values that can fail, as NumPy runs every statement, and the loops and branches that
    bind nothing but can fail: `effects`)."""
    from .limits import can_fail
    named = [node for _, node in graph.named]
    below: dict[Node, bool] = {}   # whether a node or one below it can fail: one pass for all
    for node in toposort(named):
        below[node] = can_fail(node) or any(below[i] for i in node.inputs)
    return list(graph.outputs) + [node for node in named if below[node]] + list(graph.effects)


def _inline(graph: FunctionGraph, params: dict) -> str:
    """The one result of `graph` (a while loop's condition) as a single expression."""
    text: dict[Node, str] = {}
    for node in toposort(graph.outputs):
        if node in text:
            continue
        if node.op == "param":
            text[node] = params[node.attr("name")]
        elif node.op == "sizevar":
            text[node] = node.attr("name")
        elif node.op in REGION_OPS or node.op in ("update", "scatter"):
            raise ValueError(f"a while condition with a {node.op} has no single-expression form")
        else:
            text[node] = f"({expression(node, text)})"
    return text[graph.outputs[0]]


def region_title(region: Region) -> str:
    """A loop or branch as it reads in its source (`for i in range(n)`), or the builder's name
    (`fori_loop`) for one built in Python."""
    loc = region.loc
    text = ""
    if loc is not None and loc.source_line and loc.source_line.strip():
        text = loc.source_line[max(loc.col - 1, 0):].split("{")[0].strip()
    if not text:   # built in Python: the builder's name is in the body graph's name
        text = region.body.name.rpartition(":")[2].split("@")[0]
        text = text if text in ("fori_loop", "while_loop", "cond") else region.kind
    return text


def _body_signature(graph: FunctionGraph) -> str:
    params = ", ".join(f"{p.name}: {p.type_str}" for p in graph.params)
    results = ", ".join(o.type_str for o in graph.outputs)
    return f"{graph.name}({params}) -> ({results})"


def _region_parts(region: Region) -> list[tuple[str, FunctionGraph]]:
    labels = {"for": ("body",), "while": ("cond", "body"), "if": ("then", "else")}[region.kind]
    return list(zip(labels, region.graphs))


def _region_facts(region: Region) -> str:
    facts = [f"carried {region.carried}"] if region.kind != "if" else []
    if region.kind == "for":
        facts.append(f"step {region.step}")
        facts.append(f"index {region.index}" + (" (a parameter)" if region.index_param else ""))
    return ", ".join(facts)


def graph_text(graph: FunctionGraph) -> str:
    """A readable listing: one line per node with its type and source line; a loop or branch
    lists its body graphs under its first result, indented."""
    lines = [graph.signature]
    _graph_lines(graph, "  ", lines)
    return "\n".join(lines)


def _graph_lines(graph: FunctionGraph, indent: str, lines: list[str]) -> None:
    names: dict[Node, str] = {}
    regions: dict = {}
    for node in toposort(graph.outputs):
        if node in names:
            continue
        label = node.name or (node.attr("name") if node.op in ("param", "sizevar") else None)
        names[node] = f"%{len(names)}" + (f" {label}" if label else "")
        where = f"  # line {node.loc.line}" if node.loc else ""
        extra = ""
        region = node.attr("region") if node.op in REGION_OPS else None
        if region is not None:
            key = region_results(node)
            first = regions.setdefault(key, names[node].split()[0])
            extra = f" {{result={node.attr('result')}" + (f", region of {first}" if first != names[node].split()[0] else "") + "}"
        lines.append(f"{indent}{names[node]:<14} : {node.type_str:<16} = {node.op}"
                     f"({', '.join(names[i].split()[0] for i in node.inputs)})"
                     f"{extra if region is not None else _attr_text(node)}{where}")
        if region is not None and regions[key] == names[node].split()[0]:
            where = f"  (line {region.loc.line})" if region.loc else ""
            facts = _region_facts(region)
            lines.append(f"{indent}    {region.kind}: {region_title(region)}{where}" + (f"; {facts}" if facts else ""))
            for label, sub in _region_parts(region):
                lines.append(f"{indent}    {label}: {_body_signature(sub)}")
                _graph_lines(sub, indent + "      ", lines)
    lines.append(f"{indent}return " + ", ".join(names[o].split()[0] for o in graph.outputs))


def _attr_text(node: Node) -> str:
    shown = [(k, v) for k, v in node.attrs if k not in ("checks",)]
    if not shown:
        return ""
    def fmt(v):
        if isinstance(v, tuple):
            return "(" + ", ".join(fmt(x) for x in v) + ")"
        return str(v)
    return " {" + ", ".join(f"{k}={fmt(v)}" for k, v in shown) + "}"


def _dot_text(text: str) -> str:
    """User text (a source line, a name) inside a dot string: quotes and backslashes escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def graph_dot(graph: FunctionGraph) -> str:
    """The graph in Graphviz dot; each body of a loop or branch is a cluster, whose results
    feed the region's result nodes (dashed)."""
    lines = [f'digraph "{_dot_text(graph.name)}" {{', "  node [shape=box, fontname=monospace];"]
    counter = [0]
    ids = _dot_nodes(graph, "n", "  ", lines, counter)
    for k, o in enumerate(graph.outputs):
        lines.append(f'  out{k} [label="result {k}", shape=ellipse];')
        lines.append(f"  {ids[o]} -> out{k};")
    lines.append("}")
    return "\n".join(lines)


def _dot_nodes(graph: FunctionGraph, prefix: str, indent: str, lines: list[str], counter: list) -> dict:
    ids: dict[Node, str] = {}
    regions: dict = {}
    for node in toposort(graph.outputs):
        if node in ids:
            continue
        ids[node] = f"{prefix}{len(ids)}"
        label = node.op + (f" {node.name}" if node.name else "")
        if node.op in ("param", "sizevar"):
            label = f"{node.op} {node.attr('name')}"
        region = node.attr("region") if node.op in REGION_OPS else None
        if region is not None:
            label += f" result {node.attr('result')}"
        lines.append(f'{indent}{ids[node]} [label="{_dot_text(label)}\\n{node.type_str}"];')
        for i in node.inputs:
            lines.append(f"{indent}{ids[i]} -> {ids[node]};")
        if region is None:
            continue
        key = region_results(node)
        if key not in regions:
            counter[0] += 1
            regions[key] = (f"r{counter[0]}", [])
            where = f" (line {region.loc.line})" if region.loc else ""
            for label_, sub in _region_parts(region):
                cluster = f"{regions[key][0]}_{label_}"
                lines.append(f"{indent}subgraph cluster_{cluster} {{")
                title = f"{region.kind} {label_}: {region_title(region)}{where}"
                lines.append(f'{indent}  label="{_dot_text(title)}"; style=rounded;')
                sub_ids = _dot_nodes(sub, f"{cluster}_n", indent + "  ", lines, counter)
                lines.append(f"{indent}}}")
                regions[key][1].append((label_, sub, sub_ids))
        for label_, sub, sub_ids in regions[key][1]:
            k = node.attr("result")
            if label_ != "cond" and k < len(sub.outputs):
                lines.append(f"{indent}{sub_ids[sub.outputs[k]]} -> {ids[node]} [style=dashed];")
    return ids
