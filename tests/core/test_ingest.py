from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgen.context.ingest import IngestError, ingest
from pgen.context.sqlite import SQLiteStore
from tests.conftest import shared_data


def write_jsonl(path: Path, *records: dict | str) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = [
    {"type": "user", "user_id": "u1", "profile": {"age": 41}},
    {
        "type": "document",
        "user_id": "u1",
        "doc_id": "d1",
        "text": "I love hiking.",
        "time": "2024-05-01T10:00:00",
    },
    {"type": "item", "item_id": 7, "title": "Heat", "attributes": {"year": 1995}},
    {
        "type": "interaction",
        "user_id": "u1",
        "item_id": 7,
        "rating": 4.5,
        "time": "2024-05-02T10:00:00",
    },
    {
        "type": "subject",
        "user_id": "u1",
        "name": "rex",
        "class_word": "dog",
        "image_paths": ["rex/01.jpg"],
    },
    {"type": "feedback", "user_id": "u1", "feedback_id": "f1", "output_id": "o1", "thumbs": -1},
]


def test_jsonl_of_every_record_type(store: SQLiteStore, tmp_path: Path) -> None:
    stats = ingest(store, write_jsonl(tmp_path / "c.jsonl", *GOOD))
    assert stats.seen == {
        k: 1 for k in ("user", "document", "item", "interaction", "subject", "feedback")
    }
    assert store.user("u1").profile == {"age": 41}
    assert store.interactions("u1")[0].item_id == "7"  # numeric ids are kept as text
    # Relative media paths are resolved against the file's folder (and kept inside it).
    assert store.subjects("u1")[0].image_paths == [str((tmp_path / "rex/01.jpg").resolve())]
    assert store.feedback("u1")[0].thumbs == -1


def test_ingesting_the_same_file_twice_changes_nothing(store: SQLiteStore, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", *GOOD)
    ingest(store, path)
    snapshot = [(u.user_id, u.documents) for u in store.users()], store.revision("u1")
    assert ingest(store, path).written == 0
    assert ([(u.user_id, u.documents) for u in store.users()], store.revision("u1")) == snapshot


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", r"c\.jsonl:3: not valid JSON"),
        ('["a list"]', r"c\.jsonl:3: expected a JSON object"),
        ('{"type": "tweet", "user_id": "u1"}', r"c\.jsonl:3: field 'type' must be one of"),
        (
            '{"type": "document", "user_id": "u1", "doc_id": "d9"}',
            r"c\.jsonl:3: document: field 'text': Field required",
        ),
        (
            '{"type": "document", "user_id": "u1", "doc_id": "d9", "text": "x", "colour": 1}',
            r"field 'colour': Extra inputs",
        ),
        (
            '{"type": "document", "user_id": " ", "doc_id": "d9", "text": "x"}',
            r"field 'user_id': Value error, must not be empty",
        ),
        (
            '{"type": "interaction", "user_id": "u1", "item_id": "nope"}',
            r"c\.jsonl:3: field 'item_id': unknown item 'nope'",
        ),
        (
            '{"type": "feedback", "user_id": "u1", "feedback_id": "f", "thumbs": 1}',
            r"either output_id with thumbs",
        ),
    ],
)
def test_malformed_line_names_file_line_and_field_and_writes_nothing(
    store: SQLiteStore, tmp_path: Path, bad_line: str, message: str
) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", GOOD[0], GOOD[1], bad_line, GOOD[2])
    with pytest.raises(IngestError, match=message):
        ingest(store, path)
    assert store.users() == []


def test_missing_file_and_unknown_format(store: SQLiteStore, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="no such file"):
        ingest(store, tmp_path / "absent.jsonl")
    (tmp_path / "obj.json").write_text('{"task": "LaMP_2"}')
    with pytest.raises(IngestError, match="expected JSONL"):
        ingest(store, tmp_path / "obj.json")


def test_lamp_question_without_profile_is_refused(store: SQLiteStore, tmp_path: Path) -> None:
    (tmp_path / "q.json").write_text(json.dumps([{"id": "1", "input": "x"}]))
    with pytest.raises(IngestError, match="question 0: a LaMP question needs"):
        ingest(store, tmp_path / "q.json")
    (tmp_path / "q.json").write_text(
        json.dumps([{"id": "1", "input": "x", "profile": [{"id": "p", "title": "no text"}]}])
    )
    with pytest.raises(IngestError, match=r"question 1 profile\[0\]: field 'text'"):
        ingest(store, tmp_path / "q.json")


@pytest.mark.parametrize("name", ["LaMP_1_dev_questions.json", "LaMP_2_train_questions.json"])
def test_lamp_samples_become_one_user_per_question(store: SQLiteStore, name: str) -> None:
    path = shared_data("lamp-samples") / name
    questions = json.loads(path.read_text())
    ingest(store, path)
    assert {u.user_id for u in store.users()} == {str(q["id"]) for q in questions}
    for question in questions:
        documents = store.documents(str(question["id"]))
        assert len(documents) == len({p["id"] for p in question["profile"]})
        first = question["profile"][0]
        stored = next(d for d in documents if d.doc_id == str(first["id"]))
        assert stored.fields == first  # every field of the profile item is kept
        assert stored.text == first.get("text", first.get("abstract"))
    assert ingest(store, path).written == 0
