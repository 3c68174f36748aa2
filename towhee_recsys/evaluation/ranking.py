"""Full ranking of every candidate movie for many users: exact, served and re-ranked top lists.

A top list is an int64 (users, k) matrix of movie indices, best first. NO_MOVIE (-1)
fills the places past the end when a user has fewer than k unmasked movies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from towhee_recsys.errors import RecsysError
from towhee_recsys.evaluation.protocols import UserMovies

logger = logging.getLogger(__name__)

NO_MOVIE = -1
# Users scored per NumPy block: 1024 users x 3,706 movies is a 15 MB float32 matrix.
USER_CHUNK = 1024
# Query vectors per search request when no user has an exclusion list.
SERVED_BATCH = 256

ScoreRows = Callable[[np.ndarray], np.ndarray]


class RankStage(Protocol):
    """A second model that re-scores the two-tower candidates of each user.

    It is called with the user ids (n,), the candidate movie ids (n, c) and their
    two-tower scores (n, c), best first. It returns new scores of shape (n, c), and higher
    is better. Places past the end of a short candidate list repeat the row's first
    movie with score -inf, and keep -inf whatever the stage returns for them. If the
    object also has a ``fit(train_dataset, model)`` method, evaluation calls it first
    with the protocol's training split and the trained two-tower model.
    """

    def __call__(self, user_ids: np.ndarray, movie_ids: np.ndarray, scores: np.ndarray) -> np.ndarray: ...


def exact_top_lists(
    score_rows: ScoreRows,
    users: np.ndarray,
    n_movies: int,
    k: int,
    *,
    masked: UserMovies | None = None,
    show_progress: bool = False,
    description: str = "rank",
) -> tuple[np.ndarray, np.ndarray]:
    """Return the top-`k` movie indices and scores of each user, scoring USER_CHUNK users at a time.

    `score_rows(user_indices)` returns a (len(user_indices), n_movies) score matrix.
    Movies in `masked` for a user get score -inf and never enter that user's list.
    """
    top = np.full((len(users), k), NO_MOVIE, dtype=np.int64)
    top_scores = np.full((len(users), k), -np.inf, dtype=np.float32)
    kept = min(k, n_movies)
    with tqdm(total=len(users), desc=description, unit="user", disable=not show_progress, leave=False) as progress:
        for start in range(0, len(users), USER_CHUNK):
            chunk = users[start : start + USER_CHUNK]
            scores = np.array(score_rows(chunk), dtype=np.float32)
            if masked is not None:
                rows, columns = masked.rows_and_columns(chunk)
                scores[rows, columns] = -np.inf
            best = np.argpartition(-scores, kept - 1, axis=1)[:, :kept]
            best_scores = np.take_along_axis(scores, best, axis=1)
            order = np.argsort(-best_scores, axis=1, kind="stable")
            best = np.take_along_axis(best, order, axis=1)
            best_scores = np.take_along_axis(best_scores, order, axis=1)
            best[~np.isfinite(best_scores)] = NO_MOVIE
            top[start : start + len(chunk), :kept] = best
            top_scores[start : start + len(chunk), :kept] = best_scores
            progress.update(len(chunk))
    return top, top_scores


def hit_matrix(top: np.ndarray, users: np.ndarray, relevant: UserMovies, n_movies: int) -> np.ndarray:
    """Return the boolean matrix of which listed movies are among each user's relevant movies."""
    hits = np.zeros(top.shape, dtype=bool)
    for start in range(0, len(users), USER_CHUNK):
        chunk = users[start : start + USER_CHUNK]
        # One extra column, always False, absorbs NO_MOVIE.
        dense = np.zeros((len(chunk), n_movies + 1), dtype=bool)
        rows, columns = relevant.rows_and_columns(chunk)
        dense[rows, columns] = True
        listed = top[start : start + len(chunk)]
        listed = np.where(listed == NO_MOVIE, n_movies, listed)
        hits[start : start + len(chunk)] = np.take_along_axis(dense, listed, axis=1)
    return hits


def served_top_lists(
    store: Any,
    user_vectors: np.ndarray,
    movie_ids: np.ndarray,
    k: int,
    *,
    excluded: UserMovies | None = None,
    users: np.ndarray | None = None,
    show_progress: bool = False,
    description: str = "served search",
) -> np.ndarray:
    """Return top lists from vector-store searches, as the served recommendation searches.

    `user_vectors` has one row per entry of `users` (the user indices). SERVED_BATCH
    users share a call, as in `RecommendPipeline.recommend_batch`. With `excluded`, the
    vector store drops each user's movie ids from that user's hits
    (see `MilvusVectorStore.search`).
    """
    users = np.arange(len(user_vectors)) if users is None else users
    index_of = {movie_id: index for index, movie_id in enumerate(movie_ids.tolist())}
    top = np.full((len(users), k), NO_MOVIE, dtype=np.int64)
    step = SERVED_BATCH
    with tqdm(total=len(users), desc=description, unit="user", disable=not show_progress, leave=False) as progress:
        for start in range(0, len(users), step):
            chunk = users[start : start + step]
            exclude = None
            if excluded is not None:
                exclude = [movie_ids[excluded.movies_of(user)].tolist() for user in chunk.tolist()]
            results = store.search(user_vectors[start : start + len(chunk)], k, exclude=exclude)
            for row, hits in enumerate(results, start=start):
                top[row, : len(hits)] = [_candidate_index(index_of, hit.movie_id) for hit in hits]
            progress.update(len(chunk))
    return top


def _candidate_index(index_of: dict, movie_id: Any) -> int:
    index = index_of.get(movie_id)
    if index is None:
        raise RecsysError(
            f"The vector store returned movie id {movie_id!r}, which is not among the {len(index_of)} "
            "candidates, so it holds another catalog. Evaluate on a new collection."
        )
    return index


def rerank_top_lists(
    rank_stage: RankStage,
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    candidates: np.ndarray,
    candidate_scores: np.ndarray,
    k: int,
) -> np.ndarray:
    """Re-score each user's candidates with `rank_stage` and return the new top-`k` lists.

    `user_ids` has one id per row of `candidates` (movie indices, NO_MOVIE past the end).
    """
    valid = candidates != NO_MOVIE
    filled = np.where(valid, candidates, candidates[:, :1])
    scores = np.where(valid, candidate_scores, -np.inf).astype(np.float32)
    new_scores = np.asarray(rank_stage(user_ids, movie_ids[filled], scores), dtype=np.float64)
    if new_scores.shape != candidates.shape:
        raise RecsysError(
            f"The rank stage returned scores of shape {new_scores.shape} for candidates of shape "
            f"{candidates.shape}; it must return one score per candidate."
        )
    new_scores = np.where(valid & np.isfinite(new_scores), new_scores, -np.inf)
    order = np.argsort(-new_scores, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(candidates, order, axis=1)
    top[~np.isfinite(np.take_along_axis(new_scores, order, axis=1))] = NO_MOVIE
    return top


def mean_overlap(first: np.ndarray, second: np.ndarray) -> float:
    """Return the mean share of listed movies that two top lists of the same users have in common."""
    shared = 0
    listed = 0
    for a, b in zip(first, second, strict=True):
        a_set = set(a[a != NO_MOVIE].tolist())
        b_set = set(b[b != NO_MOVIE].tolist())
        shared += len(a_set & b_set)
        listed += max(len(a_set), len(b_set))
    return shared / listed if listed else 1.0
