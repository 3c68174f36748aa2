"""Compare the vector store with the metadata store, and repair differences."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from towhee_recsys.pipelines._resources import Resources

from towhee_recsys.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogCheck:
    """Movies found in only one of the two stores, or different in them, before any repair.

    Attributes:
        vector_count: movies in the vector store.
        metadata_count: movies in the metadata store.
        missing_vectors: movies with metadata but no vector; search cannot find them.
        missing_metadata: movies with a vector but no metadata; recommending them fails.
        stale_fields: movies in both stores whose genres or year in the vector store
            differ from the metadata, so genre and year filters would judge them wrongly.
        repaired: True when `repair=True` fixed every difference listed here.
        ingest_finished: False when the last ingest was interrupted (or none ran), which
            makes recommend refuse the catalog; only a new ingest fixes that.
    """

    vector_count: int
    metadata_count: int
    missing_vectors: list[Any] = field(default_factory=list)
    missing_metadata: list[Any] = field(default_factory=list)
    stale_fields: list[Any] = field(default_factory=list)
    repaired: bool = False
    ingest_finished: bool = True

    @property
    def consistent(self) -> bool:
        return not self.missing_vectors and not self.missing_metadata and not self.stale_fields


def check_catalog(
    settings: Settings | None = None,
    *,
    repair: bool = False,
    home: str | os.PathLike | None = None,
    model: Any = None,
) -> CatalogCheck:
    """Return the movies present in one store but not the other, and optionally repair them.

    Repair encodes movies that lack a vector or whose vector store genres or year are
    stale with the model and upserts them, and deletes vectors that have no metadata,
    since their titles cannot be recovered.
    """
    settings = settings or Settings(home=str(home or ""))
    resources = Resources.open(settings, model=model)
    try:
        return _check(resources, repair)
    finally:
        resources.close()


def _check(resources: Resources, repair: bool) -> CatalogCheck:
    vector_ids = set(resources.vector_store.ids())
    metadata_ids = set(resources.metadata_store.movie_ids())
    result = CatalogCheck(
        ingest_finished=bool(resources.metadata_store.get_info().get("model_fingerprint")),
        vector_count=len(vector_ids),
        metadata_count=len(metadata_ids),
        missing_vectors=sorted(metadata_ids - vector_ids, key=str),
        missing_metadata=sorted(vector_ids - metadata_ids, key=str),
        stale_fields=_stale_fields(resources, sorted(vector_ids & metadata_ids, key=str)),
    )
    if result.consistent or not repair:
        return result

    if result.missing_vectors or result.stale_fields:
        _upsert_vectors(resources, result.missing_vectors + result.stale_fields)
    if result.missing_metadata:
        deleted = resources.vector_store.delete(result.missing_metadata)
        logger.info("Deleted %d vectors that had no metadata", deleted)
    return CatalogCheck(**{**result.__dict__, "repaired": True})


def _stale_fields(resources: Resources, movie_ids: list[Any]) -> list[Any]:
    """Return the movies whose genres or year differ between the two stores."""
    stored = resources.vector_store.get_filter_fields(movie_ids)
    movies = resources.metadata_store.get_movies(movie_ids)
    return [
        movie.movie_id
        for movie in movies
        if movie is not None and stored.get(movie.movie_id, (movie.genres, movie.year)) != (movie.genres, movie.year)
    ]


def _upsert_vectors(resources: Resources, movie_ids: list[Any]) -> None:
    movies = [movie for movie in resources.metadata_store.get_movies(movie_ids) if movie is not None]
    vectors = resources.model.encode_movies(movies)
    resources.vector_store.upsert(
        [movie.movie_id for movie in movies],
        vectors,
        [movie.genres for movie in movies],
        [movie.year for movie in movies],
    )
    logger.info("Encoded and upserted %d movies that had no vector or stale genres or year", len(movies))
