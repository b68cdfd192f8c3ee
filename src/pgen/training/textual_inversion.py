"""Textual inversion (Gal et al., 2023): one new token whose input embedding is optimized so
that prompts using it render the subject; the diffusion model itself stays frozen. Saved as
``learned_embeds.safetensors`` ({token: embedding}), which ``pipe.load_textual_inversion``
loads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from pgen.context.records import Subject
from pgen.models.image import DiffusersImageModel
from pgen.models.image_input import load_reference_images
from pgen.training.diffusion import (
    check_trainable,
    denoising_loss,
    encode_latents,
    text_states,
    to_pixels,
    tokenize,
)
from pgen.training.progress import OnStep, StepBar
from pgen.training.stopping import StopCheck, stop_if_asked
from pgen.training.subject_artifacts import (
    SubjectTrainingSettings,
    TrainedSubject,
)

METHOD = "textual-inversion"
EMBEDDING_FILE = "learned_embeds.safetensors"
# Varied neutral captions, so the token absorbs the subject and not one sentence.
TEMPLATES = (
    "a photo of a {}",
    "a close-up photo of a {}",
    "a bright photo of the {}",
    "a cropped photo of the {}",
    "a good photo of a {}",
    "a rendition of the {}",
)


def default_token(subject: Subject) -> str:
    return "<" + (re.sub(r"[^a-z0-9]+", "-", subject.name.lower()).strip("-") or "subject") + ">"


def train_textual_inversion(
    model: DiffusersImageModel,
    subject: Subject,
    folder: Path,
    config: SubjectTrainingSettings,
    should_stop: StopCheck | None = None,
    on_step: OnStep | None = None,
) -> dict[str, Any]:
    """Learn the token's embedding and save it into ``folder``; the model is left unchanged.
    ``should_stop`` is asked before every step (``TrainingCancelled``: nothing saved);
    ``on_step`` and pgen's bar are told each step's loss."""
    from safetensors.torch import save_file

    check_trainable(model, METHOD)
    token = config.token or default_token(subject)
    tokenizer, encoder = model.pipe.tokenizer, model.pipe.text_encoder
    if token in tokenizer.get_vocab():
        raise ValueError(f"token {token!r} is already in the tokenizer's vocabulary; pick another")
    size = config.resolution or model.resolution
    generator = torch.Generator().manual_seed(config.seed)
    latents = encode_latents(model, to_pixels(load_reference_images(subject.image_paths), size))

    # Start from the class word's embedding, as the paper initializes from a coarse descriptor.
    class_ids = tokenizer(subject.class_word, add_special_tokens=False).input_ids
    dtype = encoder.dtype
    encoder.to(torch.float32)  # an embedding trained in half precision barely moves
    tokenizer.add_tokens([token])
    token_id = tokenizer.convert_tokens_to_ids(token)
    encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    weight = encoder.get_input_embeddings().weight
    bar = StepBar(METHOD, config.steps, (subject.user_id,), show=config.progress, on_step=on_step)
    try:
        with torch.no_grad():
            weight[token_id] = weight[class_ids].mean(dim=0)
        frozen = weight.detach().clone()
        encoder.requires_grad_(False)
        model.pipe.unet.requires_grad_(False)
        weight.requires_grad_(True)
        optimizer = torch.optim.AdamW([weight], lr=config.learning_rate or 5e-4, weight_decay=0.0)
        others = torch.arange(len(tokenizer), device=weight.device) != token_id
        losses = []
        for _ in range(config.steps):
            stop_if_asked(should_stop)
            pick = torch.randint(len(latents), (config.batch_size,), generator=generator)
            chosen = torch.randint(len(TEMPLATES), (config.batch_size,), generator=generator)
            prompts = [TEMPLATES[int(i)].format(token) for i in chosen]
            states = text_states(model, tokenize(model, prompts))
            conditioning = {"encoder_hidden_states": states}
            loss = denoising_loss(model, latents[pick], conditioning, generator).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():  # only the new token learns; every other row goes back
                weight[others] = frozen[others]
            losses.append(loss.item())
            bar.step(losses[-1])
        learned = weight[token_id].detach().clone().unsqueeze(0)
        save_file({token: learned.contiguous()}, str(folder / EMBEDDING_FILE))
    finally:
        bar.close()
        weight.requires_grad_(False)
        model.pipe.unload_textual_inversion(token)
        encoder.to(dtype)
    return TrainedSubject(METHOD, subject, token, EMBEDDING_FILE, model.name, config, losses).write(
        folder
    )
