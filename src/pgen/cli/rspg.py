"""``pgen bench rspg``: train the retriever selector (RSPG) and, with ``--ropg``, the
fine-tuned dense retriever, and compare them on held-out users (``pgen.bench.rspg``)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from pgen.cli.evaluate import _list  # the comma-separated list flags of bench text
from pgen.config import Config


def register(commands: Any, bench: Any) -> None:
    p = bench.add_parser(
        "rspg",
        help="train a per-request retriever selector (and optionally ROPG) on gold likelihood",
        description="For every training request and every choice (a retriever at a k, or "
        "none), the gold output's mean token log-likelihood under the text model given the "
        "prompt rag builds (cached in <out>/outcomes.jsonl); a selector trained on those "
        "outcomes; then rag with retriever rspg against each task's best single choice on "
        "held-out users (paired tests). No text is generated unless --generate.",
    )
    p.add_argument("--lamp", type=Path, help="LaMP folder with LaMP_1/LaMP_2 train and dev files")
    p.add_argument("--amazon", type=Path, help="Amazon 2018 5-core reviews file (JSON Lines)")
    p.add_argument("--amazon-users", type=int, default=120, help="Amazon reviewers taken")
    p.add_argument(
        "--test-share", type=float, default=0.3, help="share of Amazon reviewers held out"
    )
    p.add_argument("--locomo", type=Path, help="LoCoMo conversations file (locomo10 JSON)")
    p.add_argument(
        "--locomo-questions", type=int, default=12, help="answerable questions per conversation"
    )
    p.add_argument(
        "--locomo-test", type=int, default=3, help="LoCoMo conversations held out (the last ones)"
    )
    p.add_argument("--prefeval", type=Path, help="PrefEval folder (explicit preferences)")
    p.add_argument(
        "--prefeval-items", type=int, default=5, help="PrefEval items per topic (each a user)"
    )
    p.add_argument(
        "--prefeval-turns", type=int, default=10, help="filler turns after the preference"
    )
    p.add_argument(
        "--prefeval-test", type=int, default=4, help="PrefEval topics held out (the last ones)"
    )
    p.add_argument(
        "--retriever",
        type=_list(str),
        default=["none", "bm25", "dense", "recency", "memory"],
        help="comma-separated retrievers the selector chooses among (none: no documents)",
    )
    p.add_argument("--k", type=_list(int), default=[1, 4], help="comma-separated k values")
    p.add_argument("--out", type=Path, default=Path("pgen-runs/rspg"), help="run folder")
    p.add_argument("--prompt-tokens", type=int, default=1024, help="prompt cap in tokens")
    p.add_argument(
        "--ropg", action="store_true", help="also fine-tune the dense retriever's model (ROPG)"
    )
    p.add_argument("--ropg-epochs", type=int, default=2, help="ROPG passes over its triples")
    p.add_argument(
        "--generate",
        type=int,
        default=0,
        help="per task, generate and score (task metric) up to this many held-out requests "
        "where rspg's pick differs from the best single choice",
    )
    p.add_argument("--max-new-tokens", type=int, default=64, help="reply length cap for --generate")
    p.add_argument(
        "--install",
        action="store_true",
        help="copy the trained selector into the configured store, where rag's rspg reads it",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_bench_rspg)


def cmd_bench_rspg(args: argparse.Namespace, config: Config) -> int:
    from pgen.bench.rspg import load_splits, locomo_split, prefeval_split
    from pgen.bench.rspg_report import RspgPlan, run_rspg, table
    from pgen.cli.evaluate import text_model_loader
    from pgen.engine import Engine
    from pgen.factory import build_embedder, build_store
    from pgen.models.embedding import SentenceEmbedder, resolve_embedder_path
    from pgen.training.ropg import RopgSettings
    from pgen.usermodel.retrievers import RETRIEVERS
    from pgen.usermodel.selector import (
        choice_grid,
        install_folder,
        load_selector,
        save_selector,
    )

    unknown = [r for r in args.retriever if r not in RETRIEVERS or r == "rspg"]
    if unknown:
        raise ValueError(
            f"--retriever {unknown[0]!r}: choose from bm25, dense, recency, memory, none"
        )
    if not args.k or any(k < 1 for k in args.k):
        raise ValueError("--k values must be at least 1")
    if not 0 < args.test_share < 1:
        raise ValueError("--test-share must be between 0 and 1")
    if not isinstance(config.text_model, str) or not isinstance(config.embed_model, str):
        raise ValueError("bench rspg names its models by id or path, not a table")
    splits = load_splits(args.lamp, args.amazon, args.amazon_users, args.test_share)
    if args.locomo is not None:
        splits.append(locomo_split(args.locomo, args.locomo_questions, args.locomo_test))
    if args.prefeval is not None:
        splits.append(
            prefeval_split(
                args.prefeval, args.prefeval_items, args.prefeval_turns, args.prefeval_test
            )
        )
    if not splits:
        raise ValueError("nothing to run: give --lamp, --amazon, --locomo and/or --prefeval")
    args.out.mkdir(parents=True, exist_ok=True)
    text_model = text_model_loader(config.text_model, config, 1)
    run_config = replace(config, store=args.out / "store.sqlite")
    engine = Engine(
        build_store(run_config),
        text_model,
        lambda: build_embedder(config),
        prompt_tokens=args.prompt_tokens,
    )
    opened = [engine]

    def tuned_engine(folder: Path) -> Engine:
        other = Engine(
            build_store(run_config),
            engine.text_model,  # the loaded one: the same outcomes, no second load
            SentenceEmbedder(str(folder)),
            prompt_tokens=args.prompt_tokens,
        )
        opened.append(other)
        return other

    plan = RspgPlan(
        choices=choice_grid(args.retriever, args.k),
        out=args.out,
        ropg=RopgSettings(epochs=args.ropg_epochs) if args.ropg else None,
        embed_base=resolve_embedder_path(config.embed_model),
        generate=args.generate,
        max_new_tokens=args.max_new_tokens,
        progress=not args.no_progress,
    )
    try:
        results = run_rspg(engine, splits, plan, tuned_engine)
    finally:
        for each in opened:
            each.close()
    report = table(results)
    (args.out / "report.md").write_text(report + "\n")
    print(report)
    if args.install:  # read back (validated), then written the transactional way
        selector, meta = load_selector(args.out / "selector")
        store = build_store(config)
        try:
            target = save_selector(install_folder(store), selector, meta)
        finally:
            store.close()
        print(f"selector installed in {target}: rag with --retriever rspg uses it")
    print(f"results in {args.out}/ (results.json, report.md, selector/, outcomes.jsonl)")
    return 0
