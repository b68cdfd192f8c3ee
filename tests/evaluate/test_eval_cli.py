"""``pgen eval``: scoring prediction files as LaMP's evaluator does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgen.cli.main import main
from pgen.evaluate.metrics.bertscore import BertScorer

LAMP_SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "lamp-samples"


def _write(path: Path, task: str, rows: dict[str, str]) -> Path:
    payload = {"task": task, "golds": [{"id": k, "output": v} for k, v in rows.items()]}
    path.write_text(json.dumps(payload))
    return path


def _eval(task: str, golds: Path, preds: Path, *extra: str) -> int:
    return main(["eval", "--task", task, "--golds", str(golds), "--preds", str(preds), *extra])


def test_scores_classification_by_id_not_by_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    golds = _write(tmp_path / "g.json", "LaMP_1", {"a": "[1]", "b": "[2]", "c": "[2]", "d": "[1]"})
    preds = _write(tmp_path / "p.json", "LaMP_1", {"d": "[1]", "c": "[1]", "b": "[2]", "a": "1"})
    assert _eval("LaMP_1", golds, preds, "--json") == 0
    results = json.loads(capsys.readouterr().out)
    assert results["examples"] == 4
    assert results["metrics"]["accuracy"]["value"] == pytest.approx(0.5)
    # [1]: TP 1 (d), FN 1 (a, out of set), FP 1 (c) -> 0.5; [2]: TP 1, FN 1 -> 2/3
    assert results["metrics"]["f1"]["value"] == pytest.approx((0.5 + 2 / 3) / 2)


def test_missing_and_extra_ids_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    golds = _write(tmp_path / "g.json", "LaMP_3", {"1": "5", "2": "4", "3": "1"})
    preds = _write(tmp_path / "p.json", "LaMP_3", {"1": "5", "9": "4"})
    assert _eval("LaMP_3", golds, preds) == 1
    error = capsys.readouterr().err
    assert "2 gold ids have no prediction (2, 3)" in error
    assert "1 predictions have no gold (9)" in error


def test_ids_of_another_json_type_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    golds = tmp_path / "g.json"
    golds.write_text(json.dumps({"task": "LaMP_3", "golds": [{"id": 1, "output": "5"}]}))
    preds = _write(tmp_path / "p.json", "LaMP_3", {"1": "5"})
    assert _eval("LaMP_3", golds, preds) == 1  # LaMP's evaluator: 1 != "1"
    assert "1 ids differ in JSON type, gold vs prediction (1 vs '1')" in capsys.readouterr().err
    assert _eval("LaMP_3", golds, golds) == 0


def test_bertscore_model_and_layer(
    tmp_path: Path, tiny_bert: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    golds = _write(tmp_path / "g.json", "LaMP_4", {"1": "the screen is bright"})
    preds = _write(tmp_path / "p.json", "LaMP_4", {"1": "great sound"})
    args = ["--bertscore-model", str(tiny_bert), "--bertscore-layer", "1", "--json"]
    assert _eval("LaMP_4", golds, preds, *args) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["bertscore"] == {"model": str(tiny_bert), "layer": 1}
    assert "layer 1" in results["definitions"]["bertscore"]
    layer_one = results["metrics"]["bertscore"]["value"]
    expected = BertScorer(tiny_bert, layer=1).scores(["great sound"], ["the screen is bright"])
    assert layer_one == pytest.approx(expected[0, 2])
    assert _eval("LaMP_4", golds, preds, *args[:3], "2", "--json") == 0
    layer_two = json.loads(capsys.readouterr().out)["metrics"]["bertscore"]["value"]
    assert layer_two != pytest.approx(layer_one, abs=1e-6)
    assert _eval("LaMP_4", golds, preds, "--bertscore-model", str(tmp_path / "nothing")) == 1


def test_wrong_task_in_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    golds = _write(tmp_path / "g.json", "LaMP_4", {"1": "a headline"})
    preds = _write(tmp_path / "p.json", "LaMP_5", {"1": "a headline"})
    assert _eval("LaMP_4", golds, preds) == 1
    assert "holds task 'LaMP_5'" in capsys.readouterr().err


def test_generation_reports_rouge_and_lamp_aggregate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    golds = _write(tmp_path / "g.json", "LaMP_4", {"1": "the cat sat on the mat", "2": "a b"})
    preds = _write(tmp_path / "p.json", "LaMP_4", {"1": "the cat sat", "2": "a b"})
    assert _eval("LaMP_4", golds, preds, "--bertscore") == 0
    out = capsys.readouterr().out
    assert "rouge-1    0.8333" in out
    assert "bootstrap median" in out
    assert "bertscore" in out
    # Any generation task gets LaMP's aggregate, not only LaMP's own.
    golds = _write(tmp_path / "g.json", "amazon_review", {"1": "the cat sat on the mat"})
    preds = _write(tmp_path / "p.json", "amazon_review", {"1": "the cat sat"})
    assert _eval("amazon_review", golds, preds, "--json") == 0
    assert "rouge-1" in json.loads(capsys.readouterr().out)["lamp_rouge"]


@pytest.mark.skipif(not LAMP_SAMPLES.is_dir(), reason="LaMP samples absent")
def test_golds_against_themselves_on_the_samples(capsys: pytest.CaptureFixture[str]) -> None:
    golds = LAMP_SAMPLES / "LaMP_2_dev_outputs.json"
    assert _eval("LaMP_2", golds, golds, "--json") == 0
    results = json.loads(capsys.readouterr().out)
    assert results["metrics"]["accuracy"]["value"] == 1.0
    # Three distinct categories of the 15: LaMP's macro-F1 averages the 12 absent as 0.
    assert results["metrics"]["f1"]["value"] == pytest.approx(3 / 15)
