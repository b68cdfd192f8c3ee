"""``profile``: a preference summary of the user, written by the text model from their
documents, cached in the store and rewritten when the documents change."""

from __future__ import annotations

import re

from pgen.context.base import ContextStore
from pgen.context.records import Document
from pgen.models.base import GenerationSettings
from pgen.personalize.base import Modality, Provenance, TextPlan, TextRequest, Tools, chat
from pgen.personalize.frames import FRAMINGS, Frame, resolve
from pgen.personalize.grounding import grounded, vocabulary
from pgen.personalize.prompts import (
    attribute_lines,
    document_text,
    pack_documents,
    remaining_budget,
)

# Bump when the summary prompt or its post-processing changes: old summaries are then stale.
# v3: sentences naming people, places or numbers the sources lack are cut (grounding.py).
# Asking the prompt to "name only people, places and numbers that appear in the texts"
# made SmolLM2 name more of them, unsupported ones too (docs/benchmarks.md): not done.
SUMMARY_VERSION = "v3"
SUMMARY_DOCS = 8  # the most recent documents the summary is written from
SUMMARY_TOKENS = 120  # room for three sentences; a longer reply is cut, then trimmed
SUMMARIZE = (
    "Here are texts written by one user:\n{documents}\n\n"
    "In three sentences, describe this user: the topics they care about, their tone, "
    "and how long and how formal their writing is."
)
# A sentence ends at . ! ? … (or their full-width forms), perhaps closed by quotes or
# brackets, before a space or the end of the text; full-width marks need no space after.
SENTENCE_END = re.compile(r"""[.!?…]["'”’)\]]*(?=\s|$)|[。！？]["'”’)\]」』]*""")


def whole_sentences(text: str) -> str:
    """``text`` up to the end of its last whole sentence: a reply cut by max_new_tokens
    stops mid-sentence, and that fragment would run into whatever follows it in a prompt.
    A reply with no sentence end at all is kept and marked as cut (…)."""
    text = text.strip()
    ends = [match.end() for match in SENTENCE_END.finditer(text)]
    if not text or (ends and ends[-1] == len(text)):
        return text
    if ends:
        return text[: ends[-1]]
    return text.rstrip(" ,;:-") + "…"


def system_prompt(summary: str, attributes: dict[str, object], frame: Frame = "author") -> str:
    """The profile's system message: the summary and the attributes as separate parts,
    framed by whom the model writes as or for (personalize/frames.py)."""
    framing = FRAMINGS[frame]
    parts = []
    if summary:
        parts.append(framing.about.format(summary=summary))
    if attributes:
        parts.append(f"Profile attributes:\n{attribute_lines(attributes)}")
    return framing.system(parts)


def sources(documents: list[Document], attributes: dict[str, object]) -> set[str]:
    """What a summary may name: the words of the documents it was written from (whole, not
    as cut for the prompt) and of the profile attributes, names and values."""
    texts = [document_text(d) for d in documents]
    texts += [f"{name} {value}" for name, value in attributes.items()]
    return vocabulary(texts)


def documents_version(store: ContextStore, user_id: str) -> str:
    """Changes whenever any of the user's documents is added, edited or removed."""
    revision = store.revision(user_id)
    return f"revision-{revision.incarnation}-{revision.number}"


class ProfileSummary:
    name = "profile"
    modality: Modality = "text"
    retrieves = False  # it summarizes all of the user's documents
    adapter_kind: str | None = None
    description = "a summary of the user written by the model (cached), with their attributes"

    def summaries(self, user_ids: list[str], tools: Tools) -> dict[str, tuple[str, list[str]]]:
        """user -> (summary, doc ids it was written from); missing ones in one batch."""
        key = f"{tools.text_model.name}|{SUMMARY_VERSION}"
        found: dict[str, tuple[str, list[str]]] = {}
        todo: list[tuple[str, str, list[str], set[str], str]] = []  # user, hash, ids, known, prompt
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
                known = sources(documents, dict(tools.store.user(user_id).profile))
                prompt = SUMMARIZE.format(documents=packed.text)
                todo.append((user_id, digest, packed.used, known, prompt))
            else:
                found[user_id] = ("", [])
        if todo:
            settings = GenerationSettings(max_new_tokens=SUMMARY_TOKENS, repetition_penalty=1.15)
            texts = tools.text_model.generate([chat(prompt) for *_, prompt in todo], settings)
            for (user_id, digest, used, known, _), reply in zip(todo, texts, strict=True):
                text, _cut = grounded(whole_sentences(reply), known)
                tools.store.put_summary(user_id, key, digest, text)
                found[user_id] = (text, used)
        return found

    def prepare(self, requests: list[TextRequest], tools: Tools) -> list[TextPlan]:
        summaries = self.summaries([r.user_id for r in requests], tools)
        prepared = []
        for request in requests:
            summary, used = summaries[request.user_id]
            profile = tools.store.user(request.user_id).profile
            notes: list[str] = []
            instruction = tools.instruction(request, notes)
            if not summary and not profile:
                prepared.append(TextPlan(chat(instruction), provenance=Provenance(notes=notes)))
                continue
            frame = resolve(request.frame, request.instruction)
            asked = FRAMINGS[frame].ask(instruction)
            # Long profile attributes must not push the prompt past the budget either.
            system = tools.fit(system_prompt(summary, dict(profile), frame), asked)
            prepared.append(
                TextPlan(
                    chat(asked, system=system),
                    provenance=Provenance(documents=used, notes=notes),
                    details={"summary": summary, "frame": frame},
                )
            )
        return prepared
