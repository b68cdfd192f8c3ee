"""Preference recall on PrefEval with and without stated preferences: is the preference the
user stated N turns ago in the prompt when the question comes?

Each explicit PrefEval item is one user: the turn stating the preference, then N filler
messages (``filtered_inter_turns.json``, the users' and the assistants' messages in order,
each item starting at its own offset), remembered through ``Engine.remember`` as the chat
endpoint does (the user's turns without a speaker, the assistant's with one); then the
question is prepared, as ``rag`` with the ``memory`` retriever (k=4), in two settings:

* ``memory``: retrieval alone (``rag`` with stated preferences switched off);
* ``memory+stated``: ``rag`` as registered: the user's stated preferences (found in their
  turns by the rule set as they were remembered) in the system message as well.

Preference recall is whether the stating turn is among the retrieved documents, or (with
stated preferences) a preference record found in that turn is in the prompt. It depends on
pgen, not on the model: no text is generated; the text model (SmolLM2) only counts tokens
for the prompt budget. Bootstrap 95% intervals over items; the paired difference too.

    python benchmarks/prefeval_stated.py --data ../shared/data/prefeval --turns 0,300 --limit 10

``--choose``: also the text model's choice among the item's four answers (PrefEval's
classification task, ``letter`` mode: shuffled with a seed per item, labelled A-D after
the question, the letter the model finds most likely as its whole reply), in the two
settings and with the question alone (``none``). Use it with a model that can follow a
preference at all (``--text-model /tmp/qwen15/qwen15.gguf``; SmolLM2 is at chance).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pgen.components import TextRequest
from pgen.config import Config
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.factory import component_loader
from pgen.personalize.rag import RetrievalAugmented
from pgen.personalize.registry import register, unregister
from pgen.run.conversation import turn_document

START = datetime(2024, 1, 1, tzinfo=UTC)


class MemoryAlone(RetrievalAugmented):
    """``rag`` without the user's stated preferences: retrieval alone, the comparison."""

    name = "rag-without-stated"
    stated_preferences = False


class CachedEmbedder:
    """The embedder, each distinct text embedded once: every item's 300 filler turns are
    the same texts, stored per user (a pure function: the vectors are the same)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self._known: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._known))
        if missing:
            for text, vector in zip(missing, self.inner.embed(missing), strict=True):
                self._known[text] = vector
        return np.stack([self._known[t] for t in texts]) if texts else self.inner.embed([])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class Row:
    topic: str
    index: int
    turns: int
    detected: bool  # a preference record was found in the stating turn
    memory: bool
    stated: bool
    tokens_memory: int
    tokens_stated: int
    preferences_in_prompt: int
    # --choose: whether the preference-following answer won, per setting
    right: dict[str, bool] | None = None


LETTERS = ("A", "B", "C", "D")
ASK = "Answer with the letter of the option that suits me best."


def options(data: Path) -> dict[str, list[str]]:
    """Preference text -> its four answers, the first the one that follows it."""
    found = {}
    for path in sorted((data / "mcq_options").glob("*.json")):
        for row in json.loads(path.read_text()):
            found[row["preference"]] = list(row["classification_task_options"])
    return found


def with_options(question: str, answers: list[str], seed: str) -> tuple[str, int]:
    """The question with the answers shuffled (seeded) and labelled; and where the one
    that follows the preference went."""
    order = list(range(len(answers)))
    random.Random(seed).shuffle(order)
    lines = [f"{LETTERS[i]}) {answers[k]}" for i, k in enumerate(order)]
    return "\n".join([question, "", *lines, "", ASK]), order.index(0)


def chosen_right(model: Any, chats: list[Any], right: int) -> list[bool]:
    scores = np.asarray(model.choice_logprobs(chats, list(LETTERS)))
    return [int(row.argmax()) == right for row in scores]


def load_items(data: Path, limit: int | None) -> list[tuple[str, int, dict[str, str]]]:
    items = []
    for path in sorted((data / "explicit_preference").glob("*.json")):
        rows = json.loads(path.read_text())
        items += [(path.stem, i, row) for i, row in enumerate(rows[:limit])]
    return items


def filler(data: Path) -> list[tuple[str, str]]:
    conversations = json.loads((data / "filtered_inter_turns.json").read_text())
    return [(m["role"], m["content"]) for c in conversations for m in c["conversation"]]


def interval(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(2000)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def run(args: argparse.Namespace) -> list[Row]:
    config = Config(text_model=args.text_model, threads=1)
    load = component_loader(config)
    text_model = load("text")
    embedder = CachedEmbedder(load("embedder"))
    messages = filler(args.data)
    items = load_items(args.data, args.limit)
    answers = options(args.data) if args.choose else {}
    out = args.out.open("w") if args.out else None
    rows: list[Row] = []
    register(MemoryAlone())
    try:
        with tempfile.TemporaryDirectory(prefix="pgen-prefeval-") as home:
            store = SQLiteStore(Path(home) / "pgen.sqlite")
            engine = Engine(store, text_model, embedder, prompt_tokens=args.prompt_tokens)
            for turns in args.turns:
                for number, (topic, index, item) in enumerate(items):
                    user = f"{topic}-{index}-{turns}"
                    said = turn_document(user, item["preference"], when=START)
                    offset = random.Random(f"{topic}/{index}").randrange(len(messages))
                    chosen = [messages[(offset + k) % len(messages)] for k in range(turns)]
                    history = [
                        turn_document(
                            user,
                            text,
                            when=START + timedelta(minutes=k + 1),
                            speaker=None if role == "user" else "assistant",
                        )
                        for k, (role, text) in enumerate(chosen)
                    ]
                    engine.remember(user, [said, *history])
                    found = [p for p in engine.preferences(user) if p.source == said.doc_id]
                    asked, right = item["question"], -1
                    if args.choose:
                        asked, right = with_options(
                            item["question"], answers[item["preference"]], f"{topic}/{index}"
                        )
                    plans = engine.prepare(
                        [
                            TextRequest(
                                user,
                                asked,
                                s,
                                k=args.k,
                                retriever="memory",
                                query=item["question"],
                            )
                            for s in (MemoryAlone.name, "rag")
                        ]
                    )
                    alone, stated = plans
                    own = {p.preference_id for p in found}
                    in_prompt = set(stated.provenance.preferences)
                    rows.append(
                        Row(
                            topic,
                            index,
                            turns,
                            bool(found),
                            said.doc_id in alone.provenance.documents,
                            said.doc_id in stated.provenance.documents or bool(own & in_prompt),
                            _tokens(text_model, alone.chat),
                            _tokens(text_model, stated.chat),
                            len(in_prompt),
                        )
                    )
                    if args.choose:
                        (baseline,) = engine.prepare([TextRequest(user, asked, "none")])
                        chats = [baseline.chat, alone.chat, stated.chat]
                        wins = chosen_right(text_model, chats, right)
                        names = ("none", "memory", "memory+stated")
                        rows[-1].right = dict(zip(names, wins, strict=True))
                    if out is not None:
                        out.write(json.dumps(rows[-1].__dict__) + "\n")
                        out.flush()
                    if args.progress and number % 25 == 0:
                        print(f"  N={turns}: {number + 1}/{len(items)}", flush=True)
            store.close()
    finally:
        if out is not None:
            out.close()
        unregister("text", MemoryAlone.name)
    return rows


def _tokens(model: Any, chat: Any) -> int:
    return int(model.count_tokens(model.render(chat)))


def report(rows: list[Row], seconds: float) -> None:
    print(
        f"{'N':>4} {'items':>5} {'detected':>8} {'memory recall':>22} "
        f"{'memory+stated recall':>22} {'paired diff':>22} {'tokens m / m+s':>15} {'prefs':>5}"
    )
    for turns in sorted({r.turns for r in rows}):
        chosen = [r for r in rows if r.turns == turns]
        memory = np.array([r.memory for r in chosen], dtype=float)
        stated = np.array([r.stated for r in chosen], dtype=float)
        diff = stated - memory
        parts = []
        for values in (memory, stated, diff):
            low, high = interval(values)
            parts.append(f"{values.mean():.3f} [{low:.3f}, {high:.3f}]")
        detected = np.mean([r.detected for r in chosen])
        tokens = (
            f"{np.mean([r.tokens_memory for r in chosen]):.0f} / "
            f"{np.mean([r.tokens_stated for r in chosen]):.0f}"
        )
        prefs = np.mean([r.preferences_in_prompt for r in chosen])
        print(
            f"{turns:>4} {len(chosen):>5} {detected:>8.3f} {parts[0]:>22} {parts[1]:>22} "
            f"{parts[2]:>22} {tokens:>15} {prefs:>5.2f}"
        )
    chose = [r for r in rows if r.right is not None]
    if chose:
        print("accuracy, letter mode (the preference-following answer chosen), paired on items:")
        for name in ("none", "memory", "memory+stated"):
            values = np.array([r.right[name] for r in chose if r.right], dtype=float)
            low, high = interval(values)
            print(f"  {name:<14} {values.mean():.3f} [{low:.3f}, {high:.3f}] (n={len(values)})")
    print(f"({len(rows)} items in {seconds:.0f} s, 1 thread)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/prefeval"))
    parser.add_argument("--turns", default="0,300", help="filler messages after the preference")
    parser.add_argument("--limit", type=int, help="items per topic (default: all)")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--prompt-tokens", type=int, default=1024)
    parser.add_argument("--text-model", default="smollm2", help="counts tokens (--choose: picks)")
    parser.add_argument("--out", type=Path, help="per-item rows as JSONL")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--choose", action="store_true", help="also the model's A-D choice")
    args = parser.parse_args()
    args.turns = [int(t) for t in args.turns.split(",")]
    torch.set_num_threads(1)
    started = time.perf_counter()
    rows = run(args)
    report(rows, time.perf_counter() - started)


if __name__ == "__main__":
    main()
