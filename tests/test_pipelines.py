"""Ingest and recommend pipelines on Milvus Lite and embedded Redis, end to end."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from towhee_recsys import (
    InvalidParameterError,
    ModelError,
    RecsysError,
    StoreLockedError,
    UnknownUserError,
    ingest_pipeline,
    recommend_pipeline,
)
from towhee_recsys.data.synthetic import GENRES, planted_dataset
from towhee_recsys.model import ModelConfig, train

CATALOG_SIZE = 160

HOLD_SCRIPT = """
import sys, time
from towhee_recsys import recommend_pipeline
pipeline = recommend_pipeline(home=sys.argv[1])
print("ready", flush=True)
time.sleep(60)
"""

RECOMMEND_SCRIPT = """
import sys, json
from towhee_recsys import recommend_pipeline
with recommend_pipeline(home=sys.argv[1]) as pipeline:
    print(json.dumps([item.movie_id for item in pipeline(1, top_k=10)]))
"""



def stop_holder(holder: subprocess.Popen) -> None:
    """Interrupt the holder so it closes its stores; SIGKILL would leave its embedded Redis running."""
    holder.send_signal(signal.SIGINT)
    try:
        holder.wait(timeout=30)
    except subprocess.TimeoutExpired:
        holder.kill()
        holder.wait(timeout=30)


@pytest.fixture(scope="module")
def planted():
    return planted_dataset()


@pytest.fixture(scope="module")
def home(planted, tmp_path_factory) -> Path:
    """A data folder with a model trained on the planted data and an ingested catalog."""
    home = tmp_path_factory.mktemp("home")
    model = train(planted, ModelConfig(objective="rating", epochs=20, batch_size=256, learning_rate=0.01, seed=1),
                  model_dir=home / "model", show_progress=False)
    with ingest_pipeline(home=home, model=model) as pipeline:
        pipeline(planted, show_progress=False)
    return home


@pytest.fixture
def recommender(home):
    with recommend_pipeline(home=home) as pipeline:
        yield pipeline


def test_ingest_twice_keeps_counts(home, planted):
    with ingest_pipeline(home=home, batch_size=64) as pipeline:
        report = pipeline(planted, show_progress=False)
    assert report.movies_written == CATALOG_SIZE
    assert report.vector_count == CATALOG_SIZE
    assert report.metadata_movie_count == CATALOG_SIZE
    assert report.users_written == len(planted.users)


def test_known_user_gets_favourite_genre(recommender, planted):
    for user_id in (1, 2, 3, 4):
        favourite = GENRES[(user_id - 1) % 4]
        genres = [item.genres[0] for item in recommender(user_id, top_k=10)]
        assert genres == [favourite] * 10, user_id


def test_rated_movies_excluded(recommender, planted):
    rated = set(planted.rated_movie_ids()[1])
    recommendations = recommender(1, top_k=CATALOG_SIZE)
    returned = [item.movie_id for item in recommendations]
    assert not rated & set(returned)
    assert len(returned) == CATALOG_SIZE - len(rated)
    assert len(set(returned)) == len(returned)


def test_exclusion_can_be_switched_off(recommender, planted):
    rated = set(planted.rated_movie_ids()[1])
    returned = {item.movie_id for item in recommender(1, top_k=CATALOG_SIZE, exclude_rated=False)}
    assert rated <= returned
    assert len(returned) == CATALOG_SIZE


def test_results_sorted_with_details(recommender, planted):
    recommendations = recommender(2, top_k=20)
    scores = [item.score for item in recommendations]
    assert scores == sorted(scores, reverse=True)
    first = recommendations[0]
    movie = planted.movies[first.movie_id]
    assert (first.title, first.genres, first.year) == (movie.title, movie.genres, movie.year)
    assert isinstance(first.title, str)
    assert -1.0 <= first.score <= 1.0


@pytest.mark.parametrize("top_k", [1, 5, 130])
def test_top_k_exact(recommender, top_k):
    assert len(recommender(3, top_k=top_k)) == top_k


def test_top_k_above_available(recommender):
    assert len(recommender(gender="M", age=25, occupation=2, top_k=10_000)) == CATALOG_SIZE


@pytest.mark.parametrize("top_k", [0, -3, 2.5, "10", True])
def test_top_k_invalid(recommender, top_k):
    with pytest.raises(InvalidParameterError, match="top_k"):
        recommender(1, top_k=top_k)


@pytest.mark.parametrize("occupation", range(4))
def test_new_user_from_demographics(recommender, occupation):
    recommendations = recommender(gender="F", age=18, occupation=occupation, top_k=10)
    assert [item.genres[0] for item in recommendations] == [GENRES[occupation]] * 10


def test_unknown_user_id_with_demographics(recommender):
    recommendations = recommender(99_999, gender="M", age=35, occupation=1, top_k=5)
    assert [item.genres[0] for item in recommendations] == ["Drama"] * 5


def test_unknown_user_without_demographics(recommender):
    with pytest.raises(UnknownUserError, match="99999"):
        recommender(99_999)


def test_no_user_at_all(recommender):
    with pytest.raises(UnknownUserError, match="gender, age and occupation"):
        recommender()


def test_unseen_demographic_value_rejected(recommender):
    with pytest.raises(InvalidParameterError, match="occupation"):
        recommender(gender="F", age=18, occupation=77)


def test_concurrent_calls(recommender):
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def worker(user_id: int) -> None:
        try:
            for _ in range(5):
                results[user_id] = [item.movie_id for item in recommender(user_id, top_k=10)]
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(user_id,)) for user_id in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for user_id in range(1, 9):
        assert results[user_id] == [item.movie_id for item in recommender(user_id, top_k=10)]


def test_reopen_in_new_process(home, recommender):
    expected = [item.movie_id for item in recommender(1, top_k=10)]
    recommender.close()
    output = subprocess.run([sys.executable, "-c", RECOMMEND_SCRIPT, str(home)],
                            capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(output.stdout) == expected


def test_lock_held_by_other_process(home):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_SCRIPT, str(home)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError) as caught:
            recommend_pipeline(home=home)
        message = str(caught.value)
        assert "another process" in message
        assert str(home / "milvus.db") in message
    finally:
        stop_holder(holder)


def test_model_mismatch_detected(home, planted, tmp_path):
    config = ModelConfig(objective="rating", epochs=1, batch_size=256, seed=7)
    other = train(planted, config, model_dir=tmp_path / "other",
                  show_progress=False)
    assert other.fingerprint
    with pytest.raises(ModelError, match="towhee-recsys ingest"):
        recommend_pipeline(home=home, model_dir=tmp_path / "other")


def test_empty_catalog_rejected(home, tmp_path):
    with pytest.raises(ModelError, match="no finished ingest"):
        recommend_pipeline(home=tmp_path, model_dir=home / "model")


def test_missing_model_rejected(tmp_path):
    with pytest.raises(ModelError, match="towhee-recsys train"):
        recommend_pipeline(home=tmp_path)


def test_default_pipeline_uses_home_env(home, monkeypatch):
    monkeypatch.setenv("TOWHEE_RECSYS_HOME", str(home))
    script = textwrap.dedent("""
        from towhee_recsys import recommend_pipeline
        pipeline = recommend_pipeline()
        print(len(pipeline(1, top_k=7)))
        pipeline.close()
    """)
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert output.stdout.strip() == "7"


def test_closed_pipeline_rejects_calls(home):
    pipeline = recommend_pipeline(home=home)
    pipeline.close()
    with pytest.raises(RecsysError, match="closed"):
        pipeline(1)


def test_operator_pool_lock_reentrant(recommender):
    # towhee 1.1.3 can deadlock when garbage collection frees a failed call's nodes while
    # the pool lock is held. The pipelines swap in a re-entrant lock.
    lock = recommender._dag._operator_pool._lock
    assert lock.acquire(timeout=1)
    assert lock.acquire(timeout=1)
    lock.release()
    lock.release()


def test_many_failures_then_success(recommender):
    import gc

    for _ in range(30):
        with pytest.raises(InvalidParameterError):
            recommender(gender="F", age=18, occupation=77)
        gc.collect()
    assert len(recommender(1, top_k=3)) == 3
