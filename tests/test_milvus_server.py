"""MilvusVectorStore against a Milvus 2.3 standalone server on 127.0.0.1.

The server is the session fixture `milvus_server`. It skips these tests where the
`milvus` package is missing, and fails them in CI (CI=true). Every test works in its
own collection named with `unique_prefix` and drops it afterwards.
"""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from towhee_recsys.errors import InvalidParameterError, StoreError
from towhee_recsys.stores import MilvusVectorStore
from towhee_recsys.testing import MilvusServerProcess

DIM = 8
ODD_IDS = [
    "plain",
    "O'Brien; DROP TABLE movies; --",
    'double"quote',
    "back\\slash",
    'end\\"',
    "new\nline",
    "Misérables 映画",
]


def unit_vectors(count: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def fill(store: MilvusVectorStore, count: int, seed: int = 0) -> tuple[list[int], np.ndarray]:
    ids = list(range(100, 100 + count))
    vectors = unit_vectors(count, seed)
    store.upsert(ids, vectors, [["Drama"]] * count, [1990 + i % 20 for i in range(count)])
    return ids, vectors


def numpy_ranking(vectors: np.ndarray, ids: list, query: np.ndarray, excluded=()) -> list:
    """Return all ids ordered by descending inner product with `query`, minus `excluded`."""
    order = np.argsort(-(vectors @ query), kind="stable")
    return [ids[i] for i in order if ids[i] not in set(excluded)]


def closed_port() -> int:
    """Return a loopback port that nothing listens on (free when this returns)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def open_server_store(server: MilvusServerProcess, collection_name: str, **options) -> MilvusVectorStore:
    return MilvusVectorStore(server.uri, collection_name=collection_name, dim=DIM, **options)


def drop_if_running(server: MilvusServerProcess, store: MilvusVectorStore) -> None:
    if server.running:
        store.drop()
    store.close()


@pytest.fixture
def server_store(milvus_server, unique_prefix):
    store = open_server_store(milvus_server, f"{unique_prefix}movies")
    yield store
    drop_if_running(milvus_server, store)


# ----- round trip -----


def test_server_search_matches_numpy(server_store):
    ids, vectors = fill(server_store, 50)
    queries = unit_vectors(3, seed=1)

    results = server_store.search(queries, 5)

    assert server_store.count() == 50
    for query, hits in zip(queries, results, strict=True):
        assert [hit.movie_id for hit in hits] == numpy_ranking(vectors, ids, query)[:5]
        expected_scores = np.sort(vectors @ query)[::-1][:5]
        np.testing.assert_allclose([hit.score for hit in hits], expected_scores, atol=1e-5)


def test_server_exclude_and_filter(server_store):
    ids, vectors = fill(server_store, 50)
    query = unit_vectors(1, seed=2)[0]
    excluded = numpy_ranking(vectors, ids, query)[:4]

    hits = server_store.search(query[None, :], 5, exclude=[excluded])[0]
    recent = server_store.search(query[None, :], 50, filter="year >= 2005")[0]

    assert [hit.movie_id for hit in hits] == numpy_ranking(vectors, ids, query, excluded)[:5]
    # Movie 100 + i has year 1990 + i % 20, so i in 15..19 and 35..39 are from 2005 on.
    assert len(recent) == 10
    assert all((hit.movie_id - 100) % 20 >= 15 for hit in recent)


def test_server_delete_and_count(server_store):
    ids, vectors = fill(server_store, 20)

    deleted = server_store.delete([ids[0], ids[1], 99999])
    hits = server_store.search(vectors[:1], 20)[0]

    assert deleted == 2
    assert server_store.count() == 18
    assert ids[0] not in [hit.movie_id for hit in hits]
    assert server_store.get_embeddings([ids[0], ids[2]]).keys() == {ids[2]}


def test_server_ids_pages(server_store):
    ids, _ = fill(server_store, 23)

    assert server_store.ids(page_size=5) == ids


def test_server_upsert_searchable_at_once(server_store):
    fill(server_store, 10)
    fresh = unit_vectors(5, seed=7)

    for offset, vector in enumerate(fresh):
        movie_id = 1000 + offset
        server_store.upsert([movie_id], vector[None, :], [["Comedy"]], [2001])

        top = server_store.search(vector[None, :], 1)[0][0]

        assert top.movie_id == movie_id
        assert top.score == pytest.approx(1.0, abs=1e-5)
    assert server_store.count() == 15


def test_server_upsert_replaces_row(server_store):
    ids, _ = fill(server_store, 5)
    replacement = unit_vectors(1, seed=9)

    server_store.upsert([ids[0]], replacement, [["Horror"]], [None])

    assert server_store.count() == 5
    np.testing.assert_allclose(server_store.get_embeddings([ids[0]])[ids[0]], replacement[0], atol=1e-6)


def test_server_string_ids_verbatim(milvus_server, unique_prefix):
    store = open_server_store(milvus_server, f"{unique_prefix}strings", id_type="str")
    vectors = unit_vectors(len(ODD_IDS), seed=4)
    try:
        store.upsert(ODD_IDS, vectors, [["Drama"]] * len(ODD_IDS), [None] * len(ODD_IDS))

        listed = store.ids(page_size=2)
        top = [store.search(vector[None, :], 1)[0][0].movie_id for vector in vectors]
        remaining = store.search(vectors[:1], 10, exclude=[ODD_IDS[1:]])[0]

        assert listed == sorted(ODD_IDS)
        assert top == ODD_IDS
        assert [hit.movie_id for hit in remaining] == [ODD_IDS[0]]
        assert store.delete(ODD_IDS[1:3]) == 2
    finally:
        drop_if_running(milvus_server, store)


def test_server_describe_without_token(milvus_server, unique_prefix):
    uri = milvus_server.uri.replace("http://", "http://root:s3cret@")
    store = MilvusVectorStore(uri, collection_name=f"{unique_prefix}described", dim=DIM)
    try:
        # Authorization is off on the test server, so it ignores the token.
        description = store.describe()

        assert description["backend"] == "milvus"
        assert description["count"] == 0
        assert "s3cret" not in repr(description)
        assert "s3cret" not in repr(store)
        assert description["uri"] == uri.replace("s3cret", "***")
    finally:
        drop_if_running(milvus_server, store)


def test_server_db_name_missing_database(milvus_server, unique_prefix):
    store = MilvusVectorStore(
        f"{milvus_server.uri}?db_name=no_such_db", collection_name=f"{unique_prefix}movies", dim=DIM
    )
    started = time.monotonic()

    with pytest.raises(StoreError) as raised:
        store.count()

    # The server rejects the database at once, and that error is not retried.
    assert time.monotonic() - started < 10
    assert "no_such_db" in str(raised.value)
    store.close()


# The constructor checks these URIs without connecting, so no server is needed.


def test_uri_db_name_conflict():
    with pytest.raises(InvalidParameterError, match="db_name"):
        MilvusVectorStore("http://127.0.0.1:19530?db_name=one", db_name="two")


def test_uri_unknown_query_rejected():
    with pytest.raises(InvalidParameterError, match="token") as raised:
        MilvusVectorStore("http://127.0.0.1:19530?token=s3cret")

    assert "s3cret" not in str(raised.value)


def test_uri_token_twice_rejected():
    with pytest.raises(InvalidParameterError) as raised:
        MilvusVectorStore("http://root:s3cret@127.0.0.1:19530", token="root:other")

    assert "s3cret" not in str(raised.value)
    assert "other" not in str(raised.value)


# ----- failures -----


@pytest.mark.parametrize("password", ["s3cret", "s3/cr?et#", "s3cr%40et"])
def test_closed_port_error_redacted(password):
    port = closed_port()
    store = MilvusVectorStore(f"http://user:{password}@127.0.0.1:{port}", dim=DIM, timeout=2, retries=1)
    started = time.monotonic()

    with pytest.raises(StoreError) as raised:
        store.search(unit_vectors(1), 3)

    message = str(raised.value)
    assert time.monotonic() - started < 60
    assert "s3" not in message
    assert f"http://user:***@127.0.0.1:{port}" in message
    assert "is the milvus server running?" in message.lower()
    assert "s3" not in repr(store)


def test_closed_port_env_token_hidden(monkeypatch):
    monkeypatch.setenv("TOWHEE_RECSYS_MILVUS_TOKEN", "envuser:env-s3cret")
    store = MilvusVectorStore(f"http://127.0.0.1:{closed_port()}", dim=DIM, timeout=1, retries=0)

    with pytest.raises(StoreError) as raised:
        store.count()

    assert "env-s3cret" not in str(raised.value)
    assert "env-s3cret" not in repr(store)


def search_until_back(store: MilvusVectorStore, queries: np.ndarray, seconds: float) -> list:
    """Search with `store` until it succeeds, for at most `seconds`.

    Right after a restart, Strong-consistency searches time out until the stopped
    run's etcd sessions expire, so the first calls may fail.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            return store.search(queries, 5)
        except StoreError:
            if time.monotonic() > deadline:
                raise


def test_server_outage_same_store(milvus_server, unique_prefix):
    """Stop the server under an open store, then start it again on the same data."""
    store = open_server_store(milvus_server, f"{unique_prefix}outage", timeout=2, retries=1)
    ids, vectors = fill(store, 30)
    before = store.search(vectors[:2], 5)
    try:
        milvus_server.stop(timeout=5)
        started = time.monotonic()
        with pytest.raises(StoreError) as raised:
            store.search(vectors[:2], 5)
        outage_seconds = time.monotonic() - started
    finally:
        # Started again even when the checks above fail, because later tests share the server.
        milvus_server.start()

    assert outage_seconds < 30
    assert "search" in str(raised.value)
    assert milvus_server.uri in str(raised.value)
    assert search_until_back(store, vectors[:2], seconds=120) == before
    assert store.count() == 30
    assert store.ids() == ids
    drop_if_running(milvus_server, store)


# ----- the server process -----


def test_server_process_loopback_uri(milvus_server):
    assert milvus_server.uri == f"http://127.0.0.1:{milvus_server.port}"
    assert milvus_server.running
    assert milvus_server.log_path.is_file()


@pytest.mark.skipif(MilvusServerProcess.unavailable_reason() is not None, reason="the milvus package is not installed")
def test_server_process_port_in_use(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = MilvusServerProcess(tmp_path, port=busy.getsockname()[1])

        with pytest.raises(RuntimeError, match="in use"):
            server.start()

    assert not server.running
    server.stop()
    server.stop()


def test_server_process_invalid_port(tmp_path):
    with pytest.raises(ValueError, match="port"):
        MilvusServerProcess(tmp_path, port=70000)
