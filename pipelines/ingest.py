"""The ingest pipeline: movies -> features -> vectors -> metadata store + Milvus."""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from towhee_recsys.pipelines._resources import Resources
from tqdm.auto import tqdm

from towhee_recsys.data.dataset import Dataset, Movie
from towhee_recsys.errors import RecsysError
from towhee_recsys.operator_errors import guard_against_pool_deadlock, original_errors
from towhee_recsys.settings import Settings
from towhee_recsys.validation import check_positive_int

logger = logging.getLogger(__name__)

# Movie batches that run through the ingest pipeline at the same time. Two let Paddle and
# the metadata writes of one batch overlap the Milvus upsert of the other. On a busy
# 2-core machine that ingested 1.1 to 1.3 times as many movies per second into Milvus
# Lite as one batch at a time.
BATCHES_IN_FLIGHT = 2


@dataclass(frozen=True)
class IngestReport:
    """Counts after an ingest: what was written, and what each store now holds."""

    movies_written: int
    users_written: int
    vector_count: int
    metadata_movie_count: int


def build_ingest_dag(resources: Resources) -> Any:
    """Return the Towhee pipeline that ingests one batch of movies.

    Metadata is written before vectors, so a movie that search can find always has
    its title: an interrupted batch leaves at most metadata without a vector, which
    the next ingest completes.
    """
    from towhee import ops, pipe

    model, vectors, metadata = resources.model, resources.vector_store, resources.metadata_store
    return (
        pipe.input("movies")
        .map("movies", "features", ops.towhee_recsys.movie_features(model=model))
        .map("features", "embeddings", ops.towhee_recsys.movie_encoder(model=model))
        .map("movies", "written", ops.towhee_recsys.metadata_write(store=metadata))
        .map(("movies", "embeddings", "written"), "upserted", ops.towhee_recsys.milvus_upsert(store=vectors))
        .output("upserted")
    )


class IngestPipeline:
    """Encode a catalog with the model and write it to Milvus and the metadata store.

    Users' demographics and rated movies go to the metadata store too, so that
    recommendations can exclude what a user already rated. Upserts make a repeated
    ingest idempotent: the counts stay the same.
    """

    def __init__(self, resources: Resources, batch_size: int = 1000) -> None:
        self.resources = resources
        self.batch_size = check_positive_int("batch_size", batch_size)
        self._dag = guard_against_pool_deadlock(build_ingest_dag(resources))

    def __call__(self, dataset: Dataset, *, show_progress: bool = True) -> IngestReport:
        """Ingest every movie, user and rated-movie list of `dataset`."""
        metadata = self.resources.metadata_store
        # Until this ingest finishes, the catalog belongs to no model, so an interrupted
        # ingest is never served as a mix of two models' vectors.
        metadata.set_info({"id_type": self.resources.model.vocabularies.id_type, "model_fingerprint": ""})
        if len(dataset.ratings):
            # The rating scale of online ratings: their check and their pull on the user vector.
            ratings = dataset.ratings.rating
            metadata.set_info({"rating_min": float(ratings.min()), "rating_max": float(ratings.max())})

        movies_written = self.ingest_movies(list(dataset.movies.values()), show_progress=show_progress)
        users_written = metadata.put_users(dataset.users.values())
        metadata.put_rated(dataset.rated_movie_ids())
        metadata.set_info({"model_fingerprint": self.resources.model.fingerprint})

        report = IngestReport(
            movies_written=movies_written,
            users_written=users_written,
            vector_count=self.resources.vector_store.count(),
            metadata_movie_count=metadata.count_movies(),
        )
        logger.info("Ingest finished: %s", report)
        return report

    def ingest_movies(self, movies: Sequence[Movie], *, show_progress: bool = True) -> int:
        """Encode and write movies in batches; return how many were written.

        Up to BATCHES_IN_FLIGHT batches run at once, each in its own call of the Towhee
        pipeline, so one batch is encoded and written to the metadata store while
        Milvus stores the previous one. Within a batch, metadata is still written
        before vectors. When a batch fails, the batch already running finishes, and
        then the first failure is raised.
        """
        written = 0
        pending: deque[tuple[int, int, Future[int]]] = deque()
        with (
            tqdm(total=len(movies), desc="ingest", unit="movie", disable=not show_progress) as progress,
            ThreadPoolExecutor(max_workers=BATCHES_IN_FLIGHT, thread_name_prefix="ingest") as pool,
        ):
            for start in range(0, len(movies), self.batch_size):
                batch = list(movies[start : start + self.batch_size])
                pending.append((start, len(batch), pool.submit(self._ingest_batch, batch)))
                if len(pending) >= BATCHES_IN_FLIGHT:
                    written += self._finish_batch(*pending.popleft(), progress)
            while pending:
                written += self._finish_batch(*pending.popleft(), progress)
        return written

    def _ingest_batch(self, batch: list[Movie]) -> int:
        with original_errors():
            row = self._dag(batch).get()
        if row is None:
            raise RecsysError("The ingest pipeline returned no result; this is a bug, please report it.")
        return row[0]

    def _finish_batch(self, start: int, size: int, future: Future[int], progress: Any) -> int:
        written = future.result()
        progress.update(size)
        logger.debug("Ingested movies %d-%d", start, start + size - 1)
        return written

    def close(self) -> None:
        """Release the stores; safe to call more than once."""
        self.resources.close()

    def __enter__(self) -> IngestPipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def ingest_pipeline(
    settings: Settings | None = None,
    *,
    model: Any = None,
    home: str | os.PathLike | None = None,
    model_dir: str | os.PathLike | None = None,
    milvus_uri: str | None = None,
    metadata_uri: str | None = None,
    collection_name: str | None = None,
    key_prefix: str | None = None,
    batch_size: int = 1000,
) -> IngestPipeline:
    """Open an `IngestPipeline` for a trained model (given, or loaded from `model_dir`)."""
    from towhee_recsys.pipelines.recommend import _settings

    settings = _settings(settings, home, model_dir, milvus_uri, metadata_uri, collection_name, key_prefix)
    return IngestPipeline(Resources.open(settings, model=model), batch_size=batch_size)
