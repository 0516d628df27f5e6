"""Section 12's composite builtins: einsum, norm, diff (and the consts inf, nan, pi, e in the front end)."""
from __future__ import annotations

from typing import Callable

BUILDERS: dict[str, Callable] = {}
