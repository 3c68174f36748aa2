"""MySQLMetadataStore against the MySQL or MariaDB server of the `mysql_url` fixture.

Every store gets its own table prefix, and its four tables are dropped afterwards.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pymysql
import pytest

from towhee_recsys.data.dataset import Movie, User
from towhee_recsys.errors import InvalidParameterError, StoreError
from towhee_recsys.stores import MySQLMetadataStore, UserRecord, open_metadata_store
from towhee_recsys.stores.mysql_store import MAX_STR_ID_BYTES, PASSWORD_ENV, TABLE_KINDS

TITLES = {
    1: "Misérables, Les (1995)",
    2: "Crouching Tiger, Hidden Dragon (Wo hu cang long) 臥虎藏龍 (2000)",
    3: "Amélie 🎬 (2001)",
}
# Values that break SQL built by string formatting, or that a PAD SPACE or
# case-insensitive collation would merge with each other.
TRICKY_TEXTS = [
    "O'Brien; DROP TABLE x; --",
    'say "hi"',
    "back\\slash\\",
    "100% %s %(name)s",
    "`backtick`",
    "x",
    "x ",
    "X",
    "Misérables, Les (1995)",
    "tab\tnew\nline",
    "",
]


def sample_movies() -> list[Movie]:
    return [
        Movie(1, TITLES[1], ("Drama", "Musical"), 1995),
        Movie(2, TITLES[2], ("Action", "Drama", "Romance"), 2000),
        Movie(3, TITLES[3], (), None),
    ]


def admin_connection(mysql_url: str) -> pymysql.connections.Connection:
    parts = urlsplit(mysql_url)
    return pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username,
        password=parts.password or "",
        database=parts.path[1:],
        autocommit=True,
        connect_timeout=5,
    )


def drop_tables(mysql_url: str, key_prefix: str) -> None:
    connection = admin_connection(mysql_url)
    try:
        with connection.cursor() as cursor:
            for kind in TABLE_KINDS:
                cursor.execute(f"DROP TABLE IF EXISTS `{key_prefix}{kind}`")
    finally:
        connection.close()


def table_names(mysql_url: str, key_prefix: str, columns: tuple[str, ...] = ()) -> list[tuple]:
    """Return (TABLE_NAME, *columns) of each table whose name starts with `key_prefix`."""
    selected = ", ".join(("TABLE_NAME", *columns))
    connection = admin_connection(mysql_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {selected} FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE %s",
                (key_prefix.replace("_", "\\_") + "%",),
            )
            return sorted(cursor.fetchall())
    finally:
        connection.close()


def skip_unless_passwordless(mysql_url: str) -> None:
    if urlsplit(mysql_url).password is not None:
        pytest.skip("the test needs a MySQL account without a password")


def closed_port() -> int:
    """Return a loopback port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def make_store(mysql_url: str, unique_prefix: str) -> Iterator[Callable[..., MySQLMetadataStore]]:
    """Return a factory of stores, each with its own table prefix, dropped afterwards."""
    stores: list[MySQLMetadataStore] = []

    def make(uri: str = mysql_url, **kwargs) -> MySQLMetadataStore:
        kwargs.setdefault("key_prefix", f"{unique_prefix}{len(stores)}_")
        store = MySQLMetadataStore(uri, **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
        drop_tables(mysql_url, store.key_prefix)


@pytest.fixture
def store(make_store) -> MySQLMetadataStore:
    return make_store()


@pytest.fixture
def command_counter(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count commands that any PyMySQL connection sends (one per round trip).

    Connecting sends its own commands, so tests open the store before resetting the count.
    """
    commands = [0]
    original = pymysql.connections.Connection._execute_command

    def counting_execute_command(self, command, sql):
        commands[0] += 1
        return original(self, command, sql)

    monkeypatch.setattr(pymysql.connections.Connection, "_execute_command", counting_execute_command)
    return commands


# ----- movies -----


def test_movies_round_trip(store):
    store.put_movies(sample_movies())

    assert store.get_movies([1, 2, 3]) == sample_movies()


def test_movie_values_types(store):
    store.put_movies(sample_movies())

    movie = store.get_movies([1])[0]

    assert type(movie.movie_id) is int
    assert type(movie.title) is str
    assert movie.title == "Misérables, Les (1995)"
    assert all(type(genre) is str for genre in movie.genres)
    assert type(movie.year) is int


def test_get_movies_missing_ids(store):
    store.put_movies(sample_movies())

    assert store.get_movies([404, 2, 405]) == [None, sample_movies()[1], None]


def test_get_movies_repeated_id(store):
    store.put_movies(sample_movies())

    assert store.get_movies([2, 2]) == [sample_movies()[1], sample_movies()[1]]


def test_get_movies_one_round_trip(store, command_counter):
    store.put_movies(Movie(i, f"Movie {i}") for i in range(300))
    command_counter[0] = 0

    movies = store.get_movies(list(range(0, 400, 2)))

    assert command_counter[0] == 1
    assert len(movies) == 200
    assert movies[-1] is None


def test_get_movies_empty_no_round_trip(store, command_counter):
    store.open()
    command_counter[0] = 0

    assert store.get_movies([]) == []
    assert command_counter[0] == 0


def test_put_movies_idempotent(store):
    store.put_movies(sample_movies(), batch_size=2)
    store.put_movies(sample_movies(), batch_size=2)

    assert store.count_movies() == 3


def test_put_movies_replaces(store):
    store.put_movies([Movie(1, "Old (1990)", ("Drama",), 1990)])
    store.put_movies([Movie(1, "New", (), None)])

    assert store.get_movies([1]) == [Movie(1, "New", (), None)]


def test_put_movies_last_duplicate_wins(store):
    written = store.put_movies([Movie(1, "First"), Movie(1, "Second")])

    assert written == 2
    assert store.get_movies([1]) == [Movie(1, "Second")]


def test_movie_ids_and_delete(store):
    store.put_movies(Movie(i, f"Movie {i}") for i in (30, 4, 100))

    assert store.movie_ids() == [4, 30, 100]
    assert store.delete_movies([4, 999, 4]) == 1
    assert store.movie_ids() == [30, 100]


def test_delete_movies_empty(store):
    assert store.delete_movies([]) == 0


def test_genre_with_separator_rejected(store):
    with pytest.raises(InvalidParameterError, match="genres"):
        store.put_movies([Movie(1, "X", ("Sci|Fi",))])


def test_genres_with_quotes_round_trip(store):
    movie = Movie(1, "Quoted", ("Children's", 'Film-"Noir"', "Sci;Fi", "a\\b"), 1950)
    store.put_movies([movie])

    assert store.get_movies([1]) == [movie]


def test_int_ids_64_bit_range(store):
    movies = [Movie(2**63 - 1, "Largest"), Movie(-(2**63), "Smallest")]
    store.put_movies(movies)

    assert store.get_movies([2**63 - 1, -(2**63)]) == movies


def test_int_id_too_large_rejected(store):
    with pytest.raises(InvalidParameterError, match="64 bits"):
        store.put_movies([Movie(2**63, "Too large")])


def test_int_store_rejects_str_id(store):
    with pytest.raises(InvalidParameterError, match="id_type"):
        store.get_movies(["1"])


# ----- string ids and values that look like SQL -----


def test_string_ids(make_store):
    store = make_store(id_type="str")
    movie = Movie('tt"01:x', "Quoted id", ("Drama",), 2001)
    store.put_movies([movie])
    store.put_rated({"user:1": ['tt"01:x', "tt02"]})

    assert store.get_movies(['tt"01:x']) == [movie]
    assert store.get_user("user:1").rated_movie_ids == ('tt"01:x', "tt02")
    assert store.movie_ids() == ['tt"01:x']


def test_tricky_titles_verbatim(store):
    movies = [Movie(i, text, (text,) if text else ()) for i, text in enumerate(TRICKY_TEXTS)]
    store.put_movies(movies)

    assert store.get_movies(list(range(len(TRICKY_TEXTS)))) == movies


def test_tricky_string_ids_verbatim(make_store):
    store = make_store(id_type="str")
    movies = [Movie(text, f"Title {i}") for i, text in enumerate(TRICKY_TEXTS)]
    store.put_movies(movies)
    store.put_users([User(text, text, text, text) for text in TRICKY_TEXTS if text])
    store.put_rated({"O'Brien; DROP TABLE x; --": TRICKY_TEXTS})

    assert store.count_movies() == len(TRICKY_TEXTS)
    assert store.get_movies(TRICKY_TEXTS) == movies
    assert store.movie_ids() == sorted(TRICKY_TEXTS)
    assert store.get_user("x ").user == User("x ", "x ", "x ", "x ")
    assert store.get_user("O'Brien; DROP TABLE x; --").rated_movie_ids == tuple(sorted(TRICKY_TEXTS))


def test_string_id_case_sensitive(make_store):
    store = make_store(id_type="str")
    store.put_movies([Movie("abc", "Lower")])

    assert store.get_movies(["ABC", "abc "]) == [None, None]


def test_string_id_too_long_rejected(make_store):
    store = make_store(id_type="str")
    longest = "é" * (MAX_STR_ID_BYTES // 2)
    store.put_movies([Movie(longest, "Fits")])

    assert store.get_movies([longest]) == [Movie(longest, "Fits")]
    with pytest.raises(InvalidParameterError, match="UTF-8 bytes"):
        store.put_movies([Movie(longest + "x", "Too long")])


def test_info_tricky_values_verbatim(store):
    facts = {text or "empty": text for text in TRICKY_TEXTS}
    store.set_info(facts)

    assert store.get_info() == facts


# ----- users -----


def test_user_with_demographics(store):
    store.put_users([User(7, "F", 25, 4)])
    store.put_rated({7: [3, 1, 2]})

    assert store.get_user(7) == UserRecord(User(7, "F", 25, 4), (1, 2, 3))


def test_user_codes_as_strings(store):
    store.put_users([User(8, "X", "25-34", "student"), User(9, "M", "007", "-3")])

    assert store.get_user(8).user == User(8, "X", "25-34", "student")
    assert store.get_user(9).user == User(9, "M", "007", -3)


def test_user_empty_strings_read_as_none(store):
    store.put_users([User(10, "", "", "")])

    assert store.get_user(10) == UserRecord(User(10, None, None, None), ())


def test_user_without_demographics(store):
    store.put_rated({11: [5]})

    assert store.get_user(11) == UserRecord(User(11, None, None, None), (5,))


def test_user_without_ratings(store):
    store.put_users([User(12, None, 18, None)])

    assert store.get_user(12) == UserRecord(User(12, None, 18, None), ())


def test_unknown_user(store):
    assert store.get_user(13) is None


@pytest.mark.parametrize(
    ("users", "rated"),
    [([User(7, "F", 25, 4)], {7: [1, 2]}), ([User(7, "F", 25, 4)], {}), ([], {7: [1, 2]}), ([], {})],
    ids=["profile-and-ratings", "profile-only", "ratings-only", "unknown"],
)
def test_get_user_one_round_trip(store, command_counter, users, rated):
    store.put_users(users)
    store.put_rated(rated)
    store.open()
    command_counter[0] = 0

    store.get_user(7)

    assert command_counter[0] == 1


def test_put_rated_replaces(store):
    store.put_rated({7: [1, 2, 3], 8: [1]})
    store.put_rated({7: [4]})

    assert store.get_user(7).rated_movie_ids == (4,)
    assert store.get_user(8).rated_movie_ids == (1,)


def test_put_rated_empty_removes(store):
    store.put_rated({7: [1, 2]})
    store.put_rated({7: []})

    assert store.get_user(7) is None


def test_put_rated_duplicates_once(store):
    assert store.put_rated({7: [2, 1, 2]}) == 1
    assert store.get_user(7).rated_movie_ids == (1, 2)


def test_put_rated_batches(store):
    rated = {user_id: [user_id, user_id + 1] for user_id in range(25)}

    assert store.put_rated(rated, batch_size=4) == 25
    assert store.count_users() == 25
    assert store.get_user(24).rated_movie_ids == (24, 25)


def test_add_rated(store):
    store.put_rated({7: [1]})

    assert store.add_rated(7, [1, 2, 3, 3]) == 2
    assert store.get_user(7).rated_movie_ids == (1, 2, 3)


def test_add_rated_nothing(store):
    assert store.add_rated(7, []) == 0
    assert store.get_user(7) is None


def test_count_users(store):
    store.put_users([User(1, "F"), User(2, "M")])
    store.put_rated({2: [1], 3: [1]})

    assert store.count_users() == 3


# ----- catalog facts, clear, describe -----


def test_info_values_are_str(store):
    store.set_info({"id_type": "int", "movies": 3883, "fingerprint": "ab12"})

    assert store.get_info() == {"id_type": "int", "movies": "3883", "fingerprint": "ab12"}


def test_info_overwrites(store):
    store.set_info({"movies": 1, "users": 2})
    store.set_info({"movies": 5})

    assert store.get_info() == {"movies": "5", "users": "2"}


def test_clear_only_own_prefix(make_store):
    mine, other = make_store(), make_store()
    for each in (mine, other):
        each.put_movies(sample_movies())
        each.put_rated({7: [1, 2]})
        each.set_info({"movies": 3, "users": 1})

    removed = mine.clear()

    assert removed == 5
    assert mine.count_movies() == 0
    assert mine.get_user(7) is None
    assert mine.get_info() == {}
    assert other.count_movies() == 3
    assert other.get_user(7) is not None


def test_describe(store):
    store.put_movies(sample_movies())
    store.put_users([User(1, "F")])

    description = store.describe()

    assert description["backend"] == "mysql"
    assert description["movies"] == 3
    assert description["users"] == 1
    assert description["key_prefix"] == store.key_prefix


def test_tables_created(mysql_url, store):
    store.open()

    tables = table_names(mysql_url, store.key_prefix, ("ENGINE", "TABLE_COLLATION"))

    assert sorted(name for name, _, _ in tables) == sorted(f"{store.key_prefix}{kind}" for kind in TABLE_KINDS)
    assert {(engine, collation) for _, engine, collation in tables} == {("InnoDB", "utf8mb4_bin")}


def test_other_id_type_tables_rejected(make_store, unique_prefix):
    make_store(key_prefix=unique_prefix).open()
    reopened = make_store(key_prefix=unique_prefix, id_type="str")

    with pytest.raises(StoreError, match='id_type="int"'):
        reopened.open()


def test_drop_tables(mysql_url, store):
    store.put_movies(sample_movies())

    store.drop_tables()

    assert table_names(mysql_url, store.key_prefix) == []
    assert store.count_movies() == 0
    assert len(table_names(mysql_url, store.key_prefix)) == len(TABLE_KINDS)


def test_close_repeated(store):
    store.close()
    store.put_movies(sample_movies())
    store.close()
    store.close()

    assert store.count_movies() == 3


def test_threads_share_store(store):
    store.put_movies(sample_movies())
    errors: list[BaseException] = []

    def work(user_id: int) -> None:
        try:
            for movie_id in range(10):
                store.add_rated(user_id, [movie_id])
                assert store.get_movies([1]) == sample_movies()[:1]
        except BaseException as error:  # noqa: BLE001 - reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(user_id,)) for user_id in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert store.count_users() == 8
    assert store.get_user(5).rated_movie_ids == tuple(range(10))


def test_repr_hides_password():
    text = repr(MySQLMetadataStore("mysql://app:s3cret-pw@127.0.0.1:3306/recsys"))

    assert "s3cret-pw" not in text
    assert "app:***@" in text


# ----- parameters and uri handling -----


@pytest.mark.parametrize(
    "key_prefix",
    ["", "a-b", "x;DROP TABLE y;", "a`b", "préfixe_", "a b", "p" * 59, None],
)
def test_bad_prefix_rejected(mysql_url, key_prefix):
    with pytest.raises(InvalidParameterError, match="key_prefix"):
        MySQLMetadataStore(mysql_url, key_prefix=key_prefix)


@pytest.mark.parametrize(
    "uri",
    [
        "mysql://127.0.0.1:3306/db",
        "mysql://root@127.0.0.1:3306/",
        "mysql://root@127.0.0.1:3306/db/extra",
        "mysql://root@127.0.0.1:port/db",
        "mysql://root@127.0.0.1/db?charset=latin1",
        "mysql://root@/db",
    ],
)
def test_bad_uri_rejected(uri):
    with pytest.raises(InvalidParameterError, match="metadata uri"):
        MySQLMetadataStore(uri)


@pytest.mark.parametrize(("name", "value"), [("timeout", 0), ("timeout", "1"), ("retries", -1), ("retries", 1.5)])
def test_bad_timeout_or_retries_rejected(mysql_url, name, value):
    with pytest.raises(InvalidParameterError, match=name):
        MySQLMetadataStore(mysql_url, **{name: value})


def test_open_metadata_store_mysql(mysql_url):
    assert isinstance(open_metadata_store(mysql_url, id_type="str"), MySQLMetadataStore)


def test_password_from_env(mysql_url, make_store, monkeypatch):
    skip_unless_passwordless(mysql_url)
    monkeypatch.setenv(PASSWORD_ENV, "wrong-env-secret")
    store = make_store()

    with pytest.raises(StoreError) as raised:
        store.open()

    message = str(raised.value)
    assert "Access denied" in message
    assert "wrong-env-secret" not in message
    assert PASSWORD_ENV in message


def test_url_password_overrides_env(mysql_url, make_store, monkeypatch):
    skip_unless_passwordless(mysql_url)
    monkeypatch.setenv(PASSWORD_ENV, "wrong-env-secret")
    # "user:@" in the URL gives the empty password explicitly.
    store = make_store(mysql_url.replace("@", ":@", 1))

    store.put_movies(sample_movies())

    assert store.count_movies() == 3


# ----- faults: unreachable server, lost connections -----


def test_unreachable_server():
    uri = f"mysql://root:s3cret-pw@127.0.0.1:{closed_port()}/towhee_recsys_test"
    store = MySQLMetadataStore(uri, timeout=1, retries=1)

    started = time.monotonic()
    with pytest.raises(StoreError) as raised:
        store.count_movies()
    elapsed = time.monotonic() - started

    message = str(raised.value)
    assert elapsed < 30
    assert "s3cret-pw" not in message
    assert "root:***@127.0.0.1" in message
    assert "unreachable" in message
    assert "2 attempts" in message


def test_silent_server_times_out():
    # The kernel completes the TCP handshake for the listening socket, but no MySQL
    # greeting ever arrives, so every attempt waits for the read timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        store = MySQLMetadataStore(f"mysql://root@127.0.0.1:{port}/db", timeout=1, retries=1)

        started = time.monotonic()
        with pytest.raises(StoreError, match="unreachable"):
            store.count_movies()
        elapsed = time.monotonic() - started

    assert elapsed < 10


def test_recovers_after_kill(mysql_url, store):
    store.put_movies(sample_movies())
    (connection,) = store._pool._idle
    admin = admin_connection(mysql_url)
    try:
        with admin.cursor() as cursor:
            cursor.execute("KILL %s", (connection.thread_id(),))
    finally:
        admin.close()

    assert store.get_movies([1]) == sample_movies()[:1]
    assert store._pool._idle[0].thread_id() != connection.thread_id()


def test_write_recovers_after_kill(mysql_url, store):
    store.put_rated({7: [1]})
    (connection,) = store._pool._idle
    admin = admin_connection(mysql_url)
    try:
        with admin.cursor() as cursor:
            cursor.execute("KILL %s", (connection.thread_id(),))
    finally:
        admin.close()

    assert store.put_rated({7: [2, 3]}) == 1
    assert store.get_user(7).rated_movie_ids == (2, 3)


class LoopbackProxy:
    """TCP proxy on 127.0.0.1 that forwards to the MySQL server and can be stopped and restarted.

    Stopping closes the listener and every forwarded connection, which looks to a
    client like a server that went down.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = closed_port()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        sockets, self._sockets = [self._listener, *self._sockets], []
        for each in sockets:
            if each is not None:
                try:
                    each.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                each.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass


def test_recovers_after_server_back(mysql_url, make_store):
    parts = urlsplit(mysql_url)
    proxy = LoopbackProxy((parts.hostname, parts.port or 3306))
    proxy.start()
    try:
        store = make_store(mysql_url.replace(f":{parts.port or 3306}/", f":{proxy.port}/"), timeout=2, retries=1)
        store.put_movies(sample_movies())

        proxy.stop()
        with pytest.raises(StoreError, match="unreachable"):
            store.get_movies([1])

        proxy.start()
        assert store.get_movies([1]) == sample_movies()[:1]
    finally:
        proxy.stop()
