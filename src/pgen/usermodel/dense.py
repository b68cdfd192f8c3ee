"""An incremental dense index over one user's document embeddings (cosine similarity)."""

from __future__ import annotations

import numpy as np

from pgen.usermodel.bm25 import top_k


class DenseIndex:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.doc_ids: list[str] = []
        self._slot: dict[str, int] = {}
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        self._alive = np.zeros(0, dtype=bool)

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._slot

    def add(self, doc_id: str, vector: np.ndarray) -> None:
        self.add_many([doc_id], [vector])

    def add_many(self, doc_ids: list[str], vectors: list[np.ndarray]) -> None:
        """Add documents' vectors in one copy (a new process re-reads thousands at once)."""
        for doc_id, vector in zip(doc_ids, vectors, strict=True):
            if vector.shape != (self.dim,):
                raise ValueError(
                    f"vector for {doc_id!r} has shape {vector.shape}, index is {self.dim}-d"
                )
        for doc_id in dict.fromkeys(doc_ids):
            if doc_id in self._slot:
                self.remove(doc_id)
        # The last vector given for an id wins, as with one add after another.
        last = {doc_id: i for i, doc_id in enumerate(doc_ids)}
        ids, rows = list(last), list(last.values())
        start, end = len(self.doc_ids), len(self.doc_ids) + len(ids)
        if end > len(self._vectors):  # double the capacity: amortized O(1) appends
            capacity = max(16, 2 * len(self._vectors), end)
            grown = np.zeros((capacity, self.dim), dtype=np.float32)
            grown[:start] = self._vectors[:start]
            self._vectors = grown
            alive = np.zeros(capacity, dtype=bool)
            alive[:start] = self._alive[:start]
            self._alive = alive
        if ids:
            self._vectors[start:end] = np.stack([vectors[i] for i in rows])
        self._alive[start:end] = True
        self.doc_ids.extend(ids)
        self._slot.update({doc_id: start + i for i, doc_id in enumerate(ids)})

    def remove(self, doc_id: str) -> None:
        self._alive[self._slot.pop(doc_id)] = False

    def search(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        size = len(self.doc_ids)
        if not self._slot or k <= 0:
            return []
        # Shift cosine from [-1, 1] to [0, 2] so top_k's "positive scores" keeps every live doc.
        scores = self._vectors[:size] @ query.astype(np.float32) + 1.0
        scores[~self._alive[:size]] = 0.0
        return [(doc_id, score - 1.0) for doc_id, score in top_k(scores, self.doc_ids, k)]
