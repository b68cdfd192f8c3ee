"""``rag``: the user's top-k documents for this request, retrieved and put in the prompt."""

from __future__ import annotations

from pgen.personalize.base import Modality, Provenance, TextPlan, TextRequest, Tools, chat
from pgen.personalize.prompts import pack_documents, remaining_budget

TEMPLATE = (
    "You are helping one particular user. Texts they wrote:\n{documents}\n\n"
    "Match this user's interests, tone and style."
)


class RetrievalAugmented:
    name = "rag"
    retrieves = True  # its requests' retriever, k and query matter (bench settings)
    modality: Modality = "text"
    adapter_kind: str | None = None
    description = "the user's top-k documents for the request, retrieved into the prompt"

    def prepare(self, requests: list[TextRequest], tools: Tools) -> list[TextPlan]:
        return [self._one(request, tools) for request in requests]

    def _one(self, request: TextRequest, tools: Tools) -> TextPlan:
        retriever = tools.retrievers.get(request.retriever)
        hits = retriever.retrieve(request.user_id, request.query or request.instruction, request.k)
        documents = tools.store.documents(request.user_id, [hit.doc_id for hit in hits])
        notes: list[str] = []
        instruction = tools.instruction(request, notes)
        budget = remaining_budget(tools.text_model, tools.prompt_budget, TEMPLATE, instruction)
        packed = pack_documents(documents, tools.text_model, budget)
        dropped = len(documents) - len(packed.used)
        if dropped:
            notes.append(f"{dropped} of {len(documents)} retrieved documents left out for room")
        provenance = Provenance(documents=packed.used, notes=notes)
        if not packed.used:  # nothing relevant (or no room): the plain instruction
            return TextPlan(
                chat(instruction), provenance=provenance, details={"retriever": retriever.name}
            )
        scores = {hit.doc_id: round(hit.score, 4) for hit in hits}
        return TextPlan(
            chat(instruction, system=TEMPLATE.format(documents=packed.text)),
            provenance=provenance,
            details={"retriever": retriever.name, "scores": [scores[d] for d in packed.used]},
        )
