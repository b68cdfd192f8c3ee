"""``pgen bench prefeval``: does the assistant still follow what the user said they want?

PrefEval (Zhao et al., ICLR 2025), classification task: each item is a user whose
conversation holds a stated preference (``prefeval_data``: explicit, or implied by a
choice or a persona chat), then ``N`` unrelated filler turns, then a question whose four
answers are one that follows the preference and three that violate it. The answers are
shuffled with a seed (per item, the same order in every setting: the comparisons are
paired) and labelled A-D after the question.

Modes (every number says which):

* ``letter``: the model's choice is the letter it finds most likely as its whole reply
  (``choice_logprobs`` over "A".."D"); PrefEval's classification task;
* ``option``: the question alone, and the answer whose own text the model finds most
  likely as its reply (summed log-probability; shorter answers are favoured, as the sum is).

Settings:

* ``none``: the question alone (it does not depend on N: one score per item, paired with
  every N);
* ``context``: the whole conversation as chat messages, the oldest dropped until the
  prompt fits the budget, as a long-context model with that window would see it;
* ``reminder``: ``context`` and the paper's reminder to honour the stated preferences;
* ``rag``: the conversation remembered through the chat endpoint's memory path and the
  question answered by the ``rag`` strategy with the ``memory`` retriever;
* ``profile``: the ``profile`` strategy (the model's summary of the user's texts).

Preference recall (settings that carry the conversation): whether a message that states
the preference is in the prompt, or (``rag``) a stated preference found in it; the rows
say which (``recalled_turn``, ``preference_in_prompt``). It depends on pgen, not on the
model.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from pgen.bench.prefeval_data import Item, Said, conversation, load_filler, load_items, topics
from pgen.components import MESSAGE_TOKENS, chat, fit_history, with_history
from pgen.config import Config
from pgen.context.records import Document
from pgen.engine import Engine
from pgen.models.base import Chat, Message
from pgen.personalize.base import TextRequest
from pgen.personalize.frames import FRAMES
from pgen.run.conversation import turn_document
from pgen.serve.tenants import Tenants
from pgen.usermodel.retrievers import index_text

SETTINGS = ("none", "context", "reminder", "rag", "profile")
CARRY = ("context", "reminder", "rag")  # settings whose prompt may hold the stating turn
MODES = ("letter", "option")
LETTERS = ("A", "B", "C", "D")
ASK = "Answer with the letter of the option that suits me best."
# The paper's reminder (its "Reminder" baseline), added after the question.
REMINDER = (
    "In your response, please ensure that you take into account our earlier discussion, "
    "and provide an answer that is consistent with my preference."
)
START = datetime(2024, 1, 1, 9, tzinfo=UTC)  # day 0 of every conversation


@dataclass(frozen=True)
class PrefEvalSettings:
    turns: tuple[int, ...] = (0, 10, 300)
    limit: int = 3  # items per topic (seeded sample); 0: all
    strategies: tuple[str, ...] = ("none", "context", "reminder", "rag")
    forms: tuple[str, ...] = ("explicit",)
    modes: tuple[str, ...] = ("letter",)
    k: int = 4  # turns the retriever brings (rag)
    retriever: str = "memory"  # rag's retriever: the chat endpoint's memory recall
    frame: str = "auto"  # rag's and profile's frame (personalize/frames.py); auto: assistant
    seed: int = 0
    score: bool = True  # False: preference recall and prompt sizes only (no model scoring)
    topics: tuple[str, ...] = ()  # empty: every topic in the data


def check_settings(settings: PrefEvalSettings) -> None:
    unknown = sorted(set(settings.strategies) - set(SETTINGS))
    if unknown:
        raise ValueError(f"--strategy: unknown {', '.join(unknown)}; use {', '.join(SETTINGS)}")
    modes = sorted(set(settings.modes) - set(MODES))
    if modes:
        raise ValueError(f"--mode: unknown {', '.join(modes)}; use {', '.join(MODES)}")
    if settings.frame not in FRAMES:
        raise ValueError(f"--frame: unknown {settings.frame}; use {', '.join(FRAMES)}")
    if any(n < 0 for n in settings.turns):
        raise ValueError("--turns: filler turns must be 0 or more")


def shuffled(item: Item, seed: int) -> tuple[list[str], int]:
    """The item's options in its seeded order, and the position of the one that follows
    the preference. Seeded by the item, not by the run's order: the same item gets the
    same order whatever else is run."""
    order = random.Random(f"{seed}:{item.topic}:{item.index}").sample(range(4), 4)
    return [item.options[i] for i in order], order.index(0)


def instruction(question: str, options: list[str], mode: str, remind: bool) -> str:
    """The user's last turn: the question, the lettered options (letter mode) and, for
    ``reminder``, the paper's reminder. Nothing here says which option is right."""
    parts = [question]
    if mode == "letter":
        pairs = zip(LETTERS, options, strict=True)
        lines = "\n".join(f"{letter}. {text}" for letter, text in pairs)
        parts.append(f"Options:\n{lines}")
    if remind:
        parts.append(REMINDER)
    if mode == "letter":
        parts.append(ASK)
    return "\n\n".join(parts)


def chat_tokens(engine: Engine, messages: Chat) -> int:
    count = engine.text_model.count_tokens
    return sum(count(m.content) + MESSAGE_TOKENS for m in messages)


def long_context(engine: Engine, said: list[Said], text: str) -> tuple[Chat, bool, int]:
    """The conversation's newest messages that fit the prompt budget with the question,
    whether a stating message is among them, and how many were kept."""
    base = chat(text)
    room = max(engine.prompt_tokens - chat_tokens(engine, base), 0)
    history = tuple(Message(s.role, s.text) for s in said)
    kept, dropped = fit_history(engine.text_model, history, room)
    return with_history(base, kept), any(s.states for s in said[dropped:]), len(kept)


class Vectors:
    """Embeddings of turns by content, computed once. Every item's user holds the same
    filler turns (same text, speaker and day, so the same content hash): embedding them
    again per user took 3 minutes per user at N = 300 on this machine. The vectors are
    stored for each user as the dense retriever would store them itself; ``path``: a file
    that keeps them between runs (per embedding model), so a second model's run reuses them."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.path: Path | None = None
        self.by_content: dict[str, np.ndarray] = {}

    def _load(self, model_id: str) -> None:
        """The saved vectors of this embedding model (its id names its weights)."""
        if self.folder is None or self.path is not None:
            return
        self.path = self.folder / f"{hashlib.sha256(model_id.encode()).hexdigest()[:16]}.npz"
        if self.path.is_file():
            with np.load(self.path) as saved:
                self.by_content = {key: saved[key] for key in saved.files}

    def seed(self, engine: Engine, user: str, documents: list[Document]) -> None:
        embedder = engine.embedder
        self._load(embedder.model_id)
        fresh = {d.content_hash: d for d in documents if d.content_hash not in self.by_content}
        missing = list(fresh.values())
        for start in range(0, len(missing), 64):
            chunk = missing[start : start + 64]
            vectors = embedder.embed([index_text(d) for d in chunk])
            self.by_content.update({d.content_hash: v for d, v in zip(chunk, vectors, strict=True)})
        if missing and self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(f"{self.path.stem}.partial.npz")
            save: Any = np.savez  # its stubs type **arrays as its keyword flags
            save(partial, **self.by_content)
            partial.replace(self.path)
        rows = [(d.doc_id, d.content_hash, self.by_content[d.content_hash]) for d in documents]
        engine.store.put_embeddings(user, embedder.model_id, rows)


def remember(
    engine: Engine, user: str, said: list[Said], vectors: Vectors | None = None
) -> set[str]:
    """The conversation stored as the chat endpoint stores turns; the stating turns' ids."""
    documents = []
    stating = set()
    for position, message in enumerate(said):
        when = START + timedelta(days=message.day, seconds=position)
        document = turn_document(user, message.text, when=when, speaker=message.role)
        documents.append(document)
        if message.states:
            stating.add(document.doc_id)
    engine.remember(user, documents)
    if vectors is not None:
        vectors.seed(engine, user, documents)
    return stating


def build(
    engine: Engine,
    setting: str,
    text: str,
    item: Item,
    said: list[Said],
    user: str | None,
    stating: set[str],
    k: int,
    retriever: str = "memory",
    frame: str = "auto",
) -> tuple[Chat, dict[str, Any]]:
    """One setting's prompt, and what it holds (recall, turns kept)."""
    if setting == "none":
        return chat(text), {}
    if setting in ("context", "reminder"):
        prompt, found, kept = long_context(engine, said, text)
        return prompt, {"recalled": float(found), "turns_in_prompt": kept}
    assert user is not None
    strategy = "rag" if setting == "rag" else "profile"
    request = TextRequest(user, text, strategy, k, retriever, query=item.question, frame=frame)
    (plan,) = engine.prepare([request])
    used = list(plan.provenance.documents)
    # What the strategy put before the question, to read per example (short: k turns).
    facts: dict[str, Any] = {"turns_in_prompt": len(used), "system": plan.chat[0].content}
    if setting == "rag":
        # Recalled: the stating turn was retrieved, or a preference found in it is among
        # the stated preferences the prompt carries (pgen's two ways of keeping it).
        sources = {p.preference_id: p.source for p in engine.preferences(user)}
        carried = {sources.get(p) for p in plan.provenance.preferences} & stating
        facts["recalled_turn"] = float(bool(stating & set(used)))
        facts["preference_in_prompt"] = float(bool(carried))
        facts["recalled"] = max(facts["recalled_turn"], facts["preference_in_prompt"])
    return list(plan.chat), facts


def score(engine: Engine, prompt: Chat, choices: list[str]) -> list[float]:
    model: Any = engine.text_model
    if not hasattr(model, "choice_logprobs"):
        raise ValueError(f"{engine.text_model.name}: PrefEval scoring needs a local model")
    return [float(x) for x in model.choice_logprobs([prompt], choices)[0]]


def _row(
    engine: Engine, item: Item, setting: str, mode: str, prompt: Chat, settings: PrefEvalSettings
) -> dict[str, Any]:
    options, gold = shuffled(item, settings.seed)
    row: dict[str, Any] = {
        "topic": item.topic,
        "item": item.index,
        "setting": setting,
        "mode": mode,
        "options": options,
        "gold": LETTERS[gold],
        "prompt_tokens": chat_tokens(engine, prompt),
        "model_s": 0.0,
    }
    if not settings.score:  # recall only: what the prompt holds, no model call
        return row
    choices = list(LETTERS) if mode == "letter" else options
    started = time.perf_counter()
    scores = score(engine, prompt, choices)
    chosen = int(np.argmax(scores))
    return {
        **row,
        "chosen": LETTERS[chosen],
        "correct": float(chosen == gold),
        "scores": [round(s, 4) for s in scores],
        "model_s": time.perf_counter() - started,
    }


def _chosen_items(data: Path, settings: PrefEvalSettings) -> list[Item]:
    names = list(settings.topics) or topics(data)
    items = []
    for topic in names:
        found = load_items(data, settings.forms, topic)
        if settings.limit and settings.limit < len(found):
            picked = random.Random(f"{settings.seed}:{topic}").sample(found, settings.limit)
            found = sorted(picked, key=lambda i: i.index)
        items += found
    return items


def run_prefeval(
    config: Config,
    data: Path,
    settings: PrefEvalSettings,
    progress: bool = False,
    on_item: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Per-example rows of every (item, form, N, setting, mode), ``none`` once per item;
    ``on_item`` gets each item's rows as they are done (a cut run keeps what it scored)."""
    check_settings(settings)
    items = _chosen_items(data, settings)
    filler = load_filler(data)
    stores = {"rag", "profile"} & set(settings.strategies)
    # In the caller's home (the run's own home is scratch): a rebuildable cache.
    vectors = (
        Vectors(config.cache_dir / "prefeval-vectors") if "rag" in settings.strategies else None
    )
    rows: list[dict[str, Any]] = []
    done = 0
    with tempfile.TemporaryDirectory(prefix="pgen-prefeval-") as home:
        tenants = Tenants(replace(config, home=Path(home)))
        engine = tenants.engine("prefeval")
        for count, item in enumerate(items, 1):
            options, _ = shuffled(item, settings.seed)
            for mode in settings.modes:
                if "none" in settings.strategies:
                    text = instruction(item.question, options, mode, False)
                    row = _row(engine, item, "none", mode, chat(text), settings)
                    rows.append({**row, "form": None, "turns": None, "prepare_ms": 0.0})
            for form in settings.forms:
                for turns in settings.turns:
                    said = conversation(item, form, filler, turns)
                    user, stating = None, set()
                    if stores:
                        user = f"{form}-{item.topic}-{item.index}-n{turns}"
                        stating = remember(engine, user, said, vectors)
                    for setting in settings.strategies:
                        if setting == "none":
                            continue
                        for mode in settings.modes:
                            text = instruction(item.question, options, mode, setting == "reminder")
                            started = time.perf_counter()
                            prompt, facts = build(
                                engine,
                                setting,
                                text,
                                item,
                                said,
                                user,
                                stating,
                                settings.k,
                                settings.retriever,
                                settings.frame,
                            )
                            prepare_ms = (time.perf_counter() - started) * 1e3
                            row = _row(engine, item, setting, mode, prompt, settings)
                            rows.append(
                                {
                                    **row,
                                    **facts,
                                    "form": form,
                                    "turns": turns,
                                    "prepare_ms": prepare_ms,
                                }
                            )
                    if user is not None:  # one item's user at a time in the scratch store
                        engine.delete_user(user)
            if on_item is not None:
                on_item(rows[done:])
            done = len(rows)
            if progress:
                print(f"prefeval: {count}/{len(items)} items", flush=True)
        tenants.close()
    return rows


def append_rows(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def settings_dict(settings: PrefEvalSettings) -> dict[str, Any]:
    return asdict(settings)
