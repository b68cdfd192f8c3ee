"""One store per tenant, models shared by all of them.

Each tenant's users live in their own store under ``<home>/tenants/<tenant>/``: a key of
one tenant opens only that tenant's engine, so no query of it can name another tenant's
rows, and a user of another tenant is simply not there (answered exactly as an unknown
user). The text model, embedder and image model load once and serve every tenant: their
weights hold no user data (per-user adapters are the user's artifacts, named per request).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from pgen.config import Config
from pgen.engine import Engine
from pgen.factory import (
    Lazy,
    apply_thread_policy,
    build_embedder,
    build_image_model,
    build_store,
    build_text_model,
    check_components,
)
from pgen.serve.auth.keys import check_tenant
from pgen.serve.errors import ApiError


class Tenants:
    def __init__(
        self,
        config: Config,
        *,
        text_model: Any = None,
        embedder: Any = None,
        image_model: Any = None,
    ) -> None:
        """``text_model``/``embedder``/``image_model``: ready components (tests, benchmarks)
        in place of the configured ones."""
        check_components(config)
        self.config = config
        self.text_model = Lazy(text_model or self._loaded("text", build_text_model))
        self.embedder = Lazy(embedder or self._loaded("embedding", build_embedder))
        self.image_model = Lazy(image_model or self._loaded("image", build_image_model))
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

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

    def engine(self, tenant: str) -> Engine:
        """The tenant's engine, opened on first use (its folder created then)."""
        with self._lock:
            engine = self._engines.get(tenant)
            if engine is None:
                folder = self.folder(tenant)
                folder.mkdir(parents=True, exist_ok=True)
                store = build_store(replace(self.config, store=folder / "pgen.sqlite"))
                engine = Engine(
                    store,
                    self.text_model,
                    self.embedder,
                    image_model=self.image_model,
                    prompt_tokens=self.config.prompt_tokens,
                    generation=self.config.generation,
                )
                self._engines[tenant] = engine
            return engine

    def close(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.close()
            self._engines.clear()
