"""The user documentation is self-contained: README links resolve, the quick-start notebook runs."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_readme_refers_only_to_files_in_the_repository() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)\)", text)  # markdown links
    paths = re.findall(r"`((?:docs|protocols|benchmarks|tests)/[^`\s]*)`", text)  # `docs/x.md`, `protocols/`
    assert "docs/quickstart.ipynb" in paths and "docs/protocol.md" in paths
    missing = [p for p in [*links, *paths] if not p.startswith("http") and not (ROOT / p).exists()]
    assert missing == []
    assert "../" not in text and "shared" not in text


def test_quickstart_notebook_runs(tmp_path) -> None:
    """``docs/quickstart.ipynb`` executes from top to bottom (its outputs are not committed)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(ROOT / "docs" / "quickstart.ipynb", as_version=4)
    assert all(
        not cell.get("outputs") and cell.get("execution_count") is None
        for cell in notebook.cells
        if cell.cell_type == "code"
    )
    started = time.perf_counter()
    nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "docs")}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the plots were drawn inline
    assert time.perf_counter() - started < 120
