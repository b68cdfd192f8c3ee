"""``pgen bench prefeval``: PrefEval's classification task over pgen's settings."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from pgen.config import Config


def _list(kind: Any) -> Any:
    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list: {text!r}") from None

    return parse


def cmd_bench_prefeval(args: argparse.Namespace, config: Config) -> None:
    import torch

    from pgen.bench.prefeval import PrefEvalSettings, append_rows, run_prefeval, settings_dict
    from pgen.bench.prefeval_report import report
    from pgen.evaluate.run_record import run_record

    settings = PrefEvalSettings(
        turns=args.turns,
        limit=args.limit,
        strategies=args.strategy,
        forms=args.forms,
        modes=args.mode,
        k=args.k,
        retriever=args.retriever,
        frame=args.frame,
        seed=args.seed,
        topics=args.topics or (),
        score=not args.recall_only,
    )
    if args.prompt_tokens:
        config = replace(config, prompt_tokens=args.prompt_tokens)
    data = Path(args.data)
    if not (data / "mcq_options").is_dir():
        raise ValueError(f"--data {data}: not a PrefEval folder (no mcq_options/)")
    sink = None
    if args.out:  # each item's rows as they are scored: a cut run keeps them
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        examples = out / "examples.jsonl"
        examples.write_text("", encoding="utf-8")
        sink = partial(append_rows, path=examples)
    rows = run_prefeval(config, data, settings, progress=not args.no_progress, on_item=sink)
    title = (
        f"PrefEval classification, text model {config.text_model}, "
        f"prompt budget {config.prompt_tokens} tokens, rag: {settings.retriever} k={settings.k}, "
        f"{torch.get_num_threads()} thread(s)"
    )
    text = report(rows, title)
    print(text)
    if args.out:
        (out / "report.md").write_text(text + "\n", encoding="utf-8")
        record = run_record(
            task="prefeval",
            data=[data],
            data_sha256=None,
            settings={**settings_dict(settings), "prompt_tokens": config.prompt_tokens},
            model={"text_model": str(config.text_model), "embed_model": str(config.embed_model)},
        )
        (out / "run.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def register(commands: Any, bench: Any) -> None:
    p = bench.add_parser(
        "prefeval",
        help="PrefEval: does the reply follow the user's stated preference after N turns",
        description="Accuracy of the preference-following answer among 4 (shuffled, seeded) "
        "against N filler turns, per setting and preference form, with bootstrap CIs and "
        "paired tests against none; preference recall; prompt tokens and overhead.",
    )
    p.add_argument("--data", required=True, help="PrefEval folder (../shared/data/prefeval)")
    p.add_argument("--turns", type=_list(int), default=(0, 10, 300), help="filler turns N")
    p.add_argument("--limit", type=int, default=3, help="items per topic (seeded; 0: all)")
    p.add_argument(
        "--strategy",
        type=_list(str),
        default=("none", "context", "reminder", "rag"),
        help="settings: none, context (long context cut to the budget), reminder, rag, profile",
    )
    p.add_argument(
        "--forms", type=_list(str), default=("explicit",), help="explicit, choice, persona"
    )
    p.add_argument(
        "--mode", type=_list(str), default=("letter",), help="scoring: letter, option (or both)"
    )
    p.add_argument("--topics", type=_list(str), help="only these topics (default: all)")
    p.add_argument("--k", type=int, default=4, help="turns recalled for rag")
    p.add_argument("--retriever", default="memory", help="rag's retriever (memory, dense, bm25)")
    p.add_argument(
        "--frame",
        default="auto",
        help="rag's and profile's frame: auto (every PrefEval question reads as one to the "
        "assistant), assistant, author (write as the user), or voice (be the user)",
    )
    p.add_argument("--prompt-tokens", type=int, help="prompt budget (default: the config's)")
    p.add_argument("--seed", type=int, default=0, help="option shuffling and item sample")
    p.add_argument(
        "--recall-only",
        action="store_true",
        help="preference recall and prompt sizes only: no answer is scored (no model forward)",
    )
    p.add_argument("--out", help="folder for examples.jsonl, report.md and run.json")
    p.add_argument("--no-progress", action="store_true", help="no per-item progress lines")
    p.set_defaults(func=cmd_bench_prefeval)
