"""Section 12's counter-based random numbers: rand, randint, bernoulli, randn, fold_in (Philox-4x64-10)."""
from __future__ import annotations

from typing import Callable

BUILDERS: dict[str, Callable] = {}
