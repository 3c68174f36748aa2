"""A throwaway Milvus standalone server on 127.0.0.1, run from the `milvus` PyPI package.

The `milvus` package (2.3.5, ``pip install milvus==2.3.5``) ships the Milvus 2.3
standalone binary as LZMA files plus a YAML config template. `MilvusServerProcess`
unpacks the binary into ``base_dir/bin``, writes a config into ``base_dir/configs``
and starts ``milvus run standalone`` as its own process group. All data (embedded
etcd, RocksMQ, segments) and logs stay under `base_dir`, so `restart()` keeps the
collections.

Traffic stays on loopback:

* every component (rootCoord, proxy, queryCoord, queryNode, indexNode, dataCoord,
  dataNode) registers 127.0.0.1 as its address, otherwise Milvus picks the first
  non-loopback address of the machine;
* the embedded etcd listens on 127.0.0.1 through an etcd config file;
* every port (proxy, internal gRPC ports, etcd client and peer, metrics) is a free
  loopback port chosen at the first `start()` and kept for later starts.

Milvus 2.3 still binds its gRPC and metrics listeners on all interfaces, so clients
must connect to 127.0.0.1 only. The server takes several seconds to a minute to
start. Its graceful stop can hang, so `stop()` sends SIGKILL when the server has not
quit within the timeout after SIGTERM. After a restart on existing data,
Strong-consistency requests time out for about 10 s, until the stopped run's etcd
sessions expire.
This module is for tests and local experiments, not for production.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import weakref
from collections import deque
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# Components of a Milvus 2.3 standalone server whose `ip` setting must be loopback.
COMPONENTS = (
    "rootCoord",
    "proxy",
    "queryCoord",
    "queryNode",
    "indexNode",
    "dataCoord",
    "dataNode",
)
# Ports of the standalone process that the `milvus` package's template does not name.
ETCD_PEER_PORT = "etcd_peer_port"
METRICS_PORT = "metrics_port"
LOG_FILE = "milvus-server.log"
# Seconds an etcd session of a stopped server stays registered (Milvus default 30).
# With Milvus 2.3.5, Strong-consistency searches after a restart time out until the
# old sessions expire, while rootCoord logs "session idle for long time" for them.
SESSION_TTL = 10
# Seconds after SIGTERM until Milvus quits without finishing its graceful stop
# (default 1800). It bounds the wait of a standalone query node, which waits for its
# segments to move to another query node. Other components of Milvus 2.3.5 can still
# hang on SIGTERM, which stop() ends with SIGKILL.
GRACEFUL_STOP_TIMEOUT = 5
# Seconds between two readiness probes, and the timeout of each probe.
PROBE_INTERVAL = 0.5
PROBE_TIMEOUT = 2.0
# Seconds to wait for the process to exit after SIGKILL.
KILL_WAIT = 10.0


class MilvusServerProcess:
    """A Milvus 2.3 standalone server process listening on 127.0.0.1.

    Args:
        base_dir: folder for the binary, config, data and logs. It is created if missing.
        port: proxy (client) port. 0 picks a free loopback port at the first `start()`.
        startup_timeout: seconds `start()` waits for the server to accept clients.

    Requires the `milvus` package (see `unavailable_reason()`) and a POSIX system.
    """

    def __init__(self, base_dir: str | os.PathLike[str], port: int = 0, startup_timeout: float = 180.0):
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer in 0..65535 (0 = pick a free port), got {port!r}")
        if startup_timeout <= 0:
            raise ValueError(f"startup_timeout must be > 0 seconds, got {startup_timeout!r}")
        self.base_dir = Path(base_dir).absolute()
        self.startup_timeout = float(startup_timeout)
        self._requested_port = port
        self._ports: dict[str, int] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self._finalizer: weakref.finalize | None = None

    @staticmethod
    def unavailable_reason() -> str | None:
        """Return why no server can be started here, or None when it can."""
        if os.name != "posix":
            return "MilvusServerProcess needs a POSIX system (it stops the server by process group)"
        try:
            import milvus  # noqa: F401
        except ImportError:
            return (
                "the `milvus` package with the Milvus 2.3 standalone server is not installed; "
                "install it with: pip install milvus==2.3.5"
            )
        return None

    # ----- state -----

    @property
    def port(self) -> int:
        """Proxy port clients connect to. 0 until the first `start()` picked it."""
        return self._ports.get("proxy_port", self._requested_port)

    @property
    def uri(self) -> str:
        """Client URI of the proxy, ``http://127.0.0.1:PORT``."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running server, None when it is stopped."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """True while the server process started by `start()` has not exited."""
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        """File that receives the server's stdout and stderr, appended to by each start."""
        return self.base_dir / "logs" / LOG_FILE

    def log_tail(self, lines: int = 40) -> str:
        """Return the last `lines` lines of the server log, or "" when there is none."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                return "".join(deque(log, maxlen=lines))
        except FileNotFoundError:
            return ""

    # ----- lifecycle -----

    def start(self) -> None:
        """Start the server and wait until it accepts a MilvusClient connection.

        Does nothing when the server is already running. Raises RuntimeError when
        the `milvus` package is missing, a port is in use, the process exits, or the
        server is not ready within `startup_timeout` seconds. The message contains
        the tail of the server log. The process is stopped before the error is raised.
        """
        if self.running:
            return
        reason = self.unavailable_reason()
        if reason:
            raise RuntimeError(f"Cannot start a Milvus server: {reason}.")
        if self._process is not None:
            self.stop()

        if not self._ports:
            self._ports = _pick_free_ports(self._port_names(), self._requested_port)
        _check_ports_free(self._ports)
        started = time.monotonic()
        self._write_files()
        self._launch()
        try:
            self._wait_ready(started + self.startup_timeout)
        except BaseException:
            self.stop(timeout=5.0)
            raise
        logger.info(
            "Milvus server started at %s (pid %d) in %.1f s, data in %s",
            self.uri,
            self.pid,
            time.monotonic() - started,
            self.base_dir,
        )

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL after `timeout` seconds.

        Signals go to the server's process group, so child processes stop too.
        Safe to call when the server is stopped or was never started.
        """
        process = self._process
        if process is not None:
            if process.poll() is None:
                self._stop_process(process, timeout)
            # Members of the group that outlived the main process get SIGKILL too.
            _signal_group(process.pid, signal.SIGKILL)
            logger.info("Milvus server at %s (pid %d) stopped", self.uri, process.pid)
        self._process = None
        self._close_log()
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None

    def restart(self) -> None:
        """Stop the server and start it again on the same ports and data."""
        self.stop()
        self.start()

    def __enter__(self) -> MilvusServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"MilvusServerProcess(uri={self.uri!r}, base_dir={str(self.base_dir)!r}, {state})"

    # ----- start steps -----

    @staticmethod
    def _port_names() -> list[str]:
        import milvus

        template_ports = [name for name in milvus.MilvusServerConfig().configurable_items if name.endswith("_port")]
        return [*template_ports, ETCD_PEER_PORT, METRICS_PORT]

    def _write_files(self) -> None:
        """Unpack the binary and write the Milvus and etcd configs into base_dir."""
        import milvus

        config = milvus.MilvusServerConfig(data_dir=str(self.base_dir))
        for name, port in self._ports.items():
            config.set(name, port)
        for component in COMPONENTS:
            config.set(f"{component}.ip", LOOPBACK)
        config.set("common.session.ttl", SESSION_TTL)
        config.set("common.gracefulStopTimeout", GRACEFUL_STOP_TIMEOUT)
        # resolve_storage() points etcd, RocksMQ, local storage and logs into base_dir.
        # MilvusServerConfig.resolve() is not used because its own port check binds
        # without SO_REUSEADDR and fails on the proxy port's TIME_WAIT connections
        # for a minute after a restart.
        config.resolve_storage()
        config.write_config()
        # NOTE: _initialize_data_files is private in milvus 2.3.5. It unpacks the
        # binary and its shared libraries into base_dir/bin, skipping unchanged files.
        milvus._initialize_data_files(str(self.base_dir))
        self._etcd_config_path.write_text(self._etcd_config(), encoding="utf-8")

    @property
    def _etcd_config_path(self) -> Path:
        return self.base_dir / "configs" / "embed-etcd.yaml"

    def _etcd_config(self) -> str:
        client_url = f"http://{LOOPBACK}:{self._ports['etcd_port']}"
        peer_url = f"http://{LOOPBACK}:{self._ports[ETCD_PEER_PORT]}"
        # Keys of etcd's embed.Config YAML. Milvus sets the data dir and logging itself.
        return (
            "name: default\n"
            f"listen-client-urls: {client_url}\n"
            f"advertise-client-urls: {client_url}\n"
            f"listen-peer-urls: {peer_url}\n"
            f"initial-advertise-peer-urls: {peer_url}\n"
            f"initial-cluster: default={peer_url}\n"
        )

    def _environment(self) -> dict[str, str]:
        bin_dir = str(self.base_dir / "bin")
        library_path = os.environ.get("LD_LIBRARY_PATH", "")
        return {
            **os.environ,
            "DEPLOY_MODE": "STANDALONE",
            "MILVUSCONF": str(self.base_dir / "configs"),
            "MILVUS_RUN_DIR": str(self.base_dir / "run"),
            "METRICS_PORT": str(self._ports[METRICS_PORT]),
            # Milvus reads ETCD_CONFIG_PATH as the etcd.config.path setting.
            "ETCD_CONFIG_PATH": str(self._etcd_config_path),
            "LD_LIBRARY_PATH": f"{bin_dir}:{library_path}" if library_path else bin_dir,
            "DYLD_LIBRARY_PATH": bin_dir,
        }

    def _launch(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_handle = open(self.log_path, "ab")
        self._process = subprocess.Popen(
            [str(self.base_dir / "bin" / "milvus"), "run", "standalone"],
            cwd=self.base_dir,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # Kills the server if this interpreter exits without calling stop().
        self._finalizer = weakref.finalize(self, _kill_group, self._process.pid)
        logger.info(
            "Starting Milvus server (pid %d) on %s, log in %s",
            self._process.pid,
            self.uri,
            self.log_path,
        )

    def _wait_ready(self, deadline: float) -> None:
        """Poll the health endpoint and a MilvusClient connection until both succeed."""
        last_error = "no probe finished"
        while time.monotonic() < deadline:
            process = self._process
            if process is None or process.poll() is not None:
                code = None if process is None else process.returncode
                raise RuntimeError(
                    f"Milvus server exited with code {code} while starting. "
                    f"Last lines of {self.log_path}:\n{self.log_tail()}"
                )
            try:
                self._probe()
                return
            except Exception as error:  # noqa: BLE001 - any failure means "not ready yet"
                last_error = f"{type(error).__name__}: {error}"
            time.sleep(PROBE_INTERVAL)
        raise RuntimeError(
            f"Milvus server at {self.uri} was not ready after {self.startup_timeout:.0f} s "
            f"(last probe: {last_error}). Raise startup_timeout on a slow machine. "
            f"Last lines of {self.log_path}:\n{self.log_tail()}"
        )

    def _probe(self) -> None:
        """Raise unless /healthz reports OK and a MilvusClient can list collections."""
        health_url = f"http://{LOOPBACK}:{self._ports[METRICS_PORT]}/healthz"
        with urllib.request.urlopen(health_url, timeout=PROBE_TIMEOUT) as response:
            body = response.read().decode("utf-8", "replace")
        if "OK" not in body:
            raise RuntimeError(f"/healthz returned {body!r}")

        from pymilvus import MilvusClient

        # A dedicated client owns its gRPC channel, so close() really closes it
        # instead of leaving a shared channel in pymilvus' connection registry.
        client = MilvusClient(self.uri, timeout=PROBE_TIMEOUT, dedicated=True)
        try:
            client.list_collections(timeout=PROBE_TIMEOUT)
        finally:
            client.close()

    # ----- stop steps -----

    def _stop_process(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            logger.warning(
                "Milvus server (pid %d) ignored SIGTERM for %.0f s, sending SIGKILL",
                process.pid,
                timeout,
            )
        _signal_group(process.pid, signal.SIGKILL)
        try:
            process.wait(timeout=KILL_WAIT)
        except subprocess.TimeoutExpired:
            logger.error("Milvus server (pid %d) still runs after SIGKILL", process.pid)

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None


# ----- ports and signals -----


def _pick_free_ports(names: list[str], proxy_port: int) -> dict[str, int]:
    """Return a distinct free loopback port per name, with `proxy_port` when it is not 0."""
    sockets: list[socket.socket] = []
    ports: dict[str, int] = {}
    try:
        if proxy_port:
            # Holding the requested port keeps the OS from handing it out below.
            # A port that is in use is reported by _check_ports_free.
            ports["proxy_port"] = proxy_port
            sockets.append(_try_bind(proxy_port))
        # Every socket stays bound until all ports are chosen, so no port is chosen twice.
        for name in names:
            if name not in ports:
                sock = _try_bind(0)
                sockets.append(sock)
                ports[name] = sock.getsockname()[1]
    finally:
        for sock in sockets:
            sock.close()
    return ports


def _try_bind(port: int) -> socket.socket:
    """Return a socket bound to the loopback `port`, or an unbound one when it is in use."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((LOOPBACK, port))
    except OSError:
        if port == 0:
            sock.close()
            raise
    return sock


def _check_ports_free(ports: dict[str, Any]) -> None:
    """Raise RuntimeError naming the first port that another process listens on.

    Binds with SO_REUSEADDR like the Go runtime of Milvus does, so connections
    in TIME_WAIT from a previous run do not count as in use.
    """
    for name, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((LOOPBACK, port))
            except OSError as error:
                raise RuntimeError(
                    f"Port {port} ({name}) of the Milvus server is in use: {error}. "
                    "Stop the process that listens on it or pass another port."
                ) from error


def _signal_group(pid: int, signum: int) -> None:
    """Send `signum` to the process group led by `pid`, ignoring a group that is gone."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


def _kill_group(pid: int) -> None:
    _signal_group(pid, signal.SIGKILL)
