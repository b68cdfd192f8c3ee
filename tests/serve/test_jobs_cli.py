"""``pgen jobs``: list, show and cancel read and write the same rows as ``/jobs``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgen.cli.main import main
from pgen.run.jobs import Jobs, jobs_file
from tests.serve.job_works import signal_of


def test_jobs_list_show_cancel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path), "jobs", "list"]) == 1
    assert "no job rows" in capsys.readouterr().err
    jobs = Jobs(jobs_file(tmp_path)).start()
    running = jobs.submit("acme", "train:loop", "alice", "test:loop", {"name": "cli-loop"})
    queued = jobs.submit("globex", "train:slow", "bob", "test:slow", {"name": "cli-q"})
    assert signal_of("cli-loop").wait(120)
    assert main(["--home", str(tmp_path), "jobs", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{running.job_id}  acme  train:loop  alice  running  attempt 1/3")
    assert " step " in lines[0] and "/10000 loss " in lines[0]
    assert lines[1] == f"{queued.job_id}  globex  train:slow  bob  queued  attempt 0/3"
    assert main(["--home", str(tmp_path), "jobs", "list", "--tenant", "globex"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith(queued.job_id)
    assert main(["--home", str(tmp_path), "jobs", "show", running.job_id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["tenant"], shown["status"], shown["total"]) == ("acme", "running", 10_000)
    assert main(["--home", str(tmp_path), "jobs", "cancel", queued.job_id]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "cancelled"
    assert main(["--home", str(tmp_path), "jobs", "cancel", running.job_id]) == 0
    assert json.loads(capsys.readouterr().out)["cancel_requested"] is True
    assert main(["--home", str(tmp_path), "jobs", "show", "nope"]) == 1
    assert "nope" in capsys.readouterr().err
    jobs.shutdown()
