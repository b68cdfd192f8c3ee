"""Similar-profile cohorts: the users whose profiles are nearest a user's, for pooling
preference pairs when one user has too few (``--cohort similar:K``).

A user's profile is their documents' texts; a user with no documents is profiled by their
feedback (each pair's prompt and chosen reply). Each text is embedded with the configured
embedder and a profile is the normalized mean of its texts' vectors (the embedder reads
only its first few hundred tokens of a text, so one long concatenation would profile a
user by their first document). Without an embedder, TF-IDF over the retrieval
tokenizer's terms stands in. Candidates are the other users of the store with preference
pairs (a cohort without pairs pools nothing); the top ``K`` by cosine are the cohort.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from pgen.context.base import ContextStore
from pgen.models.base import Embedder

if TYPE_CHECKING:
    from pgen.training.registry import TrainRequest
    from pgen.usermodel.preferences import Pair

SIMILAR = "similar:"
MAX_TEXTS = 64  # the user's newest texts: enough for a profile, bounded cost per user
TFIDF = "tf-idf"  # the vector space named in the metadata when no embedder is used


def similar_k(cohort: Sequence[str]) -> int | None:
    """K of a ``similar:K`` cohort (None for a named one); a bad K is a one-line error."""
    specs = [member for member in cohort if member.startswith(SIMILAR)]
    if not specs:
        return None
    if len(cohort) != 1:
        raise ValueError("--cohort similar:K picks the cohort itself: name no users beside it")
    value = specs[0][len(SIMILAR) :]
    if not value.isdigit() or int(value) < 1:
        raise ValueError(
            f"--cohort {specs[0]}: K must be a positive whole number of users (e.g. similar:3)"
        )
    return int(value)


def pair_texts(pairs: Sequence[Pair]) -> list[str]:
    """A preference profile's texts: what was asked and the reply the user chose."""
    return [f"{p.prompt}\n{p.chosen}" for p in pairs]


def profile_texts(store: ContextStore, user_id: str) -> list[str]:
    """The user's documents (newest ``MAX_TEXTS``), else their feedback pairs' texts."""
    from pgen.usermodel.preferences import feedback_pairs

    texts = [f"{d.title}\n{d.text}".strip() for d in store.documents(user_id)]
    if not texts:
        texts = pair_texts(feedback_pairs(store, user_id))
    return [t for t in texts if t][-MAX_TEXTS:]


def rank_profiles(
    target: Sequence[str],
    others: dict[str, Sequence[str]],
    k: int,
    embedder: Embedder | None = None,
) -> list[tuple[str, float]]:
    """The ``k`` users of ``others`` whose texts are nearest ``target``'s, with their
    cosine, most similar first (ties by id). Users with no texts are never picked."""
    candidates = [u for u in sorted(others) if others[u]]
    if not target or not candidates or k < 1:
        return []
    groups = [list(target), *(list(others[u]) for u in candidates)]
    vectors = _embedded(groups, embedder) if embedder is not None else _tfidf(groups)
    cosines = vectors[1:] @ vectors[0]
    order = sorted(range(len(candidates)), key=lambda i: (-cosines[i], candidates[i]))
    return [(candidates[i], round(float(cosines[i]), 4)) for i in order[:k]]


def similar_users(
    store: ContextStore, user_id: str, k: int, embedder: Embedder | None = None
) -> list[tuple[str, float]]:
    """The ``k`` other users of the store with preference pairs whose profiles are nearest
    the user's. Users whose feedback does not make pairs (or is broken) are no candidates:
    their pairs could not be pooled."""
    from pgen.usermodel.preferences import FeedbackError, feedback_pairs

    others: dict[str, Sequence[str]] = {}
    for summary in store.users():
        if summary.user_id == user_id:
            continue
        try:
            if not feedback_pairs(store, summary.user_id):
                continue
        except FeedbackError:
            continue
        others[summary.user_id] = profile_texts(store, summary.user_id)
    return rank_profiles(profile_texts(store, user_id), others, k, embedder)


def resolve_cohort(
    store: ContextStore, request: TrainRequest, embedder: Callable[[], Embedder] | None
) -> TrainRequest:
    """``request`` with a ``similar:K`` cohort replaced by the users it picks, their
    similarities in the dpo settings (recorded in the adapter's metadata). A named cohort
    is returned as is. ``embedder``: loaded only for a similar cohort; None: TF-IDF."""
    k = similar_k(request.cohort)
    if k is None:
        return request
    if request.method != "dpo":
        raise ValueError(
            f"--cohort similar:K pools preference pairs: dpo only, not {request.method}"
        )
    from pgen.training.dpo import DpoSettings

    settings = request.settings or DpoSettings()
    if not isinstance(settings, DpoSettings):
        raise TypeError("dpo takes DpoSettings settings")
    loaded = embedder() if embedder is not None else None
    picked = similar_users(store, request.user_id, k, loaded)
    if not picked:
        raise ValueError(
            f"--cohort similar:{k}: no other user has preference pairs to pool for "
            f"{request.user_id!r}"
        )
    settings = replace(
        settings,
        cohort=tuple(u for u, _ in picked),
        cohort_similarity=tuple(s for _, s in picked),
        cohort_space=loaded.model_id if loaded is not None else TFIDF,
    )
    return replace(request, cohort=settings.cohort, settings=settings)


def _embedded(groups: list[list[str]], embedder: Embedder) -> np.ndarray:
    """One unit vector per group: the normalized mean of its texts' embeddings."""
    flat = [text for group in groups for text in group]
    vectors = embedder.embed(flat)
    rows, start = [], 0
    for group in groups:
        rows.append(vectors[start : start + len(group)].mean(axis=0))
        start += len(group)
    return _unit(np.stack(rows))


def _tfidf(groups: list[list[str]]) -> np.ndarray:
    """One unit TF-IDF vector per group (its texts as one bag of terms)."""
    from pgen.usermodel.bm25 import tokenize_many

    bags = [Counter(t for terms in tokenize_many(group) for t in terms) for group in groups]
    vocabulary = sorted({term for bag in bags for term in bag})
    column = {term: i for i, term in enumerate(vocabulary)}
    counts = Counter(term for bag in bags for term in bag)
    matrix = np.zeros((len(bags), max(1, len(vocabulary))))
    for row, bag in enumerate(bags):
        for term, count in bag.items():
            # Smoothed idf: a term every profile shares still counts a little.
            idf = math.log((1 + len(bags)) / (1 + counts[term])) + 1
            matrix[row, column[term]] = (1 + math.log(count)) * idf
    return _unit(matrix)


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)
