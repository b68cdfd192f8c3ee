"""Metadata of trained artifacts: one mechanism for every kind (text LoRA, DPO adapter,
DreamBooth-LoRA, textual inversion, concept tokens, recommenders).

Each artifact folder holds its weights in a standard format plus ``pgen_artifact.json``:
what it is, whose it is, the base model it was trained on and a fingerprint of the data it
came from. A consumer checks both before applying it; a stale artifact is refused with the
command that retrains it. The metadata file is written last, so a folder without it is a
half-written artifact and never used.

Every fingerprint and staleness rule lives here, as pure functions of the data (the
trainers and strategies read the data from the store and call them): documents-trained
adapters (``adapter_fingerprint``, ``task_adapter_fingerprint``), preference pairs
(``pairs_fingerprint``), reference images (``files_fingerprint``, ``subject_stale_reason``),
concept tokens (``concept_stale_reason``) and recommender training data
(``interactions_fingerprint``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from pgen.context.base import ArtifactStore, ContextStore

META_FILE = "pgen_artifact.json"


@dataclass(frozen=True)
class ArtifactMeta:
    kind: str  # lora, dpo, task-lora, dreambooth-lora, textual-inversion, ...
    user_id: str  # "" for artifacts trained over many users
    name: str
    base_model: str  # the identity of the model the weights apply to
    fingerprint: str  # of the data it was trained on
    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific (token, losses...)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def stale_reason(self, base_model: str, fingerprint: str | None = None) -> str | None:
        """Why the artifact no longer applies, or None when it does."""
        if self.base_model != base_model:
            return f"trained on {self.base_model}, not {base_model}"
        if fingerprint is not None and self.fingerprint != fingerprint:
            return "its training data changed since"
        return None


def write_meta(folder: Path, meta: ArtifactMeta) -> Path:
    """Write the metadata atomically (a reader never sees half a file)."""
    path = folder / META_FILE
    temporary = folder / f".{META_FILE}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(asdict(meta), indent=2, sort_keys=True, default=str))
    temporary.replace(path)
    return path


def read_meta(folder: Path) -> ArtifactMeta | None:
    """The folder's metadata, or None for a folder that holds no finished artifact."""
    path = folder / META_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return ArtifactMeta(**data)


def fingerprint(parts: Iterable[str | bytes]) -> str:
    """A stable digest of the training data (texts, content hashes, file bytes)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8") if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def files_fingerprint(paths: Iterable[str | Path]) -> str:
    """A digest of files' bytes, in the given order (reference images)."""
    return fingerprint(Path(path).read_bytes() for path in paths)


# -- documents-trained adapters (text LoRA, task LoRA) --------------------------------
def documents_parts(document_hashes: Mapping[str, str]) -> list[str]:
    """What a documents-trained adapter depends on: every document id and content hash."""
    return [f"{doc_id}:{document_hashes[doc_id]}" for doc_id in sorted(document_hashes)]


def adapter_fingerprint(
    task: str | None, document_hashes: Mapping[str, str], start: str | None = None
) -> str:
    """A user's adapter: the task's template, the user's documents and, for an adapter
    started from the shared task adapter, that adapter's fingerprint (``start``; "missing"
    when it is gone)."""
    parts = [f"task={task}", *documents_parts(document_hashes)]
    if start is not None:
        parts.append(f"from-task={start}")
    return fingerprint(parts)


def task_adapter_fingerprint(task: str | None, hashes: Mapping[str, Mapping[str, str]]) -> str:
    """The shared task adapter: the template and every user's documents (user -> hashes)."""
    parts = [f"task={task}"]
    parts += [p for user in sorted(hashes) for p in (user, *documents_parts(hashes[user]))]
    return fingerprint(parts)


ADAPTER_NAME = "default"  # one adapter of each kind per user; retraining replaces it


def task_adapter_path(store: ArtifactStore, task: str | None) -> Path:
    """The shared task adapter's folder (one per example template)."""
    return store.shared_path("task-lora", task or "documents")


def lora_fingerprint(
    store: ContextStore, user_id: str, task: str | None, from_task: bool = False
) -> str:
    """What the user's ``lora`` stands on now: their documents, the template and, for one
    started from the shared task adapter, that adapter (as it is now)."""
    start = None
    if from_task:
        meta = read_meta(task_adapter_path(store, task))
        start = meta.fingerprint if meta else "missing"
    return adapter_fingerprint(task, store.document_hashes(user_id), start)


def saved_lora_fingerprint(store: ContextStore, user_id: str, meta: ArtifactMeta) -> str:
    """``lora_fingerprint`` with the settings the saved adapter was trained with."""
    task, from_task = meta.settings.get("task"), bool(meta.settings.get("from_task", False))
    return lora_fingerprint(store, user_id, task, from_task)


# -- preference pairs (DPO) ------------------------------------------------------------
class PreferencePair(Protocol):
    @property
    def user_id(self) -> str: ...
    @property
    def prompt(self) -> str: ...
    @property
    def chosen(self) -> str: ...
    @property
    def rejected(self) -> str: ...


def pairs_fingerprint(pairs: Iterable[PreferencePair]) -> str:
    """The preference pairs an adapter learns from, in order."""
    return fingerprint(f"{p.user_id}\0{p.prompt}\0{p.chosen}\0{p.rejected}" for p in pairs)


# -- reference images (subject adapters, concept tokens) -------------------------------
def model_identity(name: str) -> str:
    """The identity of a base model named by a path or a Hub id: a local path resolved
    (so ``./m`` and ``/abs/m`` agree), a Hub id as written."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def subject_stale_reason(
    meta: Mapping[str, Any], base_model: str, image_paths: Sequence[str | Path]
) -> str:
    """Why a subject artifact no longer fits the loaded model and the subject ("" when it
    does): LoRA weights or an embedding trained on another base model, or on reference
    images that have changed since, would load without error and quietly render the wrong
    thing."""
    trained_on = str(meta.get("base_model", ""))
    if model_identity(trained_on) != model_identity(base_model):
        return f"it was trained on base model {trained_on!r}, not the loaded {base_model!r}"
    if meta.get("fingerprint") != files_fingerprint(image_paths):
        return "its reference images changed since it was trained"
    return ""


def concept_stale_reason(
    meta: Mapping[str, Any], base_model: str, references: Sequence[str]
) -> str | None:
    """Why concept tokens no longer apply (None when they do): trained on another
    vision-language model, or on other reference photos (their content hashes)."""
    if meta.get("base_model") != base_model:
        return f"were trained on {meta.get('base_model')!r}, not {base_model!r}"
    if meta.get("references") != list(references):
        return "predate changed reference photos"
    return None


# -- recommenders ---------------------------------------------------------------------
def interactions_fingerprint(
    user_ids: Sequence[str], item_ids: Sequence[str], sequences: Iterable[np.ndarray]
) -> str:
    """A hash of exactly what a recommender trains and is evaluated on."""
    digest = hashlib.sha256()
    digest.update("\0".join(user_ids).encode())
    digest.update("\0".join(item_ids).encode())
    for sequence in sequences:
        digest.update(sequence.astype(np.int64).tobytes() + b"|")
    return digest.hexdigest()[:16]


def read_subject_metadata(folder: Path) -> dict[str, Any]:
    """The artifact's metadata as one flat record: base model, fingerprint, the training
    settings under ``config`` and the subject's facts (token, weights, losses...)."""
    try:
        meta = read_meta(folder)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"{folder / META_FILE}: not a pgen artifact ({error})") from None
    if meta is None:
        raise ValueError(f"{folder}: no finished artifact ({META_FILE} is missing)")
    return {
        **meta.extra,
        "method": meta.kind,
        "base_model": meta.base_model,
        "fingerprint": meta.fingerprint,
        "config": meta.settings,
    }
