"""Piper's runtime is GPL-3.0: an optional extra that pgen never imports unless a Piper
voice speaks. Importing the package, the engine, the service and the CLI, and opening an
engine, must leave it (and the ASR stack) unloaded."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

CHECK = """
import sys
from pathlib import Path
import tempfile
import pgen, pgen.engine, pgen.serve.app, pgen.cli.main, pgen.run.speech
from pgen.config import Config
from pgen.engine import Engine
with Engine.open(Config(home=Path(tempfile.mkdtemp()))) as engine:
    engine.ingest([__import__("pgen.context.records", fromlist=["User"]).User(user_id="u")])
loaded = sorted(m for m in ("piper", "onnxruntime", "faster_whisper", "ctranslate2") if m in sys.modules)
print(",".join(loaded))
"""


def test_piper_and_the_asr_stack_are_not_imported_by_default() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == ""
