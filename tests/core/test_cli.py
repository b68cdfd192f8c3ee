"""The command line as a new user meets it: flags anywhere, help with defaults, values
checked with clear one-line errors, output that reads well in a pipe."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pgen.cli.main import build_parser, main, version

PGEN = [sys.executable, "-m", "pgen.cli.main"]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subparsers(sub).items()})
    return found


@pytest.fixture
def records(tmp_path: Path) -> Path:
    path = tmp_path / "context.jsonl"
    lines = [{"type": "user", "user_id": "u1", "profile": {"job": "chef"}}]
    lines += [
        {"type": "document", "user_id": "u1", "doc_id": f"d{i:02d}", "text": f"post {i}"}
        for i in range(18)
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_every_flag_has_help_and_help_shows_defaults() -> None:
    parser = build_parser()
    for name, sub in _subparsers(parser).items():
        for action in sub._actions:
            if action.dest in ("help", "command", "bench"):
                continue
            assert action.help, f"pgen {name} {action.option_strings or action.dest}: no help"
        text = sub.format_help()
        assert "%%" not in text, f"pgen {name} --help shows a doubled percent sign"
    generate = _subparsers(parser)["generate"].format_help()
    assert "(default: rag)" in generate and "(default: 4)" in generate


def test_version_and_help_load_no_torch() -> None:
    code = (
        "import sys\nfrom pgen.cli.main import build_parser\nbuild_parser().format_help()\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', "
        "'diffusers', 'peft', 'trl', 'fastapi')]\nprint(heavy)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
    shown = subprocess.run([*PGEN, "--version"], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == f"pgen {version()}"


def test_global_options_work_after_the_subcommand(
    records: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    assert main(["ingest", str(records), "--home", str(home)]) == 0
    assert (home / "pgen.sqlite").is_file()
    capsys.readouterr()
    assert main(["users", "show", "u1", "--home", str(home), "--limit", "10"]) == 0
    out = capsys.readouterr().out
    assert "10 of 18 documents" in out and "[d17]" in out and "[d07]" not in out
    assert main(["--home", str(home), "users"]) == 0
    assert "1 users in" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "--user", "u1", "--k", "0", "hi"], "--k: must be at least 1, got 0"),
        (["generate", "--user", "u1", "--k", "-1", "hi"], "--k: must be at least 1, got -1"),
        (["users", "show", "u1", "--limit", "0"], "--limit: must be at least 1, got 0"),
        (["recommend", "--user", "u1", "--k", "-1"], "--k: must be at least 1, got -1"),
    ],
)
def test_bad_values_are_refused_by_name(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_bad_paths_and_settings_are_one_line_errors(
    records: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(tmp_path)]
    assert main([*home, "--config", str(tmp_path / "nope.toml"), "users"]) == 1
    assert "nope.toml: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*home, "ingest", str(tmp_path)])
    assert "is a directory" in capsys.readouterr().err
    assert main([*home, "ingest", str(records)]) == 0
    capsys.readouterr()
    for flag in ("--text-model", "--embed-model"):
        code = main(
            [*home, flag, "/nope/model", "generate", "--user", "u1", "--retriever", "dense", "hi"]
        )
        err = capsys.readouterr().err
        assert code == 1 and "'/nope/model': no such file or folder" in err
        assert len(err.strip().splitlines()) == 1
    assert main([*home, "generate", "--user", "u1", "  "]) == 1
    assert "the instruction is empty" in capsys.readouterr().err
    assert main(["--store", str(tmp_path / "typo" / "pgen.sqlite"), "users"]) == 1
    assert "no such folder" in capsys.readouterr().err and not (tmp_path / "typo").exists()
    assert main(["--store", str(tmp_path), "users"]) == 1
    assert "is a directory" in capsys.readouterr().err
    assert main([*home, "bench", "text", "--task", "LaMP_2", "--data", str(records)]) == 1
    assert "does not look like a LaMP questions file" in capsys.readouterr().err
    assert main([*home, "--threads", "-1", "users"]) == 1
    assert "threads must be a finite number >= 0" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(records: Path, tmp_path: Path) -> None:
    home = ["--home", str(tmp_path)]
    subprocess.run([*PGEN, *home, "ingest", str(records)], check=True, capture_output=True)
    listing = subprocess.Popen(
        [*PGEN, *home, "users", "show", "u1", "--limit", "18"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert listing.stdout is not None
    listing.stdout.readline()
    listing.stdout.close()  # what `| head -1` does
    assert listing.wait(timeout=60) == 0
    assert listing.stderr is not None and b"Broken pipe" not in listing.stderr.read()
