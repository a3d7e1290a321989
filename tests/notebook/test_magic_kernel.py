"""A notebook using the magic, executed by nbclient in a real kernel against the local service."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "tests" / "notebooks" / "magic_smoke.ipynb"

pytestmark = pytest.mark.models


def _outputs(cell: Any) -> list[Any]:
    return list(cell.get("outputs", []))


def test_magic_notebook_runs(local_service: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("GRIDLLM_API_URL", local_service.url)
    monkeypatch.setenv("GRIDLLM_HISTORY", str(tmp_path / "history.sqlite3"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}})
    client.execute()

    models_out = "".join(o.get("text", "") for o in _outputs(nb.cells[1]))
    assert "smollm2:135m  (local)" in models_out and "gemma3:270m  (local)" in models_out

    # the two-model cell: one output, the value, the answers side by side (the live grid cleared)
    outs = _outputs(nb.cells[3])
    (result,) = outs
    assert result.output_type == "execute_result"
    assert set(result.data) == {"text/html", "text/plain"}
    html = result.data["text/html"]
    assert "<table" in html and html.index("smollm2:135m") < html.index("gemma3:270m")
    assert result.data["text/plain"].startswith("smollm2:135m · completed")
    for cell in nb.cells:
        for o in _outputs(cell):
            # the saved outputs need no widget: none is left in them
            assert "application/vnd.jupyter.widget-view+json" not in o.get("data", {})

    # an expected error: one line, no traceback
    (err,) = _outputs(nb.cells[5])
    assert err.output_type == "error" and len(err.traceback) == 1
    assert "unknown model 'nosuch:1'" in err.traceback[0] and "smollm2:135m" in err.traceback[0]

    # --no-wait: the cell returned at once; its output was updated in place afterwards
    bg_outs = [o for o in _outputs(nb.cells[6]) if o.output_type == "display_data"]
    assert len(bg_outs) == 1 and bg_outs[0].data["text/plain"].startswith("smollm2:135m · completed")
    assert "<table" in bg_outs[0].data["text/html"]
    assert "completed" in _outputs(nb.cells[7])[-1].data["text/plain"]

    # --format code
    (code_out,) = _outputs(nb.cells[8])
    assert "<code" in code_out.data["text/html"] and code_out.data["text/plain"].split("\n", 1)[1].strip()

    history = "".join(o.get("text", "") for o in _outputs(nb.cells[9]))
    assert "smollm2:135m" in history
