"""Stale adapters end to end through the command line: the ``stale_adapters`` setting
(serve, base, refuse) and ``pgen train --stale`` retraining every stale adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgen.cli.main import main
from pgen.config import load_config


def _write(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_the_setting_is_one_of_three() -> None:
    assert load_config().stale_adapters == "serve"
    assert load_config(stale_adapters="base").stale_adapters == "base"
    with pytest.raises(ValueError, match="stale_adapters must be one of serve, base, refuse"):
        load_config(stale_adapters="sometimes")


def test_each_policy_and_train_stale(
    tmp_path: Path,
    tiny_llama: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = ["--home", str(tmp_path / "home"), "--text-model", str(tiny_llama)]
    records = [{"type": "user", "user_id": u} for u in ("ann", "bob")] + [
        {"type": "document", "user_id": u, "doc_id": f"d{i}", "text": f"{u} writes post {i}"}
        for u in ("ann", "bob")
        for i in range(3)
    ]
    assert main([*home, "ingest", str(_write(tmp_path / "a.jsonl", records))]) == 0
    quick = ["--method", "lora", "--epochs", "1", "--max-steps", "1", "--rank", "2"]
    for user in ("ann", "bob"):
        assert main([*home, "train", "--user", user, *quick]) == 0
    assert main([*home, "train", "--stale", *quick]) == 0  # nothing is stale yet
    assert "retrained 0 stale adapters" in capsys.readouterr().out
    new = [{"type": "document", "user_id": "ann", "doc_id": "d9", "text": "a new post"}]
    assert main([*home, "ingest", str(_write(tmp_path / "b.jsonl", new))]) == 0
    capsys.readouterr()

    ask = [*home, "generate", "--user", "ann", "--strategy", "lora", "--max-new-tokens", "2", "hi"]
    assert main([*ask, "--json"]) == 0  # serve (the default): the adapter, and a note
    served = json.loads(capsys.readouterr().out)
    assert served["details"]["adapter"] == "lora-ann"
    assert served["details"]["stale_adapter"] == "lora"
    assert any("is stale" in n for n in served["provenance"]["notes"])
    monkeypatch.setenv("PGEN_STALE_ADAPTERS", "base")
    assert main([*ask, "--json"]) == 0  # base: the base model, and a note
    based = json.loads(capsys.readouterr().out)
    assert based["details"]["adapter"] is None and based["provenance"]["model"].endswith("__base__")
    assert any("ran on the base model" in n for n in based["provenance"]["notes"])
    monkeypatch.setenv("PGEN_STALE_ADAPTERS", "refuse")
    assert main(ask) == 1  # refuse: the error, naming the command that retrains
    assert "retrain: pgen train --user ann --method lora" in capsys.readouterr().err

    assert main([*home, "train", "--stale", *quick]) == 0  # only ann's is stale
    out = capsys.readouterr().out
    assert "user 'ann': lora adapter stale" in out and "'bob'" not in out
    assert "retrained 1 stale adapters" in out
    assert main(ask) == 0  # current again: served under refuse too
    assert "is stale" not in capsys.readouterr().out
    assert main([*home, "train", "--stale", "--user", "ann"]) == 1
    assert "takes no --user" in capsys.readouterr().err
    assert main([*home, "train"]) == 1
    assert "--stale" in capsys.readouterr().err
