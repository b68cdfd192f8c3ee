"""BERTScore: the greedy-matching definition by hand, then a real (tiny) encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pgen.evaluate.metrics.bertscore import BertScorer, greedy_f1


def test_greedy_matching_by_hand() -> None:
    candidate = np.array([[1.0, 0.0], [0.0, 1.0]])
    reference = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    precision, recall, f1 = greedy_f1(candidate, reference)
    # candidate tokens: best cosines 1 and 1 -> P = 1
    # reference tokens: 1, cos 45° = 0.7071, 1 -> R = (2 + 0.7071) / 3
    r = (2 + 2**-0.5) / 3
    assert precision == pytest.approx(1.0)
    assert recall == pytest.approx(r)
    assert f1 == pytest.approx(2 * r / (1 + r))
    assert greedy_f1(candidate, np.zeros((0, 2))) == (0.0, 0.0, 0.0)


def test_identical_texts_score_one_and_sides_swap(tiny_bert: Path) -> None:
    scorer = BertScorer(tiny_bert, layer=2)
    same = scorer.scores(["the battery lasts long"], ["the battery lasts long"])
    assert same[0] == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    forward = scorer.scores(["great sound"], ["the screen is bright"])[0]
    backward = scorer.scores(["the screen is bright"], ["great sound"])[0]
    assert forward[0] == pytest.approx(backward[1], abs=1e-5)  # P(a, b) = R(b, a)
    assert forward[2] < 1.0


def test_special_tokens_are_not_matched(tiny_bert: Path) -> None:
    scorer = BertScorer(tiny_bert, layer=1)
    tokens = scorer.embed_tokens(["great sound", ""])
    assert tokens[0].shape == (2, 32)  # two words, no [CLS]/[SEP]
    assert tokens[1].shape[0] == 0
    assert scorer.scores([""], ["great sound"])[0, 2] == 0.0


def test_layer_is_checked(tiny_bert: Path) -> None:
    with pytest.raises(ValueError, match=r"layers 0\.\.2"):
        BertScorer(tiny_bert, layer=7)


def test_default_is_the_bundled_minilm_last_layer() -> None:
    scorer = BertScorer()
    assert scorer.layer == 6
    metric = scorer.metric()
    assert "layer 6" in metric.definition
    assert metric(["a dog runs"], ["a dog runs"]) == pytest.approx(1.0, abs=1e-5)
