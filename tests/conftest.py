"""Shared fixtures: tiny MovieLens-format files with invented data, written to tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

# Invented records in the MovieLens 1M layout. Movie 20 has a Latin-1 title, movie 30
# has no year and no genres, movie 40 has a parenthesised group before its year.
USERS_DAT = "1::F::25::4::12345\n2::M::35::7::54321\n3::F::18::0::99999\n"
MOVIES_DAT = (
    "10::Harbor Lights (1994)::Drama|Romance\n"
    "20::Misérables, Les (1995)::Drama\n"
    "30::Untitled Project::\n"
    "40::Seven Steps (Se7en) (1999)::Thriller\n"
)
RATINGS_DAT = (
    "1::10::5::978300000\n"
    "1::20::3::978300100\n"
    "2::30::4::978300200\n"
    "3::40::1::978300300\n"
    "2::10::2::978300400\n"
)

MovieLensWriter = Callable[..., Path]


def write_movielens(
    folder: Path,
    *,
    users: str = USERS_DAT,
    movies: str = MOVIES_DAT,
    ratings: str = RATINGS_DAT,
) -> Path:
    """Write users.dat, movies.dat and ratings.dat, Latin-1 encoded, into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "users.dat").write_bytes(users.encode("latin-1"))
    (folder / "movies.dat").write_bytes(movies.encode("latin-1"))
    (folder / "ratings.dat").write_bytes(ratings.encode("latin-1"))
    return folder


@pytest.fixture
def movielens_writer() -> MovieLensWriter:
    """Return `write_movielens`, so tests can write files with their own contents."""
    return write_movielens


@pytest.fixture
def movielens_texts() -> dict[str, str]:
    """Return the default contents of users.dat, movies.dat and ratings.dat by file name."""
    return {"users.dat": USERS_DAT, "movies.dat": MOVIES_DAT, "ratings.dat": RATINGS_DAT}


@pytest.fixture
def movielens_folder(tmp_path: Path) -> Path:
    """Return a folder with the default tiny users.dat, movies.dat and ratings.dat."""
    return write_movielens(tmp_path / "ml-1m")


@pytest.fixture(scope="session", autouse=True)
def collect_towhee_graphs():
    """Free Towhee pipeline graphs before interpreter shutdown.

    towhee 1.1.3 releases operators in `Node.__del__`, which fails with an ignored
    AttributeError when it runs during shutdown, after module globals are cleared.
    """
    yield
    import gc

    from towhee.runtime.nodes.node import Node

    gc.collect()
    for obj in gc.get_objects():
        if isinstance(obj, Node):
            obj._op = None  # release_op() then has nothing to release at shutdown


# ----- servers for the store contract and fault tests -----
#
# A service that cannot be reached skips its tests on a developer's machine, but fails
# them in CI (CI=true), where every backend must be tested.

REDIS_URL_ENV = "TOWHEE_RECSYS_TEST_REDIS_URL"
MYSQL_URL_ENV = "TOWHEE_RECSYS_TEST_MYSQL_URL"


def service_unavailable(reason: str) -> None:
    """Skip the test, or fail it when running in CI."""
    import os

    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true, so this fails instead of skipping)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """A Milvus standalone server on 127.0.0.1 for the whole session."""
    from towhee_recsys.testing import MilvusServerProcess

    reason = MilvusServerProcess.unavailable_reason()
    if reason:
        service_unavailable(reason)
    server = MilvusServerProcess(tmp_path_factory.mktemp("milvus-server"))
    try:
        server.start()
    except Exception as error:  # noqa: BLE001 - reported through skip or fail
        server.stop()
        service_unavailable(f"Milvus server failed to start: {error}")
    yield server
    server.stop(timeout=5)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """A Redis Cluster of three masters on loopback ports for the whole session."""
    from towhee_recsys.testing import RedisClusterProcess

    reason = RedisClusterProcess.unavailable_reason()
    if reason:
        service_unavailable(reason)
    cluster = RedisClusterProcess(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
    except Exception as error:  # noqa: BLE001 - reported through skip or fail
        cluster.stop()
        service_unavailable(f"Redis Cluster failed to start: {error}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """URL of the Redis server of this machine ($TOWHEE_RECSYS_TEST_REDIS_URL to override)."""
    import os

    import redis

    url = os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        service_unavailable(f"Redis server at {url} is unreachable: {error}")
    return url


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """URL of a test database on the MySQL/MariaDB server of this machine."""
    import os
    from urllib.parse import unquote, urlsplit

    import pymysql

    url = os.environ.get(MYSQL_URL_ENV, "mysql://root@127.0.0.1:3306/towhee_recsys_test")
    parts = urlsplit(url)
    database = parts.path.lstrip("/")
    try:
        connection = pymysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            connect_timeout=2,
        )
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
        connection.close()
    except pymysql.MySQLError as error:
        service_unavailable(f"MySQL server for {url} is unreachable: {error}")
    return url


@pytest.fixture
def unique_prefix() -> str:
    """A key or table prefix no other test uses; stores built on it are cleared by the test."""
    import uuid

    return f"trtest_{uuid.uuid4().hex[:10]}_"
