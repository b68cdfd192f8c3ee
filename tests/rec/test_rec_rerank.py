"""The LLM re-ranker: robust answer parsing, and a real (tiny, random) model end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pgen.recommend.arrays import Split
from pgen.recommend.protocol import evaluate
from pgen.recommend.recommenders import build
from pgen.recommend.rerank import LLMReranker, build_prompt, parse_ranking

TITLES = ["Heat (1995)", "Apollo 13 (1995)", "Casino (1995)", "Se7en (1995)"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("3, 1, 2, 4", [2, 0, 1, 3]),
        ("[4] > [2]", [3, 1, 0, 2]),
        ("Answer: 2 2 2 9 0 -1", [1, 0, 2, 3]),  # repeats and out-of-range numbers ignored
        ("", [0, 1, 2, 3]),  # nothing usable: base order
        ("I cannot help with that.", [0, 1, 2, 3]),
        ("1. Casino\n2. Apollo 13 (1995)\n3. heat", [2, 1, 0, 3]),  # titles, not list numbers
        ("The user will love se7en!!!", [3, 0, 1, 2]),
        ("3,1,\u00a0\u200b2", [2, 0, 1, 3]),
        ("4.5, 3.", [3, 2, 0, 1]),
    ],
)
def test_parse_ranking_is_robust(answer: str, expected: list[int]) -> None:
    assert parse_ranking(answer, TITLES) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # Numbers are not thrown away because another entry names a title.
        ("2, 4\nCasino is a classic", [1, 3, 2, 0]),
        ("4, Casino (1995), 1", [3, 2, 0, 1]),
        # "Apollo 13" in an entry is a title: its 13 and the list marker are not numbers.
        ("1. Apollo 13\n3", [1, 2, 0, 3]),
    ],
)
def test_parse_ranking_mixes_titles_and_numbers(answer: str, expected: list[int]) -> None:
    assert parse_ranking(answer, TITLES) == expected


def test_parse_ranking_ignores_titles_inside_longer_titles_and_echoed_prompts() -> None:
    history = ["Heat Wave (1990)", "Casino Royale (2006)"]
    # The model echoes a history item: "Heat" and "Casino" are inside those titles.
    echo = "You watched Heat Wave (1990) and Casino Royale.\nI pick 2, then 4"
    assert parse_ranking(echo, TITLES, history) == [1, 3, 0, 2]
    # The whole prompt echoed, then the answer: only the answer counts.
    prompt = build_prompt(history, TITLES)[1].content
    assert parse_ranking(prompt + "\n4, 1", TITLES, history) == [3, 0, 1, 2]
    # One candidate's title inside another's: the longer one is matched first.
    candidates = ["Heat (1995)", "Heat Wave (1990)", "Casino (1995)"]
    assert parse_ranking("Heat Wave, then Heat", candidates) == [1, 0, 2]


def test_prompt_names_history_and_numbered_candidates() -> None:
    chat = build_prompt(["Heat (1995)"], ["Casino (1995)", "Se7en (1995)"])
    text = chat[-1].content
    assert "- Heat (1995)" in text and "1. Casino (1995)" in text and "2. Se7en (1995)" in text


def test_reranker_with_a_tiny_real_llm_keeps_a_valid_ranking(
    tiny_llama: Path, planted_split: Split
) -> None:
    from pgen.models.text import load_text_model

    text_model = load_text_model(str(tiny_llama))
    base = build("itemknn", planted_split.data.n_users, planted_split.data.n_items, k=20)
    base.fit(planted_split)
    reranker = LLMReranker(
        base, text_model, planted_split.data.titles, candidates=5, max_new_tokens=8
    )
    users = planted_split.eval_users[:3]
    histories = planted_split.history("test")[:3]
    with torch.no_grad():
        base_scores = base.score(users, histories)
    scores = reranker.score(users, histories)
    assert len(reranker.answers) == 3
    for row, history in enumerate(histories):
        masked = base_scores[row].clone()
        masked[history] = float("-inf")
        base_top = set(masked.topk(5).indices.tolist())
        # The re-ranked top 5 is a permutation of the base top 5, in the parsed order.
        top = scores[row].topk(5).indices.tolist()
        assert set(top) == base_top
        order = reranker.answers[row]["order"]
        candidates = masked.topk(5).indices.tolist()
        assert top == [candidates[i] for i in order]
    result = evaluate(reranker, planted_split, "test", max_users=4)
    assert result.n_users == 4 and 0.0 <= result.metrics["ndcg@10"] <= 1.0
    assert np.isfinite(list(result.metrics.values())).all()
