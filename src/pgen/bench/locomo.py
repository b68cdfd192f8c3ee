"""``pgen bench memory``: conversation memory on LoCoMo.

Each conversation's turns go in through ``pgen.run.conversation.remember`` (the chat
endpoint's memory path: one document per turn, speaker and date in its title); each
question is answered from the user's retrievers. Reported: evidence recall@k (the share
of a question's evidence turns among the k recalled), per question category with a 95%
bootstrap interval; pgen's own time per question (retrieval, and the prompt when
answering); with answers, LoCoMo's token F1 and the tokens the memory added to the prompt.
"""

from __future__ import annotations

import json
import re
import string
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from pgen.config import Config, settings_from
from pgen.context.records import Document
from pgen.engine import Engine
from pgen.personalize.base import TextRequest
from pgen.run.conversation import MemorySettings, turn_document
from pgen.serve.tenants import Tenants

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}


@dataclass(frozen=True)
class Question:
    text: str
    answer: str
    evidence: frozenset[str]
    category: int


@dataclass(frozen=True)
class Conversation:
    sample_id: str
    turns: list[tuple[str, Document]]  # (dia_id, document), in the order spoken
    questions: list[Question]


def _when(text: str) -> datetime | None:
    try:
        return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y")
    except ValueError:
        return None


def said(turn: dict[str, Any], captions: bool = True) -> str:
    """A turn's text; a photo shared in it adds its caption (LoCoMo's BLIP caption, what an
    image captioner makes of the photo), as LoCoMo's own baselines read turns. The image's
    search ``query`` is never used: it was written by the data set's makers."""
    text = str(turn.get("text", "")).strip()
    caption = str(turn.get("blip_caption") or "").strip()
    if captions and caption:
        text = f"{text} [shares {caption}]".strip()
    return text


def load_locomo(path: Path, captions: bool = True) -> list[Conversation]:
    conversations = []
    for sample in json.loads(path.read_text(encoding="utf-8")):
        talk = sample["conversation"]
        user = str(sample["sample_id"])
        turns: list[tuple[str, Document]] = []
        sessions = sorted(
            (int(k.split("_")[1]), k) for k in talk if re.fullmatch(r"session_\d+", k)
        )
        for _, key in sessions:
            when = _when(str(talk.get(f"{key}_date_time", "")))
            for n, turn in enumerate(talk[key]):
                text = said(turn, captions)
                if text:
                    # A second apart: the store orders turns by time, as the endpoint's are.
                    spoken = when + timedelta(seconds=n) if when else None
                    document = turn_document(user, text, when=spoken, speaker=turn.get("speaker"))
                    turns.append((str(turn["dia_id"]), document))
        questions = [
            Question(
                str(q["question"]),
                str(q.get("answer", q.get("adversarial_answer", ""))),
                frozenset(
                    e for item in q.get("evidence", []) for e in re.split(r"[;\s]+", item) if e
                ),
                int(q["category"]),
            )
            for q in sample["qa"]
        ]
        conversations.append(Conversation(user, turns, questions))
    return conversations


def recall(
    engine: Engine,
    user: str,
    query: str,
    k: int,
    retriever: str,
    order: dict[str, int],
    by_position: list[str],
    neighbours: int,
) -> list[str]:
    """The user's top ``k`` turns; each hit's neighbouring turns (``neighbours`` either
    side) follow it at a lower score, since an answer often spans a question and its reply."""
    hits = engine.search(user, query, k=k, retriever=retriever)
    scores: dict[str, float] = {}
    for rank, hit in enumerate(hits):
        score = float(len(hits) - rank)
        doc_id = hit.document.doc_id
        scores[doc_id] = max(scores.get(doc_id, 0.0), score)
        position = order[doc_id]
        for step in range(1, neighbours + 1):
            for near in (position - step, position + step):
                if 0 <= near < len(by_position):
                    other = by_position[near]
                    scores[other] = max(scores.get(other, 0.0), score - 0.5 - step)
    return sorted(scores, key=lambda d: -scores[d])[:k]


def _normalize(text: str) -> list[str]:
    text = "".join(c for c in text.lower() if c not in string.punctuation)
    return [w for w in text.split() if w not in ("a", "an", "the", "and")]


def token_f1(prediction: str, answer: str) -> float:
    """LoCoMo's answer metric: F1 of the normalized tokens."""
    found, gold = _normalize(prediction), _normalize(answer)
    common = sum((Counter(found) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall_ = common / len(found), common / len(gold)
    return 2 * precision * recall_ / (precision + recall_)


def interval(values: list[float], seed: int = 0) -> tuple[float, float, float]:
    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return (float("nan"),) * 3
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), (2000, len(data)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(data.mean()), float(low), float(high)


def run(args: Any, config: Config) -> None:
    settings = settings_from(MemorySettings, args)
    if args.retriever == "memory" and not args.no_answers and settings != MemorySettings():
        # Answers go through rag and the registered retriever, whose settings are its own.
        raise ValueError(
            "answers use the memory retriever's own settings: "
            "drop --weight, --spread, --neighbours, --speaker and --session"
        )
    conversations = load_locomo(Path(args.data), captions=not args.no_captions)
    ks = sorted({5, 10, args.k})
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pgen-memory-") as home:
        tenants = Tenants(replace(config, home=Path(home)))
        engine = tenants.engine("locomo")
        for done, conversation in enumerate(conversations, 1):
            user = conversation.sample_id
            engine.remember(user, [document for _, document in conversation.turns])
            dia = {document.doc_id: dia_id for dia_id, document in conversation.turns}
            by_position = list(dict.fromkeys(d.doc_id for _, d in conversation.turns))
            order = {doc_id: n for n, doc_id in enumerate(by_position)}
            questions = conversation.questions[: args.limit or None]
            asked: list[Question] = []
            for question in questions:
                if not question.evidence:
                    continue
                started = time.perf_counter()
                if args.retriever == "memory":  # the endpoint's memory recall
                    ranked = [
                        d.doc_id for d in engine.recall(user, question.text, max(ks), settings)
                    ]
                else:
                    ranked = recall(
                        engine,
                        user,
                        question.text,
                        max(ks),
                        args.retriever,
                        order,
                        by_position,
                        args.neighbours,
                    )
                seconds = time.perf_counter() - started
                found = [dia[d] for d in ranked]
                row: dict[str, Any] = {
                    "conversation": user,
                    "question": question.text,
                    "gold": question.answer,
                    "evidence": sorted(question.evidence),
                    "recalled": found,
                    "category": question.category,
                    "overhead_ms": seconds * 1e3,
                }
                for k in ks:
                    row[f"recall@{k}"] = len(question.evidence & set(found[:k])) / len(
                        question.evidence
                    )
                rows.append(row)
                asked.append(question)
            if not args.no_answers and asked:
                for row, answer in zip(
                    rows[-len(asked) :], _answers(engine, user, asked, args), strict=True
                ):
                    row.update(answer)
            # A long run (a larger model answers for many minutes) says where it is.
            print(
                f"memory: {done}/{len(conversations)} conversations, {len(rows)} questions",
                file=sys.stderr,
                flush=True,
            )
        tenants.close()
    if args.out:  # per question: what was recalled and answered, to read, not only average
        Path(args.out).write_text(
            "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
        )
    _report(rows, ks, args)


def _answers(
    engine: Engine, user: str, questions: list[Question], args: Any
) -> list[dict[str, Any]]:
    """The questions answered as the chat endpoint answers them: the rag strategy with this
    retriever (``memory``: the registered memory retriever), in the engine's batches; and
    by the instruction alone (``none``), the paired baseline. pgen's own time is that of
    building each prompt (retrieval and packing), timed apart from the model's."""
    requests = [TextRequest(user, q.text, "rag", args.k, args.retriever, None) for q in questions]
    prepare_ms, used = [], []
    for request in requests:
        started = time.perf_counter()
        (prepared,) = engine.prepare([request])
        prepare_ms.append((time.perf_counter() - started) * 1e3)
        used.append(float(len(prepared.provenance.documents)))
    generation = replace(engine.generation, max_new_tokens=args.max_new_tokens)
    answered = engine.generate_many(requests, generation, save=False, batch_size=8)
    alone = engine.generate_many(
        [replace(r, strategy="none") for r in requests], generation, save=False, batch_size=8
    )
    rows = []
    for n, (question, result, baseline) in enumerate(zip(questions, answered, alone, strict=True)):
        prompt = "\n".join(str(getattr(m, "content", "")) for m in result.prompt)
        count = engine.text_model.count_tokens
        rows.append(
            {
                "answer": result.text,
                "answer_none": baseline.text,
                "f1": token_f1(result.text, question.answer),
                "f1_none": token_f1(baseline.text, question.answer),
                "prompt_tokens_added": float(count(prompt) - count(question.text)),
                "prepare_ms": prepare_ms[n],
                "documents_used": used[n],
            }
        )
    return rows


def _report(rows: list[dict[str, Any]], ks: list[int], args: Any) -> None:
    print(
        f"LoCoMo {args.data}: {len(rows)} questions with evidence; retriever {args.retriever}, "
        f"neighbours {args.neighbours}"
        + (
            f", weight {args.weight}, spread {args.spread}, speaker {args.speaker}, "
            f"session {args.session}"
            if args.retriever == "memory"
            else ""
        )
        + (", photo captions off" if args.no_captions else "")
    )
    metrics = [f"recall@{k}" for k in ks] + ([] if args.no_answers else ["f1", "f1_none"])
    print("| category | questions | " + " | ".join(metrics) + " |")
    print("| --- | ---: |" + " ---: |" * len(metrics))
    groups = [("all but adversarial", [r for r in rows if r["category"] != 5])]
    groups += [
        (f"{c} {CATEGORIES.get(c, '?')}", [r for r in rows if r["category"] == c])
        for c in sorted({r["category"] for r in rows})
    ]
    for name, group in groups:
        cells = []
        for metric in metrics:
            mean, low, high = interval([r[metric] for r in group])
            cells.append(f"{mean:.3f} [{low:.3f}, {high:.3f}]")
        print(f"| {name} | {len(group)} | " + " | ".join(cells) + " |")
    overhead = np.asarray([r["overhead_ms"] for r in rows])
    if len(overhead):
        p50, p95 = np.percentile(overhead, [50, 95])
        print(f"pgen overhead per question (retrieval): p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    if not args.no_answers and rows:
        added = np.asarray([r["prompt_tokens_added"] for r in rows])
        used = np.mean([r["documents_used"] for r in rows])
        print(
            f"tokens added to the prompt: mean {added.mean():.0f}, p95 "
            f"{np.percentile(added, 95):.0f} ({used:.1f} turns kept of {args.k})"
        )
        gain = [r["f1"] - r["f1_none"] for r in rows if r["category"] != 5]
        mean, low, high = interval(gain)
        print(
            f"F1 with memory minus without (not adversarial): {mean:+.3f} [{low:+.3f}, {high:+.3f}]"
        )
        p50, p95 = np.percentile([r["prepare_ms"] for r in rows], [50, 95])
        print(
            f"pgen overhead per answer (prompt built, model excluded): p50 {p50:.1f} ms, "
            f"p95 {p95:.1f} ms"
        )
