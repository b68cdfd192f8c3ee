"""ROPG: fine-tuning the dense retriever's model on (query, positive, negative) feedback
moves the positives up for their queries, saves a folder the dense retriever loads, and
keeps no training text beside the weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pgen.context.artifacts import read_meta
from pgen.models.embedding import SentenceEmbedder, resolve_embedder_path
from pgen.training.ropg import ROPG_KIND, RopgSettings, Triple, fine_tune

# Feedback that goes against surface meaning: for these requests, what helped the gold
# was the user's note about their allotment, not the text that shares their words.
QUERIES = ["what should I cook tonight", "a recipe for dinner", "what to eat this evening"]
POSITIVE = "notes from the allotment: the qwirtle beans came up early this year"
NEGATIVE = "my favourite pasta recipe for a weeknight dinner"
OTHERS = ["the train was late again this morning", "a review of the new phone camera"]


def rank_of(embedder: SentenceEmbedder, query: str, target: str, pool: list[str]) -> int:
    vectors = embedder.embed([query, *pool])
    scores = vectors[1:] @ vectors[0]
    return int(np.sum(scores > scores[pool.index(target)]))


def test_fine_tuning_moves_the_positive_up_and_saves_a_loadable_folder(tmp_path: Path) -> None:
    pool = [POSITIVE, NEGATIVE, *OTHERS]
    base = SentenceEmbedder()
    before = [rank_of(base, q, POSITIVE, pool) for q in QUERIES]
    assert sum(before) > 0  # the base model does not already put it first
    triples = [Triple(q, POSITIVE, NEGATIVE) for q in QUERIES] * 4
    settings = RopgSettings(epochs=3, batch_size=3, learning_rate=1e-4)
    folder = fine_tune(
        resolve_embedder_path("all-MiniLM-L6-v2"), triples, tmp_path / "ropg", settings
    )
    tuned = SentenceEmbedder(str(folder))  # what embed_model = "<folder>" loads
    after = [rank_of(tuned, q, POSITIVE, pool) for q in QUERIES]
    assert after == [0, 0, 0], (before, after)
    assert tuned.model_id != base.model_id  # its vectors are stored apart from the base's
    meta = read_meta(folder)
    assert meta is not None and meta.kind == ROPG_KIND and meta.extra["triples"] == len(triples)
    losses = meta.extra["losses"]
    assert losses[-1] < losses[0]
    # Nothing written beside the weights quotes a training text.
    for path in folder.rglob("*"):
        if path.is_file():
            assert b"qwirtle" not in path.read_bytes()


def test_no_triples_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no training triples"):
        fine_tune(resolve_embedder_path("all-MiniLM-L6-v2"), [], tmp_path / "ropg")
