"""Choosing the ``memory`` retriever's settings on LoCoMo without touching the held-out
conversations: every turn's raw BM25 and dense scores are computed once per question
(through the registered retrievers, as the endpoint does), then ``fuse`` is swept over a
grid of settings on the tuning conversations only. The best setting is reported on the
tuning and the held-out conversations, next to the current defaults and plain BM25.

    python benchmarks/memory_sweep.py --data ../shared/data/locomo/locomo10-first7.json
    python benchmarks/memory_sweep.py --data ... --no-captions    # turns without photos
"""

from __future__ import annotations

import argparse
import itertools
import pickle
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from pgen.bench.locomo import interval, load_locomo
from pgen.config import Config
from pgen.context.records import Document
from pgen.serve.tenants import Tenants
from pgen.usermodel.memory import MemoryRetriever, MemorySettings, fuse

TUNING = ("conv-26", "conv-30", "conv-41")  # the settings are chosen on these only
GRID = {
    "weight": (0.4, 0.5, 0.6, 0.7),
    "spread": (0.4, 0.6, 0.8),
    "neighbours": (0, 1),
    "speaker": (0.0, 5.0),
    "session": (0.2, 0.45, 0.6),
}


@dataclass
class Scored:
    conversation: str
    category: int
    evidence: frozenset[str]
    query: str
    turns: list[Document]
    dia: dict[str, str]  # doc id -> LoCoMo turn id
    lexical: np.ndarray
    dense: np.ndarray


def score_all(path: Path, captions: bool) -> list[Scored]:
    scored: list[Scored] = []
    with tempfile.TemporaryDirectory(prefix="pgen-sweep-") as home:
        tenants = Tenants(replace(Config(), home=Path(home)))
        engine = tenants.engine("locomo")
        retriever = engine.retrievers.get("memory")
        assert isinstance(retriever, MemoryRetriever)
        for conversation in load_locomo(path, captions=captions):
            user = conversation.sample_id
            engine.remember(user, [d for _, d in conversation.turns])
            dia = {d.doc_id: dia_id for dia_id, d in conversation.turns}
            for question in conversation.questions:
                if not question.evidence:
                    continue
                turns, lexical, dense = retriever.scores(user, question.text)
                scored.append(
                    Scored(
                        user,
                        question.category,
                        question.evidence,
                        question.text,
                        turns,
                        dia,
                        lexical,
                        dense,
                    )
                )
        tenants.close()
    return scored


def recall(rows: list[Scored], settings: MemorySettings, k: int) -> list[float]:
    values = []
    for row in rows:
        found = {
            row.dia[row.turns[n].doc_id]
            for n in fuse(row.turns, row.query, row.lexical, row.dense, k, settings)
        }
        values.append(len(row.evidence & found) / len(row.evidence))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-captions", action="store_true", help="leave photo captions out")
    parser.add_argument("--cache", type=Path, help="keep the scores in this pickle (re-sweeps)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    if args.cache and args.cache.exists():
        scored = pickle.loads(args.cache.read_bytes())
    else:
        scored = score_all(Path(args.data), not args.no_captions)
        if args.cache:
            args.cache.write_bytes(pickle.dumps(scored))
    rows = [r for r in scored if r.category != 5]
    tuning = [r for r in rows if r.conversation in TUNING]
    held = [r for r in rows if r.conversation not in TUNING]
    print(
        f"# {len(rows)} questions (not adversarial): {len(tuning)} tuning, {len(held)} held "
        f"out; captions {'off' if args.no_captions else 'on'}; scored in "
        f"{time.perf_counter() - started:.0f} s, torch threads {args.threads}"
    )
    results = []
    for values in itertools.product(*GRID.values()):
        settings = MemorySettings(**dict(zip(GRID, values, strict=True)))  # type: ignore[arg-type]
        results.append((float(np.mean(recall(tuning, settings, args.k))), settings))
    results.sort(key=lambda pair: -pair[0])
    print(
        f"| setting | tuning recall@{args.k} | held-out recall@{args.k} [95% CI] "
        "| held-out recall@5 |"
    )
    print("| --- | ---: | --- | ---: |")
    named = [
        ("bm25 alone, neighbours 0", MemorySettings(weight=1.0, spread=0.0, neighbours=0)),
        ("the defaults", MemorySettings()),
        ("the earlier defaults", MemorySettings(0.5, 0.4, 1, 0.0, 0.0)),
        *((f"grid #{n + 1}", s) for n, (_, s) in enumerate(results[:5])),
    ]
    for name, settings in named:
        mean, low, high = interval(recall(held, settings, args.k))
        print(
            f"| {name}: {settings} | {np.mean(recall(tuning, settings, args.k)):.3f} | "
            f"{mean:.3f} [{low:.3f}, {high:.3f}] | {np.mean(recall(held, settings, 5)):.3f} |"
        )


if __name__ == "__main__":
    main()
