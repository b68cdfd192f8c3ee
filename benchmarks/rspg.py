"""RSPG / ROPG: the held-out table of a ``pgen bench rspg`` run, and what the selector
costs per request (building rag's plan with ``retriever="rspg"`` against a single
retriever, on the run's own store and held-out requests; no generation).

    pgen --threads 1 bench rspg --lamp ../shared/data/lamp-samples \\
        --amazon ../shared/data/amazon-beauty/All_Beauty_5.json --amazon-users 150 \\
        --locomo ../shared/data/locomo/locomo10-first7.json --locomo-questions 20 \\
        --prefeval ../shared/data/prefeval --ropg --generate 10 --out RUN
    python benchmarks/rspg.py --run RUN --lamp ... --amazon ... --locomo ... --prefeval ...

The second command reads RUN/results.json and times ``Engine.prepare`` (features,
selection, retrieval and fitting the prompt: nothing is generated) for the same requests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from pgen.bench.rspg import load_splits, locomo_split, prefeval_split
from pgen.bench.rspg_report import table
from pgen.config import Config
from pgen.engine import Engine
from pgen.factory import build_embedder, build_store
from pgen.models.text import load_text_model
from pgen.personalize import TextRequest


def prepare_ms(engine: Engine, requests: list[TextRequest]) -> list[float]:
    times = []
    for request in requests:
        started = time.perf_counter()
        engine.prepare([request])
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a pgen bench rspg --out folder")
    parser.add_argument("--lamp", type=Path, help="the LaMP folder the run used")
    parser.add_argument("--amazon", type=Path, help="the Amazon file the run used")
    parser.add_argument("--amazon-users", type=int, default=150, help="as in the run")
    parser.add_argument("--test-share", type=float, default=0.3, help="as in the run")
    parser.add_argument("--locomo", type=Path, help="the LoCoMo file the run used")
    parser.add_argument("--locomo-questions", type=int, default=12, help="as in the run")
    parser.add_argument("--locomo-test", type=int, default=3, help="as in the run")
    parser.add_argument("--prefeval", type=Path, help="the PrefEval folder the run used")
    parser.add_argument("--prefeval-items", type=int, default=5, help="as in the run")
    parser.add_argument("--prefeval-turns", type=int, default=10, help="as in the run")
    parser.add_argument("--prefeval-test", type=int, default=4, help="as in the run")
    parser.add_argument("--baseline", default="bm25", help="single retriever timed against")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = json.loads((args.run / "results.json").read_text())
    print(table(results))
    splits = load_splits(args.lamp, args.amazon, args.amazon_users, args.test_share)
    if args.locomo:
        splits.append(locomo_split(args.locomo, args.locomo_questions, args.locomo_test))
    if args.prefeval:
        splits.append(
            prefeval_split(
                args.prefeval, args.prefeval_items, args.prefeval_turns, args.prefeval_test
            )
        )
    config = Config(store=args.run / "store.sqlite", threads=1)

    # rag counts prompt tokens with the text model's tokenizer: it loads, never generates.
    model = load_text_model(config.text_model, config)
    engine = Engine(build_store(config), model, lambda: build_embedder(config))
    print(f"\nplanning cost per request (ms, median; 1 thread), baseline {args.baseline}@4:\n")
    print("| task | requests | baseline | rspg | ratio |")
    print("| --- | --- | --- | --- | --- |")
    try:
        for split in splits:
            asked = [(e.user_id, e.instruction, e.query) for e in split.test]
            base = [TextRequest(u, i, "rag", 4, args.baseline, q) for u, i, q in asked]
            rspg = [TextRequest(u, i, "rag", 4, "rspg", q) for u, i, q in asked]
            prepare_ms(engine, base[:2] + rspg[:2])  # indexes and models warm
            b = statistics.median(prepare_ms(engine, base))
            r = statistics.median(prepare_ms(engine, rspg))
            print(f"| {split.task} | {len(asked)} | {b:.1f} | {r:.1f} | {r / b:.1f}x |")
    finally:
        engine.close()


if __name__ == "__main__":
    main()
