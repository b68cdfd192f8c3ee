"""Delete-user for adapters trained on more than one user's data.

A user's own adapters are their artifacts and go with them. Two kinds hold a user's data
while belonging to no one or to someone else: the shared task adapter (``task-lora``, OPPU
stage 1, trained over many users' examples) and another user's ``dpo`` adapter trained with
them in its ``cohort``. Neither can be edited to forget one user's examples, so both are
removed, with the command that retrains them. Adapters that started from a removed task
adapter are then stale (their fingerprint names it) and are refused until retrained.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pgen.context.artifacts import read_meta
from pgen.context.base import ContextStore


def _holds(folder: Path, key: str, user_id: str) -> bool:
    """Whether the adapter in ``folder`` lists ``user_id`` under ``extra[key]``; an adapter
    that cannot say (unreadable, or from before the list was kept) may hold them."""
    try:
        meta = read_meta(folder)
    except (OSError, ValueError, TypeError):
        return True
    if meta is None:
        return False  # no finished adapter here: nothing is ever loaded from it
    listed = meta.extra.get(key)
    return not isinstance(listed, list) or user_id in listed


def forget_user_in_adapters(store: ContextStore, user_id: str) -> list[str]:
    """Remove every adapter of others that was trained on ``user_id``'s data; one message
    per adapter removed."""
    messages = []
    for folder in store.shared_paths("task-lora"):
        if _holds(folder, "user_ids", user_id):
            shutil.rmtree(folder, ignore_errors=True)
            messages.append(
                f"shared task adapter {folder.name!r} removed: it was trained on the user's "
                "documents; retrain it with `pgen train --method task-lora`"
            )
    for other in store.users():
        if other.user_id == user_id:
            continue
        for (kind, _name), folder in store.artifacts(other.user_id).items():
            if kind == "dpo" and folder.is_dir() and _holds(folder, "cohort", user_id):
                shutil.rmtree(folder, ignore_errors=True)
                messages.append(
                    f"the dpo adapter of another user, trained with this user in its cohort, "
                    f"removed; retrain it with `pgen train --user {other.user_id} --method dpo`"
                )
    return messages
