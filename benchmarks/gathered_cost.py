"""Gathered training against the per-user loop, interleaved in one process (run from
``training_cost.py --gathered 1,4,16``): the machine is shared, so each gathered run sits
between two per-user runs and load hits both sides alike.

For each K: K users' ``lora`` (50 reviews each) or ``dpo`` (20 pairs each) trained
gathered, capped at ``steps`` optimizer steps per user, beside per-user runs of the same
cap; and the floor: the frozen base's own forward and backward (to its inputs, no LoRA)
over exactly the gathered run's chunks of tokens.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch

from pgen.context.sqlite import SQLiteStore
from pgen.models.base import TextModel
from pgen.training.dpo import DpoSettings, train_user_dpo, training_pairs
from pgen.training.gathered import Row as Row_
from pgen.training.gathered import Stats, chunks
from pgen.training.gathered_dpo import pair_rows, train_dpo_group
from pgen.training.gathered_lora import Gathering, train_lora_group
from pgen.training.text_lora import (
    LoraSettings,
    encode,
    step_indices,
    train_user_lora,
    user_split,
)

ALONE_SEED = 1  # the per-user runs' seed: not the gathered runs', so never "current"


@dataclass
class Row:
    method: str
    k: int
    per_user_seconds: float  # gathered, per user
    alone_seconds: float  # per-user loop, per user: its median s/token × the group's tokens
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


class Method(Protocol):
    name: str
    shape: LoraSettings  # the adapters' (for their memory)

    def alone(self, user: str) -> None: ...

    def gathered(self, users: Sequence[str], gathering: Gathering) -> None: ...

    def rows(self, users: Sequence[str], seed: int = 0) -> tuple[list[Row_], list[list[int]]]:
        """Every row the capped run with ``seed`` trains on (for the floor), and the
        per-user loop's batches' row lengths (for its padding share)."""
        ...


class LoraCost:
    name = "lora"

    def __init__(self, store: SQLiteStore, model: TextModel, tokenizer: Any, steps: int) -> None:
        self.store, self.model, self.tokenizer = store, model, tokenizer
        self.shape = LoraSettings(max_steps=steps, progress=False)

    def alone(self, user: str) -> None:  # another seed than the gathered runs': not "current"
        train_user_lora(self.store, user, self.model, replace(self.shape, seed=ALONE_SEED))

    def gathered(self, users: Sequence[str], gathering: Gathering) -> None:
        train_lora_group(self.store, [(u, self.shape) for u in users], self.model, gathering)

    def rows(self, users: Sequence[str], seed: int = 0) -> tuple[list[Row_], list[list[int]]]:
        settings = self.shape
        rows, batches = [], []
        for user in users:
            train = user_split(self.store, user, settings)[0]
            encoded = [encode(self.tokenizer, e, settings.max_length) for e in train]
            for step in step_indices(
                len(encoded), settings.batch_size, settings.epochs, settings.max_steps, seed
            ):
                rows += [encoded[i] for i in step]
                batches.append([len(encoded[i][0]) for i in step])
        return rows, batches


class DpoCost:
    name = "dpo"

    def __init__(self, store: SQLiteStore, model: TextModel, tokenizer: Any, steps: int) -> None:
        self.store, self.model, self.tokenizer = store, model, tokenizer
        self.settings = DpoSettings(max_steps=steps, progress=False, measure=False)
        self.shape = self.settings.lora

    def alone(self, user: str) -> None:
        train_user_dpo(self.store, user, self.model, replace(self.settings, seed=ALONE_SEED))

    def gathered(self, users: Sequence[str], gathering: Gathering) -> None:
        train_dpo_group(self.store, [(u, self.settings) for u in users], self.model, gathering)

    def rows(self, users: Sequence[str], seed: int = 0) -> tuple[list[Row_], list[list[int]]]:
        settings = self.settings
        rows, batches = [], []
        for user in users:
            train = training_pairs(self.store, user, settings)[2]
            encoded = [pair_rows(self.tokenizer, p, settings.max_length) for p in train]
            for step in step_indices(
                len(encoded), settings.batch_size, settings.epochs, settings.max_steps, seed
            ):
                rows += [row for i in step for row in encoded[i]]
                batches.append([len(row[0]) for i in step for row in encoded[i]])
        return rows, batches


def state_mb(settings: LoraSettings, model: Any) -> float:
    """A user's adapter while it trains: the factors, their gradients and AdamW's two
    moments (4 tensors of float32 per factor element)."""
    elements = 0
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in settings.target_modules and hasattr(module, "in_features"):
            elements += settings.rank * (module.in_features + module.out_features)
    return elements * 4 * 4 / 2**20


def real_tokens(rows: Sequence[Row_]) -> int:
    """Tokens of ``rows``, padding not counted."""
    return sum(len(ids) for ids, _ in rows)


def compare(
    method: Method,
    users: Sequence[str],
    base: Any,
    load: float,
    ks: Sequence[int],
    steps: int,
    log: Callable[[str], None],
) -> list[Row]:
    """Per-user, gathered K, per-user, gathered K', ..., per-user: interleaved, after one
    per-user run that is not counted (a process's first run pays one-time costs).

    Users differ in how many tokens their capped run trains on (reviews run from a line to
    a page), so a per-user run is measured as seconds per token of its own user, and the
    loop's cost for a gathered group is the median of those rates times the group's own
    tokens: what the loop would have paid for the same users. Comparing raw seconds of
    different users made the loop's cost swing from 5.9 to 14.9 s a user in one run."""
    out: list[Row] = []
    rates: list[float] = []  # per-user loop: seconds per real token
    at = 0
    warm_up = users[0]  # trained first and never counted (the first counted run trains it again)
    began = time.perf_counter()
    method.alone(warm_up)
    log(f"{method.name} alone (warm-up, not counted): {time.perf_counter() - began:.1f} s")

    def one_alone() -> None:
        user = users[len(rates)]
        began = time.perf_counter()
        method.alone(user)
        seconds = time.perf_counter() - began
        tokens = real_tokens(method.rows([user], ALONE_SEED)[0])
        rates.append(seconds / tokens)
        log(f"{method.name} alone: {seconds:.1f} s for {tokens} tokens")

    groups = []
    for k in ks:
        one_alone()
        group = list(users[at : at + k])
        at += k
        stats = Stats()
        gathering = Gathering(batch_users=k, stats=stats)
        began = time.perf_counter()
        method.gathered(group, gathering)
        seconds = time.perf_counter() - began
        rows, batches = method.rows(group)
        base_seconds = floor(base, rows, gathering.max_tokens)
        log(f"{method.name} gathered K={k}: {seconds:.1f} s, floor {base_seconds:.1f} s, {stats}")
        groups.append(real_tokens(rows))
        out.append(
            Row(
                method.name,
                k,
                seconds / k,
                0.0,
                base_seconds / k,
                stats,
                padding_share(batches),
                state_mb(method.shape, base),
                steps,
                load,
            )
        )
    one_alone()
    rate = statistics.median(rates)
    log(f"{method.name} per-user loop: {rate * 1000:.2f} s per 1,000 tokens (median)")
    return [
        replace(row, alone_seconds=rate * tokens / row.k)
        for row, tokens in zip(out, groups, strict=True)
    ]


def table(rows: Sequence[Row], full_steps: dict[str, int]) -> str:
    lines = [
        "| method | K users | s/user gathered | s/user per-user loop | speed-up "
        "| est. s/user of a full run: gathered / per-user / speed-up "
        "| base fwd+bwd s/user | gathered / base | in model | in optimizers | other "
        "| padding gathered | padding per-user | MB/user state |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        total = r.per_user_seconds * r.k
        other = total - r.stats.model_seconds - r.stats.optimizer_seconds
        gathered, alone = r.full(full_steps[r.method])
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
