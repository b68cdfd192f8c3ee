"""The user's stated preferences in every personalized text prompt.

A preference the user stated ("I'm vegetarian") goes into the system message of every
text strategy but the baseline (``none``, which declares ``stated_preferences = False``),
however the strategy builds the rest: the most relevant to the request first, then the
newest (``pgen.usermodel.stated.ranked``), at most ``1 / PREFERENCE_SHARE`` of the prompt
budget. The strategy fits its own part (documents, summary, earlier turns) to what they
leave, so the prompt still fits. The provenance names the preference records used, and
says how many were left out for room.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pgen.components import (
    MESSAGE_TOKENS,
    TextPlan,
    TextRequest,
    Tools,
    prepare_with_history,
)
from pgen.context.records import Preference
from pgen.models.base import Chat, Message, TextModel
from pgen.usermodel.stated import ranked

PREFERENCE_SHARE = 4  # stated preferences get at most a quarter of the prompt budget
HEADING = "This user has told you what they want and avoid; always honour it:"


def preference_block(
    preferences: list[Preference], model: TextModel, budget: int
) -> tuple[str, list[str]]:
    """The preferences as a list under a heading, in the given order, as many as fit
    ``budget`` tokens (a long one that does not fit is skipped, shorter ones after it may
    still go in); and the ids of those that went in."""
    cost = model.count_tokens(HEADING) + 1
    lines: list[str] = []
    used: list[str] = []
    for preference in preferences:
        line = "- " + " ".join(preference.text.split())
        more = model.count_tokens(line) + 1
        if cost + more > budget:
            continue
        cost += more
        lines.append(line)
        used.append(preference.preference_id)
    return ("\n".join([HEADING, *lines]) if lines else ""), used


def with_preferences(chat: Chat, block: str) -> Chat:
    """The chat with the block at the end of its system message (one is added if none)."""
    if chat and chat[0].role == "system":
        return [Message("system", f"{chat[0].content}\n\n{block}"), *chat[1:]]
    return [Message("system", block), *chat]


def prepare_text(strategy: Any, requests: list[TextRequest], tools: Tools) -> list[TextPlan]:
    """The text modality's plans: the strategy's (with earlier turns, ``prepare_with_history``)
    and each user's stated preferences in the system message."""
    if not getattr(strategy, "stated_preferences", True):
        return prepare_with_history(strategy, requests, tools)
    blocks: dict[int, tuple[list[Preference], str, list[str]]] = {}
    share = tools.prompt_budget // PREFERENCE_SHARE
    for index, request in enumerate(requests):
        stated = tools.store.preferences(request.user_id)
        if not stated:
            continue
        order = ranked(stated, request.query or request.instruction)
        blocks[index] = (order, *preference_block(order, tools.text_model, share))
    plain = [i for i in range(len(requests)) if i not in blocks]
    prepared = prepare_with_history(strategy, [requests[i] for i in plain], tools)
    plans = dict(zip(plain, prepared, strict=True))
    for index, (order, block, used) in blocks.items():
        total = len(order)
        cost = tools.text_model.count_tokens(block) + MESSAGE_TOKENS if block else 0
        narrowed = replace(tools, prompt_tokens=max(1, tools.prompt_budget - cost))
        plan = prepare_with_history(strategy, [requests[index]], narrowed)[0]
        # A preference whose turn the strategy put in the prompt is not said twice (the
        # block only loses lines, so the prompt still fits).
        shown = set(plan.provenance.documents)
        repeated = {p.preference_id for p in order if p.source in shown}
        if repeated & set(used):
            kept = [p for p in order if p.preference_id in used and p.preference_id not in repeated]
            block, used = preference_block(kept, tools.text_model, share)
            total -= len(repeated)
        if block:
            plan.chat = with_preferences(plan.chat, block)
        plan.provenance.preferences = used
        if len(used) < total:
            plan.provenance.notes.append(
                f"{total - len(used)} of {total} stated preferences left out for room "
                f"(at most 1/{PREFERENCE_SHARE} of the {tools.prompt_budget}-token prompt)"
            )
        plans[index] = plan
    return [plans[i] for i in range(len(requests))]
