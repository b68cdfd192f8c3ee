"""Where the turn that states the preference ranks among a PrefEval user's turns, per
retriever, for the question that tests it: why ``rag`` does or does not put it in the
prompt. Each retriever ranks every turn of the conversation; "user turns" ranks only the
user's own messages (what a user says about themselves is theirs; the filler's assistant
replies are long and match many words).

    python benchmarks/prefeval_ranks.py --data ../shared/data/prefeval --limit 3 --turns 300
"""

from __future__ import annotations

import argparse
import random
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from pgen.bench.prefeval import Vectors, remember
from pgen.bench.prefeval_data import conversation, load_filler, load_items, topics
from pgen.config import Config
from pgen.serve.tenants import Tenants

RETRIEVERS = ("bm25", "dense", "memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=3, help="items per topic (seeded)")
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--form", default="explicit")
    parser.add_argument("--home", type=Path, default=Path("/tmp/pe-home"), help="vector cache")
    args = parser.parse_args()
    torch.set_num_threads(1)
    filler = load_filler(args.data)
    ranks: dict[str, list[int]] = {f"{r}{s}": [] for r in RETRIEVERS for s in ("", " user turns")}
    vectors = Vectors(Config(home=args.home).cache_dir / "prefeval-vectors")
    with tempfile.TemporaryDirectory() as home:
        tenants = Tenants(replace(Config(threads=1), home=Path(home)))
        engine = tenants.engine("ranks")
        for topic in topics(args.data):
            items = load_items(args.data, (args.form,), topic)
            picked = random.Random(f"0:{topic}").sample(items, min(args.limit, len(items)))
            for item in sorted(picked, key=lambda i: i.index):
                said = conversation(item, args.form, filler, args.turns)
                user = f"{topic}-{item.index}"
                stating = remember(engine, user, said, vectors)
                total = len(engine.documents(user))
                for retriever in RETRIEVERS:
                    hits = engine.search(user, item.question, k=total, retriever=retriever)
                    ids = [h.document.doc_id for h in hits]
                    own = [
                        h.document.doc_id
                        for h in hits
                        if (h.document.title or "").endswith(" user")
                    ]
                    for name, ranked in ((retriever, ids), (f"{retriever} user turns", own)):
                        found = [n for n, d in enumerate(ranked, 1) if d in stating]
                        ranks[name].append(found[0] if found else total + 1)
                engine.delete_user(user)
        tenants.close()
    n = len(ranks["bm25"])
    print(f"PrefEval {args.form}, N = {args.turns}: rank of the stating turn, {n} items, 1 thread")
    print("| retriever | median rank | recall@1 | recall@4 | recall@10 |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, values in ranks.items():
        data = np.asarray(values)
        cells = [f"{np.mean(data <= k):.2f}" for k in (1, 4, 10)]
        print(f"| {name} | {np.median(data):.0f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
