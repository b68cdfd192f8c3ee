"""Fixtures of the training tests: a store on disk, the tiny Llama (a fresh backend per
test, so each starts with an empty adapter cache) and tiny training settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgen.context import Document
from pgen.context.sqlite import SQLiteStore
from pgen.models.text import TransformersTextModel
from pgen.training.text_lora import LoraSettings

# A few steps at a high rate: enough for adapters to differ visibly on a random model.
TINY_LORA = LoraSettings(
    max_steps=6, learning_rate=2e-2, batch_size=2, dropout=0.0, epochs=3, progress=False
)


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    """A real local Ray (2 CPUs, loopback, no dashboard), started once: it is slow to start."""
    ray = pytest.importorskip("ray")
    # Workers import pgen and the tests' helpers: the path travels in their environment.
    env = {"PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "HF_HUB_OFFLINE": "1"}
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        object_store_memory=100 * 1024 * 1024,  # the smallest Ray takes: results are tiny
        runtime_env={"env_vars": env},
        logging_level="warning",
    )
    yield
    ray.shutdown()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(tmp_path / "pgen.sqlite") as opened:
        yield opened


@pytest.fixture
def model(tiny_llama: Path) -> TransformersTextModel:
    return TransformersTextModel(str(tiny_llama), name="tiny-llama", batch_size=4, max_adapters=2)


def documents(user_id: str, *texts: str, kind: str = "review") -> list[Document]:
    return [
        Document(user_id=user_id, doc_id=f"{user_id}-d{i}", kind=kind, title=f"note {i}", text=text)
        for i, text in enumerate(texts)
    ]
