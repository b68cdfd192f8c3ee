"""pgen serve under concurrent clients, on loopback only, bounded in count and time.

Two measurements, each against a real uvicorn server in this process:

1. **Overhead**: pgen's own time per generate request (HTTP, auth, store, retrieval over
   10,000 documents of the user, prompt building, saving the output with provenance)
   with the model's time taken out: the text model is the real one for tokenizing and
   truncating, but answers instantly. Client-side latency at 1, 4, 16, 64 clients.
2. **Throughput**: the real model (SmolLM2-135M by default) at 1, 4, 16, 64 clients,
   gathered batching (batches of up to 16) against one request at a time (batch of 1).

    .venv/bin/python benchmarks/service.py [--requests 32] [--max-new-tokens 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from pgen.config import load_config
from pgen.context.records import Document, User
from pgen.context.sqlite import SQLiteStore
from pgen.factory import build_text_model
from pgen.models.base import Chat, GenerationSettings
from pgen.serve.app import create_app
from pgen.serve.auth import open_keys

WORDS = [
    "hike",
    "mountain",
    "battery",
    "screen",
    "bread",
    "bake",
    "coffee",
    "train",
    "city",
    "river",
    "garden",
    "book",
    "film",
    "music",
    "guitar",
    "snow",
    "beach",
    "camera",
    "phone",
    "laptop",
    "tent",
    "stove",
    "boots",
    "map",
    "trail",
    "lake",
]


class InstantModel:
    """The real model's tokenizer (prompt building counts and cuts tokens) with instant
    answers: what is left of a request's time is pgen's own."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.name = f"instant({real.name})"

    @property
    def context_length(self) -> int:
        return int(self.real.context_length)

    def generate(
        self, chats: list[Chat], settings: GenerationSettings, adapters: Any = None
    ) -> list[str]:
        return ["ok"] * len(chats)

    def count_tokens(self, text: str) -> int:
        return int(self.real.count_tokens(text))

    def truncate(self, text: str, max_tokens: int) -> str:
        return str(self.real.truncate(text, max_tokens))


def fill(home: Path, users: int, documents: int) -> None:
    store = SQLiteStore(home / "tenants" / "bench" / "pgen.sqlite")
    for u in range(users):
        records: list[Any] = [User(user_id=f"u{u}")]
        for d in range(documents):
            words = " ".join(WORDS[(d * 7 + k * 3 + u) % len(WORDS)] for k in range(12))
            records.append(Document(user_id=f"u{u}", doc_id=f"d{d}", text=f"{d}: {words}"))
        store.add(records)
    store.close()


def serve(args: argparse.Namespace) -> None:
    """The server process: the app over the benchmark's home, on the given port."""
    base = load_config(text_model=args.text_model)
    real = build_text_model(replace(base, threads=args.threads), batch_size=args.batch)
    model = InstantModel(real) if args.instant else real
    config = replace(
        base, home=Path(args.home), serve_batch_size=args.batch, serve_batch_wait_ms=args.wait_ms
    )
    uvicorn.run(create_app(config, text_model=model), port=args.port, log_level="warning")


@contextmanager
def serving(args: argparse.Namespace, home: Path, instant: bool, batch: int) -> Iterator[str]:
    """A server in its own process, as in production: a client in the server's process
    would share its interpreter lock and distort the latencies measured."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, __file__, "--serve", "--home", str(home), "--port", str(port)]
    # No gathering window for the overhead rows and one-at-a-time: no time spent waiting.
    wait = args.wait_ms if batch > 1 and not instant else 0
    command += ["--batch", str(batch), "--wait-ms", str(wait)]
    command += ["--threads", str(args.threads), *(["--instant"] if instant else [])]
    if args.text_model:
        command += ["--text-model", args.text_model]
    process = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(60)


async def load(url: str, key: str, clients: int, requests: int, users: int, tokens: int) -> Any:
    """``requests`` generate calls spread over ``clients`` concurrent connections."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600, limits=limits) as c:
        counter = iter(range(requests))

        async def client() -> None:
            for n in counter:
                body = {
                    "instruction": f"{WORDS[n % len(WORDS)]} tips",
                    "max_new_tokens": tokens,
                    "k": 2,
                }
                started = time.perf_counter()
                response = await c.post(f"/users/u{n % users}/generate", json=body)
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        seconds = time.perf_counter() - started
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return requests / seconds, statistics.median(ordered) * 1000, p99 * 1000


def run(args: argparse.Namespace) -> None:
    base = load_config(text_model=args.text_model)
    with tempfile.TemporaryDirectory(prefix="pgen-bench-") as folder:
        home = Path(folder)
        fill(home, args.users, args.documents)
        keys = open_keys(replace(base, home=home))
        key = keys.create("bench")[0]
        keys.close()
        model = args.text_model or base.text_model
        print(f"machine: {os.cpu_count()} cores; torch threads {args.threads}; model {model}")
        print(f"{args.users} users x {args.documents} documents; strategy rag (bm25, k=2)\n")
        print("| measure | batch | clients | requests | req/s | p50 ms | p99 ms |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        rows = [("overhead", True, 16, args.overhead_requests)]
        if not args.overhead_only:
            rows += [("model", False, 16, args.requests), ("model", False, 1, args.requests)]
        for measure, instant, batch, count in rows:
            with serving(args, home, instant, batch) as url:
                # Warm: each user's index is built once, by the first request.
                asyncio.run(load(url, key, 1, args.users, args.users, args.max_new_tokens))
                levels = args.clients or ((1, 4, 16, 64) if batch > 1 else (1, 16))
                for clients in levels:
                    # One client at a time through the real model: a few requests suffice.
                    total = max(count if instant or clients > 1 else min(count, 8), clients)
                    rps, p50, p99 = asyncio.run(
                        load(url, key, clients, total, args.users, args.max_new_tokens)
                    )
                    print(
                        f"| {measure} | {batch} | {clients} | {total} | {rps:.1f} | "
                        f"{p50:.1f} | {p99:.1f} |",
                        flush=True,
                    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text-model", default=None, help="default: the configured one")
    parser.add_argument("--users", type=int, default=2)
    parser.add_argument("--documents", type=int, default=10_000, help="per user")
    parser.add_argument("--requests", type=int, default=32, help="per level, real model")
    parser.add_argument("--overhead-requests", type=int, default=200, help="per level")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--wait-ms", type=int, default=10, help="batch gathering window")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads")
    parser.add_argument("--overhead-only", action="store_true", help="skip the model rows")
    parser.add_argument("--clients", type=int, nargs="*", help="levels (default 1 4 16 64)")
    # The server process's own options (the benchmark starts it).
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument("--instant", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    serve(args) if args.serve else run(args)


if __name__ == "__main__":
    main()
