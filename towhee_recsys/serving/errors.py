"""Error responses of the HTTP API, and the middleware that logs every request.

Every error response has the body of `schemas.ErrorOut`. Invalid input gets 422 and
names each field, whether FastAPI's validation or the library's InvalidParameterError
found it. An unknown user or movie gets 404, and a failed store 503. Any other exception
gets 500 with a generic message, and its traceback goes only to the server log, under
the request id that the response carries in its body and in the X-Request-ID header.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from towhee_recsys.errors import InvalidParameterError, ModelError, RecsysError, StoreError, UnknownUserError

logger = logging.getLogger("towhee_recsys.serving")

REQUEST_ID_HEADER = "X-Request-ID"
INTERNAL_ERROR_MESSAGE = "Internal server error. The server log has the details under this request id."
# The prefix that towhee_recsys.validation.invalid_parameter gives every message.
_INVALID_PARAMETER_PREFIX = re.compile(r"^Invalid (?P<name>[^:]+):")
_HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed", 503: "service_unavailable"}


class InvalidInputError(Exception):
    """Invalid request values that the schemas cannot check, such as an id of the wrong type."""

    def __init__(self, errors: Sequence[tuple[str, str | None, str]]) -> None:
        super().__init__("; ".join(f"{field}: {reason}" for field, _, reason in errors))
        self.errors = [{"field": field, "location": location, "reason": reason} for field, location, reason in errors]


class NotFoundError(Exception):
    """A movie or another resource that the request names does not exist."""


def error_response(request: Request, status: int, code: str, message: str, errors: list | None = None) -> JSONResponse:
    """Build an error response with the body of `schemas.ErrorOut`."""
    body = {"code": code, "message": message, "errors": errors or [], "request_id": request_id_of(request)}
    return JSONResponse(body, status_code=status)


def request_id_of(request: Request) -> str:
    """Return the id that `RequestLogMiddleware` gave the request."""
    return request.scope.get("state", {}).get("request_id", "")


def install_error_handlers(app: FastAPI) -> None:
    """Map validation errors, the library's exceptions and HTTP errors to error responses."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(InvalidInputError, _invalid_input)
    app.add_exception_handler(InvalidParameterError, _invalid_parameter)
    app.add_exception_handler(UnknownUserError, _unknown_user)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(ModelError, _model_error)
    app.add_exception_handler(RecsysError, _recsys_error)
    app.add_exception_handler(HTTPException, _http_error)


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    errors = [_field_error(item) for item in error.errors()]
    return _invalid(request, errors)


async def _invalid_input(request: Request, error: InvalidInputError) -> JSONResponse:
    return _invalid(request, error.errors)


async def _invalid_parameter(request: Request, error: InvalidParameterError) -> JSONResponse:
    message = str(error)
    match = _INVALID_PARAMETER_PREFIX.match(message)
    name = match.group("name") if match else "request"
    errors = [{"field": name, "location": _location_of(request, name), "reason": message}]
    return error_response(request, 422, "invalid_parameter", message, errors)


async def _unknown_user(request: Request, error: UnknownUserError) -> JSONResponse:
    return error_response(request, 404, "unknown_user", str(error))


async def _not_found(request: Request, error: NotFoundError) -> JSONResponse:
    return error_response(request, 404, "not_found", str(error))


async def _store_error(request: Request, error: StoreError) -> JSONResponse:
    logger.error("Store failure in %s %s [request %s]: %s", request.method, request.url.path,
                 request_id_of(request), error)
    return error_response(request, 503, "store_unavailable", f"A store is unavailable: {error}")


async def _model_error(request: Request, error: ModelError) -> JSONResponse:
    logger.error("Model failure in %s %s [request %s]: %s", request.method, request.url.path,
                 request_id_of(request), error)
    return error_response(request, 503, "model_unavailable", f"The model is unavailable: {error}")


async def _recsys_error(request: Request, error: RecsysError) -> JSONResponse:
    logger.error("Request %s %s failed [request %s]", request.method, request.url.path, request_id_of(request),
                 exc_info=error)
    return error_response(request, 500, "internal_error", INTERNAL_ERROR_MESSAGE)


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    code = _HTTP_ERROR_CODES.get(error.status_code, "http_error")
    response = error_response(request, error.status_code, code, str(error.detail))
    if error.headers:
        response.headers.update(error.headers)
    return response


def _invalid(request: Request, errors: list[dict[str, Any]]) -> JSONResponse:
    summary = "; ".join(f"{item['field']}: {item['reason']}" for item in errors)
    return error_response(request, 422, "invalid_parameter", f"Invalid request: {summary}", errors)


def _field_error(item: dict[str, Any]) -> dict[str, Any]:
    """Turn one FastAPI validation error into a FieldError: ("body", "ratings", 0, "rating") -> ratings[0].rating."""
    location, *path = item.get("loc") or ("body",)
    if item.get("type") == "json_invalid":
        reason = f"{item.get('msg')}: {item.get('ctx', {}).get('error', 'not valid JSON')}"
        return {"field": "body", "location": "body", "reason": reason}
    field = ""
    for part in path:
        if isinstance(part, int):
            field += f"[{part}]"
        elif field:
            field += f".{part}"
        else:
            field = str(part)
    return {"field": field or str(location), "location": str(location), "reason": str(item.get("msg"))}


def _location_of(request: Request, name: str) -> str | None:
    if name in request.path_params:
        return "path"
    if name in request.query_params:
        return "query"
    if request.method in ("POST", "PUT", "PATCH"):
        return "body"
    return None


class RequestLogMiddleware:
    """Log one line per request, tag it with a request id, and turn uncaught exceptions into 500.

    The middleware sits inside Starlette's ServerErrorMiddleware, so an exception that no
    handler took reaches it first. It logs the traceback and sends a generic 500 body.
    """

    def __init__(self, app: ASGIApp, log_requests: bool = True) -> None:
        self.app = app
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER.lower().encode(), request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("Request %s %s failed [request %s]", scope["method"], scope["path"], request_id)
            if status:
                raise  # the response has started, so no error body can be sent
            status = 500
            await _send_internal_error(send, request_id)
        finally:
            if self.log_requests:
                elapsed_ms = (time.perf_counter() - started) * 1000
                logger.info("%s %s %d %.1f ms [request %s]", scope["method"], _path_with_query(scope), status,
                            elapsed_ms, request_id)


def _path_with_query(scope: Scope) -> str:
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{scope['path']}?{query}" if query else scope["path"]


async def _send_internal_error(send: Send, request_id: str) -> None:
    body = {"code": "internal_error", "message": INTERNAL_ERROR_MESSAGE, "errors": [], "request_id": request_id}
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (REQUEST_ID_HEADER.lower().encode(), request_id.encode()),
    ]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
