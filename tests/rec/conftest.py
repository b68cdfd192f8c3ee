"""Generated interaction data with a planted structure, for protocol and model tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from pgen.context.records import Interaction, Item
from pgen.recommend.arrays import Sequences, Split, leave_one_out, sequences_from

GROUPS = ("space opera", "cooking show", "jazz concert", "horror film")


def planted_records(
    n_users: int = 160, per_group: int = 12, length: int = 14, noise: float = 0.1, seed: int = 0
) -> tuple[list[Item], list[Interaction]]:
    """Each user keeps to one group of items and walks through it in order (item j is
    followed by j + 1), with a little noise. Every item is about equally popular, so
    popularity alone cannot find the structure but a personal model can."""
    rng = np.random.default_rng(seed)
    items = [
        Item(
            item_id=f"i{g * per_group + j}",
            title=f"{name.title()} {j}",
            text=f"A {name}, episode {j}.",
            attributes={"group": g},
        )
        for g, name in enumerate(GROUPS)
        for j in range(per_group)
    ]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    interactions = []
    for user in range(n_users):
        group = user % len(GROUPS)
        position = int(rng.integers(per_group))
        seen: set[int] = set()
        for step in range(length):
            if rng.random() < noise:
                item = int(rng.integers(len(items)))
            else:
                item = group * per_group + (position + step) % per_group
            if item in seen:
                continue
            seen.add(item)
            interactions.append(
                Interaction(
                    user_id=f"u{user}", item_id=f"i{item}", time=start + timedelta(hours=step)
                )
            )
    return items, interactions


@pytest.fixture(scope="session")
def planted() -> Sequences:
    items, interactions = planted_records()
    return sequences_from(
        interactions, [i.item_id for i in items], {i.item_id: i.title for i in items}
    )


@pytest.fixture(scope="session")
def planted_split(planted: Sequences) -> Split:
    return leave_one_out(planted)
