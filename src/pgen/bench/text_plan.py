"""What a ``pgen bench text`` run does, and the cache that lets it resume.

Each finished prediction is appended to ``cache.jsonl`` at once, keyed by everything that
decides it (task, data hash, model, strategy, retriever and its code, the embedding model
for dense retrieval, k, decoding, prompt budget, and a hash of the strategy's
prompt-building code), so an interrupted run picks up where it stopped and a changed
setting never reuses a stale answer.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pgen.bench.text_adapter_runs import ADAPTER_STRATEGIES, AdapterCaps
from pgen.bench.training import BenchTraining
from pgen.evaluate.answers import CHOICE, CHOICE_MODES
from pgen.evaluate.benchmarks import TaskData
from pgen.evaluate.scoring import BASELINE
from pgen.models.base import GenerationSettings

CACHE_FILE = "cache.jsonl"
# The code that ranks a user's documents: its constants (BM25's k1 and b, the RRF depth)
# decide which documents reach the prompt.
RETRIEVER_MODULES = ("pgen.usermodel.retrievers", "pgen.usermodel.bm25", "pgen.usermodel.dense")
EMBEDDING_RETRIEVERS = ("dense", "hybrid")  # rankings that depend on the embedding model


def store_path(run_dir: Path, data_hash: str) -> Path:
    """The run's document store, one per data set: the store only adds and updates, so
    a second data set with overlapping question ids in the same folder would otherwise
    find the first one's profile documents still there."""
    return run_dir / f"store-{data_hash[:12]}.sqlite"


@dataclass(frozen=True)
class Setting:
    """One way of personalizing: a strategy and, for retrieval, a retriever and k."""

    strategy: str
    retriever: str | None = None
    k: int | None = None

    @property
    def name(self) -> str:
        if self.retriever is None:
            return self.strategy
        return f"{self.strategy}-{self.retriever}-k{self.k}"


def settings_grid(strategies: list[str], retrievers: list[str], ks: list[int]) -> list[Setting]:
    """``none`` first, always (the baseline of every paired test), and ``profile`` once;
    every retrieving strategy (``rag``, ``lora+rag``) for every retriever and k, so that
    ``lora+rag`` and ``rag`` compare the same documents, retrieved by the same query."""
    grid: list[Setting] = [Setting(BASELINE)]
    for strategy in dict.fromkeys(strategies):
        if retrieves(strategy):
            grid += [Setting(strategy, r, k) for r in dict.fromkeys(retrievers) for k in ks]
        elif strategy != BASELINE:
            grid.append(Setting(strategy))
    return grid


def retrieves(strategy: str) -> bool:
    """Whether the text strategy puts retrieved documents in the prompt."""
    from pgen.personalize import get_strategy

    try:
        return bool(getattr(get_strategy("text", strategy), "retrieves", False))
    except ValueError:
        return False  # unknown: refused where the plan is checked


@dataclass
class BenchPlan:
    settings: list[Setting]
    model: str  # the model spec, part of every cache key
    max_new_tokens: int
    prompt_tokens: int = 1024
    batch_size: int = 8
    progress: bool = True
    answers: str = "raw"  # "first-label": read label answers out of chatty text (not LaMP's rule)
    embed_model: str = ""  # the dense retriever's embedding model, keyed for dense settings
    extra: dict[str, Any] = field(default_factory=dict)  # recorded, not keyed
    # Decoding beyond the token cap: GenerationSettings's defaults (plain greedy, seed 0)
    # unless the command line asks; keyed and recorded through ``generation()``.
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    # Per-user training of the adapter settings (lora, lora+rag, dpo): keyed for those.
    adapter_caps: AdapterCaps = field(default_factory=AdapterCaps)
    run_dir: Path | None = None  # where the dpo pairs' base answers are cached
    # Where those adapters train (inline or Ray: the same adapters); gathering more than
    # one user at a time is keyed (a gathered adapter is not bit for bit a lone one's).
    training: BenchTraining = field(default_factory=BenchTraining)

    def generation(self) -> GenerationSettings:
        return GenerationSettings.from_settings(self)


@dataclass
class Prediction:
    id: str
    output: str
    provenance: list[str]
    seconds: float
    model: str = ""  # the loaded model's own name
    label_logprobs: list[float] | None = None  # choice modes: each label's score, in order


def code_fingerprint(modules: set[str]) -> str:
    """A hash of the source of these modules: any edit there may change answers."""
    digest = hashlib.sha256()
    for name in sorted(modules):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            digest.update(Path(spec.origin).read_bytes())
    return digest.hexdigest()[:16]


def strategy_fingerprint(strategy: str) -> str:
    """The code that builds this strategy's prompts (its module, the shared base and
    prompt packing)."""
    from pgen.personalize import get_strategy

    modules = {type(get_strategy("text", strategy)).__module__}
    return code_fingerprint(modules | {"pgen.personalize.base", "pgen.personalize.prompts"})


def cache_key(data: TaskData, plan: BenchPlan, setting: Setting) -> str:
    decided_by: dict[str, Any] = {
        "prompts": strategy_fingerprint(setting.strategy),
        "task": data.spec.name,
        "data": data.data_hash,
        "model": plan.model,
        "setting": asdict(setting),
        "generation": asdict(plan.generation()),
        "prompt_tokens": plan.prompt_tokens,
    }
    if setting.retriever is not None:
        decided_by["retrieval"] = code_fingerprint(set(RETRIEVER_MODULES))
        if setting.retriever in EMBEDDING_RETRIEVERS:
            decided_by["embed_model"] = plan.embed_model
    if setting.strategy in ADAPTER_STRATEGIES:  # answers depend on how the adapter trained
        decided_by["adapter_caps"] = asdict(plan.adapter_caps)
        if plan.training.batch_users != 1:  # keys of runs trained each alone stay as they were
            decided_by["batch_users"] = plan.training.batch_users
    if plan.answers in CHOICE_MODES:  # chosen, not generated: one key for the label scores
        decided_by["answers"] = CHOICE
    return hashlib.sha256(json.dumps(decided_by, sort_keys=True).encode()).hexdigest()[:24]


def read_cache(path: Path) -> dict[str, dict[str, Prediction]]:
    """key -> id -> prediction. A torn last line (killed mid-write) is ignored."""
    found: dict[str, dict[str, Prediction]] = {}
    if not path.is_file():
        return found
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                row = json.loads(line)
                prediction = Prediction(
                    row["id"],
                    row["output"],
                    row["provenance"],
                    row.get("seconds", 0.0),
                    row.get("model", ""),
                    row.get("label_logprobs"),
                )
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
            found.setdefault(row["key"], {})[prediction.id] = prediction
    return found
