"""Retrievers over one user's documents: bm25, dense, recency, hybrid (RRF), memory
(their chat turns, see pgen.usermodel.memory), none (no documents) and rspg (a trained
selector's choice of the others and k, see pgen.usermodel.selector), in one registry: a
new retriever is one ``register_retriever(name, factory)`` call, and ``RETRIEVERS`` (the
CLI's and the service's choices) always lists what is registered.

Indexes live in memory, one per user, and are brought up to date from the store on each
request: the store's per-user revision says whether anything changed, and a diff of
content hashes says what, so only new or edited documents are (re)indexed.
"""

from __future__ import annotations

import os
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, overload

import numpy as np
from tqdm import tqdm

from pgen.context.base import ContextStore, Revision, UserNotFoundError
from pgen.context.records import Document
from pgen.models.base import Embedder
from pgen.usermodel.bm25 import Bm25Index
from pgen.usermodel.dense import DenseIndex

RRF_K = 60  # the constant of reciprocal-rank fusion (Cormack et al., 2009)
EMBED_CHUNK = 512  # documents embedded (and stored) at a time; a bar shows from this many
SNAPSHOT_AFTER = 1000  # documents changed in one catch-up before an index is saved to disk
SNAPSHOT_FILE = "index.npz"
SNAPSHOT_VERSION = 1  # bump when Bm25Index.to_arrays changes


@dataclass(frozen=True)
class Hit:
    doc_id: str
    score: float


class Retriever(Protocol):
    name: str

    def retrieve(self, user_id: str, query: str, k: int) -> list[Hit]: ...

    def forget(self, user_id: str) -> None:
        """Drop everything held in memory about this user."""
        ...


def index_text(document: Document) -> str:
    return f"{document.title}\n{document.text}" if document.title else document.text


class _Index(Protocol):
    def __contains__(self, doc_id: str) -> bool: ...

    def remove(self, doc_id: str) -> None: ...


IndexT = TypeVar("IndexT", bound=_Index)


@dataclass
class _Entry(Generic[IndexT]):
    index: IndexT
    revision: Revision


class _IndexedRetriever(ABC, Generic[IndexT]):
    """Keeps one in-memory index per user in step with the store, incrementally."""

    name: str

    def __init__(self, store: ContextStore) -> None:
        self.store = store
        self._entries: dict[str, _Entry[IndexT]] = {}
        # One lock per user: catching an index up mutates it, and a search during that
        # would read half-updated postings (wrong scores, IndexError). Users don't wait
        # for each other.
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, user_id: str) -> threading.RLock:
        with self._locks_guard:
            return self._locks.setdefault(user_id, threading.RLock())

    @contextmanager
    def using(self, user_id: str) -> Iterator[IndexT]:
        """The user's index, up to date, and no other thread touching it in the block."""
        with self._lock(user_id):
            yield self._catch_up(user_id)

    @abstractmethod
    def _new_index(self) -> IndexT: ...

    @abstractmethod
    def _add(self, user_id: str, index: IndexT, changed: dict[str, str]) -> None:
        """Index these documents (doc_id -> content hash), new or edited."""

    def _load(self, user_id: str, incarnation: int) -> _Entry[IndexT] | None:
        """An index saved by an earlier process for this incarnation of the user, if any."""
        return None

    def _save(self, user_id: str, entry: _Entry[IndexT]) -> None:
        """Keep the index for the next process (called after large changes)."""

    def index(self, user_id: str) -> IndexT:
        """The user's index brought up to date (search it inside ``using`` when other
        threads may be catching it up at the same time)."""
        with self._lock(user_id):
            return self._catch_up(user_id)

    def _catch_up(self, user_id: str) -> IndexT:
        # The revision is read before the changes: a write in between is applied now and
        # again next time (adding a document twice replaces it), never missed.
        try:
            revision = self.store.revision(user_id)  # raises for an unknown user
        except UserNotFoundError:
            # Deleted (perhaps by another process): drop what this process holds of them.
            self._entries.pop(user_id, None)
            raise
        entry = self._entries.get(user_id)
        if entry is not None and -1 < entry.revision.number < self.store.deletions_pruned(user_id):
            entry = None  # deletions it has not seen were pruned: start again
        if entry is None or entry.revision.incarnation != revision.incarnation:
            # New to this process, or deleted and created again (by any process): start
            # from a saved index of this incarnation, else from nothing.
            entry = self._load(user_id, revision.incarnation) or _Entry(
                self._new_index(), Revision(revision.incarnation, -1)
            )
            self._entries[user_id] = entry
        if entry.revision == revision:
            return entry.index
        changed, deleted = self.store.document_changes(user_id, entry.revision.number)
        for doc_id in [*deleted, *changed]:
            if doc_id in entry.index:
                entry.index.remove(doc_id)
        self._add(user_id, entry.index, changed)
        entry.revision = revision
        if len(changed) >= SNAPSHOT_AFTER:
            self._save(user_id, entry)
        return entry.index

    def forget(self, user_id: str) -> None:
        with self._lock(user_id):
            self._entries.pop(user_id, None)


class Bm25Retriever(_IndexedRetriever[Bm25Index]):
    """BM25 over the user's documents. After a large change the index is saved next to the
    store (an artifact of the user, removed with them), so a new process loads it in
    milliseconds and catches up from its revision instead of re-tokenizing everything."""

    name = "bm25"

    def _new_index(self) -> Bm25Index:
        return Bm25Index()

    def _add(self, user_id: str, index: Bm25Index, changed: dict[str, str]) -> None:
        documents = self.store.documents(user_id, list(changed))
        index.add_many([(d.doc_id, index_text(d)) for d in documents])

    def _load(self, user_id: str, incarnation: int) -> _Entry[Bm25Index] | None:
        folder = self.store.artifacts(user_id).get(("index", self.name))
        path = folder / SNAPSHOT_FILE if folder else None
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as saved:
                arrays = {key: saved[key] for key in saved.files}
            saved_incarnation, number, version = (int(x) for x in arrays.pop("revision"))
            if saved_incarnation != incarnation or version != SNAPSHOT_VERSION:
                return None  # another life of this user id, or an older format
            return _Entry(Bm25Index.from_arrays(arrays), Revision(incarnation, number))
        except (OSError, ValueError, KeyError):
            return None  # unreadable (a crash mid-write elsewhere): rebuild instead

    def _save(self, user_id: str, entry: _Entry[Bm25Index]) -> None:
        folder = self.store.artifact_path(user_id, "index", self.name)
        revision = [entry.revision.incarnation, entry.revision.number, SNAPSHOT_VERSION]
        arrays = {**entry.index.to_arrays(), "revision": np.array(revision, dtype=np.int64)}
        # A name no other thread or process writes: each writes its own, whole, file.
        partial = folder / f"{SNAPSHOT_FILE}.{os.getpid()}.{uuid.uuid4().hex}.partial.npz"
        try:
            np.savez(partial, **arrays)  # type: ignore[arg-type]
            partial.replace(folder / SNAPSHOT_FILE)  # atomic: readers see old or new, whole
        finally:
            partial.unlink(missing_ok=True)
        # The snapshot has seen every deletion up to its revision: an index older than
        # that now starts from the snapshot, so those deletions need not be kept.
        self.store.prune_deletions(user_id, entry.revision.number)

    def retrieve(self, user_id: str, query: str, k: int) -> list[Hit]:
        with self.using(user_id) as index:
            return [Hit(d, s) for d, s in index.search(query, k)]


class DenseRetriever(_IndexedRetriever[DenseIndex]):
    """Cosine similarity of embeddings; each document is embedded once per content and model,
    and the vectors persist in the store, so a restart re-reads instead of re-embedding."""

    name = "dense"

    def __init__(self, store: ContextStore, embedder: Embedder) -> None:
        super().__init__(store)
        self.embedder = embedder

    def _new_index(self) -> DenseIndex:
        return DenseIndex(self.embedder.dim)

    def _add(self, user_id: str, index: DenseIndex, changed: dict[str, str]) -> None:
        model_id, dim = self.embedder.model_id, self.embedder.dim
        stored = self.store.embeddings(user_id, model_id, dim, list(changed))
        # Only documents without a vector for their current content are read and embedded.
        stale = [
            doc_id for doc_id, digest in changed.items() if stored.get(doc_id, ("",))[0] != digest
        ]
        missing = self.store.documents(user_id, stale) if stale else []
        # A large user's first embedding takes minutes on a CPU: show it, and store each
        # chunk as it is done so an interrupted run keeps what it embedded.
        with tqdm(
            total=len(missing),
            desc=f"embedding {user_id}'s documents",
            unit="doc",
            disable=len(missing) < EMBED_CHUNK,
        ) as bar:
            for start in range(0, len(missing), EMBED_CHUNK):
                chunk = missing[start : start + EMBED_CHUNK]
                vectors = self.embedder.embed([index_text(d) for d in chunk])
                rows = [(d.doc_id, d.content_hash, v) for d, v in zip(chunk, vectors, strict=True)]
                self.store.put_embeddings(user_id, model_id, rows)
                stored.update({doc_id: (digest, vec) for doc_id, digest, vec in rows})
                bar.update(len(chunk))
        # A document deleted since ``changed`` was read has no vector: it stays out.
        present = [doc_id for doc_id in changed if doc_id in stored]
        index.add_many(present, [stored[doc_id][1] for doc_id in present])

    def retrieve(self, user_id: str, query: str, k: int) -> list[Hit]:
        vector = self.embedder.embed([query])[0]
        with self.using(user_id) as index:
            return [Hit(d, s) for d, s in index.search(vector, k)]


class RecencyRetriever:
    """The user's k most recent documents, whatever the query."""

    name = "recency"

    def __init__(self, store: ContextStore) -> None:
        self.store = store

    def retrieve(self, user_id: str, query: str, k: int) -> list[Hit]:
        ranked = self.store.recent_doc_ids(user_id, k)
        return [Hit(doc_id, 1.0 / (rank + 1)) for rank, doc_id in enumerate(ranked)]

    def forget(self, user_id: str) -> None:
        pass  # nothing held in memory


def rank_fusion(rankings: list[list[str]], k: int) -> list[Hit]:
    """Reciprocal-rank fusion of rankings (doc ids, best first): the ``k`` best."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking):
            fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    best = sorted(fused.items(), key=lambda pair: (-pair[1], pair[0]))[:k]
    return [Hit(doc_id, score) for doc_id, score in best]


class HybridRetriever:
    """Reciprocal-rank fusion of lexical and dense rankings."""

    name = "hybrid"

    def __init__(self, parts: list[Retriever], depth: int = 50) -> None:
        self.parts = parts
        self.depth = depth

    def retrieve(self, user_id: str, query: str, k: int) -> list[Hit]:
        rankings = [
            [hit.doc_id for hit in part.retrieve(user_id, query, max(k, self.depth))]
            for part in self.parts
        ]
        return rank_fusion(rankings, k)

    def forget(self, user_id: str) -> None:
        for part in self.parts:
            part.forget(user_id)


RetrieverFactory = Callable[["Retrievers"], Retriever]
_FACTORIES: dict[str, RetrieverFactory] = {}


def register_retriever(name: str, factory: RetrieverFactory) -> RetrieverFactory:
    """Make ``name`` a retriever: ``factory(retrievers)`` builds it for one store, from
    ``retrievers.store``, ``retrievers.embedder()`` and other retrievers (``.get``).
    Registering a name again replaces it."""
    _FACTORIES[name] = factory
    return factory


class _Names(Sequence[str]):
    """The registered retriever names, read live (a retriever registered later shows)."""

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return list(_FACTORIES)[index]

    def __len__(self) -> int:
        return len(_FACTORIES)

    def __contains__(self, name: object) -> bool:
        return name in _FACTORIES

    def __repr__(self) -> str:
        return repr(tuple(_FACTORIES))


RETRIEVERS: Sequence[str] = _Names()


class Retrievers:
    """The retrievers of one store, built on first use (dense loads an embedding model)."""

    def __init__(self, store: ContextStore, embedder: Callable[[], Embedder]) -> None:
        self.store = store
        self._embedder = embedder
        self._built: dict[str, Retriever] = {}
        self._building = threading.RLock()  # one retriever of each kind, however many threads

    def embedder(self) -> Embedder:
        return self._embedder()

    def get(self, name: str) -> Retriever:
        if name not in _FACTORIES:
            raise ValueError(f"unknown retriever {name!r}; choose from {', '.join(RETRIEVERS)}")
        with self._building:
            if name not in self._built:
                self._built[name] = _FACTORIES[name](self)
            return self._built[name]

    def forget(self, user_id: str) -> None:
        for retriever in self._built.values():
            retriever.forget(user_id)


def _memory(retrievers: Retrievers) -> Retriever:
    from pgen.usermodel.memory import MemoryRetriever  # the user's remembered chat turns

    return MemoryRetriever(retrievers.store, retrievers.get)


register_retriever("bm25", lambda r: Bm25Retriever(r.store))
register_retriever("dense", lambda r: DenseRetriever(r.store, r.embedder()))
register_retriever("recency", lambda r: RecencyRetriever(r.store))
register_retriever("hybrid", lambda r: HybridRetriever([r.get("bm25"), r.get("dense")]))
register_retriever("memory", _memory)


def _none(retrievers: Retrievers) -> Retriever:
    from pgen.usermodel.selector import NoRetriever  # no documents: the profile alone

    return NoRetriever()


def _rspg(retrievers: Retrievers) -> Retriever:
    from pgen.usermodel.selector import SelectingRetriever  # the store's trained selector

    return SelectingRetriever(retrievers)


register_retriever("none", _none)
register_retriever("rspg", _rspg)
