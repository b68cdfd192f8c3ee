"""How well pgen finds stated preferences: PrefEval's explicit preference sentences
(positives) against the user turns of its filler conversations (negatives, real chat of
people asking unrelated things), and the assistants' turns of those conversations as a
second set of negatives (text a memory may hold that the user did not say).

The rules were written reading the tuning topics only (the first five topic files in name
order) and the tuning conversations (the first twelve); the held-out rows are the other
five topics and twelve conversations. ``--model`` adds the text model's judgment
(``model_judgment``: "yes" against "no"), alone and as a confirmation of the rules' hits.

    python benchmarks/preference_detection.py --data ../shared/data/prefeval
    python benchmarks/preference_detection.py --data ... --model smollm2 --limit 60
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from pgen.usermodel.stated import find_preferences, model_judgment

TUNING_TOPICS = 5
TUNING_CONVERSATIONS = 12


@dataclass(frozen=True)
class Example:
    text: str
    positive: bool
    split: str  # tuning or held-out
    kind: str  # preference, user turn, assistant turn


def load(data: Path) -> list[Example]:
    examples = []
    topics = sorted((data / "explicit_preference").glob("*.json"))
    for index, path in enumerate(topics):
        split = "tuning" if index < TUNING_TOPICS else "held-out"
        for row in json.loads(path.read_text()):
            examples.append(Example(row["preference"], True, split, "preference"))
    conversations = json.loads((data / "filtered_inter_turns.json").read_text())
    for index, conversation in enumerate(conversations):
        split = "tuning" if index < TUNING_CONVERSATIONS else "held-out"
        for turn in conversation["conversation"]:
            kind = "user turn" if turn["role"] == "user" else "assistant turn"
            examples.append(Example(turn["content"], False, split, kind))
    return examples


def scores(predicted: list[bool], examples: list[Example]) -> dict[str, float]:
    pairs = list(zip(predicted, examples, strict=True))
    tp = sum(p and e.positive for p, e in pairs)
    fp = sum(p and not e.positive for p, e in pairs)
    fn = sum(not p and e.positive for p, e in pairs)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/prefeval"))
    parser.add_argument("--model", help="also the judgment of this text model (pgen name)")
    parser.add_argument("--limit", type=int, help="model: at most this many per set and kind")
    parser.add_argument("--show", type=int, default=5, help="print this many mistakes each way")
    args = parser.parse_args()
    torch.set_num_threads(1)
    examples = load(args.data)
    started = time.perf_counter()
    rules = [bool(find_preferences(e.text)) for e in examples]
    rule_ms = 1000 * (time.perf_counter() - started) / len(examples)
    methods: dict[str, list[bool]] = {"rules": rules}
    subset = examples
    if args.model:
        from pgen.config import Config
        from pgen.factory import component_loader

        config = Config(text_model=args.model)
        model = component_loader(config)("text")
        if args.limit:
            seen: dict[tuple[str, str], int] = {}
            subset = []
            for e in examples:
                key = (e.split, e.kind)
                seen[key] = seen.get(key, 0) + 1
                if seen[key] <= args.limit:
                    subset.append(e)
        started = time.perf_counter()
        yes = [model_judgment(model, [e.text[:1500]])[0] for e in subset]
        model_ms = 1000 * (time.perf_counter() - started) / len(subset)
        keep = [examples.index(e) for e in subset]
        methods = {
            "rules": [rules[i] for i in keep],
            "model": [p >= 0.5 for p in yes],
            "rules and model": [rules[i] and p >= 0.5 for i, p in zip(keep, yes, strict=True)],
        }
        print(f"model judgment: {model_ms:.0f} ms per text ({args.model}, 1 thread)")
    print(f"rules: {rule_ms:.3f} ms per text (1 thread)")
    header = f"{'method':<16} {'set':<9} {'negatives':<16} {'pos':>4} {'neg':>4} "
    print(header + f"{'precision':>9} {'recall':>6} {'F1':>6} {'FP':>4}")
    for name, predicted in methods.items():
        for split in ("tuning", "held-out", "all"):
            for negatives in ("user turns", "assistant turns"):
                chosen = [
                    (p, e)
                    for p, e in zip(predicted, subset, strict=True)
                    if split in ("all", e.split)
                    and (e.positive or e.kind == negatives.removesuffix("s"))
                ]
                got = scores([p for p, _ in chosen], [e for _, e in chosen])
                pos = sum(e.positive for _, e in chosen)
                print(
                    f"{name:<16} {split:<9} {negatives:<16} {pos:>4} {len(chosen) - pos:>4} "
                    f"{got['precision']:>9.3f} {got['recall']:>6.3f} {got['f1']:>6.3f} "
                    f"{got['fp']:>4}"
                )
    # Mistakes of the tuning set only: reading the held-out ones would tune on them.
    pairs = [(p, e) for p, e in zip(rules, examples, strict=True) if e.split == "tuning"]
    missed = [e.text for p, e in pairs if e.positive and not p]
    wrong = [e.text for p, e in pairs if p and not e.positive]
    print(f"\nrules missed {len(missed)} tuning preferences, e.g.:")
    for text in missed[: args.show]:
        print("  -", " ".join(text.split())[:150])
    print(f"rules took {len(wrong)} tuning filler turns for preferences, e.g.:")
    for text in wrong[: args.show]:
        hits = find_preferences(text)
        print("  -", " ".join(hits[0].text.split())[:150])


if __name__ == "__main__":
    main()
