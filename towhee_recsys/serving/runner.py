"""Run the API application with uvicorn in this process."""

from __future__ import annotations

import logging
import socket
from typing import Any

from towhee_recsys.errors import RecsysError
from towhee_recsys.validation import invalid_parameter

logger = logging.getLogger("towhee_recsys.serving")

# Seconds that a shutdown waits for requests still running before it closes their connections.
GRACEFUL_SHUTDOWN_TIMEOUT = 30.0


def check_address_free(host: str, port: int) -> None:
    """Raise InvalidParameterError if `host`:`port` cannot be bound, before the slow pipeline start."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise invalid_parameter("--host", "a local host name or IP address", host, f"({error.strerror})") from None
    family, kind, protocol, _, address = addresses[0]
    with socket.socket(family, kind, protocol) as probe:
        # uvicorn binds with SO_REUSEADDR too, so a port in TIME_WAIT counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise invalid_parameter(
                "--port", f"a port that is free on {host}", port, f"({error.strerror}) Choose another --port."
            ) from None


def run_server(pipeline: Any, host: str, port: int, *, log_requests: bool = True) -> None:
    """Serve `pipeline` over HTTP until SIGINT or SIGTERM, then close it.

    The application takes over `pipeline` and closes it at shutdown. uvicorn handles
    both signals: it stops accepting connections, waits up to GRACEFUL_SHUTDOWN_TIMEOUT
    for running requests, runs the application's shutdown, and then raises the signal
    again, so that Ctrl-C ends in KeyboardInterrupt.
    """
    import uvicorn

    from towhee_recsys.serving.app import create_app

    app = create_app(pipeline=pipeline, log_requests=log_requests)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_config=None,  # keep the logging setup of the command line
        access_log=False,  # RequestLogMiddleware logs each request
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_TIMEOUT,
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except SystemExit:
        # uvicorn exits when its startup fails, for example when the port was taken
        # after check_address_free; the reason is in its log.
        if server.started:
            raise
        raise RecsysError(f"The HTTP server failed to start on {host}:{port}; the log above has the reason.") from None
