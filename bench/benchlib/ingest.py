"""Ingest throughput: the dataset's catalog and a large generated catalog, each next to its raw floor."""

from __future__ import annotations

import logging
import shutil
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib.report import Row
from benchlib.synthetic_movies import synthetic_movies
from benchlib.workspace import Workspace, raw_milvus_client, raw_redis_client
from towhee_recsys.data.dataset import Movie

logger = logging.getLogger("bench")

SECTION = "ingest"
CATALOG_TARGET_SECONDS = 1.0
SYNTHETIC_TARGET_RATE = 25_000.0
# Rows per Redis pipeline and per Milvus insert request of the floor, the same as the ingest pipeline's batch.
FLOOR_BATCH = 1000
NOTES = [
    "**ingest**: `IngestPipeline.ingest_movies(movies)` into a new collection and key prefix (stores opened "
    "before the clock starts): movie features and the movie tower, the metadata write and the Milvus upsert, "
    "in batches of 1,000. Its floor does the same work with the raw parts: one `model.encode_movies()` call, "
    "redis-py pipelines of HSET (1,000 per pipeline) and pymilvus `insert` of 1,000 rows per request into a "
    "new collection of the same schema. The catalog figure is the median of several runs. The generated "
    "catalog (titles, genres and years drawn from the real catalog, new ids) runs once each way. The floor "
    "adds its parts one after another, while the pipeline overlaps two batches, so it can beat the floor. "
    "Milvus Lite 3.2 runs its storage engine in Python inside the benchmark process, and it also writes "
    "its memory table to disk inside some inserts, so its insert is the largest part of the floor.",
]


@dataclass
class FloorTimes:
    """Seconds of each raw part of an ingest."""

    encode: float
    redis: float
    milvus: float

    @property
    def total(self) -> float:
        return self.encode + self.redis + self.milvus

    def describe(self) -> str:
        return f"floor = encode {self.encode:.2f} s + Redis {self.redis:.2f} s + Milvus insert {self.milvus:.2f} s"


def run(workspace: Workspace, repeats: int, synthetic_count: int) -> list[Row]:
    """Measure the catalog ingest `repeats` times and one ingest of `synthetic_count` generated movies."""
    model = workspace.ensure_model()
    movies = list(workspace.dataset.movies.values())
    rows = [_catalog_row(workspace, model, movies, repeats)]
    if synthetic_count > 0:
        rows += _synthetic_rows(workspace, model, movies, synthetic_count)
    return rows


def _catalog_row(workspace: Workspace, model: Any, movies: list[Movie], repeats: int) -> Row:
    folder = workspace.root / "ingest-catalog"
    ours, floors = [], []
    for attempt in range(repeats):
        ours.append(time_ingest(folder, model, movies, f"bench_catalog_{attempt}")[0])
        floors.append(time_floor(folder, model, movies, f"bench_floor_{attempt}"))
    shutil.rmtree(folder, ignore_errors=True)

    value = statistics.median(ours)
    floor = min(floors, key=lambda times: times.total)
    target = workspace.is_movielens
    return Row(
        SECTION,
        f"{len(movies):,} catalog movies",
        value,
        "s",
        floor=statistics.median(times.total for times in floors),
        floor_name="raw parts",
        target=f"<= {CATALOG_TARGET_SECONDS:g} s" if target else "",
        passed=value <= CATALOG_TARGET_SECONDS if target else None,
        note=f"median of {repeats}; fastest {floor.describe()}",
    )


def _synthetic_rows(workspace: Workspace, model: Any, catalog: list[Movie], count: int) -> list[Row]:
    id_type = model.vocabularies.id_type
    movies = synthetic_movies(count, catalog, id_type=id_type)

    folder = workspace.root / "ingest-synthetic"
    seconds, close_seconds = time_ingest(folder, model, movies, "bench_synthetic")
    shutil.rmtree(folder, ignore_errors=True)
    floor = time_floor(folder, model, movies, "bench_synthetic_floor")
    shutil.rmtree(folder, ignore_errors=True)

    rate = count / seconds
    return [
        Row(
            SECTION,
            f"{count:,} generated movies",
            rate,
            "movies/s",
            floor=count / floor.total,
            floor_name="raw parts",
            target=f">= {SYNTHETIC_TARGET_RATE:,.0f} movies/s",
            passed=rate >= SYNTHETIC_TARGET_RATE,
            higher_is_better=True,
            note=f"{seconds:.1f} s; {floor.describe()}",
        ),
        Row(SECTION, f"close after {count:,} movies", close_seconds, "s",
            note="Milvus Lite writes its memory table to disk when the last client closes; not in the rate"),
    ]


def time_ingest(folder: Path, model: Any, movies: Sequence[Movie], name: str) -> tuple[float, float]:
    """Ingest `movies` through the ingest pipeline into a new collection; return (ingest, close) seconds."""
    from towhee_recsys import ingest_pipeline

    pipeline = ingest_pipeline(home=folder, model=model, collection_name=name, key_prefix=f"{name}:")
    try:
        pipeline.resources.metadata_store.open()
        started = time.perf_counter()
        written = pipeline.ingest_movies(movies, show_progress=False)
        seconds = time.perf_counter() - started
    finally:
        closing = time.perf_counter()
        pipeline.close()
        close_seconds = time.perf_counter() - closing
    if written != len(movies):
        raise RuntimeError(f"The ingest pipeline wrote {written} of {len(movies)} movies.")
    logger.info("Ingested %d movies in %.2f s (close %.2f s)", len(movies), seconds, close_seconds)
    return seconds, close_seconds


def time_floor(folder: Path, model: Any, movies: Sequence[Movie], name: str) -> FloorTimes:
    """Write `movies` with the raw clients into a new collection and key prefix; return the part times."""
    from towhee_recsys.stores import open_metadata_store, open_vector_store

    id_type = model.vocabularies.id_type
    vector_store = open_vector_store(str(folder / "milvus.db"), collection_name=name, dim=model.dim, id_type=id_type)
    metadata_store = open_metadata_store(str(folder / "metadata.rdb"), id_type=id_type, key_prefix=f"{name}:")
    try:
        vector_store.open()  # creates the collection with the store's schema, outside the timed part
        redis_client = raw_redis_client(metadata_store)
        milvus_client = raw_milvus_client(vector_store)
        try:
            return _write_raw(model, movies, name, redis_client, milvus_client)
        finally:
            redis_client.close()
            milvus_client.close()
    finally:
        vector_store.close()
        metadata_store.close()


def _write_raw(model: Any, movies: Sequence[Movie], name: str, redis_client: Any, milvus_client: Any) -> FloorTimes:
    started = time.perf_counter()
    vectors = model.encode_movies(movies)
    encoded = time.perf_counter()

    for start in range(0, len(movies), FLOOR_BATCH):
        pipe = redis_client.pipeline(transaction=False)
        for movie in movies[start : start + FLOOR_BATCH]:
            fields = {
                "title": movie.title,
                "genres": "|".join(movie.genres),
                "year": "" if movie.year is None else str(movie.year),
            }
            pipe.hset(f"{name}:{{movies}}:{movie.movie_id}", mapping=fields)
        pipe.execute()
    written = time.perf_counter()

    for start in range(0, len(movies), FLOOR_BATCH):
        rows = [
            {
                "movie_id": movie.movie_id,
                "embedding": vector,
                "genres": list(movie.genres),
                "year": -1 if movie.year is None else movie.year,
            }
            for movie, vector in zip(movies[start : start + FLOOR_BATCH], vectors[start : start + FLOOR_BATCH],
                                     strict=True)
        ]
        milvus_client.insert(name, rows)
    inserted = time.perf_counter()
    return FloorTimes(encode=encoded - started, redis=written - encoded, milvus=inserted - written)
