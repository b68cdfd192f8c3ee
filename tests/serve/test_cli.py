"""``pgen keys create|list|revoke`` and ``pgen serve``'s help, without the web stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pgen.cli.main import main
from pgen.serve.auth import key_path
from pgen.serve.auth.sqlite_keys import SqliteKeyStore
from tests.serve.server import service_config


def test_keys_create_list_revoke(
    tmp_path: Path, tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(tmp_path)]
    assert main(["keys", "create", "--tenant", "acme", "--name", "web", *home]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("pgen_")
    keys = SqliteKeyStore(key_path(service_config(tmp_path, tiny_llama)))
    who = keys.verify(token)
    assert who is not None and who.tenant == "acme" and not who.admin
    assert main(["keys", "create", "--admin", *home]) == 0
    capsys.readouterr()
    assert main(["keys", "list", *home]) == 0
    listing = capsys.readouterr().out
    assert "acme" in listing and "(admin)" in listing and token not in listing
    assert main(["keys", "revoke", who.key_id, *home]) == 0
    assert keys.verify(token) is None
    capsys.readouterr()
    # The key file holds no secret: nothing in it opens the key.
    assert (
        token[len("pgen_") + 16 + 1 :].encode()  # the secret (it may hold '_' itself)
        not in key_path(service_config(tmp_path, tiny_llama)).read_bytes()
    )
    # --quiet prints the key alone, so a shell can capture it: KEY=$(pgen keys create ...).
    assert main(["keys", "create", "--tenant", "acme", "--quiet", *home]) == 0
    quiet = capsys.readouterr().out
    assert quiet.count("\n") == 1 and quiet.startswith("pgen_")
    again = keys.verify(quiet.strip())
    assert again is not None and again.tenant == "acme"
    assert main(["keys", "create", *home]) == 1  # neither --tenant nor --admin
    assert main(["keys", "create", "--tenant", "Bad Name!", *home]) == 1
    assert "tenant" in capsys.readouterr().err
    keys.close()


def test_the_cli_loads_no_web_stack_or_torch_for_help() -> None:
    code = (
        "import sys, pgen.cli.main\n"
        "try:\n    pgen.cli.main.main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'fastapi', 'uvicorn') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--workers" in run.stdout
    assert run.stdout.strip().splitlines()[-1] == "[]"
