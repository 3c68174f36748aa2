"""Top-k ranking metrics with binary relevance, as RecBole defines them, and rating errors.

Every ranking metric is computed per user from a hit matrix: row u, column r is True
when the movie at rank r + 1 of user u's list is one of the user's relevant (held-out)
movies. `relevant` holds each user's number of relevant movies. Users without relevant
movies are left out of the averages by the caller.

    Recall@K     hits in the top K / number of relevant movies
    Precision@K  hits in the top K / K
    Hit@K        1 if the top K contain a hit, else 0 (HR@K is the same number)
    MRR@K        1 / rank of the first hit within the top K, 0 without a hit
    NDCG@K       DCG / ideal DCG, DCG = sum of 1 / log2(rank + 1) over hits in the top K,
                 ideal DCG = the DCG of min(K, relevant) hits at ranks 1, 2, ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from towhee_recsys.validation import invalid_parameter

CUTOFFS = (10, 20, 50)
RECBOLE_METRICS = ("Recall", "NDCG", "Hit", "MRR", "Precision")
LEAVE_LAST_OUT_METRICS = ("HR", "NDCG", "MRR")


def _hits_within(hits: np.ndarray, k: int) -> np.ndarray:
    if k < 1 or k > hits.shape[1]:
        raise invalid_parameter("k", f"an integer in [1, {hits.shape[1]}] (the ranked list length)", k)
    return hits[:, :k]


def recall_at_k(hits: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """Return each user's hits in the top `k` divided by the user's number of relevant movies."""
    return _hits_within(hits, k).sum(axis=1) / relevant


def precision_at_k(hits: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """Return each user's hits in the top `k` divided by `k`."""
    return _hits_within(hits, k).sum(axis=1) / k


def hit_at_k(hits: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """Return 1.0 for each user with at least one hit in the top `k`, else 0.0."""
    return _hits_within(hits, k).any(axis=1).astype(np.float64)


def mrr_at_k(hits: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """Return 1 / rank of each user's first hit within the top `k`, 0.0 without a hit."""
    top = _hits_within(hits, k)
    first = top.argmax(axis=1)
    return np.where(top.any(axis=1), 1.0 / (first + 1), 0.0)


def ndcg_at_k(hits: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """Return each user's DCG of the top `k` over the ideal DCG of min(k, relevant) hits."""
    top = _hits_within(hits, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (top * discounts).sum(axis=1)
    ideal = np.cumsum(discounts)[np.minimum(relevant, k) - 1]
    return dcg / ideal


METRIC_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    "Recall": recall_at_k,
    "NDCG": ndcg_at_k,
    "Hit": hit_at_k,
    "HR": hit_at_k,
    "MRR": mrr_at_k,
    "Precision": precision_at_k,
}


def metric_names(metrics: Sequence[str], cutoffs: Sequence[int]) -> list[str]:
    """Return the column names, such as "Recall@10", grouped by cutoff."""
    return [f"{metric}@{k}" for k in cutoffs for metric in metrics]


def ranking_metrics(
    hits: np.ndarray, relevant: np.ndarray, metrics: Sequence[str], cutoffs: Sequence[int]
) -> dict[str, float]:
    """Return each metric at each cutoff, averaged over the users with a relevant movie.

    Args:
        hits: (users, list length) boolean hit matrix, list length >= max(cutoffs).
        relevant: (users,) number of relevant movies of each user.
        metrics: names among Recall, NDCG, Hit, HR, MRR and Precision.
        cutoffs: the K values.
    """
    hits = np.asarray(hits, dtype=bool)
    relevant = np.asarray(relevant, dtype=np.int64)
    if hits.ndim != 2 or len(hits) != len(relevant):
        raise invalid_parameter("hits", f"a 2-D matrix with one row per user ({len(relevant)})", hits.shape)
    unknown = sorted(set(metrics) - set(METRIC_FUNCTIONS))
    if unknown:
        raise invalid_parameter("metrics", f"names among {sorted(METRIC_FUNCTIONS)}", unknown)

    counted = relevant > 0
    hits, relevant = hits[counted], relevant[counted]
    results: dict[str, float] = {}
    for k in cutoffs:
        for metric in metrics:
            values = METRIC_FUNCTIONS[metric](hits, relevant, k)
            results[f"{metric}@{k}"] = float(values.mean()) if len(values) else float("nan")
    return results


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Return the root mean squared error of predicted ratings."""
    difference = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return float(np.sqrt(np.mean(difference**2)))


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Return the mean absolute error of predicted ratings."""
    difference = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return float(np.mean(np.abs(difference)))
