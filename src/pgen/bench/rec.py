"""`pgen bench rec`: ingest a data set, train a recommender, score it with the protocol.

The result file holds the run's ``record`` (task, data sha256, settings, model, package
versions, machine, threads: the shape every benchmark writes, ``pgen.evaluate.run_record``)
and the training log next to the metrics, so a number can always be traced to its making.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgen.context.base import ContextStore
from pgen.evaluate.run_record import run_record, sha256_files
from pgen.models.base import Embedder, TextModel
from pgen.recommend.arrays import Sequences, leave_one_out, sequences_from_store
from pgen.recommend.data import ingest, load_data
from pgen.recommend.fit import item_texts, train_model
from pgen.recommend.protocol import EvalResult, Scorer, evaluate
from pgen.recommend.rerank import LLMReranker

RERANK = "llm-rerank"
TASK = "next-item recommendation (leave-one-out)"


@dataclass
class BenchSettings:
    model: str  # a registered recommender (``llm-rerank``: the deprecated spelling, below)
    params: dict[str, Any] = field(default_factory=dict)
    negatives: int | None = None  # also report the sampled-negatives mode
    rerank: int = 0  # let the text model re-order each user's top N of the model (0: off)
    max_users: int | None = None  # evaluate a fixed random subset (slow models)
    seed: int = 0  # the models' seed (unless params set one) and the evaluation subset's
    save: Path | None = None  # save the trained model here (reload with models.load)
    repeat_targets: str = "keep"  # see protocol.evaluate: "keep" (default) or "mask"
    # Deprecated: ``model="llm-rerank", base=X, candidates=N`` is ``model=X, rerank=N``
    # (its results keep the name llm-rerank).
    base: str = "sasrec"
    candidates: int = 20
    label: str | None = None  # the run's name in results and file names (default: derived)

    def __post_init__(self) -> None:
        if self.model == RERANK:
            self.model, self.label = self.base, self.label or RERANK
            self.rerank = self.rerank or self.candidates
        if self.rerank < 0:
            raise ValueError(f"rerank must be >= 0, got {self.rerank}")

    @property
    def name(self) -> str:
        """What results call the run: the model, ``+rerank`` when re-ranked."""
        return self.label or (f"{self.model}+rerank" if self.rerank else self.model)


def prepare_store(
    store: ContextStore, data_path: str | Path | None
) -> tuple[Sequences, dict[str, Any]]:
    """Ingest ``data_path`` (if given) into the store, then read everything back as arrays."""
    info: dict[str, Any] = {}
    if data_path is not None:
        start = time.perf_counter()
        data = load_data(data_path)
        stats = ingest(store, data)
        info = {
            "data": str(data_path),
            "sha256": sha256_files([Path(data_path).expanduser()]),
            "name": data.name,
            "ingest_seconds": round(time.perf_counter() - start, 2),
            "records_written": stats.written,
        }
    sequences = sequences_from_store(store)
    if sequences.n_interactions == 0:
        raise ValueError(f"{store.location}: no interactions to train on (ingest data with --data)")
    return sequences, info


def run_benchmark(
    store: ContextStore,
    data_path: str | Path | None,
    settings: BenchSettings,
    embedder: Callable[[], Embedder],
    text_model: Callable[[], TextModel],
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train and evaluate one model; the result as a JSON-ready dict."""
    sequences, data_info = prepare_store(store, data_path)
    split = leave_one_out(sequences)
    name, reranked = settings.name, settings.rerank > 0
    model = train_model(
        settings.model,
        split,
        settings.params,
        lambda: item_texts(store, sequences),
        embedder,
        progress,
        seed=settings.seed,
    )
    saved = str(model.save(settings.save)) if settings.save is not None else None
    scorer: Scorer = model
    rerank_info: dict[str, Any] = {}
    if reranked:
        llm = text_model()
        scorer = LLMReranker(model, llm, sequences.titles, candidates=settings.rerank)
        rerank_info = {"text_model": llm.name, "candidates": settings.rerank}
    max_users = settings.max_users
    if reranked and max_users is None:
        max_users = 100  # a CPU LLM needs seconds per user: a fixed subset, labelled

    def run(phase: str, negatives: int | None = None, scored: Scorer = scorer) -> EvalResult:
        return evaluate(
            scored,
            split,
            phase,
            negatives=negatives,
            seed=settings.seed,
            max_users=max_users,
            repeat_targets=settings.repeat_targets,
        )

    start = time.perf_counter()
    if reranked:
        # Nothing to select on validation; the base model is scored on the same users.
        results = [(name, run("test")), (settings.model, run("test", scored=model))]
    else:
        results = [(name, run("valid")), (name, run("test"))]
    if settings.negatives:
        results.append((name, run("test", settings.negatives)))
    eval_seconds = time.perf_counter() - start
    if isinstance(scorer, LLMReranker):
        answers = scorer.answers
        moved = sum(a["order"] != sorted(a["order"]) for a in answers)
        rerank_info.update(
            answers=len(answers),
            reordered=moved,  # answers that changed the base order at all
            examples=[a["answer"][:200] for a in answers[:3]],
        )
    fingerprint = sequences.fingerprint()
    record = run_record(
        task=TASK,
        data=[data_info["data"]] if data_info else [store.location],
        # The bytes read; a store benchmarked as it stands has the interactions' fingerprint.
        data_sha256=data_info.get("sha256") or fingerprint,
        settings={
            "params": model.params,
            "seed": settings.seed,
            "negatives": settings.negatives,
            "max_users": max_users,
            "repeat_targets": settings.repeat_targets,
            "candidates": settings.rerank or None,
        },
        model={
            "recommender": name,
            "base": settings.model if reranked else None,
            "text_model": rerank_info.get("text_model"),
        },
    )
    return {
        "record": record,
        "model": name,  # what report file names and tables show
        "saved_to": saved,
        "rerank": rerank_info,
        "data": {
            **data_info,
            "store": store.location,
            "fingerprint": fingerprint,
            "users": sequences.n_users,
            "items": sequences.n_items,
            "interactions": sequences.n_interactions,
            "evaluated_users": len(split.eval_users),
        },
        "protocol": "per-user chronological leave-one-out; full ranking over all items, "
        "the user's earlier items excluded; ties ordered by item index",
        "results": [{"scorer": name, **result.as_dict()} for name, result in results],
        "training": model.log,
        "eval_seconds": round(eval_seconds, 2),
    }
