"""``pgen compare``: one instruction for any user under several strategies, side by side,
each column with the context that shaped it (``POST /users/{u}/compare`` is its HTTP
twin, tested with the service)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgen.cli.main import main


@pytest.fixture
def home(tmp_path: Path, tiny_llama: Path) -> list[str]:
    records = [
        {"type": "user", "user_id": "u1", "profile": {"job": "baker"}},
        {"type": "document", "user_id": "u1", "doc_id": "rye", "text": "rye bread needs time"},
        {"type": "document", "user_id": "u1", "doc_id": "oil", "text": "olive oil on focaccia"},
    ]
    path = tmp_path / "context.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    flags = ["--home", str(tmp_path / "home"), "--text-model", str(tiny_llama)]
    assert main([*flags, "ingest", str(path)]) == 0
    return flags


def test_columns_per_strategy_with_their_provenance(
    home: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    argv = [*home, "compare", "--user", "u1", "--strategy", "none,rag", "--k", "1"]
    assert main([*argv, "--max-new-tokens", "3", "--width", "30", "bread with rye"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    assert header.split(" | ")[0].strip() == "NONE" and header.split(" | ")[1].strip() == "RAG"
    rows = [line.split(" | ") for line in out.splitlines() if " | " in line]
    none_column = " ".join(row[0] for row in rows)
    rag_column = " ".join(row[1] for row in rows if len(row) > 1)
    assert "context used: none" in none_column
    assert "context used: rye" in rag_column  # the document retrieval found, in its column
    assert out.count("[outputs ") == 1

    assert main([*argv, "--max-new-tokens", "3", "--json", "bread with rye"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["strategy"] for r in results] == ["none", "rag"]
    assert results[0]["provenance"]["documents"] == [] and results[1]["provenance"][
        "documents"
    ] == ["rye"]
    assert all(r["output_id"] for r in results)  # saved, as generate saves


def test_a_bad_strategy_or_user_is_one_line_before_any_model_loads(
    home: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main([*home, "compare", "--user", "u1", "--strategy", "none,nope", "hi"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pgen: error:") and "nope" in err and "\n" not in err
    assert main([*home, "compare", "--user", "ghost", "hi"]) == 1
    assert "no user 'ghost'" in capsys.readouterr().err
