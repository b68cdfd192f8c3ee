"""ROPG: the dense retriever's embedding model fine-tuned on feedback from generation.

The training data are (query, positive, negative) triples: a positive is a document whose
presence in the prompt raised the gold output's likelihood under the text model over the
prompt without it, a negative one that did not (``pgen bench rspg`` builds them). The loss
is the usual in-batch contrastive one (InfoNCE over cosine similarities times ``scale``):
each query against its own positive, every other query's positive and every negative in
the batch. The result is a plain sentence-transformers folder plus ``pgen_artifact.json``,
so ``embed_model = "<folder>"`` makes it the ``dense`` retriever's model (its vectors are
stored apart from the base model's: the folder's fingerprint is part of the model id).
The weights are trained on the training split's texts; no text is stored beside them.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pgen.context.artifacts import ArtifactMeta, fingerprint, write_meta

ROPG_KIND = "ropg"
# Written by sentence-transformers' save for the Hub; it can quote training data, so the
# artifact leaves it out.
MODEL_CARD = "README.md"


@dataclass(frozen=True)
class Triple:
    query: str
    positive: str
    negative: str | None = None


@dataclass(frozen=True)
class RopgSettings:
    epochs: int = 2
    batch_size: int = 16
    learning_rate: float = 2e-5
    scale: float = 20.0  # cosine similarities times this are the logits
    max_seq_length: int = 128  # tokens per text: documents are cut (bounds the cost)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.max_seq_length < 8:
            raise ValueError("ROPG needs epochs >= 1, batch_size >= 2 and max_seq_length >= 8")
        if self.learning_rate <= 0 or self.scale <= 0:
            raise ValueError("ROPG needs a positive learning_rate and scale")


def triples_fingerprint(triples: Sequence[Triple]) -> str:
    return fingerprint(f"{t.query}\0{t.positive}\0{t.negative or ''}" for t in triples)


def _embed(model: Any, texts: list[str]) -> Any:
    """Unit vectors with gradients (``encode`` runs without them)."""
    import torch

    prepare = getattr(model, "preprocess", None) or model.tokenize  # renamed in 6.x
    features = prepare(texts)
    # Move the tensors; other entries (sentence-transformers 6 adds some) go as they are.
    features = {
        name: value.to(model.device) if isinstance(value, torch.Tensor) else value
        for name, value in features.items()
    }
    vectors = model(features)["sentence_embedding"]
    return torch.nn.functional.normalize(vectors, dim=-1)


def fine_tune(
    base: str, triples: Sequence[Triple], out: Path, settings: RopgSettings | None = None
) -> Path:
    """Fine-tune the sentence-transformers model at ``base`` (a folder) on ``triples`` and
    save it to ``out`` (replaced whole: the old folder stays until the new one is done)."""
    import torch
    from sentence_transformers import SentenceTransformer

    settings = settings or RopgSettings()
    if not triples:
        raise ValueError("ROPG has no training triples (no document raised a gold's likelihood)")
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model = SentenceTransformer(base, device="cpu")
    model.max_seq_length = settings.max_seq_length
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
    losses: list[float] = []
    for _ in range(settings.epochs):
        order = rng.permutation(len(triples))
        for start in range(0, len(order), settings.batch_size):
            batch = [triples[int(i)] for i in order[start : start + settings.batch_size]]
            if len(batch) < 2:
                continue  # one query has no in-batch negatives to learn from
            documents = [t.positive for t in batch] + [t.negative for t in batch if t.negative]
            queries = _embed(model, [t.query for t in batch])
            logits = settings.scale * queries @ _embed(model, documents).T
            # Another query's copy of one's own positive is no negative: leave it out.
            same = torch.tensor([[d == t.positive for d in documents] for t in batch])
            same[torch.arange(len(batch)), torch.arange(len(batch))] = False
            logits = logits.masked_fill(same, float("-inf"))
            loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    model.eval()
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save(str(partial))
    (partial / MODEL_CARD).unlink(missing_ok=True)
    meta = ArtifactMeta(
        kind=ROPG_KIND,
        user_id="",
        name=out.name,
        base_model=base,
        fingerprint=triples_fingerprint(triples),
        settings=asdict(settings),
        extra={"triples": len(triples), "steps": len(losses), "losses": losses},
    )
    write_meta(partial, meta)
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.replace(old)
    partial.replace(out)
    shutil.rmtree(old, ignore_errors=True)
    return out
