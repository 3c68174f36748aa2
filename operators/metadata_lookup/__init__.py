"""Operator metadata-lookup: search hits to recommendations with titles."""

from __future__ import annotations

from collections.abc import Sequence

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
        hits = list(hits)
        movies = self.store.get_movies([hit.movie_id for hit in hits])
        missing = [hit.movie_id for hit, movie in zip(hits, movies, strict=True) if movie is None]
        if missing:
            raise StoreError(
                f"Movies {missing[:10]} are in the vector store but missing from the metadata store. "
                "Run `towhee-recsys ingest` again to write both stores."
            )
        return [
            Recommendation(movie.movie_id, movie.title, tuple(movie.genres), movie.year, float(hit.score))
            for hit, movie in zip(hits, movies, strict=True)
        ]
