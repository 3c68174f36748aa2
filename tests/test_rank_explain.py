"""Rank stage and explanations inside recommend_pipeline, on Milvus Lite and embedded Redis."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from towhee_recsys import ModelError, ingest_pipeline, recommend_pipeline
from towhee_recsys.data.synthetic import planted_dataset
from towhee_recsys.model import ModelConfig, train
from towhee_recsys.model.ranker import HistoryRanker


@pytest.fixture(scope="module")
def planted():
    return planted_dataset()


@pytest.fixture(scope="module")
def home(planted, tmp_path_factory) -> Path:
    """A catalog whose model folder also contains a rank stage fitted on the same ratings."""
    home = tmp_path_factory.mktemp("home")
    config = ModelConfig(objective="rating", epochs=20, batch_size=256, learning_rate=0.01, seed=1)
    model = train(planted, config, model_dir=home / "model", show_progress=False)
    HistoryRanker.fit(planted).save(home / "model")
    with ingest_pipeline(home=home, model=model) as pipeline:
        pipeline(planted, show_progress=False)
    return home


def test_rank_stage_loaded_when_present(home):
    with recommend_pipeline(home=home) as pipeline:
        assert pipeline.ranker is not None
    with recommend_pipeline(home=home, rank_stage=False) as pipeline:
        assert pipeline.ranker is None


def test_ranked_list_matches_rescoring_the_recall_candidates(home, planted):
    ranker = HistoryRanker.load(home / "model")
    rated = planted.rated_movie_ids()[5]
    with recommend_pipeline(home=home, rank_stage=False) as plain:
        candidates = plain(5, top_k=200)
    scores = ranker.rescore(
        ranker.positions(rated),
        ranker.positions([item.movie_id for item in candidates]),
        np.array([item.score for item in candidates], dtype=np.float32),
    )
    expected = [candidates[i].movie_id for i in np.argsort(-scores, kind="stable")[:10]]

    with recommend_pipeline(home=home) as ranked:
        got = ranked(5, top_k=10)
        batch = ranked.recommend_batch([5, 6], top_k=10)
        single_6 = ranked(6, top_k=10)
    assert [item.movie_id for item in got] == expected
    assert [item.movie_id for item in batch[0]] == expected
    assert [item.movie_id for item in batch[1]] == [item.movie_id for item in single_6]
    assert not set(expected) & set(rated)
    # The rank stage must change something, or this test could not fail.
    assert expected != [item.movie_id for item in candidates[:10]] or len(set(scores)) > 1


@pytest.mark.parametrize("rank_stage", [True, False])
def test_explanations_come_from_the_users_history(home, planted, rank_stage):
    rated = set(planted.rated_movie_ids()[2])
    with recommend_pipeline(home=home, rank_stage=rank_stage) as pipeline:
        explained = pipeline(2, top_k=5, explain=True)
        plain = pipeline(2, top_k=5)
        newcomer = pipeline(gender="F", age=25, occupation=1, top_k=5, explain=True)
        titles = {movie.movie_id: movie.title for movie in planted.movies.values()}
    assert [item.movie_id for item in explained] == [item.movie_id for item in plain]
    assert all(item.because == () for item in plain)
    assert all(item.because == () for item in newcomer)
    for item in explained:
        assert 1 <= len(item.because) <= 3
        supports = [reason.support for reason in item.because]
        assert supports == sorted(supports, reverse=True)
        assert supports[-1] > 0
        for reason in item.because:
            assert reason.movie_id in rated
            assert reason.title == titles[reason.movie_id]
    # User 2 loves dramas: the strongest support of a recommended drama is a drama.
    first = explained[0]
    assert planted.movies[first.because[0].movie_id].genres[0] == first.genres[0]
    assert explained[0].to_dict()["because"][0]["movie_id"] == first.because[0].movie_id
    assert "because" not in plain[0].to_dict()


def test_required_rank_stage_missing_names_fix(home, tmp_path):
    shutil.copytree(home, tmp_path / "copy")
    shutil.rmtree(tmp_path / "copy" / "model" / "ranker")
    with pytest.raises(ModelError, match="--rank-stage"):
        recommend_pipeline(home=tmp_path / "copy", rank_stage=True)
    with recommend_pipeline(home=tmp_path / "copy") as pipeline:
        assert pipeline.ranker is None


def test_model_save_removes_rank_stage(home, planted, tmp_path):
    shutil.copytree(home, tmp_path / "copy")
    from towhee_recsys.model import RecommenderModel

    RecommenderModel.load(tmp_path / "copy" / "model").save(tmp_path / "copy" / "model")
    assert not (tmp_path / "copy" / "model" / "ranker").exists()


@pytest.mark.parametrize("rank_stage", [True, False])
def test_movie_rated_low_online_never_explains(home, planted, tmp_path, rank_stage):
    shutil.copytree(home, tmp_path / "copy")
    # User 2 loves dramas; a drama rated 1 star online must not be offered as a reason.
    rated = set(planted.rated_movie_ids()[2])
    dramas = [movie.movie_id for movie in planted.movies.values() if movie.genres[0] == "Drama"]
    disliked = next(movie_id for movie_id in dramas if movie_id not in rated)
    with recommend_pipeline(home=tmp_path / "copy", rank_stage=rank_stage) as pipeline:
        pipeline.record_ratings(2, {disliked: 1})
        after = pipeline(2, top_k=10, explain=True)
    assert all(reason.movie_id != disliked for item in after for reason in item.because)
    assert all(item.because for item in after)
