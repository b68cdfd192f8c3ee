"""Gathered lora training: three users trained in one pass get the adapters they get when
trained alone (same seeds, data order and optimizer); each adapter is a plain PEFT folder
with the per-user trainer's metadata, learned from its own user's documents only; a user
who finishes leaves the batch and a queued one takes the place; a stop between steps
saves nobody half-trained, and the run again trains only who is left."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from pgen.context.artifacts import META_FILE, read_meta
from pgen.context.sqlite import SQLiteStore
from pgen.models.lora_gather import adapter_weights
from pgen.models.text import TransformersTextModel
from pgen.training.gathered import Progress
from pgen.training.gathered_lora import Gathering, train_lora_group
from pgen.training.stopping import TrainingCancelled
from pgen.training.text_lora import train_user_lora

from .conftest import TINY_LORA, documents

# Float tolerance: both paths compute the same sums in another order (PEFT's F.linear
# against batched matmuls, other padding widths), a few ulps per step, after Adam.
TOLERANCE = 1e-5

TEXTS = {
    "ann": ("the battery lasts long", "the screen is bright", "great sound", "ok"),
    "bob": ("politics sports business and more words here", "1 2 3 4 5", "rank them"),
    "cy": ("would not buy again", "poor battery", "you are a helpful assistant", "no", "yes"),
}


@pytest.fixture
def users(store: SQLiteStore) -> list[str]:
    for user, texts in TEXTS.items():
        store.add(documents(user, *texts))
    return list(TEXTS)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return adapter_weights(folder)


def test_gathered_adapters_equal_adapters_trained_alone(
    store: SQLiteStore, model: TransformersTextModel, users: list[str], tmp_path: Path
) -> None:
    # Per-user settings differ (rate, steps, batch, seed): each keeps its own.
    settings = {
        "ann": TINY_LORA,
        "bob": replace(TINY_LORA, learning_rate=1e-2, max_steps=3, seed=3),
        "cy": replace(TINY_LORA, batch_size=3, max_steps=5),
    }
    alone = {}
    for user in users:
        folder = train_user_lora(store, user, model, settings[user])
        alone[user] = (weights(folder), read_meta(folder))
        (folder / META_FILE).unlink()  # no finished adapter: the gathered run trains them all
    seen: list[Progress] = []
    gathering = Gathering(batch_users=2, progress=seen.append)
    folders = train_lora_group(store, [(u, settings[u]) for u in users], model, gathering)
    assert [read_meta(f).user_id for f in folders] == users  # type: ignore[union-attr]
    for user, folder in zip(users, folders, strict=True):
        expected, meta_alone = alone[user]
        got = weights(folder)
        assert got.keys() == expected.keys()
        for key in expected:
            assert torch.allclose(got[key], expected[key], atol=TOLERANCE, rtol=0), key
        meta = read_meta(folder)
        assert meta is not None and meta_alone is not None
        assert meta.fingerprint == meta_alone.fingerprint and meta.settings == meta_alone.settings
        assert meta.extra["doc_ids"] == meta_alone.extra["doc_ids"]  # own documents only
        assert all(d.startswith(f"{user}-") for d in meta.extra["doc_ids"])
        assert meta.extra["steps"] == meta_alone.extra["steps"]
        assert meta.extra["last_loss"] == pytest.approx(meta_alone.extra["last_loss"], abs=1e-5)
    # The tolerance tells adapters apart: two users' adapters differ by far more.
    ann, cy = weights(folders[0]), weights(folders[2])
    assert max(float((ann[k] - cy[k]).abs().max()) for k in ann) > 100 * TOLERANCE
    # Two in the batch, the third queued until bob (3 steps) leaves; all done at the end.
    assert seen[0].in_batch == 2 and seen[0].queued == 1
    assert seen[-1].done == 3 and seen[-1].in_batch == 0 and seen[-1].eta_seconds == 0


def test_a_stopped_run_saves_nobody_half_trained_and_resumes_with_who_is_left(
    store: SQLiteStore, model: TransformersTextModel, users: list[str]
) -> None:
    group = [(u, TINY_LORA) for u in users]
    seen: list[Progress] = []
    # One user at a time, in the requests' order: ann's 6 steps, then bob's; stopped
    # before bob's third step, with bob half-trained and cy queued.
    stopping = Gathering(
        batch_users=1, progress=seen.append, should_stop=lambda: bool(seen and seen[-1].steps == 8)
    )
    with pytest.raises(TrainingCancelled):
        train_lora_group(store, group, model, stopping)
    assert (seen[-1].done, seen[-1].in_batch, seen[-1].queued) == (1, 1, 1)
    assert trained(store, users) == {"ann"}
    ann_meta = read_meta(store.artifacts("ann")[("lora", "default")])
    again: list[Progress] = []
    folders = train_lora_group(store, group, model, Gathering(batch_users=1, progress=again.append))
    assert [read_meta(f).user_id for f in folders] == users  # type: ignore[union-attr]
    assert again[0].done + again[0].in_batch + again[0].queued == 2  # ann was not retrained
    assert read_meta(folders[0]) == ann_meta


def trained(store: SQLiteStore, users: list[str]) -> set[str]:
    """Users with a finished lora (metadata is written last: a torn folder has none)."""
    folders = {u: store.artifacts(u).get(("lora", "default")) for u in users}
    return {u for u, f in folders.items() if f is not None and read_meta(f) is not None}


def test_train_stale_gathers_users_and_reports_what_the_adapters_change(
    tmp_path: Path, tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:

    from .test_train_cli import run

    with SQLiteStore(tmp_path / "pgen.sqlite") as store:
        for user, texts in TEXTS.items():
            store.add(documents(user, *texts))
    quick = ["--max-steps", "2", "--lr", "0.05"]
    for user in ("ann", "bob"):
        assert run(tmp_path, tiny_llama, "train", "--user", user, *quick) == 0
    capsys.readouterr()
    with SQLiteStore(tmp_path / "pgen.sqlite") as store:  # both adapters fall behind
        store.add(documents("ann", "one more note", kind="note"))
        store.add(documents("bob", "and another", kind="note"))
    argv = ["train", "--stale", "--batch-users", "2", *quick]
    assert run(tmp_path, tiny_llama, *argv) == 0
    out = capsys.readouterr().out
    assert "users done 2, in the batch 0, queued 0" in out  # one gathered group of two
    assert "users done 0, in the batch 2, queued 0" in out
    assert "retrained 2 stale adapters" in out
    assert out.count("greedy replies changed on") == 2
    assert out.count("loss on ") == 2 and "training documents (too few to hold out)" in out
    with SQLiteStore(tmp_path / "pgen.sqlite") as store:
        metas = [read_meta(store.artifacts(u)[("lora", "default")]) for u in ("ann", "bob")]
        folder = store.artifacts("ann")[("lora", "default")]
    assert all(m is not None and m.extra["gathered"] == 2 for m in metas)
    assert run(tmp_path, tiny_llama, "delete-user", "ann") == 0
    assert not folder.exists()  # a gathered user's adapter goes with them
