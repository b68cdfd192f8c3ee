"""Yo'LLaVA-style concept tokens: a few learned input vectors that stand for one concept.

The vision-language model stays frozen. A concept ``<Rex>`` is introduced in the system
message as "<Rex> is [t1]...[tn], the user's dog."; the n vectors are trained so that the
model answers "Yes" to "Is <Rex> in this photo?" on the concept's reference photos and
"No" on hard negatives (the user's other concepts' photos, or an operator's pool; never
another user's), and "This is <Rex>." when asked who it is. At answer time the vectors go
into the prompt's placeholder slots for that request only.

Artifact format (``pgen-concept-tokens/1``), one folder per concept under the user's
artifacts (kind ``concept-tokens``), removed by delete-user:

* ``tokens.safetensors``: one float32 tensor ``tokens`` of shape (n, hidden size);
* ``concept_tokens.json``: ``format``, ``concept``, ``class_word``, ``base_model`` (the
  VLM's name), ``hidden_size``, ``references`` (content hashes of the reference photos),
  ``negatives`` (how many), ``steps``, ``learning_rate``, ``seed``, ``losses``.

Tokens are refused when the base model or the reference photos changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from pgen.components import LearnedConcept, Tools
from pgen.context.artifacts import concept_stale_reason
from pgen.context.base import ContextStore
from pgen.errors import InvalidRequest
from pgen.models.vision import TransformersVisionModel, VisionChat, VisionMessage
from pgen.training.progress import OnStep, StepBar
from pgen.usermodel.concepts import introduction

if TYPE_CHECKING:
    from pgen.training.registry import TrainRequest

FORMAT = "pgen-concept-tokens/1"
META = "concept_tokens.json"
WEIGHTS = "tokens.safetensors"
TOKENS_KIND = "concept-tokens"  # the artifact kind, and the trainer's method


@dataclass(frozen=True)
class ConceptTokenSettings:
    tokens: int = 4
    steps: int = 40
    learning_rate: float = 1e-2
    seed: int = 0
    progress: bool = True  # pgen's bar on the terminal


def _examples(
    name: str, positives: list[Image.Image], negatives: list[Image.Image]
) -> list[tuple[Image.Image, str, str]]:
    question = f"Is <{name}> in this photo? Answer yes or no."
    examples = [(im, question, "Yes") for im in positives]
    examples += [(im, "Who is this?", f"This is <{name}>.") for im in positives]
    examples += [(im, question, "No") for im in negatives]
    return examples


def train_concept_tokens(
    model: TransformersVisionModel,
    name: str,
    class_word: str,
    positives: list[Image.Image],
    negatives: list[Image.Image],
    config: ConceptTokenSettings | None = None,
    *,
    on_step: OnStep | None = None,
    user_id: str = "",
) -> tuple[Any, list[float]]:
    """The learned (tokens, hidden) tensor and the loss of each step; ``on_step`` (and
    pgen's bar) told each step, as ``user_id``'s."""
    import torch

    config = config or ConceptTokenSettings()
    if not positives:
        raise ValueError(f"concept {name!r}: no reference photos to learn tokens from")
    torch.manual_seed(config.seed)
    embeddings = model.model.get_input_embeddings()
    class_ids = model.processor.tokenizer(class_word, add_special_tokens=False)["input_ids"]
    with torch.no_grad():  # start from the class word's meaning, plus a little noise
        start = embeddings(torch.tensor(class_ids or [0], device=model.device)).float().mean(0)
        init = start.repeat(config.tokens, 1) + 0.01 * torch.randn(config.tokens, start.shape[0])
    tokens = torch.nn.Parameter(init.to(model.device))
    optimizer = torch.optim.Adam([tokens], lr=config.learning_rate)
    system = introduction(name, class_word, model.placeholder, config.tokens)
    examples = _examples(name, positives, negatives)
    frozen = [(p, p.requires_grad) for p in model.model.parameters()]
    for parameter, _ in frozen:
        parameter.requires_grad_(False)
    losses: list[float] = []
    users = (user_id,) if user_id else ()
    bar = StepBar(TOKENS_KIND, config.steps, users, show=config.progress, on_step=on_step)
    try:
        for step in range(config.steps):
            image, question, reply = examples[step % len(examples)]
            prompt: VisionChat = [
                VisionMessage("system", system),
                VisionMessage("user", question, (image,)),
            ]
            full = [*prompt, VisionMessage("assistant", reply)]
            asked = model.encode([prompt])["input_ids"].shape[1]
            inputs = model.encode([full], add_generation_prompt=False)
            labels = inputs["input_ids"].clone()
            labels[:, :asked] = -100  # learn the reply only
            kwargs = model.with_soft_tokens(inputs, [tokens])
            loss = model.model(**kwargs, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            bar.step(losses[-1])
    finally:
        bar.close()
        for parameter, before in frozen:
            parameter.requires_grad_(before)
    return tokens.detach().float().cpu(), losses


def save_concept_tokens(folder: Path, tokens: Any, meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({"tokens": tokens.contiguous()}, str(folder / WEIGHTS))
    (folder / META).write_text(json.dumps({"format": FORMAT, **meta}, indent=2) + "\n")


def load_concept_tokens(
    folder: Path, base_model: str, references: list[str]
) -> tuple[Any, dict[str, Any]]:
    """The tokens and their metadata; refused (with the command that retrains them) when
    they were trained on another base model or other reference photos."""
    from safetensors.torch import load_file

    try:
        meta = json.loads((folder / META).read_text())
        tokens = load_file(str(folder / WEIGHTS))["tokens"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{folder}: not a concept-tokens artifact ({error})") from None
    retrain = f"pgen train-concept --user USER --concept {meta.get('concept')!r}"
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder}: format {meta.get('format')!r}, expected {FORMAT}")
    stale = concept_stale_reason(meta, base_model, references)
    if stale is not None:
        raise ValueError(f"concept tokens of {meta.get('concept')!r} {stale}; retrain: {retrain}")
    return tokens, meta


class ConceptTokenTrainer:
    """``concept-tokens``: one of the user's concepts (``TrainRequest.subject``) learned as
    soft tokens from its reference photos, with the user's other concepts and the
    operator's negative pool as hard negatives (Yo'LLaVA). The artifact carries the same
    ``pgen_artifact.json`` as every other kind, next to its own metadata."""

    method = TOKENS_KIND
    modality = "vision"

    def train(self, request: TrainRequest, tools: Tools) -> Path:
        from pgen.context.artifacts import ArtifactMeta, files_fingerprint, write_meta
        from pgen.models.executors import soft_token_model
        from pgen.models.image_input import file_hash, open_image

        concept = request.subject
        if concept is None:
            raise InvalidRequest("concept-tokens trains one concept: name it (--concept)")
        photos = tools.model("photos")
        model = soft_token_model(tools.model("vision"))
        subjects = {s.name: s for s in tools.store.subjects(request.user_id)}
        if concept not in subjects:
            known = ", ".join(subjects) or "none"
            raise InvalidRequest(
                f"user {request.user_id!r} has no concept {concept!r}; known: {known}"
            )
        subject = subjects[concept]
        positives = [open_image(p, photos.allowed) for p in subject.image_paths]
        others = [p for s in subjects.values() if s.name != concept for p in s.image_paths]
        negatives = [open_image(p, photos.allowed) for p in others]
        negatives += [open_image(p) for p in photos.negative_pool]
        config = request.settings or ConceptTokenSettings()
        if not isinstance(config, ConceptTokenSettings):
            raise TypeError("concept-tokens takes ConceptTokenSettings settings")
        tokens, losses = train_concept_tokens(
            model,
            concept,
            subject.class_word,
            positives,
            negatives,
            config,
            on_step=request.on_step,
            user_id=request.user_id,
        )
        folder = tools.store.artifact_path(request.user_id, TOKENS_KIND, concept)
        references = [file_hash(p) for p in subject.image_paths]
        meta = {
            "concept": concept,
            "class_word": subject.class_word,
            "base_model": model.name,
            "hidden_size": model.hidden_size,
            "references": references,
            "negatives": len(negatives),
            "steps": config.steps,
            "learning_rate": config.learning_rate,
            "seed": config.seed,
            "losses": losses,
        }
        save_concept_tokens(folder, tokens, meta)
        settings = {"steps": config.steps, "learning_rate": config.learning_rate}
        artifact = ArtifactMeta(
            TOKENS_KIND,
            request.user_id,
            concept,
            model.name,
            files_fingerprint(subject.image_paths),
            settings={**settings, "seed": config.seed},
            extra={"class_word": subject.class_word, "losses": losses},
        )
        write_meta(folder, artifact)
        return folder


def learned_concepts(store: ContextStore, user_id: str, base_model: str) -> list[LearnedConcept]:
    """The user's trained concept tokens (stale ones are refused, with the fix)."""
    from pgen.models.image_input import file_hash

    subjects = {s.name: s for s in store.subjects(user_id)}
    learned = []
    for (kind, name), folder in sorted(store.artifacts(user_id).items()):
        if kind != TOKENS_KIND or name not in subjects:
            continue
        references = [file_hash(p) for p in subjects[name].image_paths]
        tokens, meta = load_concept_tokens(folder, base_model, references)
        learned.append(LearnedConcept(name, meta["class_word"], tokens, str(folder)))
    return learned
