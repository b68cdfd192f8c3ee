"""Shared tests every registered text strategy goes through (a new strategy is covered by
registering it): its input names the instruction, carries only its own user's context, fits
the prompt budget, and its output records provenance in the one shape."""

from __future__ import annotations

import pytest

from pgen.components import template_tokens
from pgen.context import Document, User
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.models.base import AdapterRef, GenerationSettings
from pgen.models.text import TransformersTextModel
from pgen.personalize import TextRequest, all_strategies, strategy_names
from pgen.run.modalities import modality_names

TEXT_STRATEGIES = [s.name for s in all_strategies() if s.modality == "text"]
SHORT = GenerationSettings(max_new_tokens=4)
PROVENANCE_KEYS = {"documents", "items", "subjects", "artifacts", "model", "notes"}


@pytest.fixture
def engine(store: SQLiteStore, tiny_model: TransformersTextModel) -> Engine:
    records: list[User | Document] = []
    for user, canary in (("ana", "zebracanary"), ("raj", "otterwhistle")):
        records.append(User(user_id=user, profile={"city": f"{canary} town"}))
        records += [
            Document(user_id=user, doc_id=f"{user}-{i}", text=f"battery {canary} note {i}")
            for i in range(3)
        ]
    store.add(records)
    return Engine(store, tiny_model, lambda: pytest.fail("no dense retrieval"), prompt_tokens=160)


def test_the_registry_names_text_and_image_strategies() -> None:
    assert strategy_names("text")[:3] == ["none", "rag", "profile"]
    assert strategy_names("image")[:3] == ["none", "subject", "keywords"]
    assert strategy_names("vision") == ["none", "concepts", "concept-tokens"]
    for strategy in all_strategies():
        assert strategy.description and strategy.modality in modality_names()


@pytest.mark.parametrize("name", TEXT_STRATEGIES)
def test_a_text_strategy_keeps_to_its_user_and_fits_the_budget(engine: Engine, name: str) -> None:
    requests = [
        TextRequest(user, "write about the battery", strategy=name) for user in ("ana", "raj")
    ]
    prepared = engine.prepare(requests, SHORT)
    budget = engine.bench.tools(SHORT).prompt_budget
    model = engine.text_model
    for request, item, foreign in zip(
        requests, prepared, ("otterwhistle", "zebracanary"), strict=True
    ):
        # The instruction is the user's turn (the author frame asks it as a task done for
        # the user, in quotes).
        assert item.chat is not None and "write about" in item.chat[-1].content
        text = "\n".join(message.content for message in item.chat)
        assert foreign not in text  # no other user's context, ever
        assert all(doc.startswith(f"{request.user_id}-") for doc in item.provenance.documents)
        used = sum(model.count_tokens(m.content) for m in item.chat)
        assert used + template_tokens(model) <= budget + 8
        # No user here has trained weights: a strategy that applies them runs on the base.
        assert item.adapter is None or isinstance(item.adapter, AdapterRef)
        assert item.adapter is None


@pytest.mark.parametrize("name", TEXT_STRATEGIES)
def test_a_text_strategy_output_is_saved_with_provenance(engine: Engine, name: str) -> None:
    result = engine.generate("ana", "write about the battery", strategy=name, generation=SHORT)
    assert result.provenance.model == f"{engine.text_model.name}+__base__"
    stored = engine.store.output("ana", result.output_id or "")
    assert set(stored.provenance) >= PROVENANCE_KEYS
    assert stored.provenance["documents"] == result.provenance.documents
    assert stored.text == result.text and stored.strategy == name
