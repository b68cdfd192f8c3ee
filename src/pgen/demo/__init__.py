"""`pgen demo`: the same instruction for users whose writing differs, with and without
personalization, side by side, with the context items each output used."""

from __future__ import annotations

import shutil
import tempfile
import textwrap
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path

from pgen.config import Config
from pgen.engine import Engine
from pgen.models.base import GenerationSettings
from pgen.personalize import TextRequest
from pgen.results import Generation

INSTRUCTION = "Write a short post about how you spent your weekend."
STRATEGIES = ("none", "rag", "profile")
COLUMN = 38


def sample_path() -> Path:
    return Path(str(resources.files("pgen.demo").joinpath("sample.jsonl")))


def provenance_lines(generation: Generation) -> list[str]:
    """What shaped one output, as short lines: the context used, the adapter, the notes."""
    shaped = generation.provenance
    used = shaped.documents or shaped.items or shaped.subjects
    lines = [f"context used: {', '.join(used) or 'none'}"]
    adapter = generation.details.get("adapter")
    if adapter:
        lines.append(f"adapter: {adapter}")
    return lines + [f"note: {note}" for note in shaped.notes]


def side_by_side(
    generations: list[Generation], width: int = COLUMN, *, provenance: bool = False
) -> str:
    """Columns of wrapped text, one per generation, headed by the strategy name (and,
    ``provenance``: followed by what shaped each)."""
    columns: list[list[str]] = []
    for g in generations:
        column = [g.strategy.upper(), "-" * width, *textwrap.wrap(g.text or "(empty)", width)]
        if provenance:
            column.append("")
            for said in provenance_lines(g):
                column += textwrap.wrap(said, width, subsequent_indent="  ")
        columns.append(column)
    height = max(len(c) for c in columns)
    rows = []
    for line in range(height):
        cells = [c[line] if line < len(c) else "" for c in columns]
        rows.append(" | ".join(cell.ljust(width) for cell in cells).rstrip())
    return "\n".join(rows)


def run_demo(config: Config, *, max_new_tokens: int = 64) -> str:
    """Ingest the sample into a throwaway store and print each user's outputs."""
    folder = Path(tempfile.mkdtemp(prefix="pgen-demo-"))
    started = time.perf_counter()
    engine = Engine.open(replace(config, store=folder / "demo.sqlite"))
    try:
        stats = engine.ingest(sample_path())
        users = [u.user_id for u in engine.users()]
        print(f"Ingested {sum(stats.seen.values())} records for {len(users)} users: {users}")
        print(f'Instruction for everyone: "{INSTRUCTION}"\nLoading {config.text_model}...')
        requests = [
            # hybrid: BM25's word matches fused with MiniLM's meaning, so a user whose posts
            # share no word with the instruction still gets their closest ones.
            TextRequest(
                user_id=user, instruction=INSTRUCTION, strategy=strategy, k=2, retriever="hybrid"
            )
            for user in users
            for strategy in STRATEGIES
        ]
        settings = GenerationSettings(max_new_tokens=max_new_tokens, repetition_penalty=1.15)
        outputs = engine.generate_many(requests, settings, progress=True)
        report = []
        for index, user in enumerate(users):
            mine = outputs[index * len(STRATEGIES) : (index + 1) * len(STRATEGIES)]
            profile = engine.user(user, limit=1).user.profile
            who = ", ".join(f"{name}: {value}" for name, value in sorted(profile.items()))
            report.append(f"\n=== user {user} ===  ({who or 'no profile'})\n{side_by_side(mine)}")
            for generation in mine[1:]:
                titles = [
                    d.title or d.doc_id
                    for d in engine.documents(user, generation.provenance.documents)
                ]
                used = ", ".join(titles) or "nothing"
                notes = "".join(f" ({note})" for note in generation.provenance.notes)
                report.append(f"  {generation.strategy} used: {used}{notes}")
                if "summary" in generation.details:
                    report.append(f"  profile summary: {generation.details['summary']}")
        report.append(
            f"\nDone in {time.perf_counter() - started:.0f} s with {engine.text_model.name}."
        )
        text = "\n".join(report)
        print(text)
        return text
    finally:
        engine.close()
        shutil.rmtree(folder, ignore_errors=True)
