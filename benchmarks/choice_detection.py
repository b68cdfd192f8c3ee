"""How well pgen keeps a choice (a pick among the assistant's options) as a preference:
PrefEval's choice conversations (the assistant's options, then the user's selection) are
the positives; every assistant turn followed by a user turn in its filler conversations
(real chat: lists of steps, code, answers, then the user's next request) are the negatives.

The rules of ``pgen.usermodel.choices`` were written reading the tuning topics' misses only
(the first five topic files in name order) and the tuning conversations (the first twelve);
the held-out rows are the other five topics and twelve conversations. Only tuning mistakes
are printed.

    python benchmarks/choice_detection.py --data ../shared/data/prefeval
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path

from pgen.context.records import Document
from pgen.usermodel.choices import detected_choice, offers_options
from pgen.usermodel.stated import find_preferences

TUNING_TOPICS = 5
TUNING_CONVERSATIONS = 12


@dataclass(frozen=True)
class Pair:
    offer: str  # the assistant's turn
    reply: str  # the user's next turn
    positive: bool
    split: str  # tuning or held-out


def load(data: Path) -> list[Pair]:
    pairs = []
    topics = sorted((data / "implicit_preference" / "choice-based").glob("*.json"))
    for index, path in enumerate(topics):
        split = "tuning" if index < TUNING_TOPICS else "held-out"
        for row in json.loads(path.read_text()):
            said = row["conversation"]
            pairs.append(Pair(said["assistant_options"], said["user_selection"], True, split))
    conversations = json.loads((data / "filtered_inter_turns.json").read_text())
    for index, conversation in enumerate(conversations):
        split = "tuning" if index < TUNING_CONVERSATIONS else "held-out"
        turns = conversation["conversation"]
        for before, after in itertools.pairwise(turns):
            if before["role"] == "assistant" and after["role"] == "user":
                pairs.append(Pair(before["content"], after["content"], False, split))
    return pairs


def kept(pair: Pair) -> bool:
    turn = Document(user_id="u", doc_id="turn", kind="chat", text=pair.reply)
    return detected_choice(turn, pair.offer) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/prefeval"))
    parser.add_argument("--show", type=int, default=5, help="print this many mistakes each way")
    args = parser.parse_args()
    pairs = load(args.data)
    started = time.perf_counter()
    found = [kept(p) for p in pairs]
    ms = 1000 * (time.perf_counter() - started) / len(pairs)
    # What the stated-preference rules alone keep of the same selections (the baseline).
    stated = [bool(find_preferences(p.reply)) for p in pairs]
    print(f"{ms:.3f} ms per pair (1 thread)")
    print(
        f"{'method':<22} {'set':<9} {'pos':>4} {'neg':>4} {'offers':>7} "
        f"{'precision':>9} {'recall':>6} {'FP':>4}"
    )
    for name, predicted in (("choices", found), ("stated rules alone", stated)):
        for split in ("tuning", "held-out", "all"):
            both = zip(predicted, pairs, strict=True)
            rows = [(f, p) for f, p in both if split in ("all", p.split)]
            tp = sum(f and p.positive for f, p in rows)
            fp = sum(f and not p.positive for f, p in rows)
            pos = sum(p.positive for _, p in rows)
            # Negatives whose assistant turn does offer a list: the ones that test the pick.
            offers = sum(offers_options(p.offer) for _, p in rows if not p.positive)
            precision = tp / (tp + fp) if tp + fp else 0.0
            print(
                f"{name:<22} {split:<9} {pos:>4} {len(rows) - pos:>4} {offers:>7} "
                f"{precision:>9.3f} {tp / pos:>6.3f} {fp:>4}"
            )
    tuning = [(f, p) for f, p in zip(found, pairs, strict=True) if p.split == "tuning"]
    missed = [p for f, p in tuning if p.positive and not f]
    wrong = [p for f, p in tuning if f and not p.positive]
    print(f"\nmissed {len(missed)} tuning choices, e.g.:")
    for pair in missed[: args.show]:
        print("  -", " ".join(pair.reply.split())[:150])
    print(f"took {len(wrong)} tuning filler replies for choices, e.g.:")
    for pair in wrong[: args.show]:
        print("  -", " ".join(pair.reply.split())[:150])


if __name__ == "__main__":
    main()
