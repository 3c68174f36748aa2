"""Operator online-blend: move user vectors towards the movies rated online."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from towhee_recsys.operators._base import VectorStoreOperator

from towhee_recsys.data.dataset import Id
from towhee_recsys.validation import invalid_parameter

DEFAULT_WEIGHT = 0.5
# Norm below which a blended vector counts as zero and the tower's vector is kept.
MIN_NORM = 1e-6


class OnlineBlend(VectorStoreOperator):
    """Blend the user tower's vector with the movies the user rated online, without retraining.

    For a user vector u and online ratings r_i of movies with stored vectors m_i,
    the output is the unit vector in the direction of

        u + weight * sum_i ((r_i - center) / half_range) * m_i

    where center and half_range are the middle and half the width of the rating
    scale. This is Rocchio's relevance-feedback update: a rating above the middle
    pulls the user towards the movie, one below pushes the user away, and a rating
    at either end of the scale moves the vector by `weight` times a movie vector.
    Ratings are stored, not the sum, so rating a movie again replaces its earlier
    rating. A user without online ratings keeps the tower's vector and costs no
    store call; otherwise the movie vectors come from one vector store query.

    Inputs, by position: one vector and one mapping of movie id to rating (returns a
    vector), or an (n, dim) matrix and a list of n mappings (returns a matrix).

    Args:
        store / uri / collection_name / dim / id_type: see milvus-upsert.
        rating_min, rating_max: ends of the rating scale (default 1 and 5, as in MovieLens).
        weight: shift of the user vector per rating at an end of the scale (default 0.5).
    """

    name = "towhee-recsys/online-blend"

    def __init__(
        self,
        store: Any = None,
        uri: str | None = None,
        collection_name: str | None = None,
        dim: int = 256,
        id_type: str = "int",
        rating_min: float = 1.0,
        rating_max: float = 5.0,
        weight: float = DEFAULT_WEIGHT,
    ) -> None:
        super().__init__(store=store, uri=uri, collection_name=collection_name, dim=dim, id_type=id_type)
        self.rating_min, self.rating_max = check_rating_scale(rating_min, rating_max)
        self.weight = check_weight(weight, "weight")

    def run(self, embedding: np.ndarray, online_ratings: Mapping[Id, float] | Sequence[Mapping[Id, float]]) -> Any:
        vectors = np.asarray(embedding, dtype=np.float32)
        single = vectors.ndim == 1
        matrix = vectors[None, :] if single else vectors
        ratings = [online_ratings] if single else list(online_ratings)
        if matrix.ndim != 2 or len(ratings) != len(matrix):
            expected = "one vector and one mapping, or an (n, dim) matrix and n mappings"
            raise invalid_parameter("online_ratings", expected, f"{len(ratings)} for shape {vectors.shape}")

        movie_ids = list(dict.fromkeys(movie_id for user_ratings in ratings for movie_id in user_ratings))
        movie_vectors = self.store.get_embeddings(movie_ids) if movie_ids else {}
        blended = blend_online_ratings(
            matrix, ratings, movie_vectors, self.rating_min, self.rating_max, self.weight
        )
        return blended[0] if single else blended


def blend_online_ratings(
    embeddings: np.ndarray,
    online_ratings: Sequence[Mapping[Id, float]],
    movie_vectors: Mapping[Id, np.ndarray],
    rating_min: float,
    rating_max: float,
    weight: float = DEFAULT_WEIGHT,
) -> np.ndarray:
    """Return `embeddings` with each row blended with its user's online ratings (see OnlineBlend).

    Rows without online ratings come back unchanged. A rated movie without a vector in
    `movie_vectors` (deleted from the catalog) is skipped.
    """
    center = (rating_min + rating_max) / 2
    half_range = (rating_max - rating_min) / 2 or 1.0
    blended = np.array(embeddings, dtype=np.float32, copy=True)
    for row, user_ratings in enumerate(online_ratings):
        known = [
            (movie_vectors[movie_id], rating) for movie_id, rating in user_ratings.items() if movie_id in movie_vectors
        ]
        if not known:
            continue
        vectors = np.stack([vector for vector, _ in known])
        pulls = np.array([(rating - center) / half_range for _, rating in known], dtype=np.float32)
        shifted = blended[row] + weight * (pulls @ vectors)
        norm = float(np.linalg.norm(shifted))
        if norm > MIN_NORM:
            blended[row] = shifted / norm
    return blended


def check_rating_scale(rating_min: Any, rating_max: Any) -> tuple[float, float]:
    """Return the rating scale's ends as floats, or raise InvalidParameterError."""
    for name, value in (("rating_min", rating_min), ("rating_max", rating_max)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise invalid_parameter(name, "a finite number", value)
    if rating_min > rating_max:
        raise invalid_parameter("rating_max", f"a number >= rating_min ({rating_min})", rating_max)
    return float(rating_min), float(rating_max)


def check_weight(weight: Any, name: str = "online_weight") -> float:
    """Return `weight` as a float if it is a finite number >= 0, else raise InvalidParameterError."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not np.isfinite(weight) or weight < 0:
        raise invalid_parameter(name, "a finite number >= 0", weight)
    return float(weight)
