"""Evaluation: metric arithmetic, protocol splits, baselines, ranking, and end-to-end runs."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from towhee_recsys.data.dataset import Dataset, Movie, Ratings, User
from towhee_recsys.data.synthetic import planted_dataset, write_csv_dataset
from towhee_recsys.errors import DatasetError, InvalidParameterError
from towhee_recsys.evaluation import evaluate, make_split, read_imputed_timestamps
from towhee_recsys.evaluation.baselines import DemographicPopularityScores, PopularityScores
from towhee_recsys.evaluation.metrics import (
    hit_at_k,
    mae,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    rmse,
)
from towhee_recsys.evaluation.protocols import UserMovies, k_core_mask, split_counts
from towhee_recsys.evaluation.ranking import NO_MOVIE, exact_top_lists, hit_matrix, rerank_top_lists
from towhee_recsys.model import ModelConfig

# One user whose list has hits at ranks 2 and 4, with 3 relevant movies in total.
HITS = np.array([[False, True, False, True]])
RELEVANT = np.array([3])

SMALL_MODEL = {"embedding_dim": 32, "id_dim": 16, "feature_dim": 8, "title_dim": 8}


# ----- metrics -----


def test_recall_counts_all_relevant():
    # k=4: 2 hits of 3 relevant = 2/3. k=2: 1 hit (rank 2) of 3 = 1/3.
    assert recall_at_k(HITS, RELEVANT, 4)[0] == pytest.approx(2 / 3)
    assert recall_at_k(HITS, RELEVANT, 2)[0] == pytest.approx(1 / 3)


def test_precision_divides_by_k():
    # k=4: 2 hits / 4. k=1: rank 1 is a miss, so 0 / 1.
    assert precision_at_k(HITS, RELEVANT, 4)[0] == pytest.approx(0.5)
    assert precision_at_k(HITS, RELEVANT, 1)[0] == 0.0


def test_hit_needs_one_hit():
    # The first hit is at rank 2: none within k=1, one within k=2.
    assert hit_at_k(HITS, RELEVANT, 1)[0] == 0.0
    assert hit_at_k(HITS, RELEVANT, 2)[0] == 1.0


def test_mrr_uses_first_hit():
    # The first hit is at rank 2, so 1/2 for every k >= 2 and 0 for k=1.
    assert mrr_at_k(HITS, RELEVANT, 4)[0] == pytest.approx(0.5)
    assert mrr_at_k(HITS, RELEVANT, 1)[0] == 0.0


def test_ndcg_hand_computed():
    # k=4: DCG = 1/log2(3) + 1/log2(5) = 0.6309298 + 0.4306766 = 1.0616064.
    # Ideal DCG over min(4, 3) = 3 hits = 1 + 1/log2(3) + 1/log2(4) = 1 + 0.6309298 + 0.5 = 2.1309298.
    # NDCG@4 = 1.0616064 / 2.1309298 = 0.498189.
    assert ndcg_at_k(HITS, RELEVANT, 4)[0] == pytest.approx(0.498189, abs=1e-6)
    # k=2: DCG = 1/log2(3) = 0.630930; ideal over min(2, 3) = 2 hits = 1 + 0.630930.
    # NDCG@2 = 0.630930 / 1.630930 = 0.386853.
    assert ndcg_at_k(HITS, RELEVANT, 2)[0] == pytest.approx(0.386853, abs=1e-6)


def test_ndcg_ideal_uses_fewer_relevant():
    # One relevant movie found at rank 1: DCG = 1 and ideal DCG over min(3, 1) = 1 hit = 1.
    hits = np.array([[True, False, False]])
    assert ndcg_at_k(hits, np.array([1]), 3)[0] == pytest.approx(1.0)


def test_metrics_average_users_with_relevant_movies():
    # User 0: Recall@2 = 1/3 (see HITS). User 1: hit at rank 1 of 1 relevant = 1.
    # User 2 has no relevant movie and is left out: mean = (1/3 + 1) / 2 = 2/3.
    hits = np.array([[False, True, False, True], [True, False, False, False], [True, True, True, True]])
    relevant = np.array([3, 1, 0])
    values = ranking_metrics(hits, relevant, ["Recall", "MRR"], [2])
    assert values["Recall@2"] == pytest.approx(2 / 3)
    # MRR@2: user 0 -> 1/2, user 1 -> 1; mean 3/4.
    assert values["MRR@2"] == pytest.approx(0.75)


def test_metric_cutoff_beyond_list_rejected():
    with pytest.raises(InvalidParameterError, match="k"):
        recall_at_k(HITS, RELEVANT, 5)


def test_rmse_and_mae_hand_computed():
    # Errors -1, 0, 2: MSE = (1 + 0 + 4) / 3 = 5/3, RMSE = sqrt(5/3) = 1.290994; MAE = 3/3 = 1.
    assert rmse(np.array([3, 4, 5]), np.array([4, 4, 3])) == pytest.approx(math.sqrt(5 / 3))
    assert mae(np.array([3, 4, 5]), np.array([4, 4, 3])) == pytest.approx(1.0)


# ----- splits -----


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (10, (8, 1, 1)),  # floor(1.0) each
        (15, (13, 1, 1)),  # floor(1.5) = 1 each
        (20, (16, 2, 2)),
        (30, (24, 3, 3)),  # 0.1 x 30 in floats is 3.0000000000000004, not 2.99...
        (3, (1, 1, 1)),  # 0.3 of a rating rounds up to one for test, then for validation
        (2, (1, 0, 1)),  # test takes one; then train has one left, so validation stays empty
        (1, (1, 0, 0)),
    ],
)
def test_split_counts_follow_recbole_rounding(count, expected):
    assert split_counts(count, (0.8, 0.1, 0.1)) == expected


def test_k_core_removes_in_cascade():
    # Users 0 and 1 rated movies 0 and 1; user 2 rated movies 1 and 2. With a 2-core,
    # movie 2 (one rating) goes first, then user 2 (one rating left), and movie 1 keeps 2.
    user = np.array([0, 0, 1, 1, 2, 2])
    movie = np.array([0, 1, 0, 1, 1, 2])
    assert k_core_mask(user, movie, 2, 2).tolist() == [True, True, True, True, False, False]


def test_recbole_split_properties():
    dataset = planted_dataset(users=120, movies_per_genre=40, ratings_per_user=80, seed=1)
    split = make_split(dataset, "recbole", seed=7)
    interactions = split.interactions

    assert (interactions.rating >= 3).all()
    assert np.bincount(interactions.user).min() >= 10
    assert np.bincount(interactions.movie).min() >= 10
    parts = np.concatenate([split.train, split.validation, split.test])
    assert np.array_equal(np.sort(parts), np.arange(len(interactions)))
    for user in range(interactions.n_users):
        count = int((interactions.user == user).sum())
        parts = (split.train, split.validation, split.test)
        sizes = tuple(int((interactions.user[part] == user).sum()) for part in parts)
        assert sizes == split_counts(count, (0.8, 0.1, 0.1))


def test_recbole_split_depends_on_seed():
    dataset = planted_dataset(users=120, movies_per_genre=40, ratings_per_user=80, seed=1)
    first, again, other = (make_split(dataset, "recbole", seed=s) for s in (7, 7, 8))
    assert np.array_equal(first.test, again.test)
    assert not np.array_equal(first.test, other.test)


def _timed_dataset() -> Dataset:
    # User 1: rows 0-3 at times 5, 9, 9, 1; rows 1 and 2 tie at 9, so row 2 (later) is the
    # test rating and row 1 the validation rating. User 2 has one rating, which is its test.
    user = np.array([1, 1, 1, 1, 2])
    movie = np.array([10, 20, 30, 40, 10])
    rating = np.array([4, 5, 3, 2, 5], dtype=np.float32)
    timestamp = np.array([5, 9, 9, 1, 3])
    movies = {m: Movie(m, f"Movie {m} (1990)", ("Drama",), 1990) for m in (10, 20, 30, 40)}
    users = {1: User(1, "F", 25, 1), 2: User(2, "M", 35, 2)}
    return Dataset(Ratings(user, movie, rating, timestamp), movies, users, name="timed")


def test_leave_last_out_picks_latest():
    split = make_split(_timed_dataset(), "leave-last-out", seed=0)
    rows = split.interactions.rows
    assert sorted(rows[split.test].tolist()) == [2, 4]
    assert rows[split.validation].tolist() == [1]
    assert sorted(rows[split.train].tolist()) == [0, 3]


def test_leave_last_out_needs_timestamps():
    dataset = _timed_dataset()
    ratings = dataset.ratings
    untimed = Dataset(Ratings(ratings.user_id, ratings.movie_id, ratings.rating), dataset.movies, dataset.users)
    with pytest.raises(DatasetError, match="timestamps"):
        make_split(untimed, "leave-last-out", seed=0)


def test_rating_split_disjoint_and_sized():
    dataset = planted_dataset(users=50, seed=2)
    split = make_split(dataset, "rating", seed=3)
    assert len(split.test) == round(len(dataset.ratings) * 0.1)
    assert len(split.validation) == round((len(dataset.ratings) - len(split.test)) * 0.1)
    assert not set(split.test.tolist()) & set(split.train.tolist())
    assert not set(split.validation.tolist()) & set(split.train.tolist())


def test_unknown_protocol_rejected():
    with pytest.raises(InvalidParameterError, match="protocol"):
        make_split(planted_dataset(users=8), "temporal", seed=0)


# ----- ranking and masks -----


def test_exact_ranking_never_lists_masked():
    # User 0 masks movies 0 and 3; user 1 masks nothing. Scores rank movie 0 first, 3 second.
    scores = np.array([[9.0, 1.0, 2.0, 8.0, 3.0], [9.0, 1.0, 2.0, 8.0, 3.0]])
    masked = UserMovies.from_pairs(np.array([0, 0]), np.array([0, 3]), n_users=2, n_movies=5)
    top, top_scores = exact_top_lists(lambda users: scores[users], np.array([0, 1]), 5, 5, masked=masked)
    assert top[0].tolist() == [4, 2, 1, NO_MOVIE, NO_MOVIE]
    assert top[1].tolist() == [0, 3, 4, 2, 1]
    assert np.isneginf(top_scores[0, 3:]).all()


def test_hit_matrix_marks_relevant():
    relevant = UserMovies.from_pairs(np.array([0, 1]), np.array([2, 0]), n_users=2, n_movies=5)
    top = np.array([[4, 2, NO_MOVIE], [1, 3, 4]])
    hits = hit_matrix(top, np.array([0, 1]), relevant, 5)
    assert hits.tolist() == [[False, True, False], [False, False, False]]


def test_rerank_reorders_candidates():
    # The stage scores candidates in reverse, so the last valid candidate comes first,
    # and the NO_MOVIE place stays out of the list whatever the stage returns for it.
    candidates = np.array([[5, 6, 7, NO_MOVIE]])
    scores = np.array([[0.9, 0.8, 0.7, -np.inf]])
    movie_ids = np.arange(100, 110)
    seen = {}

    def reverse(user_ids, candidate_ids, candidate_scores):
        seen["ids"] = candidate_ids.tolist()
        return np.tile(np.arange(candidate_ids.shape[1], dtype=float), (len(user_ids), 1))

    top = rerank_top_lists(reverse, np.array([1]), movie_ids, candidates, scores, 4)
    assert top.tolist() == [[7, 6, 5, NO_MOVIE]]
    assert seen["ids"] == [[105, 106, 107, 105]]


def test_popularity_scores_count_training():
    scores = PopularityScores(np.array([2, 2, 0, 2, 1]), n_movies=4)(np.array([0, 1]))
    assert scores.tolist() == [[1, 1, 3, 0], [1, 1, 3, 0]]


def test_demographic_popularity_backs_off():
    # Users 0-2 (F, 25, occ 1) all rated movie 0, users 3-5 (M, 25, occ 2) movie 1, and
    # user 6 (M, 25, occ 3) movie 2. With groups of at least 3 users, user 6's own group
    # is too small, and (M, 25) holds users 3-6: movie 1 (3 ratings) beats movie 2 (1).
    people = {i: User(i, "F", 25, 1) for i in range(3)}
    people.update({i: User(i, "M", 25, 2) for i in range(3, 6)})
    people[6] = User(6, "M", 25, 3)
    user_ids = np.arange(7)
    scorer = DemographicPopularityScores(
        user_ids, people, np.arange(7), np.array([0, 0, 0, 1, 1, 1, 2]), n_movies=3, min_group_users=3
    )
    assert scorer(np.array([0]))[0].argmax() == 0
    assert scorer(np.array([3]))[0].argmax() == 1
    assert scorer(np.array([6]))[0].argmax() == 1
    assert scorer.group_of(people[6]) == (("gender", "age"), "M", 25)


# ----- end to end -----


class IdentityRankStage:
    """Keeps the two-tower order and records that evaluation fitted it on the training split."""

    def __init__(self) -> None:
        self.fitted_on: list[int] = []

    def fit(self, train_dataset, model) -> None:
        self.fitted_on.append(len(train_dataset.ratings))

    def __call__(self, user_ids, movie_ids, scores):
        return scores


@pytest.fixture(scope="module")
def recbole_report(tmp_path_factory):
    dataset = planted_dataset(users=120, movies_per_genre=40, ratings_per_user=80, seed=1)
    stage = IdentityRankStage()
    config = ModelConfig(epochs=3, **SMALL_MODEL)
    work_dir = tmp_path_factory.mktemp("evaluation")
    report = evaluate(dataset, "recbole", config, seed=5, rank_stage=stage, show_progress=False, work_dir=work_dir)
    return report, stage, work_dir


def test_evaluate_beats_random(recbole_report):
    report, _, _ = recbole_report
    rows = report["recbole"].tables[0].rows
    assert rows["two-tower"]["NDCG@10"] > rows["random"]["NDCG@10"] + 0.05
    assert rows["two-tower"]["Recall@10"] > rows["random"]["Recall@10"]


def test_served_agrees_with_exact(recbole_report):
    report, _, work_dir = recbole_report
    table = report["recbole"].tables[0]
    assert table.served_overlap is not None and table.served_overlap >= 0.99
    exact, served = table.rows["two-tower"], table.rows["two-tower, served (Milvus)"]
    for column in table.columns:
        assert served[column] == pytest.approx(exact[column], abs=0.01), column
    assert list(Path(work_dir).iterdir()) == []  # the temporary Milvus Lite folder is gone


def test_rank_stage_fitted_and_reported(recbole_report):
    report, stage, _ = recbole_report
    protocol = report["recbole"]
    assert stage.fitted_on == [protocol.split["train"]]
    rows = protocol.tables[0].rows
    assert rows["two-tower + rank"] == pytest.approx(rows["two-tower"])


def test_report_records_history_and_split(recbole_report):
    report, _, _ = recbole_report
    protocol = report["recbole"]
    assert [record["epoch"] for record in protocol.history] == [1, 2, 3]
    assert all("val_NDCG@10" in record for record in protocol.history)
    assert protocol.split["train"] + protocol.split["validation"] + protocol.split["test"] == protocol.split[
        "interactions"
    ]
    assert protocol.timings["training"] > 0
    assert "BPR (published)" in protocol.to_markdown()
    json.dumps(report.to_dict())


def test_leave_last_out_and_cold_start(tmp_path):
    dataset = planted_dataset(users=80, seed=4)
    imputed = {(1, int(dataset.ratings.movie_id[0]))}
    report = evaluate(
        dataset, "leave-last-out", ModelConfig(epochs=1, **SMALL_MODEL), served=False, show_progress=False,
        imputed_timestamps=imputed, work_dir=tmp_path,
    )
    protocol = report["leave-last-out"]
    titles = [table.title for table in protocol.tables]
    assert titles == [
        "test, seen movies masked", "test, nothing masked", "cold start: test users as new users, nothing masked"
    ]
    cold = protocol.tables[2].rows
    assert {"two-tower, new users", "per-demographic popularity", "popularity", "random"} <= set(cold)
    assert protocol.approximate
    assert "1 of the 2,400 ratings carry an imputed timestamp" in protocol.notes[0]


def test_rating_protocol_beats_global_mean(tmp_path):
    report = evaluate(planted_dataset(users=80, seed=4), "rating", ModelConfig(epochs=5, batch_size=128, **SMALL_MODEL),
                      show_progress=False, work_dir=tmp_path)
    rows = report["rating"].tables[0].rows
    assert rows["two-tower"]["RMSE"] < rows["global mean"]["RMSE"]
    assert report["rating"].config["objective"] == "rating"


def test_rating_protocol_trains_rating_objective(tmp_path):
    config = ModelConfig(objective="contrastive", epochs=1, **SMALL_MODEL)
    report = evaluate(planted_dataset(users=20, seed=4), "rating", config, show_progress=False, work_dir=tmp_path)
    assert report["rating"].config["objective"] == "rating"
    assert "rating objective" in report["rating"].notes[0]


def test_read_imputed_timestamps(tmp_path):
    import gzip

    assert read_imputed_timestamps(tmp_path) is None
    with gzip.open(tmp_path / "imputed_timestamps.txt.gz", "wt") as file:
        file.write("UserID::MovieID\n3000::736\n3000::919\n")
    assert read_imputed_timestamps(tmp_path) == {(3000, 736), (3000, 919)}


def test_cli_evaluate_writes_reports(tmp_path, capsys):
    from towhee_recsys.cli import main

    paths = write_csv_dataset(planted_dataset(users=60, seed=6), tmp_path / "csv")
    output, markdown = tmp_path / "report.json", tmp_path / "report.md"
    code = main([
        "-q", "evaluate", "--protocol", "rating", "--ratings", str(paths["ratings"]), "--movies", str(paths["movies"]),
        "--users", str(paths["users"]), "--epochs", "1", "--seed", "3",
        "--output", str(output), "--markdown", str(markdown),
    ])
    printed = capsys.readouterr().out
    assert code == 0
    assert "SVD++ (published)" in printed
    assert json.loads(output.read_text())["protocols"][0]["protocol"] == "rating"
    assert markdown.read_text() in printed


def test_cli_evaluate_invalid_objective_exit_code(tmp_path, capsys):
    from towhee_recsys.cli import main

    paths = write_csv_dataset(planted_dataset(users=8, seed=6), tmp_path / "csv")
    code = main([
        "-q", "evaluate", "--protocol", "rating", "--objective", "contrastive",
        "--ratings", str(paths["ratings"]), "--movies", str(paths["movies"]),
    ])
    assert code == 2
    assert "objective" in capsys.readouterr().err


# ----- MovieLens 1M -----


@pytest.mark.slow
def test_ml1m_recbole_split_sizes():
    folder = os.environ.get("TOWHEE_RECSYS_ML1M")
    if not folder:
        pytest.skip("set TOWHEE_RECSYS_ML1M to a MovieLens 1M folder to check the recbole split on real data")
    from towhee_recsys.data import load_movielens

    dataset = load_movielens(folder, show_progress=False)
    split = make_split(dataset, "recbole", seed=42)
    sizes = split.sizes()
    # The 10-core of the 836,478 ratings >= 3.
    assert (sizes["users"], sizes["movies"], sizes["interactions"]) == (6033, 3123, 834449)
    assert np.bincount(split.interactions.user).min() >= 10
    assert np.bincount(split.interactions.movie).min() >= 10
    assert sizes["validation"] == sizes["test"]
    # A 5-core gives exactly the sizes RecBole publishes for its ML-1M benchmark.
    five = make_split(dataset, "recbole", seed=42, min_count=5).sizes()
    assert (five["users"], five["movies"], five["interactions"]) == (6038, 3307, 835789)
