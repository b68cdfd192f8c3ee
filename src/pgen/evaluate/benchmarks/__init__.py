"""Benchmark task loaders: LaMP 1-7, LongLaMP, Amazon reviews."""

from __future__ import annotations

from pathlib import Path

from pgen.evaluate.benchmarks.amazon import AMAZON_TASKS, load_amazon
from pgen.evaluate.benchmarks.lamp import LAMP_TASKS, load_lamp
from pgen.evaluate.benchmarks.leakage import excluded_counts, guard
from pgen.evaluate.benchmarks.longlamp import LONGLAMP_TASKS, load_longlamp
from pgen.evaluate.benchmarks.tasks import Example, TaskData, TaskSpec, metrics_for, select

TEXT_TASKS = LAMP_TASKS + LONGLAMP_TASKS + AMAZON_TASKS


def load_task(
    task: str, data: Path, split: str = "dev", longlamp_setting: str | None = None
) -> TaskData:
    """Load any text task by name from a file or folder (``split``: LaMP's, for a folder;
    ``longlamp_setting``: "user" or "temporal" when LongLaMP's paths do not say), with the
    leakage guard applied (``pgen.evaluate.benchmarks.leakage``)."""
    if task in LAMP_TASKS:
        found = load_lamp(task, data, split)
    elif task in LONGLAMP_TASKS:
        found = load_longlamp(task, data, longlamp_setting)
    elif task in AMAZON_TASKS:
        found = load_amazon(task, data)
    else:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TEXT_TASKS)}")
    # Every task's profiles, whatever their source, lose the documents that give the
    # answer away (counted on each example, reported over the examples run).
    found.examples = guard(found.examples, found.spec.kind)
    return found


__all__ = [
    "TEXT_TASKS",
    "Example",
    "TaskData",
    "TaskSpec",
    "excluded_counts",
    "load_task",
    "metrics_for",
    "select",
]
