"""Does a freshly trained adapter change anything? Measured after every lora / dpo run,
through the serving model exactly as a request would apply it:

- the loss (per token) of the user's own documents, held out from training when the
  user had enough of them, with the adapter and without (the base): lower after is what
  the adapter learned about how the user writes;
- the share of a fixed set of probe prompts whose greedy reply changes with the adapter.
  An adapter can lower the loss and still change no greedy reply: then a user sees nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pgen.context.base import ContextStore
from pgen.models.base import AdapterRef, GenerationSettings, Message, TextModel
from pgen.training.examples import Example, user_examples

PROBES = (
    "What are you working on these days?",
    "Tell me about your weekend.",
    "Write a short note about something you bought recently.",
    "What do you think about the news this week?",
    "Describe your favourite place.",
    "Give me one piece of advice.",
    "What did you have for dinner yesterday?",
    "Write two sentences about your job.",
)
PROBE_TOKENS = 24
MEASURED = 8  # documents at most (the newest): the loss is a check, not a benchmark
_BASE_REPLIES: dict[str, list[str]] = {}  # per base model: the probes' greedy replies


def _chat(instruction: str) -> list[Message]:
    from pgen.personalize.base import chat  # at call: personalize imports training

    return chat(instruction)


def token_loss(model: TextModel, examples: Sequence[Example], ref: AdapterRef | None) -> float:
    """Mean per-token loss of the examples' outputs after their prompts (end token too)."""
    scorer: Any = model
    total = tokens = 0.0
    for example in examples:
        logp = scorer.choice_logprobs([_chat(example.instruction)], [example.output], [ref])
        total -= float(logp[0, 0])
        tokens += len(scorer.tokenizer(example.output, add_special_tokens=False)["input_ids"]) + 1
    return total / tokens


def adapter_effect(
    store: ContextStore,
    model: TextModel,
    kind: str,
    user_id: str,
    folder: Path,
    held_out_ids: Sequence[str] = (),
) -> dict[str, Any]:
    """The adapter in ``folder`` against the base: document loss before and after, and the
    share of probe prompts whose greedy reply changed."""
    if not hasattr(model, "choice_logprobs") or not hasattr(model, "tokenizer"):
        return {"skipped": f"{model.name} cannot score text locally"}
    began = time.perf_counter()
    # The name serving gives it: the backend's cache knows a retrained adapter by its
    # folder's weights version, so the one measured is the one just saved.
    ref = AdapterRef(kind, f"{kind}-{user_id}", folder)
    examples = user_examples(store, user_id)
    held = [e for e in examples if e.doc_id in set(held_out_ids)]
    measured = (held or examples)[-MEASURED:]
    effect: dict[str, Any] = {}
    if measured:
        effect["loss_on"] = (
            "held-out documents" if held else "training documents (too few to hold out)"
        )
        if kind != "lora":
            effect["loss_on"] = "the user's documents (not trained on)"
        effect["documents"] = len(measured)
        effect["loss_before"] = round(token_loss(model, measured, None), 4)
        effect["loss_after"] = round(token_loss(model, measured, ref), 4)
    greedy = GenerationSettings(max_new_tokens=PROBE_TOKENS)
    chats = [_chat(p) for p in PROBES]
    base = f"{model.name}@{getattr(model, 'path', '')}"
    if base not in _BASE_REPLIES:
        _BASE_REPLIES[base] = model.generate(chats, greedy)
    replies = model.generate(chats, greedy, [ref] * len(chats))
    changed = sum(a != b for a, b in zip(_BASE_REPLIES[base], replies, strict=True))
    effect["probes"] = len(PROBES)
    effect["probes_changed"] = changed / len(PROBES)
    effect["seconds"] = round(time.perf_counter() - began, 2)
    return effect
