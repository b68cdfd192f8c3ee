"""``pgen bench attribution``: are outputs recognizably their author's (blog authors)?"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from pgen.cli.options import positive
from pgen.config import Config


def register(commands: Any, bench: Any) -> None:
    from pgen.bench.attribution import INSTRUCTIONS

    p = bench.add_parser(
        "attribution",
        help="recognizability: is each output closest to its own blog author's held-out posts?",
        description="Each author's last 5 posts are held out; the rest and the file name's "
        "attributes (gender, age, industry, sign) become the user's context. Every strategy "
        "writes the same instructions; an output is a hit when it is closer (MiniLM cosine "
        "to the held-out centroid, and BM25) to its own author than to any other (chance: "
        "1/N). 95% bootstrap intervals, paired permutation tests against none.",
    )
    p.add_argument("--data", required=True, type=Path, help="folder of ID.gender.age.ind.sign.xml")
    p.add_argument("--users", type=positive, default=8, help="authors (the first N with 7+ posts)")
    p.add_argument(
        "--skip",
        type=int,
        default=0,
        help="authors to pass over first (tune on one set of authors, report on another)",
    )
    p.add_argument(
        "--instructions", nargs="+", default=list(INSTRUCTIONS), help="what every author asks"
    )
    p.add_argument(
        "--strategy",
        default="none,rag,profile",
        help="comma-separated text strategies (none is the baseline; lora+rag needs "
        "--train-adapters, else it is skipped)",
    )
    p.add_argument("--k", type=positive, default=2, help="documents rag retrieves")
    p.add_argument(
        "--frame",
        default="auto",
        help="comma-separated frames to compare: author (write as the user), assistant "
        "(answer them), voice (the model is the user: the author frame cut down for small "
        "models), auto (chosen from the instruction)",
    )
    p.add_argument("--max-docs", type=positive, default=40, help="recent posts ingested per author")
    p.add_argument("--max-new-tokens", type=positive, default=96, help="reply length cap")
    p.add_argument("--batch-size", type=positive, default=8, help="requests per model call")
    p.add_argument(
        "--no-copy-ngram-size",
        type=int,
        default=0,
        help="the copy guard: forbid outputs any run of N tokens from their prompt (0: off)",
    )
    p.add_argument("--prompt-tokens", type=positive, default=1024, help="prompt length cap")
    p.add_argument(
        "--train-adapters", action="store_true", help="train each author's LoRA (slow on CPU)"
    )
    p.add_argument("--out", type=Path, help="write examples.jsonl, summary.json, report.md here")
    p.set_defaults(func=cmd_bench_attribution)


def cmd_bench_attribution(args: argparse.Namespace, config: Config) -> int:
    from pgen.bench import attribution as bench
    from pgen.engine import Engine
    from pgen.personalize import get_strategy
    from pgen.personalize.frames import FRAMES

    strategies = [s.strip() for s in args.strategy.split(",") if s.strip()]
    for strategy in strategies:
        get_strategy("text", strategy)  # an unknown name fails here, with the choices
    frames = tuple(dict.fromkeys(f.strip() for f in args.frame.split(",") if f.strip()))
    unknown = [f for f in frames if f not in FRAMES]
    if unknown or not frames:
        raise ValueError(f"--frame: unknown {', '.join(unknown)}; use {', '.join(FRAMES)}")
    if args.skip < 0:
        raise ValueError(f"--skip must be 0 or more, got {args.skip}")
    authors = bench.load_authors(args.data, args.users, args.max_docs, args.skip)
    with tempfile.TemporaryDirectory(prefix="pgen-attribution-") as home:
        engine = Engine.open(
            replace(config, home=Path(home), store=Path(home) / "attribution.sqlite")
        )
        engine.prompt_tokens = args.prompt_tokens
        try:
            rows, notes = bench.run_attribution(
                engine,
                authors,
                strategies,
                args.instructions,
                k=args.k,
                max_new_tokens=args.max_new_tokens,
                batch_size=args.batch_size,
                train_adapters=args.train_adapters,
                frames=frames,
                no_copy_ngram_size=args.no_copy_ngram_size,
                progress=True,
            )
            table = bench.summarize(rows, len(authors))
            settings = {
                "users": len(authors),
                "instructions": args.instructions,
                "strategies": strategies,
                "k": args.k,
                "frames": list(frames),
                "skip": args.skip,
                "max_docs": args.max_docs,
                "held_out": bench.HELD_OUT,
                "decoding": asdict(
                    bench.generation_settings(args.max_new_tokens, args.no_copy_ngram_size)
                ),
                "prompt_tokens": args.prompt_tokens,
                "notes": notes,
            }
            record = bench.record_of(args.data, authors, settings, engine)
        finally:
            engine.close()
    for note in notes:
        print(f"note: {note}")
    print(
        f"{len(authors)} authors x {len(args.instructions)} instructions; chance = "
        f"{1 / len(authors):.3f}"
    )
    print(bench.markdown(table))
    if args.out:
        bench.write_results(args.out, rows, table, record)
        print(f"results in {args.out}/ (examples.jsonl, summary.json, report.md)")
    return 0
