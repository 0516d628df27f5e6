"""The Python builder API: symbolic values with Python operators, in the spirit of Theano.

`Var` wraps a graph node; every operation builds the same nodes the .tdsl front end
builds, with the location of the user's Python line, so errors point there.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from . import builtins, infer
from .dims import Dim
from .errors import Location, TdslError, TdslTypeError
from .graph import FunctionGraph, Node, Param, make_attrs, toposort
from .indexing import Sub, index


def caller_location(depth: int = 2) -> Location | None:
    """The user's Python file and line that called into the API."""
    frame = sys._getframe(depth)
    here = str(Path(__file__).parent)
    while frame is not None and str(Path(frame.f_code.co_filename).parent) == here:
        frame = frame.f_back
    if frame is None:
        return None
    return Location(frame.f_code.co_filename, frame.f_lineno, 1)


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


class Var:
    """A symbolic value: its dtype and symbolic shape are known before anything runs."""

    __array_priority__ = 1000  # NumPy defers to Var's reflected operators

    def __init__(self, node: Node):
        self.node = node

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
        raise TdslError("a symbolic value has no truth value until it is computed; use where() or and/or ops")

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


def _sub(key, loc) -> Sub:
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


def function(inputs, outputs, target: str = "c", name: str = "f"):
    """Compile symbolic `outputs` as a function of `inputs`, like theano.function."""
    from .pipeline import load_graphs
    graph = build_graph(inputs if isinstance(inputs, Var) else list(inputs), outputs, name)
    return load_graphs([graph], target, name)[name]


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
        return Var(node)
    call.__name__ = name
    call.__qualname__ = name
    call.__doc__ = f"The tdsl builtin {name}({', '.join(builtins.param_names(name))})."
    return call
