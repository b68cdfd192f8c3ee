"""`pgen bench rec` and `pgen recommend`."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from pgen.cli.options import positive, require_store
from pgen.config import Config, settings_from
from pgen.engine import Engine
from pgen.factory import (
    Lazy,
    apply_thread_policy,
    build_embedder,
    build_text_model,
    providers,
    store_at,
)
from pgen.models.base import Embedder, TextModel

DEPRECATED_RERANK = "llm-rerank"  # --model llm-rerank --base X --candidates N: X --rerank N


def recommender(name: str) -> str:
    """A registered recommender's name, or a one-line error naming them (read when the
    command runs: the registry imports torch, and ``pgen --help`` stays fast)."""
    known = providers("recommender")
    if name not in known:
        raise ValueError(f"unknown recommender {name!r}; choose from {', '.join(known)}")
    return name


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` settings; values read as JSON when they parse (numbers), else text."""
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--param needs KEY=VALUE, got {pair!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def cmd_bench_rec(args: argparse.Namespace, config: Config) -> None:
    from pgen.bench.rec import BenchSettings, run_benchmark
    from pgen.recommend.report import table, write

    apply_thread_policy(config)
    out = Path(args.out)
    if args.data is not None:
        # A benchmark's data lives in its own store, never mixed into the user's context.
        store_path = out / "stores" / f"{Path(args.data).resolve().name}.sqlite"
    else:
        store_path = config.store_path
    if args.model == DEPRECATED_RERANK:
        print(
            f"--model {DEPRECATED_RERANK} --base X --candidates N is deprecated: "
            "use --model X --rerank N",
            file=sys.stderr,
        )
        recommender(args.base)
    else:
        recommender(args.model)
    settings = settings_from(
        BenchSettings,
        args,
        params=parse_params(args.param),
        save=Path(args.save) if args.save else None,
    )
    # The benchmark runner works on its own store and components, not through an engine.
    bench_config = replace(config, store=store_path)
    store = store_at(bench_config.store_path)
    embedder: Lazy[Embedder] = Lazy(partial(build_embedder, bench_config))
    text_model: Lazy[TextModel] = Lazy(partial(build_text_model, bench_config))
    try:
        result = run_benchmark(
            store,
            args.data,
            settings,
            embedder,
            text_model,
            progress=print if args.verbose else None,
        )
    finally:
        store.close()
    paths = write(result, out)
    print(table(result))
    print("wrote " + ", ".join(str(p) for p in paths.values()))


def cmd_recommend(args: argparse.Namespace, config: Config) -> None:
    if args.data is None:  # only reads: never creates a store (``--data`` ingests one)
        require_store(config)
    with Engine.open(config) as engine:
        if args.data is not None:
            stats = engine.ingest_interactions(args.data)
            print(f"{args.data}: {stats.written} records new or changed in {engine.location}")
        if args.train:
            model, folder = engine.train_recommender(
                args.model, parse_params(args.param), progress=print if args.verbose else None
            )
            print(
                f"trained {args.model} (best epoch {model.log.get('best_epoch', '-')}); "
                f"saved to {folder}"
            )
        if args.user is None:
            if not args.train and args.data is None:
                raise ValueError("pgen recommend needs --user (or --train / --data)")
            return
        rows = engine.recommend(
            args.user, args.k, model=recommender(args.model), rerank=args.rerank
        )
    for row in rows:
        print(
            f"{row.rank:>3}. {row.item.title or row.item.item_id}  "
            f"[{row.item.item_id}] {row.score:.3f}"
        )


def register(commands: Any, bench: Any) -> None:
    parser = bench.add_parser("rec", help="next-item recommendation, leave-one-out protocol")
    parser.add_argument(
        "--data",
        help="ML-100K folder, MovieLens CSV folder, RecBole atomic folder/.inter, or Amazon "
        "reviews JSON; ingested into <out>/stores/. Without it: the configured store",
    )
    parser.add_argument(
        "--model", default="sasrec", help="a registered recommender (pop, bpr, sasrec, ...)"
    )
    parser.add_argument(
        "--rerank",
        type=int,
        default=0,
        metavar="N",
        help="also let the text model re-order each user's top N (scored against the model)",
    )
    parser.add_argument("--base", default="sasrec", help=argparse.SUPPRESS)  # llm-rerank's
    parser.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="model setting (repeatable), e.g. dim=64 epochs=50",
    )
    parser.add_argument(
        "--negatives",
        type=int,
        help="also report the sampled mode with N uniform negatives (labelled)",
    )
    parser.add_argument("--candidates", type=int, default=20, help=argparse.SUPPRESS)
    parser.add_argument(
        "--max-users",
        type=int,
        help="evaluate a fixed random subset of users (default with --rerank: 100)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="model seed (unless --param seed=) and subset seed"
    )
    parser.add_argument(
        "--repeat-targets",
        choices=["keep", "mask"],
        default="keep",
        help="a test item the user already had: keep it ranked (default) or mask it with the "
        "history, exactly as RecBole does",
    )
    parser.add_argument("--save", metavar="DIR", help="save the trained model to DIR")
    parser.add_argument("--out", default="runs/rec", help="folder for results")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every epoch")
    parser.set_defaults(func=cmd_bench_rec)

    parser = commands.add_parser("recommend", help="top-k items for a user from a trained model")
    parser.add_argument("--user", help="the user to recommend for")
    parser.add_argument("--k", type=positive, default=10, help="items to recommend")
    parser.add_argument("--model", default="sasrec", help="the saved recommender to use")
    parser.add_argument(
        "--train", action="store_true", help="train the model on the store's interactions first"
    )
    parser.add_argument("--data", help="ingest a data set (formats as in bench rec) first")
    parser.add_argument("--param", action="append", metavar="KEY=VALUE", help="model setting")
    parser.add_argument(
        "--rerank",
        type=int,
        default=0,
        metavar="N",
        help="let the text model re-order the model's top N from the user's recent items",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="print every epoch")
    parser.set_defaults(func=cmd_recommend)
