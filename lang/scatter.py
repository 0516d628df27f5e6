"""Section 12's scatters and gathers along an axis: scatter_add, take_along_axis."""
from __future__ import annotations

from typing import Callable

BUILDERS: dict[str, Callable] = {}
