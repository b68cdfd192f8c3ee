"""``pgen train`` end to end on the tiny model: train a user's lora, generate with it,
thumbs on two outputs, DPO refused with too few pairs, delete-user removes the adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgen.cli.main import main
from pgen.context.sqlite import SQLiteStore

from .conftest import documents


def run(home: Path, model: Path, *argv: str) -> int:
    return main(["--home", str(home), "--text-model", str(model), "--threads", "1", *argv])


def test_train_generate_and_forget(
    tmp_path: Path, tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SQLiteStore(tmp_path / "pgen.sqlite") as store:
        store.add(documents("ann", "the battery lasts long", "great sound", "bright screen"))
    assert run(tmp_path, tiny_llama, "train", "--user", "ann", "--max-steps", "2") == 0
    out = capsys.readouterr().out
    assert "trained lora for user 'ann'" in out and "3 examples, 2 steps" in out
    folder = Path(out.split("artifact: ")[1].strip())
    assert (folder / "adapter_config.json").is_file()

    argv = ["generate", "hi", "--user", "ann", "--strategy", "lora", "--max-new-tokens", "4"]
    assert run(tmp_path, tiny_llama, *argv, "--json") == 0
    record = json.loads(capsys.readouterr().out)
    assert record["provenance"]["model"].endswith("+lora-ann")
    assert record["provenance"]["artifacts"] == [str(folder)]

    assert run(tmp_path, tiny_llama, "train", "--user", "ann", "--method", "dpo") == 1
    assert "0 preference pairs" in capsys.readouterr().err
    assert run(tmp_path, tiny_llama, "delete-user", "ann") == 0
    assert not folder.exists()
