"""Loops and branches in the front end (section 11): each body becomes a function graph.

A body is elaborated in a `BlockScope`. The names it rebinds that exist before it
are **carried**: the body reads them through parameters typed as their values
before the block, and returns their new values. Any other value of the enclosing
scope it reads is **captured**: also a parameter, bound to that value. Constants
and size expressions need no parameter. A name first bound inside the block is
local to it. The block becomes a `Region` (graph.py) and each carried name a
region node of its own.
"""
from __future__ import annotations

from dataclasses import replace

from lark import Tree

from . import builtins, infer
from .dims import Dim
from .dtypes import kind
from .errors import TdslTypeError
from .frontend import Scope, nonnegative_in_loops
from .graph import FunctionGraph, Node, Param, Region, make_attrs, toposort

_KIND_ORDER = ["bool", "int", "float"]


def assigned_names(stmts) -> list[str]:
    """The names the statements bind, nested blocks included, in order of first binding."""
    found: dict[str, None] = {}
    stack = list(reversed(stmts))
    while stack:
        st = stack.pop()
        if not isinstance(st, Tree):
            continue
        if st.data in ("assign", "aug_assign", "index_assign", "index_aug_assign"):
            found.setdefault(str(st.children[0]))
        elif st.data == "destructure":
            for name in st.children[:-1]:
                found.setdefault(str(name))
        elif st.data == "for_stmt":
            stack.extend(reversed(st.children[3].children))
        elif st.data == "while_stmt":
            stack.extend(reversed(st.children[1].children))
        elif st.data == "if_stmt":
            _, then, other = st.children
            items = list(then.children)
            if other is not None:
                items += [other] if other.data == "if_stmt" else list(other.children)
            stack.extend(reversed(items))
    return list(found)


def _closed(node: Node) -> bool:
    """Whether `node` is computed from literals and sizes only (a body may use it as it is)."""
    for n in toposort([node]):
        if n.op in ("param", "for", "while", "if"):
            return False
    return True


_USED = object()   # the key, in a block's captures, of the parameter names it has given out


class BlockScope(Scope):
    """The names of one loop or branch body: the block's own, then the enclosing scope's."""

    def __init__(self, parent: Scope, captures: dict, tag: int):
        super().__init__(parent.program, {}, parent.sizes)
        self.parent = parent
        self.captures = captures     # name -> (the enclosing scope's value, this body's parameter)
        self.tag = tag

    def placeholder(self, name: str, dtype: str, shape, weak: bool, loc) -> Node:
        """A parameter of the body for the value `name`. Its parameter name differs from every size
        variable the body sees (a carried `n` beside the size `n`) and from the block's others."""
        used = self.captures.setdefault(_USED, set())
        taken = used | set(self.program.dims) | self.program.loop_dims
        pname, k = name, 1
        while pname in taken:
            k += 1
            pname = f"{name}_{k}"
        used.add(pname)
        attrs = make_attrs(name=pname, block=self.tag)
        return Node("param", dtype, tuple(shape), (), attrs, weak, loc, name)

    def lookup(self, name: str) -> Node | None:
        if name in self.env:
            return self.env[name]
        if name in self.captures:
            return self.captures[name][1]
        outer = self.parent.lookup(name)
        if outer is None:
            return None
        if _closed(outer):
            return outer
        ph = self.placeholder(name, outer.dtype, outer.shape, outer.weak, outer.loc)
        self.captures[name] = (outer, ph)
        return ph

    def gone_at(self, name: str):
        if name in self.gone:
            return self.gone[name]
        return self.parent.gone_at(name)

    def statements(self, stmts) -> None:
        for st in stmts:
            self.statement(st)


def _visible(scope: Scope, name: str) -> Node | None:
    """The value `name` reads before a block: a bound name, else a size variable or a const (a
    block that rebinds one of those carries it out, as Python would)."""
    node = scope.lookup(name)
    if node is None and name in scope.sizes:
        node = builtins.dim_node(scope.sizes[name], None)
    if node is None and scope.program.consts.get(name) is not None:
        node = scope.program.consts[name]
    return node


def _types_equal(a: Node, b: Node) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape


def _adapts(weak: Node, other: Node) -> bool:
    """Whether a weak value (a literal, a size) takes `other`'s dtype, as NumPy's would."""
    return (weak.weak and weak.shape == other.shape
            and _KIND_ORDER.index(kind(weak.dtype)) <= _KIND_ORDER.index(kind(other.dtype)))


def _type_error(name: str, before: Node, after: Node, where, what: str) -> TdslTypeError:
    return TdslTypeError(f"'{name}' is {what}: it is {before.type_str} before it but {after.type_str} "
                         f"here; a carried value keeps its dtype and shape", where,
                         hint=f"cast with {before.dtype}(...)" if before.shape == after.shape else None)


def _graph(scope: Scope, label: str, params: list[Node], outputs, named, loc, index: str | None,
           effects=()) -> FunctionGraph:
    program = scope.program
    size_vars = tuple(program.dims) + ((index,) if index else ())
    return FunctionGraph(f"{program.in_progress[-1] if program.in_progress else 'block'}:{label}",
                         tuple(Param(p.attr("name"), p.dtype, p.shape, p.loc) for p in params),
                         size_vars, tuple(outputs), tuple(named), loc=loc, file=program.filename,
                         effects=tuple(effects))


def _effect(scope: Scope, region: Region, inputs: list, loc) -> None:
    """A loop or branch that binds nothing still runs when its body can fail (NumPy runs every
    statement): it gets one result, a flag it carries unchanged, kept in the graph's `effects`.
    Its condition or bounds are computed for their errors too."""
    from .limits import can_fail, region_can_fail
    for value in inputs[:region.leading]:
        if any(can_fail(n) for n in toposort([value])):
            scope.effects.append(value)
    if not region_can_fail(region):
        return
    false = infer.const(False, "bool", (), False, loc)
    if region.kind == "if":
        graphs = tuple(replace(g, outputs=(false,)) for g in region.graphs)
        new, inputs = replace(region, graphs=graphs), list(inputs)
    else:
        taken = {p.name for g in region.graphs for p in g.params} | set(region.graphs[-1].size_vars)
        name = next(f"ran{k}" for k in range(len(taken) + 1) if f"ran{k}" not in taken)
        flag = Node("param", "bool", (), (), make_attrs(name=name, block=-1), False, loc, None)
        at = 1 if region.index_param else 0
        graphs = tuple(replace(g, params=g.params[:at] + (Param(name, "bool", ()),) + g.params[at:],
                               outputs=g.outputs if j == 0 and region.kind == "while" else (flag,))
                       for j, g in enumerate(region.graphs))
        new = replace(region, graphs=graphs, carried=1)
        lead = region.leading
        inputs = list(inputs[:lead]) + [false] + list(inputs[lead:])
    scope.effects.append(Node(region.kind, "bool", (), tuple(inputs), make_attrs(region=new, result=0), False, loc))


def _strong_like(value: Node, like: Node, loc) -> Node:
    """A body's result for a carried value of `like`'s type (its weakness too)."""
    if value.dtype != like.dtype:
        value = infer.cast(value, like.dtype, loc)
    if value.weak and not like.weak:
        value = builtins._strong(value, loc)
    return value


def _bind(scope: Scope, name: str, node: Node, loc) -> None:
    node = node.with_name(name, loc)
    scope.env[name] = node
    scope.named.append((name, node))
    scope.bound_at[name] = loc


def _int_scalar(node, what: str, loc) -> Node:
    if not isinstance(node, Node) or node.ndim != 0 or kind(node.dtype) != "int":
        got = node.type_str if isinstance(node, Node) else "this"
        raise TdslTypeError(f"{what} must be an integer scalar, not {got}", loc)
    return node


def _bool_scalar(node, what: str, loc) -> Node:
    if not isinstance(node, Node) or node.dtype != "bool" or node.ndim != 0:
        got = node.type_str if isinstance(node, Node) else "this"
        raise TdslTypeError(f"the condition of {what} must be a bool scalar, not {got}", loc,
                            hint="reduce it with any(...) or all(...)" if isinstance(node, Node) and node.ndim else
                            ("compare it, e.g. x > 0" if isinstance(node, Node) else None))
    return node


def _fresh_dim(program, name: str) -> str:
    taken = set(program.dims) | program.loop_dims
    candidate, k = name, 1
    while candidate in taken:
        k += 1
        candidate = f"{name}_{k}"
    return candidate


def _dim_or_none(scope: Scope, node: Node) -> Dim | None:
    try:
        return builtins.static_dim(node, None)
    except TdslTypeError:
        return None


# -- loops -------------------------------------------------------------------------------

def _loop(scope: Scope, stmt: Tree, kind_: str, body_stmts, cond_tree=None, index=None):
    """Elaborate a loop body (and a while's condition) until the carried types settle."""
    program = scope.program
    loc = scope.loc(stmt)
    excluded = {index[0]} if index else set()
    carried = [n for n in assigned_names(body_stmts) if n not in excluded and _visible(scope, n) is not None]
    before = {n: _visible(scope, n) for n in carried}
    types = dict(before)

    def elaborate(types: dict):
        program.blocks += 1
        block = BlockScope(scope, {}, program.blocks)
        holders = [block.placeholder(n, types[n].dtype, types[n].shape, types[n].weak, loc) for n in carried]
        block.env.update(zip(carried, holders))
        index_param = None
        if index:
            var, node = index
            if node is None:   # a loop index that may be negative: a weak i64 parameter
                index_param = block.placeholder(var, "i64", (), True, loc)
                block.env[var] = index_param
            else:
                block.env[var] = node
        cond = None
        if cond_tree is not None:
            cond = _bool_scalar(block.expr(cond_tree), "while", scope.loc(cond_tree))
        block.statements(body_stmts)
        return block, holders, index_param, cond

    for _ in range(len(carried) + 2):
        try:
            block, holders, index_param, cond = elaborate(types)
        except TdslTypeError:
            # a weak carried value (s = 0) read before the body rebinds it may need the dtype the
            # body gives it (section 11) to type check at all: try the dtypes it may take
            settled = _settle_weak(carried, types, elaborate)
            if settled is None:
                raise
            types = settled
            block, holders, index_param, cond = elaborate(types)
        changed = False
        for n in carried:
            new, old = block.env[n], types[n]
            if _types_equal(new, old):
                if old.weak and not new.weak:   # s = 0.0; s += f64(...): strong after the loop
                    types[n] = new
                    changed = True
                continue
            if _adapts(old, new):
                types[n] = new
                changed = True
                continue
            settled = _settle_weak(carried, types, elaborate)
            if settled is not None and settled != types:
                types = settled   # another carried value was weak where it was read
                changed = True
                break
            raise _type_error(n, old, new, block.bound_at.get(n) or loc,
                              f"carried by the {kind_} loop" + (f" at {loc.line}:{loc.col}" if loc else ""))
        if not changed:
            break
    outputs = [_strong_like(block.env[n], types[n], loc) for n in carried]
    captured = [v for key, v in block.captures.items() if key is not _USED]
    params = ([index_param] if index_param is not None else []) + holders + [ph for _, ph in captured]
    scope.gone.update(block.gone)   # names local to a nested loop or branch stay reported as such
    for name, where in block.bound_at.items():
        if name not in carried and (not index or name != index[0]):
            scope.gone[name] = where
    inits = [infer.cast(before[n], types[n].dtype, loc) for n in carried]
    return carried, types, outputs, params, captured, inits, block, cond


_WIDER = {"int": ("i32", "i64", "f32", "f64"), "float": ("f32", "f64"), "bool": ("bool", "i32", "i64", "f32", "f64")}


def _settle_weak(carried: list, types: dict, elaborate) -> dict | None:
    """Dtypes for the weak carried values (the others as they are) under which the body type
    checks and gives each of them back its own dtype; None if no combination (of a few) does."""
    import itertools
    weak = [n for n in carried if types[n].weak]
    if not weak or len(weak) > 3:
        return None
    # each weak value kept as it is (None) or given a dtype; fewest changes first
    options = [(None,) + _WIDER[kind(types[n].dtype)] for n in weak]
    combos = sorted(itertools.product(*options), key=lambda c: sum(d is not None for d in c))
    for combo in combos[1:]:
        trial = dict(types)
        for n, dtype in zip(weak, combo):
            if dtype is None:
                continue
            trial[n] = infer.cast(types[n], dtype, types[n].loc) if types[n].dtype != dtype else types[n]
            trial[n] = builtins._strong(trial[n], trial[n].loc)
        try:
            block = elaborate(trial)[0]
        except TdslTypeError:
            continue
        if all(_types_equal(block.env[n], trial[n]) for n, d in zip(weak, combo) if d is not None) and \
                all(_types_equal(block.env[n], trial[n]) or _adapts(trial[n], block.env[n]) for n in carried):
            return trial
    return None


def _fresh_loop_variable(scope: Scope, var: str, loc) -> None:
    """A loop variable names nothing visible before its loop: it is local to the loop, so after
    it the old value would come back where Python leaves the last index."""
    outer = scope.lookup(var)
    if outer is None:
        if _visible(scope, var) is None:
            return
        what = "a size variable" if var in scope.sizes else "a const"
    else:
        what = "already bound" + (f" (at {outer.loc.line}:{outer.loc.col})" if outer.loc else "")
    raise TdslTypeError(f"the loop variable '{var}' is {what}; a loop variable is local to its loop, "
                        f"so after it '{var}' would not hold the last index as in Python", loc,
                        hint="give the loop variable a name of its own")


def for_stmt(scope: Scope, stmt: Tree) -> None:
    var_tok, range_tok, args_tree, body = stmt.children
    program, loc = scope.program, scope.loc(stmt)
    if str(range_tok) != "range":
        raise TdslTypeError(f"a for loop runs over range(...), not {range_tok}(...)", scope.loc(range_tok))
    args = []
    for a in args_tree.children:
        if a.data != "arg_pos":
            raise TdslTypeError("range() takes positional arguments only", scope.loc(a))
        args.append(a.children[0])
    if not 1 <= len(args) <= 3:
        raise TdslTypeError(f"range() takes 1 to 3 arguments, got {len(args)}", loc)
    values = [_int_scalar(scope.expr(a), "a bound of range()", scope.loc(a)) for a in args]
    step = 1
    if len(values) == 3:
        s = values.pop()
        if s.op != "const":
            raise TdslTypeError("the step of range() must be an integer literal or const", scope.loc(args[2]))
        step = int(s.attr("value"))
        if step == 0:
            raise TdslTypeError("the step of range() cannot be zero", scope.loc(args[2]))
    start, stop = (infer.const(0, "i64", (), True, loc), values[0]) if len(values) == 1 else values
    start, stop = infer.cast(start, "i64", loc), infer.cast(stop, "i64", loc)
    var = str(var_tok)
    _fresh_loop_variable(scope, var, scope.loc(var_tok))
    first = _dim_or_none(scope, start if step > 0 else stop)
    # a dim index (a size variable of the body) must never be negative: range(n), range(1, n),
    # range(n - 1, -1, -1); otherwise the index is a parameter and subscripts count it from the end
    least = None if first is None else first if step > 0 else first + 1
    nonnegative = least is not None and nonnegative_in_loops(least, program)
    dim_name = None
    if nonnegative:
        dim_name = _fresh_dim(program, var)
        program.loop_dims.add(dim_name)
        program.loop_lower[dim_name] = least
        program.dims.append(dim_name)
        index_node = Node("sizevar", "i64", (), (), (("name", dim_name),), True, scope.loc(var_tok))
    else:
        index_node = None
    try:
        carried, types, outputs, params, captured, inits, block, _ = _loop(
            scope, stmt, "for", body.children, index=(var, index_node))
    finally:
        if dim_name:
            program.dims.pop()
    graph = _graph(scope, f"for@{loc.line}" if loc else "for", params, outputs, block.named, loc, None,
                   block.effects)
    if dim_name:
        graph = replace(graph, size_vars=graph.size_vars + (dim_name,))
    region = Region("for", (graph,), len(carried), step, dim_name or var, not nonnegative, loc)
    scope.gone[var] = scope.loc(var_tok)   # the loop variable is local to the loop
    inputs = [start, stop] + inits + [outer for outer, _ in captured]
    _results(scope, carried, inputs, region, types, loc)
    if not carried:
        _effect(scope, region, inputs, loc)


def while_stmt(scope: Scope, stmt: Tree) -> None:
    cond_tree, body = stmt.children
    loc = scope.loc(stmt)
    carried, types, outputs, params, captured, inits, block, cond = _loop(
        scope, stmt, "while", body.children, cond_tree=cond_tree)
    label = f"while@{loc.line}" if loc else "while"
    cond_graph = _graph(scope, label + ":cond", params, [cond], (), loc, None)
    body_graph = _graph(scope, label, params, outputs, block.named, loc, None, block.effects)
    region = Region("while", (cond_graph, body_graph), len(carried), loc=loc)
    _results(scope, carried, inits + [outer for outer, _ in captured], region, types, loc)
    if not carried:
        _effect(scope, region, inits + [outer for outer, _ in captured], loc)


def _results(scope: Scope, names, inputs, region: Region, types: dict, loc) -> None:
    for k, name in enumerate(names):
        like = types[name]
        node = Node(region.kind, like.dtype, like.shape, tuple(inputs),
                    make_attrs(region=region, result=k), like.weak, loc)
        _bind(scope, name, node, loc)


# -- branches ----------------------------------------------------------------------------

def if_stmt(scope: Scope, stmt: Tree) -> None:
    program = scope.program
    cond_tree, then, other = stmt.children
    loc = scope.loc(stmt)
    pred = _bool_scalar(scope.expr(cond_tree), "if", scope.loc(cond_tree))
    captures: dict = {}
    blocks = []
    for part in (then, other):
        program.blocks += 1
        block = BlockScope(scope, captures, program.blocks)
        if part is not None:
            block.statements([part] if part.data == "if_stmt" else part.children)
        blocks.append(block)
    bound = [list(b.bound_at) for b in blocks]
    existing = [n for n in dict.fromkeys(bound[0] + bound[1]) if _visible(scope, n) is not None]
    new = [n for n in bound[0] if n in bound[1] and n not in existing] if other is not None else []
    names = existing + new
    per_branch = [[b.env[n] if n in b.env else _visible(b, n) for n in names] for b in blocks]
    types = {}
    for i, n in enumerate(names):
        a, b = per_branch[0][i], per_branch[1][i]
        if _types_equal(a, b):
            types[n] = a if not a.weak else b
            continue
        if _adapts(a, b):
            types[n] = b
        elif _adapts(b, a):
            types[n] = a
        else:
            where = blocks[1].bound_at.get(n) or blocks[0].bound_at.get(n)
            otherwise = "after the else branch" if other is not None else "when the if is not taken"
            raise TdslTypeError(f"'{n}' is {a.type_str} after the if branch but {b.type_str} {otherwise}; "
                                f"every path must give it the same dtype and shape", where or loc)
    outputs = [[_strong_like(v, types[n], loc) for v, n in zip(vals, names)] for vals in per_branch]
    for b in blocks:
        scope.gone.update(b.gone)
        for name, where in b.bound_at.items():
            if name not in names:
                scope.gone[name] = where
    captured = [v for key, v in captures.items() if key is not _USED]
    params = [ph for _, ph in captured]
    label = f"if@{loc.line}" if loc else "if"
    graphs = tuple(_graph(scope, label + (":then" if i == 0 else ":else"), params, outs, b.named, loc, None,
                          b.effects)
                   for i, (outs, b) in enumerate(zip(outputs, blocks)))
    region = Region("if", graphs, 0, loc=loc)
    _results(scope, names, [pred] + [outer for outer, _ in captured], region, types, loc)
    if not names:
        _effect(scope, region, [pred] + [outer for outer, _ in captured], loc)


STATEMENTS = {"for_stmt": for_stmt, "while_stmt": while_stmt, "if_stmt": if_stmt}
