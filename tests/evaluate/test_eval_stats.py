"""Bootstrap confidence intervals and the paired permutation test."""

from __future__ import annotations

import numpy as np
import pytest

from pgen.evaluate.metrics import accuracy, bleu, macro_f1, rouge
from pgen.evaluate.stats import bootstrap, paired_test

LABELS = ("[1]", "[2]")


def test_ci_brackets_the_value_and_is_reproducible() -> None:
    metric = accuracy(LABELS)
    golds = ["[1]"] * 40
    preds = ["[1]"] * 30 + ["[2]"] * 10
    rows = metric.statistics(preds, golds)
    estimate = bootstrap(metric, rows)
    assert estimate.value == pytest.approx(0.75)
    assert estimate.low < 0.75 < estimate.high
    # Normal approximation of the binomial: about ±1.96 * sqrt(.75 * .25 / 40) = ±0.134
    assert estimate.high - estimate.low == pytest.approx(0.27, abs=0.06)
    assert bootstrap(metric, rows) == estimate


def test_constant_scores_give_a_point_interval() -> None:
    metric = accuracy(LABELS)
    rows = metric.statistics(["[1]"] * 5, ["[1]"] * 5)
    estimate = bootstrap(metric, rows)
    assert (estimate.low, estimate.value, estimate.high) == (1.0, 1.0, 1.0)


def test_corpus_metrics_are_recomputed_per_resample() -> None:
    metric = bleu()
    preds = ["a b c d e", "the cat sat on the mat", "x y"]
    golds = ["a b c d f", "the cat sat on a mat", "x z"]
    rows = metric.statistics(preds, golds)
    estimate = bootstrap(metric, rows, samples=200)
    assert estimate.value == pytest.approx(metric(preds, golds))
    # Each resample is a real corpus BLEU, never above 100 or below 0.
    assert 0 <= estimate.low <= estimate.high <= 100
    f1 = macro_f1(LABELS)
    f1_rows = f1.statistics(["[1]", "[2]", "[1]"], ["[1]", "[2]", "[2]"])
    assert bootstrap(f1, f1_rows).value == pytest.approx(
        f1(["[1]", "[2]", "[1]"], ["[1]", "[2]", "[2]"])
    )


def test_identical_systems_are_not_different() -> None:
    metric = rouge("rouge-1")
    rows = metric.statistics(["a b", "c d"], ["a b", "c e"])
    test = paired_test(metric, rows, rows)
    assert test.delta == 0.0
    assert test.p_value == 1.0
    assert not test.better


def test_a_clearly_better_system_is_significant() -> None:
    metric = accuracy(LABELS)
    golds = ["[1]"] * 30
    good = metric.statistics(["[1]"] * 30, golds)
    bad = metric.statistics(["[2]"] * 30, golds)
    test = paired_test(metric, good, bad, rounds=500)
    assert test.delta == pytest.approx(1.0)
    assert test.better
    assert test.p_value == pytest.approx(1 / 501)  # no permutation is as extreme
    assert test.low == test.high == pytest.approx(1.0)


def test_lower_is_better_metrics_read_the_direction() -> None:
    from pgen.evaluate.metrics import mae

    metric = mae()
    golds = ["5"] * 20
    close = metric.statistics(["5"] * 20, golds)
    far = metric.statistics(["1"] * 20, golds)
    assert paired_test(metric, close, far).better
    assert not paired_test(metric, far, close).better


def test_a_small_noisy_difference_is_not_significant() -> None:
    metric = accuracy(LABELS)
    rng = np.random.default_rng(1)
    golds = ["[1]"] * 20
    a = ["[1]" if x else "[2]" for x in rng.random(20) < 0.5]
    b = ["[1]" if x else "[2]" for x in rng.random(20) < 0.5]
    test = paired_test(metric, metric.statistics(a, golds), metric.statistics(b, golds))
    assert test.p_value > 0.05
    assert test.low <= test.delta <= test.high


def test_few_differing_examples_can_give_an_interval_off_zero_and_a_large_p() -> None:
    # Two of 20 examples differ, both in favour of the system: every bootstrap resample
    # that draws them moves the same way, so the paired interval is [0, +x], while the
    # permutation test has only 2^2 distinct swaps: p = 1/4 + 1/4 at best, never < 0.05.
    metric = accuracy(LABELS)
    golds = ["[1]"] * 20
    rows = metric.statistics(["[1]"] * 20, golds)
    baseline = metric.statistics(["[2]"] * 2 + ["[1]"] * 18, golds)
    test = paired_test(metric, rows, baseline)
    assert test.delta == pytest.approx(0.1) and test.low >= 0.0 and test.high > 0.0
    assert test.differ == 2
    assert test.p_value > 0.4 and not test.significant
    assert test.as_dict()["significant"] is False and test.as_dict()["differ"] == 2
