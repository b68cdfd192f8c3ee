"""`pgen bench rec` and `pgen recommend` end to end on a small generated data set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgen.cli.main import main
from pgen.recommend.recommenders import load
from tests.rec.conftest import planted_records


@pytest.fixture
def atomic_data(tmp_path: Path) -> Path:
    """The planted data set written as RecBole atomic files."""
    items, interactions = planted_records(n_users=60)
    folder = tmp_path / "planted"
    folder.mkdir()
    with (folder / "planted.inter").open("w") as handle:
        handle.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for row in interactions:
            assert row.time is not None
            handle.write(f"{row.user_id}\t{row.item_id}\t{row.time.timestamp()}\n")
    with (folder / "planted.item").open("w") as handle:
        handle.write("item_id:token\ttitle:token_seq\n")
        for item in items:
            handle.write(f"{item.item_id}\t{item.title}\n")
    return folder


def test_bench_rec_writes_table_result_and_plot(
    atomic_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    code = main(
        [
            "--threads",
            "1",
            "bench",
            "rec",
            "--data",
            str(atomic_data),
            "--model",
            "bpr",
            "--param",
            "dim=16",
            "--param",
            "epochs=3",
            "--negatives",
            "20",
            "--seed",
            "3",
            "--save",
            str(tmp_path / "model"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| bpr | test | full ranking (repeat targets kept) | 60 |" in printed
    assert "sampled: 20 uniform negatives" in printed
    result = json.loads(next(out.glob("rec-planted-bpr-*.json")).read_text())
    assert result["record"]["settings"]["params"]["dim"] == 16
    assert len(result["training"]["epochs"]) == 3
    assert result["data"]["interactions"] > 0 and result["record"]["packages"]["torch"]
    assert result["record"]["threads"] == 1 and len(result["record"]["data"]["sha256"]) == 64
    modes = [r["mode"] for r in result["results"]]
    kept = "full ranking (repeat targets kept)"
    assert modes == [kept, kept, "sampled: 20 uniform negatives"]
    assert "ndcg@10[sampled-20]" in result["results"][2]["metrics"]
    assert next(out.glob("rec-planted-bpr-*.png")).stat().st_size > 0
    # --seed reached the model, and --save wrote a model that reloads with it.
    settings = result["record"]["settings"]
    assert settings["seed"] == 3 and settings["params"]["seed"] == 3
    saved = load(result["saved_to"])
    assert saved.name == "bpr" and saved.params["seed"] == 3


def test_recommend_trains_saves_and_serves_a_user(
    atomic_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "ctx" / "pgen.sqlite"
    store.parent.mkdir()  # an explicit --store names a file in a folder that exists
    base = ["--store", str(store), "recommend", "--model", "itemknn"]
    assert main([*base, "--data", str(atomic_data), "--train"]) == 0
    # A recommender is trained over many users: the store keeps it with its shared files.
    saved = tmp_path / "ctx" / "pgen-artifacts" / "shared" / "recommenders"
    assert [p.name for p in saved.glob("itemknn-*/config.json")] == ["config.json"]
    capsys.readouterr()
    assert main([*base, "--user", "u0", "--k", "5"]) == 0
    lines = capsys.readouterr().out.rstrip().splitlines()
    assert len(lines) == 5 and lines[0].startswith("  1. ")
    # User u0 keeps to the first group ("Space Opera"): its unseen items of that group come
    # first, and nothing it has already seen is recommended.
    _, interactions = planted_records(n_users=60)
    seen = {f"[{r.item_id}]" for r in interactions if r.user_id == "u0"}
    assert "Space Opera" in lines[0]
    assert not any(line.split()[-2] in seen for line in lines)
    assert main([*base, "--user", "nobody"]) == 1
    assert "no user 'nobody'" in capsys.readouterr().err


def test_recommend_without_a_trained_model_says_how_to_train(
    atomic_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "pgen.sqlite"
    assert main(["--store", str(store), "recommend", "--data", str(atomic_data)]) == 0
    assert main(["--store", str(store), "recommend", "--user", "u0", "--model", "bpr"]) == 1
    assert "pgen recommend --train --model bpr" in capsys.readouterr().err


def test_bench_llm_rerank_reports_base_and_reranked_on_the_same_users(
    atomic_data: Path, tmp_path: Path, tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    argv = ["--text-model", str(tiny_llama), "bench", "rec", "--data", str(atomic_data)]
    argv += ["--model", "llm-rerank", "--base", "itemknn", "--candidates", "5"]
    assert main([*argv, "--max-users", "6", "--out", str(out)]) == 0
    result = json.loads(next(out.glob("rec-planted-llm-rerank-*.json")).read_text())
    scorers = [(r["scorer"], r["phase"], r["n_users"]) for r in result["results"]]
    assert scorers == [("llm-rerank", "test", 6), ("itemknn", "test", 6)]
    assert result["rerank"]["candidates"] == 5 and result["record"]["model"]["base"] == "itemknn"
    assert result["rerank"]["answers"] == 6 and 0 <= result["rerank"]["reordered"] <= 6
    # Re-ranking only reorders the top 5: HR@5 cannot change, and HR@10 neither.
    reranked, base = result["results"][0]["metrics"], result["results"][1]["metrics"]
    assert reranked["hr@5"] == base["hr@5"] and reranked["hr@10"] == base["hr@10"]


def test_recommend_rerank_reorders_only_the_top_candidates(
    atomic_data: Path, tmp_path: Path, tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "pgen.sqlite"
    base = ["--store", str(store), "--text-model", str(tiny_llama), "recommend"]
    base += ["--model", "itemknn"]
    assert main([*base, "--data", str(atomic_data), "--train"]) == 0
    capsys.readouterr()
    assert main([*base, "--user", "u0", "--k", "8"]) == 0
    plain = [line.split()[-2:] for line in capsys.readouterr().out.splitlines()]
    assert main([*base, "--user", "u0", "--k", "8", "--rerank", "4"]) == 0
    reranked = [line.split()[-2:] for line in capsys.readouterr().out.splitlines()]
    # The text model may reorder the top 4, never change which items they are; below them
    # the base order and scores stand. The re-ranked four carry re-ranking scores, above
    # every base score.
    assert len(reranked) == 8
    assert {i for i, _ in reranked[:4]} == {i for i, _ in plain[:4]}
    assert reranked[4:] == plain[4:]
    assert min(float(s) for _, s in reranked[:4]) > max(float(s) for _, s in plain)


def test_engine_recommends_from_python(atomic_data: Path, tmp_path: Path) -> None:
    from pgen.config import Config
    from pgen.engine import Engine

    store = tmp_path / "pgen.sqlite"
    assert main(["--store", str(store), "recommend", "--data", str(atomic_data), "--train"]) == 0
    engine = Engine.open(Config(store=store, home=tmp_path))
    try:
        rows = engine.recommend("u0", 3, model="sasrec")
        seen = {r.item_id for r in engine.store.interactions("u0")}
    finally:
        engine.close()
    assert [row.rank for row in rows] == [1, 2, 3]
    assert not seen & {row.item.item_id for row in rows}
    assert rows[0].score >= rows[1].score >= rows[2].score


def test_bench_rec_rerank_is_an_option_of_any_recommender(
    atomic_data: Path, tmp_path: Path, tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    argv = ["--text-model", str(tiny_llama), "bench", "rec", "--data", str(atomic_data)]
    argv += ["--model", "pop", "--rerank", "4", "--max-users", "5", "--out", str(out)]
    assert main(argv) == 0
    result = json.loads(next(out.glob("rec-planted-pop+rerank-*.json")).read_text())
    scorers = [(r["scorer"], r["phase"], r["n_users"]) for r in result["results"]]
    assert scorers == [("pop+rerank", "test", 5), ("pop", "test", 5)]
    assert result["record"]["model"] == {
        "recommender": "pop+rerank",
        "base": "pop",
        "text_model": result["rerank"]["text_model"],
    }
    assert result["rerank"]["candidates"] == 4 and result["rerank"]["answers"] == 5
    reranked, base = result["results"][0]["metrics"], result["results"][1]["metrics"]
    assert reranked["hr@5"] == base["hr@5"]  # only the top 4 are re-ordered
    # An unknown recommender is refused before any data is read.
    assert main([*argv[:6], "--model", "nope", "--out", str(out)]) == 1
    assert "unknown recommender 'nope'; choose from" in capsys.readouterr().err
