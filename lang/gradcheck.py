"""`check_grad`: a compiled gradient against central finite differences."""
from __future__ import annotations

from weakref import WeakKeyDictionary

import numpy as np

from .autodiff import grad_nodes
from .bind import Binder
from .compiled import Function
from .dtypes import is_float
from .errors import TdslTypeError
from .graph import FunctionGraph, Node, make_attrs


# fn -> its gradient Function, built once: check_grad over many examples (hypothesis) reuses it,
# and it goes when fn does (the gradient holds fn's graph, never fn itself)
_GRADIENTS: WeakKeyDictionary[Function, Function] = WeakKeyDictionary()


def _gradient_graph(fn: Function, name: str) -> FunctionGraph:
    """The graph of fn's gradient with respect to each float parameter, called `name`."""
    graph = fn.graph
    loss = graph.outputs[0]
    if len(graph.outputs) != 1 or loss.ndim != 0 or not is_float(loss.dtype):
        raise TdslTypeError(f"check_grad needs a function with one float scalar result: {graph.signature}",
                            graph.loc)
    variables = [Node("param", p.dtype, p.shape, (), make_attrs(name=p.name), False, p.loc, p.name)
                 for p in graph.params if is_float(p.dtype)]
    if not variables:
        raise TdslTypeError(f"{graph.name} has no float parameter to differentiate", graph.loc)
    grads = grad_nodes(loss, variables, graph.loc)
    return FunctionGraph(name, graph.params, graph.size_vars, tuple(grads),
                         tuple_result=True, loc=graph.loc, file=graph.file)


def gradient_functions(fns) -> list[Function]:
    """Each of `fns`' gradient Function; those not built yet are built together, one module per target."""
    fns = list(fns)
    todo = [fn for fn in dict.fromkeys(fns) if fn not in _GRADIENTS]
    for target in dict.fromkeys(fn.target for fn in todo):
        group = [fn for fn in todo if fn.target == target]
        names = [f"{fn.graph.name}_grad" for fn in group]
        if len(set(names)) < len(names):   # functions of several modules may share a name
            names = [f"{name}{i}" for i, name in enumerate(names)]
        graphs = [_gradient_graph(fn, name) for fn, name in zip(group, names)]
        from .pipeline import load_graphs
        module = load_graphs(graphs, target, group[0].graph.file)
        for fn, name in zip(group, names):
            _GRADIENTS[fn] = module[name]
    return [_GRADIENTS[fn] for fn in fns]


def gradient_function(fn: Function) -> Function:
    """A function of fn's parameters giving its gradient for each float one; built once, then reused."""
    return gradient_functions([fn])[0]


def _numeric(fn: Function, arrays: list[np.ndarray], i: int, eps: float | None) -> np.ndarray:
    """d fn / d arrays[i] by central differences, one element at a time."""
    x = arrays[i]
    step = eps if eps is not None else float(np.finfo(x.dtype).eps) ** (1 / 3)
    out = np.zeros(x.shape, dtype=np.float64)
    for j in np.ndindex(x.shape):
        h = step * max(1.0, abs(float(x[j])))
        plus, minus = x.copy(), x.copy()
        plus[j] += h
        minus[j] -= h
        args_plus = arrays[:i] + [plus] + arrays[i + 1:]
        args_minus = arrays[:i] + [minus] + arrays[i + 1:]
        width = float(plus[j]) - float(minus[j])  # the step as the dtype rounded it
        out[j] = (float(fn(*args_plus)) - float(fn(*args_minus))) / width
    return out


def check_grad(fn: Function, *args, eps: float | None = None) -> dict[str, float]:
    """The worst relative error of `fn`'s compiled gradient per float parameter.

    `fn` is a compiled tdsl Function with one float scalar result; the gradient is
    built with `grad`, compiled for fn's target and compared at `args` with central
    differences of `fn` (step `eps`, by default the cube root of the dtype's epsilon,
    scaled by the element's magnitude). An element's error is
    |analytic - numeric| / max(|analytic|, |numeric|, 1): relative for large values,
    absolute below 1, where finite differences cannot do better.
    """
    arrays, _ = Binder(fn.graph).bind(args, {})
    arrays = [np.array(a) for a in arrays]  # scalars too become (0-d) arrays we can perturb
    analytic = gradient_function(fn)(*arrays)
    errors = {}
    float_params = [(i, p) for i, p in enumerate(fn.graph.params) if is_float(p.dtype)]
    for (i, param), got in zip(float_params, analytic):
        got = np.asarray(got, dtype=np.float64)
        numeric = _numeric(fn, arrays, i, eps)
        scale = np.maximum(np.maximum(np.abs(got), np.abs(numeric)), 1.0)
        errors[param.name] = float(np.max(np.abs(got - numeric) / scale, initial=0.0))
    return errors
