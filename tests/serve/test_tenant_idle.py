"""Idle tenant engines are closed (``serve_tenant_idle_s``): one nothing used for longer
than the limit goes, one in use stays however old, reopening sees the same data, and an
evicted engine gives its memory back. Time is a fake clock: nothing here sleeps on it."""

from __future__ import annotations

import gc
import json
import os
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from pgen.context.base import StoreError
from pgen.models.text import TransformersTextModel
from pgen.serve.tenants import Tenants
from tests.serve.server import service_config


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def records(folder: Path, tenant: str, documents: int = 1) -> Path:
    """A JSONL file of one user of ``tenant`` with ``documents`` documents."""
    user = f"{tenant}-user"
    rows: list[dict[str, Any]] = [
        {"type": "user", "user_id": user},
        *(
            {"type": "document", "user_id": user, "doc_id": f"d{n}", "text": f"{tenant} note {n}"}
            for n in range(documents)
        ),
    ]
    path = folder / f"{tenant}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_an_idle_engine_goes_one_in_use_stays_and_reopening_sees_its_data(
    tmp_path: Path, tiny_llama: Path
) -> None:
    clock = Clock()
    config = service_config(tmp_path, tiny_llama, serve_tenant_idle_s=600)
    tenants = Tenants(config, clock=clock)
    try:
        with tenants.lease("idle") as engine:
            engine.ingest(records(tmp_path, "idle"))
        old = engine
        held = tenants.acquire("busy")  # a request (or a job) in flight, from now on
        clock.now += 600
        tenants.evict_idle()
        assert tenants.open_tenants() == ["idle", "busy"]  # at the limit: not past it
        clock.now += 1
        tenants.evict_idle()
        assert tenants.open_tenants() == ["busy"] and tenants.evicted_idle == 1
        with pytest.raises(StoreError, match="closed"):  # really closed, not just dropped
            old.has_user("idle-user")
        clock.now += 10_000
        tenants.evict_idle()  # held: stays, however long ago it was taken
        assert tenants.open_tenants() == ["busy"] and held.has_user("busy-user") is False
        with tenants.lease("idle") as again:  # reopens on the same store, data and all
            assert again is not old and again.has_user("idle-user")
            assert [d.doc_id for d in again.documents("idle-user")] == ["d0"]
        tenants.release("busy")  # idle from its release on, not from its acquire
        clock.now += 599
        tenants.evict_idle()
        assert set(tenants.open_tenants()) == {"idle", "busy"}
        clock.now += 2
        tenants.evict_idle()
        assert tenants.open_tenants() == [] and tenants.evicted_idle == 3
    finally:
        tenants.close()


def test_a_zero_limit_never_evicts_and_the_sweeper_evicts_on_its_own(
    tmp_path: Path, tiny_llama: Path
) -> None:
    clock = Clock()
    never = Tenants(service_config(tmp_path / "a", tiny_llama, serve_tenant_idle_s=0), clock=clock)
    try:
        never.engine("t")  # engine(): held until close (benchmarks outlive any limit)
        with never.lease("u"):
            pass
        clock.now += 1e9
        assert never.evict_idle() == [] and never.open_tenants() == ["t", "u"]
    finally:
        never.close()
    # A limit of 1 s: the daemon sweeps every second, on the (fake, far-advanced) clock.
    swept = Tenants(service_config(tmp_path / "b", tiny_llama, serve_tenant_idle_s=1), clock=clock)
    try:
        swept.engine("pinned")
        with swept.lease("t"):
            pass
        clock.now += 100
        deadline = time.monotonic() + 120  # against a hang only: a sweep is due each second
        while swept.open_tenants() != ["pinned"]:
            assert time.monotonic() < deadline, swept.open_tenants()
            time.sleep(0.05)
        assert swept.evicted_idle == 1
    finally:
        swept.close()


def rss() -> int:
    """This process's resident memory, bytes (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize(("documents", "retriever"), [(20, "bm25"), (200, "bm25"), (200, "hybrid")])
def test_an_evicted_engine_gives_its_memory_back(
    tmp_path: Path,
    tiny_llama: Path,
    serve_model: TransformersTextModel,
    documents: int,
    retriever: str,
) -> None:
    """What an open tenant engine holds (its store's connections, the in-memory indexes a
    search builds, for one user's documents; hybrid: BM25 and the dense vectors), measured with tracemalloc (Python and numpy
    allocations; SQLite's own page cache is outside it: RSS, printed, covers it):
    eviction gives it back. Numbers in docs/deploy.md (printed with -s)."""
    clock = Clock()
    config = service_config(tmp_path, tiny_llama, serve_tenant_idle_s=600)
    tenants = Tenants(config, text_model=serve_model, clock=clock)
    count = 10
    try:
        for name in ("warm", *(f"t{n}" for n in range(count))):
            with tenants.lease(name) as engine:
                engine.ingest(records(tmp_path, name, documents))
        tenants.close()  # every engine closed: the shared models stay loaded
        tenants = Tenants(config, text_model=serve_model, clock=clock)
        with tenants.lease("warm") as engine:  # the embedder loads here, once, not measured
            engine.search("warm-user", "note", k=5, retriever=retriever)
        # One unmeasured round of opening and evicting every tenant: what stays after it
        # (the process's own caches: compiled patterns, tokenizer and import caches) would
        # otherwise count as "not given back" when the suite runs this test first.
        for n in range(count):
            with tenants.lease(f"t{n}") as engine:
                engine.search(f"t{n}-user", "note", k=5, retriever=retriever)
        clock.now += 601
        tenants.evict_idle()
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        rss_base = rss()
        for n in range(count):
            with tenants.lease(f"t{n}") as engine:
                assert len(engine.search(f"t{n}-user", "note", k=5, retriever=retriever)) == 5
        gc.collect()
        opened = tracemalloc.get_traced_memory()[0] - base
        rss_opened = rss() - rss_base
        clock.now += 601
        assert len(tenants.evict_idle()) == count
        gc.collect()
        left = tracemalloc.get_traced_memory()[0] - base
        rss_left = rss() - rss_base
        tracemalloc.stop()
        per = opened / count
        print(
            f"\nopen tenant engine ({documents} docs, {retriever} search), {count} tenants: "
            f"tracemalloc {per / 1024:.0f} KiB each, {left / 1024:.0f} KiB left after "
            f"eviction; RSS {rss_opened / count / 1024:+.0f} KiB each, "
            f"{rss_left / 1024:+.0f} KiB after eviction"
        )
        assert per > 0 and left < 0.5 * opened  # what opening took, eviction gave back
    finally:
        tracemalloc.stop()
        tenants.close()
