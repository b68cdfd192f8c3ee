"""``pgen bench text`` end to end with a tiny random Llama, and its resume cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pgen.bench.text import CACHE_FILE, Setting, settings_grid
from pgen.bench.text_plan import BenchPlan, cache_key
from pgen.cli.main import main
from pgen.evaluate.answers import calibrated_choices, first_label
from pgen.evaluate.benchmarks import TaskData, TaskSpec
from pgen.evaluate.metrics import lamp_rouge_bootstrap_mid
from pgen.evaluate.metrics.labels import RATING_LABELS
from pgen.models.base import GenerationSettings


def _bench(model: Path, data: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "--home",
            str(out.parent / "home"),
            "--text-model",
            str(model),
            "bench",
            "text",
            "--task",
            "amazon_rating",
            "--data",
            str(data),
            "--out",
            str(out),
            "--no-progress",
            "--max-new-tokens",
            "3",
            "--batch-size",
            "2",
            *extra,
        ]
    )


def _cache_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / CACHE_FILE).read_text().splitlines()]


def test_settings_grid() -> None:
    grid = settings_grid(["none", "rag", "profile"], ["bm25", "dense"], [1, 4])
    assert [s.name for s in grid] == [
        "none",
        "rag-bm25-k1",
        "rag-bm25-k4",
        "rag-dense-k1",
        "rag-dense-k4",
        "profile",
    ]
    assert grid[1] == Setting("rag", "bm25", 1)
    # The baseline of the paired tests is run even when not asked for, once and first.
    assert [s.name for s in settings_grid(["profile", "rag"], ["bm25"], [2])] == [
        "none",
        "profile",
        "rag-bm25-k2",
    ]
    assert [s.name for s in settings_grid(["profile", "none"], [], [])] == ["none", "profile"]
    # lora+rag retrieves like rag: the same retrievers and k, so the two compare the same
    # documents (it once ran with the request's defaults, k = 4, beside rag's k = 1).
    adapters = settings_grid(["rag", "lora+rag", "lora", "dpo"], ["bm25"], [1])
    assert [s.name for s in adapters] == [
        "none",
        "rag-bm25-k1",
        "lora+rag-bm25-k1",
        "lora",
        "dpo",
    ]


def test_bench_writes_predictions_metrics_and_report(
    tiny_llama: Path, amazon_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert _bench(tiny_llama, amazon_file, out, "--strategy", "none,rag", "--k", "1,2") == 0
    golds = json.loads((out / "golds.json").read_text())
    assert golds["task"] == "amazon_rating"
    ids = [g["id"] for g in golds["golds"]]
    assert len(ids) == 3
    for name in ("none", "rag-bm25-k1", "rag-bm25-k2"):
        predictions = json.loads((out / "predictions" / f"{name}.json").read_text())
        assert predictions["task"] == "amazon_rating"
        assert [p["id"] for p in predictions["golds"]] == ids
    results = json.loads((out / "metrics.json").read_text())
    meta, record = results["meta"], results["record"]
    assert len(record["data"]["sha256"]) == 64 and record["model"]["spec"] == str(tiny_llama)
    assert record["packages"]["torch"] and record["settings"]["decoding"]["temperature"] == 0.0
    assert record["task"] == "amazon_rating" and record["threads"] == 1
    assert meta["skipped"]["invalid JSON line"] == 1
    assert meta["settings"]["none"]["docs_per_prompt"] == 0
    assert meta["settings"]["rag-bm25-k1"]["docs_per_prompt"] == pytest.approx(1.0)
    # Every last review shares words with all earlier ones but U2 has only one.
    assert meta["settings"]["rag-bm25-k2"]["docs_per_prompt"] == pytest.approx(5 / 3)
    systems = results["scores"]["systems"]
    assert set(systems["rag-bm25-k1"]["vs_none"]) == {"mae", "rmse"}
    mae = systems["none"]["metrics"]["mae"]
    assert mae["low"] <= mae["value"] <= mae["high"]
    report = (out / "report.md").read_text()
    assert "rag-bm25-k2" in report and "Difference from `none`" in report
    assert "raw answer is a label" in report and "Outputs for the first question" in report
    # The tiny random model never answers with a bare rating: LaMP's rule scores every
    # setting alike, and the report says so and what to do about it.
    assert all(info["in_label_set"] == 0 for info in meta["settings"].values())
    assert "**0% of the raw answers of every setting are a label.**" in report
    assert "`--answers first-label`" in report and "`--answers choice`" in report
    # Which test the marks follow, and why interval and p can disagree.
    assert "the stars and the plot's marks follow that test" in report and "differ" in report
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    # rag with k=1 put exactly the retrieved document in the prompt: cached provenance says so
    rows = _cache_lines(out)
    assert len(rows) == 9
    assert all(len(r["provenance"]) == 1 for r in rows if r["setting"] == "rag-bm25-k1")
    assert "amazon_rating" in capsys.readouterr().out


def test_bench_resumes_after_interruption(
    tiny_llama: Path, amazon_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert _bench(tiny_llama, amazon_file, out, "--strategy", "none,rag", "--k", "1") == 0
    complete = _cache_lines(out)
    assert len(complete) == 6
    # As if killed mid-run: two predictions lost and a line torn in half.
    text = (out / CACHE_FILE).read_text().splitlines()
    (out / CACHE_FILE).write_text("\n".join(text[:4]) + "\n" + text[4][:20])
    assert _bench(tiny_llama, amazon_file, out, "--strategy", "none,rag", "--k", "1") == 0
    resumed = _cache_lines_tolerant(out)
    assert len(resumed) == 6  # 4 kept + 2 regenerated, nothing twice
    assert sorted((r["setting"], r["id"]) for r in resumed) == sorted(
        (r["setting"], r["id"]) for r in complete
    )
    # Greedy decoding: the regenerated answers equal the lost ones.
    assert {(r["setting"], r["id"]): r["output"] for r in resumed} == {
        (r["setting"], r["id"]): r["output"] for r in complete
    }
    # Unchanged settings: a third run generates nothing.
    assert _bench(tiny_llama, amazon_file, out, "--strategy", "none,rag", "--k", "1") == 0
    assert len(_cache_lines_tolerant(out)) == 6
    # A new k is a new setting with its own cache key.
    assert _bench(tiny_llama, amazon_file, out, "--strategy", "rag", "--k", "2") == 0
    assert len(_cache_lines_tolerant(out)) == 9
    # Reading answers differently re-scores the cached outputs without generating again.
    args = ("--strategy", "none", "--answers", "first-label")
    assert _bench(tiny_llama, amazon_file, out, *args) == 0
    assert len(_cache_lines_tolerant(out)) == 9
    rescored = json.loads((out / "metrics.first-label.json").read_text())
    assert rescored["record"]["settings"]["answers"] == "first-label"
    raw = {r["id"]: r["output"] for r in resumed if r["setting"] == "none"}
    scored = json.loads((out / "predictions" / "none.first-label.json").read_text())["golds"]
    assert {p["id"]: p["output"] for p in scored} == {
        i: first_label(text, RATING_LABELS) for i, text in raw.items()
    }
    # Re-scoring wrote beside the raw files: those still hold the text as generated.
    kept = json.loads((out / "predictions" / "none.json").read_text())
    assert {p["id"]: p["output"] for p in kept["golds"]} == raw
    assert kept["record"]["settings"]["answers"] == "raw"
    assert json.loads((out / "metrics.json").read_text())["record"]["settings"]["answers"] == "raw"
    assert (out / "report.first-label.md").is_file() and (out / "report.md").is_file()


def _cache_lines_tolerant(out: Path) -> list[dict]:
    rows = []
    for line in (out / CACHE_FILE).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def test_choice_answers_are_the_most_likely_label(
    tiny_llama: Path, amazon_file: Path, tmp_path: Path
) -> None:
    from pgen.models.base import Message
    from pgen.models.text import TransformersTextModel

    out = tmp_path / "run"
    assert _bench(tiny_llama, amazon_file, out, "--strategy", "none", "--answers", "choice") == 0
    result = json.loads((out / "metrics.choice.json").read_text())
    assert result["record"]["settings"]["answers"] == "choice"
    report = (out / "report.choice.md").read_text()
    assert "--answers choice" in report and "answers chosen by likelihood" in report
    assert "greedy decoding" not in report and "raw answer is a label" not in report
    scored = json.loads((out / "predictions" / "none.choice.json").read_text())["golds"]
    assert all(p["output"] in RATING_LABELS for p in scored)
    # Each answer is the label with the highest likelihood after the question's own prompt.
    model = TransformersTextModel(str(tiny_llama))
    first = result["meta"]["first_example"]
    scores = model.choice_logprobs([[Message("user", first["instruction"])]], RATING_LABELS)
    assert scored[0]["output"] == RATING_LABELS[int(scores[0].argmax())]
    # Calibrated choice re-reads the cached label scores: nothing new is computed.
    rows = (out / "cache.jsonl").read_text().splitlines()
    assert (
        _bench(tiny_llama, amazon_file, out, "--strategy", "none", "--answers", "choice-calibrated")
        == 0
    )
    assert (out / "cache.jsonl").read_text().splitlines() == rows
    cached = [json.loads(row) for row in rows]
    scores = np.array([row["label_logprobs"] for row in cached])
    answers = calibrated_choices(scores, RATING_LABELS)
    by_id = dict(zip([row["id"] for row in cached], answers, strict=True))
    calibrated = (out / "predictions" / "none.choice-calibrated.json").read_text()
    assert {p["id"]: p["output"] for p in json.loads(calibrated)["golds"]} == by_id
    assert "batch calibration" in (out / "report.choice-calibrated.md").read_text()
    # A generation task has no labels to choose from.
    args = ("--strategy", "none", "--answers", "choice", "--task", "amazon_review")
    assert _bench(tiny_llama, amazon_file, tmp_path / "review", *args) == 1


def test_bench_rejects_unknown_settings(
    tiny_llama: Path, amazon_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert _bench(tiny_llama, amazon_file, out, "--strategy", "magic") == 1
    assert _bench(tiny_llama, amazon_file, out, "--retriever", "psychic") == 1
    assert _bench(tiny_llama, amazon_file, out, "--batch-size", "0") == 1


LAMP_SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "lamp-samples"


@pytest.mark.skipif(not LAMP_SAMPLES.is_dir(), reason="LaMP samples absent")
def test_lamp_predictions_score_the_same_through_pgen_eval(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lamp"
    home, model = str(tmp_path / "home"), str(tiny_llama)
    args = ["--task", "LaMP_2", "--data", str(LAMP_SAMPLES), "--limit", "2", "--out", str(out)]
    args += ["--strategy", "none,rag", "--k", "2", "--max-new-tokens", "2", "--no-progress"]
    code = main(["--home", home, "--text-model", model, "bench", "text", *args])
    assert code == 0
    results = json.loads((out / "metrics.json").read_text())
    assert results["meta"]["examples"] == ["112", "113"]
    capsys.readouterr()
    golds, preds = out / "golds.json", out / "predictions" / "rag-bm25-k2.json"
    assert (
        main(["eval", "--task", "LaMP_2", "--golds", str(golds), "--preds", str(preds), "--json"])
        == 0
    )
    rescored = json.loads(capsys.readouterr().out)
    bench_scores = results["scores"]["systems"]["rag-bm25-k2"]["metrics"]
    assert rescored["metrics"]["f1"]["value"] == pytest.approx(bench_scores["f1"]["value"])
    assert rescored["metrics"]["accuracy"] == pytest.approx(bench_scores["accuracy"])


def test_generation_bench_reports_lamp_rouge_and_records_what_produced_it(
    tiny_llama: Path,
    tiny_bert: Path,
    amazon_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "review"
    args = ["--task", "amazon_review", "--strategy", "rag", "--k", "1"]  # no none asked for
    args += ["--bertscore-model", str(tiny_bert), "--bertscore-layer", "1"]
    assert _bench(tiny_llama, amazon_file, out, *args) == 0
    results = json.loads((out / "metrics.json").read_text())
    systems = results["scores"]["systems"]
    assert list(systems) == ["none", "rag-bm25-k1"]  # the baseline is always run
    assert set(systems["rag-bm25-k1"]["vs_none"]) >= {"rouge-1", "bertscore"}
    record = results["record"]
    assert record["settings"]["baseline_added"] is True
    assert record["settings"]["bertscore"] == {"model": str(tiny_bert), "layer": 1}
    golds_file = json.loads((out / "golds.json").read_text())
    golds = [g["output"] for g in golds_file["golds"]]
    for name, entry in systems.items():
        predictions = json.loads((out / "predictions" / f"{name}.json").read_text())
        outputs = [p["output"] for p in predictions["golds"]]
        assert entry["lamp_rouge"] == lamp_rouge_bootstrap_mid(outputs, golds)
        assert predictions["record"] == record  # one record shape in every file of the run
        assert record["model"]["spec"] == str(tiny_llama) and record["model"]["loaded"]
        assert record["packages"]["rouge-score"]
        assert predictions["setting"]["strategy"] == name.split("-")[0]
    assert golds_file["record"] == record
    report = (out / "report.md").read_text()
    assert "rouge-1 (LaMP) ↑" in report and "rouge-1 mean ↑" in report
    assert "was added to the settings as the baseline" in report
    assert "Versions: python" in report and "batch size 2" in report and "layer 1" in report
    # pgen eval reads the files with their meta, and reports the same LaMP aggregate.
    capsys.readouterr()
    preds = out / "predictions" / "rag-bm25-k1.json"
    command = ["eval", "--task", "amazon_review", "--golds", str(out / "golds.json")]
    assert main([*command, "--preds", str(preds), "--json"]) == 0
    rescored = json.loads(capsys.readouterr().out)
    assert rescored["lamp_rouge"] == pytest.approx(systems["rag-bm25-k1"]["lamp_rouge"])
    bench_mean = systems["rag-bm25-k1"]["metrics"]["rouge-1"]["value"]
    assert rescored["metrics"]["rouge-1"]["value"] == pytest.approx(bench_mean)


def test_one_store_per_data_set(tiny_llama: Path, amazon_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ("--strategy", "rag", "--k", "4")
    assert _bench(tiny_llama, amazon_file, out, *args) == 0
    first = {(r["id"], tuple(r["provenance"])) for r in _cache_lines(out) if r["setting"] != "none"}
    assert sorted(dict(first)["U1-B03"]) == ["B01@100", "B02@200"]
    # The same questions (same ids) from data without U1's first review, same run folder.
    lines = [
        line for line in amazon_file.read_text().splitlines() if '"B01", "overall": 5.0' not in line
    ]
    changed = tmp_path / "changed.json"
    changed.write_text("\n".join(lines) + "\n")
    assert _bench(tiny_llama, changed, out, *args) == 0
    second = [r for r in _cache_lines(out) if r["setting"] != "none"][len(first) :]
    by_id = {r["id"]: r["provenance"] for r in second}
    assert by_id["U1-B03"] == ["B02@200"]  # not the first data set's B01@100
    assert len(list(out.glob("store-*.sqlite"))) == 2


def _task(data_hash: str) -> TaskData:
    return TaskData(TaskSpec("LaMP_4", "generation"), [], [], data_hash)


def test_cache_key_covers_the_embedding_model_for_dense_retrieval() -> None:
    plan = BenchPlan([], "smollm2", 16, embed_model="minilm")
    other = BenchPlan([], "smollm2", 16, embed_model="another-encoder")
    data = _task("abc")
    dense, bm25, none = Setting("rag", "dense", 2), Setting("rag", "bm25", 2), Setting("none")
    assert cache_key(data, plan, dense) != cache_key(data, other, dense)
    assert cache_key(data, plan, Setting("rag", "hybrid", 2)) != cache_key(
        data, other, Setting("rag", "hybrid", 2)
    )
    # Rankings that never embed keep their cached answers.
    assert cache_key(data, plan, bm25) == cache_key(data, other, bm25)
    assert cache_key(data, plan, none) == cache_key(data, other, none)
    assert cache_key(data, plan, dense) != cache_key(_task("abd"), plan, dense)


def test_cache_key_covers_the_retriever_code(monkeypatch: pytest.MonkeyPatch) -> None:
    import pgen.bench.text_plan as plan_module

    plan, data = BenchPlan([], "smollm2", 16), _task("abc")
    bm25, none = Setting("rag", "bm25", 2), Setting("none")
    before = cache_key(data, plan, bm25), cache_key(data, plan, none)
    real = plan_module.code_fingerprint

    def edited(modules: set[str]) -> str:  # as if BM25's k1 had been changed
        return real(modules) + ("-edited" if "pgen.usermodel.bm25" in modules else "")

    monkeypatch.setattr(plan_module, "code_fingerprint", edited)
    assert cache_key(data, plan, bm25) != before[0]
    assert cache_key(data, plan, none) == before[1]


def test_batch_size_reaches_the_model(tiny_llama: Path, tmp_path: Path) -> None:
    from pgen.cli.evaluate import text_model_loader
    from pgen.config import Config
    from pgen.models.base import Message

    model = text_model_loader(str(tiny_llama), Config(home=tmp_path), 16)()
    calls: list[int] = []
    real = model.model.generate  # type: ignore[attr-defined]

    def counting(**kwargs: object) -> object:
        calls.append(len(kwargs["input_ids"]))  # type: ignore[arg-type]
        return real(**kwargs)

    model.model.generate = counting  # type: ignore[attr-defined]
    chats = [[Message("user", f"question {i}")] for i in range(12)]
    model.generate(chats, GenerationSettings(max_new_tokens=1))
    assert calls == [12]  # one batch, not 8 + 4
