"""``pgen compare``: one instruction for one user under several strategies, side by side
(the demo's view, for any user), each column with the context that shaped it. The same
comparison is ``POST /users/{user}/compare`` in the service."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from pgen.cli.options import (
    add_decoding_options,
    add_frame_option,
    generation_settings,
    positive,
)
from pgen.config import Config
from pgen.usermodel import RETRIEVERS

DEFAULT_STRATEGIES = "none,rag,profile"


def cmd_compare(args: argparse.Namespace, config: Config) -> None:
    from pgen.demo import side_by_side
    from pgen.engine import Engine
    from pgen.personalize import TextRequest

    names = list(dict.fromkeys(s.strip() for s in args.strategy.split(",") if s.strip()))
    if not names:
        raise ValueError("--strategy: name at least one strategy (e.g. none,rag,profile)")
    requests = [
        TextRequest(args.user, args.instruction, name, args.k, args.retriever, frame=args.frame)
        for name in names
    ]
    with Engine.open(config, prompt_tokens=args.prompt_tokens) as engine:
        checked = [engine.check(request) for request in requests]  # before any model loads
        results = engine.generate_many(checked, generation_settings(args, config), checked=True)
    if args.json:
        rows = [{**asdict(r), "provenance": r.provenance.as_dict()} for r in results]
        print(json.dumps(rows, ensure_ascii=False, default=str))
        return
    print(side_by_side(results, args.width, provenance=True))
    print(f"\n[outputs {', '.join(str(r.output_id) for r in results)}]")


def register(commands: Any, bench: Any) -> None:
    p = commands.add_parser(
        "compare", help="one instruction under several strategies, side by side, with provenance"
    )
    p.add_argument("instruction", help="what the user asks for")
    p.add_argument("--user", required=True, help="the user to personalize for")
    p.add_argument("--strategy", default=DEFAULT_STRATEGIES, help="comma-separated text strategies")
    p.add_argument("--retriever", choices=RETRIEVERS, default="bm25", help="for rag")
    p.add_argument("--k", type=positive, default=4, help="context items to retrieve")
    add_frame_option(p)
    p.add_argument("--prompt-tokens", type=positive, help="cap on prompt length (config: 1024)")
    p.add_argument("--width", type=positive, default=38, help="characters per column")
    add_decoding_options(p)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_compare, reads_store=True)
