"""bench/run.py keeps working: a quick run of two workloads on each compiled target prints its table."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_target

pytestmark = pytest.mark.slow   # a subprocess per target: left out of the quick `-m "not slow"` run

BENCH = Path(__file__).parent.parent / "bench" / "run.py"


def test_a_quick_benchmark_run_prints_agreeing_rows(compiled_target):
    require_target("c")
    out = subprocess.run([sys.executable, str(BENCH), "--quick", "--target", compiled_target, "--only", "W1,call", "--peers", "numexpr,jax"],
                         capture_output=True, text=True, timeout=600, env=dict(os.environ), check=True).stdout
    rows = [line for line in out.splitlines() if line.startswith("| W1") or line.startswith("| call")]
    assert len(rows) == 3, out
    assert not any("DIFFER" in row for row in rows), out
    if compiled_target != "c":
        assert "opencl / c" in out
