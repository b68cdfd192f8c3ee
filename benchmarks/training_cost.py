"""Training cost per user on the real default text model (SmolLM2-135M-Instruct): a
``lora`` on 50 real reviews (Amazon All Beauty) and a ``dpo`` on 20 real TL;DR
comparisons of one labeler, both through pgen's own training functions.

The 50 reviews come from several reviewers (the 5-core file has few users with 50):
for cost, only their number and length matter. Held-out accuracy over 4 pairs is shown
for completeness; it is far too few pairs to say anything about quality.

    python benchmarks/training_cost.py --threads 1
    python benchmarks/training_cost.py --device cuda
    python benchmarks/training_cost.py --threads 1 --gathered 1,4,16 --steps 2

``--gathered``: many users trained gathered against the per-user loop, interleaved in
one process (``gathered_cost.py``), with the per-user cost's floor (the base's own forward
and backward over the same tokens), where the time goes, the padding and the memory.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import torch

from pgen.config import Config
from pgen.context import Document, Feedback
from pgen.context.artifacts import read_meta
from pgen.context.sqlite import SQLiteStore
from pgen.models.base import TextModel
from pgen.models.text import load_text_model
from pgen.training.dpo import DpoSettings, train_user_dpo
from pgen.training.text_lora import LoraSettings, train_user_lora

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def reviews(count: int) -> list[Document]:
    documents = []
    with (DATA / "amazon-beauty" / "All_Beauty_5.json").open() as lines:
        for line in lines:
            record = json.loads(line)
            text = record.get("reviewText", "")
            if len(text) >= 80:
                documents.append(
                    Document(
                        user_id="reviewer",
                        doc_id=f"{record['asin']}@{record['unixReviewTime']}",
                        kind="review",
                        title=record.get("summary"),
                        text=text,
                    )
                )
            if len(documents) == count:
                break
    return documents


def persona_pairs(count: int, one_persona: bool = True) -> list[Feedback]:
    """Short P-SOUPS pairs of one persona (prompts and replies of a few dozen tokens), or
    of every persona (``--gathered`` deals them out to many users: only sizes matter)."""
    rows = json.loads((DATA / "p-soups" / "friendly_unfriendly.json").read_text())
    persona = rows[0]["ground_truth_persona"]
    mine = [r for r in rows if not one_persona or r["ground_truth_persona"] == persona][:count]
    return [
        Feedback(
            user_id="labeler",
            feedback_id=str(i),
            prompt=r["prompt"],
            chosen=r["chosen"],
            rejected=r["rejected"],
        )
        for i, r in enumerate(mine)
    ]


def comparisons(count: int) -> list[Feedback]:
    rows = [json.loads(line) for line in (DATA / "tldr-prefs" / "comparisons-batch13.jsonl").open()]
    worker = Counter(r["worker"] for r in rows).most_common(1)[0][0]
    pairs = []
    for i, row in enumerate(r for r in rows if r["worker"] == worker):
        chosen = row["summaries"][row["choice"]]["text"].strip()
        rejected = row["summaries"][1 - row["choice"]]["text"].strip()
        post = row["info"]["post"].strip()
        prompt = f"Summarize this Reddit post in one sentence.\n\n{post}"
        pairs.append(
            Feedback(
                user_id="labeler",
                feedback_id=str(i),
                prompt=prompt,
                chosen=chosen,
                rejected=rejected,
            )
        )
        if len(pairs) == count:
            break
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--documents", type=int, default=50)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--pairs-from", choices=("tldr", "p-soups"), default="tldr")
    parser.add_argument("--skip-lora", action="store_true")
    parser.add_argument("--skip-dpo", action="store_true", help="--gathered: lora only")
    parser.add_argument("--gathered", help="K users gathered, e.g. 1,4,16 (vs the per-user loop)")
    parser.add_argument("--steps", type=int, default=2, help="--gathered: steps per user")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_text_model("smollm2", replace(Config(), device=args.device, threads=args.threads))
    if args.gathered:
        gathered(model, [int(k) for k in args.gathered.split(",")], args)
        return
    rows = []
    with tempfile.TemporaryDirectory() as scratch, SQLiteStore(Path(scratch) / "s.sqlite") as store:
        store.add(reviews(args.documents))
        store.add(
            comparisons(args.pairs) if args.pairs_from == "tldr" else persona_pairs(args.pairs)
        )
        if not args.skip_lora:
            started = time.perf_counter()
            folder = train_user_lora(store, "reviewer", model, LoraSettings())
            seconds = time.perf_counter() - started
            meta = read_meta(folder)
            assert meta is not None
            examples = f"{meta.extra['examples']} documents"
            rows.append(("lora", examples, meta.extra["steps"], seconds, ""))
        started = time.perf_counter()
        folder = train_user_dpo(store, "labeler", model, DpoSettings())
        seconds = time.perf_counter() - started
        meta = read_meta(folder)
        assert meta is not None
        before, after = meta.extra["before"], meta.extra["after"]
        note = (
            f"held-out {before['pairs']:.0f} pairs: accuracy {before['accuracy']:.2f} -> "
            f"{after['accuracy']:.2f}, margin {before['margin']:.3f} -> {after['margin']:.3f}"
        )
        steps = -(-meta.extra["train_pairs"] // DpoSettings().batch_size) * DpoSettings().epochs
        data = f"{meta.extra['train_pairs']} train pairs ({args.pairs_from})"
        rows.append(("dpo", data, steps, seconds, note))
    print(f"# SmolLM2-135M-Instruct, {os.cpu_count()} CPUs, device {args.device}, "
          f"torch threads {args.threads}")  # fmt: skip
    print("| method | data | steps | seconds per user | s/step | note |")
    print("|---|---|---:|---:|---:|---|")
    for method, data, steps, seconds, note in rows:
        print(f"| {method} | {data} | {steps} | {seconds:.1f} | {seconds / steps:.2f} | {note} |")


def gathered(model: TextModel, ks: list[int], args: argparse.Namespace) -> None:
    from gathered_cost import DpoCost, LoraCost, compare, table  # type: ignore[import-not-found]

    from pgen.training.text_lora import fresh_base

    users = [f"u{i:03d}" for i in range(sum(ks) + len(ks) + 1)]
    needed = args.documents * len(users)
    pool = reviews(needed)  # the file has ~3,000 long reviews: K = 64 needs more, so they
    documents = [pool[i % len(pool)] for i in range(needed)]  # repeat (cost: sizes only)
    pairs = comparisons(10_000) if args.pairs_from == "tldr" else persona_pairs(10_000, False)
    print(f"# SmolLM2-135M-Instruct, {os.cpu_count()} CPUs (shared), device {args.device}, "
          f"torch threads {args.threads}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch, SQLiteStore(Path(scratch) / "s.sqlite") as store:
        store.add(
            d.model_copy(update={"user_id": users[i // args.documents]})
            for i, d in enumerate(documents)
        )
        # Pairs dealt out in turn, ``--pairs`` each (for cost only their sizes matter).
        store.add(
            p.model_copy(update={"user_id": users[i // args.pairs], "feedback_id": str(i)})
            for i, p in enumerate(pairs[: args.pairs * len(users)])
        )
        began = time.perf_counter()
        base, tokenizer = fresh_base(model)
        load = time.perf_counter() - began
        base.requires_grad_(False)
        rows = []
        methods = [] if args.skip_lora else [LoraCost(store, model, tokenizer, args.steps)]
        methods += [] if args.skip_dpo else [DpoCost(store, model, tokenizer, args.steps)]
        for method in methods:
            log = lambda line: print(line, flush=True)  # noqa: E731
            rows += compare(method, users, base, load, ks, args.steps, log)
        # A full run: 45 training documents (5 held out) / 16 training pairs (4 held out).
        print(f"({args.steps} steps per user measured; a full run is 24 lora, 12 dpo steps)")
        print(table(rows, {"lora": 24, "dpo": 12}), flush=True)


if __name__ == "__main__":
    main()
