"""Conversation memory: turns stored once through the endpoint's path, LoCoMo read with
dates and speakers, evidence recall and token F1 computed as LoCoMo defines them."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pgen.bench.locomo import load_locomo, token_f1
from pgen.cli.main import main
from pgen.config import Config
from pgen.engine import Engine
from pgen.personalize import TextRequest
from pgen.run.conversation import MemorySettings, turn_document

SAMPLE = [
    {
        "sample_id": "conv-1",
        "conversation": {
            "speaker_a": "Ann",
            "speaker_b": "Bo",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Ann", "dia_id": "D1:1", "text": "I adopted a grey cat named Miso"},
                {"speaker": "Bo", "dia_id": "D1:2", "text": "What a lovely name for a kitten"},
                {"speaker": "Ann", "dia_id": "D1:3", "text": "We went hiking near the lake"},
            ],
            "session_2_date_time": "10:00 am on 1 June, 2023",
            "session_2": [
                {"speaker": "Bo", "dia_id": "D2:1", "text": "I started learning the violin"},
                {"speaker": "Ann", "dia_id": "D2:2", "text": "Miso broke my favourite mug"},
            ],
        },
        "qa": [
            {
                "question": "What is the name of Ann's cat?",
                "answer": "Miso",
                "evidence": ["D1:1"],
                "category": 4,
            },
            {
                "question": "What instrument does Bo learn?",
                "answer": "the violin",
                "evidence": ["D2:1"],
                "category": 4,
            },
            {
                "question": "What did Miso break?",
                "answer": "a mug",
                "evidence": ["D2:2; D1:1"],
                "category": 1,
            },
        ],
    }
]


def test_locomo_is_read_with_speakers_dates_and_evidence(tmp_path: Path) -> None:
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps(SAMPLE))
    (conversation,) = load_locomo(path)
    assert [dia for dia, _ in conversation.turns] == ["D1:1", "D1:2", "D1:3", "D2:1", "D2:2"]
    first = conversation.turns[0][1]
    assert first.title == "2023-05-08 Ann" and first.kind == "chat"
    assert conversation.questions[2].evidence == {"D2:2", "D1:1"}
    assert token_f1("The violin!", "violin") == 1.0 and token_f1("a mug", "cat") == 0.0


def test_bench_memory_reports_recall(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps(SAMPLE))
    code = main(
        [
            "--home",
            str(tmp_path),
            "bench",
            "memory",
            "--data",
            str(path),
            "--no-answers",
            "--retriever",
            "bm25",
            "--k",
            "2",
            "--neighbours",
            "0",
            "--out",
            str(tmp_path / "rows.jsonl"),
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert [r["question"] for r in rows] == [q["question"] for q in SAMPLE[0]["qa"]]
    assert rows[0]["evidence"] == ["D1:1"] and rows[0]["recalled"][0] == "D1:1"
    printed = capsys.readouterr()
    out = printed.out
    assert "memory: 1/1 conversations, 3 questions" in printed.err  # where a long run is
    row = next(line for line in out.splitlines() if line.startswith("| 4 single-hop"))
    assert row.split("|")[2].strip() == "2"
    # recall@2 for the two single-hop questions: both evidence turns found.
    assert "| 1.000 [1.000, 1.000]" in row
    assert "overhead per question" in out


def _day(day: int, second: int) -> datetime:
    return datetime(2023, 5, day, 12, 0, second, tzinfo=UTC)


def test_recall_turns_brings_the_reply_and_stays_in_spoken_order(tmp_path: Path) -> None:
    engine = Engine.open(Config(store=tmp_path / "pgen.db", home=tmp_path))
    said = [
        (_day(8, 0), "Ann", "Guess what I adopted last week?"),
        (_day(8, 1), "Bo", "A grey kitten called Miso, you told me!"),
        (_day(8, 2), "Ann", "We went hiking near the lake"),
        (_day(9, 0), "Bo", "I started learning the violin"),
        (_day(9, 1), "Ann", "The weather was awful today"),
    ]
    turns = [turn_document("ann", text, when=when, speaker=who) for when, who, text in said]
    # Stored out of order: recall must follow the times, not the order of arrival.
    assert engine.remember("ann", turns[::-1]) == 5
    # BM25 only (weight 1): no embedding model needed. "adopted" matches the question
    # turn; the reply holding "Miso" comes as its neighbour.
    lexical = MemorySettings(weight=1.0, spread=0.4, neighbours=1, speaker=0.0, session=0.0)
    found = engine.recall("ann", "What did Ann adopt?", 2, lexical)
    assert [d.text for d in found] == [said[0][2], said[1][2]]
    # Without neighbours or spread, the one matching turn is all there is to rank first.
    bare = MemorySettings(weight=1.0, spread=0.0, neighbours=0, speaker=0.0, session=0.0)
    alone = engine.recall("ann", "What did Ann adopt?", 1, bare)
    assert [d.text for d in alone] == [said[0][2]]
    # The spread lifts the hit's same-day neighbour (the reply before "hiking") above the
    # other unmatched turns, which otherwise tie and keep spoken order.
    flat = engine.recall("ann", "hiking", 2, bare)
    lifted = engine.recall("ann", "hiking", 2, replace(bare, spread=0.4))
    assert [d.text for d in flat] == [said[2][2], said[0][2]]
    assert [d.text for d in lifted] == [said[2][2], said[1][2]]
    engine.close()


def test_memory_retriever_reads_the_users_turns_and_documents_never_anothers(
    tmp_path: Path,
) -> None:
    """``memory`` is a registered retriever: search and rag get the user's remembered
    turns (by memory recall) fused with their other documents, never another user's."""
    from pgen.context.records import Document, User

    engine = Engine.open(Config(store=tmp_path / "pgen.db", home=tmp_path))
    turn = turn_document("ann", "Miso the kitten chased a moth", when=_day(8, 0))
    engine.remember("ann", [turn])
    engine.remember("bo", [turn_document("bo", "Miso soup with tofu and kitten", when=_day(8, 0))])
    only_turns = engine.search("ann", "kitten Miso", k=5, retriever="memory")
    assert [h.document.text for h in only_turns] == [turn.text]
    assert only_turns[0].retriever == "memory"
    engine.ingest(
        [
            User(user_id="ann"),
            Document(user_id="ann", doc_id="blog", text="My kitten Miso and the violin lessons"),
            Document(user_id="ann", doc_id="tax", text="Quarterly tax forms are due in April"),
        ]
    )
    both = engine.search("ann", "kitten Miso", k=2, retriever="memory")
    assert {h.document.doc_id for h in both} == {turn.doc_id, "blog"}  # not tax, not bo's
    prepared = engine.prepare([TextRequest("ann", "What is my kitten called?", "rag", 1, "memory")])
    assert len(prepared[0].provenance.documents) == 1
    assert prepared[0].provenance.documents[0] in {turn.doc_id, "blog"}
    engine.close()


def test_locomo_photo_turns_carry_their_caption_never_the_search_query(tmp_path: Path) -> None:
    sample = json.loads(json.dumps(SAMPLE))
    sample[0]["conversation"]["session_1"][1] |= {
        "blip_caption": "a photo of a grey kitten on a sofa",
        "query": "grey kitten sofa",
    }
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps(sample))
    (conversation,) = load_locomo(path)
    text = conversation.turns[1][1].text
    assert text == "What a lovely name for a kitten [shares a photo of a grey kitten on a sofa]"
    (plain,) = load_locomo(path, captions=False)
    assert plain.turns[1][1].text == "What a lovely name for a kitten"


def test_named_speaker_turns_come_first_and_the_name_leaves_the_query() -> None:
    from pgen.usermodel.memory import named_speakers, without_speakers

    turns = [
        turn_document("u", "The lake was cold", when=_day(8, 0), speaker="Ann Lee"),
        turn_document("u", "I love the lake", when=_day(8, 1), speaker="Bo"),
    ]
    assert named_speakers("What did ann say about the lake?", turns) == {"Ann Lee"}
    # Naming everyone says nothing about whose turns hold the answer.
    assert named_speakers("Did Ann and Bo swim?", turns) == set()
    assert without_speakers("What is Ann's dog called?", {"Ann Lee"}).split() == [
        "What",
        "is",
        "dog",
        "called?",
    ]
    assert without_speakers("Ann?", {"Ann Lee"}) == "Ann?"  # nothing else to search with


def test_a_speaker_the_question_names_outranks_a_better_match_by_another(tmp_path: Path) -> None:
    engine = Engine.open(Config(store=tmp_path / "pgen.db", home=tmp_path))
    said = [
        (_day(8, 0), "Bo", "The lake, the lake, the cold lake: I swam in the lake"),
        (_day(9, 0), "Ann", "We walked by a lake"),
        (_day(10, 0), "Bo", "My violin lesson went well"),
    ]
    engine.remember("u", [turn_document("u", t, when=w, speaker=s) for w, s, t in said])
    boost = MemorySettings(weight=1.0, spread=0.0, neighbours=0, speaker=5.0, session=0.0)
    # The same question about either speaker brings that speaker's lake turn first.
    for who, expected in (("Ann", said[1][2]), ("Bo", said[0][2])):
        found = engine.recall("u", f"What did {who} do at the lake?", 2, boost)
        assert found[0].text == expected
    # Bo's violin turn matches no word of the question but outranks Ann's lake turn.
    found = engine.recall("u", "What did Bo do at the lake?", 2, boost)
    assert found[1].text == said[2][2]
    engine.close()


def test_bench_memory_answers_with_memory_and_without(tmp_path: Path, tiny_llama: Path) -> None:
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps(SAMPLE))
    out = tmp_path / "rows.jsonl"
    argv = ["--home", str(tmp_path), "--text-model", str(tiny_llama), "bench", "memory"]
    argv += ["--data", str(path), "--retriever", "bm25", "--k", "2", "--max-new-tokens", "3"]
    assert main([*argv, "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:  # each question answered through rag and by the instruction alone
        assert isinstance(row["answer"], str) and isinstance(row["answer_none"], str)
        assert row["f1"] == token_f1(row["answer"], row["gold"])
        assert row["documents_used"] == 2 and row["prompt_tokens_added"] > 0
