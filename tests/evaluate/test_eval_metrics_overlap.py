"""ROUGE, BLEU and METEOR on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import sacrebleu

from pgen.evaluate.metrics import bleu, lamp_rouge_bootstrap_mid, meteor, rouge
from pgen.evaluate.metrics.overlap import meteor_scores, rouge_scores


def test_rouge1_by_hand() -> None:
    # pred 3 tokens, gold 6 tokens, 3 shared unigrams: P = 1, R = 1/2, F = 2/3
    assert rouge("rouge-1")(["the cat sat"], ["the cat sat on the mat"]) == pytest.approx(2 / 3)


def test_rouge_l_uses_the_longest_common_subsequence() -> None:
    # LCS of "a b c d" and "a c b d" has length 3: P = R = 3/4
    assert rouge("rouge-L")(["a b c d"], ["a c b d"]) == pytest.approx(0.75)
    assert rouge("rouge-1")(["a b c d"], ["a c b d"]) == pytest.approx(1.0)


def test_rouge_tokenizer_lowercases_drops_punctuation_and_does_not_stem() -> None:
    assert rouge_scores(["Hello, World!"], ["hello world"], "rouge-1")[0] == pytest.approx(1.0)
    assert rouge_scores(["cats"], ["cat"], "rouge-1")[0] == 0.0  # no stemming, as LaMP
    assert rouge_scores([""], ["cat"], "rouge-1")[0] == 0.0


def test_rouge_corpus_value_is_the_mean_of_examples() -> None:
    preds, golds = ["the cat sat", "a b"], ["the cat sat on the mat", "a b"]
    assert rouge("rouge-1")(preds, golds) == pytest.approx((2 / 3 + 1) / 2)


def test_lamp_bootstrap_median_is_seeded_and_near_the_mean() -> None:
    preds = ["the cat sat", "a b", "x y z", "the dog"]
    golds = ["the cat sat on the mat", "a b", "x q", "a dog barks"]
    first = lamp_rouge_bootstrap_mid(preds, golds, seed=3)
    assert first == lamp_rouge_bootstrap_mid(preds, golds, seed=3)
    mean = rouge("rouge-1")(preds, golds)
    assert abs(first["rouge-1"] - mean) < 0.1
    same = lamp_rouge_bootstrap_mid(["a b", "a b"], ["a b", "a b"])
    assert same["rouge-1"] == pytest.approx(1.0)


def _independent_lamp_rouge(preds: list[str], golds: list[str], seed: int) -> dict[str, float]:
    """evaluate's rouge as LaMP runs it, rebuilt here from its parts: rouge-score's own
    scorer per example (references as one-element lists, stripped), then by hand the
    BootstrapAggregator procedure: after np.random.seed, for rouge1, rouge2, rougeL and
    rougeLsum in turn, 1000 resamples of the examples with replacement from the global
    generator, and the 50th percentile of the resample means of (P, R, F)."""
    from rouge_score import rouge_scorer

    kinds = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    scorer = rouge_scorer.RougeScorer(kinds, use_stemmer=False)
    scores = [scorer.score_multi([g.strip()], p.strip()) for p, g in zip(preds, golds, strict=True)]
    np.random.seed(seed)
    mids = {}
    for kind in kinds:
        matrix = np.array([list(s[kind]) for s in scores])
        means = np.zeros((1000, 3))
        for i in range(1000):
            sample = np.random.choice(np.arange(len(matrix)), size=len(matrix))
            means[i] = matrix[sample].mean(axis=0)
        mids[kind] = float(np.percentile(means, 50, axis=0)[2])
    return {"rouge-1": mids["rouge1"], "rouge-L": mids["rougeL"]}


def test_lamp_bootstrap_median_matches_an_independent_computation() -> None:
    preds = ["the cat sat", "a b", "x y z", "the dog", "", "Rain, rain, go away!", "1 2 3 4"]
    golds = ["the cat sat on the mat", "a b", "x q", "a dog barks", "e", "rain go away", "2 4 6"]
    for seed in (0, 3):  # 0: the default
        expected = _independent_lamp_rouge(preds, golds, seed=seed)
        found = lamp_rouge_bootstrap_mid(preds, golds, seed=seed)
        assert found["rouge-1"] == pytest.approx(expected["rouge-1"], abs=1e-12)
        assert found["rouge-L"] == pytest.approx(expected["rouge-L"], abs=1e-12)
    # Not the plain mean in general: here ROUGE-L's median of resample means differs.
    assert found["rouge-L"] != pytest.approx(rouge("rouge-L")(preds, golds), abs=1e-6)
    # The shared global generator is left as it was.
    np.random.seed(5)
    before = np.random.random()
    np.random.seed(5)
    lamp_rouge_bootstrap_mid(preds, golds)
    assert np.random.random() == before


def test_bleu_by_hand() -> None:
    # n-gram precisions 4/5, 3/4, 2/3, 1/2; equal lengths so no brevity penalty.
    expected = 100 * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert bleu()(["a b c d e"], ["a b c d f"]) == pytest.approx(expected)


def test_bleu_is_corpus_level_and_matches_sacrebleu() -> None:
    preds = ["the cat sat on the mat", "hello there", "a completely different thing"]
    golds = ["the cat sat on a mat", "hello there general kenobi", "something else entirely"]
    expected = sacrebleu.corpus_bleu(preds, [golds]).score
    assert bleu()(preds, golds) == pytest.approx(expected)
    sentence_mean = np.mean(
        [sacrebleu.sentence_bleu(p, [g]).score for p, g in zip(preds, golds, strict=True)]
    )
    assert bleu()(preds, golds) != pytest.approx(sentence_mean)


def test_meteor_by_hand() -> None:
    # Identical 6 tokens: P = R = 1, one chunk: penalty 0.5 * (1/6)^3.
    assert meteor_scores(["the cat sat on the mat"], ["the cat sat on the mat"])[0] == (
        pytest.approx(1 - 0.5 * (1 / 6) ** 3)
    )
    # One word matched through its Porter stem: one chunk of one word, penalty 0.5.
    assert meteor_scores(["cats"], ["cat"])[0] == pytest.approx(0.5)
    assert meteor_scores(["dogs"], ["cat"])[0] == 0.0
    assert meteor_scores([""], ["cat"])[0] == 0.0


def test_meteor_corpus_value_is_the_mean() -> None:
    assert meteor()(["cats", "dogs"], ["cat", "cat"]) == pytest.approx(0.25)


def test_meteor_matches_wordnet_synonyms() -> None:
    # `make` installs WordNet 3.0 (scripts/install_wordnet.py); METEOR without it is a
    # different metric, so its absence is a failure, not a skip.
    from pgen.evaluate.metrics.overlap import meteor_setup

    assert meteor_setup()["wordnet"], "WordNet missing: run scripts/install_wordnet.py"
    # car.n.01 holds "auto": one synonym match, one chunk of one word -> 0.5.
    assert meteor_scores(["car"], ["auto"])[0] == pytest.approx(0.5)
    # NLTK looks synonyms up on Porter stems: "large" -> "larg" has no synset.
    assert meteor_scores(["big"], ["large"])[0] == 0.0
