"""Host-side pieces every compiled target's call path shares; NumPy only, so OUT.py embeds this file.

The C fast paths (fastcall.py, and `_callpath.c` through `REUSE_MIN_BYTES`) and the
OpenCL runtime (opencl_runtime.py, in tdsl and in a standalone OUT.py) recycle results
and check sizes with these.
"""
from __future__ import annotations

import os
import sys

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
    """One result of a function kept after a call, to be the next call's result once dropped.

    A large new array costs its pages: the kernel zeroes each on first touch (measured: 15-25%
    of a memory-bound kernel). When the caller has dropped the previous result (only this
    slot refers to it), the next call writes into it instead; a result still in use is never
    touched. Results under REUSE_MIN_BYTES are not kept; `TDSL_REUSE_RESULTS=0` turns this off.
    """

    enabled = os.environ.get("TDSL_REUSE_RESULTS", "") != "0"

    def __init__(self):
        self.slot: list = []

    def take(self, shape: tuple, dtype) -> np.ndarray:
        """The kept array if it is free and has this shape and dtype, else a new one (np.empty)."""
        if self.slot:
            try:
                old = self.slot.pop()   # atomic: two threads never take the same array
            except IndexError:
                old = None
            # two references: `old` and getrefcount's argument
            if old is not None and sys.getrefcount(old) == 2 and old.shape == shape and old.dtype == dtype:
                return old
        return np.empty(shape, dtype)

    def keep(self, arr) -> None:
        """Keep a NumPy result that is large enough, when the slot is empty."""
        if self.enabled and isinstance(arr, np.ndarray) and arr.nbytes >= REUSE_MIN_BYTES and not self.slot:
            self.slot.append(arr)
