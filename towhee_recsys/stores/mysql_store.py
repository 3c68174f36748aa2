"""Movie and user metadata in MySQL or MariaDB, through PyMySQL.

Tables, each named with `key_prefix` (default ``towhee_recsys_``):

    {prefix}movies  movie_id (primary key), title, genres ("|"-joined), year (NULL when unknown)
    {prefix}users   user_id (primary key), gender, age, occupation (NULL when unknown)
    {prefix}rated   user_id, movie_id: one row per rated movie, both columns the primary key
    {prefix}online  user_id, movie_id, rating: ratings recorded online since the last ingest
    {prefix}info    name (primary key), value: catalog facts written by set_info

Ids are BIGINT for ``id_type="int"``. For ``id_type="str"`` they are the UTF-8 bytes
of the id in a VARBINARY(1024) column, for two reasons checked on MariaDB 10.11. The
utf8mb4_bin collation compares with PAD SPACE, so "x" and "x " would be the same key.
Two VARCHAR(512) utf8mb4 columns would also exceed InnoDB's 3072-byte limit for the
rated table's primary key. Text columns use utf8mb4 with the utf8mb4_bin collation
and keep their values verbatim.

Sessions run with autocommit on, so a lone SELECT is one round trip that sees the
latest committed data and holds no locks afterwards. Every write runs in an explicit
BEGIN ... COMMIT transaction, so a batch is written completely or not at all.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from towhee_recsys.data.dataset import Id, Movie, User
from towhee_recsys.errors import StoreError
from towhee_recsys.stores.base import (
    MetadataStore,
    UserRecord,
    check_id_type,
    check_timeout,
    normalize_id,
    normalize_ids,
    normalize_ratings,
    redact_uri,
)
from towhee_recsys.validation import check_positive_int, invalid_parameter

if TYPE_CHECKING:
    import pymysql.connections
    import pymysql.cursors

logger = logging.getLogger(__name__)

MYSQL_SCHEME = "mysql"
DEFAULT_KEY_PREFIX = "towhee_recsys_"
DEFAULT_PORT = 3306
PASSWORD_ENV = "TOWHEE_RECSYS_MYSQL_PASSWORD"
GENRE_SEPARATOR = "|"
TABLE_KINDS = ("movies", "users", "rated", "info", "online")
# Maximum length of a string id in UTF-8 bytes, because two ids form the rated table's
# primary key and InnoDB limits a key to 3072 bytes.
MAX_STR_ID_BYTES = 1024
MIN_INT_ID, MAX_INT_ID = -(2**63), 2**63 - 1
# MySQL and MariaDB limit table names to 64 characters.
MAX_TABLE_NAME_LENGTH = 64
# Maximum number of idle connections kept open for reuse. More connections close after use.
MAX_IDLE_CONNECTIONS = 4
# Maximum number of ids in one DELETE ... IN (...) statement.
DELETE_CHUNK = 1000
FIRST_RETRY_DELAY = 0.2
MAX_RETRY_DELAY = 5.0
SQL_MODE = "STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION"
TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
# Error codes after which a new connection may succeed. Server codes: too many
# connections (1040), shutdown in progress (1053), lock wait timeout (1205), deadlock
# (1213), connection killed (MariaDB 1927), disconnected for inactivity (MySQL 4031).
# Client codes for an unreachable server or a lost connection: 2002, 2003, 2006, 2013, 2055.
TRANSIENT_ERROR_CODES = frozenset({1040, 1053, 1205, 1213, 1927, 2002, 2003, 2006, 2013, 2055, 4031})
_KEY_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_]+")
_INTEGER_TEXT = re.compile(r"-?(0|[1-9][0-9]*)")

T = TypeVar("T")


def mysql_uri_kind(uri: str) -> str | None:
    """Return "mysql" for a ``mysql://`` uri, else None."""
    return "mysql" if uri.startswith(f"{MYSQL_SCHEME}://") else None


@dataclass(frozen=True)
class ConnectionSettings:
    """Connection arguments parsed from a ``mysql://`` URL. `password` stays out of repr()."""

    host: str
    port: int
    user: str
    database: str
    password: str | None = field(default=None, repr=False)


def parse_mysql_uri(uri: str) -> ConnectionSettings:
    """Parse ``mysql://user[:password]@host[:port]/database``.

    The password comes from the URL, else from $TOWHEE_RECSYS_MYSQL_PASSWORD, else
    none is sent. User name and password may be percent-encoded.
    """
    expected = "a URL of the form mysql://user[:password]@host[:port]/database"
    redacted = redact_uri(uri)
    try:
        parts = urlsplit(uri)
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise invalid_parameter("metadata uri", expected, redacted, str(exc)) from exc
    database = parts.path[1:]
    if parts.scheme != MYSQL_SCHEME or not parts.hostname or not parts.username:
        raise invalid_parameter("metadata uri", expected, redacted)
    if not database or "/" in database:
        raise invalid_parameter("metadata uri", expected, redacted, "Name one database after the host.")
    if parts.query or parts.fragment:
        raise invalid_parameter("metadata uri", expected, redacted, "Remove the ?query or #fragment.")

    password = unquote(parts.password) if parts.password is not None else os.environ.get(PASSWORD_ENV)
    return ConnectionSettings(
        host=parts.hostname,
        port=port,
        user=unquote(parts.username),
        database=unquote(database),
        password=password,
    )


class MySQLMetadataStore(MetadataStore):
    """Movie records, user demographics, rated movie ids and online ratings in five MySQL tables.

    Args:
        uri: ``mysql://user[:password]@host[:port]/database``. The database must exist.
            Without a password in the URL, $TOWHEE_RECSYS_MYSQL_PASSWORD is used.
        key_prefix: prefix of the table names; letters, digits and underscores only,
            because table names cannot be passed as query parameters.
        id_type: "int" or "str", the type movie and user ids are stored and read back as.
        timeout: seconds for connecting and for each read or write on the socket.
        retries: how often a call is retried on a new connection after a transient
            error (lost connection, server unreachable, deadlock), waiting 0.2 s and
            doubling the wait each time, up to 5 s.

    The constructor only checks its arguments. The connection opens on first use, and
    the tables are created then if they are missing. Threads may share one store:
    each call borrows a connection from a small pool.
    """

    def __init__(
        self,
        uri: str,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        id_type: str = "int",
        timeout: float = 10.0,
        retries: int = 3,
    ) -> None:
        if not isinstance(uri, str) or mysql_uri_kind(uri) is None:
            raise invalid_parameter(
                "metadata uri",
                "a URL of the form mysql://user[:password]@host[:port]/database",
                redact_uri(uri) if isinstance(uri, str) else uri,
            )
        self.uri = uri
        self.key_prefix = _check_key_prefix(key_prefix)
        self.id_type = check_id_type(id_type)
        self.timeout = check_timeout("timeout", timeout)
        self.retries = _check_retries(retries)

        self._settings = parse_mysql_uri(uri)
        self._tables = {kind: f"{self.key_prefix}{kind}" for kind in TABLE_KINDS}
        self._pool = _ConnectionPool(self._connect, MAX_IDLE_CONNECTIONS)
        self._open_lock = threading.Lock()
        self._ready = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._uri_text!r}, key_prefix={self.key_prefix!r}, id_type={self.id_type!r})"

    # ----- lifecycle -----

    def open(self) -> None:
        """Connect and create the five tables if they are missing. Later calls do nothing.

        Raises StoreError when existing tables hold ids of the other id_type.
        """
        with self._open_lock:
            if self._ready:
                return
            id_columns = self._run("open", self._create_tables)
            self._check_id_columns(id_columns)
            self._ready = True
        logger.info("Opened metadata store %s (table prefix %r)", self._uri_text, self.key_prefix)

    def close(self) -> None:
        """Close the idle connections. Connections in use close when their call ends."""
        with self._open_lock:
            self._ready = False
        self._pool.close()

    # ----- movies -----

    def put_movies(self, movies: Iterable[Movie], batch_size: int = 1000) -> int:
        """Write movie records, replacing existing ones, and return the number written.

        Each batch is one transaction of multi-row INSERT ... ON DUPLICATE KEY UPDATE.
        """
        batch_size = check_positive_int("batch_size", batch_size)
        sql = (
            f"INSERT INTO `{self._tables['movies']}` (movie_id, title, genres, year) "
            "VALUES (%s, %s, %s, %s) ON DUPLICATE KEY UPDATE "
            "title = VALUES(title), genres = VALUES(genres), year = VALUES(year)"
        )
        written = 0
        for batch in _batched(movies, batch_size):
            rows = list({row[0]: row for row in map(self._movie_row, batch)}.values())
            self._write("put_movies", lambda cursor, rows=rows: cursor.executemany(sql, rows))
            written += len(batch)
        return written

    def get_movies(self, movie_ids: Sequence[Id]) -> list[Movie | None]:
        """Return the record of each id in input order, None where it is missing.

        All ids are read with one SELECT ... WHERE movie_id IN (...), so one round trip.
        """
        ids = normalize_ids(movie_ids, self.id_type)
        if not ids:
            return []
        keys = list(dict.fromkeys(self._id_key(movie_id) for movie_id in ids))
        sql = (
            f"SELECT movie_id, title, genres, year FROM `{self._tables['movies']}` "
            f"WHERE movie_id IN ({_placeholders(len(keys))})"
        )
        rows = self._read("get_movies", sql, keys)
        found = {movie.movie_id: movie for movie in map(self._movie_from_row, rows)}
        return [found.get(movie_id) for movie_id in ids]

    def delete_movies(self, movie_ids: Sequence[Id]) -> int:
        """Delete movie records and return how many existed. Rated rows keep the ids."""
        keys = list(dict.fromkeys(self._id_key(i) for i in normalize_ids(movie_ids, self.id_type)))
        if not keys:
            return 0

        def delete(cursor: pymysql.cursors.Cursor) -> int:
            deleted = 0
            for start in range(0, len(keys), DELETE_CHUNK):
                chunk = keys[start : start + DELETE_CHUNK]
                deleted += cursor.execute(
                    f"DELETE FROM `{self._tables['movies']}` WHERE movie_id IN ({_placeholders(len(chunk))})",
                    chunk,
                )
            return deleted

        return self._write("delete_movies", delete)

    def count_movies(self) -> int:
        """Return the exact number of movie records."""
        rows = self._read("count_movies", f"SELECT COUNT(*) FROM `{self._tables['movies']}`")
        return int(rows[0][0])

    def movie_ids(self) -> list[Id]:
        """Return every stored movie id, sorted."""
        rows = self._read("movie_ids", f"SELECT movie_id FROM `{self._tables['movies']}`")
        return sorted(self._parse_id(row[0]) for row in rows)

    # ----- users -----

    def put_users(self, users: Iterable[User], batch_size: int = 1000) -> int:
        """Write user demographics, replacing existing ones, and return the number written."""
        batch_size = check_positive_int("batch_size", batch_size)
        sql = (
            f"INSERT INTO `{self._tables['users']}` (user_id, gender, age, occupation) "
            "VALUES (%s, %s, %s, %s) ON DUPLICATE KEY UPDATE gender = VALUES(gender), "
            "age = VALUES(age), occupation = VALUES(occupation)"
        )
        written = 0
        for batch in _batched(users, batch_size):
            rows = list({row[0]: row for row in map(self._user_row, batch)}.values())
            self._write("put_users", lambda cursor, rows=rows: cursor.executemany(sql, rows))
            written += len(batch)
        return written

    def put_rated(self, rated: Mapping[Id, Iterable[Id]], batch_size: int = 1000) -> int:
        """Replace each given user's rated movie ids and return the number of users written.

        Each batch of users is one transaction of DELETE and INSERT, so no reader sees
        a user's set half replaced. An empty set removes the user's rated movies. The
        users' online ratings are deleted in the same transaction.
        """
        batch_size = check_positive_int("batch_size", batch_size)
        written = 0
        for batch in _batched(rated.items(), batch_size):
            user_keys = [self._write_key(user_id, "user_id") for user_id, _ in batch]
            rows = {
                (user_key, self._write_key(movie_id, "movie_ids"))
                for user_key, (_, movie_ids) in zip(user_keys, batch, strict=True)
                for movie_id in normalize_ids(movie_ids, self.id_type)
            }
            self._write("put_rated", self._replace_rated_steps(user_keys, list(rows)))
            written += len(batch)
        return written

    def add_rated(self, user_id: Id, movie_ids: Iterable[Id]) -> int:
        """Add movie ids to the user's rated set and return how many were not in it yet."""
        user_key = self._write_key(user_id, "user_id")
        movie_keys = {self._write_key(movie_id, "movie_ids") for movie_id in normalize_ids(movie_ids, self.id_type)}
        if not movie_keys:
            return 0
        # With ON DUPLICATE KEY UPDATE, the server counts an inserted row as 1 affected row
        # and an unchanged existing row as 0, unless the client sets CLIENT_FOUND_ROWS
        # (PyMySQL does not by default; checked on MariaDB 10.11).
        sql = (
            f"INSERT INTO `{self._tables['rated']}` (user_id, movie_id) VALUES (%s, %s) "
            "ON DUPLICATE KEY UPDATE movie_id = movie_id"
        )
        rows = [(user_key, movie_key) for movie_key in movie_keys]
        return int(self._write("add_rated", lambda cursor: cursor.executemany(sql, rows)))

    def put_online_ratings(self, user_id: Id, ratings: Mapping[Id, float]) -> int:
        """Store online ratings and add their movie ids to the rated set; return the number written.

        Both tables are written in one transaction, so readers see both changes or neither.
        """
        user_key = self._write_key(user_id, "user_id")
        normalized = normalize_ratings(ratings, self.id_type)
        if not normalized:
            return 0
        rows = [(user_key, self._write_key(movie_id, "movie_id"), rating) for movie_id, rating in normalized.items()]
        online_sql = (
            f"INSERT INTO `{self._tables['online']}` (user_id, movie_id, rating) VALUES (%s, %s, %s) "
            "ON DUPLICATE KEY UPDATE rating = VALUES(rating)"
        )
        rated_sql = (
            f"INSERT INTO `{self._tables['rated']}` (user_id, movie_id) VALUES (%s, %s) "
            "ON DUPLICATE KEY UPDATE movie_id = movie_id"
        )

        def write(cursor: pymysql.cursors.Cursor) -> int:
            cursor.executemany(online_sql, rows)
            cursor.executemany(rated_sql, [row[:2] for row in rows])
            return len(rows)

        return self._write("put_online_ratings", write)

    def get_user(self, user_id: Id) -> UserRecord | None:
        """Return the user's demographics, rated movie ids and online ratings, in one round trip.

        A user with rated movies but no demographics gets a User with None fields.
        Returns None when the store has neither for `user_id`.
        """
        return self._read_users([normalize_id(user_id, self.id_type, "user_id")], "get_user")[0]

    def get_users(self, user_ids: Sequence[Id]) -> list[UserRecord | None]:
        """Return the record of each user id in input order, None where the store has none.

        One SELECT of three parts joined by UNION ALL reads the users, rated and online
        rows of all ids (``WHERE user_id IN (...)``), so one round trip.
        """
        return self._read_users(normalize_ids(user_ids, self.id_type, "user_ids"), "get_users")

    def _read_users(self, user_ids: list[Id], operation: str) -> list[UserRecord | None]:
        if not user_ids:
            return []
        keys = list(dict.fromkeys(self._id_key(user_id) for user_id in user_ids))
        ids = _placeholders(len(keys))
        # The first column tells the parts apart: 0 demographics, 1 rated, 2 online.
        sql = (
            f"SELECT 0, user_id, gender, age, occupation, NULL, NULL FROM `{self._tables['users']}` "
            f"WHERE user_id IN ({ids}) "
            f"UNION ALL SELECT 1, user_id, NULL, NULL, NULL, movie_id, NULL FROM `{self._tables['rated']}` "
            f"WHERE user_id IN ({ids}) "
            f"UNION ALL SELECT 2, user_id, NULL, NULL, NULL, movie_id, rating FROM `{self._tables['online']}` "
            f"WHERE user_id IN ({ids})"
        )
        rows = self._read(operation, sql, keys * 3)

        profiles: dict[Any, tuple] = {}
        rated: dict[Any, list[Id]] = {}
        online: dict[Any, dict[Id, float]] = {}
        for part, user_key, gender, age, occupation, movie_id, rating in rows:
            if part == 0:
                profiles[user_key] = (gender, age, occupation)
            elif part == 1:
                rated.setdefault(user_key, []).append(self._parse_id(movie_id))
            else:
                online.setdefault(user_key, {})[self._parse_id(movie_id)] = float(rating)
        return [self._user_record_from(user_id, profiles, rated, online) for user_id in user_ids]

    def _user_record_from(
        self, user_id: Id, profiles: dict[Any, tuple], rated: dict[Any, list[Id]], online: dict[Any, dict[Id, float]]
    ) -> UserRecord | None:
        key = self._id_key(user_id)
        profile, movie_ids = profiles.get(key), rated.get(key, [])
        if profile is None and not movie_ids:
            return None
        gender, age, occupation = profile or (None, None, None)
        user = User(user_id=user_id, gender=gender or None, age=_parse_code(age), occupation=_parse_code(occupation))
        return UserRecord(user=user, rated_movie_ids=tuple(sorted(movie_ids)), online_ratings=online.get(key, {}))

    def count_users(self) -> int:
        """Return the exact number of users with demographics, rated movies or both."""
        sql = (
            f"SELECT COUNT(*) FROM (SELECT user_id FROM `{self._tables['users']}` "
            f"UNION SELECT user_id FROM `{self._tables['rated']}`) AS ids"
        )
        return int(self._read("count_users", sql)[0][0])

    # ----- catalog facts and housekeeping -----

    def set_info(self, mapping: Mapping[str, Any]) -> None:
        """Store catalog facts in the info table, writing each value with str()."""
        rows = [(str(name).encode("utf-8"), str(value)) for name, value in mapping.items()]
        if not rows:
            return
        sql = (
            f"INSERT INTO `{self._tables['info']}` (name, value) VALUES (%s, %s) "
            "ON DUPLICATE KEY UPDATE value = VALUES(value)"
        )
        self._write("set_info", lambda cursor: cursor.executemany(sql, rows))

    def get_info(self) -> dict[str, str]:
        """Return the catalog facts written by `set_info`."""
        rows = self._read("get_info", f"SELECT name, value FROM `{self._tables['info']}`")
        return {bytes(name).decode("utf-8"): value for name, value in rows}

    def clear(self) -> int:
        """Delete every row of this store's five tables and return the number of records removed.

        The count matches the keys the Redis store removes: one per movie, one per user
        with demographics, one per user with rated movies, one per user with online
        ratings, and one for the catalog facts if there were any. The tables themselves stay.
        """
        removed = self._write("clear", self._clear_steps)
        logger.info("Cleared %d records from the %s* tables at %s", removed, self.key_prefix, self._uri_text)
        return removed

    def drop_tables(self) -> None:
        """Drop this store's five tables with all their rows. The next call creates them again."""
        names = ", ".join(f"`{table}`" for table in self._tables.values())

        def drop(connection: pymysql.connections.Connection) -> None:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {names}")

        self._run("drop_tables", drop)
        with self._open_lock:
            self._ready = False
        logger.info("Dropped the %s* tables at %s", self.key_prefix, self._uri_text)

    def describe(self) -> dict[str, Any]:
        """Return backend, redacted uri, key_prefix, id_type and the movie and user counts."""
        return {
            "backend": "mysql",
            "uri": self._uri_text,
            "key_prefix": self.key_prefix,
            "id_type": self.id_type,
            "movies": self.count_movies(),
            "users": self.count_users(),
        }

    # ----- SQL steps run inside one transaction -----

    def _replace_rated_steps(
        self, user_keys: list[Any], rows: list[tuple[Any, Any]]
    ) -> Callable[[pymysql.cursors.Cursor], None]:
        table = self._tables["rated"]

        def replace(cursor: pymysql.cursors.Cursor) -> None:
            for kind in ("rated", "online"):
                cursor.execute(
                    f"DELETE FROM `{self._tables[kind]}` WHERE user_id IN ({_placeholders(len(user_keys))})",
                    user_keys,
                )
            if rows:
                cursor.executemany(f"INSERT INTO `{table}` (user_id, movie_id) VALUES (%s, %s)", rows)

        return replace

    def _clear_steps(self, cursor: pymysql.cursors.Cursor) -> int:
        # FOR UPDATE locks the rated rows, so the count matches the rows deleted next.
        cursor.execute(f"SELECT COUNT(DISTINCT user_id) FROM `{self._tables['rated']}` FOR UPDATE")
        rated_users = int(cursor.fetchone()[0])
        cursor.execute(f"SELECT COUNT(DISTINCT user_id) FROM `{self._tables['online']}` FOR UPDATE")
        online_users = int(cursor.fetchone()[0])
        cursor.execute(f"DELETE FROM `{self._tables['rated']}`")
        cursor.execute(f"DELETE FROM `{self._tables['online']}`")
        movies = cursor.execute(f"DELETE FROM `{self._tables['movies']}`")
        users = cursor.execute(f"DELETE FROM `{self._tables['users']}`")
        info_rows = cursor.execute(f"DELETE FROM `{self._tables['info']}`")
        return movies + users + rated_users + online_users + (1 if info_rows else 0)

    def _create_tables(self, connection: pymysql.connections.Connection) -> list[tuple]:
        """Create the missing tables and return (table, column, data type) of their id columns."""
        id_sql = "BIGINT" if self.id_type == "int" else f"VARBINARY({MAX_STR_ID_BYTES})"
        movies, users, rated, info, online = (self._tables[kind] for kind in TABLE_KINDS)
        statements = [
            f"CREATE TABLE IF NOT EXISTS `{movies}` (movie_id {id_sql} NOT NULL PRIMARY KEY, "
            f"title TEXT NOT NULL, genres TEXT NOT NULL, year INT NULL) {TABLE_OPTIONS}",
            f"CREATE TABLE IF NOT EXISTS `{users}` (user_id {id_sql} NOT NULL PRIMARY KEY, "
            f"gender TEXT NULL, age TEXT NULL, occupation TEXT NULL) {TABLE_OPTIONS}",
            f"CREATE TABLE IF NOT EXISTS `{rated}` (user_id {id_sql} NOT NULL, "
            f"movie_id {id_sql} NOT NULL, PRIMARY KEY (user_id, movie_id)) {TABLE_OPTIONS}",
            f"CREATE TABLE IF NOT EXISTS `{info}` (name VARBINARY({MAX_STR_ID_BYTES}) NOT NULL "
            f"PRIMARY KEY, value TEXT NOT NULL) {TABLE_OPTIONS}",
            f"CREATE TABLE IF NOT EXISTS `{online}` (user_id {id_sql} NOT NULL, movie_id {id_sql} NOT NULL, "
            f"rating DOUBLE NOT NULL, PRIMARY KEY (user_id, movie_id)) {TABLE_OPTIONS}",
        ]
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
            cursor.execute(
                "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (%s, %s, %s, %s) "
                "AND COLUMN_NAME IN ('movie_id', 'user_id')",
                [movies, users, rated, online],
            )
            return list(cursor.fetchall())

    def _check_id_columns(self, id_columns: list[tuple]) -> None:
        expected = "bigint" if self.id_type == "int" else "varbinary"
        for table, column, data_type in id_columns:
            if str(data_type).lower() != expected:
                other = "str" if self.id_type == "int" else "int"
                raise StoreError(
                    f"Column {table}.{column} in '{self._uri_text}' has type {data_type}, but "
                    f'the store was opened with id_type="{self.id_type}". Open it with '
                    f'id_type="{other}", or choose another key_prefix.'
                )

    # ----- connection, retries and errors -----

    @property
    def _uri_text(self) -> str:
        return redact_uri(self.uri)

    def _connect(self) -> pymysql.connections.Connection:
        import pymysql

        settings = self._settings
        return pymysql.connect(
            host=settings.host,
            port=settings.port,
            user=settings.user,
            password=settings.password or "",
            database=settings.database,
            charset="utf8mb4",
            connect_timeout=self.timeout,
            read_timeout=self.timeout,
            write_timeout=self.timeout,
            autocommit=True,
            sql_mode=SQL_MODE,
        )

    def _read(self, operation: str, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        """Run one SELECT as its own transaction and return all rows."""

        def select(connection: pymysql.connections.Connection) -> list[tuple]:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return list(cursor.fetchall())

        self.open()
        return self._run(operation, select)

    def _write(self, operation: str, steps: Callable[[pymysql.cursors.Cursor], T]) -> T:
        """Run `steps` in one transaction and commit it. A failed call rolls back everything."""

        def transaction(connection: pymysql.connections.Connection) -> T:
            connection.begin()
            with connection.cursor() as cursor:
                result = steps(cursor)
            connection.commit()
            return result

        self.open()
        return self._run(operation, transaction)

    def _run(self, operation: str, work: Callable[[pymysql.connections.Connection], T]) -> T:
        """Call `work` with a pooled connection, retrying transient errors on a new one.

        A connection that raised is closed, so the server rolls back its open transaction.
        NOTE: when a COMMIT succeeds but its reply is lost, the retry finds the rows
        already written, so add_rated and delete_movies may return a count that is too low.
        """
        import pymysql

        delay = FIRST_RETRY_DELAY
        attempt = 0
        while True:
            try:
                with self._pool.connection() as connection:
                    return work(connection)
            except pymysql.MySQLError as exc:
                if not _is_transient(exc):
                    raise self._failed(operation, exc) from exc
                # Idle connections are likely dead too, for example after a server restart.
                self._pool.discard_idle()
                if attempt >= self.retries:
                    raise self._unreachable(operation, exc, attempt + 1) from exc
                attempt += 1
                logger.warning(
                    "MySQL %s at %s failed (%s); retry %d of %d in %.1f s",
                    operation,
                    self._uri_text,
                    exc,
                    attempt,
                    self.retries,
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)

    def _unreachable(self, operation: str, exc: Exception, attempts: int) -> StoreError:
        return StoreError(
            f"MySQL at '{self._uri_text}' is unreachable ({operation}, {attempts} attempts): "
            f"{exc}. Start the MySQL server or point metadata_uri at a reachable one; a slow "
            "server may need a larger timeout or more retries."
        )

    def _failed(self, operation: str, exc: Exception) -> StoreError:
        code = exc.args[0] if exc.args else None
        fixes = {
            1044: f"Grant the user access to database '{self._settings.database}'.",
            1045: f"Check the user name and the password (in the URL or ${PASSWORD_ENV}).",
            1049: f"Create the database first: CREATE DATABASE `{self._settings.database}` CHARACTER SET utf8mb4.",
        }
        fix = fixes.get(code, "")
        return StoreError(f"MySQL {operation} at '{self._uri_text}' failed: {exc}. {fix}".rstrip())

    # ----- conversions -----

    def _id_key(self, record_id: Id) -> int | bytes:
        """Return the column value of a normalized id: the int, or the UTF-8 bytes of the str."""
        return record_id if isinstance(record_id, int) else record_id.encode("utf-8")

    def _write_key(self, value: Any, name: str) -> int | bytes:
        """Normalize an id for writing and check that its column can hold it."""
        key = self._id_key(normalize_id(value, self.id_type, name))
        if isinstance(key, int) and not MIN_INT_ID <= key <= MAX_INT_ID:
            raise invalid_parameter(name, "an integer id that fits in 64 bits (BIGINT)", key)
        if isinstance(key, bytes) and len(key) > MAX_STR_ID_BYTES:
            excerpt = value if len(value) <= 80 else value[:80] + "..."
            raise invalid_parameter(name, f"an id of at most {MAX_STR_ID_BYTES} UTF-8 bytes", excerpt)
        return key

    def _parse_id(self, value: Any) -> Id:
        if self.id_type == "int":
            return int(value)
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StoreError(
                f"Invalid id {value!r} in the {self.key_prefix}* tables at '{self._uri_text}': "
                "expected UTF-8 text. Rewrite the row or choose another key_prefix."
            ) from exc

    def _movie_row(self, movie: Movie) -> tuple[Any, str, str, int | None]:
        movie_id = self._write_key(movie.movie_id, "movie_id")
        for genre in movie.genres:
            if GENRE_SEPARATOR in genre:
                raise invalid_parameter(
                    "genres",
                    f"genre names without {GENRE_SEPARATOR!r}",
                    genre,
                    f"Movie {movie.movie_id!r} cannot be stored because genres are joined with it.",
                )
        year = None if movie.year is None else int(movie.year)
        return movie_id, movie.title, GENRE_SEPARATOR.join(movie.genres), year

    def _movie_from_row(self, row: tuple) -> Movie:
        movie_id, title, genres, year = row
        return Movie(
            movie_id=self._parse_id(movie_id),
            title=title,
            genres=tuple(genres.split(GENRE_SEPARATOR)) if genres else (),
            year=None if year is None else int(year),
        )

    def _user_row(self, user: User) -> tuple[Any, str | None, str | None, str | None]:
        user_id = self._write_key(user.user_id, "user_id")
        values = (user.gender, user.age, user.occupation)
        gender, age, occupation = (None if value is None else str(value) for value in values)
        return user_id, gender, age, occupation


class _ConnectionPool:
    """Idle PyMySQL connections shared by threads. Each call borrows one for its duration.

    `close()` bumps a generation number, so connections borrowed before it are closed
    when they come back instead of returning to the pool.
    """

    def __init__(self, connect: Callable[[], pymysql.connections.Connection], max_idle: int) -> None:
        self._connect = connect
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: list[pymysql.connections.Connection] = []
        self._generation = 0

    @contextmanager
    def connection(self) -> Iterator[pymysql.connections.Connection]:
        """Lend an idle connection, or a new one, and take it back unless the call raised."""
        with self._lock:
            generation = self._generation
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = self._connect()
        try:
            yield connection
        except BaseException:
            # The connection may be broken or inside a transaction, so it is closed and
            # the server rolls back whatever the call left uncommitted.
            _close_quietly(connection)
            raise
        with self._lock:
            keep = generation == self._generation and len(self._idle) < self._max_idle
            if keep:
                self._idle.append(connection)
        if not keep:
            _close_quietly(connection)

    def discard_idle(self) -> None:
        """Close the idle connections. Borrowed ones stay with their callers."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            _close_quietly(connection)

    def close(self) -> None:
        """Close the idle connections, and each borrowed one when it comes back."""
        with self._lock:
            self._generation += 1
        self.discard_idle()


def _close_quietly(connection: pymysql.connections.Connection) -> None:
    try:
        connection.close()
    except Exception as exc:  # noqa: BLE001 - closing must not raise
        logger.debug("Closing a MySQL connection failed: %s", exc)


def _is_transient(exc: Exception) -> bool:
    """Return True for errors after which a new connection may succeed."""
    import pymysql

    if isinstance(exc, pymysql.InterfaceError):
        # PyMySQL raises InterfaceError when a call uses a connection it already closed.
        return True
    code = exc.args[0] if exc.args else None
    return isinstance(exc, pymysql.OperationalError) and code in TRANSIENT_ERROR_CODES


def _check_key_prefix(key_prefix: Any) -> str:
    # NOTE: where lower_case_table_names is 1 or 2 (the defaults on Windows and macOS),
    # prefixes that differ only in case name the same tables.
    longest = MAX_TABLE_NAME_LENGTH - max(len(kind) for kind in TABLE_KINDS)
    valid = isinstance(key_prefix, str) and _KEY_PREFIX_PATTERN.fullmatch(key_prefix)
    if not valid or len(key_prefix) > longest:
        raise invalid_parameter(
            "key_prefix",
            f"1 to {longest} ASCII letters, digits or underscores",
            key_prefix,
            "Table names are built from the prefix and cannot be passed as query parameters.",
        )
    return key_prefix


def _check_retries(retries: Any) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise invalid_parameter("retries", "an integer >= 0", retries)
    return retries


def _placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)


def _parse_code(text: str | None) -> int | str | None:
    """Return NULL or "" as None, a canonical integer ("25", not "025") as int, else the text."""
    if not text:
        return None
    return int(text) if _INTEGER_TEXT.fullmatch(text) else text


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
