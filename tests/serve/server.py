"""Real uvicorn servers for the service tests: on loopback, on a free port, in a thread of
the test process (so the tiny model loads once) or as a ``pgen serve`` process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from pgen.config import Config
from pgen.serve.app import create_app
from pgen.serve.auth import open_keys


@dataclass
class Running:
    url: str
    config: Config
    keys: dict[str, str]  # "admin" and one per tenant
    app: Any = None

    def client(self, who: str | None = None, **options: Any) -> httpx.Client:
        headers = {} if who is None else {"Authorization": f"Bearer {self.keys[who]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120, **options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_keys(config: Config, tenants: tuple[str, ...]) -> dict[str, str]:
    """An admin key and one per tenant, where the config's server reads them (the home's
    key file, or the Postgres store's database)."""
    store = open_keys(config)
    try:
        keys = {"admin": store.create(None, "test admin")[0]}
        for tenant in tenants:
            keys[tenant] = store.create(tenant, f"test {tenant}")[0]
        return keys
    finally:
        store.close()


def service_config(home: Path, model: Path, **settings: Any) -> Config:
    return Config(home=home, text_model=str(model), max_new_tokens=6, threads=1, **settings)


@contextmanager
def serve_in_thread(
    config: Config, tenants: tuple[str, ...] = ("acme", "globex"), **components: Any
) -> Iterator[Running]:
    keys = make_keys(config, tenants)
    app = create_app(config, **components)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # against a hang only
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield Running(f"http://127.0.0.1:{port}", config, keys, app)
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()


def start_process(home: Path, model: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    """``pgen serve`` as its own process (for kill -9 and graceful shutdown)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PGEN_THREADS": "1"}
    env["PGEN_MAX_NEW_TOKENS"] = "6"
    command = [
        sys.executable,
        "-m",
        "pgen.cli.main",
        "--home",
        str(home),
        "--text-model",
        str(model),
    ]
    command += ["serve", "--port", str(port), "--quiet", *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_ready(url: str, process: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"pgen serve exited {process.returncode}: {output[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("pgen serve did not answer /health in time")
