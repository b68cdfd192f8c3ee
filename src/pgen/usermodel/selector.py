"""``rspg``: a retriever selector (RSPG, after Salemi and Zamani's "retrieval selection
for personalized generation"). Per request it picks which retriever (``bm25``, ``dense``,
``recency``, ``memory`` or ``none``) and which k the ``rag`` strategy uses.

The selector is a small linear model over features of the request and the user's
documents (``FEATURES``): for every choice it predicts that choice's advantage (its
outcome minus the mean over all choices) and the best predicted choice wins. It is
trained by ``pgen bench rspg`` (``pgen.training.rspg``) on a training split's
downstream outcomes: the gold output's mean token log-likelihood under the text model,
given the prompt each choice builds. It holds numbers only (feature means and scales,
weights): no user's text, so nothing of a user stays in it.

It is found in the store's shared folder ``selector/rspg`` (``install_folder``); the
``rspg`` retriever loads it on first use and refuses one whose dense features came from
another embedding model.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pgen.context.artifacts import META_FILE, ArtifactMeta, read_meta, write_meta
from pgen.context.base import ContextStore
from pgen.errors import InvalidRequest, StaleArtifact
from pgen.usermodel.retrievers import Bm25Retriever, Hit, Retrievers

NO_RETRIEVER = "none"  # the choice of no documents at all
SELECTOR_KIND = "rspg"
SELECTOR_FILE = "selector.json"
SELECTOR_VERSION = 2  # 2: doc_words and question (tasks told apart)
# What the selector sees of a request (each documented in ``request_features``).
FEATURES = (
    "query_terms",
    "profile_docs",
    "doc_words",
    "question",
    "known_share",
    "bm25_top",
    "bm25_gap",
    "dense_top",
    "dense_gap",
)
TASK_FEATURES = ("doc_words", "question")  # added in version 2: what tells tasks apart


@dataclass(frozen=True)
class Choice:
    """A retriever and how many of its documents; ``none`` takes no documents (k 0)."""

    retriever: str
    k: int

    @property
    def name(self) -> str:
        return NO_RETRIEVER if self.retriever == NO_RETRIEVER else f"{self.retriever}@{self.k}"

    @classmethod
    def parse(cls, text: str) -> Choice:
        """``bm25@4`` or ``none``."""
        if text == NO_RETRIEVER:
            return cls(NO_RETRIEVER, 0)
        retriever, sep, k = text.partition("@")
        if not sep or not retriever or not k.isdigit() or int(k) < 1:
            raise ValueError(f"expected RETRIEVER@K (k >= 1) or none, got {text!r}")
        return cls(retriever, int(k))


def choice_grid(retrievers: Sequence[str], ks: Sequence[int]) -> list[Choice]:
    """Every retriever at every k, and ``none`` once (its k does not matter)."""
    grid = [Choice(NO_RETRIEVER, 0)] if NO_RETRIEVER in retrievers else []
    grid += [Choice(r, k) for r in retrievers if r != NO_RETRIEVER for k in ks]
    return grid


def request_features(retrievers: Retrievers, user_id: str, query: str) -> np.ndarray:
    """The request's features, in ``FEATURES`` order:

    * ``query_terms``: log(1 + the query's BM25 terms): short queries leave retrieval
      little to go on;
    * ``profile_docs``: log(1 + the user's documents): with few, every retriever returns
      the same ones;
    * ``doc_words``: log(1 + the mean terms per document), and ``question``: 1 when the
      query ends with "?": with ``profile_docs`` they tell kinds of request apart (short
      chat turns, long replies, reviews, abstracts; a question or a task), whose best
      retriever differs (a pooled selector without them learned one choice for all);
    * ``known_share``: the share of the query's terms found in the user's documents;
    * ``bm25_top``, ``bm25_gap``: log(1 + the best BM25 score) and the first score's lead
      over the second, as a share of the first: a confident lexical match;
    * ``dense_top``, ``dense_gap``: the best cosine and its lead over the second.
    """
    bm25 = retrievers.get("bm25")
    if not isinstance(bm25, Bm25Retriever):
        raise TypeError(f"rspg's features need the built-in bm25 retriever, not {bm25!r}")
    with bm25.using(user_id) as index:
        size, share, words = len(index), index.known_share(query), index.mean_length
        lexical = [score for _, score in index.search(query, 2)]
    dense = [hit.score for hit in retrievers.get("dense").retrieve(user_id, query, 2)]
    terms = len(set(query.split()))
    bm25_top = lexical[0] if lexical else 0.0
    bm25_gap = (lexical[0] - lexical[1]) / lexical[0] if len(lexical) > 1 and lexical[0] else 0.0
    dense_gap = dense[0] - dense[1] if len(dense) > 1 else 0.0
    values = [
        math.log1p(terms),
        math.log1p(size),
        math.log1p(words),
        float(query.rstrip().endswith("?")),
        share,
        math.log1p(max(bm25_top, 0.0)),
        bm25_gap,
        dense[0] if dense else 0.0,
        dense_gap,
    ]
    return np.array(values, dtype=np.float64)


@dataclass
class LinearSelector:
    """Per choice, a linear model of its advantage over standardized features."""

    choices: list[Choice]
    features: list[str]
    mean: np.ndarray  # (F,) feature means on the training split
    scale: np.ndarray  # (F,) their standard deviations (1 where a feature is constant)
    weights: np.ndarray  # (C, F)
    bias: np.ndarray  # (C,) each choice's mean advantage on the training split

    def scores(self, features: np.ndarray) -> np.ndarray:
        """(n, C) predicted advantages for (n, F) features."""
        standard = (np.atleast_2d(features) - self.mean) / self.scale
        return np.asarray(standard @ self.weights.T + self.bias)

    def choose(self, features: np.ndarray) -> list[Choice]:
        # Ties go to the earlier choice: the grid puts none and small k first.
        return [self.choices[int(i)] for i in np.argmax(self.scores(features), axis=1)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SELECTOR_VERSION,
            "choices": [c.name for c in self.choices],
            "features": list(self.features),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "bias": self.bias.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = SELECTOR_FILE) -> LinearSelector:
        """The selector ``to_dict`` wrote; a ValueError naming ``source`` and the field
        that is wrong."""

        def field(name: str, shape: tuple[int, ...]) -> np.ndarray:
            try:
                array = np.asarray(data[name], dtype=np.float64)
            except KeyError:
                raise ValueError(f"{source}: field {name!r} is missing") from None
            except (TypeError, ValueError):
                raise ValueError(f"{source}: field {name!r}: expected numbers") from None
            if array.shape != shape or not np.all(np.isfinite(array)):
                raise ValueError(f"{source}: field {name!r}: expected {shape} finite numbers")
            return array

        if data.get("version") != SELECTOR_VERSION:  # another feature set: not usable
            raise ValueError(
                f"{source}: field 'version': expected {SELECTOR_VERSION}, got "
                f"{data.get('version')!r}: retrain it with pgen bench rspg --install"
            )
        try:
            choices = [Choice.parse(str(name)) for name in data["choices"]]
            features = [str(name) for name in data["features"]]
        except KeyError as missing:
            raise ValueError(f"{source}: field {missing} is missing") from None
        except ValueError as error:
            raise ValueError(f"{source}: field 'choices': {error}") from None
        if list(features) != list(FEATURES):
            raise ValueError(f"{source}: field 'features': expected {list(FEATURES)}")
        c, f = len(choices), len(features)
        scale = field("scale", (f,))
        if np.any(scale <= 0):
            raise ValueError(f"{source}: field 'scale': expected positive numbers")
        return cls(
            choices,
            features,
            field("mean", (f,)),
            scale,
            field("weights", (c, f)),
            field("bias", (c,)),
        )


def save_selector(folder: Path, selector: LinearSelector, meta: ArtifactMeta) -> Path:
    """Write the selector, then its metadata last (a folder without it is half-written)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / META_FILE).unlink(missing_ok=True)
    partial = folder / f".{SELECTOR_FILE}.{os.getpid()}.tmp"
    partial.write_text(json.dumps(selector.to_dict(), indent=1))
    partial.replace(folder / SELECTOR_FILE)
    write_meta(folder, meta)
    return folder


def load_selector(folder: Path) -> tuple[LinearSelector, ArtifactMeta]:
    meta = read_meta(folder)
    if meta is None or meta.kind != SELECTOR_KIND:
        raise FileNotFoundError(
            f"{folder}: no retriever selector here: train one with pgen bench rspg --install"
        )
    path = folder / SELECTOR_FILE
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise FileNotFoundError(f"{path}: cannot read the selector ({error})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: line {error.lineno}: not valid JSON ({error.msg})") from None
    return LinearSelector.from_dict(data, str(path)), meta


def install_folder(store: ContextStore) -> Path:
    """Where a store keeps its retriever selector (shared: it belongs to no user)."""
    return store.shared_path("selector", SELECTOR_KIND)


@runtime_checkable
class Selecting(Protocol):
    """A retriever that picks another retriever and k per request (``rag`` asks it first,
    so the plan can say what was chosen)."""

    name: str

    def select(self, user_id: str, query: str) -> Choice: ...


class NoRetriever:
    """Registered as ``none``: no documents (``rag`` then uses the profile alone)."""

    name = NO_RETRIEVER

    def retrieve(self, user_id: str, query: str, k: int) -> list[Hit]:
        return []

    def forget(self, user_id: str) -> None:
        pass


class SelectingRetriever:
    """Registered as ``rspg``: the installed selector's choice for each request. The
    request's k is the selector's to choose."""

    name = SELECTOR_KIND

    def __init__(self, retrievers: Retrievers, folder: Path | None = None) -> None:
        self.retrievers = retrievers
        self.folder = folder or install_folder(retrievers.store)
        self._selector: LinearSelector | None = None

    @property
    def selector(self) -> LinearSelector:
        if self._selector is None:
            try:
                selector, meta = load_selector(self.folder)
            except FileNotFoundError as error:  # a request naming rspg in a store without
                raise InvalidRequest(str(error)) from None  # one: the caller's to fix
            except ValueError as error:  # an older feature set, or a damaged file
                raise StaleArtifact(str(error)) from None
            embedder = self.retrievers.embedder().model_id
            stale = meta.stale_reason(embedder)
            if stale:  # the dense features would mean something else
                raise StaleArtifact(
                    f"the retriever selector in {self.folder} was {stale}: "
                    "retrain it with pgen bench rspg --install"
                )
            self._selector = selector
        return self._selector

    def select(self, user_id: str, query: str) -> Choice:
        features = request_features(self.retrievers, user_id, query)
        return self.selector.choose(features)[0]

    def retrieve(self, user_id: str, query: str, k: int) -> list[Hit]:
        choice = self.select(user_id, query)
        if choice.retriever == NO_RETRIEVER:
            return []
        return self.retrievers.get(choice.retriever).retrieve(user_id, query, choice.k)

    def forget(self, user_id: str) -> None:
        pass  # holds nothing of any user
