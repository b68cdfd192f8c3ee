"""Metrics as RecBole defines them, checked on hand-built rankings, and the protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pgen.evaluate.metrics.ranking import hits_from_ranks, per_user, summarize
from pgen.recommend.arrays import Sequences, leave_one_out
from pgen.recommend.protocol import evaluate, full_ranks, mask_history


def test_metrics_match_recbole_definitions_on_a_hand_built_case() -> None:
    # User A: 3 positives, found at ranks 1 and 3. User B: 1 positive, found at rank 4.
    hits = np.array([[1, 0, 1, 0, 0], [0, 0, 0, 1, 0]], dtype=bool)
    n_pos = np.array([3, 1])
    at5 = per_user(hits, n_pos, 5)
    ideal_a = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # min(3, 5) positives ranked first
    assert at5["ndcg"] == pytest.approx([(1 + 1 / math.log2(4)) / ideal_a, 1 / math.log2(5)])
    assert at5["hr"] == pytest.approx([1, 1])
    assert at5["mrr"] == pytest.approx([1, 1 / 4])
    assert at5["recall"] == pytest.approx([2 / 3, 1])
    assert at5["precision"] == pytest.approx([2 / 5, 1 / 5])
    # At K=3 user B's hit falls outside the list; user A's IDCG has 3 terms, as at K=5.
    at3 = per_user(hits, n_pos, 3)
    assert at3["hr"] == pytest.approx([1, 0])
    assert at3["ndcg"] == pytest.approx([(1 + 1 / math.log2(4)) / ideal_a, 0])
    assert at3["recall"] == pytest.approx([2 / 3, 0])
    # At K=2 user A's IDCG only counts two positives (min(n_pos, K)).
    at2 = per_user(hits, n_pos, 2)
    assert at2["ndcg"][0] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    means = summarize(hits, n_pos, (3, 5))
    assert means["mrr@5"] == pytest.approx((1 + 0.25) / 2)
    assert set(means) == {
        f"{m}@{k}" for m in ("hr", "ndcg", "mrr", "recall", "precision") for k in (3, 5)
    }


def test_hits_from_ranks_places_one_positive() -> None:
    hits = hits_from_ranks(np.array([1, 3, 7]), 5)
    assert hits.tolist() == [
        [True, False, False, False, False],
        [False, False, True, False, False],
        [False] * 5,
    ]


def test_full_ranks_break_ties_by_item_index_and_masking_keeps_the_target() -> None:
    scores = torch.tensor([[0.5, 0.9, 0.5, 0.1], [0.2, 0.2, 0.2, 0.2]])
    assert full_ranks(scores, np.array([2, 3])).tolist() == [3, 4]
    # Masking item 1 (seen) lifts target 2; the target itself is never masked.
    mask_history(scores, [np.array([1, 2]), np.array([0, 3])], np.array([2, 3]))
    assert scores[0, 1] == float("-inf") and scores[0, 2] == 0.5
    assert full_ranks(scores, np.array([2, 3])).tolist() == [2, 3]


class ScoreTable:
    """Fixed scores per item, the same for every user: a scorer we can rank by hand."""

    def __init__(self, values: list[float]) -> None:
        self.values = torch.tensor(values)

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> torch.Tensor:
        return self.values.expand(len(users), -1).clone()


def test_evaluate_excludes_history_and_uses_the_right_targets() -> None:
    # One user; items in time order 4, 0, 1, 2: train [4, 0], valid 1, test 2.
    data = Sequences(["u"], [f"i{k}" for k in range(6)], [np.array([4, 0, 1, 2])], [""] * 6)
    split = leave_one_out(data)
    table = ScoreTable([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    valid = evaluate(table, split, "valid", ks=(1, 2))
    # Items 4 and 0 are history: valid target 1 is ranked first among the rest.
    assert valid.metrics["hr@1"] == 1.0 and valid.mode == "full ranking (repeat targets kept)"
    test = evaluate(table, split, "test", ks=(1, 2))
    # History 4, 0, 1 removed: target 2 ranks first, while it would rank third with them.
    assert test.metrics["hr@1"] == 1.0
    assert test.n_users == 1


def test_repeat_target_is_kept_by_default_and_masked_in_recbole_mode() -> None:
    # Items in time order 0, 1, 2, 0: the test target 0 is also in the history [0, 1, 2].
    data = Sequences(["u"], [f"i{k}" for k in range(6)], [np.array([0, 1, 2, 0])], [""] * 6)
    split = leave_one_out(data)
    table = ScoreTable([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    kept = evaluate(table, split, "test", ks=(1, 2))
    # Ours: history 1, 2 removed, the repeated target stays and ranks first.
    assert kept.metrics["hr@1"] == 1.0
    assert kept.mode == "full ranking (repeat targets kept)"
    masked = evaluate(table, split, "test", ks=(1, 2, 4), repeat_targets="mask")
    # RecBole: 0, 1, 2 all masked, so items 3, 4, 5 rank ahead of the target: rank 4.
    assert masked.metrics["hr@2"] == 0.0
    assert masked.metrics["mrr@4"] == 0.25
    assert masked.mode == "full ranking (repeat targets masked, as RecBole)"
    with pytest.raises(ValueError, match="repeat_targets"):
        evaluate(table, split, "test", repeat_targets="drop")


def test_sampled_mode_is_labelled_and_never_ranks_worse_than_full(planted_split) -> None:
    table = ScoreTable(list(np.linspace(1, 0, planted_split.data.n_items)))
    full = evaluate(table, planted_split, "test")
    sampled = evaluate(table, planted_split, "test", negatives=10, seed=3)
    assert sampled.mode == "sampled: 10 uniform negatives"
    assert all(name.endswith("[sampled-10]") for name in sampled.metrics)
    assert sampled.metrics["hr@20[sampled-10]"] == 1.0  # only 11 candidates to rank
    assert sampled.metrics["hr@10[sampled-10]"] < 1.0
    assert sampled.metrics["ndcg@5[sampled-10]"] >= full.metrics["ndcg@5"]
    again = evaluate(table, planted_split, "test", negatives=10, seed=3)
    assert again.metrics == sampled.metrics


def test_leave_one_out_keeps_short_users_in_training_only() -> None:
    data = Sequences(
        ["a", "b"], ["x", "y", "z"], [np.array([0, 1, 2]), np.array([2, 0])], ["", "", ""]
    )
    split = leave_one_out(data)
    assert split.eval_users.tolist() == [0]
    assert split.train[0].tolist() == [0] and split.train[1].tolist() == [2, 0]
    assert split.valid_items.tolist() == [1] and split.test_items.tolist() == [2]
    assert [h.tolist() for h in split.history("test")] == [[0, 1]]
