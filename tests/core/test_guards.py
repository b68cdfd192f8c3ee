"""Guards a first user runs into: mistyped flags named, read commands that never create a
store, a reply length that leaves the prompt no room, JSON errors in plain words, and ids
held to one rule in every input format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgen.cli.main import main

READS = (
    ["users"],
    ["users", "show", "u1"],
    ["search", "--user", "u1", "dough"],
    ["generate", "--user", "u1", "hi"],
    ["outputs", "--user", "u1"],
    ["feedback", "--user", "u1", "--output", "o1", "--thumbs", "up"],
    ["delete-user", "u1"],
    ["train", "--user", "u1"],
    ["generate-image", "--user", "u1", "a photo"],
    ["train-subject", "--user", "u1", "--subject", "rex"],
    ["ask", "--user", "u1", "--image", "photo.jpg", "who is this?"],
    ["train-concept", "--user", "u1", "--concept", "rex"],
    ["search-photos", "--user", "u1", "rex"],
    ["recommend", "--user", "u1"],
)


@pytest.fixture
def records(tmp_path: Path) -> Path:
    path = tmp_path / "context.jsonl"
    lines = [
        {"type": "user", "user_id": "u1", "profile": {"job": "chef"}},
        {"type": "document", "user_id": "u1", "doc_id": "d1", "text": "a long cold rise"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_a_mistyped_flag_is_named_with_the_nearest_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv, said in [
        (["generate", "--usr", "u1", "hi"], "unknown option --usr (did you mean --user?)"),
        (["search", "--user", "u1", "--kk", "2", "q"], "unknown option --kk (did you mean --k?)"),
        (["--hom", "x", "users", "--limt", "3"], "unknown option --limt (did you mean --limit?)"),
        (["users", "--frobnicate"], "unknown option --frobnicate"),
    ]:
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert said in err and "required" not in err, err
    # Abbreviations argparse accepts, negative numbers and values stay fine.
    with pytest.raises(SystemExit):
        main(["generate", "--user", "u1", "--temperature", "-1", "--max-new", "2", "--bogus", "x"])
    assert "unknown option --bogus" in capsys.readouterr().err


def test_read_commands_never_create_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "pgen-hme"
    for argv in READS:
        assert main(["--home", str(typo), *argv]) == 1, argv
        err = capsys.readouterr().err.strip()
        assert (
            err
            == f"pgen: error: no store at {typo / 'pgen.sqlite'}; ingest first (pgen ingest FILE)"
        )
        assert not typo.exists()  # nothing created, not even the folder


def test_a_reply_length_that_leaves_no_prompt_room_is_refused(
    records: Path, tmp_path: Path, tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(tmp_path / "home"), "--text-model", str(tiny_llama)]
    assert main([*home, "ingest", str(records)]) == 0
    capsys.readouterr()
    argv = [*home, "generate", "--user", "u1", "--max-new-tokens", "99999999999", "hi"]
    assert main(argv) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "pgen" in line]
    assert len(err) == 1 and "leaves no room for the prompt" in err[0], err
    assert "ask for at most" in err[0]
    assert main([*home, "outputs", "--user", "u1"]) == 0  # nothing was generated or saved
    assert "0 of 0 outputs" in capsys.readouterr().out


def test_json_errors_say_what_is_wrong_in_plain_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(tmp_path / "home")]
    cases = {
        '{"type": "user", "user_id": "u1", "profile": {"a": "b}}': "unterminated string",
        '{"type": "user" "user_id": "u1"}': "a comma is missing",
        "{'type': 'user'}": "a key is not in double quotes",
        '{"type": "user", "user_id": "u1"} {"x": 1}': "more than one JSON value on the line",
    }
    for line, said in cases.items():
        path = tmp_path / "bad.jsonl"
        path.write_text(line + "\n")
        assert main([*home, "ingest", str(path)]) == 1
        err = capsys.readouterr().err
        assert f"bad.jsonl:1: not valid JSON: {said}" in err, err
        assert "Invalid control character" not in err and "Expecting" not in err


def test_ids_follow_one_rule_in_every_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(tmp_path / "home")]
    bad_id = "q\u0007x"  # a control character: no id may carry one
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(json.dumps({"type": "user", "user_id": bad_id}) + "\n")
    assert main([*home, "ingest", str(jsonl)]) == 1
    jsonl_says = capsys.readouterr().err
    lamp = tmp_path / "LaMP_2_dev_questions.json"
    lamp.write_text(json.dumps([{"id": bad_id, "input": "x", "profile": []}]))
    assert main([*home, "ingest", str(lamp)]) == 1
    lamp_says = capsys.readouterr().err
    rule = "must be printable text: character 2 is U+0007"
    assert rule in jsonl_says and rule in lamp_says and "field 'id' (the user id)" in lamp_says
    # A profile entry is a document: it needs its id as a JSONL document needs doc_id.
    lamp.write_text(json.dumps([{"id": "q1", "input": "x", "profile": [{"text": "a"}]}]))
    assert main([*home, "ingest", str(lamp)]) == 1
    assert "question q1 profile[0]: field 'id' is missing" in capsys.readouterr().err
    jsonl.write_text(json.dumps({"type": "document", "user_id": "u1", "text": "a"}) + "\n")
    assert main([*home, "ingest", str(jsonl)]) == 1
    assert "doc_id" in capsys.readouterr().err
    # An id both formats accept names the same user either way (folders are hashed names).
    lamp.write_text(
        json.dumps([{"id": "../../etc", "input": "x", "profile": [{"text": "a", "id": "p1"}]}])
    )
    jsonl.write_text(json.dumps({"type": "user", "user_id": "../../etc"}) + "\n")
    assert main([*home, "ingest", str(jsonl)]) == 0 and main([*home, "ingest", str(lamp)]) == 0
    capsys.readouterr()
    assert main([*home, "users"]) == 0
    assert "../../etc" in capsys.readouterr().out
    assert not (tmp_path / "etc").exists()
