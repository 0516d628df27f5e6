"""The Python builder API: symbolic values with Python operators, in the spirit of Theano.

`Var` wraps a graph node; every operation builds the same nodes the .tdsl front end
builds, with the location of the user's Python line, so errors point there.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import linecache
import os
import re
import sys
from functools import lru_cache

import numpy as np

from . import builtins, infer
from .dims import Dim
from .errors import Location, TdslError, TdslTypeError
from .graph import REGION_OPS, FunctionGraph, Node, Param, Region, make_attrs, toposort
from .indexing import Sub, index


def caller_location(depth: int = 2) -> Location | None:
    """The user's Python line that called into the API: the first frame outside tdsl's own
    files, with its file, line, the column of the call or operator that is running there
    (1 where Python does not say) and the line's text, so an error shows it with a caret."""
    frame = sys._getframe(depth)
    own = _own_folders()
    while frame is not None and os.path.dirname(frame.f_code.co_filename) in own:
        frame = frame.f_back
    if frame is None:
        return None
    code, line = frame.f_code, frame.f_lineno
    text = linecache.getline(code.co_filename, line, frame.f_globals).rstrip("\r\n")
    col, end_col = 1, None
    positions = _positions(code)
    unit = frame.f_lasti // 2   # positions are per 2-byte code unit
    if positions and 0 <= unit < len(positions):
        first, last, start, stop = positions[unit]
        if first == line and start is not None:
            col = _characters(text, start) + 1 if text else start + 1
            if text and last == line and stop is not None and stop > start:
                end_col = _characters(text, stop) + 1
    return Location(code.co_filename, line, col, text, end_col)


@lru_cache(maxsize=1)
def _own_folders() -> frozenset[str]:
    """The folders of tdsl's modules (the package, its code generators, its grammar)."""
    folders = {os.path.dirname(__file__)}
    for package in ("tdsl.codegen", "tdsl.grammar"):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin:
            folders.add(os.path.dirname(spec.origin))
    return frozenset(folders)


@lru_cache(maxsize=256)
def _positions(code) -> tuple | None:
    """(line, end line, column, end column) of each code unit of `code`, Python 3.11's
    co_positions (columns in UTF-8 bytes); None before 3.11."""
    positions = getattr(code, "co_positions", None)
    return tuple(positions()) if positions is not None else None


def _characters(text: str, offset: int) -> int:
    """The number of characters in the first `offset` UTF-8 bytes of `text`."""
    return len(text.encode("utf-8")[:offset].decode("utf-8", errors="ignore"))


def _unwrap(value):
    if isinstance(value, Var):
        return value.node
    if isinstance(value, tuple):
        return tuple(_unwrap(v) for v in value)
    if isinstance(value, list) and any(isinstance(v, Var) for v in value):
        return tuple(_unwrap(v) for v in value)
    return value


def _wrap(value):
    if isinstance(value, Node):
        return Var(value)
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    return value


def _binary(op_name: str, reflected: bool = False):
    def method(self, other):
        loc = caller_location()
        a, b = self.node, builtins.as_node(_unwrap(other), loc)
        if reflected:
            a, b = b, a
        if op_name == "matmul":
            return Var(infer.matmul(a, b, loc))
        return Var(infer.elementwise(op_name, [a, b], loc))
    return method


# When each node was first wrapped in a Var (a serial number, kept on the node object itself):
# a loop or branch body built in Python captures the values of Vars made before it (`_capture`).
_VAR_SERIAL = itertools.count()
_SERIAL_ATTR = "_tdsl_var_serial"


class Var:
    """A symbolic value: its dtype and symbolic shape are known before anything runs."""

    __array_priority__ = 1000  # NumPy defers to Var's reflected operators

    def __init__(self, node: Node):
        self.node = node
        if _SERIAL_ATTR not in vars(node):
            object.__setattr__(node, _SERIAL_ATTR, next(_VAR_SERIAL))

    @property
    def dtype(self) -> str:
        return self.node.dtype

    @property
    def shape(self) -> tuple:
        """The symbolic shape: ints for known sizes, strings for size-variable expressions."""
        return tuple(d.const if d.is_const else str(d) for d in self.node.shape)

    @property
    def ndim(self) -> int:
        return self.node.ndim

    @property
    def name(self) -> str | None:
        return self.node.name or (self.node.attr("name") if self.node.op == "param" else None)

    @property
    def T(self) -> "Var":
        return Var(builtins.transpose(caller_location(), self.node))

    # -- NumPy's methods: each is the builtin of the same name (`x.sum(axis=0)` is `sum(x, axis=0)`)
    def sum(self, axis=None, dtype=None, out=None, keepdims=False) -> "Var":
        return self._typed_reduction("sum", axis, dtype, out, keepdims)

    def prod(self, axis=None, dtype=None, out=None, keepdims=False) -> "Var":
        return self._typed_reduction("prod", axis, dtype, out, keepdims)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False) -> "Var":
        return self._typed_reduction("mean", axis, dtype, out, keepdims)

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False) -> "Var":
        return self._statistic("var", axis, dtype, out, ddof, keepdims)

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False) -> "Var":
        return self._statistic("std", axis, dtype, out, ddof, keepdims)

    def max(self, axis=None, out=None, keepdims=False, initial=None) -> "Var":
        return self._method("max", out, axis=axis, keepdims=keepdims, initial=initial)

    def min(self, axis=None, out=None, keepdims=False, initial=None) -> "Var":
        return self._method("min", out, axis=axis, keepdims=keepdims, initial=initial)

    def any(self, axis=None, out=None, keepdims=False) -> "Var":
        return self._method("any", out, axis=axis, keepdims=keepdims)

    def all(self, axis=None, out=None, keepdims=False) -> "Var":
        return self._method("all", out, axis=axis, keepdims=keepdims)

    def argmax(self, axis=None, out=None, *, keepdims=False) -> "Var":
        return self._method("argmax", out, axis=axis, keepdims=keepdims)

    def argmin(self, axis=None, out=None, *, keepdims=False) -> "Var":
        return self._method("argmin", out, axis=axis, keepdims=keepdims)

    def cumsum(self, axis=None, dtype=None, out=None) -> "Var":
        """NumPy's `cumsum`, where the builtin exists (section 12's cumulative sums)."""
        if "cumsum" not in builtins.BUILDERS:
            raise TdslTypeError("cumsum is not a builtin of this tdsl version", caller_location())
        x = self if dtype is None else self.astype(dtype)
        return x._method("cumsum", out, axis=axis)

    def reshape(self, *shape, order="C") -> "Var":
        """`x.reshape(2, 3)` or `x.reshape((2, 3))`; sizes may be size-variable names and one -1."""
        if order != "C":
            raise TdslTypeError(f"reshape supports only order='C', not {order!r}", caller_location())
        if not shape:
            raise TdslTypeError("reshape needs a shape, e.g. x.reshape(2, 3) or x.reshape(())", caller_location())
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return self._method("reshape", None, shape=shape)

    def transpose(self, *axes) -> "Var":
        """`x.transpose()` reverses the axes; `x.transpose(1, 0)` or `x.transpose((1, 0))` permutes them."""
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        return self._method("transpose", None, axes=tuple(axes) if axes else None)

    def astype(self, dtype) -> "Var":
        """A cast: `x.astype("f32")`, `x.astype(np.float32)`."""
        loc = caller_location()
        return Var(builtins.cast_to(builtins.static_dtype(dtype, loc))(loc, self.node))

    def _method(self, name: str, out, **kwargs) -> "Var":
        loc = caller_location()
        if out is not None:
            raise TdslTypeError(f"{name}: out= is not supported (values are immutable)", loc)
        kwargs = {k: _unwrap(v) for k, v in kwargs.items() if not (k == "initial" and v is None)}
        return Var(builtins.call(name, [self.node], kwargs, loc))

    def _typed_reduction(self, name: str, axis, dtype, out, keepdims) -> "Var":
        """sum/prod/mean with NumPy's `dtype=`: the input cast to it, and so the result."""
        x = self if dtype is None else self.astype(dtype)
        result = x._method(name, out, axis=axis, keepdims=keepdims)
        return result if dtype is None else result.astype(dtype)

    def _statistic(self, name: str, axis, dtype, out, ddof, keepdims) -> "Var":
        if not (isinstance(ddof, int) and ddof == 0):
            raise TdslTypeError(f"{name}: only ddof=0 is supported, not {ddof!r}", caller_location())
        return self._typed_reduction(name, axis, dtype, out, keepdims)

    def named(self, name: str) -> "Var":
        """The same value with a name, shown by explain() and returned by trace()."""
        return Var(self.node.with_name(name))

    def __repr__(self) -> str:
        label = f"{self.name}: " if self.name else ""
        shape = "(" + ", ".join(str(d) for d in self.node.shape) + ("," if self.ndim == 1 else "") + ")"
        return f"<tdsl.Var {label}{self.dtype}, {shape}>"

    def __iter__(self):
        # without this, Python would iterate through __getitem__ forever: no index is out of range
        raise TdslTypeError("a symbolic value cannot be iterated", caller_location())

    def __bool__(self):
        raise TdslError("a symbolic value has no truth value until it is computed; use where() or and/or ops",
                        caller_location())

    __hash__ = object.__hash__
    __add__, __radd__ = _binary("add"), _binary("add", True)
    __sub__, __rsub__ = _binary("sub"), _binary("sub", True)
    __mul__, __rmul__ = _binary("mul"), _binary("mul", True)
    __truediv__, __rtruediv__ = _binary("div"), _binary("div", True)
    __floordiv__, __rfloordiv__ = _binary("floordiv"), _binary("floordiv", True)
    __mod__, __rmod__ = _binary("mod"), _binary("mod", True)
    __pow__, __rpow__ = _binary("pow"), _binary("pow", True)
    __matmul__, __rmatmul__ = _binary("matmul"), _binary("matmul", True)
    __eq__, __ne__ = _binary("eq"), _binary("ne")
    __lt__, __le__ = _binary("lt"), _binary("le")
    __gt__, __ge__ = _binary("gt"), _binary("ge")
    __and__, __rand__ = _binary("and"), _binary("and", True)
    __or__, __ror__ = _binary("or"), _binary("or", True)

    def __neg__(self):
        return Var(infer.elementwise("neg", [self.node], caller_location()))

    def __abs__(self):
        return Var(infer.elementwise("abs", [self.node], caller_location()))

    def __pos__(self):
        if self.dtype == "bool":
            raise TdslTypeError("arithmetic on bool is not allowed (unary +)", caller_location())
        return self

    def __invert__(self):
        return Var(infer.elementwise("not", [self.node], caller_location()))

    def __getitem__(self, key):
        loc = caller_location()
        keys = key if isinstance(key, tuple) else (key,)
        if len(keys) == 1 and isinstance(keys[0], (Var, list)):
            return Var(infer.take(self.node, builtins.as_node(_unwrap(keys[0]), loc), 0, loc))
        return Var(index(self.node, [_sub(k, loc) for k in keys], loc))

    @property
    def at(self) -> "_At":
        """Functional indexed updates, as JAX's: `x.at[idx].set(v)` is a new Var equal to `x`
        with `x[idx]` replaced by `v` (`x` itself never changes); also `.add(v)`, `.multiply(v)`,
        `.divide(v)` and `.get()`. `idx` is what `x[...]` takes, integer Vars included."""
        return _At(self)


class _At:
    """`x.at`: subscripting it names the region an update replaces."""

    __slots__ = ("_var",)

    def __init__(self, var: Var):
        self._var = var

    def __getitem__(self, key) -> "_AtIndex":
        return _AtIndex(self._var, key)

    def __repr__(self) -> str:
        return f"<tdsl.Var.at of {self._var!r}>"


class _AtIndex:
    """`x.at[idx]`: its methods give the updated copy of `x`."""

    __slots__ = ("_var", "_key")

    def __init__(self, var: Var, key):
        self._var, self._key = var, key

    def _subs(self, loc) -> list[Sub]:
        keys = self._key if isinstance(self._key, tuple) else (self._key,)
        return [_sub(k, loc) for k in keys]

    def get(self) -> Var:
        """`x[idx]`."""
        return Var(index(self._var.node, self._subs(caller_location()), caller_location()))

    def set(self, value) -> Var:
        """A copy of `x` with `x[idx]` replaced by `value` (broadcast; it must cast safely to
        `x`'s dtype, as in `x[idx] = value` of the language)."""
        from .updates import set_item
        loc = caller_location()
        return Var(set_item(self._var.node, self._subs(loc), builtins.as_node(_unwrap(value), loc), loc))

    def _combine(self, op: str, value) -> Var:
        from .updates import set_item
        loc = caller_location(3)
        subs = self._subs(loc)
        current = index(self._var.node, subs, loc)
        new = infer.elementwise(op, [current, builtins.as_node(_unwrap(value), loc)], loc)
        return Var(set_item(self._var.node, subs, new, loc))

    def add(self, value) -> Var:
        """`x[idx] + value` written back: the language's `x[idx] += value` (with repeated indices
        in an integer-array subscript the last write wins, as in NumPy; JAX accumulates)."""
        return self._combine("add", value)

    def multiply(self, value) -> Var:
        """`x[idx] * value` written back (`x[idx] *= value`)."""
        return self._combine("mul", value)

    def divide(self, value) -> Var:
        """`x[idx] / value` written back (`x[idx] /= value`)."""
        return self._combine("div", value)


def _sub(key, loc) -> Sub:
    if isinstance(key, (Var, list)):   # a run-time subscript: an integer scalar, or an integer array
        node = builtins.as_node(_unwrap(key), loc)
        from .dtypes import kind
        if kind(node.dtype) != "int":
            raise TdslTypeError(f"an index must hold integers, not {node.type_str}", loc)
        return Sub("dyn", value=node) if node.ndim == 0 else Sub("array", value=node)
    if key is None:
        return Sub("none")
    if key is Ellipsis:
        return Sub("ellipsis")
    if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        return Sub("int", start=int(key))
    if isinstance(key, slice):
        for part in (key.start, key.stop, key.step):
            if part is not None and not isinstance(part, int):
                raise TdslTypeError("slice bounds must be Python integers", loc)
        return Sub("slice", key.start, key.stop, key.step)
    raise TdslTypeError(f"cannot index with {key!r}", loc)


def scalar(name: str, dtype: str = "f64") -> Var:
    """A symbolic scalar parameter."""
    return tensor(name, dtype, ())


def tensor(name: str, dtype: str = "f64", shape=()) -> Var:
    """A symbolic array parameter: `tensor("x", "f32", ("n", "k"))`."""
    loc = caller_location()
    dtype = builtins.static_dtype(dtype, loc)
    if isinstance(shape, (int, str)):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise TdslTypeError(f"a shape is a tuple of sizes and size-variable names, not {shape!r}", loc)
    for d in shape:
        is_size = isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) and 0 <= d < 2**63
        if not (is_size or is_name(d)):
            raise TdslTypeError(f"a parameter's dims must be sizes or size-variable names, not {d!r}", loc)
    dims = tuple(Dim.of(d if isinstance(d, str) else int(d)) for d in shape)
    if not is_name(name):
        raise TdslTypeError(f"{name!r} is not a valid name", loc)
    return Var(Node("param", dtype, dims, (), make_attrs(name=name), False, loc, name))


def is_name(name) -> bool:
    """Whether `name` is a tdsl name (`[A-Za-z_][A-Za-z0-9_]*`): only such names reach generated code."""
    return isinstance(name, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is not None


def build_graph(inputs, outputs, name: str = "f") -> FunctionGraph:
    """A FunctionGraph from parameter Vars and result Vars (one, or a tuple/list)."""
    loc = caller_location(3)
    if not is_name(name):
        raise TdslTypeError(f"{name!r} is not a valid function name", loc)
    if not isinstance(inputs, (tuple, list)):
        raise TdslTypeError("function inputs are a list of tdsl.scalar or tdsl.tensor values", loc)
    tuple_result = isinstance(outputs, (tuple, list))
    outs = [builtins._strong(builtins.as_node(_unwrap(o), loc), loc) for o in (outputs if tuple_result else [outputs])]
    params, size_vars, seen = [], [], set()
    for v in inputs:
        if not isinstance(v, Var) or v.node.op != "param":
            raise TdslTypeError("function inputs must be tdsl.scalar or tdsl.tensor values", loc)
        pname = v.node.attr("name")
        if pname in seen:
            raise TdslTypeError(f"two inputs are named '{pname}'", loc)
        seen.add(pname)
        params.append(Param(pname, v.dtype, v.node.shape, v.node.loc))
        for d in v.node.shape:
            if not d.is_const and str(d) not in size_vars:
                size_vars.append(str(d))
    infer.check_literals(outs)   # a big Python int meeting an integer value
    reachable = toposort(outs)
    for node in reachable:
        if node.op == "param" and node.attr("name") not in seen:
            raise TdslTypeError(f"the result depends on '{node.attr('name')}', which is not an input", loc)
        if node.op == "sizevar" and node.attr("name") not in size_vars:
            raise TdslTypeError(f"size variable '{node.attr('name')}' is not bound by any input", loc)
    for node in reachable:
        for d in node.shape:
            missing = [v for v in d.variables() if v not in size_vars]
            if missing:
                raise TdslTypeError(f"size variable '{missing[0]}' is not bound by any input", loc)
    named = tuple((n.name, n) for n in reachable if n.name and n.op != "param")
    return FunctionGraph(name, tuple(params), tuple(size_vars), tuple(outs), named,
                         tuple_result=tuple_result, loc=loc, file=loc.file if loc else "<python>")


def function(inputs, outputs, target: str = "c", name: str = "f", debug: bool | None = None,
             nan_guard: bool | None = None):
    """Compile symbolic `outputs` as a function of `inputs`, like theano.function. `debug`: a
    debug build, its code named by the Python lines that built it (None: TDSL_DEBUG);
    `nan_guard`: every call guarded (None: TDSL_NAN_GUARD); docs/debugging.md."""
    from .pipeline import load_graphs
    graph = build_graph(inputs if isinstance(inputs, Var) else list(inputs), outputs, name)
    return load_graphs([graph], target, name, debug=debug, nan_guard=nan_guard)[name]


def grad(cost, *wrt):
    """The symbolic gradient of a float scalar `cost` with respect to each of `wrt`."""
    from .autodiff import grad_nodes
    loc = caller_location()
    grads = grad_nodes(builtins.as_node(_unwrap(cost), loc), [_unwrap(w) for w in wrt], loc)
    return _wrap(grads[0]) if len(grads) == 1 else tuple(_wrap(g) for g in grads)


def make_builtin(name: str):
    """`tdsl.<name>`: the builtin of the language, on Vars and array-likes."""
    def call(*args, **kwargs):
        loc = caller_location()
        node = builtins.call(name, [_unwrap(a) for a in args], {k: _unwrap(v) for k, v in kwargs.items()}, loc)
        return _wrap(node)   # a Var, or a tuple of them (top_k)
    call.__name__ = name
    call.__qualname__ = name
    call.__doc__ = f"The tdsl builtin {name}({', '.join(builtins.param_names(name))})."
    return call


# -- control flow (LANGUAGE.md section 11): JAX's fori_loop, while_loop and cond ------------

_BLOCK_TAGS = itertools.count(1)


def _carry_parts(value, loc, what: str):
    """The values of a carry or of a branch's result (one value, or a tuple/list of them) as nodes,
    and a function that packs Vars back into the same structure."""
    if isinstance(value, (tuple, list)):
        nodes = [builtins.as_node(_unwrap(v), loc) for v in value]
        kind_ = type(value)
        return nodes, (lambda vars_: kind_(vars_))
    if value is None:
        raise TdslTypeError(f"{what} is None; it must be a value, or a tuple or list of values", loc)
    return [builtins.as_node(_unwrap(value), loc)], (lambda vars_: vars_[0])


def _outputs(value, count: int, loc, what: str) -> list[Node]:
    """What a body returned, as `count` nodes (the carry's structure)."""
    parts = list(value) if isinstance(value, (tuple, list)) else [value]
    if len(parts) != count or (count != 1 and not isinstance(value, (tuple, list))):
        raise TdslTypeError(f"{what} returned {len(parts)} value{'s' if len(parts) != 1 else ''}, "
                            f"but the carry holds {count}", loc)
    return [builtins.as_node(_unwrap(p), loc) for p in parts]


def _placeholder(name: str, dtype: str, shape, weak: bool, loc) -> Node:
    """A body parameter: a param node with a `block` tag of its own, as the front end makes."""
    attrs = make_attrs(name=name, block=f"py{next(_BLOCK_TAGS)}")
    return Node("param", dtype, tuple(shape), (), attrs, weak, loc, name)


def _capture(holders: list[Node], roots: list[Node], mark: int, loc):
    """The values a body reads from outside it become parameters of the body, as the front end's
    captures: the enclosing graph's parameters, and every value of a Var made before the body
    was called (`mark`), which is computed outside the body, once. What the body computed
    stays in it, whatever it depends on (a branch computes only when it is taken); values built
    from literals and sizes alone are left as they are. Returns (roots rebuilt over the new
    parameters, those parameters, the outer values they stand for, in order of first use)."""
    tags = {h.attr("block") for h in holders}

    def outer(node: Node) -> bool:
        if node.op == "param":
            return node.attr("block") not in tags
        return vars(node).get(_SERIAL_ATTR, mark) < mark

    order = toposort(roots, leaf=outer)   # the body's nodes, stopping at outer values
    taken = {h.attr("name") for h in holders}
    new: dict[int, Node] = {}
    rebuilt: dict[int, Node] = {}
    outside: list[Node] = []
    params: list[Node] = []
    closed: set[int] = set()
    for node in order:
        if node.op != "param" and not outer(node) and node.op not in REGION_OPS \
                and all(id(i) in closed for i in node.inputs):
            closed.add(id(node))   # literals and sizes only: stays in the body as it is
            continue
        if not outer(node):
            inputs = tuple(new.get(id(i)) or rebuilt.get(id(i)) or i for i in node.inputs)
            if any(a is not b for a, b in zip(inputs, node.inputs)):
                rebuilt[id(node)] = Node(node.op, node.dtype, node.shape, inputs, node.attrs, node.weak,
                                         node.loc, node.name)
            continue
        base = node.attr("name") if node.op == "param" else node.name
        base = base if is_name(base) else "captured"
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        new[id(node)] = _placeholder(name, node.dtype, node.shape, node.weak, node.loc or loc)
        outside.append(node)
        params.append(new[id(node)])
    return [new.get(id(r)) or rebuilt.get(id(r)) or r for r in roots], params, outside


def _body_graph(label: str, params: list[Node], outputs: list[Node], loc) -> FunctionGraph:
    size_vars: list[str] = []
    reachable = toposort(outputs)
    for node in list(params) + reachable:
        names = [node.attr("name")] if node.op == "sizevar" else []
        for d in node.shape:
            names += list(d.variables())
        for v in names:
            if v not in size_vars:
                size_vars.append(v)
    clash = [p for p in params if p.attr("name") in size_vars]
    if clash:   # a parameter named like a size variable of the body: renamed apart (C names both)
        from .control_grad import _renamed, _unique, substitute
        names = _unique([p.attr("name") for p in params], size_vars)
        mapping = {p: _renamed(p, n) for p, n in zip(params, names) if p.attr("name") != n}
        outputs = substitute(list(outputs), mapping)
        params = [mapping.get(p, p) for p in params]
        reachable = toposort(outputs)
    named = tuple((n.name, n) for n in reachable if n.name and n.op != "param")
    return FunctionGraph(label, tuple(Param(p.attr("name"), p.dtype, p.shape, p.loc) for p in params),
                         tuple(size_vars), tuple(outputs), named, loc=loc,
                         file=loc.file if loc else "<python>")


def _region_loc(loc: Location | None) -> Location | None:
    """A region's location without the Python line's text: printers title a region by the text
    of its line (`for i in range(n)` in .tdsl) and a Python-built one by its builder's name."""
    return dataclasses.replace(loc, source_line="", end_col=None) if loc is not None else None


def _label(what: str, loc) -> str:
    return f"{what}@{loc.line}" if loc else what


def _settle_loop(what: str, inits: list[Node], build, loc):
    """Build a loop body until the carried types settle: a weak initial value (a Python number)
    takes the dtype the body gives it when it converts safely, as the front end does; any other
    change of dtype or shape is a TdslTypeError naming both types. `build(types)` returns
    (placeholders, outputs, extra roots, the Var serial before the body ran)."""
    from .control import _adapts, _strong_like, _types_equal
    types = list(inits)
    for _ in range(len(inits) + 2):
        holders, outputs, extra, mark = build(types)
        changed = False
        for k, (new, old) in enumerate(zip(outputs, types)):
            if _types_equal(new, old):
                continue
            if _adapts(old, new):
                types[k] = new
                changed = True
                continue
            which = f"carried value {k}" if len(inits) > 1 else "carried value"
            raise TdslTypeError(f"the {which} of {what} is {old.type_str} before the loop but the body "
                                f"returns {new.type_str}; a carried value keeps its dtype and shape", loc,
                                hint=f"cast with tdsl.{old.dtype}(...)" if old.shape == new.shape else None)
        if not changed:
            break
    outputs = [_strong_like(o, t, loc) for o, t in zip(outputs, types)]
    inits = [infer.cast(i, t.dtype, loc) for i, t in zip(inits, types)]
    return holders, outputs, extra, mark, types, inits


def _region_results(region: Region, inputs: list[Node], types: list[Node], loc) -> list[Var]:
    return [Var(Node(region.kind, t.dtype, t.shape, tuple(inputs), make_attrs(region=region, result=k),
                     t.weak, loc)) for k, t in enumerate(types)]


def _int_bound(value, what: str, loc) -> Node:
    """A loop bound: an integer scalar Var or number, or a size (a size-variable name such as
    `x.shape[0]`, or a Dim)."""
    from .control import _int_scalar
    if isinstance(value, str):
        if not is_name(value):
            raise TdslTypeError(f"{what} must be an integer scalar or a size-variable name, not {value!r}", loc)
        value = Dim.of(value)
    node = _int_scalar(builtins.as_node(_unwrap(value), loc), what, loc)
    return infer.cast(node, "i64", loc)


def _carry_names(count: int) -> list[str]:
    return ["carry"] if count == 1 else [f"carry{k}" for k in range(count)]


def fori_loop(lower, upper, body, init):
    """JAX's fori_loop: `carry = body(i, carry)` for i in range(lower, upper); the final carry.

    `lower` and `upper` are integer scalars (Python ints, Vars, or size-variable names such as
    `x.shape[0]`); `init` is one value or a tuple/list of them, and `body` returns the same
    structure with the same dtypes and shapes. `i` is a weak i64 Var (a negative one counts
    from the end when it indexes). Builds a `for` region, as `for i in range(lower, upper)`."""
    loc = caller_location()
    start = _int_bound(lower, "the lower bound of fori_loop", loc)
    stop = _int_bound(upper, "the upper bound of fori_loop", loc)
    inits, pack = _carry_parts(init, loc, "the init of fori_loop")

    def build(types):
        holders = [_placeholder("i", "i64", (), True, loc)] + [
            _placeholder(n, t.dtype, t.shape, t.weak, loc) for n, t in zip(_carry_names(len(types)), types)]
        mark = next(_VAR_SERIAL)
        out = body(Var(holders[0]), pack([Var(h) for h in holders[1:]]))
        return holders, _outputs(out, len(types), loc, "the body of fori_loop"), [], mark

    holders, outputs, _, mark, types, inits = _settle_loop("fori_loop", inits, build, loc)
    outputs, captured, outer = _capture(holders, outputs, mark, loc)
    graph = _body_graph(_label("fori_loop", loc), holders + captured, outputs, loc)
    region = Region("for", (graph,), len(inits), 1, holders[0].attr("name"), True, _region_loc(loc))
    return pack(_region_results(region, [start, stop] + inits + outer, types, loc))


def while_loop(cond_fun, body_fun, init):
    """JAX's while_loop: `while cond_fun(carry): carry = body_fun(carry)`; the final carry.

    `cond_fun` returns a bool scalar; `init` is one value or a tuple/list of them, and
    `body_fun` returns the same structure with the same dtypes and shapes. Builds a `while`
    region, as the `while` statement does (grad cannot go through it)."""
    loc = caller_location()
    from .control import _bool_scalar
    inits, pack = _carry_parts(init, loc, "the init of while_loop")

    def build(types):
        holders = [_placeholder(n, t.dtype, t.shape, t.weak, loc) for n, t in zip(_carry_names(len(types)), types)]
        mark = next(_VAR_SERIAL)
        c = cond_fun(pack([Var(h) for h in holders]))
        c = _bool_scalar(builtins.as_node(_unwrap(c), loc), "while_loop", loc)
        out = body_fun(pack([Var(h) for h in holders]))
        return holders, _outputs(out, len(types), loc, "the body of while_loop"), [c], mark

    holders, outputs, extra, mark, types, inits = _settle_loop("while_loop", inits, build, loc)
    roots, captured, outer = _capture(holders, outputs + extra, mark, loc)
    params = holders + captured
    label = _label("while_loop", loc)
    graphs = (_body_graph(label + ":cond", params, roots[-1:], loc), _body_graph(label, params, roots[:-1], loc))
    region = Region("while", graphs, len(inits), loc=_region_loc(loc))
    return pack(_region_results(region, inits + outer, types, loc))


def cond(pred, true_fun, false_fun, *operands):
    """JAX's cond: `true_fun(*operands)` if `pred` else `false_fun(*operands)`; only the taken
    branch runs. `pred` is a bool scalar; both branches return the same structure (one value,
    or a tuple/list) with the same dtypes and shapes. Builds an `if` region, as `if` does."""
    loc = caller_location()
    from .control import _adapts, _bool_scalar, _strong_like, _types_equal
    p = _bool_scalar(builtins.as_node(_unwrap(pred), loc), "cond", loc)
    ops = [builtins.as_node(_unwrap(o), loc) for o in operands]
    names = ["operand"] if len(ops) == 1 else [f"operand{k}" for k in range(len(ops))]
    holders = [_placeholder(n, o.dtype, o.shape, o.weak, loc) for n, o in zip(names, ops)]
    mark = next(_VAR_SERIAL)
    branches = []
    for fn, what in ((true_fun, "true"), (false_fun, "false")):
        out = fn(*[Var(h) for h in holders])
        parts, pack = _carry_parts(out, loc, f"the {what} branch of cond")
        branches.append((parts, pack, isinstance(out, (tuple, list))))
    (outs_t, pack, seq_t), (outs_f, _, seq_f) = branches
    if len(outs_t) != len(outs_f) or seq_t != seq_f:
        raise TdslTypeError(f"the branches of cond return different structures ({len(outs_t)} and "
                            f"{len(outs_f)} value{'s' if len(outs_f) != 1 else ''})", loc)
    types = []
    for k, (a, b) in enumerate(zip(outs_t, outs_f)):
        if _types_equal(a, b):
            types.append(a if not a.weak else b)
        elif _adapts(a, b):
            types.append(b)
        elif _adapts(b, a):
            types.append(a)
        else:
            which = f"result {k}" if len(outs_t) > 1 else "result"
            raise TdslTypeError(f"the {which} of cond is {a.type_str} in the true branch but {b.type_str} "
                                f"in the false branch; both branches must give the same dtype and shape", loc)
    outs_t = [_strong_like(v, t, loc) for v, t in zip(outs_t, types)]
    outs_f = [_strong_like(v, t, loc) for v, t in zip(outs_f, types)]
    roots, captured, outer = _capture(holders, outs_t + outs_f, mark, loc)
    params = holders + captured
    label = _label("cond", loc)
    graphs = (_body_graph(label + ":then", params, roots[:len(outs_t)], loc),
              _body_graph(label + ":else", params, roots[len(outs_t):], loc))
    region = Region("if", graphs, 0, loc=_region_loc(loc))
    results = _region_results(region, [p] + ops + outer, types, loc)
    return pack(results) if seq_t else results[0]
