"""LongLaMP (Kumar et al., 2024): personalized long-form generation.

Records as in its dataset card, one per question, in a JSON array or JSON Lines file:

* ``abstract_generation``: ``name`` (the author), ``input``, ``output``, ``profile`` of
  ``{title, abstract, id?, year?}``;
* ``product_review``: ``reviewerId``, ``input``, ``output``, ``profile`` of
  ``{overall, summary, description, reviewText, ...}``;
* ``topic_writing``: ``author``, ``input``, ``output``, ``profile`` of
  ``{summary, content}``.

The "user" and "temporal" settings share this shape (they differ in how users were
split), so the setting is given explicitly or read from the path: the file name or,
failing that, its folder's name, when it says ``user`` or ``temporal`` as a word
(``product_review_user/val.jsonl``, ``abstract_generation_temporal.json``). Records
lacking input, output or the user field are skipped and counted. Question ids are the
record's ``id`` when present, else ``<user>-<position>``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgen.context.formats import labelled_title, text_of
from pgen.context.records import Document
from pgen.evaluate.benchmarks.tasks import Example, TaskData, TaskSpec, hash_files, read_records


@dataclass(frozen=True)
class _Layout:
    user_field: str
    text_field: str  # the profile entry's main text
    title_field: str | None  # shown as the document title
    query_after: str | None  # the retrieval query is the input after this marker


LAYOUTS = {
    "abstract_generation": _Layout("name", "abstract", "title", "items:"),
    "product_review": _Layout("reviewerId", "reviewText", "summary", None),
    "topic_writing": _Layout("author", "content", "summary", None),
}
LONGLAMP_TASKS = tuple(f"LongLaMP_{name}" for name in LAYOUTS)


def _document(user_id: str, layout: _Layout, entry: dict[str, Any], position: int) -> Document:
    title = entry.get(layout.title_field) if layout.title_field else None
    title = labelled_title(text_of(title) if title else None, "rating", entry.get("overall"))
    extra = {
        k: v
        for k, v in entry.items()
        if k not in ("id", layout.text_field, layout.title_field) and v is not None
    }
    return Document(
        user_id=user_id,
        doc_id=text_of(entry.get("id", position)),
        kind="profile",
        text=text_of(entry.get(layout.text_field)),
        title=title,
        fields=extra,
    )


SETTINGS = ("user", "temporal")


def setting_from_path(path: Path) -> str:
    """ "user" or "temporal" from the file name, else from its folder's name, else "".

    Only these two: a folder further up ("/home/user/...") says nothing about the data."""
    for part in (path.stem, path.resolve().parent.name):
        words = re.split(r"[^a-z]+", part.lower())
        found = [s for s in SETTINGS if s in words]
        if len(found) == 1:
            return found[0]
    return ""


def load_longlamp(task: str, data: Path, setting: str | None = None) -> TaskData:
    name = task.removeprefix("LongLaMP_")
    if name not in LAYOUTS:
        raise ValueError(f"unknown LongLaMP task {task!r}; known: {', '.join(LONGLAMP_TASKS)}")
    if not data.is_file():
        raise FileNotFoundError(f"{data}: no LongLaMP file (JSON array or JSON Lines)")
    if setting is not None and setting not in SETTINGS:
        raise ValueError(f"unknown LongLaMP setting {setting!r}; known: {', '.join(SETTINGS)}")
    layout = LAYOUTS[name]
    records, skipped = read_records(data)
    examples: list[Example] = []
    seen: Counter[str] = Counter()
    for record in records:
        if not isinstance(record, dict):
            skipped["record is not a JSON object"] += 1
            continue
        missing = [f for f in (layout.user_field, "input", "output") if not record.get(f)]
        if missing:
            skipped[f"missing {missing[0]}"] += 1
            continue
        author = text_of(record[layout.user_field])
        qid = text_of(record["id"]) if record.get("id") is not None else f"{author}-{seen[author]}"
        seen[author] += 1
        user_id = f"{task}/{qid}"
        instruction = text_of(record["input"])
        query = None
        if layout.query_after and layout.query_after in instruction:
            query = instruction.split(layout.query_after, 1)[1].strip()
        profile = record.get("profile") or []
        documents = tuple(
            _document(user_id, layout, entry, i)
            for i, entry in enumerate(profile)
            if isinstance(entry, dict)
        )
        examples.append(
            Example(qid, user_id, instruction, text_of(record["output"]), documents, query, author)
        )
    spec = TaskSpec(task, "generation", (), 256, "LongLaMP")
    found = setting or setting_from_path(data)
    return TaskData(spec, examples, [data], hash_files([data]), skipped, found)
