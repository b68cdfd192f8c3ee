"""What a text benchmark task is: examples (instruction, gold, the user's profile) and metrics.

Every loader returns a ``TaskData``. Each example's profile is already turned into
``Document`` records of that example's own user (``Example.user_id``), so a runner only
has to add them to a store: one question's profile never reaches another question.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pgen.context.formats import FormatError
from pgen.context.formats.jsonl import read_lines
from pgen.context.records import Document
from pgen.evaluate.metrics import Metric, accuracy, bleu, macro_f1, mae, meteor, rmse, rouge
from pgen.evaluate.run_record import sha256_files

Kind = Literal["classification", "rating", "generation"]


@dataclass(frozen=True)
class Example:
    id: str
    user_id: str  # the store user holding this example's profile
    instruction: str  # what the model is asked, exactly as the benchmark words it
    gold: str
    profile: tuple[Document, ...]
    query: str | None = None  # retrieval query when it should differ from the instruction
    source_user: str = ""  # the data set's own user id, when it has one (LongLaMP, Amazon)
    # Why documents were taken out of this profile (one reason per document): variant
    # duplicates, and the leakage guard's removals (``pgen.evaluate.benchmarks.leakage``).
    excluded: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskSpec:
    name: str  # the task id written in prediction files ("LaMP_2", "amazon_rating", ...)
    kind: Kind
    labels: tuple[str, ...] = ()
    max_new_tokens: int = 32
    family: str = "LaMP"


@dataclass
class TaskData:
    spec: TaskSpec
    examples: list[Example]
    sources: list[Path]
    data_hash: str
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> records skipped
    setting: str = ""  # e.g. LongLaMP "user" or "temporal"

    def golds_file(self) -> dict[str, Any]:
        """The golds in LaMP's own format."""
        return {
            "task": self.spec.name,
            "golds": [{"id": e.id, "output": e.gold} for e in self.examples],
        }


def metrics_for(spec: TaskSpec) -> list[Metric]:
    if spec.kind == "classification":
        return [accuracy(spec.labels), macro_f1(spec.labels)]
    if spec.kind == "rating":
        return [mae(), rmse()]
    return [rouge("rouge-1"), rouge("rouge-L"), bleu(), meteor()]


def hash_files(paths: Iterable[Path]) -> str:
    """sha256 over the bytes of the data files (in the given order)."""
    return sha256_files(paths)


def read_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: line {error.lineno}: not valid JSON ({error.msg})") from None


def read_records(path: Path) -> tuple[list[Any], Counter[str]]:
    """A benchmark dump's records: a JSON array, or JSON Lines (optionally .gz) whose bad
    lines are skipped and counted (the "skip" policy of ``pgen.context.formats.jsonl``:
    one torn line of a published dump should not stop a run; the report counts it)."""
    try:
        lines = read_lines(path, "skip")
    except FormatError as error:
        raise ValueError(str(error)) from None
    return [value for _, value in lines.values], lines.skipped


def select(examples: Sequence[Example], users: int | None, limit: int | None) -> list[Example]:
    """A deterministic sample: the first ``users`` distinct users, then the first ``limit``.

    Users are the data set's own (``source_user``); LaMP has none, so there each question
    is its own user.
    """
    chosen = list(examples)
    if users is not None:
        keep: set[str] = set()
        for example in chosen:
            if len(keep) >= users:
                break
            keep.add(example.source_user or example.user_id)
        chosen = [e for e in chosen if (e.source_user or e.user_id) in keep]
    if limit is not None:
        chosen = chosen[:limit]
    return chosen
