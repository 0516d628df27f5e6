"""Section 12's cumulative sums and products, and sorting: cumsum, cumprod, sort, argsort, top_k."""
from __future__ import annotations

from typing import Callable

BUILDERS: dict[str, Callable] = {}
