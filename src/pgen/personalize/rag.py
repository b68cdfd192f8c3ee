"""``rag``: the user's top-k documents for this request, retrieved and put in the prompt."""

from __future__ import annotations

from pgen.personalize.base import Prepared, Request, Tools, chat
from pgen.personalize.prompts import pack_documents, remaining_budget

TEMPLATE = (
    "You are helping one particular user. Texts they wrote:\n{items}\n\n"
    "Match this user's interests, tone and style."
)


class RetrievalAugmented:
    name = "rag"

    def prepare(self, requests: list[Request], tools: Tools) -> list[Prepared]:
        return [self._one(request, tools) for request in requests]

    def _one(self, request: Request, tools: Tools) -> Prepared:
        retriever = tools.retrievers.get(request.retriever)
        hits = retriever.retrieve(request.user_id, request.query or request.instruction, request.k)
        documents = tools.store.documents(request.user_id, [hit.doc_id for hit in hits])
        instruction = tools.instruction(request)
        budget = remaining_budget(tools.text_model, tools.prompt_budget, TEMPLATE, instruction)
        packed = pack_documents(documents, tools.text_model, budget)
        if not packed.used:  # nothing relevant (or no room): the plain instruction
            return Prepared(chat(instruction), details={"retriever": retriever.name})
        scores = {hit.doc_id: round(hit.score, 4) for hit in hits}
        return Prepared(
            chat(instruction, system=TEMPLATE.format(items=packed.text)),
            provenance=packed.used,
            details={"retriever": retriever.name, "scores": [scores[d] for d in packed.used]},
        )
