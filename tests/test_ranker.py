"""Rank stage: EASE weights against an independent ridge solve, re-scoring, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from towhee_recsys.data.dataset import Dataset, Movie, Ratings
from towhee_recsys.errors import InvalidParameterError, ModelError
from towhee_recsys.model.ranker import HistoryRanker, fit_item_weights


def test_weights_solve_the_constrained_ridge_regression():
    # EASE: column j of the weights is the ridge regression of movie j's column on the
    # other movies' columns (its own weight fixed at 0). Solve each column directly.
    rng = np.random.default_rng(0)
    interactions = (rng.random((40, 6)) < 0.4).astype(np.float32)
    regularization = 3.0
    weights = fit_item_weights(interactions, regularization)
    for j in range(6):
        others = [i for i in range(6) if i != j]
        features = interactions[:, others].astype(np.float64)
        gram = features.T @ features + regularization * np.eye(5)
        expected = np.linalg.solve(gram, features.T @ interactions[:, j])
        np.testing.assert_allclose(weights[others, j], expected, rtol=1e-4, atol=1e-5)
        assert weights[j, j] == 0


def test_two_movie_case_by_hand():
    # Users: {A, B}, {A, B}, {A}. Gram = [[3, 2], [2, 2]] + 1 I = [[4, 2], [2, 3]].
    # Inverse = 1/8 [[3, -2], [-2, 4]]. B[0, 1] = -P[0, 1] / P[1, 1] = 2/4 = 0.5 and
    # B[1, 0] = -P[1, 0] / P[0, 0] = 2/3.
    interactions = np.array([[1, 1], [1, 1], [1, 0]], dtype=np.float32)
    weights = fit_item_weights(interactions, 1.0)
    np.testing.assert_allclose(weights, [[0, 0.5], [2 / 3, 0]], rtol=1e-6)


def _dataset() -> Dataset:
    # Movies 1 and 2 are always rated together; 3 and 4 together; 5 by everyone.
    users, movies = [], []
    for user in range(1, 31):
        pair = (1, 2) if user % 2 else (3, 4)
        for movie in (*pair, 5):
            users.append(user)
            movies.append(movie)
    ratings = Ratings(np.array(users), np.array(movies), np.full(len(users), 4.0, dtype=np.float32))
    catalog = {i: Movie(i, f"Movie {i} (2000)", ("Drama",), 2000) for i in range(1, 6)}
    return Dataset(ratings, catalog, name="pairs")


def test_history_lifts_co_rated_movie_over_recall_order():
    ranker = HistoryRanker.fit(_dataset(), regularization=1.0, blend=0.7)
    history = ranker.positions([1])
    candidates = ranker.positions([3, 2, 4])
    # Recall prefers 3, then 2, then 4; the user's history (movie 1) supports movie 2.
    scores = ranker.rescore(history, candidates, np.array([0.9, 0.8, 0.7], dtype=np.float32))
    assert int(np.argmax(scores)) == 1
    assert ranker.supporters(history, int(candidates[1])) == [(int(history[0]), pytest.approx(ranker.weights[0, 1]))]
    assert ranker.supporters(history, int(candidates[0])) == []


def test_no_history_keeps_recall_order():
    ranker = HistoryRanker.fit(_dataset(), regularization=1.0)
    recall = np.array([0.3, 0.9, 0.5], dtype=np.float32)
    scores = ranker.rescore(ranker.positions([]), ranker.positions([1, 2, 99]), recall)
    assert list(np.argsort(-scores)) == [1, 2, 0]
    assert ranker.positions([99]).tolist() == [-1]
    assert ranker.history_scores(ranker.positions([1, 99]), ranker.positions([99, 2]))[0] == 0


def test_save_load_roundtrip_and_damage(tmp_path):
    ranker = HistoryRanker.fit(_dataset(), regularization=2.0, blend=0.4)
    ranker.save(tmp_path)
    loaded = HistoryRanker.load(tmp_path)
    assert loaded.movie_ids == ranker.movie_ids
    assert loaded.blend == 0.4
    np.testing.assert_array_equal(loaded.weights, ranker.weights)

    (tmp_path / "ranker" / "weights.npy").write_bytes(b"not numpy")
    with pytest.raises(ModelError, match="damaged"):
        HistoryRanker.load(tmp_path)
    with pytest.raises(ModelError, match="no rank stage"):
        HistoryRanker.load(tmp_path / "elsewhere")


@pytest.mark.parametrize("blend", [-0.1, 1.5, "0.5"])
def test_invalid_blend_names_value(blend):
    with pytest.raises(InvalidParameterError, match="blend"):
        HistoryRanker.fit(_dataset(), blend=blend)


def test_evaluation_rank_stage_uses_training_history_only():
    from towhee_recsys.model.ranker import HistoryRankStage

    stage = HistoryRankStage(regularization=1.0, blend=1.0)
    stage.fit(_dataset())
    # User 1 rated 1, 2 and 5 (odd users rate the pair 1-2); user 99 is not in training.
    movie_ids = np.array([[3, 2, 4], [3, 2, 4]])
    scores = np.array([[0.9, 0.8, -np.inf], [0.9, 0.8, 0.7]], dtype=np.float32)
    rescored = stage(np.array([1, 99]), movie_ids, scores)
    assert rescored[0, 1] > rescored[0, 0]
    assert rescored[0, 2] == -np.inf
    assert list(np.argsort(-rescored[1])) == [0, 1, 2]


def test_home_folder_path_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    HistoryRanker.fit(_dataset()).save("~/model")
    assert (tmp_path / "model" / "ranker" / "weights.npy").exists()
    assert HistoryRanker.load("~/model").movie_ids == [1, 2, 3, 4, 5]


def test_config_missing_key_is_model_error(tmp_path):
    HistoryRanker.fit(_dataset()).save(tmp_path)
    (tmp_path / "ranker" / "ranker.json").write_text('{"format_version": 1}')
    with pytest.raises(ModelError, match="damaged"):
        HistoryRanker.load(tmp_path)
