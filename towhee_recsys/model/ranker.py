"""The rank stage: re-scores the two-tower recall candidates with a user's whole history.

The recall stage compares one user vector with one movie vector. The rank stage reads
what the user rated, movie by movie. Its item-to-item model, known as EASE, is a ridge
regression of each movie's column of the user-movie matrix on all other movies' columns,
solved in closed form. It scores a candidate by how strongly the user's rated movies
predict it. That score and the recall cosine are standardized over the candidates of a
request and blended with weight `blend` on the item-to-item part.

The same weights explain a recommendation: the rated movies with the largest weight
towards it are the ones that "support" it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from towhee_recsys.data.dataset import Dataset, Id
from towhee_recsys.errors import DatasetError, ModelError
from towhee_recsys.validation import invalid_parameter

logger = logging.getLogger(__name__)

RANKER_FOLDER = "ranker"
_WEIGHTS_FILE = "weights.npy"
_CONFIG_FILE = "ranker.json"
_FORMAT_VERSION = 1
# Each movie costs a row and a column of float32 weights: 20,000 movies take 1.6 GB.
MAX_MOVIES = 20_000


class HistoryRanker:
    """Item-to-item re-scoring of recall candidates from a user's rated movies.

    Attributes:
        movie_ids: the movies the weights cover, in weight order.
        weights: (n, n) float32 array; weights[i, j] is how much having rated movie i
            raises the score of movie j (the diagonal is 0).
        blend: weight of the standardized item-to-item score against the standardized
            recall score, in [0, 1].
        regularization: the L2 penalty the weights were fitted with.
    """

    def __init__(self, movie_ids: Sequence[Id], weights: np.ndarray, blend: float, regularization: float) -> None:
        self.movie_ids = list(movie_ids)
        self.weights = weights
        self.blend = _check_blend(blend)
        self.regularization = regularization
        self._position = {movie_id: index for index, movie_id in enumerate(self.movie_ids)}

    def __deepcopy__(self, memo: dict) -> HistoryRanker:
        # Shared read-only handle, like the model, when Towhee copies operator arguments.
        return self

    @classmethod
    def fit(
        cls,
        dataset: Dataset,
        *,
        regularization: float = 500.0,
        blend: float = 0.7,
        positive_rating: float | None = None,
    ) -> HistoryRanker:
        """Fit the item-to-item weights on a dataset's ratings.

        Args:
            regularization: L2 penalty; larger values shrink weights of rarely co-rated pairs.
                The default, 500, and the default blend, 0.7, scored best on the recbole
                protocol's validation split among 250/500/1000 and 0.5/0.7/0.85/1.0.
            blend: weight of the item-to-item score in the final score.
            positive_rating: count only ratings >= this value as interactions; None counts all.
        """
        if not isinstance(regularization, (int, float)) or regularization <= 0:
            raise invalid_parameter("regularization", "a number > 0", regularization)
        ratings = dataset.ratings
        keep = np.ones(len(ratings), dtype=bool) if positive_rating is None else ratings.rating >= positive_rating
        if not keep.any():
            raise DatasetError(f"Dataset {dataset.name!r} has no ratings to fit the rank stage on.")
        user_ids, user_rows = np.unique(ratings.user_id[keep], return_inverse=True)
        movie_ids, movie_rows = np.unique(ratings.movie_id[keep], return_inverse=True)
        if len(movie_ids) > MAX_MOVIES:
            raise DatasetError(
                f"Dataset {dataset.name!r} has {len(movie_ids)} movies, more than the rank stage's maximum of "
                f"{MAX_MOVIES} (it stores a movie-by-movie matrix). Serve it without the rank stage."
            )
        interactions = np.zeros((len(user_ids), len(movie_ids)), dtype=np.float32)
        interactions[user_rows.reshape(-1), movie_rows.reshape(-1)] = 1.0
        weights = fit_item_weights(interactions, regularization)
        logger.info("Fitted the rank stage on %d users x %d movies", len(user_ids), len(movie_ids))
        return cls(movie_ids.tolist(), weights, blend, float(regularization))

    def positions(self, movie_ids: Sequence[Id]) -> np.ndarray:
        """Return each movie's row in the weights, -1 for movies the ranker never saw."""
        return np.array([self._position.get(movie_id, -1) for movie_id in movie_ids], dtype=np.int64)

    def history_scores(self, history: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Item-to-item scores of candidate rows for a history of rows (-1 rows count zero)."""
        history = history[history >= 0]
        scores = np.zeros(len(candidates), dtype=np.float32)
        known = candidates >= 0
        if len(history) and known.any():
            scores[known] = self.weights[np.ix_(history, candidates[known])].sum(axis=0)
        return scores

    def rescore(self, history: np.ndarray, candidates: np.ndarray, recall_scores: np.ndarray) -> np.ndarray:
        """Blend standardized recall scores with standardized item-to-item scores.

        `history` and `candidates` are rows from `positions`. A user with no known history
        keeps the recall scores' order.
        """
        recall = _standardize(np.asarray(recall_scores, dtype=np.float32))
        if not (history >= 0).any():
            return recall
        item = _standardize(self.history_scores(history, candidates))
        return (1.0 - self.blend) * recall + self.blend * item

    def rank_hits(self, hits: Sequence[Any], rated_movie_ids: Sequence[Id], top_k: int) -> list[Any]:
        """Re-score search hits (`SearchHit`s) with `rescore` and return the best `top_k`, best first."""
        from towhee_recsys.stores.base import SearchHit

        hits = list(hits)
        if not hits:
            return []
        scores = self.rescore(
            self.positions(list(rated_movie_ids)),
            self.positions([hit.movie_id for hit in hits]),
            np.array([hit.score for hit in hits], dtype=np.float32),
        )
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [SearchHit(hits[i].movie_id, float(scores[i])) for i in order]

    def supporters(self, history: np.ndarray, candidate: int, count: int = 3) -> list[tuple[int, float]]:
        """Return up to `count` (history row, weight) pairs with the largest positive weight."""
        history = history[history >= 0]
        if candidate < 0 or not len(history):
            return []
        contributions = self.weights[history, candidate]
        order = np.argsort(-contributions, kind="stable")[:count]
        return [(int(history[i]), float(contributions[i])) for i in order if contributions[i] > 0]

    def save(self, model_dir: str | os.PathLike) -> Path:
        """Write the ranker to `<model_dir>/ranker/` next to the two-tower model."""
        folder = Path(model_dir).expanduser() / RANKER_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / _WEIGHTS_FILE, self.weights, allow_pickle=False)
        config = {
            "format_version": _FORMAT_VERSION,
            "movie_ids": self.movie_ids,
            "blend": self.blend,
            "regularization": self.regularization,
        }
        (folder / _CONFIG_FILE).write_text(json.dumps(config), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> HistoryRanker:
        """Read a ranker saved by `save`; raise ModelError if it is missing or damaged."""
        folder = Path(model_dir).expanduser() / RANKER_FOLDER
        try:
            config = json.loads((folder / _CONFIG_FILE).read_text(encoding="utf-8"))
            weights = np.load(folder / _WEIGHTS_FILE, allow_pickle=False)
        except FileNotFoundError as error:
            raise ModelError(
                f"Model folder '{model_dir}' has no rank stage. Train it with `towhee-recsys train --rank-stage` "
                "or call HistoryRanker.fit(dataset).save(model_dir)."
            ) from error
        except (OSError, ValueError) as error:
            raise ModelError(f"The rank stage in '{folder}' is damaged ({error}); train it again.") from error
        if config.get("format_version") != _FORMAT_VERSION:
            raise ModelError(
                f"The rank stage in '{folder}' has format version {config.get('format_version')!r}; "
                f"this version reads {_FORMAT_VERSION}. Train it again."
            )
        try:
            movie_ids, blend, regularization = config["movie_ids"], config["blend"], config["regularization"]
        except (KeyError, TypeError) as error:
            raise ModelError(f"The rank stage in '{folder}' is damaged (missing {error}); train it again.") from error
        count = len(movie_ids)
        if weights.shape != (count, count):
            raise ModelError(f"The rank stage in '{folder}' has weights of shape {weights.shape} for {count} movies.")
        return cls(movie_ids, weights, blend, regularization)


def remove_ranker(model_dir: str | os.PathLike) -> bool:
    """Delete the rank stage of a model folder, if any; return whether one was there."""
    import shutil

    folder = Path(model_dir).expanduser() / RANKER_FOLDER
    if not folder.exists():
        return False
    shutil.rmtree(folder)
    logger.info("Removed the rank stage in %s", folder)
    return True


def fit_item_weights(interactions: np.ndarray, regularization: float) -> np.ndarray:
    """Closed-form EASE weights of a (users, movies) 0/1 matrix, with a zero diagonal."""
    gram = (interactions.T @ interactions).astype(np.float64)
    gram[np.diag_indices_from(gram)] += regularization
    precision = np.linalg.inv(gram)
    weights = precision / (-np.diag(precision))
    weights[np.diag_indices_from(weights)] = 0.0
    return weights.astype(np.float32)


def _standardize(values: np.ndarray) -> np.ndarray:
    if len(values) < 2:
        return np.zeros_like(values)
    spread = float(values.std())
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


def _check_blend(blend: float) -> float:
    if isinstance(blend, bool) or not isinstance(blend, (int, float)) or not 0.0 <= blend <= 1.0:
        raise invalid_parameter("blend", "a number in [0, 1]", blend)
    return float(blend)


class HistoryRankStage:
    """The rank stage in the shape evaluation calls it (`towhee_recsys.evaluation.RankStage`).

    `fit` fits a `HistoryRanker` on a protocol's training split and keeps each user's
    training movies as the history. Calling it re-scores candidates one user at a time,
    with the same `HistoryRanker.rescore` as the served rank stage.
    """

    def __init__(self, *, regularization: float = 500.0, blend: float = 0.7) -> None:
        self.regularization = regularization
        self.blend = _check_blend(blend)
        self.ranker: HistoryRanker | None = None
        self.history: dict[Id, np.ndarray] = {}

    def fit(self, train_dataset: Dataset, model: object = None) -> None:
        self.ranker = HistoryRanker.fit(train_dataset, regularization=self.regularization, blend=self.blend)
        self.history = {
            user_id: self.ranker.positions(movie_ids)
            for user_id, movie_ids in train_dataset.rated_movie_ids().items()
        }

    def __call__(self, user_ids: np.ndarray, movie_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.ranker is None:
            raise ModelError("The rank stage is not fitted; call fit(train_dataset) first.")
        empty = np.zeros(0, dtype=np.int64)
        rescored = np.empty(scores.shape, dtype=np.float32)
        for row, user_id in enumerate(user_ids.tolist()):
            finite = np.isfinite(scores[row])
            rescored[row] = -np.inf
            rescored[row, finite] = self.ranker.rescore(
                self.history.get(user_id, empty),
                self.ranker.positions(movie_ids[row, finite].tolist()),
                scores[row, finite],
            )
        return rescored
