"""Concurrent generate requests share model batches, answer as they would alone, and a
failing request in a batch fails only itself."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from pgen.context.base import UserNotFoundError
from pgen.context.records import Document, User
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.models.base import GenerationSettings
from pgen.models.text import TransformersTextModel
from pgen.personalize import TextRequest
from pgen.serve.batching import Batcher
from tests.serve.conftest import tenant_records
from tests.serve.server import serve_in_thread, service_config


def no_embedder() -> object:
    raise AssertionError("bm25 needs no embedder")


def test_concurrent_requests_share_batches_and_match_one_at_a_time(
    tmp_path: Path, tiny_llama: Path, serve_model: TransformersTextModel
) -> None:
    config = service_config(tmp_path, tiny_llama, serve_batch_wait_ms=200, serve_batch_size=8)
    with (
        serve_in_thread(config, tenants=("acme",), text_model=serve_model) as server,
        server.client("acme") as client,
    ):
        client.post("/records", json={"records": tenant_records("acme")})
        prompts = [f"tell me about topic {n}" for n in range(8)]
        alone = [
            client.post("/users/alice/generate", json={"instruction": p, "save": False}).json()
            for p in prompts
        ]
        batcher = server.app.state.service.batcher
        assert batcher.settled(timeout=120)  # answers are sent just before batches count
        before = client.get("/ready").json()["batches"]

        def ask(prompt: str) -> dict[str, object]:
            body = {"instruction": prompt, "save": False}
            result: dict[str, object] = client.post("/users/alice/generate", json=body).json()
            return result

        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(ask, prompts))
        assert batcher.settled(timeout=120)
        after = client.get("/ready").json()["batches"]
    assert [r["text"] for r in together] == [r["text"] for r in alone]  # greedy, batched
    assert after["requests"] - before["requests"] == 8
    assert after["batches"] - before["batches"] < 8 and after["largest"] > 1


def test_a_bad_request_in_a_batch_fails_alone(tmp_path: Path, tiny_llama: Path) -> None:
    model = TransformersTextModel(str(tiny_llama), name="tiny", batch_size=8)
    with SQLiteStore(tmp_path / "s.sqlite") as store:
        store.add(
            [User(user_id="u"), Document(user_id="u", doc_id="d", text="the battery lasts long")]
        )
        engine = Engine(store, model, no_embedder)  # type: ignore[arg-type]

        async def run() -> list[object]:
            batcher = Batcher(max_batch=8, wait_s=0.2)
            await batcher.start()
            settings = GenerationSettings(max_new_tokens=3)
            requests = [
                TextRequest("u", "hi"),
                TextRequest("ghost", "hi"),
                TextRequest("u", "battery"),
            ]
            results = await asyncio.gather(
                *(batcher.generate(engine, r, settings) for r in requests), return_exceptions=True
            )
            await batcher.stop()
            return list(results)

        good, bad, also_good = asyncio.run(run())
    assert isinstance(bad, UserNotFoundError)
    assert getattr(good, "user_id", None) == "u" and getattr(also_good, "output_id", None)


def test_the_served_model_decodes_a_whole_gathered_batch_in_one_call(
    tmp_path: Path, tiny_llama: Path
) -> None:
    """A local model's own batch would split a gathered batch of 12 into 8 + 4 (its
    default), halving what gathering gains: the service builds it as wide as the gatherer,
    unless the model's settings table names a batch size."""
    from pgen.serve.tenants import Tenants

    tenants = Tenants(service_config(tmp_path, tiny_llama, serve_batch_size=12))
    assert tenants.text_model().batch_size == 12
    table = {"provider": "transformers", "settings": {"path": str(tiny_llama), "batch_size": 3}}
    config = replace(service_config(tmp_path, tiny_llama, serve_batch_size=12), text_model=table)
    assert Tenants(config).text_model().batch_size == 3
