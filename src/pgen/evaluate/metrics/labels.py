"""Classification (LaMP-1, LaMP-2) and rating (LaMP-3) metrics, with LaMP's semantics.

Definitions, as the official LaMP evaluator computes them:

* Predictions and golds are ``str(x).strip()``-ed, then mapped to their index in the
  task's label list; anything not exactly in the list maps to -1 (so "Politics" or
  "politics." is wrong for the label "politics").
* **accuracy** = share of examples whose mapped prediction equals the mapped gold.
* **f1** = macro-F1 over the label list only: for each label c,
  F1_c = 2·TP_c / (2·TP_c + FP_c + FN_c), taken as 0 when that denominator is 0 (a label
  that neither occurs nor is predicted still counts, as 0, in the average, which is what
  scikit-learn's ``f1_score(labels=range(L), average="macro")`` does); an out-of-set
  prediction is a false negative for the gold's label and a false positive for none.
* **mae** / **rmse** over ratings: a prediction is ``float(text)``; one that does not
  parse is replaced by the worst rating for that gold, 1 if |1 - gold| > |5 - gold| else
  5 (a gold of 3 gets 5). MAE = mean |p - g|; RMSE = sqrt(mean (p - g)²).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pgen.evaluate.metrics.base import Metric, check_pairs, mean_of_rows, mean_rows

LAMP1_LABELS = ("[1]", "[2]")
# LaMP-2 exists in two versions: the first release tagged news articles with categories
# (the official evaluator and the sample data use this set), the current one tags movies.
LAMP2_NEWS_LABELS = (
    "food & drink",
    "sports",
    "education",
    "parents",
    "religion",
    "travel",
    "business",
    "crime",
    "science & technology",
    "culture & arts",
    "entertainment",
    "politics",
    "women",
    "style & beauty",
    "healthy living",
)
LAMP2_MOVIE_LABELS = (
    "sci-fi",
    "based on a book",
    "comedy",
    "action",
    "twist ending",
    "dystopia",
    "dark comedy",
    "classic",
    "psychology",
    "fantasy",
    "romance",
    "thought-provoking",
    "social commentary",
    "violence",
    "true story",
)
RATING_LABELS = ("1", "2", "3", "4", "5")


def lamp2_labels(golds: Sequence[str]) -> tuple[str, ...]:
    """The LaMP-2 label set the golds come from (news categories or movie tags)."""
    cleaned = {str(gold).strip() for gold in golds}
    for labels in (LAMP2_NEWS_LABELS, LAMP2_MOVIE_LABELS):
        if cleaned <= set(labels):
            return labels
    unknown = sorted(cleaned - set(LAMP2_NEWS_LABELS) - set(LAMP2_MOVIE_LABELS))
    raise ValueError(
        f"LaMP_2 golds fit neither the news-category nor the movie-tag label set: {unknown[:5]}"
    )


def label_indices(texts: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    position = {label: index for index, label in enumerate(labels)}
    return np.array([position.get(str(text).strip(), -1) for text in texts], dtype=np.int64)


def accuracy(labels: Sequence[str]) -> Metric:
    def statistics(preds: Sequence[str], golds: Sequence[str]) -> np.ndarray:
        check_pairs(preds, golds)
        hits = label_indices(preds, labels) == label_indices(golds, labels)
        return mean_rows(hits.astype(np.float64))

    return Metric(
        "accuracy",
        True,
        statistics,
        mean_of_rows,
        "share of stripped predictions that equal the gold label (out-of-set is wrong)",
    )


def macro_f1(labels: Sequence[str]) -> Metric:
    count = len(labels)

    def statistics(preds: Sequence[str], golds: Sequence[str]) -> np.ndarray:
        check_pairs(preds, golds)
        predicted = label_indices(preds, labels)
        gold = label_indices(golds, labels)
        # Columns: TP per label, then predicted-as per label, then gold-is per label.
        rows = np.zeros((len(preds), 3 * count), dtype=np.float64)
        for row, (p, g) in enumerate(zip(predicted, gold, strict=True)):
            if p >= 0:
                rows[row, count + p] = 1.0
            if g >= 0:
                rows[row, 2 * count + g] = 1.0
            if p >= 0 and p == g:
                rows[row, p] = 1.0
        return rows

    def aggregate(sums: np.ndarray) -> np.ndarray:
        tp = sums[..., :count]
        # 2TP + FP + FN = predicted-as + gold-is
        denominator = sums[..., count : 2 * count] + sums[..., 2 * count :]
        f1 = np.divide(
            2 * tp, denominator, out=np.zeros_like(tp, dtype=np.float64), where=denominator > 0
        )
        return np.asarray(f1.mean(axis=-1))

    return Metric(
        "f1",
        True,
        statistics,
        aggregate,
        f"macro-F1 over the {count} labels; absent labels count as 0; out-of-set is wrong",
    )


def rating_value(prediction: str, gold: float) -> float:
    """``float(prediction)``, or the worst rating for this gold when it does not parse."""
    try:
        return float(str(prediction).strip())
    except ValueError:
        return 1.0 if abs(1 - gold) > abs(5 - gold) else 5.0


def _rating_errors(preds: Sequence[str], golds: Sequence[str]) -> np.ndarray:
    check_pairs(preds, golds)
    gold_values = []
    for gold in golds:
        try:
            gold_values.append(float(str(gold).strip()))
        except ValueError:
            raise ValueError(f"gold rating {gold!r} is not a number") from None
    predicted = [rating_value(p, g) for p, g in zip(preds, gold_values, strict=True)]
    return np.asarray(predicted, dtype=np.float64) - np.asarray(gold_values, dtype=np.float64)


def mae() -> Metric:
    return Metric(
        "mae",
        False,
        lambda preds, golds: mean_rows(np.abs(_rating_errors(preds, golds))),
        mean_of_rows,
        "mean |prediction - gold|; unparsable predictions become the worst rating (1 or 5)",
    )


def rmse() -> Metric:
    return Metric(
        "rmse",
        False,
        lambda preds, golds: mean_rows(_rating_errors(preds, golds) ** 2),
        lambda sums: np.sqrt(mean_of_rows(sums)),
        "sqrt(mean (prediction - gold)²); unparsable predictions become the worst rating",
    )
