"""JSON Lines (optionally gzipped, or one JSON array) with a stated error policy.

Every use says what a bad line means to it:

* ``"raise"``: the file is input a person is loading (``bench rec``'s data): the first
  line that is not JSON stops the read with a ``FormatError`` naming file and line.
* ``"skip"``: the file is a published dump read for a benchmark (Amazon 5-core, LongLaMP),
  where one torn line should not stop a run: bad lines are skipped and counted, and the
  count goes into the report (``"invalid JSON line"``).

``literals=True`` also accepts a line that is a Python literal (the older Amazon metadata
dumps are ``repr``-ed dicts, not JSON). ``pgen ingest``'s own JSONL reader
(``pgen.context.ingest.read_jsonl``) validates records of hostile input line by line and
is stricter still; it is kept there.
"""

from __future__ import annotations

import ast
import gzip
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from pgen.context.formats import FormatError

OnError = Literal["raise", "skip"]
INVALID_LINE = "invalid JSON line"
_BAD = object()  # a skipped line (``None`` is a valid JSON value)


@dataclass
class Lines:
    """The values read, each with its line number (1 for every element of a JSON array)."""

    values: list[tuple[int, Any]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _parse(line: str, literals: bool) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        if not literals:
            raise
    try:
        return ast.literal_eval(line)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise json.JSONDecodeError("neither JSON nor a Python literal", line, 0) from None


def _lines(
    handle: IO[str], path: Path, on_error: OnError, literals: bool
) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            yield number, _parse(line, literals)
        except json.JSONDecodeError:
            if on_error == "raise":
                raise FormatError(f"{path}:{number}", "not a JSON object") from None
            yield number, _BAD


def read_lines(path: Path, on_error: OnError, *, literals: bool = False) -> Lines:
    """Every value of a JSON Lines file or JSON array, under the ``on_error`` policy."""
    if not path.is_file():
        raise FormatError(str(path), "no such file" if not path.exists() else "not a file")
    found = Lines()
    with open_text(path) as handle:
        first = handle.read(1)
        while first and first.isspace():
            first = handle.read(1)
        handle.seek(0)
        if first == "[":
            try:
                data = json.load(handle)
            except json.JSONDecodeError as error:  # one array: no line to skip, so say where
                raise FormatError(
                    f"{path}: line {error.lineno}", f"not a valid JSON array ({error.msg})"
                ) from None
            found.values = [(1, value) for value in data]
            return found
        for number, value in _lines(handle, path, on_error, literals):
            if value is _BAD:
                found.skipped[INVALID_LINE] += 1
            else:
                found.values.append((number, value))
    return found
