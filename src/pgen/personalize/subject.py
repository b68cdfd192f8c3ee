"""The ``subject`` strategy: images of a user's own subject ("my dog Rex") from the reference
images in their context, by DreamBooth-LoRA, textual inversion (both trained per user and
subject, stored as artifacts) or IP-Adapter (zero-shot from the reference images).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgen.context.records import Subject
from pgen.context.base import ContextStore
from pgen.models.image import DiffusersImageModel, ImageGenerationConfig, ImageOutput
from pgen.personalize import subject_dreambooth, subject_inversion
from pgen.personalize.subject_train import (
    METADATA_FILE,
    SubjectTrainingConfig,
    load_reference_images,
    read_metadata,
    stale_reason,
)

Trainer = Callable[[DiffusersImageModel, Subject, Path, SubjectTrainingConfig], dict[str, Any]]
TRAINERS: dict[str, Trainer] = {
    subject_dreambooth.METHOD: subject_dreambooth.train_dreambooth_lora,
    subject_inversion.METHOD: subject_inversion.train_textual_inversion,
}
IP_ADAPTER = "ip-adapter"
METHODS = (*TRAINERS, IP_ADAPTER)


@dataclass(frozen=True)
class IPAdapterSpec:
    """Where the IP-Adapter weights are: a Hub id or a local folder laid out like
    h94/IP-Adapter (``<subfolder>/<weight_name>`` and ``<subfolder>/image_encoder``)."""

    repo: str = "h94/IP-Adapter"
    subfolder: str = "models"
    weight_name: str = "ip-adapter_sd15.safetensors"
    scale: float = 0.6

    @classmethod
    def for_model(
        cls,
        model: DiffusersImageModel,
        repo: str | None = None,
        *,
        subfolder: str | None = None,
        weight_name: str | None = None,
        scale: float = 0.6,
    ) -> IPAdapterSpec:
        """The h94 weights of the model's family, or ``repo`` (an id, a folder, or one
        ``.safetensors``/``.bin`` weight file whose folder holds ``image_encoder/``, as
        ``models/ip-adapter_sd15.safetensors`` does in h94's layout)."""
        path = Path(repo).expanduser() if repo else None
        if path is not None and path.suffix in (".safetensors", ".bin"):
            if not path.is_file():
                raise FileNotFoundError(f"IP-Adapter weights {path}: no such file")
            if subfolder or weight_name:
                raise ValueError("an IP-Adapter weight file names its own folder and weights")
            return cls(str(path.parent), "", path.name, scale)
        xl = ("sdxl_models", "ip-adapter_sdxl.safetensors") if model.is_sdxl else None
        default_sub, default_name = xl or (cls.subfolder, cls.weight_name)
        return cls(
            repo or cls.repo,
            default_sub if subfolder is None else subfolder,
            weight_name or default_name,
            scale,
        )

    def describe(self) -> str:
        return "/".join(part for part in (self.repo, self.subfolder, self.weight_name) if part)


def find_subject(store: ContextStore, user_id: str, name: str) -> Subject:
    subjects = store.subjects(user_id)
    for subject in subjects:
        if subject.name.lower() == name.lower():
            return subject
    known = ", ".join(s.name for s in subjects) or "none"
    raise ValueError(f"user {user_id!r} has no subject {name!r} (their subjects: {known})")


def mentioned_subject(subjects: Sequence[Subject], instruction: str) -> Subject | None:
    """The first subject whose name the instruction uses as a word."""
    for subject in subjects:
        if re.search(rf"\b{re.escape(subject.name)}\b", instruction, re.IGNORECASE):
            return subject
    return None


def subject_phrase(token: str, subject: Subject) -> str:
    """How prompts name the subject: "sks dog", "<rex> dog", or just "dog" (IP-Adapter)."""
    return f"{token} {subject.class_word}" if token else subject.class_word


def subject_prompt(instruction: str, subject: Subject, phrase: str) -> str:
    """Put the subject's phrase ("sks dog") where the instruction names the subject
    ("my dog Rex on a beach" -> "sks dog on a beach"), or in front when it does not."""
    name = re.escape(subject.name)
    owned = rf"(?:\bmy\s+{re.escape(subject.class_word)}\s+)?\b{name}\b"
    prompt, count = re.subn(owned, phrase, instruction, flags=re.IGNORECASE)
    return prompt if count else f"a {phrase}, {instruction}"


def train_subject(
    store: ContextStore,
    user_id: str,
    subject_name: str,
    model: DiffusersImageModel,
    method: str,
    config: SubjectTrainingConfig | None = None,
) -> Path:
    """Train one of the user's subjects; returns the artifact folder (registered in the store,
    so ``delete_user`` removes it)."""
    if method not in TRAINERS:
        raise ValueError(f"unknown training method {method!r}; expected one of {sorted(TRAINERS)}")
    subject = find_subject(store, user_id, subject_name)
    folder = store.artifact_path(user_id, method, subject.name)
    for stale in (METADATA_FILE, subject_dreambooth.LORA_FILE, subject_inversion.EMBEDDING_FILE):
        (folder / stale).unlink(missing_ok=True)
    try:
        TRAINERS[method](model, subject, folder, config or SubjectTrainingConfig())
    except BaseException:
        # A half-written artifact must not be picked up by generation later.
        (folder / METADATA_FILE).unlink(missing_ok=True)
        raise
    return folder


def trained(store: ContextStore, user_id: str, subject: Subject) -> dict[str, Path]:
    """method -> artifact folder, for the methods this subject was trained with."""
    return {
        kind: path
        for (kind, name), path in store.artifacts(user_id).items()
        if kind in TRAINERS and name == subject.name and (path / METADATA_FILE).is_file()
    }


@contextmanager
def subject_loaded(
    model: DiffusersImageModel,
    store: ContextStore,
    user_id: str,
    subject: Subject,
    method: str,
    ip_adapter: IPAdapterSpec | None = None,
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Load the subject into the model for the duration of the block. Yields the token that
    names the subject in prompts ("" for IP-Adapter, which needs none), the extra generate()
    arguments, and the provenance."""
    provenance: dict[str, Any] = {
        "method": method,
        "subjects": [subject.name],
        "reference_images": list(subject.image_paths),
        "base_model": model.name,
    }
    if method == IP_ADAPTER:
        spec = ip_adapter or IPAdapterSpec.for_model(model)
        images = load_reference_images(subject.image_paths)
        model.load_ip_adapter(spec.repo, spec.subfolder, spec.weight_name, spec.scale)
        provenance["ip_adapter"] = spec.describe()
        try:
            yield "", {"ip_adapter_images": images}, provenance
        finally:
            model.unload_ip_adapter()
        return
    folder = trained(store, user_id, subject).get(method)
    if folder is None:
        if method not in TRAINERS:
            raise ValueError(f"unknown subject method {method!r}; expected one of {METHODS}")
        raise ValueError(
            f"subject {subject.name!r} of user {user_id!r} has no {method} artifact; "
            f"run: pgen train-subject --user {user_id} --subject {subject.name} --method {method}"
        )
    meta = read_metadata(folder)
    stale = stale_reason(meta, model, subject)
    if stale:
        raise ValueError(
            f"subject {subject.name!r} of user {user_id!r}: the {method} artifact is stale: "
            f"{stale}; retrain: pgen train-subject --user {user_id} --subject {subject.name} "
            f"--method {method} --image-model {model.name}"
        )
    provenance["artifact"] = str(folder)
    token = str(meta["token"])
    if method == subject_dreambooth.METHOD:
        model.load_lora(folder)
        try:
            yield token, {}, provenance
        finally:
            model.unload_lora()
    else:
        tokens = model.load_textual_inversion(folder / meta["weights"])
        try:
            yield token, {}, provenance
        finally:
            model.unload_textual_inversion(tokens)


def generate_subject(
    store: ContextStore,
    user_id: str,
    instruction: str,
    model: DiffusersImageModel,
    config: ImageGenerationConfig | None = None,
    subject_name: str | None = None,
    method: str | None = None,
    ip_adapter: IPAdapterSpec | None = None,
) -> ImageOutput:
    """Images for the instruction with the user's subject in them. The subject is the one
    named (or mentioned in the instruction); the method defaults to the best trained one
    (DreamBooth-LoRA, then textual inversion), else IP-Adapter."""
    if subject_name is not None:
        subject = find_subject(store, user_id, subject_name)
    else:
        found = mentioned_subject(store.subjects(user_id), instruction)
        if found is None:
            names = ", ".join(s.name for s in store.subjects(user_id)) or "none"
            raise ValueError(
                f"the instruction names none of user {user_id!r}'s subjects ({names}); "
                "mention one or pass a subject"
            )
        subject = found
    if method is None:
        have = trained(store, user_id, subject)
        method = next((m for m in TRAINERS if m in have), IP_ADAPTER)
    with subject_loaded(model, store, user_id, subject, method, ip_adapter) as loaded:
        token, extra, provenance = loaded
        prompt = subject_prompt(instruction, subject, subject_phrase(token, subject))
        images = model.generate([prompt], config, **extra)
    return ImageOutput(images, prompt, "subject", {**provenance, "prompt": prompt})
