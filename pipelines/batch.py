"""Recommendations for many known users at once, batched at every step."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from towhee_recsys.operators.metadata_lookup import lookup_details
from towhee_recsys.operators.online_blend import blend_online_ratings
from towhee_recsys.pipelines._resources import Resources
from towhee_recsys.pipelines.updates import unknown_users_error

from towhee_recsys.results import Recommendation
from towhee_recsys.stores.base import UserRecord, normalize_ids

logger = logging.getLogger(__name__)

# Candidates per user that the rank stage re-scores; the same as a single recommendation.
RANK_CANDIDATES = 200


def recommend_batch(
    resources: Resources,
    user_ids: Sequence[Any],
    *,
    top_k: int,
    exclude_rated: bool,
    expression: str,
    skip_unknown: bool,
    rating_range: tuple[float, float],
    online_weight: float,
    ranker: Any = None,
) -> list[list[Recommendation]]:
    from towhee_recsys.pipelines.recommend import LikedHistory

    """Return the `top_k` recommendations of each user, in the order of `user_ids`.

    One metadata read gets every user's demographics, rated movies and online ratings.
    One forward pass of the user tower encodes them all, vector store searches take up
    to 1024 users each, and one more metadata read gets the details of every movie hit.
    """
    ids = normalize_ids(user_ids, resources.model.vocabularies.id_type, "user_ids")
    records = resources.metadata_store.get_users(ids)
    unknown = [user_id for user_id, record in zip(ids, records, strict=True) if record is None]
    if unknown and not skip_unknown:
        raise unknown_users_error(unknown)
    known = [record for record in records if record is not None]
    if not known:
        return [[] for _ in ids]

    embeddings = _user_vectors(resources, known, rating_range, online_weight)
    exclude = [record.rated_movie_ids if exclude_rated else () for record in known]
    if ranker is None:
        hits = resources.vector_store.search(embeddings, top_k, exclude=exclude, filter=expression)
    else:
        candidates = resources.vector_store.search(
            embeddings, max(top_k, RANK_CANDIDATES), exclude=exclude, filter=expression
        )
        liked = LikedHistory(rating_range)
        hits = [
            ranker.rank_hits(row, liked(record.rated_movie_ids, record.online_ratings), top_k)
            for row, record in zip(candidates, known, strict=True)
        ]
    recommendations = iter(lookup_details(resources.metadata_store, hits))
    return [next(recommendations) if record is not None else [] for record in records]


def _user_vectors(
    resources: Resources, records: list[UserRecord], rating_range: tuple[float, float], online_weight: float
) -> np.ndarray:
    """Encode the users with the user tower, blended with their online ratings."""
    embeddings = resources.model.encode_users([record.user for record in records])
    online = [record.online_ratings for record in records]
    movie_ids = list(dict.fromkeys(movie_id for ratings in online for movie_id in ratings))
    if not movie_ids:
        return embeddings
    movie_vectors = resources.vector_store.get_embeddings(movie_ids)
    return blend_online_ratings(embeddings, online, movie_vectors, *rating_range, online_weight)
