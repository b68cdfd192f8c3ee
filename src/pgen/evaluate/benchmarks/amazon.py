"""Amazon review data (the 2018 "5-core" JSON Lines format) as two personalization tasks.

Each record: ``reviewerID``, ``asin``, ``overall`` (1-5), ``reviewText``, ``summary``,
``unixReviewTime``, optional ``style`` (a dict such as ``{"Format:": " Hardcover"}``).
Per-user temporal split: a user's reviews sorted by time (file order breaks ties); the
last one is the question, the earlier ones are the profile. Users with fewer than two
usable reviews give no question. Records with a missing or empty required field, a
rating outside 1-5, or a line that is not JSON are skipped and counted by reason.

* ``amazon_rating`` (LaMP-3 style): given the review text, answer its rating 1-5.
* ``amazon_review`` (LongLaMP product-review style): given the product, the rating and
  the summary, write the review text.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pgen.context.records import Document
from pgen.evaluate.benchmarks.tasks import (
    Example,
    TaskData,
    TaskSpec,
    hash_files,
    labelled_title,
    read_records,
    text_of,
)
from pgen.evaluate.metrics.labels import RATING_LABELS

AMAZON_TASKS = ("amazon_rating", "amazon_review")
REQUIRED = ("reviewerID", "asin", "overall", "reviewText", "summary", "unixReviewTime")


def _rating(value: Any) -> int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() and 1 <= number <= 5 else None


def _style(record: dict[str, Any]) -> str:
    style = record.get("style")
    if not isinstance(style, dict) or not style:
        return ""
    parts = [f"{str(k).rstrip(':')}: {str(v).strip()}" for k, v in style.items()]
    return " (" + ", ".join(parts) + ")"


def rating_instruction(review: str) -> str:
    return (
        "What is the score of the following review on a scale of 1 to 5? just answer with "
        f"1, 2, 3, 4, or 5 without further explanation. review: {review}"
    )


def review_instruction(record: dict[str, Any]) -> str:
    return (
        "Generate the review text written by a reviewer who has given an overall rating of "
        f'"{_rating(record["overall"])}" for the product "{record["asin"]}"{_style(record)}. '
        f'The summary of the review text is "{record["summary"]}".'
    )


def _document(user_id: str, record: dict[str, Any]) -> Document:
    fields: dict[str, Any] = {"overall": _rating(record["overall"]), "asin": record["asin"]}
    if isinstance(record.get("style"), dict):
        fields["style"] = record["style"]
    return Document(
        user_id=user_id,
        doc_id=f"{record['asin']}@{record['unixReviewTime']}",
        kind="review",
        text=text_of(record["reviewText"]),
        title=labelled_title(text_of(record["summary"]), "rating", fields["overall"]),
        time=datetime.fromtimestamp(int(record["unixReviewTime"]), tz=UTC),
        fields=fields,
    )


def _valid(record: Any, skipped: Counter[str]) -> bool:
    if not isinstance(record, dict):
        skipped["record is not a JSON object"] += 1
        return False
    for name in REQUIRED:
        if record.get(name) in (None, ""):
            skipped[f"missing {name}"] += 1
            return False
    if _rating(record["overall"]) is None:
        skipped["overall not a rating 1-5"] += 1
        return False
    try:
        int(record["unixReviewTime"])
    except (TypeError, ValueError):
        skipped["unixReviewTime not an integer"] += 1
        return False
    return True


def load_amazon(task: str, data: Path) -> TaskData:
    if task not in AMAZON_TASKS:
        raise ValueError(f"unknown Amazon task {task!r}; known: {', '.join(AMAZON_TASKS)}")
    if not data.is_file():
        raise FileNotFoundError(f"{data}: no Amazon review file (JSON Lines, optionally .gz)")
    records, skipped = read_records(data)
    by_user: dict[str, list[tuple[int, int, dict[str, Any]]]] = defaultdict(list)
    for position, record in enumerate(records):
        if _valid(record, skipped):
            by_user[str(record["reviewerID"])].append(
                (int(record["unixReviewTime"]), position, record)
            )
    examples = []
    for reviewer in sorted(by_user):
        history = [record for _, _, record in sorted(by_user[reviewer], key=lambda t: t[:2])]
        if len(history) < 2:
            skipped["user with fewer than 2 reviews (no profile)"] += 1
            continue
        last = history[-1]
        qid = f"{reviewer}-{last['asin']}"
        user_id = f"{task}/{qid}"
        profile = tuple(_document(user_id, record) for record in history[:-1])
        if task == "amazon_rating":
            instruction = rating_instruction(text_of(last["reviewText"]))
            gold = str(_rating(last["overall"]))
            query = text_of(last["reviewText"])
        else:
            instruction = review_instruction(last)
            gold = text_of(last["reviewText"])
            query = f"{last['summary']} {last['asin']}"
        examples.append(Example(qid, user_id, instruction, gold, profile, query, reviewer))
    if task == "amazon_rating":
        spec = TaskSpec(task, "rating", RATING_LABELS, 8, "Amazon")
    else:
        spec = TaskSpec(task, "generation", (), 128, "Amazon")
    return TaskData(spec, examples, [data], hash_files([data]), skipped, "temporal")
