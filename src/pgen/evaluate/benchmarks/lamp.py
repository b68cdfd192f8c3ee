"""LaMP 1-7: ``LaMP_k_<split>_questions.json`` (id, input, profile) + ``..._outputs.json``.

Each question carries its user's profile; it becomes the documents of a user of its own,
``LaMP_k/<question id>``. Profile entries keep their text in ``text`` (news, reviews,
tweets, e-mails), ``abstract`` (papers) or ``description`` (movies), with an optional
``title``; the rest (``category``, ``score``, ``tag``, ``date``) stays in
``Document.fields``. Retrieval queries follow LaMP's own ``rank_profiles.py``: for LaMP-1
the two candidate reference titles, the second and third quoted strings of the input
joined by a space (the first is the author's own paper); for the others the text after
"article:", "review:", "description:" or the first colon.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from pgen.context.records import Document
from pgen.evaluate.benchmarks.tasks import (
    Example,
    Kind,
    TaskData,
    TaskSpec,
    hash_files,
    labelled_title,
    read_json,
    text_of,
)
from pgen.evaluate.metrics.labels import LAMP1_LABELS, RATING_LABELS, lamp2_labels

LAMP_TASKS = tuple(f"LaMP_{k}" for k in range(1, 8))
MAX_NEW_TOKENS = {"LaMP_1": 8, "LaMP_2": 16, "LaMP_3": 8}  # generation tasks: 64
# The part of the input LaMP uses as the retrieval query, per task ("" = quoted titles).
QUERY_MARKERS = {
    "LaMP_1": "",
    "LaMP_2": "article:",
    "LaMP_3": "review:",
    "LaMP_4": "article:",
    "LaMP_5": "paper:",
    "LaMP_6": ":",
    "LaMP_7": ":",
}
TEXT_FIELDS = ("text", "abstract", "description")
LABEL_FIELDS = {"category": "category", "tag": "tag", "score": "rating"}  # shown in the title


def lamp_query(task: str, instruction: str) -> str | None:
    """The retrieval query LaMP derives from a question's input (None: use the input)."""
    marker = QUERY_MARKERS[task]
    if task == "LaMP_2" and "article:" not in instruction:
        marker = "description:"  # the movie-tagging version of LaMP-2
    if not marker:
        # LaMP: extracted = extract_strings_between_quotes(inp); f"{extracted[1]} {extracted[2]}"
        quoted = re.findall(r'"([^"]*)"', instruction)
        return f"{quoted[1]} {quoted[2]}" if len(quoted) >= 3 else None
    at = instruction.find(marker)
    return instruction[at + len(marker) :].strip() if at >= 0 else None


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    for parse in (datetime.fromisoformat, lambda v: datetime.strptime(v, "%Y-%m-%d %H:%M:%S")):
        try:
            return parse(str(value))
        except ValueError:
            continue
    return None


def profile_document(user_id: str, entry: dict[str, Any], position: int) -> Document:
    text_field = next((f for f in TEXT_FIELDS if f in entry), None)
    extra = {k: v for k, v in entry.items() if k not in ("id", "title", text_field, "date")}
    if "date" in entry:
        extra["date"] = entry["date"]
    title = text_of(entry["title"]) if entry.get("title") else None
    for name, shown in LABEL_FIELDS.items():
        if name in entry:
            title = labelled_title(title, shown, entry[name])
    return Document(
        user_id=user_id,
        doc_id=text_of(entry.get("id", position)),
        kind="profile",
        text=text_of(entry.get(text_field)) if text_field else "",
        title=title,
        time=_time(entry.get("date")),
        fields=extra,
    )


def task_from_name(path: Path) -> str:
    match = re.search(r"LaMP_(\d)", path.name)
    if not match or not 1 <= int(match.group(1)) <= 7:
        raise ValueError(f"{path}: cannot tell which LaMP task this is (expected LaMP_1..LaMP_7)")
    return f"LaMP_{match.group(1)}"


def find_files(task: str, data: Path, split: str) -> tuple[Path, Path]:
    """Questions and outputs files for a task from a folder or a questions file."""
    questions = data / f"{task}_{split}_questions.json" if data.is_dir() else data
    if not questions.is_file():
        raise FileNotFoundError(f"{questions}: no LaMP questions file (looked for {task}, {split})")
    outputs = questions.with_name(questions.name.replace("questions", "outputs"))
    if outputs == questions or not outputs.is_file():
        raise FileNotFoundError(
            f"{outputs}: no outputs (golds) file next to {questions.name}; the test split has "
            "no public golds, so benchmark the dev or train split"
        )
    return questions, outputs


def load_lamp(task: str, data: Path, split: str = "dev") -> TaskData:
    if task not in LAMP_TASKS:
        raise ValueError(f"unknown LaMP task {task!r}; known: {', '.join(LAMP_TASKS)}")
    questions_path, outputs_path = find_files(task, data, split)
    questions = read_json(questions_path)
    outputs = read_json(outputs_path)
    if not isinstance(questions, list):
        raise ValueError(f"{questions_path}: expected a JSON list of questions")
    if not isinstance(outputs, dict) or "golds" not in outputs:
        raise ValueError(f'{outputs_path}: expected {{"task": ..., "golds": [...]}}')
    if outputs.get("task") not in (None, task):
        raise ValueError(f"{outputs_path}: holds golds of {outputs.get('task')}, not {task}")
    golds = {text_of(g["id"]): text_of(g["output"]) for g in outputs["golds"]}
    skipped: Counter[str] = Counter()
    examples = []
    for number, question in enumerate(questions):
        where = f"{questions_path}: question {number}"
        if not isinstance(question, dict) or "id" not in question or "input" not in question:
            raise ValueError(f"{where}: needs 'id' and 'input'")
        qid = text_of(question["id"])
        if qid not in golds:
            skipped["question without a gold"] += 1
            continue
        user_id = f"{task}/{qid}"
        profile = question.get("profile") or []
        documents = tuple(profile_document(user_id, e, i) for i, e in enumerate(profile))
        examples.append(
            Example(
                id=qid,
                user_id=user_id,
                instruction=text_of(question["input"]),
                gold=golds[qid],
                profile=documents,
                query=lamp_query(task, text_of(question["input"])),
            )
        )
    if task == "LaMP_1":
        labels: tuple[str, ...] = LAMP1_LABELS
    elif task == "LaMP_2":
        labels = lamp2_labels([e.gold for e in examples])
    elif task == "LaMP_3":
        labels = RATING_LABELS
    else:
        labels = ()
    kind: Kind = "generation"
    if labels:
        kind = "rating" if task == "LaMP_3" else "classification"
    spec = TaskSpec(task, kind, labels, MAX_NEW_TOKENS.get(task, 64), "LaMP")
    sources = [questions_path, outputs_path]
    return TaskData(spec, examples, sources, hash_files(sources), skipped, split)
