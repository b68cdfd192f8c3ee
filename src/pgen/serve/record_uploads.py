"""Context over HTTP: records as a JSON body or a JSONL upload (written to a temporary file
and read like ``pgen ingest``), and image uploads, through the Engine."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from pgen.context.base import IngestStats
from pgen.engine import Engine


def ingest_lines(engine: Engine, lines: Iterable[str], source: str) -> IngestStats:
    with tempfile.TemporaryDirectory(prefix="pgen-records-") as folder:
        path = Path(folder) / "records.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(line + "\n")
        return engine.ingest_uploaded(path, source)


def ingest_json(engine: Engine, records: list[dict[str, Any]]) -> IngestStats:
    lines = (json.dumps(record, ensure_ascii=False) for record in records)
    return ingest_lines(engine, lines, "records")


def ingest_upload(engine: Engine, upload: IO[bytes], name: str) -> IngestStats:
    with tempfile.TemporaryDirectory(prefix="pgen-upload-") as folder:
        path = Path(folder) / "upload.jsonl"
        with path.open("wb") as handle:
            shutil.copyfileobj(upload, handle, 1 << 20)
        return engine.ingest_uploaded(path, name)
