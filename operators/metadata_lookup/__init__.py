"""Operator metadata-lookup: search hits to recommendations with titles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from towhee_recsys.operators._base import MetadataStoreOperator

from towhee_recsys.errors import StoreError
from towhee_recsys.results import Recommendation
from towhee_recsys.stores.base import SearchHit
from towhee_recsys.validation import invalid_parameter


class MetadataLookup(MetadataStoreOperator):
    """Attach title, genres and year to search hits, in one store round trip.

    Returns a list of `Recommendation` in the order of the hits. A hit whose movie is
    missing from the metadata store raises StoreError, because the two stores are out
    of step and a silently shorter list would hide it.

    Args:
        store: a `MetadataStore` object, or
        uri: an embedded Redis file path or Redis URL; default from `towhee_recsys.Settings`.
        id_type: "int" or "str".
    """

    name = "towhee-recsys/metadata-lookup"

    def run(self, hits: Sequence[SearchHit]) -> list[Recommendation]:
        if not isinstance(hits, (list, tuple)) or not all(isinstance(hit, SearchHit) for hit in hits):
            raise invalid_parameter("hits", "a list of SearchHit from milvus-search for one query", type(hits).__name__)
        return lookup_details(self.store, [list(hits)])[0]


def lookup_details(store: Any, hits_per_query: list[list[SearchHit]]) -> list[list[Recommendation]]:
    """Attach title, genres and year to the hits of one or more queries, in one store round trip.

    Raises StoreError when a hit's movie is missing from the metadata store, because the two
    stores are then out of step and a silently shorter list would hide it.
    """
    movie_ids = list(dict.fromkeys(hit.movie_id for hits in hits_per_query for hit in hits))
    movies = dict(zip(movie_ids, store.get_movies(movie_ids), strict=True))
    missing = [movie_id for movie_id, movie in movies.items() if movie is None]
    if missing:
        raise StoreError(
            f"Movies {missing[:10]} are in the vector store but missing from the metadata store. "
            "Run `towhee-recsys check --repair`, or `towhee-recsys ingest` again to write both stores."
        )
    recommendations = []
    for hits in hits_per_query:
        row = []
        for hit in hits:
            movie = movies[hit.movie_id]
            row.append(Recommendation(hit.movie_id, movie.title, tuple(movie.genres), movie.year, float(hit.score)))
        recommendations.append(row)
    return recommendations
