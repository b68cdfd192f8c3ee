"""Training fan-out: N users' LoRA adapters trained inline (one process, one thread) and on
a local Ray with 1 and 2 workers (one CPU and one torch thread per task), on the default
text model (SmolLM2-135M-Instruct) with a few steps each. Prints wall time, speed-up over
inline and its efficiency per worker, Ray's start-up time and the resident memory of its
processes (idle, and at the end with the workers' models loaded).

Speed-ups are against the mean of two inline runs, one first and one last (their gap is
the drift of the machine's load over the run). Each run starts from a fresh copy of the
same store (no adapter is fresh). Synthetic documents: only their number and length
matter for cost.

    python benchmarks/training_fanout.py --users 6 --steps 4
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import torch

from pgen.config import Config
from pgen.context import Document
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.run.ray_runner import RayRunner
from pgen.training.registry import TrainRequest
from pgen.training.text_lora import LoraSettings

WORDS = [
    "trail",
    "rain",
    "coffee",
    "battery",
    "screen",
    "novel",
    "garden",
    "river",
    "bread",
    "camera",
    "jazz",
    "bicycle",
]


def make_store(path: Path, users: int, docs: int) -> list[str]:
    names = [f"user{n:03d}" for n in range(users)]
    with SQLiteStore(path) as store:
        for n, user in enumerate(names):
            texts = [
                " ".join(WORDS[(n + d + k) % len(WORDS)] for k in range(40)) for d in range(docs)
            ]
            store.add(
                [
                    Document(user_id=user, doc_id=f"{user}-{d}", kind="note", text=text)
                    for d, text in enumerate(texts)
                ]
            )
    return names


def tree_rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += psutil.Process(pid).memory_info().rss
    return total / 2**20


def ray_pids() -> list[int]:
    me = psutil.Process()
    return [p.pid for p in me.children(recursive=True)]


def one_run(template: Path, names: list[str], settings: LoraSettings, runner: Any) -> float:
    home = Path(tempfile.mkdtemp(prefix="fanout-"))
    shutil.copy(template, home / "pgen.sqlite")
    config = Config(home=home, threads=1)
    if isinstance(runner, RayRunner):
        runner.open_engine = partial(Engine.open, config)
    requests = [TrainRequest(u, "lora", settings=settings) for u in names]
    with Engine.open(config) as engine:
        started = time.perf_counter()
        done = engine.fan_out(requests, runner, retries=0)
        seconds = time.perf_counter() - started
    assert not done.failed, done.failed
    assert len(done.results) == len(names)
    shutil.rmtree(home)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=6)
    parser.add_argument("--docs", type=int, default=8, help="documents per user")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per user")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import ray

    settings = LoraSettings(max_steps=args.steps, batch_size=2, progress=False)
    folder = Path(tempfile.mkdtemp(prefix="fanout-store-"))
    template = folder / "pgen.sqlite"
    names = make_store(template, args.users, args.docs)
    rows = [("inline (1 process, 1 thread)", 1, one_run(template, names, settings, None), "")]
    for workers in (1, 2):
        started = time.perf_counter()
        ray.init(
            num_cpus=workers,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            object_store_memory=100 * 2**20,
            logging_level="warning",
        )
        start_s = time.perf_counter() - started
        idle = tree_rss_mb(ray_pids())
        runner = RayRunner(partial(Engine.open, Config()), group_size=1)
        seconds = one_run(template, names, settings, runner)
        busy = tree_rss_mb(ray_pids())
        ray.shutdown()
        note = f"ray.init {start_s:.1f} s; Ray RSS idle {idle:.0f} MB, after {busy:.0f} MB"
        rows.append((f"ray, {workers} worker(s)", workers, seconds, note))
    # Inline again, last: how much the machine's load drifted over the run.
    rows.append(("inline again (drift)", 1, one_run(template, names, settings, None), ""))
    shutil.rmtree(folder)
    base = (rows[0][2] + rows[-1][2]) / 2  # the mean of the two inline runs
    print(f"speed-up against the mean of the two inline runs ({base:.1f} s)")
    print(
        f"{args.users} users x {args.docs} docs, {args.steps} LoRA steps each (batch 2), "
        f"SmolLM2-135M, torch threads 1 per process, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print("| runner | workers | wall s | s/user | speed-up | efficiency/worker | notes |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, workers, seconds, note in rows:
        speed = base / seconds
        print(
            f"| {name} | {workers} | {seconds:.1f} | {seconds / args.users:.1f} | "
            f"{speed:.2f} | {speed / workers:.2f} | {note} |"
        )


if __name__ == "__main__":
    main()
