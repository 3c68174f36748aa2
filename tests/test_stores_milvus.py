"""MilvusVectorStore against real Milvus Lite in tmp_path, compared with exact NumPy search."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import towhee_recsys
from towhee_recsys.errors import InvalidParameterError, StoreError, StoreLockedError
from towhee_recsys.stores import (
    MilvusVectorStore,
    SearchHit,
    open_vector_store,
    redact_uri,
)

DIM = 16
# Folder that contains the towhee_recsys package under test, for the subprocesses.
PACKAGE_ROOT = str(Path(towhee_recsys.__file__).parent.parent)

REOPEN_SCRIPT = """
import json, sys
import numpy as np
from pymilvus import MilvusClient
from towhee_recsys.stores import MilvusVectorStore

uri, query = sys.argv[1], np.array(json.loads(sys.argv[2]), dtype=np.float32)[None, :]
probe = MilvusClient(uri)
before = probe.get_load_state("towhee_recsys_movies")["state"].name
store = MilvusVectorStore(uri, dim=len(query[0]))
top = [hit.movie_id for hit in store.search(query, 3)[0]]
after = probe.get_load_state("towhee_recsys_movies")["state"].name
print(json.dumps({"count": store.count(), "top": top, "before": before, "after": after}))
store.close()
"""

HOLDER_SCRIPT = """
import sys, time
from towhee_recsys.stores import MilvusVectorStore

store = MilvusVectorStore(sys.argv[1], dim=4)
store.open()
print("ready", flush=True)
time.sleep(120)
"""


def unit_vectors(count: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def numpy_ranking(vectors: np.ndarray, ids: list, query: np.ndarray, excluded=()) -> list:
    """Return all ids ordered by descending inner product with `query`, minus `excluded`."""
    order = np.argsort(-(vectors @ query), kind="stable")
    return [ids[i] for i in order if ids[i] not in set(excluded)]


def fill(store: MilvusVectorStore, count: int, seed: int = 0) -> tuple[list[int], np.ndarray]:
    ids = list(range(100, 100 + count))
    vectors = unit_vectors(count, store.dim, seed)
    store.upsert(ids, vectors, [["Drama"]] * count, [1990 + i % 20 for i in range(count)])
    return ids, vectors


def run_python(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT}
    return subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def lite_uri(tmp_path: Path) -> str:
    return str(tmp_path / "vectors" / "milvus.db")


@pytest.fixture
def store(lite_uri: str):
    store = MilvusVectorStore(lite_uri, dim=DIM)
    yield store
    store.close()


# ----- search results -----


def test_search_matches_numpy_ranking(store):
    ids, vectors = fill(store, 200)
    queries = unit_vectors(5, seed=1)

    results = store.search(queries, 10)

    assert len(results) == 5
    for query, hits in zip(queries, results, strict=True):
        assert [hit.movie_id for hit in hits] == numpy_ranking(vectors, ids, query)[:10]
        expected_scores = np.sort(vectors @ query)[::-1][:10]
        np.testing.assert_allclose([hit.score for hit in hits], expected_scores, atol=1e-5)


def test_search_returns_search_hits(store):
    fill(store, 5)

    hit = store.search(unit_vectors(1, seed=1), 1)[0][0]

    assert isinstance(hit, SearchHit)
    assert isinstance(hit.movie_id, int)


def test_exclude_inside_query(store):
    ids, vectors = fill(store, 200)
    queries = unit_vectors(3, seed=2)
    top = [numpy_ranking(vectors, ids, query) for query in queries]
    exclude = [top[0][:5], [], top[2][:10] + [ids[0], ids[1]]]

    results = store.search(queries, 10, exclude=exclude)

    for query, excluded, hits in zip(queries, exclude, results, strict=True):
        found = [hit.movie_id for hit in hits]
        assert len(found) == 10
        assert not set(found) & set(excluded)
        assert len(set(found)) == len(found)
        assert found == numpy_ranking(vectors, ids, query, excluded)[:10]


def test_exclude_with_filter(store):
    ids, vectors = fill(store, 100)
    query = unit_vectors(1, seed=3)[0]
    recent = {movie_id for i, movie_id in enumerate(ids) if 1990 + i % 20 >= 2000}
    ranking = numpy_ranking(vectors, ids, query)
    excluded = [movie_id for movie_id in ranking if movie_id in recent][:3]

    hits = store.search(query[None, :], 5, exclude=[excluded], filter="year >= 2000")[0]

    expected = [m for m in numpy_ranking(vectors, ids, query, excluded) if m in recent][:5]
    assert [hit.movie_id for hit in hits] == expected


def test_fewer_rows_than_top_k(store):
    ids, _ = fill(store, 4)

    hits = store.search(unit_vectors(1, seed=1), 10)[0]

    assert sorted(hit.movie_id for hit in hits) == ids


def test_exclude_leaves_remaining_rows(store):
    ids, _ = fill(store, 4)

    hits = store.search(unit_vectors(1, seed=1), 10, exclude=[[ids[0]]])[0]

    assert sorted(hit.movie_id for hit in hits) == ids[1:]


def test_top_k_above_milvus_maximum(store):
    fill(store, 4)

    hits = store.search(unit_vectors(1, seed=1), 20000)[0]

    assert len(hits) == 4


def test_search_empty_collection(store):
    assert store.search(unit_vectors(2, seed=1), 3) == [[], []]


@pytest.mark.parametrize("top_k", [0, -1])
def test_top_k_not_positive(store, top_k):
    with pytest.raises(InvalidParameterError, match="top_k"):
        store.search(unit_vectors(1), top_k)


def test_search_wrong_dim(store):
    with pytest.raises(InvalidParameterError, match="embeddings"):
        store.search(unit_vectors(1, dim=DIM + 1), 3)


def test_exclude_length_mismatch(store):
    with pytest.raises(InvalidParameterError, match="exclude"):
        store.search(unit_vectors(2), 3, exclude=[[1]])


# ----- writes -----


def test_upsert_returns_count(store):
    assert store.upsert([1, 2], unit_vectors(2), [[], ["Drama"]], [None, 1999]) == 2


def test_upsert_twice_same_count(store):
    ids, _ = fill(store, 50)
    first = store.count()

    store.upsert(ids, unit_vectors(50, seed=9), [["Comedy"]] * 50, [None] * 50)

    assert store.count() == first
    assert first == 50


def test_upsert_replaces_vector(store):
    store.upsert([7], unit_vectors(1, seed=1), [[]], [None])
    replacement = unit_vectors(1, seed=2)

    store.upsert([7], replacement, [[]], [None])

    np.testing.assert_allclose(store.get_embeddings([7])[7], replacement[0], atol=1e-6)


def test_upsert_in_batches(store):
    ids = list(range(25))

    written = store.upsert(ids, unit_vectors(25), [[]] * 25, [None] * 25, batch_size=10)

    assert written == 25
    assert store.count() == 25


def _unnormalized(args):
    args["embeddings"] = args["embeddings"] * 2


def _wrong_dim(args):
    args["embeddings"] = unit_vectors(2, dim=DIM + 1)


def _not_finite(args):
    args["embeddings"][0, 0] = np.nan


def _duplicate_ids(args):
    args["movie_ids"] = [5, 5]


def _genres_too_short(args):
    args["genres"] = [["Drama"]]


def _years_too_long(args):
    args["years"] = [None, None, None]


def _string_id(args):
    args["movie_ids"] = ["5", "6"]


def _genre_string(args):
    args["genres"] = ["Drama", "Comedy"]


def _negative_year(args):
    args["years"] = [-5, None]


@pytest.mark.parametrize(
    "corrupt",
    [
        _unnormalized,
        _wrong_dim,
        _not_finite,
        _duplicate_ids,
        _genres_too_short,
        _years_too_long,
        _string_id,
        _genre_string,
        _negative_year,
    ],
)
def test_upsert_rejects_invalid(store, corrupt):
    args = {
        "movie_ids": [5, 6],
        "embeddings": unit_vectors(2),
        "genres": [[], []],
        "years": [None, None],
    }
    corrupt(args)

    with pytest.raises(InvalidParameterError):
        store.upsert(**args)
    assert store.count() == 0


def test_delete_counts_existing(store):
    ids, _ = fill(store, 10)

    deleted = store.delete([ids[0], ids[1], 99999])

    assert deleted == 2
    assert store.count() == 8


def test_get_embeddings_skips_missing(store):
    ids, vectors = fill(store, 3)

    found = store.get_embeddings([ids[2], 99999])

    assert list(found) == [ids[2]]
    np.testing.assert_allclose(found[ids[2]], vectors[2], atol=1e-6)


def test_ids_pages(store):
    ids, _ = fill(store, 23)

    assert store.ids(page_size=5) == ids


# ----- string ids -----


STRING_IDS = [
    "plain",
    'double"quote',
    "single'quote",
    "back\\slash",
    'end\\"',
    "new\nline",
    "Misérables",
]


@pytest.fixture
def string_store(lite_uri: str):
    store = MilvusVectorStore(lite_uri, dim=DIM, id_type="str", collection_name="string_ids")
    count = len(STRING_IDS)
    store.upsert(STRING_IDS, unit_vectors(count), [[]] * count, [None] * count)
    yield store
    store.close()


def test_string_ids_search_exclude(string_store):
    query = unit_vectors(1, seed=4)
    excluded = ['double"quote', "back\\slash", 'end\\"', "new\nline"]

    hits = string_store.search(query, 10, exclude=[excluded])[0]

    assert sorted(hit.movie_id for hit in hits) == sorted(set(STRING_IDS) - set(excluded))


def test_string_ids_listed(string_store):
    assert string_store.ids(page_size=2) == sorted(STRING_IDS)


def test_string_ids_get_embeddings(string_store):
    assert sorted(string_store.get_embeddings(['double"quote', "single'quote"])) == [
        'double"quote',
        "single'quote",
    ]


def test_string_ids_delete(string_store):
    assert string_store.delete(['double"quote', "back\\slash"]) == 2
    assert string_store.count() == len(STRING_IDS) - 2


def test_string_store_rejects_int_id(string_store):
    with pytest.raises(InvalidParameterError, match="id_type"):
        string_store.get_embeddings([5])


# ----- schema, lifecycle and processes -----


def test_other_dim_raises(lite_uri):
    with MilvusVectorStore(lite_uri, dim=8) as first:
        first.open()

    with pytest.raises(StoreError) as raised:
        MilvusVectorStore(lite_uri, dim=DIM).count()

    message = str(raised.value)
    assert "towhee_recsys_movies" in message
    assert "vector dim 8" in message
    assert f"expected dim {DIM}" in message
    assert "drop()" in message


def test_drop_fixes_dim_mismatch(lite_uri):
    with MilvusVectorStore(lite_uri, dim=8) as first:
        first.upsert([1], unit_vectors(1, dim=8), [[]], [None])

    with MilvusVectorStore(lite_uri, dim=DIM) as second:
        second.drop()
        assert second.count() == 0
        assert second.describe()["dim"] == DIM


def test_other_id_type_raises(lite_uri):
    with MilvusVectorStore(lite_uri, dim=DIM) as first:
        first.open()

    with pytest.raises(StoreError, match='id_type "int"'):
        MilvusVectorStore(lite_uri, dim=DIM, id_type="str").count()


def test_reopen_in_new_process(lite_uri):
    with MilvusVectorStore(lite_uri, dim=DIM) as writer:
        ids, vectors = fill(writer, 40)
    query = unit_vectors(1, seed=5)[0]

    result = run_python(REOPEN_SCRIPT, lite_uri, json.dumps(query.tolist()))

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["before"] == "NotLoad"
    assert report["after"] == "Loaded"
    assert report["count"] == 40
    assert report["top"] == numpy_ranking(vectors, ids, query)[:3]


def test_locked_by_other_process(lite_uri):
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, lite_uri],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        readable, _, _ = select.select([holder.stdout], [], [], 60)
        assert readable, "the holder process printed nothing within 60 s"
        assert holder.stdout.readline().strip() == "ready"

        with pytest.raises(StoreLockedError) as raised:
            MilvusVectorStore(lite_uri, dim=4).open()
    finally:
        holder.kill()
        holder.wait(timeout=30)

    assert "in use by another process" in str(raised.value)
    assert lite_uri in str(raised.value)


def test_close_releases_lock_for_other_process(lite_uri):
    store = MilvusVectorStore(lite_uri, dim=4)
    store.open()
    store.close()

    result = run_python(HOLDER_SCRIPT.replace("time.sleep(120)", ""), lite_uri)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ready"


def test_close_repeated(lite_uri):
    store = MilvusVectorStore(lite_uri, dim=DIM)
    store.close()
    store.open()
    store.close()
    store.close()

    assert store.count() == 0
    store.close()


def test_parallel_first_use(store):
    fill(store, 10)
    store.close()
    counts: list[int] = []

    threads = [threading.Thread(target=lambda: counts.append(store.count())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert counts == [10, 10, 10, 10]


def test_describe(store):
    fill(store, 3)

    description = store.describe()

    assert description["count"] == 3
    assert description["backend"] == "milvus-lite"
    assert description["metric_type"] == "IP"


def test_unreachable_server_redacted():
    store = MilvusVectorStore("http://root:secret@127.0.0.1:1", timeout=1)

    with pytest.raises(StoreError) as raised:
        store.count()

    assert "secret" not in str(raised.value)
    assert "http://root:***@127.0.0.1:1" in str(raised.value)


# ----- uri handling -----


@pytest.mark.parametrize(
    "uri",
    [
        "/tmp/towhee_recsys/milvus.db",
        "http://localhost:19530",
        "https://milvus.example:443",
        "tcp://localhost:19530",
        "unix:/tmp/milvus.sock",
    ],
)
def test_open_vector_store_milvus(uri):
    assert isinstance(open_vector_store(uri), MilvusVectorStore)


@pytest.mark.parametrize("uri", ["/tmp/vectors.bin", "mysql://localhost/db", "", "ftp://host/x.db"])
def test_open_vector_store_unsupported(uri):
    with pytest.raises(InvalidParameterError, match="http://, https://, tcp:// or unix:"):
        open_vector_store(uri)


def test_open_vector_store_passes_options(lite_uri):
    store = open_vector_store(lite_uri, dim=8, collection_name="other")

    assert store.dim == 8
    assert store.collection_name == "other"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://root:Milvus@localhost:19530", "http://root:***@localhost:19530"),
        ("https://api-key@cloud.example:443/db1", "https://***@cloud.example:443/db1"),
        ("http://localhost:19530?token=abc&x=1", "http://localhost:19530?token=***&x=1"),
        ("http://localhost:19530", "http://localhost:19530"),
        ("/home/u/.towhee_recsys/milvus.db", "/home/u/.towhee_recsys/milvus.db"),
        ("unix:/tmp/milvus.sock", "unix:/tmp/milvus.sock"),
        ("http://root:pw@[::1:19530", "http://***"),
    ],
)
def test_redact_uri_milvus(uri, expected):
    assert redact_uri(uri) == expected
