"""What every route depends on: the service's parts, and who is asking."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from pgen.config import Config
from pgen.engine import Engine
from pgen.serve.auth.keys import KeyStore, Principal
from pgen.serve.batching import Batcher
from pgen.serve.errors import ApiError
from pgen.serve.jobs import Jobs
from pgen.serve.tenants import Tenants


@dataclass
class Service:
    config: Config
    keys: KeyStore
    tenants: Tenants
    batcher: Batcher
    jobs: Jobs


async def service(request: Request) -> Service:
    found: Service = request.app.state.service
    return found


# Async, though they read SQLite: each is a few microseconds, and a sync dependency costs a
# hop to the thread pool and back, several per request. A key kept in Postgres is a round
# trip to the database: that one lookup goes to the thread pool, the event loop stays free.
async def principal(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    """The key's principal from ``Authorization: Bearer <key>`` or ``X-API-Key``."""
    token = x_api_key
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else None
    keys: KeyStore = request.app.state.service.keys
    found: Principal | None = None
    if token and keys.remote:
        found = await run_in_threadpool(keys.verify, token)
    elif token:
        found = keys.verify(token)
    if found is None:
        raise ApiError(401, "unauthorized", "a valid API key is needed (Authorization: Bearer)")
    return found


async def tenant(who: Annotated[Principal, Depends(principal)]) -> str:
    if who.tenant is None:
        raise ApiError(403, "forbidden", "an admin key reaches no tenant's users; use its key")
    return who.tenant


async def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.admin:
        raise ApiError(403, "forbidden", "this needs an admin key")
    return who


async def engine(request: Request, name: Annotated[str, Depends(tenant)]) -> AsyncIterator[Engine]:
    """The tenant's engine, held (not closed by the tenants' bound) until the request
    is answered; a job that outlives the request holds it again itself."""
    tenants: Tenants = request.app.state.service.tenants
    found = tenants.acquire(name)
    try:
        yield found
    finally:
        tenants.release(name)


TenantName = Annotated[str, Depends(tenant)]
TenantEngine = Annotated[Engine, Depends(engine)]
TheService = Annotated[Service, Depends(service)]
Admin = Annotated[Principal, Depends(admin)]
