"""The FastAPI application of ``pgen serve``: routes, auth, limits, the web page.

``create_app(config)`` builds it for one process. The keys live in
``<home>/service/keys.sqlite``, the job records in ``<home>/service/jobs.sqlite`` (with a
Postgres store: both in its database, schemas ``pgen_service`` and ``pgen_jobs``, shared by
every replica), and each tenant's store under ``<home>/tenants/<tenant>/`` (Postgres: a
schema of the tenant's own).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from pgen.config import Config
from pgen.run.jobs import jobs_file
from pgen.serve import errors
from pgen.serve.auth.where import open_keys, service_database
from pgen.serve.batching import Batcher
from pgen.serve.deps import Admin, Service, TheService
from pgen.serve.jobs import Jobs
from pgen.serve.limits import BodyLimit
from pgen.serve.schemas import KeyBody
from pgen.serve.tenants import Tenants
from pgen.serve.userpaths import UserPaths

WEB = Path(__file__).parent / "web"
CONFIG_ENV = "PGEN_SERVE_CONFIG"  # the config, as JSON, for worker processes


def jobs_path(config: Config) -> Path | str:
    """Where the job rows live: with a Postgres store, its database (schema ``pgen_jobs``,
    shared by every replica on it); otherwise ``<home>/service/jobs.sqlite``."""
    return service_database(config) or jobs_file(config.home)


def create_app(config: Config, **components: Any) -> FastAPI:
    """``components``: ready models (``text_model``, ``embedder``, ``image_model``) in
    place of the configured ones, for tests and benchmarks."""
    from pgen.serve import audio, openai, preference_routes, routes

    service = Service(
        config=config,
        keys=open_keys(config),
        tenants=Tenants(config, **components),
        batcher=Batcher(config.serve_batch_size, config.serve_batch_wait_ms / 1000),
        jobs=Jobs(jobs_path(config)),
    )
    # This process's job worker: claims queued jobs of any replica on the same rows.
    service.jobs.start(host=service, workers=1)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.batcher.start()
        try:
            yield
        finally:
            # Uvicorn has finished in-flight requests by now; what is queued still runs.
            await service.batcher.stop()
            service.jobs.shutdown()
            service.tenants.close()
            service.keys.close()

    app = FastAPI(
        title="pgen",
        summary="Personalized generation as a service: context in, content for one user out.",
        lifespan=lifespan,
    )
    app.state.service = service
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=config.serve_max_body_mb * 1024 * 1024)
    app.add_middleware(UserPaths)
    app.include_router(routes.router)
    app.include_router(preference_routes.router)
    app.include_router(openai.router)
    app.include_router(audio.router)
    _service_routes(app)
    app.mount("/ui", StaticFiles(directory=WEB, html=True), name="ui")
    return app


def _service_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui/")

    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["service"])
    def ready(service: TheService) -> Any:
        """Ready for traffic: the keys read, the batcher runs. ``worker``: the process
        that answered (one of ``--workers``)."""
        service.keys.tenants()
        return {
            "ready": True,
            "worker": os.getpid(),
            "open_tenants": len(service.tenants.open_tenants()),
            "text_model_loaded": service.tenants.text_model.loaded,
            "batches": asdict(service.batcher.stats),
        }

    @app.post("/admin/keys", tags=["admin"], status_code=201)
    def create_key(body: KeyBody, who: Admin, service: TheService) -> Any:
        """A new key for a tenant (or, without one, an admin key); the token shows once."""
        token, info = service.keys.create(body.tenant, body.name)
        return {"key": token, **asdict(info)}

    @app.get("/admin/keys", tags=["admin"])
    def list_keys(who: Admin, service: TheService) -> Any:
        return [asdict(info) for info in service.keys.list_keys()]

    @app.delete("/admin/keys/{key_id}", tags=["admin"])
    def revoke_key(key_id: str, who: Admin, service: TheService) -> Any:
        try:
            return asdict(service.keys.revoke(key_id))
        except KeyError:
            raise errors.NotFound(key_id) from None

    @app.get("/admin/tenants", tags=["admin"])
    def tenants(who: Admin, service: TheService) -> Any:
        return service.keys.tenants()


# -- worker processes -----------------------------------------------------------------
def config_to_env(config: Config) -> str:
    return json.dumps({f.name: getattr(config, f.name) for f in fields(Config)}, default=str)


def _is_path(name: str, value: Any) -> bool:
    """``home`` and a store's file come back as paths; a store URL (postgresql://...) or
    {provider, settings} table stays as it was."""
    if name == "home":
        return bool(value)
    return name == "store" and isinstance(value, str) and bool(value) and "://" not in value


def app_from_env() -> FastAPI:
    """The app for a worker process (``uvicorn --factory``): the config from the parent."""
    return create_app(config_from_env(os.environ[CONFIG_ENV]))


def config_from_env(text: str) -> Config:
    """The config ``config_to_env`` sent, its paths and tuples made so again."""
    values = json.loads(text)
    values = {k: (Path(v) if _is_path(k, v) else v) for k, v in values.items()}
    if "video_motion_adapters" in values:  # a tuple, sent as a JSON list
        values["video_motion_adapters"] = tuple(values["video_motion_adapters"])
    return replace(Config(), **values)
