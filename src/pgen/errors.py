"""One error vocabulary for every layer. Front ends map it once: ``pgen.serve.errors`` to
HTTP statuses, ``pgen.cli.main`` to one-line messages. Each class also derives from the
builtin error it replaces (``ValueError``, ``KeyError``, ``RuntimeError``), so code that
caught those keeps working.

- ``InvalidRequest``: the caller asked for something malformed or impossible (HTTP 422).
- ``NotFound``: no such user, output, job or artifact in the caller's reach (HTTP 404).
- ``StaleArtifact``: an artifact no longer matches its data or base model; the message
  names the command that rebuilds it (HTTP 409).
- ``Conflict``: the request collides with the current state (HTTP 409).
- ``UpstreamError``: a model server or other upstream failed, not pgen (HTTP 502).
"""

from __future__ import annotations


class PgenError(Exception):
    """The base of pgen's own errors."""


class InvalidRequest(PgenError, ValueError):
    pass


class NotFound(PgenError, KeyError):
    """``str()`` is the message itself (a bare ``KeyError`` would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class StaleArtifact(InvalidRequest):
    pass


class Conflict(PgenError):
    pass


class UpstreamError(PgenError, RuntimeError):
    pass


# What the service answers for each, by its HTTP status and error code.
HTTP_STATUS: dict[type[PgenError], tuple[int, str]] = {
    NotFound: (404, "not_found"),
    StaleArtifact: (409, "stale_artifact"),
    InvalidRequest: (422, "invalid_request"),
    Conflict: (409, "conflict"),
    UpstreamError: (502, "upstream_error"),
}


def http_status(error: PgenError) -> tuple[int, str]:
    """The status and code of ``error``: its most specific class in ``HTTP_STATUS``."""
    for kind in type(error).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return 500, "internal_error"
