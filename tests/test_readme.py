"""The README stays true: its marked shell and Python examples run as written (offline, on
the default models, in an empty folder), and its strategy table is the registry's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pgen.personalize.registry import markdown_table
from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def example(kind: str) -> str:
    """The code block right after ``<!-- readme-test: KIND -->``."""
    found = re.search(rf"<!-- readme-test: {kind} -->\n```\w+\n(.*?)\n```", README, re.DOTALL)
    assert found, f"README has no {kind} example marked for testing"
    return found.group(1)


def _env() -> dict[str, str]:
    """What `source .venv/bin/activate` does, as the README tells the reader: the venv's bin
    first on PATH (and VIRTUAL_ENV named); nothing else is made for the examples."""
    venv_bin = Path(sys.executable).parent
    return {
        **os.environ,
        "PATH": f"{venv_bin}:{os.environ['PATH']}",
        "VIRTUAL_ENV": str(venv_bin.parent),
        "PGEN_THREADS": "1",
    }


def test_the_strategy_table_is_the_registry() -> None:
    assert markdown_table() in README


@pytest.mark.slow
def test_the_shell_example_runs_as_written(tmp_path: Path) -> None:
    # An empty folder, the environment activated: nothing is created for the example.
    assert not any(tmp_path.iterdir())
    assert ".venv/" not in example("shell") and "/bin/pgen" not in example("shell")
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", example("shell")],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "u1" in run.stdout and "1 users in pgen-home/pgen.sqlite" in run.stdout
    assert "[output " in run.stdout and "deleted user u1" in run.stdout
    assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_the_python_example_runs_as_written(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", example("python")],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("d1 ")  # the climb is what "mountain climb" finds
    assert "'documents': 2" in lines[-1] and "'outputs': 1" in lines[-1]
