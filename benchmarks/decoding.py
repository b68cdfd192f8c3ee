"""Decoding settings against loops: repetition penalty x no-repeat n-gram size, measured on
real users (Amazon All Beauty reviews, blog authors), ``rag`` prompts, greedy.

* **Amazon review writing**: a reviewer's last review is the gold; the instruction names
  the product, rating and summary (``pgen bench text --task amazon_review``'s loader, its
  variant-duplicate and leakage guards included); the earlier reviews are the profile.
* **Blog posts**: an author's last post of 40+ words is the gold; the instruction gives
  its first sentence and asks for the rest in the author's style; the earlier posts are
  the profile. ROUGE-L is against the rest of the post (the given sentence left out).

Loop: a reply in which one sentence (normalized, 3+ words), or one 8-word sequence,
occurs 3 or more times: the "I'm so glad you're here." sixteen times that issue 16 saw.
A no-repeat n-gram ban removes loops by construction, so the question it answers is
what it costs in ROUGE-L and readability (read the examples the script prints).

    python benchmarks/decoding.py --n 20 --threads 1
    python benchmarks/decoding.py --model /path/to/model.gguf --n 20
"""

from __future__ import annotations

import argparse
import html
import json
import re
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from pgen.config import Config
from pgen.context import Document, User
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.evaluate.benchmarks.amazon import load_amazon
from pgen.evaluate.metrics.overlap import rouge_scores
from pgen.models.base import Chat, GenerationSettings, TextModel
from pgen.models.text import load_text_model
from pgen.personalize import TextRequest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PENALTIES = (1.0, 1.1, 1.2, 1.3)
NO_REPEAT = (0, 3, 4)
LOOP_TIMES = 3  # a sentence or 8-gram this many times is a loop
LOOP_NGRAM = 8
SENTENCE = re.compile(r"[^.!?\n]+")
WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Prompt:
    task: str
    user_id: str
    instruction: str
    query: str
    gold: str


def loops(text: str) -> bool:
    """Some sentence (3+ words) or some 8-word sequence occurs LOOP_TIMES or more times."""
    words = WORD.findall(text.lower())
    sentences = [" ".join(WORD.findall(s.lower())) for s in SENTENCE.findall(text)]
    sentence_counts = Counter(s for s in sentences if len(s.split()) >= 3)
    grams = Counter(tuple(words[i : i + LOOP_NGRAM]) for i in range(len(words) - LOOP_NGRAM + 1))
    return any(n >= LOOP_TIMES for n in (*sentence_counts.values(), *grams.values()))


def amazon_prompts(n: int) -> tuple[list[Prompt], list[Document]]:
    data = load_amazon("amazon_review", DATA / "amazon-beauty" / "All_Beauty_5.json")
    # Golds long enough to be written (a two-word review says nothing about decoding) and
    # a profile to retrieve from; reviewers in file order (sorted ids), the first n.
    chosen = [e for e in data.examples if len(e.gold.split()) >= 20 and len(e.profile) >= 2]
    chosen = chosen[:n]
    prompts = [Prompt("amazon", e.user_id, e.instruction, e.query or "", e.gold) for e in chosen]
    return prompts, [d for e in chosen for d in e.profile]


POST = re.compile(r"<date>([^<]*)</date>\s*<post>(.*?)</post>", re.S)


def blog_posts(path: Path) -> list[str]:
    """The posts of one Blog Authorship Corpus file, in file order (the corpus' files
    are not well-formed XML: entities and stray markup, so a pattern reads them)."""
    text = path.read_text(encoding="latin-1")
    return [" ".join(html.unescape(body).split()) for _, body in POST.findall(text)]


def blog_prompts(n: int) -> tuple[list[Prompt], list[Document]]:
    prompts: list[Prompt] = []
    documents: list[Document] = []
    for path in sorted((DATA / "blogs").glob("*.xml")):
        posts = [p for p in blog_posts(path) if p]
        long_ones = [i for i, p in enumerate(posts) if len(p.split()) >= 40]
        if not long_ones or long_ones[-1] < 2:
            continue
        last = long_ones[-1]
        gold_post = posts[last]
        match = re.match(r"(.+?[.!?])\s", gold_post)
        opening = match.group(1) if match and len(match.group(1).split()) <= 40 else ""
        opening = opening or " ".join(gold_post.split()[:12])
        rest = gold_post[len(opening) :].strip()
        user_id = f"blog/{path.name.split('.')[0]}"
        instruction = (
            "Write this author's next blog post, in their style. It begins: "
            f'"{opening}" Continue the post.'
        )
        prompts.append(Prompt("blogs", user_id, instruction, opening, rest))
        documents += [
            Document(user_id=user_id, doc_id=f"post{i}", kind="post", text=post)
            for i, post in enumerate(posts[:last])
        ]
        if len(prompts) == n:
            break
    return prompts, documents


def rag_chats(
    model: TextModel, prompts: list[Prompt], documents: list[Document], k: int, budget: int
) -> list[Chat]:
    """The ``rag`` prompts (BM25, top k) the engine builds for these users, built once."""
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "pgen.sqlite")
        store.add([User(user_id=u) for u in dict.fromkeys(p.user_id for p in prompts)])
        store.add(documents)

        def no_embedder() -> None:
            raise RuntimeError("bm25 needs no embedder")

        engine = Engine(store, model, no_embedder, prompt_tokens=budget)  # type: ignore[arg-type]
        requests = [
            TextRequest(
                p.user_id, p.instruction, strategy="rag", k=k, retriever="bm25", query=p.query
            )
            for p in prompts
        ]
        prepared = engine.prepare(requests)
        engine.close()
    return [p.chat or [] for p in prepared]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="text model spec (load_text_model)")
    parser.add_argument("--n", type=int, default=10, help="prompts per data set")
    parser.add_argument("--k", type=int, default=2, help="documents retrieved per prompt")
    parser.add_argument("--prompt-tokens", type=int, default=512, help="prompt cap")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--penalties", default=",".join(map(str, PENALTIES)))
    parser.add_argument("--no-repeat", default=",".join(map(str, NO_REPEAT)))
    parser.add_argument("--out", type=Path, help="JSON with every reply (default: none)")
    parser.add_argument("--show", type=int, default=2, help="replies printed per setting")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model = load_text_model(args.model, Config(threads=args.threads))
    if hasattr(model, "batch_size"):
        model.batch_size = args.batch_size
    print(f"model {model.name} loaded in {time.perf_counter() - started:.1f} s")
    sets = {"amazon": amazon_prompts(args.n), "blogs": blog_prompts(args.n)}
    chats = {
        name: rag_chats(model, ps, docs, args.k, args.prompt_tokens)
        for name, (ps, docs) in sets.items()
    }
    # No n-gram ban first: the penalty alone is the cheaper change to decoding, and a
    # stopped run has measured it across its whole range.
    grid = [
        (penalty, no_repeat)
        for no_repeat in [int(x) for x in args.no_repeat.split(",")]
        for penalty in [float(x) for x in args.penalties.split(",")]
    ]
    rows: list[dict[str, object]] = []
    replies: dict[str, dict[str, list[str]]] = {}
    for penalty, no_repeat in grid:
        config = GenerationSettings(
            max_new_tokens=args.max_new_tokens,
            repetition_penalty=penalty,
            no_repeat_ngram_size=no_repeat,
        )
        name = f"rp{penalty}-nr{no_repeat}"
        row: dict[str, object] = {"repetition_penalty": penalty, "no_repeat_ngram_size": no_repeat}
        replies[name] = {}
        for data_set, (prompts, _) in sets.items():
            began = time.perf_counter()
            texts = model.generate(chats[data_set], config)
            seconds = time.perf_counter() - began
            rouge = rouge_scores(texts, [p.gold for p in prompts], "rouge-L")
            row[f"{data_set}_loops"] = sum(map(loops, texts)) / len(texts)
            row[f"{data_set}_rougeL"] = float(rouge.mean())
            row[f"{data_set}_words"] = sum(len(t.split()) for t in texts) / len(texts)
            row[f"{data_set}_seconds"] = seconds
            replies[name][data_set] = texts
            for text in texts[: args.show]:
                print(f"  [{name} {data_set}] {text[:300]!r}")
        rows.append(row)
        print(_line(row), flush=True)
        if args.out:  # after every setting: a stopped run keeps what it measured
            _save(args, model.name, rows, sets, replies)
    print()
    print(_table(rows))
    print(
        f"\n{sum(len(s[0]) for s in sets.values())} prompts per setting; "
        f"{time.perf_counter() - started:.0f} s in all"
    )


def _save(
    args: argparse.Namespace,
    model: str,
    rows: list[dict[str, object]],
    sets: dict[str, tuple[list[Prompt], list[Document]]],
    replies: dict[str, dict[str, list[str]]],
) -> None:
    payload = {
        "model": model,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": vars(args) | {"out": str(args.out)},
        "rows": rows,
        "prompts": {name: [asdict(p) for p in prompts] for name, (prompts, _) in sets.items()},
        "replies": replies,
    }
    args.out.write_text(json.dumps(payload, indent=1, ensure_ascii=False))


def _line(row: dict[str, object]) -> str:
    return "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def _table(rows: list[dict[str, object]]) -> str:
    head = (
        "| repetition_penalty | no_repeat_ngram | Amazon loops | Amazon ROUGE-L | Amazon words "
        "| blogs loops | blogs ROUGE-L | blogs words | seconds (both) |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    lines = [head]
    for r in rows:
        seconds = float(r["amazon_seconds"]) + float(r["blogs_seconds"])  # type: ignore[arg-type]
        lines.append(
            f"| {r['repetition_penalty']} | {r['no_repeat_ngram_size']} "
            f"| {r['amazon_loops']:.0%} | {r['amazon_rougeL']:.4f} | {r['amazon_words']:.0f} "
            f"| {r['blogs_loops']:.0%} | {r['blogs_rougeL']:.4f} | {r['blogs_words']:.0f} "
            f"| {seconds:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
