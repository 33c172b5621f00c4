"""The notebooks are stored without outputs and run from top to bottom without an error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

FOLDER = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = {
    "quickstart": ("meta_arbiter", "override_rate_when_called"),
    "threshold_sweep": ("PBO", "deflated Sharpe of the best"),
    "live_log_replay": ("compared", "mismatching"),
}
#: figures each notebook draws inline, at least
FIGURES = {"quickstart": 0, "threshold_sweep": 2, "live_log_replay": 0}


def kernel_environment() -> dict[str, str]:
    """The environment a user's kernel has: the test run's headless matplotlib backend is
    left out, so figures render inline as they do in Jupyter."""
    return {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}


def images(notebook) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )


def outputs_text(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif "data" in output:
                parts.append(str(output.data.get("text/plain", "")))
    return "\n".join(parts)


def test_every_notebook_is_listed_and_stored_clean():
    assert {path.stem for path in FOLDER.glob("*.ipynb")} == set(NOTEBOOKS)
    for name in NOTEBOOKS:
        notebook = nbformat.read(FOLDER / f"{name}.ipynb", as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_runs(name):
    notebook = nbformat.read(FOLDER / f"{name}.ipynb", as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(FOLDER)}}
    )
    client.execute(env=kernel_environment())
    text = outputs_text(notebook)
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]
    assert errors == []
    for expected in NOTEBOOKS[name]:
        assert expected in text, f"{name}: {expected!r} not in the outputs"
    assert images(notebook) >= FIGURES[name], f"{name}: figures missing from the outputs"


def test_a_notebook_executes_to_html_with_its_figures(tmp_path):
    # what a user runs: jupyter nbconvert --to html --execute, from the installed extras
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "nbconvert",
        "--to",
        "html",
        "--execute",
        "--ExecutePreprocessor.timeout=600",
        "--output-dir",
        str(tmp_path),
        str(FOLDER / "threshold_sweep.ipynb"),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, env=kernel_environment(), cwd=FOLDER, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    page = (tmp_path / "threshold_sweep.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64") >= FIGURES["threshold_sweep"]
