"""The foundation's subcommands: ingest, users, generate, delete-user, demo."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pgen.config import Config
from pgen.context.ingest import ingest
from pgen.context.base import ContextStore
from pgen.engine import Engine
from pgen.models.base import GenerationConfig
from pgen.personalize import TEXT_STRATEGIES
from pgen.usermodel import RETRIEVERS


def cmd_ingest(args: argparse.Namespace, config: Config) -> None:
    with Store(config.store_path) as store:
        for path in args.files:
            stats = ingest(store, path, progress=True)
            seen = ", ".join(f"{n} {kind}s" for kind, n in sorted(stats.seen.items()))
            print(f"{path}: {seen or 'no records'}; {stats.written} new or changed")


def cmd_users(args: argparse.Namespace, config: Config) -> None:
    if args.action == "show" and args.user is None:
        raise ValueError("pgen users show needs a user id")
    with Store(config.store_path) as store:
        if args.user is None:
            rows = store.users()
            print(f"{'user':<24} {'documents':>9} {'interactions':>12} {'subjects':>8}")
            for row in rows:
                print(
                    f"{row['user_id']:<24} {row['documents']:>9} {row['interactions']:>12} "
                    f"{row['subjects']:>8}"
                )
            print(f"{len(rows)} users in {config.store_path}")
            return
        user = store.user(args.user)
        print(f"user {user.user_id}  profile: {json.dumps(user.profile, ensure_ascii=False)}")
        for document in store.documents(args.user)[-args.limit :]:
            when = document.time.date().isoformat() if document.time else "undated"
            print(f"  [{document.doc_id}] {when} {document.title or ''}: {document.text[:70]}")
        counts = {"interactions": len(store.interactions(args.user))}
        counts["subjects"] = len(store.subjects(args.user))
        counts["feedback"] = len(store.feedback(args.user))
        print("  " + ", ".join(f"{n} {name}" for name, n in counts.items()))


def cmd_generate(args: argparse.Namespace, config: Config) -> None:
    engine = Engine.open(config, prompt_tokens=args.prompt_tokens)
    try:
        result = engine.generate(
            args.user,
            args.instruction,
            strategy=args.strategy,
            k=args.k,
            retriever=args.retriever,
            generation=GenerationConfig(max_new_tokens=args.max_new_tokens),
        )
    finally:
        engine.close()
    if args.json:
        print(json.dumps(result.__dict__, default=lambda m: m.__dict__, ensure_ascii=False))
        return
    print(result.text)
    print(
        f"\n[output {result.output_id}; strategy {result.strategy}; "
        f"context used: {', '.join(result.provenance) or 'none'}]"
    )


def cmd_delete_user(args: argparse.Namespace, config: Config) -> None:
    engine = Engine.open(config)  # loads no model: deleting only needs the store
    try:
        counts = engine.delete_user(args.user)
    finally:
        engine.close()
    removed = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
    print(f"deleted user {args.user}: {removed or 'no context'}")


def cmd_demo(args: argparse.Namespace, config: Config) -> None:
    from pgen.demo import run_demo

    run_demo(config, max_new_tokens=args.max_new_tokens)


def register(commands: Any, bench: Any) -> None:
    p = commands.add_parser("ingest", help="load JSONL or LaMP question files into the store")
    p.add_argument("files", nargs="+", help=".jsonl records (with a 'type' field) or LaMP .json")
    p.set_defaults(func=cmd_ingest)

    p = commands.add_parser("users", help="list users, or show one user's context")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    p.add_argument("user", nargs="?", help="the user to show")
    p.add_argument("--limit", type=int, default=10, help="documents to show")
    p.set_defaults(func=cmd_users)

    p = commands.add_parser("generate", help="personalized text for one user")
    p.add_argument("instruction")
    p.add_argument("--user", required=True)
    p.add_argument("--strategy", choices=sorted(TEXT_STRATEGIES), default="rag")
    p.add_argument("--retriever", choices=RETRIEVERS, default="bm25")
    p.add_argument("--k", type=int, default=4, help="context items to retrieve")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--prompt-tokens", type=int, default=1024, help="cap on prompt length")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_generate)

    p = commands.add_parser("delete-user", help="remove a user and everything derived from them")
    p.add_argument("user")
    p.set_defaults(func=cmd_delete_user)

    p = commands.add_parser("demo", help="baseline vs personalized outputs on a built-in sample")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.set_defaults(func=cmd_demo)
