"""Amazon review data, the 2018 "5-core" JSON Lines format, read once for every use.

Each line: ``reviewerID``, ``asin``, ``overall`` (1-5), ``reviewText``, ``summary``,
``unixReviewTime``, optional ``style`` (a dict such as ``{"Format:": " Hardcover"}``).
``bench rec`` needs only reviewer and product (and takes rating and time when present);
``bench text``'s review tasks also need the text, summary, a 1-5 rating and a time
(``missing_for_text``).

**Variant duplicates.** The 5-core files repeat one review once per variant of a product:
same reviewer, same text, same time, another ``asin`` (in All_Beauty_5.json 3,890 of the
5,269 lines are such copies, and 928 of the 991 reviewers' last review is word for word
also an earlier one). ``distinct_reviews`` keeps the first copy in file order and counts
the rest, so that a benchmark never finds a user's target review in their own profile.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgen.context.formats import FormatError
from pgen.context.formats.jsonl import OnError, read_lines

DUPLICATE = "duplicate of the reviewer's review of another variant (same text and time)"


@dataclass(frozen=True)
class Review:
    line: int
    reviewer: str
    asin: str
    overall: float | None  # as written; ``rating`` is it as a 1-5 label
    text: str
    summary: str
    time: int | None  # unix seconds
    style: dict[str, Any] | None = None

    @property
    def rating(self) -> int | None:
        value = self.overall
        if value is None or not float(value).is_integer() or not 1 <= value <= 5:
            return None
        return int(value)

    @property
    def style_text(self) -> str:
        """ " (Format: Hardcover)" for the product's variant, or ""."""
        if not self.style:
            return ""
        parts = [f"{str(k).rstrip(':')}: {str(v).strip()}" for k, v in self.style.items()]
        return " (" + ", ".join(parts) + ")"


@dataclass
class Reviews:
    reviews: list[Review] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> lines skipped


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def parse_review(record: Any, line: int) -> Review | str:
    """A review, or the reason this record is not one (reviewer and product are needed)."""
    if not isinstance(record, dict):
        return "record is not a JSON object"
    for name in ("reviewerID", "asin"):
        if record.get(name) in (None, ""):
            return f"missing {name}"
    stamp = _number(record.get("unixReviewTime"))
    style = record.get("style")
    return Review(
        line=line,
        reviewer=str(record["reviewerID"]),
        asin=str(record["asin"]),
        overall=_number(record.get("overall")),
        text=_text(record.get("reviewText")),
        summary=_text(record.get("summary")),
        time=int(stamp) if stamp is not None and stamp.is_integer() else None,
        style=style if isinstance(style, dict) and style else None,
    )


def read_reviews(path: Path, on_error: OnError) -> Reviews:
    """Every review of the file. ``on_error="raise"`` stops at the first bad line or record
    (naming file and line); ``"skip"`` skips and counts it by reason."""
    lines = read_lines(path, on_error)
    found = Reviews(skipped=lines.skipped)
    for line, record in lines.values:
        review = parse_review(record, line)
        if isinstance(review, str):
            if on_error == "raise":
                raise FormatError(f"{path}:{line}", f"not an Amazon review ({review})")
            found.skipped[review] += 1
        else:
            found.reviews.append(review)
    return found


def missing_for_text(review: Review) -> str | None:
    """Why a review cannot serve the text tasks (rating, review writing), or None."""
    for name, value in (("reviewText", review.text), ("summary", review.summary)):
        if not value.strip():
            return f"missing {name}"
    if review.overall is None:
        return "missing overall"
    if review.rating is None:
        return "overall not a rating 1-5"
    if review.time is None:
        return "unixReviewTime not an integer"
    return None


def _same_text(text: str) -> str:
    return " ".join(text.split())


def distinct_reviews(reviews: list[Review]) -> tuple[list[Review], int]:
    """The reviews without variant duplicates (same reviewer, text and time: the first copy
    in file order stays), and how many were removed. Empty texts are never duplicates."""
    seen: set[tuple[str, str, int | None]] = set()
    kept: list[Review] = []
    for review in reviews:
        key = (review.reviewer, _same_text(review.text), review.time)
        if review.text.strip() and key in seen:
            continue
        seen.add(key)
        kept.append(review)
    return kept, len(reviews) - len(kept)


def same_text(a: Review, b: Review) -> bool:
    """The two reviews say the same thing word for word (whitespace aside)."""
    return _same_text(a.text) == _same_text(b.text)
