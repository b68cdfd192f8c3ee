"""``profile``: a preference summary of the user, written by the text model from their
documents, cached in the store and rewritten when the documents change."""

from __future__ import annotations

from pgen.context.base import ContextStore
from pgen.models.base import GenerationConfig
from pgen.personalize.base import Modality, Prepared, Provenance, Request, Tools, chat
from pgen.personalize.prompts import pack_documents, remaining_budget

SUMMARY_VERSION = "v1"  # bump when the summary prompt changes: old summaries are then stale
SUMMARY_DOCS = 8  # the most recent documents the summary is written from
SUMMARIZE = (
    "Here are texts written by one user:\n{documents}\n\n"
    "In three sentences, describe this user: the topics they care about, their tone, "
    "and how long and how formal their writing is."
)
TEMPLATE = (
    "You are helping one particular user. About them: {summary}{attributes}\n\n"
    "Match this user's interests, tone and style."
)


def documents_version(store: ContextStore, user_id: str) -> str:
    """Changes whenever any of the user's documents is added, edited or removed."""
    revision = store.revision(user_id)
    return f"revision-{revision.incarnation}-{revision.number}"


class ProfileSummary:
    name = "profile"
    modality: Modality = "text"
    description = "a summary of the user written by the model (cached), with their attributes"

    def summaries(self, user_ids: list[str], tools: Tools) -> dict[str, tuple[str, list[str]]]:
        """user -> (summary, doc ids it was written from); missing ones in one batch."""
        key = f"{tools.text_model.name}|{SUMMARY_VERSION}"
        found: dict[str, tuple[str, list[str]]] = {}
        todo: list[tuple[str, str, list[str], str]] = []  # user, docs hash, used ids, prompt
        for user_id in dict.fromkeys(user_ids):
            recent = tools.store.recent_doc_ids(user_id, SUMMARY_DOCS)
            documents = tools.store.documents(user_id, recent)
            budget = remaining_budget(tools.text_model, tools.prompt_budget, SUMMARIZE)
            packed = pack_documents(documents, tools.text_model, budget)
            digest = documents_version(tools.store, user_id)
            cached = tools.store.summary(user_id, key, digest)
            if cached is not None:
                found[user_id] = (cached, packed.used)
            elif packed.used:
                todo.append((user_id, digest, packed.used, SUMMARIZE.format(documents=packed.text)))
            else:
                found[user_id] = ("", [])
        if todo:
            settings = GenerationConfig(max_new_tokens=80, repetition_penalty=1.15)
            texts = tools.text_model.generate([chat(prompt) for *_, prompt in todo], settings)
            for (user_id, digest, used, _), text in zip(todo, texts, strict=True):
                tools.store.put_summary(user_id, key, digest, text)
                found[user_id] = (text, used)
        return found

    def prepare(self, requests: list[Request], tools: Tools) -> list[Prepared]:
        summaries = self.summaries([r.user_id for r in requests], tools)
        prepared = []
        for request in requests:
            summary, used = summaries[request.user_id]
            profile = tools.store.user(request.user_id).profile
            attributes = "".join(f"\n{name}: {value}" for name, value in sorted(profile.items()))
            notes: list[str] = []
            instruction = tools.instruction(request, notes)
            if not summary and not attributes:
                prepared.append(Prepared(chat(instruction), provenance=Provenance(notes=notes)))
                continue
            # Long profile attributes must not push the prompt past the budget either.
            system = tools.fit(TEMPLATE.format(summary=summary, attributes=attributes), instruction)
            prepared.append(
                Prepared(
                    chat(instruction, system=system),
                    provenance=Provenance(documents=used, notes=notes),
                    details={"summary": summary},
                )
            )
        return prepared
