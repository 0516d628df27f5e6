"""Philox-4x64-10 in NumPy: the reference implementation of the op table's random-number ops.

Word `w` of key `k`'s stream is word `w % 4` of the Philox-4x64-10 block with counter
`[w // 4 + 1, 0, 0, 0]` and key `[k, 0]`: NumPy's `numpy.random.Philox(key=k)`, which increments
its 256-bit counter before each block. Everything here is elementwise over uint64 arrays and
position-pure (a value depends on its key and position only), as the C and OpenCL helpers
(templates/c/prelude.c.j2, templates/opencl/prelude.cl.j2) are.
"""
from __future__ import annotations

import numpy as np

U64 = np.uint64
MASK32 = U64(0xFFFFFFFF)
MULTIPLIERS = (U64(0xD2E7470EE14C6C93), U64(0xCA5A826395121157))
WEYL = (U64(0x9E3779B97F4A7C15), U64(0xBB67AE8584CAA73B))
FOLD_COUNTER_WORD3 = 1   # fold_in's block has counter [i, 0, 0, 1]: one no stream reaches


def _mulhilo(a: np.uint64, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The high and low 64 bits of the 128-bit products a * b (unsigned), from 32-bit halves."""
    a_lo, a_hi = a & MASK32, a >> U64(32)
    b_lo, b_hi = b & MASK32, b >> U64(32)
    lo_lo, hi_lo, lo_hi, hi_hi = a_lo * b_lo, a_hi * b_lo, a_lo * b_hi, a_hi * b_hi
    middle = (lo_lo >> U64(32)) + (hi_lo & MASK32) + (lo_hi & MASK32)
    high = hi_hi + (hi_lo >> U64(32)) + (lo_hi >> U64(32)) + (middle >> U64(32))
    return high, a * b


def block(c0, c1, c2, c3, k0, k1) -> list[np.ndarray]:
    """The four output words of Philox-4x64-10 for counters (c0..c3) and keys (k0, k1), broadcast."""
    with np.errstate(over="ignore"):
        c = list(np.broadcast_arrays(*[np.asarray(v, dtype=U64) for v in (c0, c1, c2, c3, k0, k1)]))
        c = [v.copy() for v in c]
        k0, k1 = c[4], c[5]
        for _ in range(10):
            hi0, lo0 = _mulhilo(MULTIPLIERS[0], c[0])
            hi1, lo1 = _mulhilo(MULTIPLIERS[1], c[2])
            c[:4] = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
            k0, k1 = k0 + WEYL[0], k1 + WEYL[1]
    return c[:4]


def as_u64(x) -> np.ndarray:
    """Integers read as unsigned 64-bit (a negative i64 is its two's complement)."""
    x = np.asarray(x)
    return x if x.dtype == U64 else x.astype(np.int64).view(U64)


def words(key, position) -> np.ndarray:
    """Word `position` of `key`'s stream, as uint64 (broadcast)."""
    key, w = as_u64(key), as_u64(position)
    if key.ndim == 0 and w.size > 64:
        first, last = int(w.min()), int(w.max())
        if last - first < 4 * w.size:   # dense positions (a rand's): NumPy's own Philox makes them
            return _stream(int(key), first, last)[(w - U64(first)).astype(np.intp)]
    with np.errstate(over="ignore"):
        out = block((w >> U64(2)) + U64(1), 0, 0, 0, key, 0)
    lane = (w & U64(3)).astype(np.intp)
    return np.choose(lane, out)


def _stream(key: int, first: int, last: int) -> np.ndarray:
    """Words first..last of key's stream, from numpy.random.Philox (block b has counter b + 1)."""
    bitgen = np.random.Philox(key=key, counter=[first // 4, 0, 0, 0])
    return bitgen.random_raw(last - first // 4 * 4 + 1)[first % 4:]


def uniform_f64(key, position) -> np.ndarray:
    """NumPy's `random()` of f64: (word >> 11) * 2**-53."""
    return (words(key, position) >> U64(11)).astype(np.float64) * 2.0 ** -53


def uniform_f32(key, position) -> np.ndarray:
    """NumPy's `random(dtype=float32)`: the low, then the high 32-bit half of each word, (u32 >> 8) * 2**-24."""
    p = as_u64(position)
    word = words(key, p >> U64(1))
    half = np.where(p & U64(1), word >> U64(32), word & MASK32)
    return ((half >> U64(8)).astype(np.float32) * np.float32(2.0 ** -24)).astype(np.float32)


def bits(key, position) -> np.ndarray:
    """Word `position` of the stream as int64 (its two's complement)."""
    return words(key, position).view(np.int64)


def normal(key, position, dtype=np.float64) -> np.ndarray:
    """Box-Muller from words 2p and 2p + 1: sqrt(-2 log(1 - u1)) * cos(2 pi u2), computed in `dtype`;
    u = (word >> 11) * 2**-53 for f64, (word >> 40) * 2**-24 for f32."""
    dtype = np.dtype(dtype)
    shift, scale = (11, 2.0 ** -53) if dtype == np.float64 else (40, 2.0 ** -24)
    p = as_u64(position)
    with np.errstate(over="ignore"):
        w1, w2 = words(key, p * U64(2)), words(key, p * U64(2) + U64(1))
    u1 = (w1 >> U64(shift)).astype(dtype) * dtype.type(scale)
    u2 = (w2 >> U64(shift)).astype(dtype) * dtype.type(scale)
    one, two, tau = dtype.type(1), dtype.type(-2), dtype.type(2 * np.pi)
    return (np.sqrt(two * np.log(one - u1)) * np.cos(tau * u2)).astype(dtype)


def fold_in(key, i) -> np.ndarray:
    """A new key: word 0 of the block with counter [i, 0, 0, 1] and key [key, 0], as int64."""
    return block(as_u64(i), 0, 0, FOLD_COUNTER_WORD3, as_u64(key), 0)[0].view(np.int64)


def mulhi(a, b) -> np.ndarray:
    """The high 64 bits of the unsigned 128-bit product of two int64 values read as unsigned, as int64."""
    with np.errstate(over="ignore"):
        return np.asarray(_mulhilo(as_u64(a), as_u64(b))[0]).view(np.int64)
