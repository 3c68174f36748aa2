"""HTTP latency, a concurrent load test and the peak memory of `towhee-recsys serve` on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchlib.latency import TOP_K
from benchlib.report import Row, skipped
from benchlib.startup import cli_command
from benchlib.timing import percentile_ms
from benchlib.workspace import Workspace

logger = logging.getLogger("bench")

SECTION = "http"
HOST = "127.0.0.1"
START_TIMEOUT = 180.0
STOP_TIMEOUT = 30.0
REQUEST_TIMEOUT = 30.0
# Share of load-test requests for a new user (POST with demographics); the rest are known users.
NEW_USER_SHARE = 0.2
NOTES = [
    "**http**: `towhee-recsys serve` runs in its own process on 127.0.0.1 on the catalog of the latency section. "
    "The single-client rows send GET `/users/{id}/recommendations?top_k=10` one after another over one "
    "keep-alive connection; their floor is the in-process pipeline p50 of the latency section. The load test "
    "runs N threads, each with its own keep-alive connection (Python's http.client), for the given duration: "
    f"{100 * (1 - NEW_USER_SHARE):.0f} % known-user GETs and {100 * NEW_USER_SHARE:.0f} % new-user POSTs to "
    "`/recommendations`. The client threads share the machine's cores with the server. An error is a "
    "response other than 200 or a failed connection. Peak memory is the server's peak resident set size "
    "(VmHWM in /proc) at the end of the load test.",
]


@dataclass
class LoadResult:
    """Outcome of a load test."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    seconds: float = 0.0


def serve_available() -> str:
    """Return "" when `towhee-recsys serve` exists, else the reason it cannot be used."""
    completed = subprocess.run([*cli_command(), "serve", "--help"], capture_output=True, text=True)
    if completed.returncode != 0:
        return "`towhee-recsys serve` does not exist in this version"
    return ""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@contextmanager
def running_server(home: Path, log_path: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    """Start `towhee-recsys serve` on `home` and a free port, wait until /health responds, stop it at the end."""
    port = free_port()
    help_text = subprocess.run([*cli_command(), "serve", "--help"], capture_output=True, text=True).stdout
    command = [*cli_command(), "serve", "--home", str(home), "--host", HOST, "--port", str(port)]
    if "--no-access-log" in help_text:
        command.append("--no-access-log")
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        _wait_until_healthy(process, port, log_path)
        yield process, port
    finally:
        _stop(process)


def _wait_until_healthy(process: subprocess.Popen, port: int, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"towhee-recsys serve exited with {process.returncode}: {_tail(log_path)}")
        try:
            status, _ = _request(HOST, port, "GET", "/health")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    message = f"towhee-recsys serve did not respond to /health within {START_TIMEOUT:.0f} s"
    raise RuntimeError(f"{message}: {_tail(log_path)}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        logger.warning("towhee-recsys serve (pid %d) did not stop on SIGINT; killing it", process.pid)
        process.kill()
        process.wait()


def _tail(path: Path, characters: int = 800) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-characters:].strip()
    except OSError:
        return "(no output)"


def _request(host: str, port: int, method: str, path: str, body: Any = None,
             connection: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
    own = connection is None
    connection = connection or http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
    try:
        payload = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        if own:
            connection.close()


def peak_rss_mib(pid: int) -> float | None:
    """Return the peak resident set size of process `pid` in MiB (Linux /proc), or None elsewhere."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class RequestMix:
    """Known-user GETs and new-user POSTs drawn from the dataset's users and demographics."""

    def __init__(self, workspace: Workspace, seed: int) -> None:
        self.user_ids = list(workspace.dataset.users)
        self.people = [user for user in workspace.dataset.users.values()
                       if user.gender is not None and user.age is not None and user.occupation is not None]
        self.seed = seed

    def known_user(self, rng: np.random.Generator) -> tuple[str, str, None]:
        user_id = self.user_ids[int(rng.integers(len(self.user_ids)))]
        return "GET", f"/users/{user_id}/recommendations?top_k={TOP_K}", None

    def next(self, rng: np.random.Generator) -> tuple[str, str, Any]:
        if self.people and rng.random() < NEW_USER_SHARE:
            person = self.people[int(rng.integers(len(self.people)))]
            body = {"gender": person.gender, "age": person.age, "occupation": person.occupation, "top_k": TOP_K}
            return "POST", "/recommendations", body
        return self.known_user(rng)


def single_client(port: int, mix: RequestMix, calls: int, warmup: int) -> tuple[list[float], int]:
    """Send `warmup` + `calls` known-user requests one at a time; return the timed durations and errors."""
    rng = np.random.default_rng(mix.seed)
    connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
    durations, errors = [], 0
    try:
        for call in range(warmup + calls):
            method, path, body = mix.known_user(rng)
            started = time.perf_counter()
            status, _ = _request(HOST, port, method, path, body, connection)
            if call >= warmup:
                durations.append(time.perf_counter() - started)
                errors += int(status != 200)
    finally:
        connection.close()
    return durations, errors


def load_test(port: int, mix: RequestMix, clients: int, duration: float) -> LoadResult:
    """Run `clients` threads that send requests back to back for `duration` seconds."""
    result = LoadResult()
    lock = threading.Lock()
    deadline = time.perf_counter() + duration

    def client(number: int) -> None:
        rng = np.random.default_rng(mix.seed + 1 + number)
        connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
        latencies, errors, examples = [], 0, []
        try:
            while time.perf_counter() < deadline:
                method, path, body = mix.next(rng)
                started = time.perf_counter()
                try:
                    status, payload = _request(HOST, port, method, path, body, connection)
                    failure = "" if status == 200 else f"{method} {path}: HTTP {status} {payload[:200]!r}"
                except (OSError, http.client.HTTPException) as error:
                    failure = f"{method} {path}: {type(error).__name__}: {error}"
                    connection.close()
                    connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
                latencies.append(time.perf_counter() - started)
                if failure:
                    errors += 1
                    examples = (examples + [failure])[:3]
        finally:
            connection.close()
        with lock:
            result.latencies.extend(latencies)
            result.errors += errors
            result.error_examples = (result.error_examples + examples)[:5]

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(number,), daemon=True) for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + REQUEST_TIMEOUT + 5)
    result.seconds = time.perf_counter() - started
    return result


def run(workspace: Workspace, calls: int, warmup: int, clients: int, duration: float, seed: int) -> list[Row]:
    """Start the server on the workspace's catalog and measure latency, load and peak memory."""
    reason = serve_available()
    if reason:
        return [skipped(SECTION, name, reason) for name in ("GET recommend p50", "load test", "serve peak memory")]

    home = workspace.ensure_catalog()
    mix = RequestMix(workspace, seed)
    with running_server(home, workspace.root / "serve.log") as (process, port):
        durations, single_errors = single_client(port, mix, calls, warmup)
        load = load_test(port, mix, clients, duration) if duration > 0 else None
        peak = peak_rss_mib(process.pid)

    floor = workspace.results.get("pipeline_p50_ms")
    rows = [
        Row(SECTION, "GET recommend p50, 1 client", percentile_ms(durations, 50), "ms", floor=floor,
            floor_name="pipeline in process", note=f"{calls} requests, {single_errors} errors"),
        Row(SECTION, "GET recommend p99, 1 client", percentile_ms(durations, 99), "ms",
            floor=workspace.results.get("pipeline_p99_ms"), floor_name="pipeline in process"),
    ]
    if load is not None:
        rows += _load_rows(load, clients)
    rows.append(Row(SECTION, "serve peak memory (RSS)", peak, "MiB",
                    note="VmHWM of the serve process" if peak is not None else "no /proc on this system"))
    return rows


def _load_rows(load: LoadResult, clients: int) -> list[Row]:
    requests = len(load.latencies)
    examples = "; ".join(load.error_examples)
    return [
        Row(SECTION, f"load test errors ({clients} clients, {load.seconds:.0f} s)", float(load.errors), "",
            target="0", passed=load.errors == 0, note=f"{requests:,} requests" + (f"; {examples}" if examples else "")),
        Row(SECTION, "load test p50", percentile_ms(load.latencies, 50) if requests else None, "ms"),
        Row(SECTION, "load test p99", percentile_ms(load.latencies, 99) if requests else None, "ms"),
        Row(SECTION, "load test throughput", requests / load.seconds if load.seconds else None, "requests/s"),
    ]
