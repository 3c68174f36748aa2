"""Operator milvus-upsert: write movie vectors into the Milvus collection."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from towhee_recsys.operators._base import VectorStoreOperator

from towhee_recsys.data.dataset import Movie
from towhee_recsys.validation import invalid_parameter


class MilvusUpsert(VectorStoreOperator):
    """Upsert movies with their vectors, genres and year; returns the number written.

    Upsert by primary key `movie_id` makes a repeated ingest leave the same count.

    Args:
        store: a `VectorStore` object, or
        uri: a Milvus Lite path or Milvus server URI; default from `towhee_recsys.Settings`.
        collection_name: collection of movie vectors (default "towhee_recsys_movies").
        dim: vector dimension, used when the collection is created (default 256).
        id_type: "int" or "str" primary key.
    """

    name = "towhee-recsys/milvus-upsert"

    def run(self, movies: Movie | Sequence[Movie], embeddings: np.ndarray, *_ignored: object) -> int:
        batch = [movies] if isinstance(movies, Movie) else list(movies)
        vectors = np.asarray(embeddings, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        if len(batch) != len(vectors):
            raise invalid_parameter("embeddings", f"{len(batch)} rows, one per movie", f"{len(vectors)} rows")
        return self.store.upsert(
            [movie.movie_id for movie in batch],
            vectors,
            [movie.genres for movie in batch],
            [movie.year for movie in batch],
        )
