"""``pgen bench rspg``: train the retriever selector (RSPG) and the fine-tuned dense
retriever (ROPG) on a training split's outcomes, and measure both on held-out users.

The outcome of a choice (a retriever at a k, or none) for a request is the gold output's
mean token log-likelihood under the text model, teacher-forced, given the prompt that
``rag`` builds with that choice: one forward pass per distinct prompt, no generation.
Every value is cached on disk (``outcomes.jsonl``) under (model, prompt hash, gold hash),
so a rerun, or another choice that builds the same prompt, costs nothing.

Splits: LaMP's own train and dev questions (each question is its own user); Amazon
reviewers split by a hash of their id; LoCoMo by conversation (each one a user); PrefEval
by topic. The
selector is trained on every task's training rows together; each task's test rows are
scored against that task's best single choice on its own training rows
(``pgen.bench.rspg_report``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pgen.context.records import User
from pgen.engine import Engine
from pgen.evaluate.benchmarks import Example, TaskSpec, load_task, select
from pgen.models.base import ChoiceModel
from pgen.personalize import TextRequest
from pgen.training.ropg import Triple
from pgen.usermodel.retrievers import index_text
from pgen.usermodel.selector import NO_RETRIEVER, Choice, request_features

OUTCOMES_FILE = "outcomes.jsonl"


@dataclass
class Split:
    task: str
    spec: TaskSpec
    train: list[Example]
    test: list[Example]


def _held_out(user: str, share: float) -> bool:
    """Whether a user is in the test split: a stable hash, the same on every machine."""
    digest = int(hashlib.sha256(user.encode()).hexdigest()[:8], 16)
    return digest / 0xFFFFFFFF < share


def load_splits(
    lamp: Path | None, amazon: Path | None, amazon_users: int, test_share: float
) -> list[Split]:
    """LaMP-1 and LaMP-2 (train / dev questions) from a LaMP folder; Amazon reviews
    (the first ``amazon_users`` reviewers, split by user). LoCoMo: ``locomo_split``."""
    splits = []
    if lamp is not None:
        for task in ("LaMP_1", "LaMP_2"):
            train, dev = load_task(task, lamp, "train"), load_task(task, lamp, "dev")
            splits.append(Split(task, train.spec, train.examples, dev.examples))
    if amazon is not None:
        data = load_task("amazon_review", amazon)
        chosen = select(data.examples, amazon_users, None)
        held = [_held_out(e.source_user or e.user_id, test_share) for e in chosen]
        kept = [e for e, out in zip(chosen, held, strict=True) if not out]
        test = [e for e, out in zip(chosen, held, strict=True) if out]
        splits.append(Split("amazon_review", data.spec, kept, test))
    return splits


def locomo_split(path: Path, questions: int, test_conversations: int) -> Split:
    """LoCoMo's conversations as users (their turns as ``chat`` documents, what the
    ``memory`` retriever reads), the first ``questions`` answerable questions of each
    (categories 1-4: adversarial ones have no answer) as requests; the last
    ``test_conversations`` conversations are held out."""
    from pgen.bench.locomo import load_locomo

    conversations = load_locomo(path)
    if not 0 < test_conversations < len(conversations):
        raise ValueError(
            f"--locomo-test {test_conversations}: {path} has {len(conversations)} conversations"
        )
    per: list[list[Example]] = []
    for talk in conversations:
        profile = tuple({d.doc_id: d for _, d in talk.turns}.values())  # a repeated turn once
        asked = [q for q in talk.questions if q.category != 5 and q.answer][:questions]
        per.append(
            [
                Example(f"{talk.sample_id}-{n}", talk.sample_id, q.text, q.answer, profile)
                for n, q in enumerate(asked)
            ]
        )
    cut = len(per) - test_conversations
    train = [e for examples in per[:cut] for e in examples]
    test = [e for examples in per[cut:] for e in examples]
    return Split("locomo", TaskSpec("locomo", "generation", (), 32, "LoCoMo"), train, test)


def prefeval_split(path: Path, items: int, turns: int, test_topics: int) -> Split:
    """PrefEval's explicit preferences: each of the first ``items`` items of a topic is a
    user whose chat documents are the turn stating the preference and ``turns`` filler
    turns after it; the request is the item's question, the gold the answer that follows
    the preference (PrefEval's first option). The last ``test_topics`` topics are held
    out. The turns go in as documents only (no stated-preference extraction), so only
    retrieval brings the preference into the prompt."""
    from datetime import timedelta

    from pgen.bench.prefeval import START
    from pgen.bench.prefeval_data import conversation, load_filler, load_items, topics
    from pgen.run.conversation import turn_document

    names = topics(path)
    if not 0 < test_topics < len(names):
        raise ValueError(f"--prefeval-test {test_topics}: {path} has {len(names)} topics")
    filler = load_filler(path)
    per: list[list[Example]] = []
    for topic in names:
        chosen = []
        for item in load_items(path, ("explicit",), topic)[:items]:
            user = f"prefeval/{topic}-{item.index}"
            said = conversation(item, "explicit", filler, turns)
            profile = {}
            for n, message in enumerate(said):
                when = START + timedelta(days=message.day, seconds=n)
                turn = turn_document(user, message.text, when=when, speaker=message.role)
                profile[turn.doc_id] = turn
            chosen.append(
                Example(
                    f"{topic}-{item.index}",
                    user,
                    item.question,
                    item.options[0],
                    tuple(profile.values()),
                )
            )
        per.append(chosen)
    cut = len(per) - test_topics
    train = [e for examples in per[:cut] for e in examples]
    test = [e for examples in per[cut:] for e in examples]
    return Split("prefeval", TaskSpec("prefeval", "generation", (), 64, "PrefEval"), train, test)


def fill_store(engine: Engine, splits: Sequence[Split]) -> None:
    """Each example's profile as the documents of its own user (added once)."""
    records: list[Any] = []
    seen: set[str] = set()
    for split in splits:
        for example in [*split.train, *split.test]:
            if example.user_id not in seen and not engine.store.has_user(example.user_id):
                records.append(User(user_id=example.user_id))
                records += example.profile
            seen.add(example.user_id)
    if records:
        engine.store.add(records)


class OutcomeCache:
    """(model, prompt hash, gold hash) -> the gold's mean token log-likelihood, in a
    JSON Lines file appended to as values are computed (a kill loses one row at most)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[str, float] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self.values[row["key"]] = float(row["value"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a kill: computed again
        self.computed = 0

    @staticmethod
    def key(model: str, chat: Any, gold: str) -> str:
        prompt = json.dumps([[m.role, m.content] for m in chat], ensure_ascii=False)
        digest = [hashlib.sha256(part.encode()).hexdigest()[:20] for part in (prompt, gold)]
        return f"{model}|{digest[0]}|{digest[1]}"

    def put(self, key: str, value: float) -> None:
        self.values[key] = value
        self.computed += 1
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"key": key, "value": value}) + "\n")


def gold_likelihood(engine: Engine, chat: Any, gold: str, cache: OutcomeCache) -> float:
    """The gold's mean log-probability per token (its end token included) as the reply."""
    model = engine.text_model
    if not isinstance(model, ChoiceModel):
        raise ValueError(f"bench rspg needs a model that scores replies; {model.name} cannot")
    key = OutcomeCache.key(model.name, chat, gold)
    if key not in cache.values:
        total = float(model.choice_logprobs([chat], [gold])[0, 0])
        cache.put(key, total / (model.count_tokens(gold) + 1))
    return cache.values[key]


def request_for(example: Example, choice: Choice) -> TextRequest:
    return TextRequest(
        example.user_id,
        example.instruction,
        strategy="rag",
        k=max(choice.k, 1),
        retriever=choice.retriever,
        query=example.query,
    )


@dataclass
class Outcomes:
    values: np.ndarray  # (n, C) gold likelihood per example and choice
    documents: list[list[list[str]]]  # per example and choice: the document ids used


def outcomes(
    engine: Engine,
    examples: Sequence[Example],
    choices: Sequence[Choice],
    cache: OutcomeCache,
    progress: bool = True,
) -> Outcomes:
    values = np.zeros((len(examples), len(choices)))
    documents: list[list[list[str]]] = []
    bar = tqdm(examples, desc="gold likelihoods", unit="request", disable=not progress)
    for row, example in enumerate(bar):
        plans = engine.prepare([request_for(example, c) for c in choices])
        documents.append([plan.provenance.documents for plan in plans])
        for col, plan in enumerate(plans):
            values[row, col] = gold_likelihood(engine, plan.chat, example.gold, cache)
    return Outcomes(values, documents)


def features(engine: Engine, examples: Sequence[Example]) -> np.ndarray:
    return np.stack(
        [request_features(engine.retrievers, e.user_id, e.query or e.instruction) for e in examples]
    )


def ropg_triples(
    engine: Engine, examples: Sequence[Example], choices: Sequence[Choice], found: Outcomes
) -> list[Triple]:
    """Per training request, from its one-document prompts (every retriever at k 1): the
    document that raised the gold's likelihood most over no documents is the positive
    (if any raised it), the one that lowered it most the negative (if any did)."""
    names = [c.name for c in choices]
    if NO_RETRIEVER not in names:
        raise ValueError("ROPG compares against the prompt without documents: include none")
    base = names.index(NO_RETRIEVER)
    singles = [n for n, c in enumerate(choices) if c.k == 1]
    triples = []
    for row, example in enumerate(examples):
        gains: dict[str, float] = {}
        for col in singles:
            used = found.documents[row][col]
            if len(used) == 1:
                gains[used[0]] = found.values[row, col] - found.values[row, base]
        if not gains or max(gains.values()) <= 0:
            continue
        best = max(gains, key=lambda d: gains[d])
        worst = min(gains, key=lambda d: gains[d])
        wanted = [best] + ([worst] if gains[worst] < 0 else [])
        texts = {d.doc_id: index_text(d) for d in engine.store.documents(example.user_id, wanted)}
        negative = texts.get(worst) if gains[worst] < 0 else None
        triples.append(Triple(example.query or example.instruction, texts[best], negative))
    return triples
