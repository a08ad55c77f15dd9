"""Every error leaves the server as ``{"error": {"type", "code", "message", "param"}}``:
seamline's own errors with their status, request validation as 400, unknown routes as 404,
and anything unexpected as a 500 that names no internals (the traceback goes to the log)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from seamline.core.errors import SeamlineError

log = logging.getLogger("seamline.api")

_HTTP_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error"}


def error_response(
    status: int, type_: str, code: str, message: str, param: str | None = None
) -> JSONResponse:
    body = {"error": {"type": type_, "code": code, "message": message, "param": param}}
    return JSONResponse(body, status_code=status)


def seamline_error_response(exc: SeamlineError) -> JSONResponse:
    """The response for one of seamline's errors, with its headers: for the exception
    handler, and for ASGI middleware, which runs outside FastAPI's exception handlers."""
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers)


async def _seamline_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SeamlineError)
    return seamline_error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"] if part != "body")
    return error_response(
        400,
        "invalid_request_error",
        "invalid_request",
        f"{where}: {first['msg']}" if where else str(first["msg"]),
        where or None,
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    type_ = _HTTP_TYPES.get(exc.status_code, "invalid_request_error")
    code = "not_found" if exc.status_code == 404 else f"http_{exc.status_code}"
    response = error_response(exc.status_code, type_, code, str(exc.detail))
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(
        500, "api_error", "internal_error", "internal error; the server log has the details"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SeamlineError, _seamline_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
