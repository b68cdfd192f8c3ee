"""``memory``: recall over a user's remembered chat turns (documents of kind ``chat``).

BM25 and dense scores of every turn are z-scored and mixed; turns by a speaker the query
names gain a boost; each turn gains a share of its better same-day neighbour's score;
sessions (days) whose turns score high lift all their turns; and each of the top hits
brings its neighbours either side. The chat endpoint's answers (``rag`` with retriever
``memory``) and ``pgen bench memory`` run exactly this code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np

from pgen.context.base import ContextStore
from pgen.context.records import Document
from pgen.usermodel.retrievers import Hit, Retriever, rank_fusion

MEMORY_KIND = "chat"  # the document kind of remembered turns


@dataclass(frozen=True)
class MemorySettings:
    """Tuned on LoCoMo's conversations 26, 30 and 41 only (docs/benchmarks.md)."""

    weight: float = 0.4  # BM25's share of the mix (the rest is dense)
    spread: float = 0.6  # share of the better same-day neighbour's score a turn gains
    neighbours: int = 0  # turns either side that each top hit brings along
    # z-score boost of the turns by a speaker the query names: 5 all but keeps only theirs
    speaker: float = 5.0
    session: float = 0.6  # share of its day's best turn score every turn of that day gains


def speaker_of(turn: Document) -> str | None:
    """The speaker ``turn_document`` wrote into the title ("2023-05-08 Ann")."""
    if not turn.title:
        return None
    parts = turn.title.split(" ", 1)
    return parts[1] if len(parts) == 2 else None


def _standard(scores: np.ndarray) -> np.ndarray:
    """Scores as z-scores: BM25 (unbounded) and cosine (in [-1, 1]) become comparable, so
    a weighted sum fuses them. Rank fusion (RRF) lost to BM25 alone on LoCoMo: it gives the
    weak dense ranking as much say as the strong lexical one."""
    spread = float(scores.std())
    return (scores - scores.mean()) / spread if spread > 0 else scores * 0.0


def named_speakers(query: str, turns: list[Document]) -> set[str]:
    """The speakers of ``turns`` whose first name the query says, unless it names them
    all (then the name says nothing about whose turns hold the answer)."""
    speakers = {s for s in map(speaker_of, turns) if s}
    words = {w.lower() for w in re.findall(r"[A-Za-z]+", query)}
    named = {s for s in speakers if s.split()[0].lower() in words}
    return named if len(named) < len(speakers) else set()


def without_speakers(query: str, named: set[str]) -> str:
    """``query`` without the first names (and their 's) of ``named``; unchanged if
    nothing else would be left."""
    stripped = query
    for name in named:
        stripped = re.sub(rf"\b{re.escape(name.split()[0])}('s)?\b", " ", stripped, flags=re.I)
    return stripped if re.search(r"\w", stripped) else query


def fuse(
    turns: list[Document],
    query: str,
    lexical: np.ndarray,
    dense: np.ndarray,
    k: int,
    settings: MemorySettings,
) -> list[int]:
    """Positions (in spoken order) of the ``k`` best turns, from each turn's raw BM25 and
    dense scores. Pure, so a benchmark can sweep settings over cached scores."""
    if not turns or k <= 0:
        return []
    fused = settings.weight * _standard(lexical) + (1.0 - settings.weight) * _standard(dense)
    named = named_speakers(query, turns) if settings.speaker else set()
    if named:
        fused = fused + settings.speaker * np.array([speaker_of(t) in named for t in turns])
    days = _day_numbers(turns)
    lifted = fused + settings.spread * _best_neighbour(fused, days)
    if settings.session:
        best = np.full(int(days.max()) + 1, -np.inf)
        np.maximum.at(best, days, fused)
        lifted = lifted + settings.session * best[days]
    ranked: dict[int, float] = {}
    for rank, n in enumerate(np.argsort(-lifted, kind="stable")[:k]):
        score = float(k - rank)
        ranked[int(n)] = max(ranked.get(int(n), -np.inf), score)
        for step in range(1, settings.neighbours + 1):
            for m in (n - step, n + step):
                if 0 <= m < len(turns):
                    ranked[int(m)] = max(ranked.get(int(m), -np.inf), score - 0.5 - step)
    return sorted(ranked, key=lambda n: -ranked[n])[:k]


def _day_numbers(turns: list[Document]) -> np.ndarray:
    """Each turn's day as a small integer (turns without a time share one "day")."""
    known: dict[date | None, int] = {}
    return np.array(
        [known.setdefault(t.time.date() if t.time else None, len(known)) for t in turns]
    )


def _best_neighbour(scores: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Each turn's better score of the turns just before and after it on the same day (0
    where it has none): an answer often spans a question and its reply."""
    before = np.full(len(scores), -np.inf)
    after = np.full(len(scores), -np.inf)
    same = days[1:] == days[:-1]
    before[1:] = np.where(same, scores[:-1], -np.inf)
    after[:-1] = np.where(same, scores[1:], -np.inf)
    near = np.maximum(before, after)
    return np.where(np.isfinite(near), near, 0.0)


def turn_scores(turns: list[Document], hits: list[Hit]) -> np.ndarray:
    """Each turn's score among ``hits`` (0 where a part retriever left it out)."""
    position = {t.doc_id: n for n, t in enumerate(turns)}
    scores = np.zeros(len(turns))
    for hit in hits:
        if hit.doc_id in position:
            scores[position[hit.doc_id]] = hit.score
    return scores


class MemoryRetriever:
    """Registered as ``memory``: the user's remembered turns (``chat`` documents) by
    ``recall``, fused by rank with the user's other documents (BM25 and dense), so that
    a user with both gets both; every part retriever is per user."""

    name = "memory"

    def __init__(
        self,
        store: ContextStore,
        part: Callable[[str], Retriever],
        settings: MemorySettings | None = None,
    ) -> None:
        self.store = store
        self._part = part  # name -> retriever (Retrievers.get), built on first use
        self.settings = settings or MemorySettings()

    def scores(self, user_id: str, query: str) -> tuple[list[Document], np.ndarray, np.ndarray]:
        """The user's turns in spoken order and their raw BM25 and dense scores."""
        turns, lexical, dense, _ = self._scored(user_id, query, others=False)
        return turns, lexical, dense

    def _scored(
        self, user_id: str, query: str, others: bool
    ) -> tuple[list[Document], np.ndarray, np.ndarray, list[list[str]]]:
        """The turns and their raw BM25 and dense scores, and (``others``) each part's
        ranking of the user's other documents, from one call per part. With a speaker
        boost, the speakers the query names leave the text that is scored: the boost
        already says whose turns, and a name matches every title of theirs."""
        turns = self.store.documents(user_id, kind=MEMORY_KIND)  # oldest first
        turn_ids = {t.doc_id for t in turns}
        depth = len(turns) + 1000  # the parts index all documents: cover every turn
        if self.settings.speaker:
            query = without_speakers(query, named_speakers(query, turns))
        found, rankings = [], []
        for name, share in (("bm25", self.settings.weight), ("dense", 1 - self.settings.weight)):
            wanted = share > 0 and (turns or others)  # nothing to score: no index to build
            hits = self._part(name).retrieve(user_id, query, depth) if wanted else []
            found.append(turn_scores(turns, hits))
            if others and hits:
                rankings.append([h.doc_id for h in hits if h.doc_id not in turn_ids])
        return turns, found[0], found[1], rankings

    def recall(self, user_id: str, query: str, k: int) -> list[Document]:
        """The user's ``k`` best remembered turns for ``query``."""
        if k <= 0:
            return []
        turns, lexical, dense = self.scores(user_id, query)
        return [turns[n] for n in fuse(turns, query, lexical, dense, k, self.settings)]

    def retrieve(self, user_id: str, query: str, k: int) -> list[Hit]:
        if k <= 0:
            return []
        turns, lexical, dense, rankings = self._scored(user_id, query, others=True)
        recalled = [turns[n].doc_id for n in fuse(turns, query, lexical, dense, k, self.settings)]
        if not any(rankings):
            # Only turns (LoCoMo, a chat-only user): recall's order, scored by rank.
            return [Hit(doc_id, float(len(recalled) - n)) for n, doc_id in enumerate(recalled)]
        # The user's other documents (BM25 and dense fused), then with the turns, by rank.
        documents = [hit.doc_id for hit in rank_fusion(rankings, k)]
        return rank_fusion([recalled, documents], k)

    def forget(self, user_id: str) -> None:
        pass  # the part retrievers hold the indexes
