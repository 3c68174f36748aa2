"""Operator metadata-write: store movie titles, genres and years."""

from __future__ import annotations

from collections.abc import Sequence

from towhee_recsys.operators._base import MetadataStoreOperator

from towhee_recsys.data.dataset import Movie


class MetadataWrite(MetadataStoreOperator):
    """Write movies to the metadata store; returns the number written.

    Writes are idempotent: a movie written twice is stored once.

    Args:
        store: a `MetadataStore` object, or
        uri: an embedded Redis file path or Redis URL; default from `towhee_recsys.Settings`.
        id_type: "int" or "str".
    """

    name = "towhee-recsys/metadata-write"

    def run(self, movies: Movie | Sequence[Movie]) -> int:
        batch = [movies] if isinstance(movies, Movie) else list(movies)
        return self.store.put_movies(batch)
