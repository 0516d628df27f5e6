"""Host-side pieces every compiled target's call path shares; NumPy only, so OUT.py embeds this file.

The C fast paths (fastcall.py, and `_callpath.c` through `REUSE_MIN_BYTES`) and the
OpenCL runtime (opencl_runtime.py, in tdsl and in a standalone OUT.py) recycle results
and check sizes with these.
"""
from __future__ import annotations

import os
import sys
import threading

import numpy as np

MAX_BYTES = 2**63 - 1     # NumPy's limit (intp): an array's nonzero dims times its item size
REUSE_MIN_BYTES = 1 << 20


def too_big(dims: list, itemsize: int) -> bool:
    """Whether an array of these dims cannot exist (nonzero dims times item size past MAX_BYTES)."""
    total = itemsize
    for d in dims:
        if d > 0:
            total *= d
    return total > MAX_BYTES


class Spare:
    """Results of a function kept after their calls, to be later calls' results once dropped.

    A large new array costs its pages: the kernel zeroes each on first touch (measured: 15-25%
    of a memory-bound kernel). When the caller has dropped an earlier result (only a slot
    refers to it) and its shape fits, the next call writes into it instead; a result still in
    use is never touched. Up to SPARES results are kept, so calls whose results live at once
    (the chunks of a Dask computation) each find one; a result over EXTRA_MAX bytes keeps
    only the first slot, so a large result is retained at most once. Results under
    REUSE_MIN_BYTES are not kept; `TDSL_REUSE_RESULTS=0` turns this off. codegen/_callpath.c
    does the same in C.
    """

    enabled = os.environ.get("TDSL_REUSE_RESULTS", "") != "0"
    SPARES = 4
    EXTRA_MAX = 64 << 20

    def __init__(self):
        self.slots: list = [None] * self.SPARES
        self.next = 0   # the slot a result replaces next when none is free
        self.lock = threading.Lock()   # calls from several threads never share an array

    def take(self, shape: tuple, dtype) -> np.ndarray:
        """A kept array the caller dropped, if it has this shape and dtype, else a new one (np.empty).

        Dropped arrays of another shape are let go (their memory goes back)."""
        with self.lock:
            for i in range(self.SPARES):   # (not enumerate: its reused tuple holds a reference)
                old = self.slots[i]
                # references when only the slot holds it: the slot, `old`, getrefcount's argument
                if old is None or sys.getrefcount(old) > 3:
                    continue
                self.slots[i] = None
                if old.shape == shape and old.dtype == dtype:
                    return old
        return np.empty(shape, dtype)

    def keep(self, arr) -> None:
        """Keep a NumPy result that is large enough in a free slot, else in place of one whose
        array the caller still holds (the latest results are kept)."""
        if not (self.enabled and isinstance(arr, np.ndarray) and arr.nbytes >= REUSE_MIN_BYTES):
            return
        last = self.SPARES if arr.nbytes <= self.EXTRA_MAX else 1
        with self.lock:
            if any(s is arr for s in self.slots):
                return
            free = [i for i in range(last) if self.slots[i] is None]
            if not free:   # one the caller holds, taken in turn: the latest results are kept
                turn = [(self.next + j) % last for j in range(last)]
                free = [i for i in turn if sys.getrefcount(self.slots[i]) > 2]
                if free:
                    self.next = (free[0] + 1) % self.SPARES
            if free:
                self.slots[free[0]] = arr
