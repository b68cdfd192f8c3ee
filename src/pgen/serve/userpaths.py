"""User ids in paths: any id ``pgen.context.validation`` allows (``a/b``, ``50%``, ``x?y``)
is one path segment, percent-encoded (``quote(user_id, safe="")``; the web page's
``encodeURIComponent``).

The server decodes a request's path before routing, so an encoded ``/`` (``%2F``) would
split the id into two segments and match no route, or the wrong one. Under ``/users/``,
``UserPaths`` routes on the path as sent instead: each segment decoded, then only ``%``
and ``/`` encoded again, so a segment is still one segment; ``segment()`` undoes that
exactly for the route's parameters (``UserId``, ``OutputId``). An unencoded ``/`` stays a
separator: ``/users/a/b`` is never user ``a/b``.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import Depends
from fastapi import Path as PathParam

PREFIX = b"/users/"


def routed_path(raw_path: bytes) -> str:
    """The path to route on: decoded, but ``%`` and ``/`` inside a segment encoded."""
    raw = raw_path.split(b"?", 1)[0].decode("ascii", "replace")
    parts = [unquote(part).replace("%", "%25").replace("/", "%2F") for part in raw.split("/")]
    return "/".join(parts)


def segment(value: str) -> str:
    """A path parameter as the client meant it (the inverse of ``routed_path``)."""
    return unquote(value)


class UserPaths:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw and raw.startswith(PREFIX):
            scope = {**scope, "path": routed_path(raw)}
        await self.app(scope, receive, send)


def _user_id(
    user_id: Annotated[str, PathParam(description="the user's id, percent-encoded")],
) -> str:
    return segment(user_id)


def _output_id(output_id: Annotated[str, PathParam()]) -> str:
    return segment(output_id)


UserId = Annotated[str, Depends(_user_id)]
OutputId = Annotated[str, Depends(_output_id)]
