"""Gathered dpo: three users' preference adapters trained in one pass equal the same
users trained one at a time (same seeds, order, optimizer, β and steps); one of them
starts from their own lora; each saves the per-user trainer's metadata, learns from its
own pairs, and raises its held-out margin."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from pgen.context import Feedback
from pgen.context.artifacts import META_FILE, read_meta
from pgen.context.sqlite import SQLiteStore
from pgen.models.lora_gather import adapter_weights
from pgen.models.text import TransformersTextModel
from pgen.training.dpo import train_user_dpo
from pgen.training.gathered_dpo import train_dpo_group
from pgen.training.gathered_lora import Gathering
from pgen.training.text_lora import train_user_lora

from .conftest import TINY_LORA, documents
from .test_dpo import TINY_DPO, pairs
from .test_gathered_training import TOLERANCE


def swapped(user_id: str, count: int) -> list[Feedback]:
    """The opposite taste: the complaint chosen."""
    return [
        f.model_copy(update={"chosen": f.rejected, "rejected": f.chosen})
        for f in pairs(user_id, count)
    ]


def test_gathered_dpo_equals_dpo_one_user_at_a_time(
    store: SQLiteStore, model: TransformersTextModel
) -> None:
    store.add([*pairs("ann"), *swapped("bob", 8), *pairs("cy", 6)])
    store.add(documents("cy", "great battery", "great screen"))
    train_user_lora(store, "cy", model, TINY_LORA)  # cy's dpo starts from it
    settings = {
        "ann": TINY_DPO,
        "bob": replace(TINY_DPO, beta=0.5, max_steps=3),
        "cy": replace(TINY_DPO, learning_rate=5e-3, lora=TINY_LORA),
    }
    users = list(settings)
    alone = {}
    for user in users:
        (folder,) = train_dpo_group(
            store, [(user, settings[user])], model, Gathering(batch_users=1)
        )
        alone[user] = (adapter_weights(folder), read_meta(folder))
        (folder / META_FILE).unlink()  # no finished adapter: trained again below
    folders = train_dpo_group(
        store, [(u, settings[u]) for u in users], model, Gathering(batch_users=3)
    )
    for user, folder in zip(users, folders, strict=True):
        expected, meta_alone = alone[user]
        got, meta = adapter_weights(folder), read_meta(folder)
        assert meta is not None and meta_alone is not None and meta.user_id == user
        for key in expected:
            assert torch.allclose(got[key], expected[key], atol=TOLERANCE, rtol=0), key
        assert meta.extra["after"] == pytest.approx(meta_alone.extra["after"], abs=1e-4)
        assert meta.fingerprint == meta_alone.fingerprint
    metas = {u: read_meta(f) for u, f in zip(users, folders, strict=True)}
    assert metas["cy"].extra["started_from"] == "lora"  # type: ignore[union-attr]
    assert metas["ann"].extra["started_from"] == "fresh lora"  # type: ignore[union-attr]
    assert metas["bob"].extra["train_pairs"] == 6 and metas["ann"].extra["train_pairs"] == 7  # type: ignore[union-attr]
    for user in ("ann", "bob"):  # both tastes learned, each from its own pairs
        extra = metas[user].extra  # type: ignore[union-attr]
        assert extra["after"]["margin"] > extra["before"]["margin"]


def test_gathered_dpo_metadata_is_the_per_user_trainers(
    store: SQLiteStore, model: TransformersTextModel
) -> None:
    store.add([*pairs("ann"), *pairs("bob")])
    per_user = read_meta(train_user_dpo(store, "ann", model, TINY_DPO))
    gathered = read_meta(train_dpo_group(store, [("bob", TINY_DPO), ("ann", TINY_DPO)], model)[0])
    assert per_user is not None and gathered is not None
    assert set(gathered.extra) - set(per_user.extra) == {"gathered"}
    assert gathered.settings == per_user.settings and gathered.kind == "dpo"


def test_train_many_gathers_dpo_users_and_reports_progress_and_effect(
    store: SQLiteStore, model: TransformersTextModel
) -> None:
    from pgen.engine import Engine
    from pgen.training.gathered import Progress
    from pgen.training.registry import TrainRequest

    store.add([*pairs("ann"), *swapped("bob", 8)])
    store.add(documents("ann", "great battery", "great screen"))
    engine = Engine(store, model, lambda: pytest.fail("no embedder"))  # type: ignore[arg-type]
    settings = replace(TINY_DPO, max_steps=2)
    requests = [TrainRequest(u, "dpo", settings=settings) for u in ("ann", "bob")]
    seen: list[Progress] = []
    results = engine.train_many(requests, batch_users=2, progress=seen.append)
    assert [r.user_id for r in results] == ["ann", "bob"]
    assert all(r.meta["gathered"] == 2 for r in results)
    assert [(p.done, p.in_batch) for p in seen] == [(0, 2), (2, 0)]  # one batch, 2 steps
    effect = results[0].meta["effect"]  # ann has documents: their loss, before and after
    assert effect["loss_on"] == "the user's documents (not trained on)" and effect["documents"] == 2
    assert effect["probes"] == 8 and 0 <= effect["probes_changed"] <= 1
    assert "loss_before" not in results[1].meta["effect"]  # bob has none
