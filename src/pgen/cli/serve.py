"""``pgen serve`` and ``pgen keys create|list|revoke``. FastAPI, uvicorn and torch load
inside the handlers only: ``pgen --help`` stays fast."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from typing import Any

from pgen.config import Config


def cmd_serve(args: argparse.Namespace, config: Config) -> None:
    import uvicorn

    from pgen.serve.app import CONFIG_ENV, config_to_env, create_app
    from pgen.serve.auth.where import keys_location

    config = replace(
        config,
        serve_host=args.host or config.serve_host,
        serve_port=config.serve_port if args.port is None else args.port,
        serve_workers=args.workers or config.serve_workers,
    )
    options: dict[str, Any] = {
        "host": config.serve_host,
        "port": config.serve_port,
        "timeout_graceful_shutdown": args.grace,
        "log_level": "warning" if args.quiet else "info",
    }
    where = f"http://{config.serve_host}:{config.serve_port}"
    print(f"pgen serving on {where} (web page {where}/ui/, keys in {keys_location(config)})")
    sys.stdout.flush()
    if config.serve_workers > 1:  # each worker process builds its own app from the config
        os.environ[CONFIG_ENV] = config_to_env(config)
        uvicorn.run(
            "pgen.serve.app:app_from_env", factory=True, workers=config.serve_workers, **options
        )
        return
    uvicorn.run(create_app(config), **options)


def cmd_keys(args: argparse.Namespace, config: Config) -> None:
    from pgen.serve.auth.where import open_keys

    # The configured store decides: Postgres keeps the keys in its database, where every
    # replica's `pgen serve` reads them; otherwise the home's key file.
    keys = open_keys(config)
    try:
        if args.action == "create":
            if (args.tenant is None) == (not args.admin):
                raise ValueError("pgen keys create needs --tenant T, or --admin (not both)")
            token, info = keys.create(args.tenant, args.name)
            if not args.quiet:
                owner = "admin" if info.tenant is None else f"tenant {info.tenant}"
                print(f"created key {info.key_id} ({owner}); it is shown this once:")
            print(token)
        elif args.action == "list":
            rows = keys.list_keys(args.tenant)
            print(f"{'key id':<17} {'tenant':<20} {'created':<26} {'revoked':<26} name")
            for info in rows:
                tenant = info.tenant or "(admin)"
                print(
                    f"{info.key_id:<17} {tenant:<20} {info.created:<26} "
                    f"{info.revoked or '':<26} {info.name}"
                )
            print(f"{len(rows)} keys in {keys.location}")
        else:
            if not args.key_id:
                raise ValueError("pgen keys revoke needs the key id (see pgen keys list)")
            info = keys.revoke(args.key_id)
            print(f"revoked key {info.key_id} at {info.revoked}")
    finally:
        keys.close()


def register(commands: Any, bench: Any) -> None:
    p = commands.add_parser("serve", help="the HTTP API, OpenAI-compatible endpoint, web page")
    p.add_argument("--host", help="address to listen on (config serve_host: 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (config serve_port: 8000)")
    p.add_argument("--workers", type=int, help="worker processes (config serve_workers: 1)")
    p.add_argument("--grace", type=int, default=30, help="seconds to finish requests on stop")
    p.add_argument("--quiet", action="store_true", help="log warnings only")
    p.set_defaults(func=cmd_serve)

    p = commands.add_parser("keys", help="API keys of the service: create, list, revoke")
    p.add_argument("action", choices=["create", "list", "revoke"], help="what to do")
    p.add_argument("key_id", nargs="?", help="revoke: the key's id")
    p.add_argument("--tenant", help="create: the key's tenant; list: only its keys")
    p.add_argument("--admin", action="store_true", help="create: an admin key (no tenant)")
    p.add_argument("--name", default="", help="create: a label for the key")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="create: print the key alone, for KEY=$(pgen keys create ... --quiet)",
    )
    p.set_defaults(func=cmd_keys)
    register_bench(bench)


def cmd_bench_memory(args: argparse.Namespace, config: Config) -> None:
    from pgen.bench.locomo import run

    run(args, config)


def register_bench(bench: Any) -> None:
    from pgen.usermodel.memory import MemorySettings

    d = MemorySettings()  # the endpoint's settings are the defaults
    p = bench.add_parser("memory", help="conversation memory on LoCoMo: evidence recall, F1")
    p.add_argument("--data", required=True, help="a LoCoMo JSON file (locomo10.json)")
    p.add_argument(
        "--retriever", default="memory", help="memory (BM25 + dense fused), bm25, dense, hybrid"
    )
    p.add_argument("--weight", type=float, default=d.weight, help="memory: BM25's share")
    p.add_argument("--spread", type=float, default=d.spread, help="memory: neighbour share")
    p.add_argument("--k", type=int, default=10, help="turns recalled per question")
    p.add_argument(
        "--neighbours", type=int, default=d.neighbours, help="turns either side of a hit"
    )
    p.add_argument("--speaker", type=float, default=d.speaker, help="memory: named speaker boost")
    p.add_argument("--session", type=float, default=d.session, help="memory: same-day lift")
    p.add_argument("--no-captions", action="store_true", help="photo turns without captions")
    p.add_argument("--no-answers", action="store_true", help="score retrieval only (no model)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="answer length cap")
    p.add_argument("--out", help="write each question's recall and answers here (JSON Lines)")
    p.add_argument("--limit", type=int, default=0, help="questions per conversation (0: all)")
    p.set_defaults(func=cmd_bench_memory)
