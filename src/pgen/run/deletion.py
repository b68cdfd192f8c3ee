"""Forgetting a user everywhere: saved recommenders, adapters of others trained on their
data, every row, vector, summary, output, media file and artifact of theirs in the store,
and the in-memory indexes."""

from __future__ import annotations

import logging

from pgen.context.base import ContextStore
from pgen.usermodel.retrievers import Retrievers

log = logging.getLogger("pgen")


def forget_user(store: ContextStore, retrievers: Retrievers, user_id: str) -> dict[str, int]:
    from pgen.recommend.unlearn import forget_user as forget_in_recommenders
    from pgen.training.shared_adapters import forget_user_in_adapters

    # Saved recommenders first: they list the user even when the store no longer does
    # (a crash after an earlier delete), and the store then says "not found".
    messages = forget_in_recommenders(store, user_id)
    # Adapters of others trained on this user's data (a shared task adapter, a cohort's
    # dpo) cannot forget one user's examples: they go, with the command that retrains.
    shared = forget_user_in_adapters(store, user_id)
    for message in [*messages, *shared]:
        log.warning(message)
    counts = store.delete_user(user_id)
    counts["recommenders"] = len(messages)
    counts["shared_adapters"] = len(shared)
    retrievers.forget(user_id)
    return counts
