"""Many users' LoRA adapters trained in one pass over one frozen base (gathered training).

Serving already runs a batch whose rows each go through their own user's adapter
(``models.lora_gather``); this is the same gather with gradients. Every user in training
is a ``Slot``: their own LoRA factors (trainable tensors), their own optimizer, learning
rate schedule, step list (epochs of their own examples, in their own seeded order) and
loss curve. One gathered step takes the next step of every user in the batch: their rows
are sorted by length and cut into chunks of at most ``max_tokens`` padded tokens (little
padding, bounded memory); each chunk runs forward through the frozen base with, in every
target layer, ``x @ A_row^T @ B_row^T`` added for each row's own user, and backward.
Each user's loss is normalized by their own step's size, so the gradients reaching their
factors are exactly those of training them alone; then each user's optimizer steps. A user
whose steps are done leaves the batch (``on_done`` saves them) and the next queued user
takes the place.

What the loss is (token cross-entropy for ``lora``, the DPO loss for ``dpo``) is the
method's ``Objective``; the methods live in ``gathered_lora`` and ``gathered_dpo``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from pgen.training.progress import OnStep, TrainStep
from pgen.training.stopping import StopCheck, stop_if_asked

Row = tuple[list[int], list[int]]  # token ids, labels (-100: no loss on that token)
SLACK = 0.125  # the most padding a row of a length bucket may get, as a share of its width


@dataclass(frozen=True)
class Item:
    """One unit of a user's step: a row (lora), or a chosen and a rejected row (dpo) with
    their reference log-probabilities."""

    rows: tuple[Row, ...]
    reference: tuple[float, ...] = ()

    @property
    def width(self) -> int:
        return max(len(ids) for ids, _ in self.rows)


@dataclass
class Slot:
    """One user's adapter while it trains."""

    index: int  # the request's position in the group
    factors: dict[str, tuple[Any, Any]]  # module -> (A (rank, in), B (out, rank)), trainable
    steps: list[list[Item]]
    optimizer: Any
    learning_rate: Callable[[int], float]  # the user's schedule: step -> rate
    clip: float | None = None  # the user's gradient norm cap (None: none)
    user_id: str = ""  # whose adapter (what ``on_step`` is told)
    losses: list[float] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # the method's own (metadata, beta)

    @property
    def finished(self) -> bool:
        return len(self.losses) >= len(self.steps)

    def parameters(self) -> list[Any]:
        return [tensor for pair in self.factors.values() for tensor in pair]


class Objective(Protocol):
    def norm(self, slot: Slot, items: Sequence[Item]) -> float:
        """What the user's step loss is divided by (their tokens, their pairs)."""
        ...

    def loss(self, slot: Slot, item: Item, logps: Any) -> Any:
        """The item's summed loss from its rows' summed log-probabilities."""
        ...


@dataclass(frozen=True)
class Progress:
    """Where a gathered run stands: users done, training now and waiting; an estimate of
    the seconds left from the seconds per user-step so far."""

    done: int
    in_batch: int
    queued: int
    steps: int  # gathered steps taken
    seconds: float
    eta_seconds: float | None


ProgressCallback = Callable[[Progress], None]


class GatheredBase:
    """The frozen base of a group (one per group: it is read once for every user), with the
    hooks that put each row through its own user's factors."""

    def __init__(
        self, model: Any, tokenizer: Any, targets: Sequence[str], scale: float, dropout: float
    ) -> None:
        import torch

        self.model = model  # the transformers causal LM (frozen)
        self.tokenizer = tokenizer
        self.scale = scale
        self.dropout = dropout
        self.body = model.get_decoder()
        self.head = model.get_output_embeddings()
        if getattr(model.config, "final_logit_softcapping", None):
            raise ValueError("gathered training computes plain logits: no logit soft-capping")
        self.device = next(model.parameters()).device
        self.pad = int(tokenizer.pad_token_id)
        self.modules: dict[str, Any] = {}
        for name, module in model.named_modules():
            base = getattr(module, "base_layer", module)  # PEFT's LoRA layer wraps the linear
            leaf = name.rsplit(".", 1)[-1]
            if leaf in targets and isinstance(base, torch.nn.Linear) and "lora_" not in name:
                self.modules[name.removeprefix("base_model.model.")] = base
        if not self.modules:
            raise ValueError(f"the model has no linear layer named {', '.join(targets)}")

    @contextmanager
    def applied(self, slots: Sequence[Slot], owners: Sequence[int]) -> Iterator[None]:
        """Row i of the next forward passes goes through ``slots[owners[i]]``'s factors."""
        import torch

        index = torch.tensor(owners, device=self.device)
        handles = []
        try:
            for name, module in self.modules.items():
                down = torch.stack([slot.factors[name][0] for slot in slots])[index]
                up = torch.stack([slot.factors[name][1] for slot in slots])[index]

                def add(_m: Any, inputs: Any, output: Any, down: Any = down, up: Any = up) -> Any:
                    x = inputs[0]
                    if self.dropout and self.model.training:
                        x = torch.nn.functional.dropout(x, self.dropout)
                    return output + (x @ down.transpose(1, 2)) @ up.transpose(1, 2) * self.scale

                handles.append(module.register_forward_hook(add))
            yield
        finally:
            for handle in handles:
                handle.remove()

    def row_logps(self, rows: Sequence[Row]) -> Any:
        """Each row's summed log-probability of its labelled tokens (whatever hooks are on):
        the LM head runs on those positions only, not on the prompt or the padding."""
        import torch

        width = max(len(ids) for ids, _ in rows)
        ids = torch.tensor(
            [r[0] + [self.pad] * (width - len(r[0])) for r in rows], device=self.device
        )
        labels = torch.tensor(
            [r[1] + [-100] * (width - len(r[1])) for r in rows], device=self.device
        )
        mask = torch.tensor(
            [[1] * len(r[0]) + [0] * (width - len(r[0])) for r in rows], device=self.device
        )
        hidden = self.body(input_ids=ids, attention_mask=mask).last_hidden_state
        targets = labels[:, 1:]
        chosen = targets != -100
        logits = self.head(hidden[:, :-1][chosen]).float()
        picked = -torch.nn.functional.cross_entropy(logits, targets[chosen], reduction="none")
        owner = torch.arange(len(rows), device=self.device)[:, None].expand_as(targets)[chosen]
        return torch.zeros(len(rows), device=self.device, dtype=picked.dtype).index_add(
            0, owner, picked
        )


def chunks(
    items: Sequence[tuple[int, Item]], max_tokens: int, slack: float = SLACK
) -> list[list[tuple[int, Item]]]:
    """Items longest first, in buckets of similar length: a bucket takes items while its
    rows times its width (padded tokens) stays within ``max_tokens`` and each item is at
    least ``1 - slack`` of the bucket's width (an item alone may exceed ``max_tokens``).
    On a CPU, a row of ~100 tokens already fills the matrix units: a short bucket costs
    little, padding costs its share."""
    ordered = sorted(items, key=lambda pair: -pair[1].width)
    out: list[list[tuple[int, Item]]] = []
    rows = 0
    for pair in ordered:
        width = out[-1][0][1].width if out else 0  # the bucket's first item is its widest
        fits = (rows + len(pair[1].rows)) * width <= max_tokens
        if out and fits and pair[1].width >= (1 - slack) * width:
            out[-1].append(pair)
            rows += len(pair[1].rows)
        else:
            out.append([pair])
            rows = len(pair[1].rows)
    return out


@dataclass
class Stats:
    """What a run did, for the benchmark: padded and real tokens, seconds in the model
    (forward and backward) and in the optimizers."""

    tokens: int = 0
    padded: int = 0
    model_seconds: float = 0.0
    optimizer_seconds: float = 0.0


def gathered_step(
    base: GatheredBase, slots: Sequence[Slot], objective: Objective, max_tokens: int, stats: Stats
) -> None:
    """One step of every slot: their rows forward and backward in length buckets, then
    each user's own optimizer with their own learning rate."""
    import torch

    began = time.perf_counter()
    items = [(s, item) for s, slot in enumerate(slots) for item in slot.steps[len(slot.losses)]]
    norms = [objective.norm(slot, slot.steps[len(slot.losses)]) for slot in slots]
    totals = [0.0] * len(slots)
    base.model.train()
    for chunk in chunks(items, max_tokens):
        owners = [s for s, item in chunk for _ in item.rows]
        rows = [row for _, item in chunk for row in item.rows]
        stats.tokens += sum(len(ids) for ids, _ in rows)
        stats.padded += len(rows) * max(len(ids) for ids, _ in rows)
        with base.applied(slots, owners):
            logps = base.row_logps(rows)
        loss = logps.new_zeros(())
        at = 0
        for s, item in chunk:
            part = objective.loss(slots[s], item, logps[at : at + len(item.rows)]) / norms[s]
            totals[s] += float(part.detach())
            loss = loss + part
            at += len(item.rows)
        loss.backward()
    optimizing = time.perf_counter()
    stats.model_seconds += optimizing - began
    for slot, total in zip(slots, totals, strict=True):
        for group in slot.optimizer.param_groups:
            group["lr"] = slot.learning_rate(len(slot.losses))
        if slot.clip is not None:
            torch.nn.utils.clip_grad_norm_(slot.parameters(), slot.clip)
        slot.optimizer.step()
        slot.optimizer.zero_grad(set_to_none=True)
        slot.losses.append(total)
    stats.optimizer_seconds += time.perf_counter() - optimizing


def run_gathered(
    base: GatheredBase,
    admit: Sequence[Callable[[], Slot]],
    objective: Objective,
    on_done: Callable[[Slot], None],
    *,
    batch_users: int,
    max_tokens: int,
    should_stop: StopCheck | None = None,
    progress: ProgressCallback | None = None,
    stats: Stats | None = None,
    on_step: OnStep | None = None,
) -> Stats:
    """Train every queued user, ``batch_users`` at a time; ``admit[i]()`` builds user i's
    slot when a place frees up (tokenizing, reference passes). ``should_stop`` is asked
    before every step: a stop raises ``TrainingCancelled``, with the users finished so far
    saved and nobody half-trained saved. ``on_step`` is told each user's own step (their
    step count, total and loss), after the users that finished with it are saved."""
    if batch_users < 1:
        raise ValueError(f"batch_users must be at least 1, got {batch_users}")
    stats = stats or Stats()
    queue = deque(admit)
    active: list[Slot] = []
    done = steps = user_steps = admitted_steps = 0
    began = time.perf_counter()
    while queue or active:
        while queue and len(active) < batch_users:
            slot = queue.popleft()()
            admitted_steps += len(slot.steps)
            if slot.finished:  # nothing to train (no steps): saved as it starts
                on_done(slot)
                done += 1
            else:
                active.append(slot)
        if not active:
            continue
        stop_if_asked(should_stop)
        gathered_step(base, active, objective, max_tokens, stats)
        steps += 1
        user_steps += len(active)
        stepped = list(active)
        for slot in [s for s in active if s.finished]:
            on_done(slot)
            done += 1
        active = [s for s in active if not s.finished]
        for slot in stepped:
            if on_step is not None:
                at = TrainStep(len(slot.losses), len(slot.steps), slot.losses[-1], (slot.user_id,))
                on_step(at)
        if progress is not None:
            seconds = time.perf_counter() - began
            left = sum(len(s.steps) - len(s.losses) for s in active)
            left += round(admitted_steps / (done + len(active)) * len(queue))  # mean per user
            eta = seconds / user_steps * left  # at the user-steps per second so far
            progress(Progress(done, len(active), len(queue), steps, seconds, eta))
    base.model.eval()
    return stats
