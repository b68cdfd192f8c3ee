"""``rag``: the user's top-k documents for this request, retrieved and put in the prompt,
with the user's profile attributes, framed by whom the model writes as or for.

The framing is part of the strategy (``pgen bench attribution`` and ``pgen bench
prefeval`` measure it; personalize/frames.py): for a text the user will sign, the model
ghostwrites as the user from their texts; for a question or a request to the assistant, it
answers for them. When no document scores above the retriever's floor ("Write a short
bio" shares no word with a pastry chef's posts), the user's most recent documents stand
in, and the provenance notes say so: an output about the user is better than one about
nobody.

With ``retriever="rspg"`` a trained selector (``pgen.usermodel.selector``) picks the
retriever and k per request; the plan's details say which (``selected``). ``none`` means
the profile attributes alone.
"""

from __future__ import annotations

from pgen.context.records import Document
from pgen.personalize.base import Modality, Provenance, TextPlan, TextRequest, Tools, chat
from pgen.personalize.frames import FRAMINGS, Frame, resolve
from pgen.personalize.prompts import attribute_lines, pack_documents, remaining_budget
from pgen.usermodel.retrievers import Hit
from pgen.usermodel.selector import NO_RETRIEVER, Selecting

CLOSEST = "closest to the request"
RECENT = "their most recent"
# A hit must score above its retriever's floor to count as relevant (BM25 and the fused
# ranks are positive only when something matched; cosine is positive for nearly anything).
FLOORS: dict[str, float] = {"dense": 0.2}


def system_prompt(
    attributes: dict[str, object], documents: str, *, recent: bool, frame: Frame = "author"
) -> str:
    """Whom the model writes as or for, who they are, and from which of their texts."""
    framing = FRAMINGS[frame]
    parts = []
    if attributes:
        parts.append(framing.who.format(attributes=attribute_lines(attributes)))
    if documents:
        what = RECENT if recent else CLOSEST
        parts.append(framing.texts.format(what=what, documents=documents))
    return framing.system(parts)


class RetrievalAugmented:
    name = "rag"
    retrieves = True  # its requests' retriever, k and query matter (bench settings)
    modality: Modality = "text"
    adapter_kind: str | None = None
    description = (
        "the user's profile attributes and top-k documents for the request (their most "
        "recent when none matches, said in the provenance), framed to write as the user or "
        "to answer them"
    )

    def prepare(self, requests: list[TextRequest], tools: Tools) -> list[TextPlan]:
        return [self._one(request, tools) for request in requests]

    def _relevant(
        self, request: TextRequest, tools: Tools, notes: list[str], details: dict[str, object]
    ) -> tuple[list[Hit], str]:
        """(hits above the floor, the retriever's name); else the k most recent documents
        and "recency", said in ``notes``. A selecting retriever (``rspg``) first picks the
        retriever and k, said in ``details["selected"]`` and the notes; ``none`` (chosen
        or asked for) means no documents, and no recent ones stand in."""
        retriever = tools.retrievers.get(request.retriever)
        query, k = request.query or request.instruction, request.k
        if isinstance(retriever, Selecting):
            choice = retriever.select(request.user_id, query)
            details["selected"] = {
                "by": retriever.name,
                "retriever": choice.retriever,
                "k": choice.k,
            }
            notes.append(f"{retriever.name} chose {choice.name} for this request")
            retriever, k = tools.retrievers.get(choice.retriever), choice.k
        if retriever.name == NO_RETRIEVER:
            return [], NO_RETRIEVER
        floor = FLOORS.get(retriever.name, 0.0)
        found = retriever.retrieve(request.user_id, query, k)
        hits = [hit for hit in found if hit.score > floor]
        if hits:
            return hits, retriever.name
        recent = tools.store.recent_doc_ids(request.user_id, k)
        if recent:
            notes.append(
                f"no document matched the request above the {retriever.name} floor ({floor:g}): "
                f"the user's {len(recent)} most recent documents instead"
            )
        return [Hit(doc_id, 0.0) for doc_id in recent], "recency"

    def _one(self, request: TextRequest, tools: Tools) -> TextPlan:
        notes: list[str] = []
        selected: dict[str, object] = {}
        hits, source = self._relevant(request, tools, notes, selected)
        recent = source == "recency"  # the fallback, or the recency retriever itself
        documents: list[Document] = tools.store.documents(
            request.user_id, [hit.doc_id for hit in hits]
        )
        attributes = dict(tools.store.user(request.user_id).profile)
        instruction = tools.instruction(request, notes)
        frame = resolve(request.frame, request.instruction)
        asked = FRAMINGS[frame].ask(instruction)
        around = system_prompt(attributes, " ", recent=recent, frame=frame)  # with the heading
        budget = remaining_budget(tools.text_model, tools.prompt_budget, around, asked)
        packed = pack_documents(documents, tools.text_model, budget)
        dropped = len(documents) - len(packed.used)
        if dropped:
            notes.append(f"{dropped} of {len(documents)} documents left out for room")
        # The selector is an artifact that shaped the output: it chose what was retrieved.
        artifacts = [f"selector/{request.retriever}"] if selected else []
        provenance = Provenance(documents=packed.used, notes=notes, artifacts=artifacts)
        scores = {hit.doc_id: round(hit.score, 4) for hit in hits}
        details: dict[str, object] = {
            "retriever": source,
            "scores": [scores[d] for d in packed.used],
            "frame": frame,
            **selected,
        }
        if not packed.used and not attributes:  # nothing known of the user: the instruction
            return TextPlan(chat(instruction), provenance=provenance, details=details)
        system = tools.fit(
            system_prompt(attributes, packed.text, recent=recent, frame=frame), asked
        )
        return TextPlan(chat(asked, system=system), provenance=provenance, details=details)
