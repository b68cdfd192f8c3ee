"""The foundation's subcommands: ingest, users, search, generate, feedback, outputs,
delete-user, demo. Each is a thin call into ``Engine``; printing is all they add."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from pgen.cli.options import (
    add_decoding_options,
    add_frame_option,
    existing_file,
    generation_settings,
    positive,
    shown,
)
from pgen.config import Config
from pgen.engine import Engine
from pgen.personalize import strategy_names
from pgen.usermodel import RETRIEVERS


def cmd_ingest(args: argparse.Namespace, config: Config) -> None:
    with Engine.open(config) as engine:
        for path in args.files:
            stats = engine.ingest(path, progress=True)
            seen = ", ".join(f"{n} {kind}s" for kind, n in sorted(stats.seen.items()))
            print(f"{path}: {seen or 'no records'}; {stats.written} new or changed")


def cmd_users(args: argparse.Namespace, config: Config) -> None:
    if args.action == "show" and args.user is None:
        raise ValueError("pgen users show needs a user id")
    with Engine.open(config) as engine:
        if args.user is None:
            rows = engine.users(args.offset, args.page)
            print(f"{'user':<24} {'documents':>9} {'interactions':>12} {'subjects':>8}")
            for row in rows:
                print(
                    f"{shown(row.user_id, 24):<24} {row.documents:>9} {row.interactions:>12} "
                    f"{row.subjects:>8}"
                )
            print(f"{len(rows)} users in {engine.location}")
            return
        view = engine.user(args.user, limit=args.limit)
    profile = json.dumps(view.user.profile, ensure_ascii=False)
    print(f"user {shown(view.user.user_id)}  profile: {shown(profile)}")
    print(f"  {len(view.documents)} of {view.total_documents} documents (newest last):")
    for document in view.documents:
        when = document.time.date().isoformat() if document.time else "undated"
        title = shown(document.title or "", 40)
        print(f"  [{shown(document.doc_id, 40)}] {when} {title}: {shown(document.text, 70)}")
    counts = {
        "interactions": view.interactions,
        "subjects": len(view.subjects),
        "feedback": view.feedback,
        "outputs": view.outputs,
    }
    print("  " + ", ".join(f"{n} {name}" for name, n in counts.items()))


def cmd_search(args: argparse.Namespace, config: Config) -> None:
    with Engine.open(config) as engine:
        hits = engine.search(args.user, args.query, k=args.k, retriever=args.retriever)
    if args.json:
        rows = [
            {"doc_id": h.document.doc_id, "score": h.score, "text": h.document.text} for h in hits
        ]
        print(json.dumps(rows, ensure_ascii=False))
        return
    for rank, hit in enumerate(hits, start=1):
        text = shown(hit.document.text, 80)
        print(f"{rank:>3}. [{shown(hit.document.doc_id, 40)}] {hit.score:.4f}  {text}")
    if not hits:
        print("no matching documents")


def parse_options(pairs: list[str] | None) -> dict[str, str]:
    """``--option KEY=VALUE`` flags: a modality's own request fields."""
    found = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {pair!r}: expected KEY=VALUE")
        found[key] = value
    return found


def cmd_generate(args: argparse.Namespace, config: Config) -> None:
    from pgen.run.modalities import build_request

    common = {"k": args.k, "retriever": args.retriever, "frame": args.frame}
    request = build_request(
        args.modality,
        args.user,
        args.instruction,
        args.strategy,
        common=common,
        options=parse_options(args.option),
    )
    with Engine.open(config, prompt_tokens=args.prompt_tokens) as engine:
        checked = engine.check(request)  # refused before any model loads
        result = engine.generate_many([checked], generation_settings(args, config), checked=True)[0]
    if args.json:
        record = {**asdict(result), "provenance": result.provenance.as_dict()}
        print(json.dumps(record, ensure_ascii=False, default=str))
        return
    print(result.text)
    for path in result.media:
        print(path)
    used = ", ".join(result.provenance.documents) or "none"
    notes = "".join(f"; {note}" for note in result.provenance.notes)
    print(f"\n[output {result.output_id}; strategy {result.strategy}; context used: {used}{notes}]")


def cmd_feedback(args: argparse.Namespace, config: Config) -> None:
    thumbs = {"up": 1, "down": -1}.get(args.thumbs or "")
    with Engine.open(config) as engine:
        record = engine.feedback(
            args.user,
            output_id=args.output,
            thumbs=thumbs,
            prompt=args.prompt,
            chosen=args.chosen,
            rejected=args.rejected,
        )
    what = getattr(record, "feedback_id", "")
    print(f"recorded feedback {what} for user {shown(args.user)}")


def cmd_outputs(args: argparse.Namespace, config: Config) -> None:
    with Engine.open(config) as engine:
        outputs = engine.outputs(args.user)
    if args.json:
        print(json.dumps([asdict(o) for o in outputs], ensure_ascii=False, indent=2))
        return
    for output in outputs[-args.limit :]:
        used = output.provenance.get("documents") or output.provenance.get("items") or []
        print(
            f"{output.output_id} {output.created[:19]} {output.strategy:<9} "
            f"{shown(output.text, 60)}  [context: {', '.join(map(str, used)) or 'none'}]"
        )
    print(f"{min(len(outputs), args.limit)} of {len(outputs)} outputs")


def cmd_delete_user(args: argparse.Namespace, config: Config) -> None:
    with Engine.open(config) as engine:  # loads no model: deleting only needs the store
        counts = engine.delete_user(args.user)
    removed = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
    print(f"deleted user {shown(args.user)}: {removed or 'no context'}")


def cmd_demo(args: argparse.Namespace, config: Config) -> None:
    from pgen.demo import run_demo

    run_demo(config, max_new_tokens=args.max_new_tokens)


def register(commands: Any, bench: Any) -> None:
    p = commands.add_parser("ingest", help="load JSONL or LaMP question files into the store")
    p.add_argument(
        "files", nargs="+", type=existing_file, help=".jsonl records (with 'type') or LaMP .json"
    )
    p.set_defaults(func=cmd_ingest)

    p = commands.add_parser("users", help="list users, or show one user's context")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list", help="what to do")
    p.add_argument("user", nargs="?", help="the user to show")
    p.add_argument("--limit", type=positive, default=10, help="newest documents to show")
    p.add_argument("--offset", type=int, default=0, help="list: users to skip")
    p.add_argument("--page", type=positive, help="list: at most this many users")
    p.set_defaults(func=cmd_users, reads_store=True)

    p = commands.add_parser("search", help="the user's documents that match a query")
    p.add_argument("query", help="what to look for")
    p.add_argument("--user", required=True, help="whose documents")
    p.add_argument("--retriever", choices=RETRIEVERS, default="bm25", help="how to rank")
    p.add_argument("--k", type=positive, default=4, help="documents to return")
    p.add_argument("--json", action="store_true", help="print the hits as JSON")
    p.set_defaults(func=cmd_search, reads_store=True)

    p = commands.add_parser("generate", help="personalized content for one user")
    p.add_argument("instruction", help="what the user asks for")
    p.add_argument("--user", required=True, help="the user to personalize for")
    p.add_argument(
        "--strategy",
        help=f"{', '.join(strategy_names('text'))}, or another modality's (default: rag)",
    )
    p.add_argument("--modality", default="text", help="what to generate (a registered modality)")
    p.add_argument(
        "--option", action="append", metavar="KEY=VALUE", help="a modality's own request field"
    )
    p.add_argument("--retriever", choices=RETRIEVERS, default="bm25", help="for rag")
    p.add_argument("--k", type=positive, default=4, help="context items to retrieve")
    add_frame_option(p)
    p.add_argument("--prompt-tokens", type=positive, help="cap on prompt length (config: 1024)")
    add_decoding_options(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_generate, reads_store=True)

    p = commands.add_parser("feedback", help="thumbs on an output, or a chosen/rejected pair")
    p.add_argument("--user", required=True, help="whose output")
    p.add_argument("--output", help="output id (from generate)")
    p.add_argument("--thumbs", choices=["up", "down"], help="verdict on --output")
    p.add_argument("--prompt", help="the instruction of a chosen/rejected pair")
    p.add_argument("--chosen", help="the preferred text")
    p.add_argument("--rejected", help="the other text")
    p.set_defaults(func=cmd_feedback, reads_store=True)

    p = commands.add_parser("outputs", help="a user's generated outputs with provenance")
    p.add_argument("--user", required=True, help="whose outputs")
    p.add_argument("--limit", type=positive, default=20, help="newest outputs to show")
    p.add_argument("--json", action="store_true", help="export every output as JSON")
    p.set_defaults(func=cmd_outputs, reads_store=True)

    p = commands.add_parser("delete-user", help="remove a user and everything derived from them")
    p.add_argument("user", help="the user to forget")
    p.set_defaults(func=cmd_delete_user, reads_store=True)

    p = commands.add_parser("demo", help="baseline vs personalized outputs on a built-in sample")
    p.add_argument("--max-new-tokens", type=positive, default=64, help="reply length cap")
    p.set_defaults(func=cmd_demo)
