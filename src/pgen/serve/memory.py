"""A user's conversation memory: each turn stored once as one of their documents, and
recalled by the user's retrievers. The chat endpoint (tenant setting ``memory``) and
``pgen bench memory`` both write through ``remember``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from pgen.context.records import Document, User, content_hash
from pgen.engine import Engine

MEMORY_KIND = "chat"  # the document kind of remembered turns


def turn_document(
    user_id: str, text: str, *, when: datetime | None = None, speaker: str | None = None
) -> Document:
    """A turn as a document. Its id is the hash of what was said (and by whom), so the
    same turn twice is one document. The speaker and the date go in the title, which the
    retrievers read: "when did Caroline ..." can match both."""
    when = when or datetime.now(UTC)
    doc_id = f"chat-{content_hash(speaker or '', text)[:24]}"
    title = f"{when.date().isoformat()} {speaker}" if speaker else None
    return Document(
        user_id=user_id, doc_id=doc_id, kind=MEMORY_KIND, text=text, title=title, time=when
    )


def remember(engine: Engine, user_id: str, turns: list[Document]) -> int:
    """Store the turns not stored yet, in one transaction; creates the user on their first
    turn. Returns how many were new."""
    records: list[Any] = []
    known: set[str] = set()
    if not engine.store.has_user(user_id):
        records.append(User(user_id=user_id))
    else:
        known = set(engine.store.document_hashes(user_id))
    fresh = {t.doc_id: t for t in turns if t.text.strip() and t.doc_id not in known}
    records += fresh.values()
    if records:
        engine.ingest(records)
    return len(fresh)


def _standard(scores: np.ndarray) -> np.ndarray:
    """Scores as z-scores: BM25 (unbounded) and cosine (in [-1, 1]) become comparable, so
    a weighted sum fuses them. Rank fusion (RRF) lost to BM25 alone on LoCoMo: it gives the
    weak dense ranking as much say as the strong lexical one."""
    spread = float(scores.std())
    return (scores - scores.mean()) / spread if spread > 0 else scores * 0.0


def recall_turns(
    engine: Engine,
    user_id: str,
    query: str,
    k: int,
    *,
    weight: float = 0.5,
    spread: float = 0.4,
    neighbours: int = 1,
) -> list[Document]:
    """The user's ``k`` remembered turns for ``query``: BM25 and dense scores over every turn,
    z-scored and mixed (``weight`` on BM25); a turn gains ``spread`` times its better
    same-day neighbour's score (an answer often spans a question and its reply); then each
    hit brings its ``neighbours`` either side, ranked just below it. Defaults were tuned on
    LoCoMo's conversations 26, 30 and 41 (see docs/benchmarks.md)."""
    turns = engine.store.documents(user_id, kind=MEMORY_KIND)  # oldest first: spoken order
    if not turns or k <= 0:
        return []
    position = {t.doc_id: n for n, t in enumerate(turns)}
    fused = np.zeros(len(turns))
    # Retrievers index all the user's documents: ask for enough to cover every turn.
    depth = len(turns) + 1000
    for name, share in (("bm25", weight), ("dense", 1.0 - weight)):
        if share <= 0:
            continue
        scores = np.zeros(len(turns))
        for hit in engine.retrievers.get(name).retrieve(user_id, query, depth):
            if hit.doc_id in position:
                scores[position[hit.doc_id]] = hit.score
        fused += share * _standard(scores)
    days = [t.time.date() if t.time else None for t in turns]
    near = np.full(len(turns), -np.inf)
    for n in range(len(turns)):
        for m in (n - 1, n + 1):
            if 0 <= m < len(turns) and days[m] == days[n]:
                near[n] = max(near[n], fused[m])
    fused = fused + spread * np.where(np.isfinite(near), near, 0.0)
    ranked: dict[int, float] = {}
    for rank, n in enumerate(np.argsort(-fused, kind="stable")[:k]):
        score = float(k - rank)
        ranked[int(n)] = max(ranked.get(int(n), -np.inf), score)
        for step in range(1, neighbours + 1):
            for m in (n - step, n + step):
                if 0 <= m < len(turns):
                    ranked[int(m)] = max(ranked.get(int(m), -np.inf), score - 0.5 - step)
    best = sorted(ranked, key=lambda n: -ranked[n])[:k]
    return [turns[n] for n in best]
