"""A generated suite of malformed, hostile and huge input files.

Every file is ingested into a store that already holds data. Each must be refused with
an ``IngestError`` of one line that names the file and (for a bad record) the line, is
short whatever the size of the bad value, and carries no terminal escapes; and the store
must be untouched: the same users, and the database file and its WAL byte-identical.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgen.context import Document, Item
from pgen.context.ingest import IngestError, ingest
from pgen.context.sqlite import SQLiteStore

GOOD = {"type": "document", "user_id": "u1", "doc_id": "d1", "text": "fine"}
HUGE = "x" * 10_000_000
PGEN = Path(sys.executable).parent / "pgen"


def _line(**fields: object) -> str:
    return json.dumps(fields)


def _records() -> Iterator[tuple[str, str]]:
    """(case name, the bad JSONL line); each goes on line 2 after a good record."""
    bad_ids = {
        "empty": "",
        "blank": "   ",
        "nul": "a\x00b",
        "newline": "a\nb|forged|row",
        "carriage-return": "a\rb",
        "ansi": "\x1b[31mred\x1b[0m",
        "bidi-override": "abc\u202egpj.exe",
        "zero-width": "ad\u200bmin",
        "bom": "\ufeffadmin",
        "line-separator": "a\u2028b",
        "too-long": "u" * 257,
        "huge": HUGE,
    }
    for name, value in bad_ids.items():
        yield (
            f"user_id-{name}-document",
            _line(type="document", user_id=value, doc_id="d", text="t"),
        )
        yield f"user_id-{name}-interaction", _line(type="interaction", user_id=value, item_id="i")
        yield f"item_id-{name}", _line(type="item", item_id=value)
        yield (
            f"user_id-{name}-subject",
            _line(type="subject", user_id=value, name="rex", class_word="dog", image_paths=["a"]),
        )
        yield (
            f"feedback_id-{name}",
            _line(type="feedback", user_id="u", feedback_id=value, chosen="a", rejected="b"),
        )
        yield f"doc_id-{name}", _line(type="document", user_id="u", doc_id=value, text="t")
    yield "user_id-null", _line(type="interaction", user_id=None, item_id="i")
    yield "user_id-list", _line(type="interaction", user_id=["u"], item_id="i")
    yield "user_id-bool", _line(type="interaction", user_id=True, item_id="i")
    yield "user_id-float", _line(type="interaction", user_id=1.5, item_id="i")
    yield "user_id-int-300-digits", '{"type": "user", "user_id": ' + "9" * 300 + "}"
    for name, raw in {
        "nan": "NaN",
        "infinity": "Infinity",
        "-infinity": "-Infinity",
        "1e400": "1e400",
        "true": "true",
        "string": '"5"',
        "1e12": "1e12",
        "5000-digit-int": "9" * 5000,
        "list": "[5]",
    }.items():
        yield (
            f"rating-{name}",
            '{"type": "interaction", "user_id": "u", "item_id": "i", "rating": ' + raw + "}",
        )
    yield (
        "thumbs-true",
        _line(type="feedback", user_id="u", feedback_id="f", output_id="o", thumbs=True),
    )
    yield "thumbs-2", _line(type="feedback", user_id="u", feedback_id="f", output_id="o", thumbs=2)
    yield (
        "time-invalid",
        _line(type="document", user_id="u", doc_id="d", text="t", time="2020-13-45"),
    )
    yield "time-list", _line(type="document", user_id="u", doc_id="d", text="t", time=[2020])
    for name, path in {
        "parent-escape": "../../etc/passwd",
        "absolute-outside": "/etc/passwd",
        "dev-zero": "/dev/zero",
        "proc-environ": "/proc/self/environ",
        "url": "http://example.com/a.png",
        "file-url": "file:///etc/passwd",
        "nul": "a\x00.png",
        "empty": "",
        "directory": "pics",
        "symlink-out": "pics/link.png",
        "huge": HUGE,
    }.items():
        yield (
            f"subject-image-{name}",
            _line(type="subject", user_id="u", name="rex", class_word="dog", image_paths=[path]),
        )
        yield f"item-image-{name}", _line(type="item", item_id="i", image_path=path)
    yield (
        "subject-no-images",
        _line(type="subject", user_id="u", name="rex", class_word="dog", image_paths=[]),
    )
    yield (
        "text-lone-surrogate",
        '{"type": "document", "user_id": "u", "doc_id": "d", "text": "a\\ud800b"}',
    )
    yield (
        "id-lone-surrogate",
        '{"type": "document", "user_id": "\\udfff", "doc_id": "d", "text": "t"}',
    )
    yield (
        "profile-lone-surrogate",
        '{"type": "user", "user_id": "u", "profile": {"k": ["\\ud800"]}}',
    )
    yield "profile-key-surrogate", '{"type": "user", "user_id": "u", "profile": {"\\ud800": 1}}'
    yield "profile-nan", '{"type": "user", "user_id": "u", "profile": {"k": NaN}}'
    yield (
        "profile-nested-100",
        '{"type": "user", "user_id": "u", "profile": {"k": ' + "[" * 100 + "]" * 100 + "}}",
    )
    yield (
        "nested-100000",
        '{"type": "user", "user_id": "u", "profile": ' + "[" * 100_000 + "]" * 100_000 + "}",
    )
    for name, kind in {
        "list": "[1]",
        "dict": '{"a": 1}',
        "null": "null",
        "number": "3",
        "unknown": '"robot"',
        "huge": json.dumps(HUGE),
        "ansi": json.dumps("\x1b[2J"),
    }.items():
        yield f"type-{name}", '{"type": ' + kind + ', "user_id": "u"}'
    yield "missing-type", _line(user_id="u")
    yield "unknown-field-huge-name", json.dumps({**GOOD, HUGE: 1})
    yield "unknown-field-newline", json.dumps({**GOOD, "a\nb": 1})
    yield "not-an-object-list", "[1, 2]"
    yield "not-an-object-string", '"hello"'
    yield "trailing-garbage", json.dumps(GOOD) + " xyz"
    yield "truncated", json.dumps(GOOD)[:-5]
    yield "single-quotes", "{'type': 'user'}"
    yield "interaction-unknown-item", _line(type="interaction", user_id="u", item_id="nope")
    yield (
        "feedback-both-kinds",
        _line(
            type="feedback",
            user_id="u",
            feedback_id="f",
            output_id="o",
            thumbs=1,
            chosen="a",
            rejected="b",
        ),
    )


RECORD_CASES = list(_records())


@pytest.fixture
def setting(tmp_path: Path) -> Iterator[tuple[SQLiteStore, Path]]:
    data = tmp_path / "data"
    (data / "pics").mkdir(parents=True)
    (data / "pics" / "link.png").symlink_to("/etc/hostname")
    store = SQLiteStore(tmp_path / "home" / "pgen.sqlite")
    # Item "i" exists: interactions with it fail for what the case is about, not for it.
    store.add([Document(user_id="before", doc_id="d", text="already here"), Item(item_id="i")])
    store.checkpoint()
    yield store, data
    store.close()


def _files(store: SQLiteStore) -> dict[str, bytes]:
    path = store.path
    return {
        name: Path(f"{path}{name}").read_bytes()
        for name in ("", "-wal")
        if Path(f"{path}{name}").exists()
    }


def _check_refused(store: SQLiteStore, path: Path, where: str) -> str:
    before = _files(store)
    with pytest.raises(IngestError) as caught:
        ingest(store, path)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message
    assert "\x1b" not in message and "\u202e" not in message
    assert len(message) < 600 + len(str(path)), message[:200]
    assert message.startswith(where), message[:300]
    assert [u.user_id for u in store.users()] == ["before"]
    assert _files(store) == before  # byte-identical: nothing written
    return message


@pytest.mark.parametrize(("case", "line"), RECORD_CASES, ids=[c for c, _ in RECORD_CASES])
def test_hostile_record_is_refused_on_its_line_and_writes_nothing(
    setting: tuple[SQLiteStore, Path], case: str, line: str
) -> None:
    store, data = setting
    path = data / f"{case}.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + line + "\n" + json.dumps(GOOD) + "\n")
    _check_refused(store, path, f"{path}:2: ")


def test_media_paths_into_the_stores_own_files_are_refused(
    setting: tuple[SQLiteStore, Path], tmp_path: Path
) -> None:
    store, _ = setting
    # A file ingested from inside the store's home, naming another user's adapter.
    adapter = store.artifact_path("before", "lora", "default") / "adapter.safetensors"
    adapter.write_bytes(b"weights")
    path = store.path.parent / "sneaky.jsonl"
    line = _line(type="subject", user_id="u", name="n", class_word="c", image_paths=[str(adapter)])
    path.write_text(line + "\n")
    assert "store's own files" in _check_refused(store, path, f"{path}:1: ")


BYTE_CASES = {
    "invalid-utf8": b'{"type": "user", "user_id": "\xff\xfe"}\n',
    "truncated-utf8": b'{"type": "user", "user_id": "caf\xc3"}\n',
    "utf16-bom": '{"type": "user", "user_id": "u"}\n'.encode("utf-16"),
    "binary": bytes(range(256)),
}


@pytest.mark.parametrize("case", list(BYTE_CASES))
def test_undecodable_bytes_name_the_line(setting: tuple[SQLiteStore, Path], case: str) -> None:
    store, data = setting
    path = data / f"{case}.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + BYTE_CASES[case])
    assert "UTF-8" in _check_refused(store, path, f"{path}:2: ") or case == "binary"


@pytest.mark.parametrize(
    ("case", "content", "where"),
    [
        ("invalid-utf8", b'[{"id": "1", "input": "x", "profile": []},\n"\xff"]', ":2: "),
        ("deep", b"[" * 100_000 + b"]" * 100_000, ":1: "),
        ("huge-int", b"[" + b"9" * 5000 + b"]", ":1: "),
        ("object", b'{"a": 1}', ": "),
        ("question-without-profile", b'[{"id": "1", "input": "x"}]', ": question 0"),
    ],
)
def test_bad_lamp_json_files(
    setting: tuple[SQLiteStore, Path], case: str, content: bytes, where: str
) -> None:
    store, data = setting
    path = data / f"{case}.json"
    path.write_bytes(content)
    _check_refused(store, path, f"{path}{where}")


def test_a_folder_a_device_and_a_pipe_are_not_files(setting: tuple[SQLiteStore, Path]) -> None:
    store, data = setting
    assert "is a directory" in _check_refused(store, data / "pics", f"{data / 'pics'}: ")
    assert "not a regular file" in _check_refused(store, Path("/dev/null"), "/dev/null: ")
    fifo = data / "pipe.jsonl"
    os.mkfifo(fifo)
    assert "not a regular file" in _check_refused(store, fifo, f"{fifo}: ")
    missing = data / "missing.jsonl"
    assert "no such file" in _check_refused(store, missing, f"{missing}: ")


def test_the_cli_reports_one_line_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(GOOD) + "\n" + _line(type="interaction", user_id="\x1b[2J", item_id="i")
    )
    result = subprocess.run(
        [str(PGEN), "--store", str(tmp_path / "s.sqlite"), "ingest", str(bad)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "\x1b" not in result.stderr
    assert re.search(rf"{re.escape(str(bad))}:2: ", result.stderr), result.stderr
