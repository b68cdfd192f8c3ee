"""The deployment page's Ray commands, run as printed but on loopback: ``ray start --head``
(a real Ray head, 2 CPUs, its own temp folder and a free port), then ``pgen train --users
all --runner ray:ADDRESS`` in another process, which joins it. Every user's adapter is
saved whole, and a second run finds them all fresh."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pgen.context.artifacts import ADAPTER_NAME, read_meta
from pgen.context.sqlite import SQLiteStore

from .conftest import documents

pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[2]
USERS = ("ann", "bob", "cat")
READY = "Ray runtime started"  # what `ray start` prints once the head is up


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment() -> dict[str, str]:
    # The head's workers import pgen and run offline, as the command's process does.
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}


def _stop(head: subprocess.Popen[str], temp: str) -> None:
    """Stop this head only: `ray stop` would stop every Ray on the machine."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
    # Ray's own processes name the head's temp folder in their command lines.
    strays = []
    for process in psutil.process_iter(["cmdline"]):
        if any(temp in part for part in process.info["cmdline"] or ()):
            strays.append(process)
            process.kill()
    psutil.wait_procs(strays, timeout=30)


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """``ray start --head`` on loopback; yields its address once it says it is up."""
    temp = tempfile.mkdtemp(prefix="pgray-", dir="/tmp")  # short: Ray's socket paths
    port = _free_port()
    ray = Path(sys.executable).with_name("ray")
    command = [
        str(ray) if ray.exists() else "ray",
        "start",
        "--head",
        "--port",
        str(port),
        "--num-cpus",
        "2",
        "--node-ip-address",
        "127.0.0.1",
        "--include-dashboard=false",
        "--object-store-memory",
        str(100 * 1024 * 1024),
        "--temp-dir",
        temp,
        "--block",
    ]
    head = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_environment(),
        start_new_session=True,  # its own process group: stopped alone, below
    )
    try:
        seen = []
        assert head.stdout is not None
        for line in head.stdout:  # ends if the head dies before it is ready
            seen.append(line)
            if READY in line:
                break
        else:
            pytest.fail("ray start --head ended before it was ready:\n" + "".join(seen[-30:]))
        yield f"127.0.0.1:{port}"
    finally:
        _stop(head, temp)


def _pgen(home: Path, model: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from pgen.cli.main import main; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", code, "--home", str(home), "--text-model", str(model)]
    return subprocess.run(
        [*command, "--threads", "1", *argv],
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=600,
    )


def test_train_joins_a_ray_head_started_with_ray_start(
    ray_head: str, tmp_path: Path, tiny_llama: Path
) -> None:
    with SQLiteStore(tmp_path / "pgen.sqlite") as store:
        for user in USERS:
            store.add(documents(user, f"{user} likes hiking", f"{user} writes short notes"))
    argv = ["train", "--users", "all", "--max-steps", "2", "--runner", f"ray:{ray_head}"]
    first = _pgen(tmp_path, tiny_llama, *argv)
    assert first.returncode == 0, first.stderr[-2000:]
    for user in USERS:
        assert f"trained lora for user '{user}'" in first.stdout
    assert "3 trained, 0 failed, 0 fresh (skipped) of 3" in first.stdout
    with SQLiteStore(tmp_path / "pgen.sqlite") as store:
        for user in USERS:
            folder = store.artifacts(user)[("lora", ADAPTER_NAME)]
            meta = read_meta(folder)
            assert meta is not None and meta.user_id == user
            assert (folder / "adapter_config.json").is_file()
    again = _pgen(tmp_path, tiny_llama, *argv)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 trained, 0 failed, 3 fresh (skipped) of 3" in again.stdout
