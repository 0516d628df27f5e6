"""A call's inputs: sizes, values (with special ones), memory layouts, gather indices."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from .tree import dim_value, LARGE_SIZES, MAX_ELEMENTS, NP, Param, Program, SIZE_VARS, SMALL_SIZES


FLOAT_SPECIALS = (np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -1.0, 0.5, 1e6, -1e-7, 3e38)


LAYOUTS = ("C", "F", "strided", "reversed", "T")


@dataclass
class Inputs:
    """One call's arguments: the values, the size variables, and each array's memory layout."""

    args: dict
    sizes: dict
    layouts: dict


def pick_sizes(prog: Program, rng: random.Random, large: bool) -> dict:
    """Size-variable values: small (with zeros and ones) or large, at least what slices need most of the time."""
    sizes = {}
    for var in SIZE_VARS:
        size = rng.choice(LARGE_SIZES if large else SMALL_SIZES)
        if rng.random() < 0.9:
            size = max(size, prog.min_size.get(var, 0))
        sizes[var] = size
    for _ in range(20):   # keep every array under MAX_ELEMENTS: shrink the largest size variable
        biggest = max((math.prod(dim_value(d, sizes) for d in p.shape) for p in prog.params), default=0)
        if biggest <= MAX_ELEMENTS:
            break
        var = max(sizes, key=sizes.get)
        sizes[var] = max(prog.min_size.get(var, 0), sizes[var] // 4)
    return sizes


def values(dtype: str, shape: tuple, rng: np.random.Generator, special: bool):
    """Random values of a dtype, with special ones (NaN, inf, -0.0, integer limits) when asked."""
    if dtype == "bool":
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.startswith("i"):
        out = np.asarray(rng.integers(-5, 6, shape), NP[dtype])
        if special and out.size:
            info = np.iinfo(NP[dtype])
            mask = rng.random(shape) < 0.1
            out[mask] = rng.choice([info.min, info.max, 0, -1, 1], size=int(mask.sum()))
        return out
    out = np.asarray(rng.standard_normal(shape) * 1.5, NP[dtype])
    if special and out.size:
        mask = rng.random(shape) < 0.15
        out[mask] = rng.choice(FLOAT_SPECIALS, size=int(mask.sum()))
    return out


def with_layout(a: np.ndarray, layout: str) -> np.ndarray:
    """The same values in another memory layout (Fortran order, strides, negative strides)."""
    if a.ndim == 0 or layout == "C":
        return a
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided":
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if layout == "reversed":
        return np.ascontiguousarray(a[::-1])[::-1]
    return np.ascontiguousarray(a.T).T


def make_inputs(prog: Program, seed: int, large: bool = False, special: bool = False) -> Inputs:
    """One call's arguments for `prog`, from `seed`."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    sizes = pick_sizes(prog, rng, large) if prog.grad_of is None else {v: rng.randint(1, 4) for v in SIZE_VARS}
    args, layouts = {}, {}
    for p in prog.params:
        shape = tuple(dim_value(d, sizes) for d in p.shape)
        if p.values_in is not None:
            args[p.name] = nrng.integers(p.values_in[0], p.values_in[1] + 1, shape).astype(NP[p.dtype])
        elif p.index_for is not None:
            args[p.name] = index_values(p, shape, dim_value(p.index_for, sizes), nrng)
        elif prog.grad_of is not None:
            args[p.name] = nrng.uniform(-1.5, 1.5, shape).astype(NP[p.dtype])
        else:
            args[p.name] = values(p.dtype, shape, nrng, special)
        layouts[p.name] = rng.choice(LAYOUTS) if shape and rng.random() < 0.4 else "C"
        if not shape:
            args[p.name] = NP[p.dtype].type(args[p.name])
        else:
            args[p.name] = with_layout(args[p.name], layouts[p.name])
    return Inputs(args, sizes, layouts)


def index_values(p: Param, shape: tuple, length: int, rng: np.random.Generator):
    """Gather indices in [-length, length), rarely one out of range (tdsl must raise then)."""
    if length <= 0:   # an empty axis, or a dim like m - 2 below its minimum (the call must fail then)
        return np.zeros(shape, NP[p.dtype]) if rng.random() < 0.5 else np.ones(shape, NP[p.dtype])
    out = rng.integers(-length, length, shape).astype(NP[p.dtype])
    if out.size and rng.random() < 0.08:
        out.flat[rng.integers(out.size)] = rng.choice([length, -length - 1])
    return out
