"""Classification and rating metrics on hand-computed cases (LaMP's semantics)."""

from __future__ import annotations

import pytest

from pgen.evaluate.metrics import accuracy, lamp2_labels, macro_f1, mae, rmse
from pgen.evaluate.metrics.labels import (
    LAMP2_MOVIE_LABELS,
    LAMP2_NEWS_LABELS,
    rating_value,
)


def test_accuracy_strips_and_counts_out_of_set_as_wrong() -> None:
    metric = accuracy(("[1]", "[2]"))
    preds = [" [1] ", "[2]", "1", "[1]."]
    golds = ["[1]", "[1]", "[1]", "[1]"]
    assert metric(preds, golds) == pytest.approx(1 / 4)


def test_macro_f1_by_hand() -> None:
    labels = ("a", "b", "c")
    preds = ["a", "b", "x", "a"]
    golds = ["a", "a", "b", "b"]
    # a: TP 1, FP 1 (row 4), FN 1 (row 2) -> 2/(2+1+1) = 0.5
    # b: TP 0, FP 1 (row 2), FN 2 (rows 3, 4) -> 0
    # c: never predicted nor gold -> 0, still in the average
    assert macro_f1(labels)(preds, golds) == pytest.approx(0.5 / 3)


def test_macro_f1_perfect_on_a_subset_of_labels_is_not_one() -> None:
    # As scikit-learn with labels=range(L): absent labels add zeros to the macro average.
    labels = ("a", "b", "c", "d")
    assert macro_f1(labels)(["a", "b"], ["a", "b"]) == pytest.approx(0.5)
    assert macro_f1(("a", "b"))(["a", "b"], ["a", "b"]) == pytest.approx(1.0)


def test_unparsable_rating_becomes_the_worst_for_that_gold() -> None:
    assert rating_value("four", 1.0) == 5.0
    assert rating_value("four", 2.0) == 5.0
    assert rating_value("four", 3.0) == 5.0  # a tie goes to 5, as in LaMP
    assert rating_value("four", 4.0) == 1.0
    assert rating_value(" 4 ", 1.0) == 4.0
    assert rating_value("4.5", 1.0) == 4.5


def test_mae_rmse_by_hand() -> None:
    preds = ["1", "x", "5", "3"]
    golds = ["2", "3", "1", "3"]
    # errors: 1, |5-3| = 2, 4, 0
    assert mae()(preds, golds) == pytest.approx(7 / 4)
    assert rmse()(preds, golds) == pytest.approx((21 / 4) ** 0.5)


def test_rating_gold_must_be_numeric() -> None:
    with pytest.raises(ValueError, match="gold rating 'five'"):
        mae()(["5"], ["five"])


def test_lamp2_label_set_follows_the_golds() -> None:
    assert lamp2_labels(["politics", "sports "]) == LAMP2_NEWS_LABELS
    assert lamp2_labels(["sci-fi", "true story"]) == LAMP2_MOVIE_LABELS
    with pytest.raises(ValueError, match="neither"):
        lamp2_labels(["politics", "sci-fi"])


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="pair up"):
        accuracy(("a",))(["a"], ["a", "a"])
