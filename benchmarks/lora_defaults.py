"""Choosing the LoRA defaults by measurement: for each candidate setting, every user's adapter
is trained gathered on their own documents, then measured as ``pgen train`` measures it
(``training/effect.py``): per-token loss on the user's held-out documents without and with
the adapter, and the share of 8 probe prompts whose greedy reply changed.

Users: blog authors (``../shared/data/blogs``) and Amazon Beauty reviewers with the most
reviews (``../shared/data/amazon-beauty``). Held-out documents are each user's newest 10%
(LoraSettings.holdout), never trained on; a user with fewer than 10 documents is measured
on their training documents and is left out of the held-out means.

    python benchmarks/lora_defaults.py --threads 2 --blog-users 4 --beauty-users 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from pgen.bench.attribution import load_authors
from pgen.config import Config
from pgen.context import Document, User
from pgen.context.artifacts import read_meta
from pgen.context.sqlite import SQLiteStore
from pgen.models.text import load_text_model
from pgen.training.effect import adapter_effect
from pgen.training.gathered_lora import Gathering, train_lora_group
from pgen.training.text_lora import LoraSettings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
QV, QKVO = ("q_proj", "v_proj"), ("q_proj", "k_proj", "v_proj", "o_proj")
CANDIDATES = {
    "r8 q,v lr 2e-4 (OPPU's, the default)": {},
    "r8 q,v lr 1e-3": {"learning_rate": 1e-3},
    "r8 q,v lr 3e-3": {"learning_rate": 3e-3},
    "r8 q,k,v,o lr 1e-3": {"learning_rate": 1e-3, "target_modules": QKVO},
    "r8 q,v lr 1e-3, 4 epochs": {"learning_rate": 1e-3, "epochs": 4},
    "r8 q,k,v,o lr 3e-3": {"learning_rate": 3e-3, "target_modules": QKVO},
    "r8 q,v lr 1e-2": {"learning_rate": 1e-2},
}


def beauty_users(count: int) -> list[list[Document]]:
    by_user: dict[str, list[Document]] = defaultdict(list)
    with (DATA / "amazon-beauty" / "All_Beauty_5.json").open() as lines:
        for line in lines:
            record = json.loads(line)
            text = record.get("reviewText", "")
            if len(text) >= 80:
                user = f"beauty-{record['reviewerID']}"
                by_user[user].append(
                    Document(
                        user_id=user,
                        doc_id=f"{record['asin']}@{record['unixReviewTime']}",
                        kind="review",
                        title=record.get("summary"),
                        text=text,
                        time=datetime.fromtimestamp(record["unixReviewTime"], UTC),
                    )
                )
    ranked = sorted(by_user.values(), key=lambda docs: (-len(docs), docs[0].user_id))
    return ranked[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blog-users", type=int, default=4)
    parser.add_argument("--beauty-users", type=int, default=4)
    parser.add_argument("--blog-docs", type=int, default=20, help="newest posts per author")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per example")
    parser.add_argument("--only", help="comma-separated indexes of the candidates to run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    authors = load_authors(DATA / "blogs", args.blog_users, args.blog_docs)
    users = [a.documents for a in authors] + beauty_users(args.beauty_users)
    model = load_text_model("smollm2", replace(Config(), threads=args.threads))
    names = list(CANDIDATES)
    chosen = [names[int(i)] for i in args.only.split(",")] if args.only else names
    print(
        f"# SmolLM2-135M-Instruct, {len(authors)} blog authors + {len(users) - len(authors)} "
        f"Amazon Beauty reviewers, max_length {args.max_length}, torch threads {args.threads}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    for name in chosen:
        settings = replace(
            LoraSettings(max_length=args.max_length, progress=False), **CANDIDATES[name]
        )
        with tempfile.TemporaryDirectory() as scratch:
            store = SQLiteStore(Path(scratch) / "s.sqlite")
            store.add([User(user_id=docs[0].user_id) for docs in users])
            store.add([d for docs in users for d in docs])
            began = time.perf_counter()
            pairs = [(docs[0].user_id, settings) for docs in users]
            folders = train_lora_group(store, pairs, model, Gathering(batch_users=len(users)))
            seconds = time.perf_counter() - began
            for docs, folder in zip(users, folders, strict=True):
                meta = read_meta(folder)
                held = meta.extra.get("held_out_doc_ids", []) if meta else []
                user = docs[0].user_id
                effect = adapter_effect(store, model, "lora", user, folder, held)
                row = {"candidate": name, "user": user, "user_documents": len(docs), **effect}
                rows.append(row)
                print(json.dumps(row), flush=True)
            store.close()
        print(f"# {name}: trained {len(users)} users gathered in {seconds:.0f} s", flush=True)
    table(rows, chosen)


def table(rows: list[dict[str, Any]], names: list[str]) -> None:
    print(
        "\n| candidate | users (held-out) | loss before | loss after | change | users improved "
        "| probes changed |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in names:
        mine = [r for r in rows if r["candidate"] == name]
        held = [r for r in mine if r.get("loss_on") == "held-out documents"]
        before = statistics.mean(r["loss_before"] for r in held) if held else float("nan")
        after = statistics.mean(r["loss_after"] for r in held) if held else float("nan")
        better = sum(r["loss_after"] < r["loss_before"] for r in held)
        probes = statistics.mean(r["probes_changed"] for r in mine)
        print(
            f"| {name} | {len(mine)} ({len(held)}) | {before:.3f} | {after:.3f} "
            f"| {after - before:+.3f} | {better}/{len(held)} | {probes:.0%} |"
        )


if __name__ == "__main__":
    main()
