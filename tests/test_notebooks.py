"""Run every example notebook top to bottom on the small generated data.

Each notebook runs in its own Jupyter kernel with the working directory in tmp_path.
TOWHEE_RECSYS_NOTEBOOK_DATA is unset, so the notebooks use "synthetic" data, and the
towhee_recsys location variables are unset, so each notebook makes its own temporary data
folder. TMPDIR points into tmp_path, so those folders are removed with it.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CELL_TIMEOUT = 600  # seconds per cell
# Variables that would point a notebook at other data, stores or plots than its own.
CLEARED_VARIABLES = (
    "TOWHEE_RECSYS_NOTEBOOK_DATA",
    "TOWHEE_RECSYS_NOTEBOOK_REDIS_URL",
    "TOWHEE_RECSYS_HOME",
    "TOWHEE_RECSYS_MODEL_DIR",
    "TOWHEE_RECSYS_MILVUS_URI",
    "TOWHEE_RECSYS_MILVUS_TOKEN",
    "TOWHEE_RECSYS_METADATA_URI",
    "TOWHEE_RECSYS_KEY_PREFIX",
)
# Redis keys of scale_out.ipynb, whose prefix is towhee_recsys_notebook_<random hex>:
NOTEBOOK_KEYS = "towhee_recsys_notebook_*"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it when running in CI (CI=true)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true, so this fails instead of skipping)")
    pytest.skip(reason)


def require(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError:
        unavailable(f"the notebook tests need {module_name}: pip install -e '.[test]'")


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def run_notebook(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **environment: str) -> None:
    """Execute examples/<name> in a new kernel, and fail with the error of the failing cell."""
    nbformat = require("nbformat")
    nbclient = require("nbclient")
    for variable in CLEARED_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    for variable, value in {"TMPDIR": str(tmp_path), "MPLBACKEND": "Agg", **environment}.items():
        monkeypatch.setenv(variable, value)

    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        # The kernel colours its tracebacks with ANSI escape codes, which only clutter a test report.
        message = ANSI_ESCAPE.sub("", str(error))
        pytest.fail(f"{name} failed:\n{message}", pytrace=False)


def saved_images(tmp_path: Path) -> list[str]:
    """Return the names of the plots that a synthetic run saved into its temporary folder."""
    return sorted(path.name for path in tmp_path.glob("towhee_recsys_images_*/*.png"))


def test_notebooks_have_no_outputs():
    nbformat = require("nbformat")
    for path in sorted(EXAMPLES.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(not cell.outputs for cell in code_cells), f"{path.name} has outputs; clear them"
        assert all(cell.execution_count is None for cell in code_cells), f"{path.name} has execution counts"


def test_notebooks_start_with_data_parameter():
    nbformat = require("nbformat")
    for path in sorted(EXAMPLES.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        first_code = next(cell for cell in notebook.cells if cell.cell_type == "code")
        assert 'DATA = os.environ.get("TOWHEE_RECSYS_NOTEBOOK_DATA", "synthetic")' in first_code.source, path.name


def test_quickstart_notebook(tmp_path, monkeypatch):
    committed = EXAMPLES / "images" / "quickstart_loss.png"
    before = digest(committed)
    run_notebook("quickstart.ipynb", tmp_path, monkeypatch)
    assert saved_images(tmp_path) == ["quickstart_loss.png"]
    assert digest(committed) == before


def test_own_towhee_pipeline_notebook(tmp_path, monkeypatch):
    run_notebook("own_towhee_pipeline.ipynb", tmp_path, monkeypatch)


def test_bring_your_own_data_notebook(tmp_path, monkeypatch):
    committed = EXAMPLES / "images" / "bring_your_own_data_categories.png"
    before = digest(committed)
    run_notebook("bring_your_own_data.ipynb", tmp_path, monkeypatch)
    assert saved_images(tmp_path) == ["bring_your_own_data_categories.png"]
    assert digest(committed) == before


def test_scale_out_notebook(tmp_path, monkeypatch, redis_server_url):
    # The redis_server_url fixture skips when Redis is unreachable, or fails when CI=true.
    from towhee_recsys.testing import MilvusServerProcess

    reason = MilvusServerProcess.unavailable_reason()
    if reason:
        unavailable(reason)
    import redis

    client = redis.Redis.from_url(redis_server_url)
    keys_before = set(client.scan_iter(match=NOTEBOOK_KEYS))
    run_notebook("scale_out.ipynb", tmp_path, monkeypatch, TOWHEE_RECSYS_NOTEBOOK_REDIS_URL=redis_server_url)
    keys_left = set(client.scan_iter(match=NOTEBOOK_KEYS)) - keys_before
    client.close()

    assert saved_images(tmp_path) == ["scale_out_latency.png"]
    assert not keys_left, f"the notebook left {len(keys_left)} Redis keys, such as {sorted(keys_left)[:3]}"
