"""Amazon review data (the 2018 "5-core" JSON Lines format) as two personalization tasks.

The file is read by the one Amazon reader, ``pgen.context.formats.amazon`` (which ``bench
rec`` uses too), under the "skip" policy: records that are not JSON, lack a required field
or have a rating outside 1-5 are skipped and counted by reason. Per-user temporal split:
a user's distinct reviews sorted by time (file order breaks ties); the last one is the
question, the earlier ones are the profile. Variant duplicates (the same review repeated
for every variant of a product: same reviewer, text and time) are removed first and
counted on the example, and so is an earlier review with the target's very text, so the
target never reaches its writer's profile; the leakage guard (``leakage``) then checks
every task's profiles alike. Users with fewer than two distinct reviews give no question.

* ``amazon_rating`` (LaMP-3 style): given the review text, answer its rating 1-5.
* ``amazon_review`` (LongLaMP product-review style): given the product, the rating and
  the summary, write the review text.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pgen.context.formats import FormatError, labelled_title
from pgen.context.formats.amazon import (
    DUPLICATE,
    Review,
    distinct_reviews,
    missing_for_text,
    read_reviews,
    same_text,
)
from pgen.context.records import Document
from pgen.evaluate.benchmarks.tasks import Example, TaskData, TaskSpec, hash_files
from pgen.evaluate.metrics.labels import RATING_LABELS

AMAZON_TASKS = ("amazon_rating", "amazon_review")
SAME_AS_TARGET = "earlier review with the target review's text"


def rating_instruction(review: str) -> str:
    return (
        "What is the score of the following review on a scale of 1 to 5? just answer with "
        f"1, 2, 3, 4, or 5 without further explanation. review: {review}"
    )


def review_instruction(review: Review) -> str:
    return (
        "Generate the review text written by a reviewer who has given an overall rating of "
        f'"{review.rating}" for the product "{review.asin}"{review.style_text}. '
        f'The summary of the review text is "{review.summary}".'
    )


def _document(user_id: str, review: Review) -> Document:
    fields: dict[str, Any] = {"overall": review.rating, "asin": review.asin}
    if review.style:
        fields["style"] = review.style
    return Document(
        user_id=user_id,
        doc_id=f"{review.asin}@{review.time}",
        kind="review",
        text=review.text,
        title=labelled_title(review.summary, "rating", review.rating),
        time=datetime.fromtimestamp(review.time or 0, tz=UTC),
        fields=fields,
    )


def _example(task: str, reviewer: str, history: list[Review], duplicates: int) -> Example:
    last, earlier = history[-1], history[:-1]
    profile = [review for review in earlier if not same_text(review, last)]
    excluded = (DUPLICATE,) * duplicates + (SAME_AS_TARGET,) * (len(earlier) - len(profile))
    qid = f"{reviewer}-{last.asin}"
    user_id = f"{task}/{qid}"
    documents = tuple(_document(user_id, review) for review in profile)
    if task == "amazon_rating":
        instruction, gold, query = rating_instruction(last.text), str(last.rating), last.text
    else:
        instruction, gold = review_instruction(last), last.text
        query = f"{last.summary} {last.asin}"
    return Example(qid, user_id, instruction, gold, documents, query, reviewer, excluded)


def load_amazon(task: str, data: Path) -> TaskData:
    if task not in AMAZON_TASKS:
        raise ValueError(f"unknown Amazon task {task!r}; known: {', '.join(AMAZON_TASKS)}")
    if not data.is_file():
        raise FileNotFoundError(f"{data}: no Amazon review file (JSON Lines, optionally .gz)")
    try:
        read = read_reviews(data, "skip")
    except FormatError as error:
        raise ValueError(str(error)) from None
    skipped: Counter[str] = read.skipped
    by_user: dict[str, list[Review]] = defaultdict(list)
    for review in read.reviews:
        problem = missing_for_text(review)
        if problem is None:
            by_user[review.reviewer].append(review)
        else:
            skipped[problem] += 1
    examples = []
    for reviewer in sorted(by_user):
        distinct, duplicates = distinct_reviews(by_user[reviewer])
        history = sorted(distinct, key=lambda r: (r.time or 0, r.line))
        if len(history) < 2:
            skipped["user with fewer than 2 distinct reviews (no profile)"] += 1
            continue
        examples.append(_example(task, reviewer, history, duplicates))
    if task == "amazon_rating":
        spec = TaskSpec(task, "rating", RATING_LABELS, 8, "Amazon")
    else:
        spec = TaskSpec(task, "generation", (), 128, "Amazon")
    return TaskData(spec, examples, [data], hash_files([data]), skipped, "temporal")
