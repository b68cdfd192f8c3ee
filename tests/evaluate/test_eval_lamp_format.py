"""One LaMP reader: ``pgen ingest`` and ``bench text`` read a questions file the same way,
so the prompts built from ingested data are the benchmark's prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgen.bench.text import fill_store
from pgen.context.ingest import IngestError, ingest
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.evaluate.benchmarks import load_task
from pgen.models.base import GenerationSettings
from pgen.models.text import TransformersTextModel
from pgen.personalize import TextRequest
from tests.conftest import shared_data

TAGS = "[sci-fi, based on a book, comedy, action, twist ending, dystopia, dark comedy, classic]"


def _movie_question(qid: str, plot: str, profile: list[dict]) -> dict:
    return {
        "id": qid,
        "input": "Which tag does this movie relate to among the following tags? Just answer "
        f"with the tag name without further explanation. tags: {TAGS} description: {plot}",
        "profile": profile,
    }


@pytest.fixture
def movie_lamp2(tmp_path: Path) -> Path:
    """The current (movie-tagging) LaMP-2: profile entries hold a ``description`` and a
    ``tag``, not the news version's ``text`` and ``category``."""
    questions = [
        _movie_question(
            "310",
            "A hacker learns that the world is a simulation run by machines.",
            [
                {"id": "3100", "tag": "sci-fi", "description": "Robots rebel on a space station."},
                {"id": "3101", "tag": "comedy", "description": "Two friends lose a wedding ring."},
                {
                    "id": "3102",
                    "tag": "dystopia",
                    "description": "Machines rule a grey future city.",
                },
            ],
        ),
        _movie_question(
            "311",
            "A detective discovers he has been the killer all along.",
            [{"id": "3110", "tag": "twist ending", "description": "A ghost does not know it."}],
        ),
    ]
    path = tmp_path / "LaMP_2_dev_questions.json"
    path.write_text(json.dumps(questions))
    golds = [{"id": "310", "output": "sci-fi"}, {"id": "311", "output": "twist ending"}]
    (tmp_path / "LaMP_2_dev_outputs.json").write_text(
        json.dumps({"task": "LaMP_2", "golds": golds})
    )
    return path


def test_movie_tag_lamp2_ingests(movie_lamp2: Path, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "ctx.sqlite")
    stats = ingest(store, movie_lamp2)
    assert stats.written == 4  # the four profile documents
    assert {u.user_id for u in store.users()} == {"310", "311"}  # one user per question
    documents = store.documents("310")
    assert [d.doc_id for d in documents] == ["3100", "3101", "3102"]
    first = documents[0]
    assert first.text == "Robots rebel on a space station."
    assert first.title == "[tag: sci-fi]"  # the label shown where prompts show it
    assert first.fields == {"id": "3100", "tag": "sci-fi", "description": first.text}


def test_ingest_stores_the_benchmarks_documents(movie_lamp2: Path, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "ctx.sqlite")
    ingest(store, movie_lamp2)
    data = load_task("LaMP_2", movie_lamp2)
    assert data.spec.labels[0] == "sci-fi"  # the movie-tag label set
    for example in data.examples:
        ingested = store.documents(example.id)
        benchmark = [d.model_copy(update={"user_id": example.id}) for d in example.profile]
        assert ingested == benchmark


@pytest.mark.parametrize(
    "name", ["LaMP_1_dev_questions.json", "LaMP_2_train_questions.json", "movie"]
)
def test_prompts_from_ingested_data_equal_the_benchmarks(
    name: str, movie_lamp2: Path, tiny_llama: Path, tmp_path: Path
) -> None:
    path = movie_lamp2 if name == "movie" else shared_data("lamp-samples") / name
    task = "LaMP_1" if "LaMP_1" in path.name else "LaMP_2"
    data = load_task(task, path)
    store = SQLiteStore(tmp_path / "both.sqlite")
    ingest(store, path)  # users named by question id, as `pgen ingest` stores them
    model = TransformersTextModel(str(tiny_llama))
    engine = Engine(store, model, lambda: pytest.fail("no dense retrieval"), prompt_tokens=500)
    fill_store(engine, data.examples)  # users LaMP_k/<id>, as `bench text` stores them
    requests = [
        TextRequest(user, example.instruction, strategy, k, "bm25", example.query)
        for example in data.examples
        for strategy, k in (("none", 1), ("rag", 1), ("rag", 3))
        for user in (example.id, example.user_id)
    ]
    prepared = engine.prepare(requests, GenerationSettings(max_new_tokens=4))
    for ingested, benchmark in zip(prepared[::2], prepared[1::2], strict=True):
        assert ingested.chat == benchmark.chat
        assert ingested.provenance.documents == benchmark.provenance.documents
    # Not vacuous: retrieved documents made it into prompts (long LaMP-2 articles leave the
    # tiny model's 512-token context no room for some of them).
    assert any(p.provenance.documents for p in prepared)


def test_a_profile_entry_without_text_names_question_and_entry(tmp_path: Path) -> None:
    path = tmp_path / "LaMP_2_dev_questions.json"
    path.write_text(json.dumps([_movie_question("9", "plot", [{"id": "a", "tag": "comedy"}])]))
    message = r"question 9 profile\[0\]: field 'text' \(or 'abstract', 'description'\)"
    with pytest.raises(IngestError, match=message):
        ingest(SQLiteStore(tmp_path / "ctx.sqlite"), path)
    (tmp_path / "LaMP_2_dev_outputs.json").write_text('{"task": "LaMP_2", "golds": []}')
    with pytest.raises(ValueError, match=message):
        load_task("LaMP_2", path)
