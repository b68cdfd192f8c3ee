"""The README stays true: every code block either runs as written (offline, on the default
models, in an empty folder) or says right above it what it needs, and its strategy table
is the registry's.

A block is marked by the line right above it:

- ``<!-- readme-test: session NAME -->``: run. The blocks of one session run in README
  order, in one empty folder and one ``bash -euo pipefail`` (shell blocks as printed,
  Python blocks fed to the environment's ``python`` as a reader would paste them), so a
  later block uses the files, users and shell variables of an earlier one.
- ``<!-- readme-test: records -->``: JSONL records, read as a file by pgen's own reader.
- ``<!-- readme-test: pgen.toml -->``: a settings file, loaded as ``./pgen.toml``.
- ``<!-- readme-test: diagram -->``: a picture, no commands.
- ``Not run by the tests: needs ...``: one plain line saying what an empty folder lacks.

Any other block fails the test, so a new placeholder block cannot slip in unnoticed."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pgen.config import load_config
from pgen.context.ingest import read_records
from pgen.personalize.registry import markdown_table
from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
MARKER = re.compile(r"<!-- readme-test: (session (\w+)|records|pgen\.toml|diagram) -->")
NOT_RUN = re.compile(r"Not run by the tests: needs \S.*")
SHELLS = {"sh", "bash"}


@dataclass(frozen=True)
class Block:
    line: int  # where the block's fence opens, 1-based
    language: str
    code: str
    label: str  # the last non-blank line above the fence


def blocks() -> list[Block]:
    found = []
    for fence in FENCE.finditer(README):
        above = [line for line in README[: fence.start()].splitlines() if line.strip()]
        line = README.count("\n", 0, fence.start()) + 1
        found.append(Block(line, fence.group(1), fence.group(2), above[-1] if above else ""))
    return found


def marked(kind: str) -> list[Block]:
    return [b for b in blocks() if b.label == f"<!-- readme-test: {kind} -->"]


def sessions() -> dict[str, list[Block]]:
    """Each session's blocks, in README order."""
    by_name: dict[str, list[Block]] = {}
    for block in blocks():
        found = MARKER.fullmatch(block.label)
        if found and found.group(2):
            by_name.setdefault(found.group(2), []).append(block)
    return by_name


def _env(port: int) -> dict[str, str]:
    """What `source .venv/bin/activate` does, as the README tells the reader: the venv's bin
    first on PATH (and VIRTUAL_ENV named); nothing else is made for the examples. ``PORT``:
    a free loopback port, which the service session serves on (it says so)."""
    venv_bin = Path(sys.executable).parent
    return {
        **os.environ,
        "PATH": f"{venv_bin}:{os.environ['PATH']}",
        "VIRTUAL_ENV": str(venv_bin.parent),
        "PGEN_THREADS": "1",
        "PORT": str(port),
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def script(session: list[Block]) -> str:
    """One shell script of the session's blocks, each as printed. A Python block goes to
    ``python`` on stdin, as pasted into the interpreter in the same shell."""
    parts = []
    for block in session:
        parts.append(f"echo '--- README.md line {block.line}' >&2")
        if block.language == "python":
            assert "README_PYTHON" not in block.code
            parts.append(f"python - <<'README_PYTHON'\n{block.code}README_PYTHON")
        else:
            parts.append(block.code)
    return "\n".join(parts) + "\n"


def _first(out: str) -> None:
    assert "u1" in out and "1 users in pgen-home/pgen.sqlite" in out
    assert "[output " in out and out.count("deleted user u1") == 2
    assert "trained lora for user 'u1'" in out and "trained dpo for user 'u1'" in out
    assert "user 'u1': lora adapter stale" in out and "retrained 1 stale adapters" in out


def _engine(out: str) -> None:
    lines = out.splitlines()
    assert lines[0].startswith("d1 ")  # the climb is what "mountain climb" finds
    assert "'documents': 2" in lines[-1] and "'outputs': 1" in lines[-1]


def _serve(out: str) -> None:
    assert '"ready":true' in out and '"written":2' in out
    assert '"output_id":' in out and '"documents":["m1"]' in out  # the curl generate
    assert "'documents': ['m1']" in out  # the OpenAI client's reply, provenance under pgen


CHECKS: dict[str, Callable[[str], None]] = {"first": _first, "engine": _engine, "serve": _serve}


def test_the_strategy_table_is_the_registry() -> None:
    assert markdown_table() in README


def test_every_block_runs_or_says_what_it_needs() -> None:
    for block in blocks():
        where = f"README.md line {block.line}"
        found = MARKER.fullmatch(block.label)
        assert found or NOT_RUN.fullmatch(block.label), (
            f"{where}: a block must run (<!-- readme-test: session NAME -->) or say right "
            "above it 'Not run by the tests: needs ...'"
        )
        if found and found.group(2):
            assert block.language in SHELLS | {"python"}, f"{where}: a session runs sh or python"
            assert ".venv/" not in block.code and "/bin/pgen" not in block.code, where
        if found and found.group(1) == "diagram":
            assert "pgen " not in block.code and "$" not in block.code, f"{where}: not a picture"
    assert set(sessions()) == set(CHECKS), "each README session has its checks here"
    assert len(marked("records")) == len(marked("pgen.toml")) == 1


def test_the_record_types_read_as_a_file(tmp_path: Path) -> None:
    (block,) = marked("records")
    path = tmp_path / "records.jsonl"
    path.write_text(block.code, encoding="utf-8")
    records = read_records(path)
    kinds = [type(r.record).__name__ for r in records]
    assert len(records) == len(block.code.splitlines()) == 6
    assert kinds == ["User", "Document", "Item", "Interaction", "Subject", "Feedback"]


def test_the_settings_table_loads_as_pgen_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (block,) = marked("pgen.toml")
    (tmp_path / "pgen.toml").write_text(block.code, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("PGEN_")]:
        monkeypatch.delenv(name)
    config = load_config()
    assert config.text_model == {
        "provider": "openai",
        "settings": {"model": "llama-3-8b", "base_url": "http://127.0.0.1:8000/v1"},
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_a_session_runs_as_written(name: str, tmp_path: Path) -> None:
    # An empty folder, the environment activated: nothing is created for the session.
    assert not any(tmp_path.iterdir())
    out, err = tmp_path.parent / f"{name}.out", tmp_path.parent / f"{name}.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        run = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script(sessions()[name])],
            cwd=tmp_path,
            env=_env(_free_port()),
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group: a server it left is ended below
        )
        try:
            code = run.wait(timeout=900)
        finally:
            with contextlib.suppress(ProcessLookupError):  # the group may be gone already
                os.killpg(run.pid, signal.SIGKILL)
    errors = err.read_text()
    assert code == 0, errors[-3000:]
    assert "Traceback" not in errors
    CHECKS[name](out.read_text())
