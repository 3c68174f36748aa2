"""RedisMetadataStore on a Redis Cluster, and the RedisClusterProcess that runs one.

Most tests share the session cluster of the `redis_cluster` fixture, each under its
own key prefix. The fault test starts a cluster of its own, so stopping a node there
leaves the session cluster healthy.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from towhee_recsys.data.dataset import Movie, User
from towhee_recsys.errors import InvalidParameterError, StoreError
from towhee_recsys.stores import RedisMetadataStore, UserRecord
from towhee_recsys.stores.redis_store import PASSWORD_ENV, ClusterAddress, parse_cluster_uri
from towhee_recsys.testing import RedisClusterProcess

TRICKY_IDS = [
    "O'Brien; DROP TABLE x; --",
    'Say "cheese"',
    "back\\slash",
    "star * question ? [set]",
    "{brace} }close{",
    "Zoë 臥虎藏龍 🎬",
]


def sample_movies() -> list[Movie]:
    return [
        Movie(1, "Misérables, Les (1995)", ("Drama", "Musical"), 1995),
        Movie(2, "Crouching Tiger, Hidden Dragon 臥虎藏龍 (2000)", ("Action", "Romance"), 2000),
        Movie(3, "O'Brien; \"quoted\" \\ title", (), None),
    ]


@pytest.fixture
def make_store(redis_cluster, unique_prefix):
    """Return a factory of stores on the session cluster, cleared and closed afterwards."""
    stores: list[RedisMetadataStore] = []

    def make(suffix: str = "", **kwargs) -> RedisMetadataStore:
        store = RedisMetadataStore(redis_cluster.url, key_prefix=f"{unique_prefix}{suffix}:", **kwargs)
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
def cluster_client(redis_cluster):
    """A plain redis-py cluster client, to look at keys behind the store's back."""
    nodes = [ClusterNode("127.0.0.1", port) for port in redis_cluster.ports]
    client = RedisCluster(startup_nodes=nodes, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def sends_by_node(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Count the writes to each Redis node's socket (one per round trip), keyed by port."""
    sends: Counter = Counter()
    original = redis.connection.AbstractConnection.send_packed_command

    def counting_send(self, command, check_health=True):
        sends[self.port] += 1
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting_send)
    return sends


@pytest.fixture
def acl_user(redis_cluster, unique_prefix):
    """Create a user with a password on every node, and delete it afterwards.

    The cluster's default user needs no password, and Redis 6 or later accepts any
    AUTH for such a user, so only a named user shows that a password is checked.
    """
    name, password = f"{unique_prefix}user", "p@ss;word"
    nodes = [redis.Redis(host="127.0.0.1", port=port) for port in redis_cluster.ports]
    for node in nodes:
        node.acl_setuser(name, enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all"])
    yield name, password
    for node in nodes:
        node.acl_deluser(name)
        node.close()


# ----- metadata on the cluster -----


def test_cluster_round_trip(store):
    store.put_movies(sample_movies())
    store.put_users([User(7, "F", 25, 4), User(8, "M", "25-34", "student")])
    store.put_rated({7: [3, 1], 9: [2]})
    store.set_info({"id_type": "int", "movies": 3})

    assert store.get_movies([1, 404, 2, 3]) == [sample_movies()[0], None, *sample_movies()[1:]]
    assert store.get_user(7) == UserRecord(User(7, "F", 25, 4), (1, 3))
    assert store.get_user(8) == UserRecord(User(8, "M", "25-34", "student"), ())
    assert store.get_user(9) == UserRecord(User(9, None, None, None), (2,))
    assert store.get_user(10) is None
    assert store.get_info() == {"id_type": "int", "movies": "3"}
    assert store.movie_ids() == [1, 2, 3]
    assert store.count_users() == 3
    assert store.describe()["backend"] == "redis-cluster"


def test_cluster_writes_replace(store):
    store.put_movies(sample_movies())
    store.put_rated({7: [1, 2, 3]})

    store.put_movies([Movie(1, "New title")])
    store.put_rated({7: [2]})

    assert store.add_rated(7, [2, 5]) == 1
    assert store.get_movies([1]) == [Movie(1, "New title")]
    assert store.get_user(7).rated_movie_ids == (2, 5)
    assert store.delete_movies([1, 404]) == 1
    assert store.movie_ids() == [2, 3]


def test_cluster_tricky_ids_verbatim(make_store):
    store = make_store(id_type="str")
    movies = [Movie(text, f"Title: {text}", ("Drama",), 1999) for text in TRICKY_IDS]
    store.put_movies(movies)
    store.put_users([User(text, "F") for text in TRICKY_IDS])
    store.put_rated({text: [text, TRICKY_IDS[0]] for text in TRICKY_IDS})

    assert store.get_movies(TRICKY_IDS) == movies
    assert store.movie_ids() == sorted(TRICKY_IDS)
    assert store.count_movies() == len(TRICKY_IDS)
    assert store.count_users() == len(TRICKY_IDS)
    for text in TRICKY_IDS:
        expected = UserRecord(User(text, "F"), tuple(sorted({text, TRICKY_IDS[0]})))
        assert store.get_user(text) == expected


def test_cluster_keys_and_slots(store, cluster_client):
    prefix = store.key_prefix
    store.put_movies(Movie(i, f"Movie {i}") for i in range(50))
    store.put_users(User(i, "F") for i in range(50))
    store.put_rated({i: [1] for i in range(50)})
    store.set_info({"movies": 50})

    movie_slots = {cluster_client.keyslot(f"{prefix}{{movies}}:{i}") for i in range(50)}
    profile_slots = [cluster_client.keyslot(f"{prefix}{{user:{i}}}:profile") for i in range(50)]
    rated_slots = [cluster_client.keyslot(f"{prefix}{{user:{i}}}:rated") for i in range(50)]
    user_ports = {cluster_client.get_node_from_key(f"{prefix}{{user:{i}}}:profile").port for i in range(50)}

    assert cluster_client.exists(f"{prefix}{{movies}}:0", f"{prefix}{{user:0}}:profile") == 2
    assert cluster_client.exists(f"{prefix}{{user:0}}:rated", f"{prefix}info") == 2
    assert len(movie_slots) == 1
    assert profile_slots == rated_slots
    assert len(user_ports) == 3


def test_cluster_put_rated_across_nodes(store):
    store.put_rated({i: [i, i + 1] for i in range(60)}, batch_size=25)
    store.put_rated({i: [i] for i in range(0, 60, 2)}, batch_size=7)

    assert store.get_user(0).rated_movie_ids == (0,)
    assert store.get_user(1).rated_movie_ids == (1, 2)
    assert store.get_user(58).rated_movie_ids == (58,)
    assert store.count_users() == 60


def test_cluster_clear_every_master(make_store, redis_cluster):
    mine, other = make_store("mine"), make_store("other")
    for each in (mine, other):
        each.put_users(User(i, "M") for i in range(30))
        each.put_movies(sample_movies())

    removed = mine.clear()

    assert removed == 33
    assert mine.count_users() == 0
    assert other.count_users() == 30
    for port in redis_cluster.ports:
        node = redis.Redis(host="127.0.0.1", port=port)
        try:
            assert list(node.scan_iter(match=mine.key_prefix + "*")) == []
        finally:
            node.close()


# ----- one round trip per read -----


def test_cluster_get_movies_one_round_trip(store, sends_by_node):
    store.put_movies(Movie(i, f"Movie {i}") for i in range(300))
    store.get_movies([0])  # opens the connection to the node of the movies
    sends_by_node.clear()

    movies = store.get_movies(list(range(0, 400, 2)))

    assert sum(sends_by_node.values()) == 1
    assert len(movies) == 200
    assert movies[10] == Movie(20, "Movie 20")


def test_cluster_get_user_one_round_trip(store, sends_by_node):
    store.put_users(User(i, "F", 25, 4) for i in range(20))
    store.put_rated({i: [1, 2] for i in range(20)})
    for user_id in range(20):
        store.get_user(user_id)  # opens the connections to every node
    sends_by_node.clear()

    for user_id in range(20):
        store.get_user(user_id)

    assert sum(sends_by_node.values()) == 20
    assert len(sends_by_node) == 3


# ----- errors, URLs and credentials -----


def test_cluster_unreachable_redacts_password():
    store = RedisMetadataStore("redis-cluster://:secret@127.0.0.1:1", timeout=1, retries=1)

    with pytest.raises(StoreError) as raised:
        store.count_movies()

    message = str(raised.value)
    assert "redis-cluster://:***@127.0.0.1:1" in message
    assert "secret" not in message
    assert "unreachable" in message


def test_cluster_user_and_env_password(redis_cluster, acl_user, unique_prefix, monkeypatch):
    name, password = acl_user
    monkeypatch.setenv(PASSWORD_ENV, password)
    url = redis_cluster.url.replace("redis-cluster://", f"redis-cluster://{name}@")
    store = RedisMetadataStore(url, key_prefix=unique_prefix)
    try:
        store.put_movies(sample_movies())

        assert store.count_movies() == 3
    finally:
        store.clear()
        store.close()


def test_cluster_wrong_password(redis_cluster, acl_user, unique_prefix, monkeypatch):
    name, _ = acl_user
    monkeypatch.setenv(PASSWORD_ENV, "wrong-env-password")
    url = redis_cluster.url.replace("redis-cluster://", f"redis-cluster://{name}@")
    store = RedisMetadataStore(url, key_prefix=unique_prefix, retries=0)

    with pytest.raises(StoreError) as raised:
        store.count_movies()

    message = str(raised.value)
    assert "rejected the credentials" in message
    assert "wrong-env-password" not in message


def test_parse_cluster_uri():
    address = parse_cluster_uri("redis-cluster://app:p%40ss/w@h1:7000,[::1]:7001,10.0.0.3:7002/0")

    assert address == ClusterAddress(
        nodes=(("h1", 7000), ("::1", 7001), ("10.0.0.3", 7002)), username="app", password="p@ss/w"
    )
    assert "p@ss" not in repr(address)


def test_parse_cluster_uri_without_credentials():
    address = parse_cluster_uri("redis-cluster://127.0.0.1:7000")

    assert address == ClusterAddress(nodes=(("127.0.0.1", 7000),), username=None, password=None)


@pytest.mark.parametrize(
    "uri",
    [
        "redis-cluster://",
        "redis-cluster://host",
        "redis-cluster://host:7000/1",
        "redis-cluster://host:70000",
        "redis-cluster://host:7000,,host:7001",
        "redis-cluster://host:7000?ssl=true",
    ],
)
def test_invalid_cluster_uri_rejected(uri):
    with pytest.raises(InvalidParameterError, match="redis-cluster://"):
        RedisMetadataStore(uri)


# ----- the cluster process and a node failure -----


def test_cluster_process_checks_arguments(tmp_path):
    with pytest.raises(InvalidParameterError, match="ports"):
        RedisClusterProcess(tmp_path, ports=[7000, 7001])
    with pytest.raises(InvalidParameterError, match="ports"):
        RedisClusterProcess(tmp_path, ports=[7000, 7000, 7001])
    with pytest.raises(InvalidParameterError, match="ports"):
        RedisClusterProcess(tmp_path, ports=[7000, 7001, 60000])


def test_cluster_process_missing_binary():
    reason = RedisClusterProcess.unavailable_reason(redis_server="no-such-redis-server")

    assert "no-such-redis-server" in reason


def test_cluster_node_failure_and_recovery(redis_cluster, tmp_path, unique_prefix):
    # Needs redis_cluster only so that a machine without Redis skips (or fails in CI).
    with RedisClusterProcess(tmp_path / "fault-cluster") as cluster:
        store = RedisMetadataStore(cluster.url, key_prefix=unique_prefix, timeout=1, retries=2)
        store.put_movies(sample_movies())
        store.put_users(User(i, "F") for i in range(30))
        store.put_rated({i: [1, 2] for i in range(30)})
        counts = (store.count_movies(), store.count_users())

        probe = RedisCluster(host="127.0.0.1", port=cluster.ports[0])
        movies_port = probe.get_node_from_key(f"{unique_prefix}{{movies}}:1").port
        probe.close()
        cluster.stop_node(cluster.ports.index(movies_port))
        started = time.monotonic()
        with pytest.raises(StoreError) as raised:
            store.get_movies([1, 2, 3])
        elapsed = time.monotonic() - started
        cluster.start_node(cluster.ports.index(movies_port))

        assert elapsed < 30
        assert "unreachable" in str(raised.value)
        assert store.get_movies([1, 2, 3]) == sample_movies()
        assert (store.count_movies(), store.count_users()) == counts
        assert store.get_user(29) == UserRecord(User(29, "F"), (1, 2))
        store.close()
    cluster.stop()
