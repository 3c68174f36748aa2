"""Serving from Python: filters in the vector query, batches, online ratings, new movies, threads.

Everything runs on a Paddle model trained on the planted data, Milvus Lite and embedded
Redis. The batch reads of the metadata stores also run on the Redis server, a Redis
Cluster and MySQL, and the filters also run on a Milvus server.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from towhee_recsys.pipelines import check_catalog

from towhee_recsys import (
    InvalidParameterError,
    StoreError,
    UnknownUserError,
    ingest_pipeline,
    recommend_pipeline,
)
from towhee_recsys.data.dataset import Movie, User
from towhee_recsys.data.synthetic import GENRES, planted_dataset
from towhee_recsys.model import ModelConfig, load_model, train
from towhee_recsys.settings import Settings
from towhee_recsys.stores import milvus, open_metadata_store, open_vector_store
from towhee_recsys.stores.milvus import filter_expression

CATALOG_SIZE = 160
NEW_MOVIE_ID = 5001


@pytest.fixture(scope="module")
def planted():
    return planted_dataset()


@pytest.fixture(scope="module")
def model_dir(planted, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    config = ModelConfig(objective="rating", epochs=20, batch_size=256, learning_rate=0.01, seed=1)
    train(planted, config, model_dir=folder, show_progress=False)
    return folder


@pytest.fixture(scope="module")
def model(model_dir):
    return load_model(model_dir)


def ingested_settings(home: Path, model_dir: Path, planted) -> Settings:
    settings = Settings(home=str(home), model_dir=str(model_dir))
    with ingest_pipeline(settings) as ingest:
        ingest(planted, show_progress=False)
    return settings


@pytest.fixture(scope="module")
def shared(planted, model_dir, tmp_path_factory):
    """A pipeline on a catalog that no test changes."""
    settings = ingested_settings(tmp_path_factory.mktemp("shared"), model_dir, planted)
    with recommend_pipeline(settings) as pipeline:
        yield pipeline


@pytest.fixture
def fresh(planted, model_dir, tmp_path):
    """A pipeline on a catalog of its own, for tests that change it."""
    with recommend_pipeline(ingested_settings(tmp_path, model_dir, planted)) as pipeline:
        yield pipeline


def expected_top(model, planted, user_vector, exclude=(), top_k=10, keep=lambda movie: True) -> list:
    """Exact NumPy ranking by inner product over the movies that `keep` accepts."""
    movies = [movie for movie in planted.movies.values() if keep(movie) and movie.movie_id not in set(exclude)]
    scores = model.encode_movies(movies) @ user_vector
    return [movies[i].movie_id for i in np.argsort(-scores, kind="stable")[:top_k]]


def ids(recommendations) -> list:
    return [item.movie_id for item in recommendations]


def assert_same_ranking(got, expected, atol: float = 1e-4) -> None:
    """Assert equal lists up to the order of movies whose scores tie within `atol`.

    Planted movies of one genre get nearly equal vectors, and a batched forward pass
    may round differently from a single one, so near-ties may swap places.
    """
    assert len(got) == len(expected)
    assert np.allclose([item.score for item in got], [item.score for item in expected], atol=atol)
    for mine, theirs in zip(got, expected, strict=True):
        if mine.movie_id != theirs.movie_id:
            assert abs(mine.score - theirs.score) <= atol, (mine, theirs)


# ----- filters inside the vector query -----


def test_genre_filter_exact_top_k(shared, model, planted):
    rated = planted.rated_movie_ids()[1]
    got = shared(1, top_k=10, genres=["Horror"])
    assert len(got) == 10
    assert all("Horror" in item.genres for item in got)
    vector = model.encode_users([planted.users[1]])[0]
    assert ids(got) == expected_top(model, planted, vector, rated, 10, lambda m: "Horror" in m.genres)


def test_genres_match_any(shared, planted):
    rated = set(planted.rated_movie_ids()[2])
    wanted = {"Horror", "Drama"}
    matching = [m for m in planted.movies.values() if wanted & set(m.genres) and m.movie_id not in rated]
    got = shared(2, top_k=CATALOG_SIZE, genres=sorted(wanted))
    assert len(got) == len(matching)
    assert {item.movie_id for item in got} == {m.movie_id for m in matching}


def test_year_filter_bounds(shared, model, planted):
    rated = planted.rated_movie_ids()[3]
    got = shared(3, top_k=15, year_min=1980, year_max=1989)
    assert len(got) == 15
    assert all(1980 <= item.year <= 1989 for item in got)
    vector = model.encode_users([planted.users[3]])[0]
    assert ids(got) == expected_top(model, planted, vector, rated, 15, lambda m: 1980 <= m.year <= 1989)


def test_filters_with_exclusion_count(shared, planted):
    rated = set(planted.rated_movie_ids()[4])
    matching = [m for m in planted.movies.values()
                if "Sci-Fi" in m.genres and m.year >= 1990 and m.movie_id not in rated]
    got = shared(4, top_k=CATALOG_SIZE, genres=["Sci-Fi"], year_min=1990)
    assert len(got) == len(matching)
    assert not rated & set(ids(got))


def test_new_user_with_filter(shared):
    got = shared(gender="F", age=18, occupation=0, top_k=5, genres=["Drama"], year_max=1985)
    assert len(got) == 5
    assert all(item.genres == ("Drama",) and item.year <= 1985 for item in got)


def test_unknown_genre_rejected(shared):
    with pytest.raises(InvalidParameterError) as caught:
        shared(1, genres=["Horor"])
    message = str(caught.value)
    assert "Horor" in message
    for genre in GENRES:
        assert genre in message


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"genres": "Horror"}, "genres"),
        ({"genres": [3]}, "genres"),
        ({"year_min": "1990"}, "year_min"),
        ({"year_max": True}, "year_max"),
        ({"year_min": -1}, "year_min"),
        ({"year_min": 1995, "year_max": 1990}, "year_max"),
    ],
)
def test_invalid_filters_rejected(shared, arguments, named):
    with pytest.raises(InvalidParameterError, match=named):
        shared(1, **arguments)


def test_filter_expression_escapes_names():
    expression = filter_expression(['Say "hi"'], None, 2000)
    assert expression == 'array_contains_any(genres, ["Say \\"hi\\""]) and year >= 0 and year <= 2000'
    assert filter_expression(None, None, None) == ""


def test_collection_without_filter_fields(tmp_path):
    from pymilvus import DataType, MilvusClient

    path = str(tmp_path / "old.db")
    client = MilvusClient(path)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("movie_id", DataType.INT64, is_primary=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=8)
    client.create_collection("old_movies", schema=schema)
    client.close()

    store = open_vector_store(path, collection_name="old_movies", dim=8)
    try:
        with pytest.raises(StoreError) as caught:
            store.open()
        message = str(caught.value)
        assert "towhee-recsys ingest" in message
        assert "'genres'" in message
    finally:
        store.close()


# ----- batch recommendation -----


def test_batch_equals_single_calls(shared, planted):
    user_ids = sorted(planted.users)
    batches = shared.recommend_batch(user_ids, top_k=10)
    assert len(batches) == len(user_ids)
    for user_id, recommendations in zip(user_ids, batches, strict=True):
        single = shared(user_id, top_k=10)
        assert_same_ranking(recommendations, single)
        titles = {item.movie_id: item.title for item in single}
        assert all(item.title == titles.get(item.movie_id, item.title) for item in recommendations)


@pytest.mark.parametrize("top_k", [1, 3, 40, CATALOG_SIZE])
def test_batch_excludes_rated_exactly(shared, planted, top_k):
    rated = planted.rated_movie_ids()
    user_ids = sorted(planted.users)[:60]
    for user_id, recommendations in zip(user_ids, shared.recommend_batch(user_ids, top_k=top_k), strict=True):
        returned = ids(recommendations)
        assert len(returned) == min(top_k, CATALOG_SIZE - len(rated[user_id])), user_id
        assert len(set(returned)) == len(returned)
        assert not set(rated[user_id]) & set(returned)
        assert_same_ranking(recommendations, shared(user_id, top_k=top_k))


def test_batch_with_filters_equals_single(shared, planted):
    user_ids = [5, 6, 7, 8, 9, 10]
    filters = {"genres": ["Comedy", "Horror"], "year_min": 1975, "year_max": 1995}
    for user_id, recommendations in zip(user_ids, shared.recommend_batch(user_ids, top_k=12, **filters), strict=True):
        assert_same_ranking(recommendations, shared(user_id, top_k=12, **filters))
        assert all(1975 <= item.year <= 1995 for item in recommendations)


def test_batch_include_rated(shared, planted):
    user_ids = [1, 2, 3]
    for user_id, recommendations in zip(user_ids, shared.recommend_batch(user_ids, top_k=50, exclude_rated=False),
                                        strict=True):
        assert_same_ranking(recommendations, shared(user_id, top_k=50, exclude_rated=False))


def test_batch_beyond_topk_limit(shared, planted, monkeypatch):
    # A lowered Milvus topk limit makes users with many rated movies take the fallback
    # search with a `not in` expression.
    monkeypatch.setattr(milvus, "MAX_TOP_K", 35)
    user_ids = sorted(planted.users)[:20]
    batches = shared.recommend_batch(user_ids, top_k=30)
    monkeypatch.undo()
    for user_id, recommendations in zip(user_ids, batches, strict=True):
        assert_same_ranking(recommendations, shared(user_id, top_k=30))


def test_batch_unknown_users_named(shared):
    with pytest.raises(UnknownUserError) as caught:
        shared.recommend_batch([1, 90_001, 2, 90_002])
    message = str(caught.value)
    assert "90001" in message
    assert "90002" in message
    assert "skip_unknown" in message


def test_batch_skip_unknown(shared):
    batches = shared.recommend_batch([90_001, 1, 90_002], top_k=4, skip_unknown=True)
    assert batches[0] == []
    assert batches[2] == []
    assert_same_ranking(batches[1], shared(1, top_k=4))
    assert shared.recommend_batch([90_001], skip_unknown=True) == [[]]
    assert shared.recommend_batch([]) == []


def test_batch_accepts_numpy_ids(shared):
    batches = shared.recommend_batch(np.array([3, 4], dtype=np.int64), top_k=5)
    assert [len(items) for items in batches] == [5, 5]
    assert_same_ranking(batches[0], shared(3, top_k=5))


@pytest.mark.parametrize("user_ids", ["123", 5, [1, "2"]])
def test_batch_invalid_ids(shared, user_ids):
    with pytest.raises(InvalidParameterError, match="user_id"):
        shared.recommend_batch(user_ids)


def test_batch_reads_users_once(shared, monkeypatch):
    store = shared.resources.metadata_store
    calls = {"get_users": 0, "get_user": 0, "get_movies": 0}
    for name in calls:
        original = getattr(store, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(store, name, counted)
    shared.recommend_batch(list(range(1, 101)), top_k=10)
    assert calls == {"get_users": 1, "get_user": 0, "get_movies": 1}


# ----- batch reads of every metadata backend -----


def metadata_uri(backend: str, request, tmp_path: Path) -> str:
    if backend == "embedded-redis":
        return str(tmp_path / "metadata.rdb")
    if backend == "redis-server":
        return request.getfixturevalue("redis_server_url")
    if backend == "redis-cluster":
        return request.getfixturevalue("redis_cluster").url
    return request.getfixturevalue("mysql_url")


@pytest.fixture(params=["embedded-redis", "redis-server", "redis-cluster", "mysql"])
def metadata_store(request, tmp_path, unique_prefix):
    store = open_metadata_store(metadata_uri(request.param, request, tmp_path), key_prefix=unique_prefix)
    yield store
    store.clear()
    drop_tables = getattr(store, "drop_tables", None)
    if drop_tables is not None:
        drop_tables()
    store.close()


def test_get_users_matches_get_user(metadata_store, planted):
    user_ids = sorted(planted.users)[:50]
    metadata_store.put_users(planted.users[user_id] for user_id in user_ids)
    rated = planted.rated_movie_ids()
    metadata_store.put_rated({user_id: rated[user_id] for user_id in user_ids})
    metadata_store.put_online_ratings(7, {1: 5.0, 2: 1.5, 155: 4})
    metadata_store.put_users([User(999, "F", 25, 3)])

    query = [*user_ids, 999, 123_456, 7]
    records = metadata_store.get_users(query)
    assert len(records) == len(query)
    for user_id, record in zip(query, records, strict=True):
        assert record == metadata_store.get_user(user_id), user_id
    assert records[-2] is None
    assert records[-3].rated_movie_ids == ()
    assert records[-3].user == User(999, "F", 25, 3)
    seventh = records[-1]
    assert seventh.online_ratings == {1: 5.0, 2: 1.5, 155: 4.0}
    assert {1, 2, 155} <= set(seventh.rated_movie_ids)
    assert seventh.rated_movie_ids == tuple(sorted(set(rated[7]) | {1, 2, 155}))
    assert metadata_store.get_users([]) == []


def test_online_ratings_replace_and_reset(metadata_store):
    metadata_store.put_online_ratings(3, {10: 5.0})
    metadata_store.put_online_ratings(3, {10: 2.0, 11: 4.5})
    record = metadata_store.get_user(3)
    assert record.online_ratings == {10: 2.0, 11: 4.5}
    assert record.rated_movie_ids == (10, 11)

    metadata_store.put_rated({3: [20, 21]})
    record = metadata_store.get_user(3)
    assert record.online_ratings == {}
    assert record.rated_movie_ids == (20, 21)


@pytest.mark.parametrize("rating", [float("nan"), "5", None, True])
def test_online_rating_values_checked(metadata_store, rating):
    with pytest.raises(InvalidParameterError, match="rating"):
        metadata_store.put_online_ratings(3, {10: rating})


# ----- online ratings and new users -----


def genre_share(recommendations, genre: str) -> float:
    return sum(genre in item.genres for item in recommendations) / len(recommendations)


def test_ratings_shift_recommendations(fresh, planted):
    # User 1 loves Comedy. Rating Horror movies highly must bring Horror into the top 10.
    before = fresh(1, top_k=10)
    rated = set(planted.rated_movie_ids()[1])
    horror = [m.movie_id for m in planted.movies.values() if m.genres == ("Horror",) and m.movie_id not in rated]
    assert fresh.record_ratings(1, {movie_id: 5 for movie_id in horror[:6]}) == 6

    after = fresh(1, top_k=10)
    assert genre_share(after, "Horror") > genre_share(before, "Horror")
    assert not set(horror[:6]) & set(ids(after))
    assert_same_ranking(fresh.recommend_batch([1], top_k=10)[0], after)


def test_low_ratings_push_away(fresh, planted):
    rated = set(planted.rated_movie_ids()[1])
    comedies = [m.movie_id for m in planted.movies.values() if m.genres == ("Comedy",) and m.movie_id not in rated]
    before = fresh(1, top_k=10)
    fresh.record_ratings(1, {movie_id: 1 for movie_id in comedies[:8]})
    after = fresh(1, top_k=10)
    assert genre_share(after, "Comedy") < genre_share(before, "Comedy")


def test_rated_movie_excluded_at_once(fresh):
    first = fresh(2, top_k=3)[0].movie_id
    fresh.record_ratings(2, {first: 3})
    assert first not in ids(fresh(2, top_k=10))
    assert first in ids(fresh(2, top_k=CATALOG_SIZE, exclude_rated=False))


def test_rating_again_replaces(fresh, planted):
    rated = set(planted.rated_movie_ids()[1])
    horror = [m.movie_id for m in planted.movies.values() if m.genres == ("Horror",) and m.movie_id not in rated]
    fresh.record_ratings(1, {movie_id: 5 for movie_id in horror[:6]})
    fresh.record_ratings(1, {movie_id: 3 for movie_id in horror[:6]})
    # A rating in the middle of the 1-5 scale moves nothing, so only the exclusion remains.
    after = fresh(1, top_k=10)
    assert genre_share(after, "Horror") == 0
    assert fresh.resources.metadata_store.get_user(1).online_ratings == {movie_id: 3.0 for movie_id in horror[:6]}


@pytest.mark.parametrize("rating", [0, 5.5, -1, float("nan"), "4", None])
def test_invalid_rating_named(fresh, rating):
    with pytest.raises(InvalidParameterError) as caught:
        fresh.record_ratings(1, {1: rating})
    assert repr(rating) in str(caught.value) or str(rating) in str(caught.value)


def test_unknown_movie_rating_rejected(fresh):
    with pytest.raises(InvalidParameterError, match="9999"):
        fresh.record_ratings(1, {9999: 4})
    assert 9999 not in fresh.resources.metadata_store.get_user(1).rated_movie_ids


def test_ratings_of_unknown_user_rejected(fresh):
    with pytest.raises(UnknownUserError, match="register_user"):
        fresh.record_ratings(77_777, {1: 4})


def test_registered_user_gets_recommendations(fresh, planted):
    user = fresh.register_user(70_001, "M", 25, 2)
    assert user == User(70_001, "M", 25, 2)
    got = fresh(70_001, top_k=10)
    assert genre_share(got, "Horror") == 1.0

    sci_fi = [m.movie_id for m in planted.movies.values() if m.genres == ("Sci-Fi",)][:8]
    fresh.record_ratings(70_001, {movie_id: 5 for movie_id in sci_fi})
    after = fresh(70_001, top_k=10)
    assert genre_share(after, "Sci-Fi") > 0
    assert not set(sci_fi) & set(ids(after))
    assert_same_ranking(fresh.recommend_batch([70_001])[0], after)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ((70_002, "X", 25, 2), "gender"),
        ((70_002, "M", 26, 2), "age"),
        ((70_002, "M", 25, 99), "occupation"),
        (("70002", "M", 25, 2), "user_id"),
    ],
)
def test_register_user_invalid(fresh, arguments, named):
    with pytest.raises(InvalidParameterError, match=named):
        fresh.register_user(*arguments)


def test_ingest_resets_online_ratings(fresh, planted):
    fresh.record_ratings(1, {2: 5})
    with ingest_pipeline(fresh.resources.settings) as ingest:
        ingest(planted, show_progress=False)
    record = fresh.resources.metadata_store.get_user(1)
    assert record.online_ratings == {}
    assert record.rated_movie_ids == tuple(sorted(planted.rated_movie_ids()[1]))


# ----- adding and updating movies -----


def test_put_movie_recommendable_at_once(fresh, model):
    movie = fresh.put_movie(NEW_MOVIE_ID, "The Robot Planet Orbit (1999)", ["Sci-Fi"], 1999)
    assert movie == Movie(NEW_MOVIE_ID, "The Robot Planet Orbit (1999)", ("Sci-Fi",), 1999)
    assert fresh.get_movie(NEW_MOVIE_ID) == movie

    stored = fresh.resources.vector_store.get_embeddings([NEW_MOVIE_ID])[NEW_MOVIE_ID]
    assert np.allclose(stored, model.encode_movies([movie])[0], atol=1e-5)
    everything = fresh(4, top_k=CATALOG_SIZE + 1, exclude_rated=False)
    assert NEW_MOVIE_ID in ids(everything)
    filtered = fresh(4, top_k=CATALOG_SIZE, genres=["Sci-Fi"], year_min=1999, year_max=1999)
    assert NEW_MOVIE_ID in ids(filtered)
    assert check_catalog(fresh.resources.settings).consistent


def test_put_movie_updates_filters(fresh):
    fresh.put_movie(3, "The Night 2 (1985)", ["Comedy"], 2001)
    assert fresh.get_movie(3) == Movie(3, "The Night 2 (1985)", ("Comedy",), 2001)
    assert 3 not in ids(fresh(gender="M", age=25, occupation=1, top_k=CATALOG_SIZE, genres=["Horror"]))
    got = fresh(gender="M", age=25, occupation=1, top_k=CATALOG_SIZE, genres=["Comedy"], year_min=2001)
    assert ids(got) == [3]


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ((NEW_MOVIE_ID, "", ["Drama"], 1990), "title"),
        ((NEW_MOVIE_ID, None, ["Drama"], 1990), "title"),
        ((NEW_MOVIE_ID, "Film", ["Western"], 1990), "Western"),
        ((NEW_MOVIE_ID, "Film", "Drama", 1990), "genres"),
        ((NEW_MOVIE_ID, "Film", ["Drama", "Drama"], 1990), "genres"),
        ((NEW_MOVIE_ID, "Film", ["Drama"], "1990"), "year"),
        ((NEW_MOVIE_ID, "Film", ["Drama"], -4), "year"),
        (("5001", "Film", ["Drama"], 1990), "movie_id"),
    ],
)
def test_put_movie_invalid(fresh, arguments, named):
    with pytest.raises(InvalidParameterError, match=named):
        fresh.put_movie(*arguments)
    assert fresh.get_movie(NEW_MOVIE_ID) is None


def test_get_movie_missing(shared):
    assert shared.get_movie(123_456) is None
    assert shared.get_movie(1).movie_id == 1


def test_check_finds_stale_filter_fields(fresh):
    resources = fresh.resources
    movie = resources.metadata_store.get_movies([5])[0]
    vector = resources.vector_store.get_embeddings([5])[5]
    resources.vector_store.upsert([5], vector[None, :], [["Drama", "Horror"]], [1900])

    found = check_catalog(resources.settings)
    assert found.stale_fields == [5]
    assert not found.consistent
    assert check_catalog(resources.settings, repair=True).repaired
    assert resources.vector_store.get_filter_fields([5]) == {5: (movie.genres, movie.year)}
    assert check_catalog(resources.settings).consistent


# ----- threads -----


def test_threads_mix_all_methods(fresh, planted):
    errors: list[BaseException] = []
    expected_batch = [ids(items) for items in fresh.recommend_batch([11, 12, 13], top_k=5)]

    def run(work) -> None:
        try:
            for step in range(6):
                work(step)
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    def recommend(step: int) -> None:
        assert len(fresh(1 + step, top_k=10, genres=["Drama", "Comedy"])) == 10

    def batch(step: int) -> None:
        # Users 11-13 get no new ratings; movies added by put_movie may enter their lists.
        lists = fresh.recommend_batch([11, 12, 13], top_k=5)
        assert [len(items) for items in lists] == [5, 5, 5]
        assert lists and expected_batch

    def rate(step: int) -> None:
        fresh.record_ratings(50 + step, {1 + step: 5, 40 + step: 2})

    def add_movie(step: int) -> None:
        fresh.put_movie(6000 + step, f"The Signal {step} (1998)", ["Sci-Fi"], 1998)

    threads = [threading.Thread(target=run, args=(work,)) for work in (recommend, batch, rate, add_movie) * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for step in range(6):
        assert fresh.get_movie(6000 + step) is not None
        assert {1 + step, 40 + step} <= set(fresh.resources.metadata_store.get_user(50 + step).rated_movie_ids)
    assert check_catalog(fresh.resources.settings).consistent


# ----- operators -----


def test_online_blend_operator(fresh, model, planted):
    from towhee import ops, pipe

    from towhee_recsys import original_errors

    vectors = fresh.resources.vector_store
    blend = (
        pipe.input("embedding", "ratings")
        .map(("embedding", "ratings"), "blended", ops.towhee_recsys.online_blend(store=vectors, weight=1.0))
        .output("blended")
    )
    user_vector = model.encode_users([planted.users[1]])[0]
    movie_vector = vectors.get_embeddings([41])[41]
    with original_errors():
        unchanged = blend(user_vector, {}).get()[0]
        moved = blend(user_vector, {41: 5.0}).get()[0]
    assert np.allclose(unchanged, user_vector)
    expected = user_vector + movie_vector
    assert np.allclose(moved, expected / np.linalg.norm(expected), atol=1e-5)
    assert float(moved @ movie_vector) > float(user_vector @ movie_vector)


def test_user_profile_online_output(fresh):
    from towhee import ops, pipe

    from towhee_recsys import original_errors

    fresh.record_ratings(3, {7: 4.5})
    profile = (
        pipe.input("query")
        .map("query", ("user", "rated", "online"),
             ops.towhee_recsys.user_profile(store=fresh.resources.metadata_store, online_ratings=True))
        .output("user", "rated", "online")
    )
    with original_errors():
        user, rated, online = profile(3).get()
        new_user, nothing, no_ratings = profile(User(None, "F", 18, 1)).get()
    assert user.user_id == 3
    assert 7 in rated
    assert online == {7: 4.5}
    assert (nothing, no_ratings) == ((), {})


# ----- command line -----


def run_cli(*args: str, home: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TOWHEE_RECSYS_HOME": str(home)}
    script = Path(sys.executable).with_name("towhee-recsys")
    return subprocess.run([str(script), "-q", *args], capture_output=True, text=True, env=env, input=stdin,
                          timeout=300)


@pytest.fixture(scope="module")
def cli_home(planted, model_dir, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("cli")
    settings = ingested_settings(home, model_dir, planted)
    (home / "model").symlink_to(settings.model_dir)
    return home


@pytest.fixture(scope="module")
def cli_expected(cli_home):
    with recommend_pipeline(home=cli_home) as pipeline:
        return {user_id: pipeline(user_id, top_k=4, genres=["Drama", "Horror"]) for user_id in range(1, 8)}


def test_cli_batch_jsonl(cli_home, cli_expected, tmp_path):
    ids_file = tmp_path / "users.txt"
    ids_file.write_text("1\n2\n\n3\n4\n5\n6\n7\n")
    output = tmp_path / "out.jsonl"
    result = run_cli("recommend", "--user-ids-file", str(ids_file), "--output", str(output), "--top-k", "4",
                     "--genres", "Drama,Horror", "--batch-size", "3", home=cli_home)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["user_id"] for line in lines] == list(range(1, 8))
    for line in lines:
        expected = [item.to_dict() for item in cli_expected[line["user_id"]]]
        assert [item["movie_id"] for item in line["recommendations"]] == [item["movie_id"] for item in expected]
        assert set(line["recommendations"][0]) == {"movie_id", "title", "genres", "year", "score"}


def test_cli_batch_csv_stdin(cli_home, cli_expected):
    result = run_cli("recommend", "--user-ids-file", "-", "--format", "csv", "--top-k", "4",
                     "--genres", "Drama,Horror", home=cli_home, stdin="2\n5\n")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(row["user_id"], row["rank"]) for row in rows] == [(u, str(r)) for u in ("2", "5") for r in range(1, 5)]
    for row in rows:
        item = cli_expected[int(row["user_id"])][int(row["rank"]) - 1]
        assert int(row["movie_id"]) == item.movie_id
        assert row["title"] == item.title
        assert row["genres"] == "|".join(item.genres)
        assert float(row["score"]) == pytest.approx(item.score)


def test_cli_batch_unknown_user(cli_home, tmp_path):
    ids_file = tmp_path / "users.txt"
    ids_file.write_text("1\n424242\n")
    failed = run_cli("recommend", "--user-ids-file", str(ids_file), home=cli_home)
    assert failed.returncode == 7
    assert "424242" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1

    skipped = run_cli("recommend", "--user-ids-file", str(ids_file), "--skip-unknown", home=cli_home)
    assert skipped.returncode == 0, skipped.stderr
    lines = [json.loads(line) for line in skipped.stdout.splitlines()]
    assert lines[1] == {"user_id": 424242, "recommendations": []}
    assert len(lines[0]["recommendations"]) == 10


def test_cli_failed_batch_leaves_no_output(cli_home, tmp_path):
    ids_file = tmp_path / "users.txt"
    ids_file.write_text("1\n424242\n")
    output = tmp_path / "out.jsonl"
    failed = run_cli("recommend", "--user-ids-file", str(ids_file), "--batch-size", "1", "--output", str(output),
                     home=cli_home)
    assert failed.returncode == 7
    assert not output.exists()
    assert list(tmp_path.glob("out.jsonl*")) == []

    written = run_cli("recommend", "--user-ids-file", str(ids_file), "--skip-unknown", "--output", str(output),
                      home=cli_home)
    assert written.returncode == 0, written.stderr
    assert len(output.read_text().splitlines()) == 2
    assert list(tmp_path.glob("out.jsonl.*")) == []


@pytest.mark.parametrize(
    "extra",
    [["--user-id", "1"], ["--batch-size", "0"], ["--genres", "Western"], ["--explain"]],
)
def test_cli_batch_invalid_options(cli_home, tmp_path, extra):
    ids_file = tmp_path / "users.txt"
    ids_file.write_text("1\n")
    result = run_cli("recommend", "--user-ids-file", str(ids_file), *extra, home=cli_home)
    assert result.returncode == 2, result.stderr


def test_cli_single_user_filters(cli_home, cli_expected):
    result = run_cli("recommend", "--user-id", "3", "--top-k", "4", "--genres", "Drama,Horror", "--json",
                     home=cli_home)
    assert result.returncode == 0, result.stderr
    assert [item["movie_id"] for item in json.loads(result.stdout)] == ids(cli_expected[3])


# ----- Milvus server (slow: starts a Milvus standalone) -----


def test_server_filters_and_batch_exclusion(milvus_server, model, planted, unique_prefix):
    store = open_vector_store(milvus_server.uri, collection_name=f"{unique_prefix}movies", dim=model.dim)
    try:
        movies = list(planted.movies.values())
        store.upsert([m.movie_id for m in movies], model.encode_movies(movies), [m.genres for m in movies],
                     [m.year for m in movies])
        rated = planted.rated_movie_ids()
        users = sorted(planted.users)[:12]
        queries = model.encode_users([planted.users[u] for u in users])
        expression = filter_expression(["Horror", "Drama"], 1980, None)
        hits = store.search(queries, 10, exclude=[rated[u] for u in users], filter=expression)
        for user_id, vector, row in zip(users, queries, hits, strict=True):
            keep = lambda m: bool({"Horror", "Drama"} & set(m.genres)) and m.year >= 1980  # noqa: E731
            assert [hit.movie_id for hit in row] == expected_top(model, planted, vector, rated[user_id], 10, keep)
    finally:
        store.drop()
        store.close()
