"""The ``subject`` strategy: images of a user's own subject ("my dog Rex") from the reference
images in their context, by DreamBooth-LoRA, textual inversion (both trained per user and
subject, stored as artifacts) or IP-Adapter (zero-shot from the reference images).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pgen.context.artifacts import META_FILE as METADATA_FILE
from pgen.context.artifacts import read_subject_metadata as read_metadata
from pgen.context.artifacts import subject_stale_reason
from pgen.context.base import ContextStore
from pgen.context.records import Subject
from pgen.models.base import AdapterRef
from pgen.models.image_input import load_reference_images
from pgen.personalize.base import (
    ImagePlan,
    ImageRequest,
    Modality,
    Provenance,
    Tools,
    image_tools,
)

if TYPE_CHECKING:
    from pgen.models.image import DiffusersImageModel, ImageGenerationSettings, ImageOutput

# Trained methods, best first (the default when a request names none); their trainers are
# registered in ``pgen.training.subject_trainer``.
TRAINERS = ("dreambooth-lora", "textual-inversion")
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
        path = weight_file(repo, subfolder, weight_name, "IP-Adapter", must_exist=True)
        if path is not None:
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
        return describe_weights(self.repo, self.subfolder, self.weight_name)


def weight_file(
    repo: str | None,
    subfolder: str | None,
    weight_name: str | None,
    what: str,
    must_exist: bool = False,
) -> Path | None:
    """``repo`` when it names one ``.safetensors``/``.bin`` weight file (its folder holds
    the rest), else None; a subfolder or weight name beside such a file is refused."""
    path = Path(repo).expanduser() if repo else None
    if path is None or path.suffix not in (".safetensors", ".bin"):
        return None
    if must_exist and not path.is_file():
        raise FileNotFoundError(f"{what} weights {path}: no such file")
    if subfolder or weight_name:
        article = "an" if what[0] in "AEIOU" else "a"
        raise ValueError(f"{article} {what} weight file names its own folder and weights")
    return path


def describe_weights(repo: str, subfolder: str, weight_name: str) -> str:
    """Where adapter weights are, as one path-like name."""
    return "/".join(part for part in (repo, subfolder, weight_name) if part)


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


def trained(store: ContextStore, user_id: str, subject: Subject) -> dict[str, Path]:
    """method -> artifact folder, for the methods this subject was trained with."""
    return {
        kind: path
        for (kind, name), path in store.artifacts(user_id).items()
        if kind in TRAINERS and name == subject.name and (path / METADATA_FILE).is_file()
    }


def subject_adapter(
    store: ContextStore,
    user_id: str,
    subject: Subject,
    method: str,
    base_model: str,
    ip_adapter: IPAdapterSpec | None = None,
) -> tuple[AdapterRef, str, Provenance]:
    """The adapter that puts the subject into the image model, the token that names it in
    prompts ("" for IP-Adapter, which needs none), and the provenance. A missing or stale
    artifact is refused with the command that (re)trains it."""
    provenance = Provenance(subjects=[subject.name], model=base_model)
    if method == IP_ADAPTER:
        spec = ip_adapter or IPAdapterSpec()
        settings = {
            "repo": spec.repo,
            "subfolder": spec.subfolder,
            "weight_name": spec.weight_name,
            "scale": spec.scale,
            "images": load_reference_images(subject.image_paths),
        }
        provenance.artifacts.append(spec.describe())
        return AdapterRef(IP_ADAPTER, f"{user_id}/{subject.name}", None, settings), "", provenance
    folder = trained(store, user_id, subject).get(method)
    if folder is None:
        if method not in TRAINERS:
            raise ValueError(f"unknown subject method {method!r}; expected one of {METHODS}")
        raise ValueError(
            f"subject {subject.name!r} of user {user_id!r} has no {method} artifact; "
            f"run: pgen train-subject --user {user_id} --subject {subject.name} --method {method}"
        )
    meta = read_metadata(folder)
    stale = subject_stale_reason(meta, base_model, subject.image_paths)
    if stale:
        raise ValueError(
            f"subject {subject.name!r} of user {user_id!r}: the {method} artifact is stale: "
            f"{stale}; retrain: pgen train-subject --user {user_id} --subject {subject.name} "
            f"--method {method} --image-model {base_model}"
        )
    provenance.artifacts.append(str(folder))
    settings = {"weights": meta.get("weights", "")}
    adapter = AdapterRef(method, f"{user_id}/{subject.name}/{method}", folder, settings)
    return adapter, str(meta["token"]), provenance


class NamesSubject(Protocol):
    """A request that may name one of the user's subjects (image, video, post)."""

    @property
    def user_id(self) -> str: ...
    @property
    def instruction(self) -> str: ...
    @property
    def subject(self) -> str | None: ...


def pick_subject(store: ContextStore, request: NamesSubject) -> Subject:
    """The subject named by the request, or else the one its instruction mentions."""
    if request.subject is not None:
        return find_subject(store, request.user_id, request.subject)
    subjects = store.subjects(request.user_id)
    found = mentioned_subject(subjects, request.instruction)
    if found is None:
        names = ", ".join(s.name for s in subjects) or "none"
        raise ValueError(
            f"the instruction names none of user {request.user_id!r}'s subjects ({names}); "
            "mention one or pass a subject"
        )
    return found


class SubjectStrategy:
    """The user's subject by a trained method (default: the best trained one,
    DreamBooth-LoRA then textual inversion), else IP-Adapter."""

    name = "subject"
    modality: Modality = "image"
    description = "the user's own subject (DreamBooth-LoRA, textual inversion or IP-Adapter)"
    retrieves = False
    adapter_kind: str | None = "subject"  # the subject's trained artifact, or IP-Adapter

    def prepare(self, requests: list[ImageRequest], tools: Tools) -> list[ImagePlan]:
        prepared = []
        for request in requests:
            subject = pick_subject(tools.store, request)
            method = request.method
            if method is None:
                have = trained(tools.store, request.user_id, subject)
                method = next((m for m in TRAINERS if m in have), IP_ADAPTER)
            base = tools.image_model.name
            adapter, token, provenance = subject_adapter(
                tools.store, request.user_id, subject, method, base, request.ip_adapter
            )
            prompt = subject_prompt(request.instruction, subject, subject_phrase(token, subject))
            details = {"method": method, "reference_images": list(subject.image_paths)}
            prepared.append(
                ImagePlan(prompt=prompt, provenance=provenance, adapter=adapter, details=details)
            )
        return prepared


def generate_subject(
    store: ContextStore,
    user_id: str,
    instruction: str,
    model: DiffusersImageModel,
    config: ImageGenerationSettings | None = None,
    subject_name: str | None = None,
    method: str | None = None,
    ip_adapter: IPAdapterSpec | None = None,
) -> ImageOutput:
    """Images of the user's subject for one instruction, outside an engine (benchmarks):
    the same strategy and the same per-request adapter path as ``Engine.generate_image``."""
    from pgen.models.image import ImageOutput

    request = ImageRequest(
        user_id, instruction, "subject", subject_name, method, ip_adapter=ip_adapter
    )
    tools = image_tools(store, model)
    prepared = SubjectStrategy().prepare([request], tools)[0]
    images = model.render(prepared.prompt, config, prepared.adapter)
    provenance = {**prepared.provenance.as_dict(), **prepared.details, "prompt": prepared.prompt}
    return ImageOutput(images, prepared.prompt, "subject", provenance)
