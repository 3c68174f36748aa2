"""Ingest killed with SIGKILL and resumed, and `towhee-recsys check` finding and repairing drift."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from towhee_recsys import recommend_pipeline
from towhee_recsys.data.synthetic import planted_dataset, write_csv_dataset
from towhee_recsys.model import ModelConfig, train
from towhee_recsys.settings import Settings
from towhee_recsys.stores import open_metadata_store, open_vector_store

CATALOG_SIZE = 160
BATCH_SIZE = 20


def run_cli(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TOWHEE_RECSYS_HOME": str(home)}
    script = Path(sys.executable).with_name("towhee-recsys")
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=env, cwd=home, timeout=timeout)


@pytest.fixture(scope="module")
def csv_files(tmp_path_factory) -> list[str]:
    paths = write_csv_dataset(planted_dataset(), tmp_path_factory.mktemp("csv"))
    return ["--ratings", str(paths["ratings"]), "--movies", str(paths["movies"]), "--users", str(paths["users"])]


@pytest.fixture
def home(tmp_path) -> Path:
    """A data folder with a trained model and nothing ingested yet."""
    config = ModelConfig(objective="rating", epochs=20, batch_size=256, learning_rate=0.01, seed=1)
    train(planted_dataset(), config, model_dir=tmp_path / "model", show_progress=False)
    return tmp_path


def kill_ingest_after(home: Path, csv_files: list[str], batches: int) -> None:
    """Start `towhee-recsys ingest` and SIGKILL it once `batches` batches are written."""
    env = {**os.environ, "TOWHEE_RECSYS_HOME": str(home)}
    script = Path(sys.executable).with_name("towhee-recsys")
    command = [str(script), "--verbose", "ingest", *csv_files, "--batch-size", str(BATCH_SIZE)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
                               cwd=home)
    written = 0
    try:
        for line in process.stderr:
            if "Ingested movies" in line:
                written += 1
                if written == batches:
                    process.send_signal(signal.SIGKILL)
                    break
    finally:
        process.kill()
        process.wait(timeout=60)
    assert written == batches
    assert process.returncode == -signal.SIGKILL


def store_counts(home: Path) -> tuple[int, int]:
    settings = Settings(home=str(home))
    vectors = open_vector_store(settings.milvus_uri, collection_name=settings.collection_name)
    metadata = open_metadata_store(settings.metadata_uri)
    try:
        return vectors.count(), metadata.count_movies()
    finally:
        vectors.close()
        metadata.close()


@pytest.mark.parametrize("batches", [1, 4, 7])
def test_killed_ingest_resumes(home, csv_files, batches):
    kill_ingest_after(home, csv_files, batches)

    interrupted = run_cli("check", home=home)
    assert interrupted.returncode == 8, interrupted.stderr
    assert "The last ingest did not finish" in interrupted.stdout

    resumed = run_cli("ingest", *csv_files, "--batch-size", str(BATCH_SIZE), home=home)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Milvus holds {CATALOG_SIZE} vectors, the metadata store {CATALOG_SIZE} movies" in resumed.stdout

    checked = run_cli("check", home=home)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "The stores agree." in checked.stdout
    assert store_counts(home) == (CATALOG_SIZE, CATALOG_SIZE)

    with recommend_pipeline(home=home) as pipeline:
        assert len(pipeline(1, top_k=10)) == 10


def test_interrupted_catalog_not_served(home, csv_files):
    kill_ingest_after(home, csv_files, 2)
    result = run_cli("recommend", "--user-id", "1", home=home)
    assert result.returncode == 4
    assert "towhee-recsys ingest" in result.stderr


def test_check_finds_and_repairs_drift(home, csv_files):
    ingested = run_cli("ingest", *csv_files, home=home)
    assert ingested.returncode == 0, ingested.stderr

    settings = Settings(home=str(home))
    vectors = open_vector_store(settings.milvus_uri, collection_name=settings.collection_name)
    metadata = open_metadata_store(settings.metadata_uri)
    assert vectors.delete([1, 2, 3]) == 3
    assert metadata.delete_movies([150, 151]) == 2
    vectors.close()
    metadata.close()

    found = run_cli("check", home=home)
    assert found.returncode == 8
    assert "3 movies have metadata but no vector: [1, 2, 3]" in found.stdout
    assert "2 movies have a vector but no metadata: [150, 151]" in found.stdout

    repaired = run_cli("check", "--repair", home=home)
    assert repaired.returncode == 0, repaired.stderr
    assert "Repaired" in repaired.stdout

    again = run_cli("check", home=home)
    assert again.returncode == 0
    assert store_counts(home) == (CATALOG_SIZE - 2, CATALOG_SIZE - 2)
