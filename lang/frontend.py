"""The front end: a parse tree becomes checked function graphs.

Calls between `fn`s are inlined: a body is elaborated again for each call with
the caller's argument nodes bound to its parameters and the caller's dims bound
to its size variables. Every node keeps the location of the expression it came from.
"""
from __future__ import annotations

import difflib

from lark import Token, Tree

from . import builtins, extras, infer
from .dims import Dim, DimTooComplex, is_nonnegative, shape_str
from .dtypes import DTYPES, can_cast_safe, kind
from .errors import Location, TdslSyntaxError, TdslTypeError, location_of
from .graph import MAX_DIMS, FunctionGraph, Node, Param, deep_recursion, make_attrs, paused_gc
from .indexing import Sub, index
from .ops import operator_symbols

# operator symbol -> op name, from the op table (`+` -> add, `<=` -> le): the grammar says where each goes
OPERATORS = {symbol: name for name, symbol in operator_symbols(2).items()}
_KIND_ORDER = ["bool", "int", "float"]
MAX_CALL_DEPTH = 100  # fns inlined into one another; each level elaborates a whole body again
_CHAINS = ("binop", "and_op", "or_op")  # left-associative: `a + b + c` nests on the left


class Program:
    """The definitions of one source file, elaborated on demand."""

    def __init__(self, tree: Tree, text: str, filename: str):
        self.text, self.filename = text, filename
        self.consts: dict[str, Node] = {}
        self.fns: dict[str, Tree] = {}
        self.in_progress: list[str] = []
        self.dims: list[str] = []        # the size variables visible here: the function's, then loop indices
        self.loop_dims: set[str] = set()  # the size variables that are loop indices
        self.loop_lower: dict[str, Dim] = {}  # each loop index's least value (a dim expression)
        self.blocks = 0                  # loop and branch bodies elaborated so far (their parameters' tag)
        for item in tree.children:
            name_tok = item.children[0]
            if name_tok in self.consts or name_tok in self.fns:
                raise TdslTypeError(f"'{name_tok}' is defined twice", self.loc(name_tok))
            if name_tok in DTYPES or name_tok == "grad" or (name_tok in builtins.BUILDERS
                                                            and name_tok not in builtins.VERSION2):
                raise TdslTypeError(f"'{name_tok}' is the name of a builtin", self.loc(name_tok))
            if item.data == "fn_def":
                self.fns[str(name_tok)] = item
            else:
                self.consts[str(name_tok)] = None  # placeholder until evaluated below
        for item in tree.children:
            if item.data == "const_def":
                self.consts[str(item.children[0])] = self.const_value(item)

    def loc(self, meta_or_token) -> Location | None:
        meta = getattr(meta_or_token, "meta", meta_or_token)
        return location_of(meta, self.filename, self.text)

    def const_value(self, item: Tree) -> Node:
        name, expr = item.children
        scope = Scope(self, {}, {})
        value = scope.expr(expr)
        if not isinstance(value, Node) or value.op != "const":
            raise TdslTypeError(f"const {name} must be a number or an array literal", self.loc(expr))
        return value.with_name(str(name), self.loc(name))

    def function_graphs(self) -> list[FunctionGraph]:
        return [self.top_level(name) for name in self.fns]

    def top_level(self, name: str) -> FunctionGraph:
        """The function `name` as an exported entry point: its parameters are graph inputs."""
        fn = self.fns[name]
        _, params_tree, ret, body = fn.children
        params, size_vars, sizes = [], [], {}
        for p in params_tree.children:
            pname, ptype = p.children
            dtype, shape = self.param_type(ptype, sizes, size_vars)
            params.append(Param(str(pname), dtype, shape, self.loc(pname)))
        for i, p in enumerate(params):
            if any(q.name == p.name for q in params[:i]):
                raise TdslTypeError(f"{name} has two parameters named '{p.name}'", p.loc)
        args = [Node("param", p.dtype, p.shape, (), make_attrs(name=p.name), False, p.loc, p.name) for p in params]
        scope = Scope(self, {p.name: a for p, a in zip(params, args)}, sizes)
        self.dims, self.loop_dims = list(size_vars), set()
        try:
            outputs, tuple_result = self.elaborate(fn, scope)
        except RecursionError:
            # each level is bounded (the parser's MAX_NESTING, MAX_CALL_DEPTH), not their product
            self.in_progress.clear()
            raise TdslSyntaxError(f"{name} is nested too deeply to check (nested calls of nested "
                                  f"expressions)", self.loc(fn.children[0])) from None
        except DimTooComplex as err:   # raised by dim arithmetic, which knows no place
            self.in_progress.clear()
            raise TdslTypeError(f"in {name}: {err}", self.loc(fn.children[0])) from None
        infer.check_literals(list(outputs) + [node for _, node in scope.named])
        return FunctionGraph(name, tuple(params), tuple(size_vars), tuple(outputs), tuple(scope.named),
                             tuple_result=tuple_result, loc=self.loc(fn.children[0]), file=self.filename,
                             effects=tuple(scope.effects))

    def param_type(self, ptype: Tree, sizes: dict, size_vars: list) -> tuple[str, tuple[Dim, ...]]:
        dtype_tok, dims = ptype.children
        if dtype_tok not in DTYPES:
            raise TdslTypeError(f"unknown dtype '{dtype_tok}' (use one of {', '.join(DTYPES)})", self.loc(dtype_tok))
        shape = []
        for d in (dims.children if dims is not None else []):
            if isinstance(d, Token) and d.type == "NAME":
                if d not in sizes:
                    sizes[str(d)] = Dim.of(str(d))
                    size_vars.append(str(d))
                shape.append(sizes[str(d)])
            elif isinstance(d, Token):
                shape.append(self.dim_literal(d))
            else:   # a dim expression over size variables an earlier axis binds: `y: f32[n + 1]`
                unbound = [t for t in d.scan_values(lambda t: isinstance(t, Token) and t.type == "NAME")
                           if str(t) not in sizes]
                if unbound:
                    raise TdslTypeError(f"the size variable '{unbound[0]}' in this dim expression must be "
                                        f"bound by an earlier parameter axis of its own", self.loc(d),
                                        hint=f"give an earlier parameter an axis '{unbound[0]}'")
                shape.append(self.dim_of(d, sizes))
        return str(dtype_tok), tuple(shape)

    def type_of(self, ttree: Tree, sizes: dict) -> tuple[str, tuple[Dim, ...]]:
        """A declared (return) type under the size-variable bindings `sizes`."""
        dtype_tok, dims = ttree.children
        if dtype_tok not in DTYPES:
            raise TdslTypeError(f"unknown dtype '{dtype_tok}'", self.loc(dtype_tok))
        return str(dtype_tok), tuple(self.dim_of(d, sizes) for d in (dims.children if dims else []))

    def dim_literal(self, tok: Token) -> Dim:
        """An integer size written in a type; NumPy's sizes are below 2**63."""
        digits = str(tok).replace("_", "").lstrip("0") or "0"
        if len(digits) > 19 or int(digits) >= 2**63:
            raise TdslTypeError(f"the size {_abbreviate(digits)} is too large (sizes are below 2**63)",
                                self.loc(tok))
        return Dim.of(int(digits))

    def dim_of(self, d, sizes: dict) -> Dim:
        if isinstance(d, Token):
            if d.type == "NAME":
                if d not in sizes:
                    raise TdslTypeError(f"size variable '{d}' is not bound by any parameter", self.loc(d))
                return sizes[str(d)]
            return self.dim_literal(d)
        a, op, b = d.children
        a, b = self.dim_of(a, sizes), self.dim_of(b, sizes)
        if op == "//" and (b.const is None or b.const <= 0):
            raise TdslTypeError("a dim can only be floor-divided by a positive integer", self.loc(d))
        try:
            return {"+": a.__add__, "-": a.__sub__, "*": a.__mul__, "//": a.__floordiv__}[str(op)](b)
        except DimTooComplex as err:
            raise TdslTypeError(str(err), self.loc(d)) from None

    def elaborate(self, fn: Tree, scope: "Scope") -> tuple[list[Node], bool]:
        """Run the body of `fn` in `scope`; check the results against the return annotation."""
        name, _, ret, body = fn.children
        if name in self.in_progress:
            chain = " -> ".join(self.in_progress + [str(name)])
            raise TdslTypeError(f"recursion is not allowed: {chain}", self.loc(name))
        self.in_progress.append(str(name))
        try:
            results = scope.body(body, self.loc(name))
        finally:
            self.in_progress.pop()
        tuple_result = len(results) > 1
        if ret is not None:
            declared = ret.children
            tuple_result = ret.data == "ret_tuple"
            if len(declared) != len(results):
                raise TdslTypeError(f"{name} declares {len(declared)} result(s) but returns {len(results)}",
                                    self.loc(ret))
            results = [self.check_result(r, t, scope.sizes) for r, t in zip(results, declared)]
        results = [builtins._strong(r, r.loc) for r in results]
        return results, tuple_result

    def check_result(self, value: Node, ttree: Tree, sizes: dict) -> Node:
        dtype, shape = self.type_of(ttree, sizes)
        if value.dtype != dtype and value.weak and _KIND_ORDER.index(kind(value.dtype)) <= _KIND_ORDER.index(kind(dtype)):
            value = infer.cast(value, dtype, value.loc)  # a weak literal takes the declared dtype
        if value.dtype != dtype or value.shape != shape:
            raise TdslTypeError(f"the result is {value.type_str} but the declared type is "
                                f"{dtype}{shape_str(shape)}", self.loc(ttree),
                                hint=f"cast with {dtype}(...)" if value.dtype != dtype else None)
        return value

    def inline(self, name: str, args: list, kwargs: dict, loc: Location | None) -> list[Node]:
        """A call of another `fn`: its body elaborated with the arguments bound."""
        if name in self.in_progress:
            chain = " -> ".join(self.in_progress + [name])
            raise TdslTypeError(f"recursion is not allowed: {chain}", loc)
        if len(self.in_progress) >= MAX_CALL_DEPTH:
            raise TdslTypeError(f"calls nest too deeply: more than {MAX_CALL_DEPTH} functions, "
                                f"from {self.in_progress[0]}", loc)
        fn = self.fns[name]
        params = fn.children[1].children
        if kwargs:
            names = [str(p.children[0]) for p in params]
            for key in kwargs:
                if key not in names:
                    raise TdslTypeError(f"{name}() has no parameter '{key}'", loc)
                if key in names[:len(args)]:
                    raise TdslTypeError(f"{name}() got argument '{key}' twice", loc)
            missing = [n for n in names[len(args):] if n not in kwargs]
            if missing:
                raise TdslTypeError(f"{name}() is missing argument '{missing[0]}'", loc)
            args = list(args) + [kwargs[n] for n in names[len(args):]]
        if len(args) != len(params):
            raise TdslTypeError(f"{name}() takes {len(params)} arguments, got {len(args)}", loc)
        sizes: dict[str, Dim] = {}
        env: dict[str, Node] = {}
        for p, arg in zip(params, args):
            pname, ptype = p.children
            env[str(pname)] = self.bind_argument(name, str(pname), ptype, builtins.as_node(arg, loc), sizes, loc)
        outputs, _ = self.elaborate(fn, Scope(self, env, sizes))
        return outputs

    def bind_argument(self, fname, pname, ptype, arg: Node, sizes: dict, loc) -> Node:
        dtype_tok, dims = ptype.children
        dims = dims.children if dims is not None else []
        if arg.dtype != dtype_tok:
            weak_ok = arg.weak and _KIND_ORDER.index(kind(arg.dtype)) <= _KIND_ORDER.index(kind(str(dtype_tok)))
            if not (weak_ok or can_cast_safe(arg.dtype, str(dtype_tok))):
                raise TdslTypeError(f"{fname}(): argument '{pname}' is {arg.type_str}, expected {dtype_tok}",
                                    loc, hint=f"cast with {dtype_tok}(...)")
            arg = infer.cast(arg, str(dtype_tok), loc)
        if arg.ndim != len(dims):
            raise TdslTypeError(f"{fname}(): argument '{pname}' has rank {arg.ndim} ({arg.type_str}), "
                                f"expected {len(dims)}", loc)
        for axis, (d, actual) in enumerate(zip(dims, arg.shape)):
            if isinstance(d, Token) and d.type == "NAME" and d not in sizes:
                sizes[str(d)] = actual
            expected = self.dim_of(d, sizes)
            if expected != actual:
                bound = f"{expected} (its size variable {d} is already bound to {expected})" if (
                    isinstance(d, Token) and d.type == "NAME") else str(expected)
                raise TdslTypeError(f"{fname}(): argument '{pname}' has size {actual} on axis {axis}, "
                                    f"but the parameter needs {bound}", loc)
        return arg


class Scope:
    """The names visible in one elaboration of a function body."""

    def __init__(self, program: Program, env: dict, sizes: dict):
        self.program, self.env, self.sizes = program, env, sizes
        self.named: list[tuple[str, Node]] = []
        self.bound_at: dict[str, Location | None] = {}   # each name's latest binding in this body
        self.effects: list[Node] = []   # loops and branches that bind nothing but can fail
        self.gone: dict[str, Location | None] = {}       # names local to a loop or branch that ended

    def loc(self, tree) -> Location | None:
        return self.program.loc(tree)

    def body(self, body: Tree, fn_loc) -> list[Node]:
        stmts = body.children
        for i, stmt in enumerate(stmts):
            if stmt.data != "return_stmt":
                self.statement(stmt)
                continue
            if stmt.data == "return_stmt":
                if i != len(stmts) - 1:
                    raise TdslTypeError("return must be the last statement", self.loc(stmts[i + 1]))
                if len(stmt.children) == 1 and stmt.children[0].data in ("tuple_lit", "call"):
                    # `return (a, b)` is `return a, b`, and `return g(x)` passes on all of g's results
                    values = self.expr(stmt.children[0])
                    if isinstance(values, tuple):
                        if not values:
                            raise TdslTypeError("a function must return at least one value", self.loc(stmt))
                        return [self.as_value(v, stmt.children[0]) for v in values]
                    return [self.as_value(values, stmt.children[0])]
                return [self.value(e) for e in stmt.children]
        raise TdslTypeError("the function has no return statement", fn_loc)

    def statement(self, stmt: Tree) -> None:
        """One statement other than `return`."""
        kind_ = stmt.data
        if kind_ == "return_stmt":
            raise TdslTypeError("return must be the last statement of the function, not inside a "
                                "loop or branch", self.loc(stmt))
        if kind_ == "assign":
            name, expr = stmt.children
            self.bind(name, self.expr(expr))
        elif kind_ == "destructure":
            *names, expr = stmt.children
            values = self.expr(expr)
            if not isinstance(values, tuple) or len(values) != len(names):
                count = len(values) if isinstance(values, tuple) else 1
                raise TdslTypeError(f"cannot unpack {count} value(s) into {len(names)} names", self.loc(stmt))
            for name, value in zip(names, values):
                self.bind(name, value)
        elif kind_ == "aug_assign":
            name, op, expr = stmt.children
            self.bind(name, self.augmented(self.existing(name), op, self.value(expr), stmt))
        elif kind_ in ("index_assign", "index_aug_assign"):
            from .updates import set_item
            name, subs_tree, *rest = stmt.children
            x = self.existing(name)
            subs = [self.subscript(s) for s in subs_tree.children]
            v = self.value(rest[-1])
            if kind_ == "index_aug_assign":
                v = self.augmented(index(x, subs, self.loc(stmt)), rest[0], v, stmt)
            self.bind(name, set_item(x, subs, v, self.loc(stmt)))
        else:
            from . import control
            control.STATEMENTS[kind_](self, stmt)

    def augmented(self, old: Node, op: Token, value: Node, stmt: Tree) -> Node:
        """`old OP value` for the assignment `... OP= value`."""
        symbol = str(op)[:-1]
        if symbol == "@":
            return infer.matmul(old, value, self.loc(stmt))
        return infer.elementwise(OPERATORS[symbol], [old, value], self.loc(stmt))

    def existing(self, name: Token) -> Node:
        """The value of a name an update or augmented assignment rebinds."""
        node = self.lookup(str(name))
        if node is None:
            self.undefined(str(name), self.loc(name))
        return node

    def lookup(self, name: str) -> Node | None:
        """The value bound to `name` in this body (or an enclosing one), if any."""
        return self.env.get(name)

    def gone_at(self, name: str):
        """Where `name` was bound in a loop or branch that has ended (it was local to it)."""
        return self.gone.get(name)

    def bind(self, name: Token, value) -> None:
        if name in DTYPES or name in self.program.fns:
            raise TdslTypeError(f"cannot assign to '{name}': it names a type or a function", self.loc(name))
        node = builtins.as_node(value, self.loc(name)) if not isinstance(value, Node) else value
        node = node.with_name(str(name), self.loc(name))
        self.env[str(name)] = node
        self.named.append((str(name), node))
        self.bound_at[str(name)] = self.loc(name)

    def value(self, tree) -> Node:
        return self.as_value(self.expr(tree), tree)

    def as_value(self, v, tree) -> Node:
        """`v`, the result of the expression `tree`, as one Node."""
        if isinstance(v, Node):
            return v
        if isinstance(v, tuple):
            raise TdslTypeError("a tuple is not a value here", self.loc(tree))
        return builtins.as_node(v, self.loc(tree))

    def expr(self, tree):
        """A Node, or for tuples, dtypes and calls with several results a Python tuple / DType."""
        method = getattr(self, "e_" + tree.data, None)
        if method is None:
            raise TdslTypeError(f"unsupported expression {tree.data}", self.loc(tree))
        return method(tree)

    # -- atoms -------------------------------------------------------------------
    def e_int_lit(self, t):
        digits = str(t.children[0]).replace("_", "").lstrip("0") or "0"
        # NumPy cannot hold an integer past the largest float in any dtype (np.float64(10**400)
        # raises OverflowError); checking the length first also keeps int() within Python's
        # 4,300-digit limit for converting text
        if len(digits) > _MAX_INT_DIGITS or _over_float_max(int(digits)):
            raise TdslTypeError(f"the integer literal {_abbreviate(digits)} is too large for any dtype "
                                f"(the largest f64 is about 1.8e308)", self.loc(t))
        return infer.const(int(digits), "i64", (), True, self.loc(t))

    def e_float_lit(self, t):
        return infer.const(float(str(t.children[0]).replace("_", "")), "f64", (), True, self.loc(t))

    def e_true_lit(self, t):
        return infer.const(True, "bool", (), True, self.loc(t))

    def e_false_lit(self, t):
        return infer.const(False, "bool", (), True, self.loc(t))

    def e_name(self, t):
        name = str(t.children[0])
        node = self.lookup(name)
        if node is not None:
            return node
        if name in self.sizes:
            return builtins.dim_node(self.sizes[name], self.loc(t))
        if name in self.program.consts and self.program.consts[name] is not None:
            return self.program.consts[name]
        if name in DTYPES:
            return builtins.DType(name)
        if name in extras.CONSTS:   # inf, nan, pi, e: below every name the program binds itself
            if self.gone_at(name) is not None or name in self.gone:
                self.undefined(name, self.loc(t))   # `e` bound in a branch is not the const after it
            return extras.const_node(name, self.loc(t))
        if name in self.program.fns or name in builtins.BUILDERS:
            raise TdslTypeError(f"'{name}' is a function; call it", self.loc(t))
        self.undefined(name, self.loc(t))

    def undefined(self, name: str, loc) -> None:
        where = self.gone_at(name)
        if where is not None or name in self.gone:
            raise TdslTypeError(f"'{name}' is local to the loop or branch that binds it"
                                f"{f' (at {where.line}:{where.col})' if where else ''}; it is not "
                                f"defined after it", loc,
                                hint=f"bind '{name}' before the loop or branch to carry it out")
        known = list(self.env) + list(self.sizes) + list(self.program.consts)
        near = difflib.get_close_matches(name, known, n=1)
        raise TdslTypeError(f"undefined name '{name}'", loc,
                            hint=f"did you mean '{near[0]}'?" if near else None)

    def argument(self, tree):
        """A call's argument: an expression, or a string literal (as a Python str; the grammar
        allows one only here, for a spec such as einsum's)."""
        if tree.data == "str_lit":
            return str(tree.children[0])[1:-1]
        return self.expr(tree)

    def e_tuple_lit(self, t):
        return tuple(self.expr(c) for c in t.children)

    def e_array_lit(self, t):
        loc = self.loc(t)
        if _nesting(t) > MAX_DIMS:
            raise TdslTypeError(f"an array literal can have at most {MAX_DIMS} dimensions (NumPy's limit), "
                                f"this one has {_nesting(t)}", loc)
        values = self._array_values(t)
        shape = _rectangular_shape(values)
        if shape is None:
            raise TdslTypeError("an array literal must be rectangular", loc)
        dtype, _ = infer.promote([(n.dtype, True) for n in _flatten(values)])
        # as NumPy reads a list of Python numbers: f64 if any is a float, else i64, else bool;
        # integers stay exact Python ints (checked where used, as a lone integer literal is)
        dtype, convert = {"float": ("f64", float), "int": ("i64", int), "bool": ("bool", bool)}[kind(dtype)]
        nested = _map_nested(values, lambda n: convert(n.attr("value")))
        return infer.const(builtins._tuplify(nested), dtype, shape, True, loc)

    def _array_values(self, t):
        out = []
        for c in t.children:
            if c.data == "array_lit":
                out.append(self._array_values(c))
                continue
            v = self.expr(c)
            if not (isinstance(v, Node) and v.op == "const" and v.ndim == 0):
                raise TdslTypeError("array literal elements must be numbers (use stack for arrays of values)",
                                    self.loc(c))
            out.append(v)
        return out

    # -- operators -----------------------------------------------------------------
    def e_binop(self, t):
        """A left-associative chain `a + b - c ...` (or `and`, `or`), evaluated in a loop:
        a long flat chain must not recurse once per operator."""
        spine = [t]
        while isinstance(spine[-1].children[0], Tree) and spine[-1].children[0].data in _CHAINS:
            spine.append(spine[-1].children[0])
        value = self.value(spine[-1].children[0])
        for node in reversed(spine):
            value = self._binary(node, value, self.value(node.children[-1]))
        return value

    e_and_op = e_or_op = e_binop

    def _binary(self, t, left: Node, right: Node) -> Node:
        """One link of a chain: the operator of `t` applied to its evaluated operands."""
        if t.data != "binop":
            return infer.elementwise(t.data[:-3], [left, right], self.loc(t))  # and_op -> and
        op = str(t.children[1])
        if op == "@":
            return infer.matmul(left, right, self.loc(t))
        return infer.elementwise(OPERATORS[op], [left, right], self.loc(t))

    def e_compare(self, t):
        a, op, b = t.children
        return infer.elementwise(OPERATORS[str(op)], [self.value(a), self.value(b)], self.loc(t))

    def e_not_op(self, t):
        return infer.elementwise("not", [self.value(t.children[0])], self.loc(t))

    def e_power(self, t):
        return infer.elementwise("pow", [self.value(c) for c in t.children], self.loc(t))

    def e_neg(self, t):
        x = self.value(t.children[0])
        if x.op == "const" and x.weak and kind(x.dtype) == "int":
            # a weak integer is a Python int: negated exactly, so -9223372036854775808 is i64's
            # minimum and -10**20 stays a big int for a float context (its range is checked where used)
            return infer.const(_negate(x.attr("value")), x.dtype, x.shape, True, self.loc(t))
        if x.op == "const" and x.dtype != "bool":
            import numpy as np
            with np.errstate(all="ignore"):
                negated = builtins._tuplify(np.negative(infer.const_value(x)).tolist())
            return infer.const(negated, x.dtype, x.shape, x.weak, self.loc(t))
        return infer.elementwise("neg", [x], self.loc(t))

    def e_pos(self, t):
        x = self.value(t.children[0])
        if x.dtype == "bool":
            raise TdslTypeError("arithmetic on bool is not allowed (unary +)", self.loc(t), hint=infer.BOOL_HINT)
        return x

    # -- postfix forms -----------------------------------------------------------------
    def e_attr(self, t):
        x, name = t.children
        if name != "T":
            raise TdslTypeError(f"unknown attribute '.{name}' (only .T exists)", self.loc(name),
                                hint=self.attribute_hint(x, str(name)))
        return builtins.transpose(self.loc(t), self.value(x))

    def attribute_hint(self, receiver: Tree, name: str) -> str | None:
        """What to write instead of `x.sum` or `np.pi`: values have no methods, and there are no modules."""
        text = self.text_of(receiver)
        is_module = receiver.data == "name" and self.lookup(text) is None and text not in self.sizes \
            and text not in self.program.consts
        if name in extras.CONSTS and is_module:
            return f"there are no modules; '{name}' is predefined: write {name}"
        if name in builtins.BUILDERS:
            call = f"{name}(...)" if is_module else f"{name}({text})"
            return f"values have no methods and there are no modules; call the builtin: {call}"
        if name in ("shape", "ndim", "size") and not is_module:
            return "shapes are static: use the size variables of the parameters' types by name (e.g. n)"
        return None

    def e_index(self, t):
        x_tree, subs_tree = t.children
        x = self.value(x_tree)
        subs = subs_tree.children
        if len(subs) == 1 and subs[0].data == "sub_expr":
            idx = self.expr(subs[0].children[0])
            if isinstance(idx, Node) and idx.ndim > 0:
                return infer.take(x, idx, 0, self.loc(t))
        return index(x, [self.subscript(s) for s in subs], self.loc(t))

    def subscript(self, s) -> Sub:
        """One subscript: an integer or dim expression (static), or a value known at run time."""
        if s.data == "sub_none":
            return Sub("none")
        if s.data == "sub_ellipsis":
            return Sub("ellipsis")
        if s.data == "sub_expr":
            v = self.expr(s.children[0])
            if isinstance(v, Node) and v.ndim > 0:
                if kind(v.dtype) != "int":
                    raise TdslTypeError(f"an index array must hold integers, not {v.dtype}", self.loc(s))
                return Sub("array", value=v)
            bound = self.bound(v, s.children[0])
            return Sub("dyn", value=bound) if isinstance(bound, Node) else Sub("int", start=bound)
        start_t, stop_t, step_t = s.children
        step = None if step_t is None else self.bound(self.expr(step_t), step_t)
        if isinstance(step, Node):
            raise TdslTypeError("a slice step must be a nonzero integer literal or const", self.loc(step_t or s))
        start, stop = (None if c is None else self.bound(self.expr(c), c) for c in (start_t, stop_t))
        if not isinstance(start, Node) and not isinstance(stop, Node):
            return Sub("slice", start, stop, step)
        from .updates import slice_length
        if (step or 1) < 0:
            raise TdslTypeError("a slice with a run-time bound needs a positive step", self.loc(s),
                                hint="flip(...) the slice instead")
        length = None
        if start is not None and stop is not None:
            as_node = [b if isinstance(b, Node) else builtins.as_node(b, self.loc(s)) for b in (start, stop)]
            length = slice_length(*as_node)
        if length is None:
            raise TdslTypeError("the length of this slice is not a dim expression (stop - start must not "
                                "depend on run-time values)", self.loc(s),
                                hint="write it as x[j:j + k] with k a size, a const or a literal")
        if step == 0:
            raise TdslTypeError("a slice step cannot be zero", self.loc(s))
        span = length
        if step and step != 1:
            length = (length + (step - 1)) // step
        return Sub("dynslice", stop=length, step=step or 1, value=as_node[0], span=span)

    def bound(self, v, tree):
        """An index or slice bound: an int (a literal, negative from the end), a dim expression
        that is never negative (static), or an integer scalar value (run time)."""
        if isinstance(v, Node) and v.op == "const" and v.ndim == 0 and v.dtype in ("i32", "i64"):
            return int(v.attr("value"))
        if not (isinstance(v, Node) and v.ndim == 0 and kind(v.dtype) == "int"):
            what = v.type_str if isinstance(v, Node) else "this"
            raise TdslTypeError(f"an index or slice bound must be an integer scalar, not {what}",
                                self.loc(tree), hint="index with an integer array to gather (take)")
        try:
            dim = builtins.static_dim(v, self.loc(tree))
        except TdslTypeError:
            return v
        if set(dim.variables()) & self.program.loop_dims and not nonnegative_in_loops(dim, self.program):
            return v    # a loop index minus something may be negative: NumPy counts it from the end
        return dim

    def e_call(self, t):
        name_tok, args_tree = t.children
        name, loc = str(name_tok), self.loc(t)
        args, kwargs, last_kw = [], {}, None
        for a in args_tree.children:
            if a.data == "arg_pos":
                if kwargs:
                    raise TdslTypeError("a positional argument cannot follow a keyword argument", self.loc(a),
                                        hint=self.comparison_hint(last_kw, name, compared_only=True))
                args.append(self.argument(a.children[0]))
            else:
                key, expr = a.children
                self.check_keyword(name, a, t)
                if str(key) in kwargs:
                    raise TdslTypeError(f"argument '{key}' given twice", self.loc(key))
                kwargs[str(key)] = self.argument(expr)
                last_kw = a
        if name in self.program.fns:
            outputs = self.program.inline(name, args, kwargs, loc)
            return outputs[0] if len(outputs) == 1 else tuple(outputs)
        if name == "grad":
            from .autodiff import grad_call
            return grad_call(args, kwargs, loc)
        if name not in builtins.BUILDERS:
            near = difflib.get_close_matches(name, list(builtins.BUILDERS) + list(self.program.fns), n=1)
            raise TdslTypeError(f"unknown function '{name}'", self.loc(name_tok),
                                hint=f"did you mean '{near[0]}'?" if near else None)
        if name in ("max", "min") and len(args) > 1 and isinstance(args[1], Node) and not _is_axis(args[1]):
            operands = [self.text_of(a.children[0]) for a in args_tree.children[:2]]
            raise builtins.reduction_given_a_value(name, loc, operands)
        return builtins.call(name, args, kwargs, loc)

    def parameter_names(self, name: str) -> list[str] | None:
        """The names a call of `name` takes as keywords; None if `name` is no function."""
        if name in self.program.fns:
            return [str(p.children[0]) for p in self.program.fns[name].children[1].children]
        if name == "grad":
            return []
        return builtins.param_names(name) if name in builtins.BUILDERS else None

    def check_keyword(self, name: str, arg: Tree, call: Tree) -> None:
        """`f(y = 1)` where f has no parameter y: a comparison was likely meant (`y == 1`)."""
        key = str(arg.children[0])
        names = self.parameter_names(name)
        if names is None or key in names:
            return
        if name == "grad":
            message = f"grad takes no keyword arguments (got '{key}')"
        elif name in self.program.fns:
            message = f"{name}() has no parameter '{key}' (it takes {', '.join(names) or 'none'})"
        else:
            message = f"{name}() has no argument '{key}' (it takes {', '.join(names)})"
        near = difflib.get_close_matches(key, names, n=1)
        hint = f"did you mean '{near[0]}'?" if near else self.comparison_hint(arg, name)
        raise TdslTypeError(message, self.loc(call), hint=hint)

    def comparison_hint(self, arg: Tree, name: str, compared_only: bool = False) -> str | None:
        """The hint for `NAME = expr` as an argument where `NAME == expr` may have been meant; with
        `compared_only`, only if NAME is no parameter of `name` or is a value in scope."""
        key, expr = arg.children
        if compared_only and str(key) in (self.parameter_names(name) or []) and self.lookup(str(key)) is None:
            return None
        value = self.text_of(expr)
        value = value if len(value) <= 40 else value[:36].rstrip() + " ..."
        return f"'{key} = {value}' passes a keyword argument named {key}; to compare, write '{key} == {value}'"

    def text_of(self, tree) -> str:
        """The source text of `tree` on one line (a hint quotes it)."""
        meta = getattr(tree, "meta", tree)
        return " ".join(self.program.text[meta.start_pos:meta.end_pos].split())


def _is_axis(value: Node) -> bool:
    try:
        builtins.static_axes(value, None)
    except TdslTypeError:
        return False
    return True


def nonnegative_in_loops(dim: Dim, program: Program) -> bool:
    """Whether `dim` is never negative, knowing each loop index's least value (`i - 1` in the
    body of `for i in range(1, n)`): each index i is written i + least(i), with i >= 0."""
    if is_nonnegative(dim):
        return True
    lower = {v: Dim.of(v) + program.loop_lower[v] for v in dim.variables() if v in program.loop_lower}
    try:
        return bool(lower) and is_nonnegative(_substitute(dim, lower))
    except DimTooComplex:   # not provable, then: the value is checked at run time
        return False


def _substitute(dim: Dim, values: dict) -> Dim:
    """`dim` with each size variable in `values` replaced by its dim expression."""
    total = Dim.of(0)
    for mono, coef in dim.terms:
        product = Dim.of(coef)
        for atom in mono:
            if isinstance(atom, str):
                product = product * values.get(atom, Dim.of(atom))
            else:
                product = product * (_substitute(atom.expr, values) // atom.divisor)
        total = total + product
    return total


_MAX_INT_DIGITS = 309  # the largest f64, about 1.8e308, has 309 digits


def _over_float_max(value: int) -> bool:
    try:
        float(value)
    except OverflowError:
        return True
    return False


def _abbreviate(digits: str) -> str:
    return digits if len(digits) <= 24 else f"{digits[:10]}...{digits[-4:]} ({len(digits)} digits)"


def _negate(value):
    return tuple(_negate(v) for v in value) if isinstance(value, tuple) else -value


def _nesting(t: Tree) -> int:
    """How many array literals are nested in `t` (1 for `[1, 2]`), along its first elements."""
    depth = 0
    while isinstance(t, Tree) and t.data == "array_lit":
        depth, t = depth + 1, t.children[0]
    return depth


def _rectangular_shape(values) -> tuple[int, ...] | None:
    """The shape of nested lists whose every level has equal lengths, or None if ragged."""
    if not isinstance(values, list):
        return ()
    shapes = {_rectangular_shape(v) for v in values}
    if len(shapes) != 1 or None in shapes:
        return None
    return (len(values),) + shapes.pop()


def _flatten(values):
    for v in values:
        if isinstance(v, list):
            yield from _flatten(v)
        else:
            yield v


def _map_nested(values, fn):
    return [_map_nested(v, fn) if isinstance(v, list) else fn(v) for v in values]


def check(tree: Tree, text: str, filename: str) -> list[FunctionGraph]:
    """Every function of a parsed program as a checked graph."""
    with deep_recursion(), paused_gc():
        return Program(tree, text, filename).function_graphs()

