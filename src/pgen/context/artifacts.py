"""Metadata of trained artifacts: one mechanism for every kind (text LoRA, DPO adapter,
DreamBooth-LoRA, textual inversion, concept tokens, recommenders).

Each artifact folder holds its weights in a standard format plus ``pgen_artifact.json``:
what it is, whose it is, the base model it was trained on and a fingerprint of the data it
came from. A consumer checks both before applying it; a stale artifact is refused with the
command that retrains it. The metadata file is written last, so a folder without it is a
half-written artifact and never used.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
