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


def test_train_users_inline_reports_failures_and_skips_fresh(
    tmp_path: Path, tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pgen.context.records import User

    with SQLiteStore(tmp_path / "pgen.sqlite") as store:
        store.add(documents("ann", "the battery lasts long", "great sound"))
        store.add(documents("bob", "bright screen", "too heavy"))
        store.add([User(user_id="cy")])  # nothing to train on
    argv = ["train", "--users", "all", "--max-steps", "2", "--retries", "1"]
    assert run(tmp_path, tiny_llama, *argv) == 1  # a user failed: the exit says so
    out = capsys.readouterr().out
    assert "trained lora for user 'ann'" in out and "trained lora for user 'bob'" in out
    assert "failed: user 'cy'" in out and "2 trained, 1 failed, 0 fresh (skipped) of 3" in out
    assert "ETA" in out
    listed = tmp_path / "users.txt"
    listed.write_text("# the two trained\nann\nbob\n")
    assert run(tmp_path, tiny_llama, "train", "--users", str(listed), "--runner", "threads:2") == 0
    assert "0 trained, 0 failed, 2 fresh (skipped) of 2" in capsys.readouterr().out
    assert run(tmp_path, tiny_llama, "train", "--users", "all", "--runner", "mpi") == 1
    assert "--runner is inline, threads:N, ray or ray:ADDRESS" in capsys.readouterr().err
