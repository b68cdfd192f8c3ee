"""LaMP 1-7: ``LaMP_k_<split>_questions.json`` (id, input, profile) + ``..._outputs.json``.

The questions file is read by the one LaMP reader, ``pgen.context.formats.lamp``, which
``pgen ingest`` uses too: each question's profile becomes the documents of a user of its
own, ``LaMP_k/<question id>``, exactly as ingest would store them. Retrieval queries follow
LaMP's own ``rank_profiles.py``: for LaMP-1 the two candidate reference titles, the second
and third quoted strings of the input joined by a space (the first is the author's own
paper); for the others the text after "article:", "review:", "description:" or the first
colon.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from pgen.context.formats import FormatError, text_of
from pgen.context.formats.lamp import read_questions
from pgen.evaluate.benchmarks.tasks import Example, Kind, TaskData, TaskSpec, hash_files, read_json
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


def task_from_name(path: Path) -> str:
    match = re.search(r"LaMP_(\d)", path.name)
    if not match or not 1 <= int(match.group(1)) <= 7:
        raise ValueError(f"{path}: cannot tell which LaMP task this is (expected LaMP_1..LaMP_7)")
    return f"LaMP_{match.group(1)}"


def looks_like_lamp(path: Path) -> bool:
    """A LaMP questions file is one JSON list; JSON Lines (Amazon, pgen records) is not."""
    with path.open("rb") as handle:
        start = handle.read(4096).lstrip()
    return start.startswith(b"[") and (
        b'"profile"' in start or b'"input"' in start or len(start) < 4096
    )


def find_files(task: str, data: Path, split: str) -> tuple[Path, Path]:
    """Questions and outputs files for a task from a folder or a questions file."""
    questions = data / f"{task}_{split}_questions.json" if data.is_dir() else data
    if not questions.is_file():
        raise FileNotFoundError(f"{questions}: no LaMP questions file (looked for {task}, {split})")
    if not looks_like_lamp(questions):
        raise ValueError(
            f"{questions}: does not look like a LaMP questions file (a JSON list of questions "
            "with 'id', 'input' and 'profile'); for Amazon reviews use --task amazon_review "
            "or amazon_rating"
        )
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
    if not isinstance(outputs, dict) or "golds" not in outputs:
        raise ValueError(f'{outputs_path}: expected {{"task": ..., "golds": [...]}}')
    if outputs.get("task") not in (None, task):
        raise ValueError(f"{outputs_path}: holds golds of {outputs.get('task')}, not {task}")
    golds = {text_of(g["id"]): text_of(g["output"]) for g in outputs["golds"]}

    def user_of(qid: str) -> str:
        return f"{task}/{qid}"

    try:
        read = read_questions(questions_path, questions, user_of)
    except FormatError as error:
        raise ValueError(str(error)) from None
    skipped: Counter[str] = Counter()
    examples = []
    for question in read:
        if question.id not in golds:
            skipped["question without a gold"] += 1
            continue
        examples.append(
            Example(
                id=question.id,
                user_id=user_of(question.id),
                instruction=question.input,
                gold=golds[question.id],
                profile=question.profile,
                query=lamp_query(task, question.input),
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
