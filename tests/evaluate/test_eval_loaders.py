"""Task loaders: the LaMP samples (when present) and small files written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgen.evaluate.benchmarks import load_task, metrics_for, select
from pgen.evaluate.benchmarks.lamp import lamp_query

LAMP_SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "lamp-samples"

needs_samples = pytest.mark.skipif(not LAMP_SAMPLES.is_dir(), reason="LaMP samples absent")


def lamp_rank_profiles_query(inp: str) -> str:
    """LaMP-1's query exactly as LaMP's rank_profiles.py builds it: the characters between
    each pair of double quotes, character by character, then the 2nd and 3rd joined."""
    extracted, inside, current = [], False, ""
    for char in inp:
        if char == '"':
            if inside:
                extracted.append(current)
                current = ""
            inside = not inside
        elif inside:
            current += char
    return f"{extracted[1]} {extracted[2]}"


@needs_samples
def test_lamp1_samples() -> None:
    data = load_task("LaMP_1", LAMP_SAMPLES, "dev")
    questions = json.loads((LAMP_SAMPLES / "LaMP_1_dev_questions.json").read_text())
    assert [e.id for e in data.examples] == [q["id"] for q in questions]
    first, question = data.examples[0], questions[0]
    assert first.user_id == f"LaMP_1/{question['id']}"
    assert len(first.profile) == len(question["profile"])
    assert {d.user_id for d in first.profile} == {first.user_id}
    assert first.profile[0].text == question["profile"][0]["abstract"]
    # The two candidate references' titles, not the author's own paper (quoted first).
    assert first.query == lamp_rank_profiles_query(question["input"])
    assert question["input"].split('"')[1] not in first.query
    assert data.spec.kind == "classification" and data.spec.labels == ("[1]", "[2]")
    assert len(data.data_hash) == 64


@needs_samples
def test_lamp2_samples_show_the_category_in_the_title() -> None:
    data = load_task("LaMP_2", LAMP_SAMPLES / "LaMP_2_train_questions.json")
    assert len(data.examples) == 4
    assert "politics" in data.spec.labels  # the news-category version
    document = data.examples[0].profile[0]
    assert document.title is not None and document.title.startswith("[category: ")
    assert document.fields["category"] in data.spec.labels
    assert data.examples[0].query is not None
    assert data.examples[0].instruction.endswith(data.examples[0].query)


def _lamp_files(folder: Path, task: str, questions: list[dict], golds: list[dict]) -> None:
    (folder / f"{task}_dev_questions.json").write_text(json.dumps(questions))
    (folder / f"{task}_dev_outputs.json").write_text(json.dumps({"task": task, "golds": golds}))


def test_lamp3_and_generation_tasks(tmp_path: Path) -> None:
    profile = [
        {"text": "good", "score": "5", "id": "p1"},
        {"text": "bad", "score": "1", "id": "p2"},
    ]
    questions = [
        {"id": "q1", "input": "What is the score ... review: it works", "profile": profile},
        {"id": "q2", "input": "What is the score ... review: meh", "profile": []},
    ]
    _lamp_files(tmp_path, "LaMP_3", questions, [{"id": "q1", "output": "4"}])
    data = load_task("LaMP_3", tmp_path)
    assert data.spec.kind == "rating"
    assert [e.id for e in data.examples] == ["q1"]
    assert data.skipped["question without a gold"] == 1
    assert data.examples[0].query == "it works"
    assert data.examples[0].profile[0].title == "[rating: 5]"
    questions = [{"id": "7", "input": "Paraphrase the following tweet: hello", "profile": []}]
    _lamp_files(tmp_path, "LaMP_7", questions, [{"id": "7", "output": "hi"}])
    generation = load_task("LaMP_7", tmp_path)
    assert generation.spec.kind == "generation" and generation.examples[0].query == "hello"


def test_missing_golds_are_explained(tmp_path: Path) -> None:
    (tmp_path / "LaMP_4_test_questions.json").write_text("[]")
    with pytest.raises(FileNotFoundError, match="no public golds"):
        load_task("LaMP_4", tmp_path, "test")


def test_lamp_query_rules() -> None:
    lamp1 = 'For an author who has written the paper with the title "A", which reference is '
    lamp1 += 'related? Just answer with [1] or [2] without explanation. [1]: "B c" [2]: "D"'
    assert lamp_query("LaMP_1", lamp1) == "B c D" == lamp_rank_profiles_query(lamp1)
    assert lamp_query("LaMP_1", 'only "one" title') is None  # then the whole input
    assert lamp_query("LaMP_2", "Which tag ... description: a movie plot") == "a movie plot"
    assert (
        lamp_query("LaMP_5", "Generate a title for the following abstract of a paper: xyz") == "xyz"
    )
    assert lamp_query("LaMP_4", "no marker here") is None


def test_longlamp_file(tmp_path: Path) -> None:
    rows = [
        {
            "reviewerId": "R1",
            "input": "Generate the review text ...",
            "output": "A long review.",
            "profile": [
                {"overall": 4, "summary": "nice", "description": "a phone", "reviewText": "ok"},
            ],
        },
        {"reviewerId": "R1", "input": "Generate again", "output": "Second.", "profile": []},
        {"reviewerId": "R2", "input": "Generate", "profile": []},  # no output
        ["not", "an", "object"],
    ]
    path = tmp_path / "product_review_user_val.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{torn")
    data = load_task("LongLaMP_product_review", path)
    assert [e.id for e in data.examples] == ["R1-0", "R1-1"]
    assert data.setting == "user"
    assert dict(data.skipped) == {
        "missing output": 1,
        "record is not a JSON object": 1,
        "invalid JSON line": 1,
    }
    document = data.examples[0].profile[0]
    assert document.text == "ok" and document.title == "[rating: 4] nice"
    assert document.fields["description"] == "a phone"
    abstract = tmp_path / "abstract_generation_temporal.json"
    abstract.write_text(
        json.dumps(
            [
                {
                    "name": "Ada",
                    "input": "Generate an abstract for the title X using the items: - graphs",
                    "output": "We study graphs.",
                    "profile": [{"title": "T", "abstract": "Old work.", "id": "a1"}],
                }
            ]
        )
    )
    abstracts = load_task("LongLaMP_abstract_generation", abstract)
    assert abstracts.setting == "temporal"
    assert abstracts.examples[0].query == "- graphs"
    assert abstracts.examples[0].source_user == "Ada"


def test_amazon_temporal_split(amazon_file: Path) -> None:
    data = load_task("amazon_rating", amazon_file)
    by_user = {e.source_user: e for e in data.examples}
    assert sorted(by_user) == ["U1", "U2", "U4"]
    last = by_user["U1"]
    assert last.gold == "2"  # the review at time 300, not the file's last line
    assert last.instruction.endswith("review: poor battery and a dim screen")
    assert [d.text for d in last.profile] == ["the battery lasts long", "the screen is bright"]
    assert last.profile[1].title == "[rating: 4] summary of B02"
    assert last.profile[1].fields["style"] == {"Color:": " Red"}
    assert dict(data.skipped) == {
        "invalid JSON line": 1,
        "missing reviewText": 1,
        "overall not a rating 1-5": 1,
        "user with fewer than 2 distinct reviews (no profile)": 1,
    }
    review = load_task("amazon_review", amazon_file)
    example = {e.source_user: e for e in review.examples}["U1"]
    assert example.gold == "poor battery and a dim screen"
    assert '"2" for the product "B03"' in example.instruction
    assert 'summary of the review text is "summary of B03"' in example.instruction
    assert review.spec.kind == "generation" and data.spec.kind == "rating"


def test_select_users_then_limit(amazon_file: Path) -> None:
    examples = load_task("amazon_rating", amazon_file).examples
    assert [e.source_user for e in select(examples, 2, None)] == ["U1", "U2"]
    assert len(select(examples, None, 1)) == 1
    assert select(examples, None, None) == examples


def test_unknown_task() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        load_task("LaMP_9", Path("."))


def test_lamp5_generation_through_the_generic_loader(tmp_path: Path) -> None:
    profile = [
        {"title": "Graph kernels", "abstract": "We compare kernels on graphs.", "id": "p1"},
        {"title": "Old work", "abstract": "Earlier results.", "id": "p2", "date": "2001"},
    ]
    inp = "Generate a title for the following abstract of a paper: We study sparse graphs."
    questions = [{"id": "500", "input": inp, "profile": profile}]
    _lamp_files(tmp_path, "LaMP_5", questions, [{"id": "500", "output": "Sparse graphs"}])
    data = load_task("LaMP_5", tmp_path, "dev")
    assert data.spec.kind == "generation" and data.spec.labels == ()
    assert data.spec.max_new_tokens == 64
    assert [m.name for m in metrics_for(data.spec)] == ["rouge-1", "rouge-L", "bleu", "meteor"]
    example = data.examples[0]
    assert example.gold == "Sparse graphs" and example.instruction == inp
    assert example.query == "We study sparse graphs."  # after the first colon, as LaMP
    first = example.profile[0]
    assert (first.title, first.text, first.doc_id) == (
        "Graph kernels",
        "We compare kernels on graphs.",
        "p1",
    )
    assert example.profile[1].fields["date"] == "2001"
    assert data.golds_file() == {
        "task": "LaMP_5",
        "golds": [{"id": "500", "output": "Sparse graphs"}],
    }


def _topic_rows() -> list[dict]:
    return [
        {
            "author": "poet42",
            "input": "Write a post about rainy mornings.",
            "output": "Rain again, and the kettle sings.",
            "profile": [
                {"summary": "On coffee", "content": "Coffee is a ritual."},
                {"summary": None, "content": "Short note."},
                "not an entry",
            ],
        },
        {"author": "poet42", "input": "Write about snow.", "output": "White.", "profile": []},
        {"input": "No author", "output": "x", "profile": []},
    ]


def test_longlamp_topic_writing_setting_from_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "topic_writing_user"
    folder.mkdir()
    path = folder / "val.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _topic_rows()) + "\n")
    data = load_task("LongLaMP_topic_writing", path)
    assert data.setting == "user"  # from the folder: the file name says nothing
    assert [e.id for e in data.examples] == ["poet42-0", "poet42-1"]
    assert dict(data.skipped) == {"missing author": 1}
    example = data.examples[0]
    assert example.source_user == "poet42" and example.query is None
    assert example.gold == "Rain again, and the kettle sings."
    assert [(d.title, d.text) for d in example.profile] == [
        ("On coffee", "Coffee is a ritual."),
        (None, "Short note."),
    ]
    assert data.spec.kind == "generation" and data.spec.family == "LongLaMP"
    # An explicit setting wins; a folder further up ("/home/user/...") is not read.
    assert load_task("LongLaMP_topic_writing", path, longlamp_setting="temporal").setting == (
        "temporal"
    )
    deeper = tmp_path / "user" / "data"
    deeper.mkdir(parents=True)
    (deeper / "val.jsonl").write_text(path.read_text())
    assert load_task("LongLaMP_topic_writing", deeper / "val.jsonl").setting == ""
    with pytest.raises(ValueError, match="unknown LongLaMP setting"):
        load_task("LongLaMP_topic_writing", path, longlamp_setting="users")


def test_malformed_json_array_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "abstract_generation_user.json"
    path.write_text('[\n {"name": "Ada", "input": "x", "output": "y"},\n {"name": \n')
    with pytest.raises(ValueError, match=r"abstract_generation_user\.json: line 4: not a valid"):
        load_task("LongLaMP_abstract_generation", path)
