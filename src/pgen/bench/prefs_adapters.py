"""The DPO adapters of ``bench prefs``: which to train (one per distinct user and pooled
users), in rounds of one adapter per user (a user's dpo folder holds one at a time), each
round on the bench's runner (``pgen.bench.training``), each adapter moved out of the way
of the next round with what its metadata says."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pgen.bench.training import BenchTraining
from pgen.context.base import ContextStore
from pgen.models.base import TextModel
from pgen.training.dpo import DpoSettings
from pgen.training.registry import TrainRequest

STORE_FILE = "prefs.sqlite"  # the scratch store: train pairs only
Key = tuple[str, tuple[str, ...]]  # whose adapter, over which other users' pairs


@dataclass(frozen=True)
class Planned:
    """One DPO adapter to train: whose, over which users' pairs, for which method."""

    method: str
    user: str
    cohort: tuple[str, ...]
    extra: tuple[tuple[str, Any], ...] = ()  # more DpoSettings fields (cohort-similar's)

    @property
    def key(self) -> Key:
        return (self.user, tuple(sorted(self.cohort)))


def plan_adapters(
    users: list[str], cohorts: dict[str, tuple[str, ...]], similar: dict[str, Any], space: str
) -> list[Planned]:
    """Every adapter the methods need, in order: ``global`` (the first user's, over all),
    then per user ``user``, ``cohort``, ``cohort-similar``. The same pairs train the same
    adapter (seeded): a key seen before is not planned again."""
    wanted = [Planned("global", users[0], tuple(users[1:]))]
    for user in users:
        near = similar[user]
        wanted += [
            Planned("user", user, ()),
            Planned("cohort", user, cohorts[user]),
            Planned(
                "cohort-similar",
                user,
                tuple(u for u, _ in near),
                (("cohort_similarity", tuple(s for _, s in near)), ("cohort_space", space)),
            ),
        ]
    first: dict[Key, Planned] = {}
    for planned in wanted:
        first.setdefault(planned.key, planned)
    return list(first.values())


def rounds(planned: list[Planned]) -> list[list[Planned]]:
    """Each adapter in the first round without its user: a user's dpo folder holds one
    adapter at a time, and a runner trains a round's users at once."""
    found: list[list[Planned]] = []
    for one in planned:
        for group in found:
            if all(p.user != one.user for p in group):
                group.append(one)
                break
        else:
            found.append([one])
    return found


def train_planned(
    model: TextModel,
    store: ContextStore,
    scratch: Path,
    planned: list[Planned],
    settings: DpoSettings,
    training: BenchTraining,
) -> dict[Key, tuple[Path, float, dict[str, Any]]]:
    """Every planned adapter trained on ``training``'s runner, round by round, each moved
    out of its user's dpo folder (the next round replaces it): key -> (folder, training
    seconds, what its metadata says)."""
    from pgen.context.artifacts import read_meta

    trained: dict[Key, tuple[Path, float, dict[str, Any]]] = {}
    for group in rounds(planned):
        requests = [
            TrainRequest(
                p.user, "dpo", settings=replace(settings, cohort=p.cohort, **dict(p.extra))
            )
            for p in group
        ]
        results = training.train(store, model, requests, scratch / STORE_FILE)
        for one, result in zip(group, results, strict=True):
            meta = read_meta(result.artifact)
            kept = scratch / one.method / one.user
            kept.parent.mkdir(parents=True, exist_ok=True)
            result.artifact.replace(kept)
            seconds = float(meta.extra.get("seconds", result.seconds)) if meta else result.seconds
            record = {
                "method": one.method,
                "cohort": list(one.cohort),
                "base_model": meta.base_model if meta else "",
                "fingerprint": meta.fingerprint if meta else "",
                "settings": meta.settings if meta else {},
            }
            trained[one.key] = (kept, seconds, record)
    return trained
