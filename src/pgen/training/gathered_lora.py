"""Gathered ``lora``: many users' adapters on their own documents, trained in one pass.

Each user's adapter is what ``text_lora.train_user_lora`` makes of the same settings:
the same examples (the user's own documents only), the same steps in the same seeded
order, the same start (``initial_down``), AdamW with the same settings, the loss on the
output tokens averaged over the user's own step. It is saved the same way too: a plain
PEFT folder written by PEFT, with the same metadata and fingerprint. (LoRA dropout masks
are drawn per row from torch's generator, not PEFT's per-layer draws: with dropout the
adapters are alike in distribution, not bit for bit; the equality test uses none.) Users
whose adapter is current (same settings, same documents, same base) are not trained
again: a stopped run, run again, trains only who is left.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgen.context.artifacts import ADAPTER_NAME, ArtifactMeta
from pgen.context.base import ContextStore
from pgen.models.base import TextModel
from pgen.models.lora_gather import PEFT_PREFIX, adapter_weights
from pgen.training.gathered import (
    GatheredBase,
    Item,
    ProgressCallback,
    Slot,
    Stats,
    run_gathered,
)
from pgen.training.progress import OnStep
from pgen.training.stopping import StopCheck
from pgen.training.text_lora import (
    LoraSettings,
    current_lora,
    encode,
    fresh_base,
    initial_down,
    lora_meta,
    save_adapter,
    step_indices,
    task_start,
    user_split,
    with_lora,
)

MAX_TOKENS = 2048  # padded tokens per forward chunk: bounds memory, not the result


@dataclass(frozen=True)
class Gathering:
    """How a group trains: users at once, padded tokens per chunk, and who is told."""

    batch_users: int = 16
    max_tokens: int = MAX_TOKENS
    should_stop: StopCheck | None = None
    progress: ProgressCallback | None = None
    stats: Stats | None = None  # filled in when given (the benchmark reads it)
    on_step: OnStep | None = None  # told each user's own steps


def shape_key(settings: dict[str, Any]) -> tuple[Any, ...]:
    """What users must share to be stacked in one batch: the adapter's shape."""
    targets = tuple(sorted(settings["target_modules"]))
    return (settings["rank"], settings["alpha"], settings["dropout"], targets)


class AdapterGroup:
    """One fresh base for a group of users whose adapters share a shape, wrapped in PEFT
    only to save each user's adapter in PEFT's own format."""

    def __init__(self, text_model: TextModel, shape: LoraSettings) -> None:
        model, self.tokenizer = fresh_base(text_model)
        model.requires_grad_(False)
        self.peft = with_lora(model, shape)
        self.layers = {
            name.removeprefix(PEFT_PREFIX): module
            for name, module in self.peft.named_modules()
            if hasattr(module, "lora_A") and "default" in module.lora_A
        }
        scale = shape.alpha / shape.rank
        self.base = GatheredBase(
            self.peft.base_model.model, self.tokenizer, shape.target_modules, scale, shape.dropout
        )

    def factors(self, seed: int, start: Path | None) -> dict[str, tuple[Any, Any]]:
        """A user's trainable factors: fresh from the seed, or a copy of a saved adapter."""
        import torch

        saved = adapter_weights(start) if start is not None else None
        factors = {}
        for name, layer in self.layers.items():
            like = layer.lora_A["default"].weight
            if saved is not None:
                down = saved[f"{PEFT_PREFIX}{name}.lora_A.weight"]
                up = saved[f"{PEFT_PREFIX}{name}.lora_B.weight"]
            else:
                down = initial_down(name, like.shape, seed)
                up = torch.zeros_like(layer.lora_B["default"].weight)
            factors[name] = tuple(
                torch.nn.Parameter(t.detach().clone().to(like.device, like.dtype))
                for t in (down, up)
            )
        return factors  # type: ignore[return-value]

    def save(self, slot: Slot, folder: Path, meta: ArtifactMeta) -> Path:
        import torch

        with torch.no_grad():
            for name, (down, up) in slot.factors.items():
                self.layers[name].lora_A["default"].weight.copy_(down)
                self.layers[name].lora_B["default"].weight.copy_(up)
        return save_adapter(self.peft, folder, meta)

    def run(
        self,
        admit: Sequence[Callable[[], Slot]],
        objective: Any,
        on_done: Callable[[Slot], None],
        gathering: Gathering,
    ) -> None:
        # PEFT's own layers stay off: every row goes through its user's factors (hooks).
        with self.peft.disable_adapter():
            run_gathered(
                self.base,
                admit,
                objective,
                on_done,
                batch_users=gathering.batch_users,
                max_tokens=gathering.max_tokens,
                should_stop=gathering.should_stop,
                progress=gathering.progress,
                stats=gathering.stats,
                on_step=gathering.on_step,
            )


class TokenLoss:
    """The per-user trainer's loss: output tokens' cross-entropy, averaged over the step."""

    def norm(self, slot: Slot, items: Sequence[Item]) -> float:
        return float(sum(label != -100 for item in items for label in item.rows[0][1][1:]))

    def loss(self, slot: Slot, item: Item, logps: Any) -> Any:
        return -logps.sum()


def train_lora_group(
    store: ContextStore,
    users: Sequence[tuple[str, LoraSettings]],
    text_model: TextModel,
    gathering: Gathering | None = None,
) -> list[Path]:
    """Every user's lora (their own settings; one adapter shape), trained gathered; the
    artifact folders in the users' order. Users with a current adapter keep it."""
    import torch

    gathering = gathering or Gathering()
    if len({shape_key(s.as_dict()) for _, s in users}) > 1:
        raise ValueError("a gathered group shares one adapter shape (rank, alpha, targets)")
    folders: list[Path | None] = [current_lora(store, u, text_model, s) for u, s in users]
    todo = [i for i, folder in enumerate(folders) if folder is None]
    splits = {i: user_split(store, users[i][0], users[i][1]) for i in todo}
    examples = {i: splits[i][0] for i in todo}
    starts = {i: task_start(users[i][1], store) for i in todo}  # checked before the model loads
    if not todo:
        return [f for f in folders if f is not None]
    group = AdapterGroup(text_model, users[todo[0]][1])

    def admit(i: int) -> Callable[[], Slot]:
        def slot() -> Slot:
            settings = users[i][1]
            rows = [encode(group.tokenizer, e, settings.max_length) for e in examples[i]]
            steps = step_indices(
                len(rows), settings.batch_size, settings.epochs, settings.max_steps, settings.seed
            )
            factors = group.factors(settings.seed, starts[i])
            params = [t for pair in factors.values() for t in pair]
            return Slot(
                index=i,
                factors=factors,
                steps=[[Item((rows[j],)) for j in step] for step in steps],
                optimizer=torch.optim.AdamW(params, lr=settings.learning_rate),
                learning_rate=lambda _step: settings.learning_rate,
                user_id=users[i][0],
                info={"began": time.perf_counter()},
            )

        return slot

    def done(slot: Slot) -> None:
        user_id, settings = users[slot.index]
        meta = lora_meta(
            store,
            user_id,
            text_model,
            settings,
            splits[slot.index],
            slot.losses,
            slot.info["began"],
            gathered=gathering.batch_users,
        )
        folder = store.artifact_path(user_id, "lora", ADAPTER_NAME)
        folders[slot.index] = group.save(slot, folder, meta)

    group.run([admit(i) for i in todo], TokenLoss(), done, gathering)
    return [f for f in folders if f is not None]
