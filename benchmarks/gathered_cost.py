"""Gathered training against the per-user loop, interleaved in one process (run from
``training_cost.py --gathered 1,4,16``): the machine is shared, so each gathered run sits
between two per-user runs and load hits both sides alike.

For each K: K users' ``lora`` (50 reviews each) or ``dpo`` (20 TL;DR pairs each) trained
gathered, capped at ``steps`` optimizer steps per user, beside per-user runs of the same
cap; and the floor: the frozen base's own forward and backward (to its inputs, no LoRA)
over exactly the gathered run's chunks of tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from pgen.context.sqlite import SQLiteStore
from pgen.models.base import TextModel
from pgen.training.gathered import Stats, chunks
from pgen.training.gathered_lora import Gathering, train_lora_group
from pgen.training.text_lora import (
    LoraSettings,
    encode,
    fresh_base,
    recent_examples,
    step_indices,
    train_user_lora,
)


@dataclass
class Row:
    method: str
    k: int
    per_user_seconds: float  # gathered, per user
    alone_seconds: float  # per-user loop, per user (mean of the interleaved runs)
    floor_seconds: float  # base forward+backward over the same chunks, per user
    stats: Stats
    alone_padding: float
    user_state_mb: float
    steps: int  # per user
    load_seconds: float  # one fresh copy of the base (what the per-user loop pays per user)

    def full(self, steps: int) -> tuple[float, float]:
        """Seconds per user of a full run of ``steps`` steps, gathered and alone: the fixed
        cost per user plus ``steps`` times the measured cost of a step."""
        total = self.per_user_seconds * self.k
        training = self.stats.model_seconds + self.stats.optimizer_seconds
        gathered = (total - training) / self.k + steps * training / self.k / self.steps
        alone_step = (self.alone_seconds - self.load_seconds) / self.steps
        return gathered, self.load_seconds + steps * alone_step


def padding_share(lengths: Sequence[Sequence[int]]) -> float:
    """Share of padded positions when each list of row lengths is one padded batch."""
    real = sum(sum(batch) for batch in lengths)
    padded = sum(len(batch) * max(batch) for batch in lengths)
    return 1 - real / padded


def floor(model: Any, rows: Sequence[tuple[list[int], list[int]]], max_tokens: int) -> float:
    """Seconds of the base's forward and backward (activations' gradients, no weights')
    over ``rows`` in the gathered run's length buckets: what any LoRA training must pay."""
    from pgen.training.gathered import Item

    body, head = model.get_decoder(), model.get_output_embeddings()
    embed = model.get_input_embeddings()
    began = time.perf_counter()
    for chunk in chunks([(0, Item((row,))) for row in rows], max_tokens):
        batch = [item.rows[0] for _, item in chunk]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.tensor([r[0] + [0] * (width - len(r[0])) for r in batch])
        labels = torch.tensor([r[1] + [-100] * (width - len(r[1])) for r in batch])
        mask = (
            torch.arange(width)[None] < torch.tensor([len(r[0]) for r in batch])[:, None]
        ).long()
        inputs = embed(ids).detach().requires_grad_()
        hidden = body(inputs_embeds=inputs, attention_mask=mask).last_hidden_state
        chosen = labels[:, 1:] != -100
        logits = head(hidden[:, :-1][chosen]).float()
        torch.nn.functional.cross_entropy(logits, labels[:, 1:][chosen]).backward()
    return time.perf_counter() - began


def lora_rows(
    store: SQLiteStore, users: Sequence[str], tokenizer: Any, settings: LoraSettings
) -> tuple[list[tuple[list[int], list[int]]], list[list[int]]]:
    """Every row the capped run trains on (for the floor), and the per-user loop's batches'
    row lengths (for its padding share)."""
    rows, batches = [], []
    for user in users:
        encoded = [
            encode(tokenizer, e, settings.max_length)
            for e in recent_examples(store, user, None, None)
        ]
        for step in step_indices(
            len(encoded), settings.batch_size, settings.epochs, settings.max_steps, settings.seed
        ):
            rows += [encoded[i] for i in step]
            batches.append([len(encoded[i][0]) for i in step])
    return rows, batches


def state_mb(settings: LoraSettings, model: Any) -> float:
    """A user's adapter while it trains: the factors, their gradients and AdamW's two
    moments (4 tensors of float32 per factor element)."""
    elements = 0
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in settings.target_modules and hasattr(module, "in_features"):
            elements += settings.rank * (module.in_features + module.out_features)
    return elements * 4 * 4 / 2**20


def compare_lora(
    store: SQLiteStore,
    users: Sequence[str],
    model: TextModel,
    ks: Sequence[int],
    steps: int,
    log: Callable[[str], None],
) -> list[Row]:
    settings = LoraSettings(max_steps=steps, progress=False)
    began = time.perf_counter()
    base, tokenizer = fresh_base(model)
    load = time.perf_counter() - began
    base.requires_grad_(False)
    out: list[Row] = []
    alone: list[float] = []
    at = 0

    def one_alone() -> None:  # another seed than the gathered runs': never "current"
        began = time.perf_counter()
        train_user_lora(store, users[len(alone)], model, replace(settings, seed=1))
        alone.append(time.perf_counter() - began)
        log(f"lora alone: {alone[-1]:.1f} s")

    for k in ks:  # per-user, gathered, per-user, ...: interleaved
        one_alone()
        group = list(users[at : at + k])
        at += k
        stats = Stats()
        began = time.perf_counter()
        gathering = Gathering(batch_users=k, stats=stats)
        train_lora_group(store, [(u, settings) for u in group], model, gathering)
        seconds = time.perf_counter() - began
        rows, batches = lora_rows(store, group, tokenizer, settings)
        base_seconds = floor(base, rows, gathering.max_tokens)
        log(f"lora gathered K={k}: {seconds:.1f} s, floor {base_seconds:.1f} s, {stats}")
        padding = padding_share(batches)
        out.append(
            Row(
                "lora",
                k,
                seconds / k,
                0.0,
                base_seconds / k,
                stats,
                padding,
                state_mb(settings, base),
                steps,
                load,
            )
        )
    one_alone()
    mean_alone = sum(alone) / len(alone)
    return [replace(row, alone_seconds=mean_alone) for row in out]


def table(rows: Sequence[Row], full_steps: int) -> str:
    lines = [
        "| method | K users | s/user gathered | s/user per-user loop | speed-up "
        f"| est. s/user at {full_steps} steps: gathered / per-user / speed-up "
        "| base fwd+bwd s/user | gathered / base | in model | in optimizers | other "
        "| padding gathered | padding per-user | MB/user state |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        total = r.per_user_seconds * r.k
        other = total - r.stats.model_seconds - r.stats.optimizer_seconds
        gathered, alone = r.full(full_steps)
        lines.append(
            f"| {r.method} | {r.k} | {r.per_user_seconds:.1f} | {r.alone_seconds:.1f} "
            f"| {r.alone_seconds / r.per_user_seconds:.2f}x "
            f"| {gathered:.0f} / {alone:.0f} / {alone / gathered:.2f}x | {r.floor_seconds:.1f} "
            f"| {r.per_user_seconds / r.floor_seconds:.2f} "
            f"| {r.stats.model_seconds / total:.0%} | {r.stats.optimizer_seconds / total:.0%} "
            f"| {other / total:.0%} | {1 - r.stats.tokens / r.stats.padded:.0%} "
            f"| {r.alone_padding:.0%} | {r.user_state_mb:.2f} |"
        )
    return "\n".join(lines)
