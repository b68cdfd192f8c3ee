"""Gathered ``dpo``: many users' preference adapters trained in one pass.

Each user keeps what ``dpo.train_user_dpo`` gives them: their own pairs and their cohort's
(``training_pairs``), their held-out pairs, β, steps and epochs, the start from their own
``lora`` when it applies, the metadata. The policy passes of many users' pairs share one
batch, each row through its own user's factors. The reference is the base with adapters
off: the same for every user, so each row's reference log-probability is computed once,
when its user enters the batch, not once per step and epoch. The optimizer is the one
TRL's trainer uses by default (AdamW without weight decay, the rate decaying linearly to
zero, gradients clipped at norm 1), one per user; the data order is the per-user lora's
(a seeded shuffle per epoch). Users with a current dpo adapter keep it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from pgen.context.artifacts import ADAPTER_NAME, pairs_fingerprint, read_meta
from pgen.context.base import ContextStore
from pgen.models.base import TextModel
from pgen.training.dpo import DpoSettings, dpo_meta, training_pairs, usable_lora
from pgen.training.examples import Example
from pgen.training.gathered import GatheredBase, Item, Row, Slot, chunks
from pgen.training.gathered_lora import AdapterGroup, Gathering, shape_key
from pgen.training.text_lora import LoraSettings, encode, step_indices
from pgen.usermodel.preferences import Pair

CLIP = 1.0  # TRL's (transformers') default max_grad_norm


class DpoLoss:
    """DPO's sigmoid loss on the implicit reward margin, averaged over the user's pairs."""

    def norm(self, slot: Slot, items: Sequence[Item]) -> float:
        return float(len(items))

    def loss(self, slot: Slot, item: Item, logps: Any) -> Any:
        import torch

        chosen, rejected = item.reference
        margin = slot.info["beta"] * ((logps[0] - chosen) - (logps[1] - rejected))
        return -torch.nn.functional.logsigmoid(margin)


def pair_rows(tokenizer: Any, pair: Pair, max_length: int) -> tuple[Row, Row]:
    """The chosen and the rejected reply after the prompt, the loss on the reply only."""
    chosen, rejected = (
        encode(tokenizer, Example("", "", pair.prompt, reply), max_length)
        for reply in (pair.chosen, pair.rejected)
    )
    return chosen, rejected


def logps(
    base: GatheredBase, rows: Sequence[Row], slot: Slot | None, max_tokens: int
) -> list[float]:
    """Summed log-probabilities of ``rows``' replies, without gradients: through ``slot``'s
    factors, or the base's own (``None``: the reference)."""
    import torch

    out = [0.0] * len(rows)
    base.model.eval()  # no dropout when measuring
    with torch.no_grad():
        for chunk in chunks([(i, Item((row,))) for i, row in enumerate(rows)], max_tokens):
            batch = [item.rows[0] for _, item in chunk]
            on = base.applied([slot], [0] * len(batch)) if slot else contextlib.nullcontext()
            with on:
                values = base.row_logps(batch).tolist()
            for (i, _), value in zip(chunk, values, strict=True):
                out[i] = value
    return out


def measure(policy: Sequence[float], reference: Sequence[float], beta: float) -> dict[str, float]:
    """``preference_metrics`` from log-probabilities: rows alternate chosen, rejected."""
    if not policy:
        return {}
    margins = [
        beta * ((policy[i] - reference[i]) - (policy[i + 1] - reference[i + 1]))
        for i in range(0, len(policy), 2)
    ]
    return {
        "pairs": float(len(margins)),
        "accuracy": sum(m > 0 for m in margins) / len(margins),
        "margin": sum(margins) / len(margins),
    }


def lora_shape(start: Path | None, settings: DpoSettings) -> LoraSettings:
    """The adapter's shape: the user's lora it starts from, else the settings' fresh one."""
    meta = read_meta(start) if start is not None else None
    if meta is None:
        return settings.lora
    names = {f.name for f in fields(LoraSettings)} - {"target_modules", "extra"}
    values = {k: v for k, v in meta.settings.items() if k in names}
    return LoraSettings(**values, target_modules=tuple(meta.settings["target_modules"]))


def current_dpo(
    store: ContextStore,
    user_id: str,
    text_model: TextModel,
    settings: DpoSettings,
    pairs: Sequence[Pair],
) -> Path | None:
    """The user's dpo folder when trained with ``settings`` on their pairs as they are."""
    folder = store.artifacts(user_id).get(("dpo", ADAPTER_NAME))
    meta = read_meta(folder) if folder is not None else None
    if folder is None or meta is None or meta.settings != settings.as_dict():
        return None
    return folder if meta.stale_reason(text_model.name, pairs_fingerprint(pairs)) is None else None


def train_dpo_group(
    store: ContextStore,
    users: Sequence[tuple[str, DpoSettings]],
    text_model: TextModel,
    gathering: Gathering | None = None,
) -> list[Path]:
    """Every user's dpo adapter, trained gathered (one pass per adapter shape); the
    artifact folders in the users' order. Too few pairs fails here, before any model loads."""
    gathering = gathering or Gathering()
    pairs = {i: training_pairs(store, u, s) for i, (u, s) in enumerate(users)}
    folders: list[Path | None] = [
        current_dpo(store, u, text_model, s, [*pairs[i][0], *pairs[i][1]])
        for i, (u, s) in enumerate(users)
    ]
    starts = {
        i: usable_lora(store, users[i][0], text_model) for i, f in enumerate(folders) if f is None
    }
    shapes: dict[tuple[Any, ...], list[int]] = {}
    for i, start in starts.items():
        shapes.setdefault(shape_key(lora_shape(start, users[i][1]).as_dict()), []).append(i)
    for members in shapes.values():
        shape = lora_shape(starts[members[0]], users[members[0]][1])
        group = AdapterGroup(text_model, shape)
        admit = [_admission(group, users[i], i, pairs[i], starts[i], gathering) for i in members]

        def done(slot: Slot, group: AdapterGroup = group) -> None:
            user_id, settings = users[slot.index]
            slot.info["after"] = measure(
                logps(group.base, slot.info["measured"], slot, gathering.max_tokens),
                slot.info["reference"],
                settings.beta,
            )
            meta = dpo_meta(
                user_id,
                text_model,
                settings,
                pairs[slot.index],
                (slot.info["before"], slot.info["after"]),
                starts[slot.index] is not None,
                slot.info["began"],
                gathered=gathering.batch_users,
            )
            folder = store.artifact_path(user_id, "dpo", ADAPTER_NAME)
            folders[slot.index] = group.save(slot, folder, meta)

        group.run(admit, DpoLoss(), done, gathering)
    return [f for f in folders if f is not None]


def _admission(
    group: AdapterGroup,
    user: tuple[str, DpoSettings],
    index: int,
    pairs: tuple[list[Pair], list[Pair], list[Pair], list[Pair]],
    start: Path | None,
    gathering: Gathering,
) -> Callable[[], Slot]:
    """What builds the user's slot when a place in the batch frees up: their rows, the
    reference passes (once per row), their factors, optimizer and schedule."""

    def slot() -> Slot:
        import torch

        settings = user[1]
        began = time.perf_counter()
        _own, _pooled, train, held_out = pairs
        measured = (held_out or train) if settings.measure else []
        rows = [
            row
            for p in [*train, *measured]
            for row in pair_rows(group.tokenizer, p, settings.max_length)
        ]
        reference = logps(group.base, rows, None, gathering.max_tokens)
        steps = step_indices(
            len(train), settings.batch_size, settings.epochs, settings.max_steps, settings.seed
        )
        items = [
            Item((rows[2 * i], rows[2 * i + 1]), (reference[2 * i], reference[2 * i + 1]))
            for i in range(len(train))
        ]
        factors = group.factors(settings.lora.seed, start)
        total = len(steps)
        made = Slot(
            index=index,
            factors=factors,
            steps=[[items[i] for i in step] for step in steps],
            optimizer=torch.optim.AdamW(
                [t for pair in factors.values() for t in pair],
                lr=settings.learning_rate,
                weight_decay=0.0,
            ),
            learning_rate=lambda step: settings.learning_rate * (total - step) / total,
            clip=CLIP,
            user_id=user[0],
            info={
                "beta": settings.beta,
                "began": began,
                "measured": rows[2 * len(train) :],
                "reference": reference[2 * len(train) :],
            },
        )
        made.info["before"] = measure(
            logps(group.base, made.info["measured"], made, gathering.max_tokens),
            made.info["reference"],
            settings.beta,
        )
        return made

    return slot
