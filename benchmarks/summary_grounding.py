"""Grounding of profile summaries on blog authors: names and numbers in each summary
that appear in none of the author's documents or profile attributes.

For each author (``pgen bench attribution``'s loading: the posts before the last 5, at
most 40, and the file name's attributes), the profile strategy's summary is written from
their 8 most recent posts with the summary prompt and with it plus a constraint ("Name
only people, places and numbers that appear in the texts"), each read raw and after
``pgen.personalize.grounding.grounded`` cuts sentences with unsupported mentions (what
the profile strategy ships: the summary prompt + cut). A mention is a capitalized word
not first in its sentence ("I" aside) or a number; unsupported: in none of the author's
ingested posts (all of them, not only the 8) nor their attributes.

    python benchmarks/summary_grounding.py --data ../shared/data/blogs --users 16
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from pgen.bench.attribution import load_authors
from pgen.models.base import GenerationSettings
from pgen.models.text import load_text_model
from pgen.personalize.base import chat
from pgen.personalize.grounding import grounded, mentions, unsupported
from pgen.personalize.profile import (
    SUMMARIZE,
    SUMMARY_DOCS,
    SUMMARY_TOKENS,
    sources,
    whole_sentences,
)
from pgen.personalize.prompts import pack_documents, remaining_budget

NAMES_ONLY = SUMMARIZE + (
    " Name only people, places and numbers that appear in the texts."
)  # tried as a constraint in the prompt: it made things worse (docs/benchmarks.md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/blogs"))
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--show", type=int, default=3, help="summaries printed per prompt")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    authors = load_authors(args.data, args.users, 40)
    model = load_text_model(args.model)
    settings = GenerationSettings(max_new_tokens=SUMMARY_TOKENS, repetition_penalty=1.15)
    started = time.perf_counter()
    table = []
    for label, template in (("summary prompt", SUMMARIZE), ("+ names only", NAMES_ONLY)):
        chats, knowns, all_known = [], [], []
        for author in authors:
            recent = list(reversed(author.documents[-SUMMARY_DOCS:]))  # newest first
            budget = remaining_budget(model, 1024, template)
            packed = pack_documents(recent, model, budget)
            chats.append(chat(template.format(documents=packed.text)))
            knowns.append(sources(recent, author.profile))  # what the shipped cut checks
            all_known.append(sources(author.documents, author.profile))  # what is measured
        replies = [whole_sentences(r) for r in model.generate(chats, settings)]
        for reading in ("raw", "cut"):
            texts = (
                replies
                if reading == "raw"
                else [grounded(r, k)[0] for r, k in zip(replies, knowns, strict=True)]
            )
            found = [mentions(t) for t in texts]
            missing = [unsupported(t, k) for t, k in zip(texts, all_known, strict=True)]
            total, bad = sum(map(len, found)), sum(map(len, missing))
            table.append(
                (
                    f"{label}, {reading}",
                    total,
                    bad,
                    bad / total if total else 0.0,
                    sum(1 for m in missing if m),
                    sum(1 for t in texts if not t),
                    sum(len(t.split()) for t in texts) / len(texts),
                )
            )
            for author, text, miss in list(zip(authors, texts, missing, strict=True))[: args.show]:
                print(f"[{label}, {reading}] {author.user_id}: {text!r} unsupported={miss}")
    print(
        f"\n{len(authors)} authors, {model.name}, {torch.get_num_threads()} thread(s), "
        f"{time.perf_counter() - started:.0f} s\n"
    )
    print("| summary | mentions | unsupported | rate | summaries with any | empty | mean words |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, total, bad, rate, any_bad, empty, words in table:
        print(
            f"| {name} | {total} | {bad} | {rate:.3f} | {any_bad}/{len(authors)} | {empty} "
            f"| {words:.1f} |"
        )


if __name__ == "__main__":
    main()
