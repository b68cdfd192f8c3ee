"""Fixtures of the foundation tests: a store on disk, the tiny model, the real MiniLM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pgen.context import Document
from pgen.context.sqlite import SQLiteStore
from pgen.models.base import Embedder
from pgen.models.text import TransformersTextModel


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(tmp_path / "pgen.sqlite") as opened:
        yield opened


@pytest.fixture(scope="session")
def tiny_model(tiny_llama: Path) -> TransformersTextModel:
    return TransformersTextModel(str(tiny_llama), name="tiny-llama", batch_size=4)


@pytest.fixture(scope="session")
def minilm() -> Embedder:
    from pgen.models.embedding import SentenceEmbedder

    return SentenceEmbedder()


def docs(user_id: str, *texts: str, prefix: str = "d") -> list[Document]:
    return [
        Document(user_id=user_id, doc_id=f"{prefix}{i}", text=text) for i, text in enumerate(texts)
    ]
