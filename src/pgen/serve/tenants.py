"""One store per tenant, models shared by all of them.

Each tenant's users live in their own store: a SQLite file under ``<home>/tenants/<tenant>/``,
or, with a Postgres store, a schema of its own in the shared database. A key of
one tenant opens only that tenant's engine, so no query of it can name another tenant's
rows, and a user of another tenant is simply not there (answered exactly as an unknown
user). The text model, embedder and image model load once and serve every tenant: their
weights hold no user data (per-user adapters are the user's artifacts, named per request).

Open engines are bounded (``serve_max_tenants``): past the bound, the least recently used
engine that nothing holds is closed (its store's connections, its in-memory indexes). A
request or a job holds its tenant's engine for as long as it runs (``lease``), so an
engine in use is never closed under it; when every engine is held the bound is exceeded
for a moment and the oldest is closed when it is let go.

Idle engines are closed too (``serve_tenant_idle_s``, default 600 s): one that nothing
holds and nothing has used for that long goes at the next sweep (a daemon thread, every
quarter of the limit, at most a minute apart; ``evict_idle(now=...)`` runs one), so a
replica that served many tenants once does not keep them all (docs/deploy.md measures
what one holds). An evicted tenant's next request reopens its engine on the same store.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from pgen.config import Config
from pgen.engine import Engine
from pgen.factory import (
    Lazy,
    apply_thread_policy,
    build_embedder,
    build_image_model,
    build_photos,
    build_store,
    build_text_model,
    check_components,
    component_loader,
)
from pgen.factory.specs import store_spec
from pgen.serve.auth.keys import check_tenant
from pgen.serve.errors import ApiError

log = logging.getLogger("pgen")


def tenant_schema(tenant: str) -> str:
    """The Postgres schema of a tenant: its name made a schema name, with a hash of the
    name so that ``a-b`` and ``a_b`` never share one."""
    digest = hashlib.sha256(check_tenant(tenant).encode()).hexdigest()[:8]
    return f"tenant_{tenant.replace('-', '_')[:40]}_{digest}"


def tenant_store_config(config: Config, tenant: str, folder: Path) -> Config:
    """The configuration of one tenant's store. SQLite: a file in the tenant's folder.
    Postgres: the configured database, in a schema of the tenant's own (its connections'
    ``search_path``), so no query of this tenant's engine can name another's tables.
    A tenant's artifacts are the tenant's too: their own folder, wherever they live."""
    artifacts = None if config.artifacts is None else config.artifacts / tenant
    spec = store_spec(config.store, config)
    if spec.provider not in ("postgres", "postgresql"):
        return replace(config, store=folder / "pgen.sqlite", artifacts=artifacts)
    settings = {
        **spec.settings,
        "schema": tenant_schema(tenant),
        "artifacts": str(artifacts or folder / "artifacts"),
    }
    return replace(config, store={"provider": "postgres", "settings": settings})


class Tenants:
    def __init__(
        self,
        config: Config,
        *,
        text_model: Any = None,
        embedder: Any = None,
        image_model: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``text_model``/``embedder``/``image_model``: ready components (tests, benchmarks)
        in place of the configured ones. ``clock``: seconds, for the idle limit (tests)."""
        check_components(config)
        self.config = config
        # A gathered batch goes to the model as one call: its batch is the gatherer's.
        build_text = partial(build_text_model, batch_size=config.serve_batch_size)
        self.text_model = Lazy(text_model or self._loaded("text", build_text))
        self.embedder = Lazy(embedder or self._loaded("embedding", build_embedder))
        self.image_model = Lazy(image_model or self._loaded("image", build_image_model))
        # Other roles (the vision model, a new modality's model): one copy for every tenant.
        self._load_role = component_loader(config)
        self._shared: dict[str, Lazy[Any]] = {}
        self.max_open = max(1, config.serve_max_tenants)
        # Least recently used first; the count of requests and jobs holding each one.
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._holders: dict[str, int] = {}
        self._lock = threading.Lock()
        self.evicted = 0  # engines closed for the bound (for /ready and tests)
        self.idle_s = float(config.serve_tenant_idle_s)
        self.evicted_idle = 0  # engines closed for being idle
        self._clock = clock
        self._last_used: dict[str, float] = {}  # by tenant: when last acquired or released
        self._closed = threading.Event()
        if self.idle_s > 0:
            sweep = threading.Thread(target=self._sweep, name="pgen-tenants-idle", daemon=True)
            sweep.start()

    def _loaded(self, kind: str, build: Callable[[Config], Any]) -> Callable[[], Any]:
        def load() -> Any:
            apply_thread_policy(self.config)
            try:
                return build(self.config)
            except Exception as error:
                # The server's configuration, not the request, is at fault: a 503 that says
                # which model, and the next request tries again.
                raise ApiError(
                    503, "model_unavailable", f"the {kind} model could not load: {error}"[:300]
                ) from error

        return load

    def folder(self, tenant: str) -> Path:
        return self.config.home / "tenants" / check_tenant(tenant)

    def acquire(self, tenant: str) -> Engine:
        """The tenant's engine, opened on first use (its folder created then), held until
        ``release``: it is not closed while held."""
        with self._lock:
            engine = self._engines.get(tenant)
            if engine is None:
                engine = self._open(tenant)
                self._engines[tenant] = engine
            self._engines.move_to_end(tenant)
            self._holders[tenant] = self._holders.get(tenant, 0) + 1
            self._last_used[tenant] = self._clock()
            closing = self._over_bound()
        for old in closing:
            old.close()
        return engine

    def release(self, tenant: str) -> None:
        with self._lock:
            self._holders[tenant] -= 1
            if not self._holders[tenant]:
                del self._holders[tenant]
            self._last_used[tenant] = self._clock()  # idle from the end of its last use
            closing = self._over_bound()
        for old in closing:
            old.close()

    @contextmanager
    def lease(self, tenant: str) -> Iterator[Engine]:
        engine = self.acquire(tenant)
        try:
            yield engine
        finally:
            self.release(tenant)

    def engine(self, tenant: str) -> Engine:
        """The tenant's engine, held until ``close``: for one tenant alone (benchmarks,
        which use it for longer than the idle limit); the service holds its engines
        through ``lease``, for one request or job each."""
        return self.acquire(tenant)

    def evict_idle(self, now: float | None = None) -> list[str]:
        """Close the engines nothing holds and nothing used for longer than the idle
        limit (at ``now``, on the clock; default: the clock's now). The tenants closed."""
        if self.idle_s <= 0:
            return []
        now = self._clock() if now is None else now
        with self._lock:
            idle = [
                name
                for name in self._engines
                if name not in self._holders and now - self._last_used.get(name, now) > self.idle_s
            ]
            closing = [self._engines.pop(name) for name in idle]
            for name in idle:
                self._last_used.pop(name, None)
            self.evicted_idle += len(idle)
        for engine in closing:
            engine.close()
        return idle

    def _sweep(self) -> None:
        every = min(max(self.idle_s / 4, 1.0), 60.0)
        while not self._closed.wait(every):
            try:
                self.evict_idle()
            except Exception:  # a store that fails to close: the next sweep goes on
                log.warning("closing an idle tenant engine failed", exc_info=True)

    def open_tenants(self) -> list[str]:
        with self._lock:
            return list(self._engines)

    def component(self, role: str) -> Any:
        """The shared component of ``role``, built on first use."""
        with self._lock:
            if role not in self._shared:
                self._shared[role] = Lazy(self._loaded(role, lambda _: self._load_role(role)))
            loader = self._shared[role]
        return loader()

    def _open(self, tenant: str) -> Engine:
        folder = self.folder(tenant)
        folder.mkdir(parents=True, exist_ok=True)
        store = build_store(tenant_store_config(self.config, tenant, folder))
        return Engine(
            store,
            self.text_model,
            self.embedder,
            image_model=self.image_model,
            prompt_tokens=self.config.prompt_tokens,
            stale_adapters=self.config.stale_adapters,
            motion_adapters=self.config.video_motion_adapters,  # pinned: never a client's path
            generation=self.config.generation,
            vision_model=lambda: self.component("vision"),
            photos=partial(build_photos, self.config),
            components=self.component,
        )

    def _over_bound(self) -> list[Engine]:
        """Engines to close (outside the lock), least recently used first, none held.
        Called with the lock held."""
        closing = []
        for name in list(self._engines):
            if len(self._engines) <= self.max_open:
                break
            if name not in self._holders:
                closing.append(self._engines.pop(name))
                self._last_used.pop(name, None)
                self.evicted += 1
        return closing

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            for engine in self._engines.values():
                engine.close()
            self._engines.clear()
            self._last_used.clear()
