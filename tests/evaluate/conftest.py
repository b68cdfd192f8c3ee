"""Fixtures for the evaluation tests: a tiny random BERT and a small Amazon-format file.

(The tiny Llama, offline settings and one-thread torch come from tests/conftest.py.) The
BERT is saved with ``save_pretrained`` and loaded back by local path, so the real
loading code runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

WORDS = (
    "the battery lasts long and the screen is bright great sound poor would not buy again "
    "what is score of following review on a scale 1 to 5 you are helpful assistant"
)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random BERT with a word-level vocabulary, for BERTScore mechanics."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = sorted(set(WORDS.split()))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def amazon_record(
    user: str, asin: str, rating: float, time: int, text: str, **extra: object
) -> dict:
    return {
        "reviewerID": user,
        "asin": asin,
        "overall": rating,
        "reviewText": text,
        "summary": f"summary of {asin}",
        "unixReviewTime": time,
        **extra,
    }


@pytest.fixture
def amazon_file(tmp_path: Path) -> Path:
    """Three users with a usable history, one with a single review, and malformed lines."""
    records = [
        amazon_record("U1", "B01", 5.0, 100, "the battery lasts long"),
        amazon_record("U1", "B03", 2.0, 300, "poor battery and a dim screen"),
        amazon_record("U1", "B02", 4.0, 200, "the screen is bright", style={"Color:": " Red"}),
        amazon_record("U2", "B01", 1.0, 50, "great sound"),
        amazon_record("U2", "B04", 3.0, 60, "the sound is fine"),
        amazon_record("U3", "B05", 4.0, 70, "only one review"),
        amazon_record("U4", "B06", 5.0, 10, "a first good cable"),
        amazon_record("U4", "B07", 4.0, 20, "a second good cable"),
        amazon_record("U4", "B08", 4.0, 30, "third cable, last"),
        {"reviewerID": "U5", "asin": "B09", "overall": 5.0, "unixReviewTime": 1},  # no text
        amazon_record("U5", "B10", 7.0, 2, "a rating out of range"),
    ]
    lines = [json.dumps(r) for r in records]
    lines.insert(3, "{not json")
    path = tmp_path / "reviews_5core.json"
    path.write_text("\n".join(lines) + "\n")
    return path
