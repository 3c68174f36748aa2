"""Our operators inside Towhee pipelines that a user builds, and their errors."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from towhee import ops, pipe
from towhee_recsys.operators import OPERATORS, MovieEncoder, UserEncoder, UserFeatures

import towhee_recsys
from towhee_recsys import InvalidParameterError, StoreError, UnknownUserError, original_errors
from towhee_recsys.data.dataset import Movie, User
from towhee_recsys.data.synthetic import GENRES, planted_dataset
from towhee_recsys.model import ModelConfig, load_model, train
from towhee_recsys.operator_errors import OperatorFailure
from towhee_recsys.stores import open_metadata_store, open_vector_store


@pytest.fixture(scope="module")
def planted():
    return planted_dataset()


@pytest.fixture(scope="module")
def model_dir(planted, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    config = ModelConfig(objective="rating", epochs=20, batch_size=256, learning_rate=0.01, seed=1)
    train(planted, config, model_dir=folder,
          show_progress=False)
    return folder


@pytest.fixture
def stores(tmp_path, planted, model_dir):
    """Milvus Lite and embedded Redis in tmp_path, filled with the planted catalog."""
    model = load_model(model_dir)
    vectors = open_vector_store(str(tmp_path / "milvus.db"), collection_name="movies", dim=model.dim)
    metadata = open_metadata_store(str(tmp_path / "metadata.rdb"))
    movies = list(planted.movies.values())
    metadata.put_movies(movies)
    metadata.put_users(planted.users.values())
    metadata.put_rated(planted.rated_movie_ids())
    vectors.upsert([m.movie_id for m in movies], model.encode_movies(movies), [m.genres for m in movies],
                   [m.year for m in movies])
    yield vectors, metadata
    vectors.close()
    metadata.close()


def test_every_operator_registered():
    from towhee.runtime.operator_manager.operator_registry import OperatorRegistry

    registered = set(OperatorRegistry.op_names())
    for cls in OPERATORS:
        assert cls.name in registered, cls.name
    assert towhee_recsys.__name__ == "towhee_recsys"


def test_every_operator_has_docs():
    for cls in OPERATORS:
        assert cls.__doc__ and len(cls.__doc__) > 80, cls.name
        readme = Path(__import__(cls.__module__, fromlist=["_"]).__file__).with_name("README.md")
        assert readme.is_file(), readme
        text = readme.read_text(encoding="utf-8")
        for heading in ("## Description", "## Code Example", "## Factory Constructor", "## Interface"):
            assert heading in text, (cls.name, heading)


def test_user_built_pipeline_with_our_operators(model_dir, stores):
    vectors, _ = stores
    user_pipe = (
        pipe.input("user")
        .map("user", "features", ops.towhee_recsys.user_features(model_dir=str(model_dir)))
        .map("features", "embedding", ops.towhee_recsys.user_encoder(model_dir=str(model_dir)))
        .map("embedding", "hits", ops.towhee_recsys.milvus_search(store=vectors, top_k=5))
        .map("hits", "movie_ids", lambda hits: [hit.movie_id for hit in hits])
        .output("embedding", "movie_ids")
    )
    embedding, movie_ids = user_pipe(User(None, "F", 25, 2)).get()
    assert embedding.shape == (256,)
    assert len(movie_ids) == 5
    assert all(40 * 2 < movie_id <= 40 * 3 for movie_id in movie_ids)


def test_user_built_pipeline_by_uri(model_dir, stores, tmp_path):
    vectors, metadata = stores
    vectors.close()
    metadata.close()
    user_pipe = (
        pipe.input("user_id")
        .map("user_id", ("user", "rated"), ops.towhee_recsys.user_profile(uri=str(tmp_path / "metadata.rdb")))
        .map("user", "features", ops.towhee_recsys.user_features(model_dir=str(model_dir)))
        .map("features", "embedding", ops.towhee_recsys.user_encoder(model_dir=str(model_dir)))
        .map(("embedding", "rated"), "hits", lambda e, r: (e, r))
        .output("hits")
    )
    embedding, rated = user_pipe(4).get()[0]
    assert embedding.shape == (256,)
    assert len(rated) == 30


def test_movie_encoder_batched_in_own_ingest(model_dir, planted, tmp_path):
    movies = list(planted.movies.values())
    ingest = (
        pipe.input("movies")
        .map("movies", "features", ops.towhee_recsys.movie_features(model_dir=str(model_dir)))
        .map("features", "embeddings", ops.towhee_recsys.movie_encoder(model_dir=str(model_dir), batch_size=7))
        .map(("movies", "embeddings"), "count",
             ops.towhee_recsys.milvus_upsert(uri=str(tmp_path / "own.db"), collection_name="own"))
        .output("embeddings", "count")
    )
    embeddings, count = ingest(movies).get()
    assert embeddings.shape == (len(movies), 256)
    assert count == len(movies)
    np.testing.assert_allclose(embeddings, load_model(model_dir).encode_movies(movies), atol=1e-5)


def test_encoder_loads_model_once(model_dir, monkeypatch):
    from towhee_recsys.model import two_tower

    loads = []
    original = two_tower.RecommenderModel.load.__func__

    def counting_load(cls, folder):
        loads.append(folder)
        return original(cls, folder)

    monkeypatch.setattr(two_tower.RecommenderModel, "load", classmethod(counting_load))
    monkeypatch.setattr("towhee_recsys.model._cache", {})
    features = UserFeatures(model_dir=model_dir)
    encoder = UserEncoder(model_dir=model_dir)
    for occupation in range(4):
        encoder(features(User(None, "M", 18, occupation)))
    assert len(loads) == 1


def test_encoder_thread_safe(model_dir):
    features = UserFeatures(model_dir=model_dir)
    encoder = UserEncoder(model_dir=model_dir)
    users = [User(user_id, "F", 25, user_id % 4) for user_id in range(1, 41)]
    expected = [encoder(features(user)) for user in users]
    results: dict[int, np.ndarray] = {}

    def worker(offset: int) -> None:
        for i in range(offset, len(users), 4):
            results[i] = encoder(features(users[i]))

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, vector in enumerate(expected):
        np.testing.assert_array_equal(results[i], vector)


def test_error_keeps_type_and_message(model_dir, stores):
    _, metadata = stores
    user_pipe = (
        pipe.input("user_id")
        .map("user_id", ("user", "rated"), ops.towhee_recsys.user_profile(store=metadata))
        .output("user")
    )
    with pytest.raises(RuntimeError) as raw:
        user_pipe(123_456)
    assert "towhee_recsys-error-" in str(raw.value)

    with pytest.raises(UnknownUserError, match="User id 123456 is not in the catalog") as caught:
        with original_errors():
            user_pipe(123_456)
    assert "Traceback" not in str(caught.value)


def test_foreign_exception_wrapped(model_dir):
    encoder = MovieEncoder(model_dir=model_dir)
    with pytest.raises(OperatorFailure) as raw:
        encoder("not features")
    with pytest.raises(InvalidParameterError, match="features"):
        with original_errors():
            raise RuntimeError(f"Node failed, error msg: {raw.value}")


def test_missing_metadata_is_error(model_dir, stores, planted):
    vectors, metadata = stores
    metadata.delete_movies([1, 2, 3])
    lookup_pipe = (
        pipe.input("embedding")
        .map("embedding", "hits", ops.towhee_recsys.milvus_search(store=vectors, top_k=160))
        .map("hits", "items", ops.towhee_recsys.metadata_lookup(store=metadata))
        .output("items")
    )
    vector = load_model(model_dir).encode_users([planted.users[1]])[0]
    with pytest.raises(StoreError, match="missing from the metadata store"):
        with original_errors():
            lookup_pipe(vector)


def test_operator_never_returns_none(model_dir):
    encoder = UserEncoder(model_dir=model_dir)
    encoder.run = lambda *args: None
    with pytest.raises(OperatorFailure, match="produced no output"):
        encoder(None)


def test_new_movie_content_vector(model_dir):
    movie = Movie(999_999, "The Robot Planet 3 (1995)", ("Sci-Fi",), 1995)
    features = ops.towhee_recsys.movie_features(model_dir=str(model_dir))
    assert GENRES.index("Sci-Fi") == 3
    vector = MovieEncoder(model_dir=model_dir)(features(movie))
    assert vector.shape == (256,)
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
