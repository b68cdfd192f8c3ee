"""An incremental BM25 index over one user's documents.

Tokenization of spaced scripts (lower-casing, English stopwords, Snowball stemming) is
bm25s's, and the scoring is bm25s's default "lucene" variant, so rankings of such text
match a bm25s index built from scratch (tests check this); unlike bm25s, documents are
added and removed in place, so a new document costs microseconds instead of a rebuild of
the user's whole index.

Scripts written without spaces between words (Chinese, Japanese kana and kanji, Korean
Hangul, Thai) would otherwise be one "word" per run of characters up to the next
punctuation, so 周末 in a query never matches 这个周末我去公园. Such runs are cut into
overlapping character bigrams instead (a lone character stays a unigram), as Lucene's
CJK analyzer does: no dictionary needed, and any two-character word is found.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections import Counter

import bm25s
import numpy as np
import Stemmer

# PyStemmer's stemmers keep state between calls: one per thread, never shared.
_STEMMERS = threading.local()


def _stemmer() -> Stemmer.Stemmer:
    stemmer: Stemmer.Stemmer | None = getattr(_STEMMERS, "stemmer", None)
    if stemmer is None:
        stemmer = _STEMMERS.stemmer = Stemmer.Stemmer("english")
    return stemmer


# Bump when tokenization changes: saved indexes (snapshots) of another version are refused
# and rebuilt from the documents, since their terms would never match new queries.
TOKENIZER_VERSION = 2  # 1: bm25s only; 2: character bigrams for unspaced scripts, NFKC
# Runs of characters from scripts written without spaces between words: Hiragana and
# Katakana (not the ・ middle dot), CJK ideographs (extension A, unified, compatibility,
# the supplementary planes), the iteration marks 々 and 〆, Hangul syllables, and Thai.
_UNSPACED = re.compile(
    "[\u3005\u3006\u3041-\u309f\u30a0-\u30fa\u30fc-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u0e01-\u0e4e"
    "\U00020000-\U0003134f]+"
)


def char_ngrams(run: str) -> list[str]:
    """Overlapping character bigrams of one unspaced run; a single character stays itself."""
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def tokenize_many(texts: list[str]) -> list[list[str]]:
    """Terms of many texts in one call (per-call overhead dominates short texts, so building
    a 10,000-document index one text at a time is several times slower): bm25s's
    tokenization of the spaced parts, character bigrams of the unspaced runs."""
    if not texts:
        return []
    # NFKC first: full-width Latin letters and digits become ASCII, half-width katakana
    # full-width, so one word is one term however it was typed.
    normal = [unicodedata.normalize("NFKC", text) for text in texts]
    unspaced = [
        [g for run in _UNSPACED.findall(t) for g in char_ngrams(run.lower())] for t in normal
    ]
    spaced = [_UNSPACED.sub(" ", text) for text in normal]
    tokens = bm25s.tokenize(
        spaced, stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False
    )
    return [[*doc, *extra] for doc, extra in zip(tokens, unspaced, strict=True)]


def tokenize(text: str) -> list[str]:
    return tokenize_many([text])[0]


class Bm25Index:
    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self.doc_ids: list[str] = []
        self._slot: dict[str, int] = {}  # doc_id -> slot of its live copy
        self._lengths = np.zeros(0, dtype=np.float32)
        self._alive = np.zeros(0, dtype=bool)
        # term -> (slots, term frequencies): appended to as documents arrive.
        self._postings: dict[str, tuple[list[int], list[int]]] = {}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # numpy copies, lazily
        self._total_length = 0.0

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._slot

    def add(self, doc_id: str, text: str) -> None:
        self.add_tokens(doc_id, tokenize(text))

    # -- a snapshot on disk: a new process loads it instead of re-tokenizing everything --
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The whole index as flat arrays (postings concatenated, term by term)."""
        terms = list(self._postings)
        counts = [len(self._postings[t][0]) for t in terms]
        size = len(self.doc_ids)
        return {
            "params": np.array([self.k1, self.b, self._total_length], dtype=np.float64),
            "tokenizer": np.array([TOKENIZER_VERSION], dtype=np.int64),
            "doc_ids": _json_array(self.doc_ids),
            "terms": _json_array(terms),
            "offsets": np.cumsum([0, *counts]).astype(np.int64),
            "slots": np.fromiter(
                (slot for t in terms for slot in self._postings[t][0]), np.int64, sum(counts)
            ),
            "tfs": np.fromiter(
                (tf for t in terms for tf in self._postings[t][1]), np.int64, sum(counts)
            ),
            "lengths": self._lengths[:size].copy(),
            "alive": self._alive[:size].copy(),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Bm25Index:
        """The index saved by ``to_arrays``; ValueError when it was tokenized by another
        version of ``tokenize_many`` (the caller rebuilds it from the documents)."""
        saved = arrays.get("tokenizer")
        version = int(saved[0]) if saved is not None and len(saved) == 1 else 1
        if version != TOKENIZER_VERSION:
            raise ValueError(
                f"BM25 index tokenized by version {version}, this code is {TOKENIZER_VERSION}"
            )
        k1, b, total_length = (float(x) for x in arrays["params"])
        index = cls(k1, b)
        index.doc_ids = _from_json_array(arrays["doc_ids"])
        index._lengths = arrays["lengths"].astype(np.float32)
        index._alive = arrays["alive"].astype(bool)
        index._slot = {index.doc_ids[s]: int(s) for s in np.flatnonzero(index._alive)}
        index._total_length = total_length
        offsets, slots, tfs = arrays["offsets"], arrays["slots"], arrays["tfs"]
        for i, term in enumerate(_from_json_array(arrays["terms"])):
            a, z = int(offsets[i]), int(offsets[i + 1])
            index._postings[term] = (slots[a:z].tolist(), tfs[a:z].tolist())
        return index

    def add_many(self, docs: list[tuple[str, str]]) -> None:
        """Add (doc_id, text) pairs, tokenized together."""
        for (doc_id, _), tokens in zip(docs, tokenize_many([t for _, t in docs]), strict=True):
            self.add_tokens(doc_id, tokens)

    def add_tokens(self, doc_id: str, tokens: list[str]) -> None:
        if doc_id in self._slot:
            self.remove(doc_id)
        slot = len(self.doc_ids)
        counts = Counter(tokens)
        self.doc_ids.append(doc_id)
        self._slot[doc_id] = slot
        length = sum(counts.values())
        self._lengths = _grow(self._lengths, slot, float(length))
        self._alive = _grow(self._alive, slot, True)
        self._total_length += length
        for term, tf in counts.items():
            slots, tfs = self._postings.setdefault(term, ([], []))
            slots.append(slot)
            tfs.append(tf)
            self._arrays.pop(term, None)

    def remove(self, doc_id: str) -> None:
        slot = self._slot.pop(doc_id)
        self._alive[slot] = False  # a tombstone; postings of dead slots are masked at query time
        self._total_length -= float(self._lengths[slot])

    def _posting(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        if term not in self._postings:
            return None
        if term not in self._arrays:
            slots, tfs = self._postings[term]
            self._arrays[term] = (np.asarray(slots), np.asarray(tfs, dtype=np.float32))
        return self._arrays[term]

    @property
    def mean_length(self) -> float:
        """Terms per live document on average (0 without documents)."""
        return self._total_length / len(self._slot) if self._slot else 0.0

    def known_share(self, query: str) -> float:
        """The share of the query's distinct terms that some live document holds (0 for a
        query without terms): how much of the request the user's own words cover."""
        terms = set(tokenize(query))
        if not terms:
            return 0.0
        known = 0
        for term in terms:
            posting = self._posting(term)
            known += posting is not None and bool(self._alive[posting[0]].any())
        return known / len(terms)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """The top-k (doc_id, score) by BM25, best first; documents scoring 0 are left out."""
        n_docs = len(self._slot)
        if n_docs == 0 or k <= 0:
            return []
        size = len(self.doc_ids)
        lengths = self._lengths[:size]
        norm = self.k1 * (1 - self.b + self.b * lengths / (self._total_length / n_docs))
        scores = np.zeros(size, dtype=np.float32)
        for term in set(tokenize(query)):
            posting = self._posting(term)
            if posting is None:
                continue
            slots, tfs = posting
            live = self._alive[slots]
            slots, tfs = slots[live], tfs[live]
            if len(slots) == 0:
                continue
            idf = np.log(1 + (n_docs - len(slots) + 0.5) / (len(slots) + 0.5))
            scores[slots] += idf * tfs / (tfs + norm[slots])
        return top_k(scores, self.doc_ids, k)


def top_k(scores: np.ndarray, doc_ids: list[str], k: int) -> list[tuple[str, float]]:
    """Best-first (doc_id, score) among positive scores; ties keep insertion order."""
    candidates = np.flatnonzero(scores > 0)
    if len(candidates) > k:
        part = np.argpartition(-scores[candidates], k - 1)[:k]
        candidates = candidates[part]
    order = candidates[np.lexsort((candidates, -scores[candidates]))]
    return [(doc_ids[i], float(scores[i])) for i in order]


def _json_array(values: list[str]) -> np.ndarray:
    """Strings as bytes of JSON: any id survives, and no pickle is needed to load them."""
    return np.frombuffer(json.dumps(values).encode(), dtype=np.uint8)


def _from_json_array(array: np.ndarray) -> list[str]:
    return list(json.loads(array.tobytes().decode()))


def _grow(array: np.ndarray, index: int, value: object) -> np.ndarray:
    """Set array[index], doubling capacity when full (amortized O(1) appends)."""
    if index >= len(array):
        grown = np.zeros(max(16, 2 * len(array)), dtype=array.dtype)
        grown[: len(array)] = array
        array = grown
    array[index] = value
    return array
