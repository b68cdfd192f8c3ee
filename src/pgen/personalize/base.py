"""The one strategy contract, for every modality.

A strategy is typed over its request and its plan (``pgen.components``): it turns a batch
of requests into plans (the model input of its modality, the user's adapter to apply for
that request only, and the ``Provenance`` of what shaped it). It declares what it needs:
whether it retrieves (its requests' retriever, k and query matter) and which adapter kind
of the user's it applies, if any. Strategies run through their modality's executor
(``pgen.run.modalities``); they never generate themselves.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from pgen.components import (
    SYSTEM,
    AnswerRequest,
    ImagePlan,
    ImageRequest,
    Modality,
    Provenance,
    TextPlan,
    TextRequest,
    Tools,
    VisionPlan,
    chat,
    image_tools,
)
from pgen.models.base import AdapterRef

RequestT = TypeVar("RequestT")
ToolsT = TypeVar("ToolsT", contravariant=True)
PlanT = TypeVar("PlanT")


class Strategy(Protocol[RequestT, ToolsT, PlanT]):
    """How personalization enters generation for one modality."""

    @property
    def name(self) -> str: ...

    @property
    def modality(self) -> Modality: ...

    @property
    def description(self) -> str: ...

    @property
    def retrieves(self) -> bool:
        """Whether its requests' retriever, k and query matter (benchmark grids vary them)."""
        ...

    @property
    def adapter_kind(self) -> str | None:
        """The kind of the user's adapter it applies (``lora``, ``dpo``, a subject's), if any."""
        ...

    def prepare(self, requests: list[RequestT], tools: ToolsT) -> list[PlanT]:
        """Plans for a batch of requests (a batch lets strategies batch model calls)."""
        ...


AnyStrategy = Strategy[Any, Any, Any]


class NoPersonalization:
    """The baseline: the instruction alone."""

    name = "none"
    modality: Modality = "text"
    description = "the instruction alone (the baseline of every comparison)"
    retrieves = False
    adapter_kind: str | None = None
    stated_preferences = False  # the baseline stays unpersonalized: no stated preferences

    def prepare(self, requests: list[TextRequest], tools: Tools) -> list[TextPlan]:
        prepared = []
        for request in requests:
            notes: list[str] = []
            instruction = tools.instruction(request, notes)
            prepared.append(TextPlan(chat(instruction), provenance=Provenance(notes=notes)))
        return prepared


__all__ = [
    "SYSTEM",
    "AdapterRef",
    "AnswerRequest",
    "AnyStrategy",
    "ImagePlan",
    "ImageRequest",
    "Modality",
    "NoPersonalization",
    "Provenance",
    "Strategy",
    "TextPlan",
    "TextRequest",
    "Tools",
    "VisionPlan",
    "chat",
    "image_tools",
]
