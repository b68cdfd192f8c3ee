"""Interactions as arrays for training: index maps and time-ordered item sequences.

``Sequences`` is read back from the store (or built from records); ``leave_one_out``
splits it the way the recommender field does: per user, in time order, the last item is
the test target and the one before it the validation target.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from pgen.context.artifacts import interactions_fingerprint
from pgen.context.base import ContextStore
from pgen.context.records import Interaction

# Only hand-made records lack a time: the loaders in data.py give undated interactions a
# synthetic time in file order (data.undated_time), so their order survives the store.
_EPOCH = datetime.min


@dataclass(frozen=True)
class Sequences:
    """Each user's items in time order, as indices into ``item_ids``."""

    user_ids: list[str]
    item_ids: list[str]
    sequences: list[np.ndarray]  # int64 item indices, oldest first, one array per user
    titles: list[str]  # item titles by index ("" when the catalog has none)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    def user_index(self) -> dict[str, int]:
        return {user: index for index, user in enumerate(self.user_ids)}

    def item_index(self) -> dict[str, int]:
        return {item: index for index, item in enumerate(self.item_ids)}

    def fingerprint(self) -> str:
        """A hash of exactly what a model trains and is evaluated on."""
        return interactions_fingerprint(self.user_ids, self.item_ids, self.sequences)


def sequences_from(
    interactions: Iterable[Interaction],
    item_ids: Sequence[str] | None = None,
    titles: dict[str, str] | None = None,
) -> Sequences:
    """Order each user's interactions by (time, item id): ties get a fixed order.

    Items come from ``item_ids`` (the whole catalog, so never-seen items are still ranked)
    or, without it, from the interactions in order of first appearance.
    """
    per_user: dict[str, list[tuple[datetime, str]]] = {}
    seen: dict[str, None] = {}
    for record in interactions:
        when = record.time.replace(tzinfo=None) if record.time else _EPOCH
        per_user.setdefault(record.user_id, []).append((when, record.item_id))
        seen.setdefault(record.item_id)
    catalog = list(item_ids) if item_ids is not None else list(seen)
    index = {item: i for i, item in enumerate(catalog)}
    missing = [item for item in seen if item not in index]
    if missing:
        raise ValueError(f"interactions name items not in the catalog: {missing[:5]}")
    users = sorted(per_user)
    sequences = [
        np.array([index[item] for _, item in sorted(per_user[user])], dtype=np.int64)
        for user in users
    ]
    names = titles or {}
    return Sequences(users, catalog, sequences, [names.get(item, "") for item in catalog])


def sequences_from_store(store: ContextStore) -> Sequences:
    """Every user's interactions in the store, over the store's whole catalog."""
    items = store.items()
    return sequences_from(
        store.all_interactions(),
        [item.item_id for item in items],
        {item.item_id: item.title for item in items},
    )


@dataclass(frozen=True)
class Split:
    """Leave-one-out: ``train`` sequences, and per evaluated user the valid / test targets."""

    data: Sequences
    train: list[np.ndarray]  # per user: items before the validation target
    eval_users: np.ndarray  # users with a validation and a test target (>= 3 interactions)
    valid_items: np.ndarray  # per eval user
    test_items: np.ndarray  # per eval user

    def history(self, phase: str) -> list[np.ndarray]:
        """What a model may see before predicting ``phase`` targets, per eval user."""
        if phase == "valid":
            return [self.train[u] for u in self.eval_users]
        if phase == "test":
            return [
                np.append(self.train[u], self.valid_items[k]) for k, u in enumerate(self.eval_users)
            ]
        raise ValueError(f"phase must be 'valid' or 'test', got {phase!r}")

    def targets(self, phase: str) -> np.ndarray:
        return self.valid_items if phase == "valid" else self.test_items


def leave_one_out(data: Sequences) -> Split:
    """Last item per user = test, second last = validation; the rest trains.

    Users with fewer than three interactions only train (they have no target to spare).
    """
    train, users, valid, test = [], [], [], []
    for user, sequence in enumerate(data.sequences):
        if len(sequence) >= 3:
            train.append(sequence[:-2])
            users.append(user)
            valid.append(sequence[-2])
            test.append(sequence[-1])
        else:
            train.append(sequence)
    as_array = np.array
    return Split(
        data,
        train,
        as_array(users, dtype=np.int64),
        as_array(valid, dtype=np.int64),
        as_array(test, dtype=np.int64),
    )


def holdout_last(data: Sequences) -> Split:
    """For serving: train on all but each user's last item, validate on that last item.

    The "test" targets repeat the validation ones; a model trained this way is then used
    with each user's whole sequence as history.
    """
    train, users, valid = [], [], []
    for user, sequence in enumerate(data.sequences):
        if len(sequence) >= 2:
            train.append(sequence[:-1])
            users.append(user)
            valid.append(sequence[-1])
        else:
            train.append(sequence)
    targets = np.array(valid, dtype=np.int64)
    return Split(data, train, np.array(users, dtype=np.int64), targets, targets)
