"""Reading context files: pgen JSONL and LaMP question files.

Every record of a file is parsed and checked before anything is written; the batch then
goes to the store in one transaction. A bad record stops the whole file with an error
naming the file, the line (or LaMP question) and the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError
from tqdm import tqdm

from pgen.context.base import ContextStore, IngestStats
from pgen.context.formats import FormatError
from pgen.context.formats.lamp import read_questions
from pgen.context.media import MediaError, media_roots, resolve_media
from pgen.context.records import RECORD_TYPES, Document, Interaction, Item, Record, Subject
from pgen.errors import InvalidRequest


class IngestError(InvalidRequest):
    """A record that cannot be read; ``where`` is "file:line" or "file: question id"."""

    def __init__(self, where: str, problem: str) -> None:
        # One line, always: a value with a newline must not forge more lines of output.
        problem = " ".join(problem.split("\n"))
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


@dataclass(frozen=True)
class Located:
    record: Record
    where: str


def _short(value: object, limit: int = 60) -> str:
    """A value for a message: its repr (escapes control characters), cut to ``limit``."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _describe(error: ValidationError) -> str:
    parts = []
    for issue in error.errors():
        # Field names can come from the file (an unknown key): never echo them whole.
        field = ".".join(_short(p, 40).strip("'") for p in issue["loc"])
        parts.append(f"field '{field}': {issue['msg']}" if field else issue["msg"])
    return "; ".join(parts)


# json's messages, in the words of someone who has never read a JSON parser's source.
_JSON_PROBLEMS = {
    "Invalid control character at": "a raw line break or control character inside a string "
    "(an unterminated string, or one that needs \\n)",
    "Unterminated string starting at": "unterminated string (a closing quote is missing)",
    "Expecting value": "a value is missing or not JSON (strings need double quotes)",
    "Expecting property name enclosed in double quotes": "a key is not in double quotes, "
    "or a comma is left before a closing brace",
    "Expecting ',' delimiter": "a comma is missing between two values",
    "Expecting ':' delimiter": "a colon is missing after a key",
    "Extra data": "more than one JSON value on the line (one record per line)",
    "Invalid \\escape": "an invalid backslash escape in a string",
    "Invalid \\uXXXX escape": "an invalid \\u escape in a string",
}


def json_problem(error: json.JSONDecodeError) -> str:
    """What is wrong, in plain words, and where on the line."""
    said = _JSON_PROBLEMS.get(error.msg, error.msg)
    if error.msg.startswith("Invalid control character") and not error.doc[error.pos :].strip():
        said = _JSON_PROBLEMS["Unterminated string starting at"]  # the line ended in a string
    return f"not valid JSON: {said} (column {error.colno})"


def parse_json(text: str | bytes, where: str) -> Any:
    """JSON, or an IngestError naming ``where`` for every way it can fail."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise IngestError(where, json_problem(error)) from None
    except RecursionError:
        raise IngestError(where, "not valid JSON (nested too deeply)") from None
    except ValueError as error:  # an integer of over 4,300 digits
        raise IngestError(where, f"not valid JSON ({str(error).split(';')[0]})") from None


def read_jsonl(path: Path) -> Iterator[Located]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise IngestError(
                    where, f"not valid UTF-8 (byte {error.start + 1} of the line)"
                ) from None
            if not line.strip():
                continue
            data = parse_json(line, where)
            if not isinstance(data, dict):
                raise IngestError(where, "expected a JSON object")
            kind = data.pop("type", None)
            if not isinstance(kind, str) or kind not in RECORD_TYPES:
                raise IngestError(
                    where,
                    f"field 'type' must be one of {sorted(RECORD_TYPES)}, got {_short(kind)}",
                )
            try:
                record = RECORD_TYPES[kind].model_validate(data)
            except ValidationError as error:
                raise IngestError(where, f"{kind}: {_describe(error)}") from None
            yield Located(record, where)  # type: ignore[arg-type]


def read_lamp(path: Path, data: list[Any]) -> Iterator[Located]:
    """A LaMP questions file, read by the one LaMP reader (``pgen.context.formats.lamp``,
    which ``bench text`` uses too): each question's profile as documents of the user
    named by the question id."""
    try:
        questions = read_questions(path, data)
    except FormatError as error:
        raise IngestError(error.where, error.problem) from None
    for question in questions:
        where = f"{path}: question {question.id}"
        for document in question.profile:
            yield Located(document, where)


def read_records(path: Path) -> list[Located]:
    """Every record of a file, checked. JSONL (.jsonl) or a LaMP questions file (.json)."""
    if not path.exists():
        raise IngestError(str(path), "no such file")
    if path.is_dir():
        raise IngestError(str(path), "is a directory, not a file")
    if not path.is_file():
        raise IngestError(str(path), "not a regular file (a device, pipe or socket)")
    try:
        if path.suffix == ".jsonl":
            return list(read_jsonl(path))
        raw = path.read_bytes()
    except OSError as error:
        raise IngestError(str(path), f"cannot read ({error.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise IngestError(f"{path}:{line}", "not valid UTF-8") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise IngestError(f"{path}:{error.lineno}", json_problem(error)) from None
    except (ValueError, RecursionError):
        data = parse_json(text, f"{path}:1")  # raises, naming what is wrong
    if isinstance(data, list):
        return list(read_lamp(path, data))
    raise IngestError(
        str(path), "expected JSONL (.jsonl) or a LaMP questions file (a JSON list of questions)"
    )


def check_media(store: ContextStore, located: list[Located], folder: Path) -> list[Located]:
    """Image paths resolved against the file's folder and kept inside it (or a media
    root): records with the paths the store will later open."""
    roots = media_roots(folder)
    checked = []
    for loc in located:
        record = loc.record
        try:
            if isinstance(record, Item) and record.image_path is not None:
                path = resolve_media(record.image_path, roots, store.artifacts_root)
                record = record.model_copy(update={"image_path": path})
            elif isinstance(record, Subject):
                paths = [resolve_media(p, roots, store.artifacts_root) for p in record.image_paths]
                record = record.model_copy(update={"image_paths": paths})
            elif isinstance(record, Document) and isinstance(record.fields.get(AUDIO), str):
                path = resolve_media(record.fields[AUDIO], roots, store.artifacts_root)
                record = record.model_copy(update={"fields": {**record.fields, AUDIO: path}})
        except MediaError as error:
            field = {Item: "image_path", Subject: "image_paths"}.get(
                type(record), "fields.audio_path"
            )
            raise IngestError(loc.where, f"field '{field}': {error}") from None
        checked.append(Located(record, loc.where))
    return checked


def check_items(store: ContextStore, located: list[Located]) -> None:
    """Interactions must name catalog items, from this file or already in the store."""
    in_file = {loc.record.item_id for loc in located if isinstance(loc.record, Item)}
    wanted = {loc.record.item_id for loc in located if isinstance(loc.record, Interaction)}
    missing = wanted - in_file - store.known_items(wanted - in_file)
    for loc in located:
        if isinstance(loc.record, Interaction) and loc.record.item_id in missing:
            raise IngestError(
                loc.where, f"field 'item_id': unknown item {loc.record.item_id!r} (ingest it first)"
            )


AUDIO = "audio_path"  # a document's audio (a voice note), resolved like an image path


class IngestHook(Protocol):
    """Work an ingest needs beyond the records (a voice note's transcript, its audio kept
    as the user's artifact): ``before`` may complete or refuse records and writes nothing;
    ``after`` runs once the batch is written (the users exist) and undoes what it cannot
    finish."""

    def before(self, located: list[Located]) -> list[Located]: ...

    def after(self, records: list[Record]) -> None: ...


def ingest(
    store: ContextStore,
    path: str | Path,
    *,
    progress: bool = False,
    hook: IngestHook | None = None,
    derive: Callable[[list[Record]], list[Record]] | None = None,
) -> IngestStats:
    """Read and write one file as one batch: all of it, or (on any error) nothing.
    ``derive``: the records to write given the file's (the file's and what is found in
    them, such as the user's stated preferences), in the same transaction."""
    located = check_media(store, read_records(Path(path)), Path(path).parent)
    check_items(store, located)
    if hook is not None:
        located = hook.before(located)
    # Items first: interactions reference them.
    ordered = [
        loc.record for loc in sorted(located, key=lambda loc: not isinstance(loc.record, Item))
    ]
    if derive is not None:
        ordered = derive(ordered)
    records = tqdm(
        ordered,
        total=len(ordered),
        desc=f"writing {Path(path).name}",
        unit="rec",
        disable=not progress or len(ordered) < 1_000,
    )
    stats = store.add(records)
    if hook is not None:
        hook.after([loc.record for loc in located])
    return stats
