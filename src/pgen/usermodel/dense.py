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

    def add(self, doc_id: str, vector: np.ndarray) -> None:
        if vector.shape != (self.dim,):
            raise ValueError(
                f"vector for {doc_id!r} has shape {vector.shape}, index is {self.dim}-d"
            )
        if doc_id in self._slot:
            self.remove(doc_id)
        slot = len(self.doc_ids)
        if slot >= len(self._vectors):  # double the capacity: amortized O(1) appends
            grown = np.zeros((max(16, 2 * slot), self.dim), dtype=np.float32)
            grown[:slot] = self._vectors[:slot]
            self._vectors = grown
            alive = np.zeros(len(grown), dtype=bool)
            alive[:slot] = self._alive[:slot]
            self._alive = alive
        self._vectors[slot] = vector
        self._alive[slot] = True
        self.doc_ids.append(doc_id)
        self._slot[doc_id] = slot

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
