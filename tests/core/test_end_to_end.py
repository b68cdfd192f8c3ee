"""ingest → generate → delete-user through the `pgen` command, on a store on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgen.cli.main import main, one_line
from pgen.config import Config
from pgen.context.sqlite import SQLiteStore
from pgen.demo import run_demo, sample_path, side_by_side
from pgen.results import Generation


def pgen(tmp_path: Path, tiny_llama: Path, *args: str) -> int:
    return main(["--home", str(tmp_path), "--text-model", str(tiny_llama), *args])


def rows_of(db: Path, user: str) -> dict[str, int]:
    """What the store holds of ``user``, through its public API."""
    with SQLiteStore(db) as store:
        if not store.has_user(user):
            return {"users": 0}
        return {
            "users": 1,
            "documents": len(store.documents(user)),
            "outputs": len(store.outputs(user)),
            "artifacts": len(store.artifacts(user)),
        }


def test_ingest_generate_delete_leaves_nothing_of_the_user(
    tmp_path: Path, tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pgen(tmp_path, tiny_llama, "ingest", str(sample_path())) == 0
    assert "15 documents" in capsys.readouterr().out
    for strategy, retriever in [("rag", "hybrid"), ("profile", "bm25"), ("rag", "dense")]:
        code = pgen(
            tmp_path,
            tiny_llama,
            "generate",
            "--user",
            "mia",
            "--strategy",
            strategy,
            "--retriever",
            retriever,
            "--max-new-tokens",
            "4",
            "--json",
            "a weekend in the mountains",
        )
        assert code == 0
        result = json.loads(capsys.readouterr().out)
        used = result["provenance"]["documents"]
        assert used and all(d.startswith("mia-") for d in used)
    db = tmp_path / "pgen.sqlite"
    # A per-user file, as a trained adapter would be: delete-user must remove it too.
    with SQLiteStore(db) as store:
        adapter = store.artifact_path("mia", "lora", "style") / "adapter.safetensors"
    adapter.write_bytes(b"weights learned from headlamps bobbing")
    assert rows_of(db, "mia")["outputs"] == 3

    assert pgen(tmp_path, tiny_llama, "delete-user", "mia") == 0
    out = capsys.readouterr().out
    assert "deleted user mia" in out
    assert all(f"{n} {table}" in out for n, table in [(5, "embeddings"), (3, "outputs")])
    assert "1 summaries" in out
    assert rows_of(db, "mia") == {"users": 0}
    assert not adapter.exists() and not adapter.parent.parent.parent.exists()
    assert rows_of(db, "ana")["documents"] == 5  # the others are untouched
    # Not a byte of her text is left in any file of the store (database, WAL, artifacts).
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"headlamps bobbing" not in path.read_bytes(), path


def test_users_list_and_show(
    tmp_path: Path, tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pgen(tmp_path, tiny_llama, "ingest", str(sample_path()))
    capsys.readouterr()
    assert pgen(tmp_path, tiny_llama, "users") == 0
    listing = capsys.readouterr().out
    assert "ana" in listing and "3 users" in listing
    assert pgen(tmp_path, tiny_llama, "users", "show", "raj", "--limit", "2") == 0
    shown = capsys.readouterr().out
    assert "backend engineer" in shown and "[raj-5]" in shown and "[raj-1]" not in shown


def test_errors_are_one_readable_line_and_debug_shows_the_traceback(
    tmp_path: Path, tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "document", "user_id": "u", "doc_id": "1"}\n')
    assert pgen(tmp_path, tiny_llama, "ingest", str(bad)) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"pgen: error: {bad}:1: document: field 'text': Field required"
    assert pgen(tmp_path, tiny_llama, "generate", "--user", "nobody", "hi") == 1
    assert capsys.readouterr().err.strip() == "pgen: error: no user 'nobody' in the store"
    assert pgen(tmp_path, tiny_llama, "--debug", "delete-user", "nobody") == 1
    assert "Traceback" in capsys.readouterr().err
    assert pgen(tmp_path, tiny_llama, "delete-user", "nobody", "--debug") == 1  # anywhere
    assert "Traceback" in capsys.readouterr().err


def test_a_multi_line_error_prints_as_one_line() -> None:
    assert one_line(ValueError("bad config:\n  field x\n\n  expected int")) == (
        "bad config: field x expected int"
    )
    assert one_line(RuntimeError()) == "RuntimeError"  # an empty message still names a cause


def test_demo_runs_every_user_and_strategy(tmp_path: Path, tiny_llama: Path) -> None:
    report = run_demo(Config(home=tmp_path, text_model=str(tiny_llama)), max_new_tokens=4)
    for user in ("ana", "raj", "mia"):
        assert f"=== user {user} ===" in report
    assert report.count("rag used:") == 3 and report.count("profile used:") == 3
    # Every user's personalized outputs drew on their own context items.
    assert "used: nothing" not in report
    assert not list(tmp_path.glob("**/demo.sqlite"))  # the demo's store is thrown away


def test_side_by_side_wraps_into_aligned_columns() -> None:
    made = [
        Generation(None, "u", name, text, [], [], {})
        for name, text in [("none", "a " * 30), ("rag", "short")]
    ]
    lines = side_by_side(made, width=10).splitlines()
    assert lines[0].startswith("NONE       | RAG")
    assert all(len(line) <= 23 for line in lines)
    assert len(lines) == 2 + 6  # header, rule, and sixty characters wrapped at ten
