"""Section 12's convolutions and pooling, composed of slices, concatenation, reshapes and matmuls."""
from __future__ import annotations

from typing import Callable

BUILDERS: dict[str, Callable] = {}
