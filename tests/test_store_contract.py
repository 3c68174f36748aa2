"""One contract, every backend: each vector store with each metadata store.

The same ingest must give the same counts and the same recommendations on Milvus Lite
and a Milvus server, combined with embedded Redis, a Redis server, a Redis Cluster and
MySQL. A backend whose service is unreachable skips here, but fails in CI (CI=true).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from towhee_recsys.pipelines import check_catalog

from towhee_recsys import ingest_pipeline, recommend_pipeline
from towhee_recsys.data.dataset import Movie
from towhee_recsys.data.synthetic import planted_dataset
from towhee_recsys.model import ModelConfig, load_model, train
from towhee_recsys.settings import Settings
from towhee_recsys.stores import open_metadata_store, open_vector_store

VECTOR_BACKENDS = ["milvus-lite", "milvus-server"]
METADATA_BACKENDS = ["embedded-redis", "redis-server", "redis-cluster", "mysql"]

ODD_MOVIE = Movie(161, "O'Brien; DROP TABLE movies; -- \"Misérables\" \\ 100% (1999)", ("Comedy", "Film-Noir"), 1999)


@pytest.fixture(scope="module")
def catalog():
    """The planted dataset plus one movie whose title looks like an injection."""
    planted = planted_dataset()
    return dataclasses.replace(planted, movies={**planted.movies, ODD_MOVIE.movie_id: ODD_MOVIE})


@pytest.fixture(scope="module")
def model_folder(catalog, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    config = ModelConfig(objective="rating", epochs=20, batch_size=256, learning_rate=0.01, seed=1)
    train(catalog, config, model_dir=folder,
          show_progress=False)
    return folder


@pytest.fixture(scope="module")
def model(model_folder):
    return load_model(model_folder)


def expected_top(model, catalog, user_vector: np.ndarray, exclude: set, top_k: int) -> list:
    """Exact NumPy ranking by inner product, the reference for every backend."""
    movies = list(catalog.movies.values())
    scores = model.encode_movies(movies) @ user_vector
    order = [movies[i].movie_id for i in np.argsort(-scores, kind="stable")]
    return [movie_id for movie_id in order if movie_id not in exclude][:top_k]


def vector_uri(backend: str, request, tmp_path: Path) -> str:
    if backend == "milvus-lite":
        return str(tmp_path / "milvus.db")
    return request.getfixturevalue("milvus_server").uri


def metadata_uri(backend: str, request, tmp_path: Path) -> str:
    if backend == "embedded-redis":
        return str(tmp_path / "metadata.rdb")
    if backend == "redis-server":
        return request.getfixturevalue("redis_server_url")
    if backend == "redis-cluster":
        return request.getfixturevalue("redis_cluster").url
    return request.getfixturevalue("mysql_url")


@pytest.fixture
def settings(request, tmp_path, unique_prefix, model, model_folder):
    vector_backend, metadata_backend = request.param
    settings = Settings(
        home=str(tmp_path),
        model_dir=str(model_folder),
        milvus_uri=vector_uri(vector_backend, request, tmp_path),
        metadata_uri=metadata_uri(metadata_backend, request, tmp_path),
        collection_name=f"{unique_prefix}movies",
        key_prefix=unique_prefix,
    )
    yield settings

    vectors = open_vector_store(settings.milvus_uri, collection_name=settings.collection_name, dim=model.dim)
    vectors.drop()
    vectors.close()
    metadata = open_metadata_store(settings.metadata_uri, key_prefix=unique_prefix)
    metadata.clear()
    drop_tables = getattr(metadata, "drop_tables", None)
    if drop_tables is not None:
        drop_tables()
    metadata.close()


COMBINATIONS = [(v, m) for v in VECTOR_BACKENDS for m in METADATA_BACKENDS]


@pytest.mark.parametrize("settings", COMBINATIONS, ids=[f"{v}+{m}" for v, m in COMBINATIONS], indirect=True)
def test_store_contract(settings, model, catalog):
    with ingest_pipeline(settings, model=model, batch_size=50) as ingest:
        first = ingest(catalog, show_progress=False)
        second = ingest(catalog, show_progress=False)
    for report in (first, second):
        assert report.movies_written == 161
        assert report.vector_count == 161
        assert report.metadata_movie_count == 161
        assert report.users_written == 200

    rated = catalog.rated_movie_ids()
    with recommend_pipeline(settings) as recommend:
        for user_id in (1, 2, 3, 4):
            got = [item.movie_id for item in recommend(user_id, top_k=10)]
            vector = model.encode_users([catalog.users[user_id]])[0]
            assert got == expected_top(model, catalog, vector, set(rated[user_id]), 10), user_id

        new_user = recommend(gender="M", age=35, occupation=3, top_k=10)
        assert [item.genres[0] for item in new_user] == ["Sci-Fi"] * 10

        everything = recommend(1, top_k=500, exclude_rated=False)
        assert len(everything) == 161
        odd = next(item for item in everything if item.movie_id == ODD_MOVIE.movie_id)
        assert odd.title == ODD_MOVIE.title
        assert odd.genres == ODD_MOVIE.genres
        assert odd.year == 1999

    assert check_catalog(settings, model=model).consistent
