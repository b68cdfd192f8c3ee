"""Delete-user removes the adapters of others that were trained on the user's data: the
shared task adapter and a cohort member's dpo adapter; adapters without them stay."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgen.context import Document, User
from pgen.context.artifacts import ArtifactMeta, read_meta, write_meta
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine


def _adapter(folder: Path, kind: str, user_id: str, **extra: object) -> Path:
    (folder / "adapter_model.safetensors").write_bytes(b"weights of " + user_id.encode())
    write_meta(folder, ArtifactMeta(kind, user_id, "adapter", "base", "f", extra=dict(extra)))
    return folder


def test_delete_user_removes_adapters_that_hold_their_data(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "pgen.sqlite")
    store.add(
        [User(user_id=u) for u in ("ana", "bob", "cy")]
        + [Document(user_id="ana", doc_id="d1", text="ana's canary zebrawhistle")]
    )
    task = _adapter(
        store.shared_path("task-lora", "documents"), "task-lora", "", user_ids=["ana", "bob"]
    )
    other_task = _adapter(
        store.shared_path("task-lora", "LaMP_2"), "task-lora", "", user_ids=["bob"]
    )
    bob_dpo = _adapter(store.artifact_path("bob", "dpo", "adapter"), "dpo", "bob", cohort=["ana"])
    cy_dpo = _adapter(store.artifact_path("cy", "dpo", "adapter"), "dpo", "cy", cohort=[])
    engine = Engine(store, lambda: pytest.fail("no model"), lambda: pytest.fail("no embedder"))

    counts = engine.delete_user("ana")

    assert counts["shared_adapters"] == 2
    assert not task.exists() and not bob_dpo.exists()
    assert read_meta(other_task) is not None and read_meta(cy_dpo) is not None
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert (
                b"zebrawhistle" not in path.read_bytes()
                and b"weights of ana" not in path.read_bytes()
            )
