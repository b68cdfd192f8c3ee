"""Opt-in answer extraction for label tasks (``--answers first-label``)."""

from __future__ import annotations

import numpy as np
import pytest

from pgen.evaluate.answers import calibrated_choices, first_label, read_answers
from pgen.evaluate.metrics.labels import LAMP1_LABELS, LAMP2_NEWS_LABELS, RATING_LABELS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('The answer is [2]: "Path following"', "[2]"),
        ('1: "Pronunciation Modeling"', "[1]"),
        ("[1]\n\nThe text mentions [2]", "[1]"),
        ("I cannot tell", "I cannot tell"),
        ("12 papers", "12 papers"),
    ],
)
def test_lamp1(text: str, expected: str) -> None:
    assert first_label(text, LAMP1_LABELS) == expected


def test_categories_are_whole_words_and_case_insensitive() -> None:
    assert first_label("Politics, maybe sports", LAMP2_NEWS_LABELS) == "politics"
    assert first_label("It is about Style & Beauty.", LAMP2_NEWS_LABELS) == "style & beauty"
    assert first_label("womens rights", LAMP2_NEWS_LABELS) == "womens rights"


def test_ratings_are_standalone_digits() -> None:
    assert first_label("I would give it 4 out of 5", RATING_LABELS) == "4"
    assert first_label("Score: 5.", RATING_LABELS) == "5"
    assert first_label("3.5 stars", RATING_LABELS) == "3.5 stars"  # a number, not a label


def test_list_numbering_is_not_an_answer() -> None:
    # A numbered list names several candidates, not one rating: "1." is its first item.
    assert first_label("1. 1\n2.", RATING_LABELS) == "1. 1\n2."
    assert first_label("1) 5\n2) 3", RATING_LABELS) == "1) 5\n2) 3"
    assert first_label("1. [2]\n2. [1]", LAMP1_LABELS) == "1. [2]\n2. [1]"
    # One item's number is skipped; a bare "4." is still an answer.
    assert first_label("1. The score is 4", RATING_LABELS) == "4"
    assert first_label("4.", RATING_LABELS) == "4"
    assert first_label("5\n\nThe review is positive.", RATING_LABELS) == "5"


def test_raw_mode_and_generation_tasks_leave_text_alone() -> None:
    assert read_answers(["The answer is [2]"], LAMP1_LABELS, "raw") == ["The answer is [2]"]
    assert read_answers(["a headline"], (), "first-label") == ["a headline"]
    with pytest.raises(ValueError, match="unknown answer mode"):
        read_answers([], (), "guess")


def test_batch_calibration_divides_by_the_label_prior() -> None:
    labels = ["a", "b"]
    # Both questions prefer "a", the second much less than the first; rows need not be
    # normalized (the first sums to 0.1).
    logprobs = np.log(np.array([[0.09, 0.01], [0.6, 0.4]]))
    assert [labels[i] for i in logprobs.argmax(axis=1)] == ["a", "a"]
    # Prior = mean normalized probability = (0.75, 0.25); 0.9/0.75 > 0.1/0.25, 0.6/0.75 < 0.4/0.25.
    assert calibrated_choices(logprobs, labels) == ["a", "b"]
    with pytest.raises(ValueError, match="one row of 2 label scores"):
        calibrated_choices(np.zeros((2, 3)), labels)
