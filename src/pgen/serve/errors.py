"""Errors as JSON, one shape for every route (the shape OpenAI clients read too):
``{"error": {"type", "code", "message"}}``.

Anything not found answers with one fixed body, whatever was missing and whoever asked:
a user of another tenant, an unknown user, another user's output and an unknown job are
indistinguishable, so no answer tells that something exists elsewhere.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pgen.context.ingest import IngestError
from pgen.errors import NotFound as PgenNotFound
from pgen.errors import PgenError, UpstreamError, http_status

log = logging.getLogger("pgen.serve")

NOT_FOUND_BODY: dict[str, Any] = {
    "error": {"type": "not_found", "code": "not_found", "message": "not found"}
}


# Anything absent from the caller's tenant (``pgen.errors.NotFound``, re-exported here).
NotFound = PgenNotFound


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


_UPSTREAM_ADDRESS = re.compile(r" at https?://\S+")


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"type": code, "code": code, "message": message, **extra}}


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit] + "…"


def error_json(error: Exception) -> tuple[int, dict[str, Any]]:
    """The status and body of a route's error. The handlers answer with them; a stream
    that has begun (the chat endpoint's) sends the body as its last event."""
    if isinstance(error, ApiError):
        return error.status, error_body(error.code, error.message)
    if isinstance(error, PgenError):  # the one mapping of pgen's error vocabulary
        status, code = http_status(error)
        if status == 404:
            return 404, NOT_FOUND_BODY
        if code == "upstream_error":
            # The upstream model server (vLLM, Ollama, ...) failed, not pgen: a gateway
            # error that says how, so the caller knows to retry or to alert. Its address
            # is the operator's business (the log has it), not a tenant's.
            said = _UPSTREAM_ADDRESS.sub("", str(error))
            return status, error_body(code, _one_line(f"upstream {said}"))
        return status, error_body(code, _one_line(str(error)))
    if isinstance(error, ValueError):  # a library's refusal of the input
        return 422, error_body("invalid_request", _one_line(str(error)))
    return 500, error_body("internal_error", "internal error")  # no internals to the client


def install(app: FastAPI) -> None:
    @app.exception_handler(PgenError)
    @app.exception_handler(ApiError)
    @app.exception_handler(ValueError)
    async def known(request: Request, error: Exception) -> JSONResponse:
        status, body = error_json(error)
        return JSONResponse(body, status_code=status)

    @app.exception_handler(UpstreamError)
    async def upstream_error(request: Request, error: UpstreamError) -> JSONResponse:
        # Expected when the upstream is down: one line in the log, not a traceback.
        log.warning("%s %s: %s", request.method, request.url.path, error)
        status, body = error_json(error)
        return JSONResponse(body, status_code=status)

    @app.exception_handler(IngestError)
    async def ingest_error(request: Request, error: IngestError) -> JSONResponse:
        body = error_body("invalid_records", _one_line(str(error)), where=error.where)
        body["error"]["problem"] = error.problem
        return JSONResponse(body, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        # The fields and what was wrong, never the input itself (it may be megabytes).
        fields = [
            {"loc": [str(p)[:60] for p in issue.get("loc", ())], "msg": str(issue.get("msg"))}
            for issue in error.errors()[:20]
        ]
        message = "; ".join(f"{'.'.join(f['loc'])}: {f['msg']}" for f in fields)
        return JSONResponse(
            error_body("invalid_request", _one_line(message) or "invalid request", fields=fields),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 404:
            return JSONResponse(NOT_FOUND_BODY, status_code=404)
        code = {
            401: "unauthorized",
            403: "forbidden",
            405: "method_not_allowed",
            413: "too_large",
        }.get(error.status_code, "http_error")
        return JSONResponse(
            error_body(code, _one_line(str(error.detail))),
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> JSONResponse:
        # Logged whole on the server; the client gets no traceback and no internals.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        status, body = error_json(error)
        return JSONResponse(body, status_code=status)
