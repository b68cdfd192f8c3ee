"""Preferences from feedback: a user's thumbs and chosen/rejected verdicts as preference
pairs (what DPO learns from, what a dpo adapter's staleness is measured against, and what
cohorts are built from)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pgen.context.artifacts import ArtifactMeta, pairs_fingerprint
from pgen.context.base import ContextStore, OutputNotFoundError
from pgen.errors import InvalidRequest


@dataclass(frozen=True)
class Pair:
    user_id: str
    prompt: str  # the instruction
    chosen: str
    rejected: str
    feedback: tuple[str, ...]  # the feedback ids it came from
    time: str = ""  # ISO time of the latest of them ("" when undated)


class FeedbackError(InvalidRequest):
    pass


def feedback_pairs(store: ContextStore, user_id: str) -> list[Pair]:
    """The user's feedback as preference pairs, oldest first where dated."""
    pairs: list[Pair] = []
    thumbs: dict[str, dict[int, list[tuple[str, str, str]]]] = {}
    for item in store.feedback(user_id):
        stamp = item.time.isoformat() if item.time else ""
        if item.chosen is not None and item.rejected is not None:
            prompt = item.prompt
            if item.output_id is not None:
                prompt = (
                    prompt or _output(store, user_id, item.feedback_id, item.output_id).instruction
                )
            if not prompt:
                raise FeedbackError(
                    f"feedback {item.feedback_id!r} of user {user_id!r}: a chosen/rejected pair "
                    "needs its prompt (or the output_id it answers)"
                )
            pairs.append(
                Pair(user_id, prompt, item.chosen, item.rejected, (item.feedback_id,), stamp)
            )
        elif item.output_id is not None and item.thumbs is not None:
            output = _output(store, user_id, item.feedback_id, item.output_id)
            by_verdict = thumbs.setdefault(output.instruction, {1: [], -1: []})
            by_verdict[item.thumbs].append((output.text, item.feedback_id, stamp))
    for instruction, verdicts in thumbs.items():
        for up, up_id, up_time in verdicts[1]:
            for down, down_id, down_time in verdicts[-1]:
                if up != down:
                    pairs.append(
                        Pair(
                            user_id,
                            instruction,
                            up,
                            down,
                            (up_id, down_id),
                            max(up_time, down_time),
                        )
                    )
    return sorted(pairs, key=lambda p: (p.time, p.feedback))


def _output(store: ContextStore, user_id: str, feedback_id: str, output_id: str) -> Any:
    try:
        return store.output(user_id, output_id)
    except OutputNotFoundError:
        raise FeedbackError(
            f"feedback {feedback_id!r} of user {user_id!r} names output {output_id!r}, "
            "which is not one of this user's outputs"
        ) from None


def feedback_fingerprint(
    store: ContextStore, user_id: str, meta: ArtifactMeta | None = None
) -> str:
    """The pairs a dpo adapter learns from: the user's and their cohort's."""
    cohort = list(meta.extra.get("cohort", [])) if meta is not None else []
    return pairs_fingerprint([p for u in [user_id, *cohort] for p in feedback_pairs(store, u)])
