"""Recommendations for many known users at once, batched at every step."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from towhee_recsys.operators.online_blend import blend_online_ratings
from towhee_recsys.pipelines._resources import Resources
from towhee_recsys.pipelines.updates import unknown_users_error

from towhee_recsys.data.dataset import Id
from towhee_recsys.errors import StoreError
from towhee_recsys.results import Recommendation
from towhee_recsys.stores.base import SearchHit, UserRecord, normalize_ids

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
    recommendations = iter(_attach_details(resources, hits))
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


def _attach_details(resources: Resources, hits: list[list[SearchHit]]) -> list[list[Recommendation]]:
    """Attach title, genres and year to every hit, reading all hit movies in one round trip."""
    movie_ids: list[Id] = list(dict.fromkeys(hit.movie_id for row in hits for hit in row))
    movies = dict(zip(movie_ids, resources.metadata_store.get_movies(movie_ids), strict=True))
    missing = [movie_id for movie_id, movie in movies.items() if movie is None]
    if missing:
        raise StoreError(
            f"Movies {missing[:10]} are in the vector store but missing from the metadata store. "
            "Run `towhee-recsys check --repair`, or `towhee-recsys ingest` again to write both stores."
        )
    return [
        [
            Recommendation(hit.movie_id, movie.title, tuple(movie.genres), movie.year, float(hit.score))
            for hit in row
            for movie in (movies[hit.movie_id],)
        ]
        for row in hits
    ]
