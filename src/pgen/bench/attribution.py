"""``pgen bench attribution``: is an output recognizably its user's?

Blog authors (the Blog Authorship Corpus layout: one ``ID.gender.age.industry.sign.xml``
file per author, ``<date>``/``<post>`` pairs) become users: the file name's attributes are
the profile, each author's last ``HELD_OUT`` posts are held out, the rest (the most recent
``max_docs``) are ingested as documents. Every strategy then writes the same instructions
for every author. An output is **attributed** to the author whose held-out posts it is
closest to: MiniLM cosine (the engine's embedder) to the centroid of each author's held-out
posts, and BM25 with each author's held-out posts as one document. Reported per strategy:
the share of outputs attributed to their own author (chance is 1/N), a 95% bootstrap
interval, and a paired permutation test against ``none`` on the same (author,
instruction) examples. The held-out posts never enter the store, so no strategy sees them.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from pgen.context.records import Document, User
from pgen.engine import Engine
from pgen.evaluate.metrics.base import Metric, mean_of_rows, mean_rows
from pgen.evaluate.metrics.copying import copied
from pgen.evaluate.run_record import run_record
from pgen.evaluate.stats import bootstrap, paired_test
from pgen.models.base import GenerationSettings
from pgen.personalize import TextRequest
from pgen.usermodel.bm25 import Bm25Index

HELD_OUT = 5
MIN_WORDS = 8  # posts shorter than this say too little about their author to count
INSTRUCTIONS = (
    "Write a short bio.",
    "Write a short blog post about your week.",
)
BASELINE = "none"
CEILING = "own posts (ceiling)"  # the authors' own recent posts, scored like outputs
WORDS_PER_TOKEN = 0.75  # English words per model token, to cut a post to an output's length
ADAPTER_STRATEGIES = ("lora+rag", "lora")
HIT_RATE = Metric(
    "attribution",
    True,
    lambda preds, golds: mean_rows([float(p == g) for p, g in zip(preds, golds, strict=True)]),
    mean_of_rows,
    "share of outputs closest to their own author's held-out posts",
)
POST = re.compile(r"<date>(.*?)</date>\s*<post>(.*?)</post>", re.S)


@dataclass
class Author:
    user_id: str
    profile: dict[str, Any]
    documents: list[Document]
    held_out: list[str] = field(default_factory=list)


def _date(text: str) -> datetime | None:
    try:
        return datetime.strptime(text.strip(), "%d,%B,%Y")
    except ValueError:
        return None  # some files name months in other languages


def read_author(path: Path, max_docs: int) -> Author | None:
    """An author from one XML file, or None when it has too few usable posts."""
    parts = path.name.split(".")
    if len(parts) < 6:
        raise ValueError(f"{path}: expected ID.gender.age.industry.sign.xml")
    author_id, gender, age, industry, sign = parts[:5]
    raw = path.read_bytes().decode("utf-8", errors="replace")
    posts = []
    for position, (when, body) in enumerate(POST.findall(raw)):
        text = " ".join(html.unescape(body).split())
        if len(text.split()) >= MIN_WORDS:
            posts.append((_date(when), position, text))
    if len(posts) < HELD_OUT + 2:
        return None
    # Oldest first (undated posts keep their place in the file): the last ones are held out.
    posts.sort(key=lambda p: (p[0] or datetime.min, p[1]))
    user_id = f"blogger-{author_id}"
    profile: dict[str, Any] = {"gender": gender, "age": int(age), "sign": sign}
    if industry != "indUnk":  # the corpus's "industry unknown"
        profile["industry"] = industry
    kept = posts[:-HELD_OUT][-max_docs:]
    documents = [
        Document(user_id=user_id, doc_id=f"{user_id}-{n:04d}", kind="blog", text=text, time=when)
        for n, (when, _, text) in enumerate(kept)
    ]
    return Author(user_id, profile, documents, [text for *_, text in posts[-HELD_OUT:]])


def load_authors(folder: Path, users: int, max_docs: int, skip: int = 0) -> list[Author]:
    """The first ``users`` authors (by file name) with enough posts, after the first
    ``skip`` such authors (a tuning set apart from the reported one)."""
    files = sorted(folder.glob("*.xml"))
    if not files:
        raise ValueError(f"{folder}: no author .xml files")
    authors: list[Author] = []
    for path in files:
        author = read_author(path, max_docs)
        if author is not None:
            if skip:
                skip -= 1
                continue
            authors.append(author)
        if len(authors) == users:
            break
    if len(authors) < 2:
        raise ValueError(f"{folder}: attribution needs at least 2 authors with enough posts")
    return authors


def data_hash(folder: Path, authors: list[Author]) -> str:
    digest = hashlib.sha256()
    for author in authors:
        for path in sorted(folder.glob(f"{author.user_id.removeprefix('blogger-')}.*.xml")):
            digest.update(path.read_bytes())
    return digest.hexdigest()


def attribute_minilm(engine: Engine, outputs: list[str], authors: list[Author]) -> np.ndarray:
    """(outputs, authors) cosine of each output to each author's held-out centroid."""
    centroids = []
    for author in authors:
        mean = engine.embedder.embed(author.held_out).mean(axis=0)
        centroids.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
    vectors = engine.embedder.embed([text or " " for text in outputs])
    return np.asarray(vectors @ np.stack(centroids).T, dtype=np.float64)


def attribute_bm25(outputs: list[str], authors: list[Author]) -> np.ndarray:
    """(outputs, authors) BM25 of each output (as the query) against each author's held-out
    posts (as one document); 0 where nothing matches."""
    index = Bm25Index()
    index.add_many([(a.user_id, " ".join(a.held_out)) for a in authors])
    column = {a.user_id: n for n, a in enumerate(authors)}
    scores = np.zeros((len(outputs), len(authors)))
    for row, text in enumerate(outputs):
        for user_id, score in index.search(text, len(authors)):
            scores[row, column[user_id]] = score
    return scores


def own_rank(scores: np.ndarray, own: int) -> int:
    """1 when the own author scores highest; ties (and all-zero rows) count against it."""
    return int(np.sum(scores >= scores[own])) if scores[own] > 0 else len(scores)


def generation_settings(max_new_tokens: int, no_copy_ngram_size: int = 0) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=max_new_tokens,
        repetition_penalty=1.15,
        no_copy_ngram_size=no_copy_ngram_size,
    )


def run_attribution(
    engine: Engine,
    authors: list[Author],
    strategies: list[str],
    instructions: list[str],
    *,
    k: int = 2,
    max_new_tokens: int = 96,
    batch_size: int = 8,
    train_adapters: bool = False,
    frames: tuple[str, ...] = ("auto",),
    no_copy_ngram_size: int = 0,
    progress: bool = False,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Per-example rows (one per strategy × frame × author × instruction) and notes on
    skips. With more than one frame, a row's setting is "strategy (frame)"; the baseline
    ``none`` has no frame."""
    records: list[Any] = []
    for author in authors:
        records += [User(user_id=author.user_id, profile=author.profile), *author.documents]
    engine.store.add(records)
    notes = []
    if any(s in ADAPTER_STRATEGIES for s in strategies):
        if train_adapters:
            from pgen.training.registry import TrainRequest

            engine.train_many([TrainRequest(a.user_id, "lora") for a in authors])
        else:
            skipped = [s for s in strategies if s in ADAPTER_STRATEGIES]
            strategies = [s for s in strategies if s not in ADAPTER_STRATEGIES]
            notes.append(
                f"skipped {', '.join(skipped)}: needs a trained adapter per author "
                "(--train-adapters; minutes per author on a CPU)"
            )
    examples = [(a, i) for a in authors for i in instructions]
    settings = [(s, f) for s in strategies for f in (["auto"] if s == BASELINE else frames)]
    requests = [
        TextRequest(author.user_id, instruction, strategy=strategy, k=k, frame=frame)
        for strategy, frame in settings
        for author, instruction in examples
    ]
    outputs = engine.generate_many(
        requests,
        generation_settings(max_new_tokens, no_copy_ngram_size),
        save=False,
        batch_size=batch_size,
        progress=progress,
    )
    entries = []
    for request, output in zip(requests, outputs, strict=True):
        used = engine.store.documents(request.user_id, output.provenance.documents)
        setting = request.strategy
        if len(frames) > 1 and request.strategy != BASELINE:
            setting = f"{request.strategy} ({request.frame})"
        entries.append(
            {
                "strategy": setting,
                "frame": output.details.get("frame", "none"),
                "user": request.user_id,
                "instruction": request.instruction,
                "output": output.text,
                "documents": output.provenance.documents,
                "notes": output.provenance.notes,
                "copied": round(copied(output.text, [d.text for d in used]), 4),
            }
        )
    entries += ceiling_entries(examples, instructions, max_new_tokens)
    return score_entries(engine, entries, authors), notes


def ceiling_entries(
    examples: list[tuple[Author, str]], instructions: list[str], max_new_tokens: int
) -> list[dict[str, Any]]:
    """What the measure gives the authors' own writing: for the i-th instruction, the
    author's i-th most recent ingested post, cut to about the outputs' length. Real posts
    by the very author are not all closest to that author's held-out posts (topics
    change), so no strategy should be expected far above this row."""
    words = max(1, int(max_new_tokens * WORDS_PER_TOKEN))
    entries = []
    for author, instruction in examples:
        position = instructions.index(instruction) % len(author.documents)
        post = author.documents[-1 - position]
        entries.append(
            {
                "strategy": CEILING,
                "frame": "none",
                "user": author.user_id,
                "instruction": instruction,
                "output": " ".join(post.text.split()[:words]),
                "documents": [post.doc_id],
                "notes": [],
                "copied": 1.0,  # the author's own words, by construction
            }
        )
    return entries


def score_entries(
    engine: Engine, entries: list[dict[str, Any]], authors: list[Author]
) -> list[dict[str, Any]]:
    """Each entry with its rank, hit, own score and closest author, by each reading."""
    texts = [entry["output"] for entry in entries]
    column = {a.user_id: n for n, a in enumerate(authors)}
    readings = {
        "minilm": attribute_minilm(engine, texts, authors),
        "bm25": attribute_bm25(texts, authors),
    }
    rows = []
    for n, entry in enumerate(entries):
        own = column[entry["user"]]
        row = dict(entry)
        for name, scores in readings.items():
            rank = own_rank(scores[n], own)
            others = np.delete(scores[n], own)
            row[f"{name}_rank"] = rank
            row[f"{name}_hit"] = rank == 1
            row[f"{name}_own"] = round(float(scores[n, own]), 4)
            row[f"{name}_best_other"] = round(float(others.max()), 4)
            row[f"{name}_closest"] = authors[int(np.argmax(scores[n]))].user_id
        rows.append(row)
    return rows


def summarize(rows: list[dict[str, Any]], n_authors: int) -> list[dict[str, Any]]:
    """Per strategy and reading: hit rate, 95% CI, mean own rank, and the paired test
    against ``none`` (when it ran) on the same examples."""
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    table = []
    for strategy in strategies:
        mine = [r for r in rows if r["strategy"] == strategy]
        line: dict[str, Any] = {"strategy": strategy, "n": len(mine), "chance": 1 / n_authors}
        line["copied"] = float(np.mean([r.get("copied", 0.0) for r in mine]))
        for reading in ("minilm", "bm25"):
            hits = mean_rows([float(r[f"{reading}_hit"]) for r in mine])
            estimate = bootstrap(HIT_RATE, hits)
            line[reading] = estimate.as_dict()
            line[f"{reading}_mean_rank"] = float(np.mean([r[f"{reading}_rank"] for r in mine]))
            # How far the own author is from the closest other (> 0: attributed right).
            line[f"{reading}_margin"] = float(
                np.mean([r[f"{reading}_own"] - r[f"{reading}_best_other"] for r in mine])
            )
            if strategy != BASELINE and BASELINE in strategies:
                base = [r for r in rows if r["strategy"] == BASELINE]
                base_hits = mean_rows([float(r[f"{reading}_hit"]) for r in base])
                line[f"{reading}_vs_none"] = paired_test(HIT_RATE, hits, base_hits).as_dict()
        table.append(line)
    return table


def markdown(table: list[dict[str, Any]]) -> str:
    head = (
        "| strategy | n | MiniLM hit rate [95% CI] | Δ vs none (p) | mean rank | cos margin "
        "| BM25 hit rate [95% CI] | Δ vs none (p) | mean rank | copied |\n"
        "| --- | ---: | --- | --- | ---: | ---: | --- | --- | ---: | ---: |"
    )
    lines = [head]
    for line in table:
        cells = [line["strategy"], str(line["n"])]
        for reading in ("minilm", "bm25"):
            est = line[reading]
            cells.append(f"{est['value']:.3f} [{est['low']:.3f}, {est['high']:.3f}]")
            test = line.get(f"{reading}_vs_none")
            cells.append(f"{test['delta']:+.3f} (p={test['p_value']:.3f})" if test else "—")
            cells.append(f"{line[f'{reading}_mean_rank']:.2f}")
            if reading == "minilm":
                cells.append(f"{line['minilm_margin']:+.3f}")
        cells.append(f"{line['copied']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(
    out: Path, rows: list[dict[str, Any]], table: list[dict[str, Any]], record: dict[str, Any]
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "examples.jsonl").open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    summary = {"record": record, "table": table}
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out / "report.md").write_text(markdown(table) + "\n", encoding="utf-8")


def record_of(
    folder: Path, authors: list[Author], settings: dict[str, Any], engine: Engine
) -> dict[str, Any]:
    return run_record(
        task="attribution",
        data=[folder],
        data_sha256=data_hash(folder, authors),
        settings=settings,
        model={"text": engine.text_model.name, "embedder": engine.embedder.model_id},
    )
