"""examples/tour.ipynb runs top to bottom in a real kernel (nbclient and ipykernel), as a user's
Jupyter would run it: the `%%tdsl` magic, calls, explain, a located error, the Python builder."""
from __future__ import annotations

import os
import re

import pytest

from conftest import IN_CI, require_target

try:
    import nbformat
    from nbclient import NotebookClient
    import ipykernel  # noqa: F401 - the kernel nbclient starts
except ImportError:
    if IN_CI:
        raise   # nbclient, nbformat and ipykernel are in the `test` extra
    pytest.skip("nbclient, nbformat or ipykernel is not installed", allow_module_level=True)

TOUR = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "tour.ipynb")


def text_of(cell) -> tuple[str, str]:
    """(stdout and results, stderr) of an executed cell."""
    out, err = [], []
    for o in cell.outputs:
        if o.output_type == "stream":
            (err if o.name == "stderr" else out).append(o.text)
        elif o.output_type == "execute_result":
            out.append(o.data.get("text/plain", ""))
        elif o.output_type == "error":
            raise AssertionError(f"cell failed: {o.ename}: {o.evalue}")
    return "".join(out), "".join(err)


def test_the_tour_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    require_target("c")
    monkeypatch.setenv("TDSL_CACHE_DIR", str(tmp_path / "cache"))   # the kernel inherits it
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    nb = nbformat.read(TOUR, as_version=4)
    NotebookClient(nb, timeout=240, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    cells = [c for c in nb.cells if c.cell_type == "code"]
    texts = [text_of(c) for c in cells]
    everything = "\n".join(out for out, _ in texts)
    assert "<tdsl.Module <cell 2> target=c: predict, loss, step>" in everything
    accuracy = float(re.search(r"accuracy (\d\.\d+)", everything).group(1))
    assert accuracy >= 0.9
    assert "value  p: f32[n]  (line 6)" in everything
    errors = [err for _, err in texts if "error:" in err]
    assert len(errors) == 1 and "do not broadcast" in errors[0] and "^" in errors[0]
    assert all("Traceback" not in err for _, err in texts)
    assert "[-1.,  0.,  1.]" in everything and "norm(v: f32[n]) -> f32 5.0" in everything
