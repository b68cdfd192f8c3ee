"""``pgen bench prefs``: does per-user preference optimization beat one model for everyone?

Real per-user preference pairs: the TL;DR comparisons (``comparisons-*.jsonl``: each of
27 labelers comparing two summaries of a Reddit post) or the P-SOUPS persona pairs
(``*.json``: users are the ground-truth personas, which prefer opposite styles). Per user,
a seeded split into train and test pairs (the data carry no dates). On each user's test
pairs, preference accuracy of:

* ``longer``: prefer the longer reply (no model; TL;DR labelers are known to like longer
  summaries, so it is the honest floor to beat; a tie counts half);
* ``base``: the base model ranks the pair by mean per-token log-likelihood;
* ``user``: DPO on the user's own train pairs (implicit reward margin > 0);
* ``cohort``: DPO on the user's pairs and those of ``cohort`` other users (seeded);
* ``cohort-similar``: the same with the ``cohort`` other users whose train pairs (prompt
  and chosen reply: never a test pair) are most similar to the user's (``cohorts``);
* ``global``: one DPO over every user's train pairs, the same adapter for all.

Training goes through ``Engine.fan_out`` on a scratch store (train pairs only: test pairs
never enter it), on the runner of ``pgen.bench.training`` (inline or Ray: the same
adapters either way). Accuracy over all test pairs with bootstrap intervals; paired
permutation tests against ``base`` and ``global``; training seconds per user.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pgen.bench.prefs_adapters import STORE_FILE, plan_adapters, train_planned
from pgen.bench.training import BenchTraining
from pgen.context.base import ContextStore
from pgen.context.records import Feedback, User
from pgen.factory import store_at
from pgen.models.base import Embedder, TextModel
from pgen.training.cohorts import TFIDF, pair_texts, rank_profiles
from pgen.training.dpo import DpoSettings, completion_logps
from pgen.training.text_lora import fresh_base
from pgen.usermodel.preferences import Pair

METHODS = ("longer", "base", "user", "cohort", "cohort-similar", "global")


@dataclass(frozen=True)
class PrefsSettings:
    users: int = 4  # the users with the most pairs
    train_pairs: int = 12  # per user, at most
    test_pairs: int = 8  # per user
    cohort: int = 1  # other users pooled into ``cohort``
    max_prompt_chars: int = 1200  # TL;DR posts are long; CPU cost grows with them
    seed: int = 0
    dpo: DpoSettings = field(default_factory=lambda: DpoSettings(epochs=2, holdout=0.0))


def load_pairs(path: Path, max_prompt_chars: int) -> dict[str, list[Pair]]:
    """Pairs per user, from a TL;DR comparisons JSONL file or a P-SOUPS JSON file."""
    by_user: dict[str, list[Pair]] = defaultdict(list)
    if path.suffix == ".jsonl":
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                choice = int(row["choice"])
                texts = [s["text"].strip() for s in row["summaries"]]
                post = row["info"]["post"].strip()[:max_prompt_chars]
                worker = str(row["worker"])
            except (ValueError, KeyError, TypeError, IndexError) as error:
                raise ValueError(
                    f"{path}:{number}: expected a TL;DR comparison (info.post, summaries[].text, "
                    f"choice, worker): {error}"
                ) from None
            prompt = f"Summarize this Reddit post in one sentence.\n\n{post}"
            pair = Pair(worker, prompt, texts[choice], texts[1 - choice], (f"{number}",))
            by_user[worker].append(pair)
    else:
        rows = json.loads(path.read_text())
        personas: dict[str, str] = {}
        for number, row in enumerate(rows):
            try:
                persona = row["ground_truth_persona"]
                user = personas.setdefault(persona, f"persona{len(personas)}")
                by_user[user].append(
                    Pair(user, row["prompt"], row["chosen"], row["rejected"], (f"{number}",))
                )
            except (KeyError, TypeError) as error:
                raise ValueError(
                    f"{path}: entry {number}: expected prompt, chosen, rejected and "
                    f"ground_truth_persona: {error}"
                ) from None
    return dict(by_user)


def split_users(
    pairs: dict[str, list[Pair]], config: PrefsSettings
) -> dict[str, tuple[list[Pair], list[Pair]]]:
    """The users with the most pairs (ties by id); per user a seeded train/test split."""
    ranked = sorted(pairs, key=lambda u: (-len(pairs[u]), u))[: config.users]
    splits = {}
    for user in ranked:
        shuffled = random.Random(f"{config.seed}:{user}").sample(pairs[user], len(pairs[user]))
        test = shuffled[: config.test_pairs]
        splits[user] = (shuffled[config.test_pairs :][: config.train_pairs], test)
    return splits


def _store_pairs(store: ContextStore, user: str, pairs: list[Pair]) -> None:
    store.add(
        Feedback(
            user_id=user,
            feedback_id=f"{user}-{i}",
            prompt=p.prompt,
            chosen=p.chosen,
            rejected=p.rejected,
        )
        for i, p in enumerate(pairs)
    )


def _correct(model: TextModel, adapter: Path | None, pairs: list[Pair], beta: float) -> list[float]:
    """1.0 per test pair the method prefers correctly: the base by mean log-likelihood, an
    adapter by its implicit reward margin against the base."""
    from peft import PeftModel

    base, tokenizer = fresh_base(model)
    if adapter is None:
        means = completion_logps(base, tokenizer, pairs, reference=False, mean=True)
        return [float(c > r) for c, r in means.tolist()]
    tuned = PeftModel.from_pretrained(base, str(adapter)).eval()
    policy = completion_logps(tuned, tokenizer, pairs, reference=False)
    reference = completion_logps(tuned, tokenizer, pairs, reference=True)
    margins = beta * ((policy[:, 0] - reference[:, 0]) - (policy[:, 1] - reference[:, 1]))
    return [float(m > 0) for m in margins.tolist()]


def _longer(pairs: list[Pair]) -> list[float]:
    """1.0 when the chosen reply is the longer one, 0.0 when the shorter, 0.5 on a tie."""
    return [(float(np.sign(len(p.chosen) - len(p.rejected))) + 1) / 2 for p in pairs]


def similar_cohorts(
    splits: dict[str, tuple[list[Pair], list[Pair]]], k: int, embedder: Embedder | None
) -> dict[str, list[tuple[str, float]]]:
    """Per user, the ``k`` other users nearest by profile, with their cosine. Profiles are
    the train pairs' prompts and chosen replies only: a test pair never decides who is
    pooled (it would leak the user's test taste into their cohort)."""
    profiles = {u: pair_texts(train) for u, (train, _) in splits.items()}
    return {
        user: rank_profiles(texts, {u: t for u, t in profiles.items() if u != user}, k, embedder)
        for user, texts in profiles.items()
    }


def run_prefs(
    model: TextModel,
    path: Path,
    config: PrefsSettings,
    embedder: Embedder | None = None,
    training: BenchTraining | None = None,
) -> dict[str, Any]:
    """Per-user test-pair correctness of every method, the cohorts each user got, the
    adapters trained and training seconds per adapter. ``embedder``: the space of
    ``cohort-similar`` (None: TF-IDF); ``training``: where the adapters train (default:
    inline, each user alone)."""
    splits = split_users(load_pairs(path, config.max_prompt_chars), config)
    if len(splits) < 2:
        raise ValueError(f"{path}: a per-user comparison needs at least two users")
    users = list(splits)
    correct: dict[str, dict[str, list[float]]] = {m: {} for m in METHODS}
    seconds: dict[str, list[float]] = {m: [] for m in METHODS if m not in ("base", "longer")}
    settings = replace(config.dpo, holdout=0.0, progress=False, min_pairs=1, measure=False)
    similar = similar_cohorts(splits, config.cohort, embedder)
    rng = random.Random(config.seed)
    cohorts: dict[str, tuple[str, ...]] = {}
    for user in users:
        others = [u for u in users if u != user]
        cohorts[user] = tuple(rng.sample(others, min(config.cohort, len(others))))
    space = embedder.model_id if embedder is not None else TFIDF
    planned = plan_adapters(users, cohorts, similar, space)
    with tempfile.TemporaryDirectory(prefix="pgen-prefs-") as folder:
        scratch = Path(folder)
        store = store_at(scratch / STORE_FILE)
        for user in users:
            store.add([User(user_id=user)])
            _store_pairs(store, user, splits[user][0])
        trained = train_planned(
            model, store, scratch, planned, settings, training or BenchTraining()
        )

        def adapter(method: str, user: str, cohort: tuple[str, ...]) -> Path:
            kept, took, _ = trained[(user, tuple(sorted(cohort)))]
            seconds[method].append(took)
            return kept

        glob = adapter("global", users[0], tuple(users[1:]))
        for user in users:
            test = splits[user][1]
            correct["longer"][user] = _longer(test)
            correct["base"][user] = _correct(model, None, test, settings.beta)
            for method, cohort in (
                ("user", ()),
                ("cohort", cohorts[user]),
                ("cohort-similar", tuple(u for u, _ in similar[user])),
            ):
                chosen = adapter(method, user, cohort)
                correct[method][user] = _correct(model, chosen, test, settings.beta)
            correct["global"][user] = _correct(model, glob, test, settings.beta)
        store.close()
    return {
        "users": {u: {"train": len(s[0]), "test": len(s[1])} for u, s in splits.items()},
        "cohorts": {u: {"cohort": list(cohorts[u]), "cohort-similar": similar[u]} for u in users},
        "correct": correct,
        "seconds": seconds,
        "adapters": [{"user": key[0], **record} for key, (_, _, record) in trained.items()],
        "test_pairs": {
            u: [{"chosen": p.chosen, "rejected": p.rejected, "feedback": p.feedback} for p in s[1]]
            for u, s in splits.items()
        },
    }


def report(result: dict[str, Any], title: str) -> str:
    """Markdown: accuracy with 95% intervals, paired tests, per-user accuracy, seconds."""
    from pgen.evaluate.metrics.base import Metric, mean_of_rows, mean_rows
    from pgen.evaluate.stats import bootstrap, paired_test

    accuracy = Metric("accuracy", True, lambda p, g: mean_rows([]), mean_of_rows, "share correct")
    users = list(result["users"])
    rows = {m: mean_rows([c for u in users for c in result["correct"][m][u]]) for m in METHODS}
    lines = [f"### {title}", "", "| method | accuracy [95% CI] | vs base Δ (p) | vs global Δ (p) |"]
    lines.append("|---|---|---|---|")
    for method in METHODS:
        estimate = bootstrap(accuracy, rows[method])
        cells = []
        for other in ("base", "global"):
            if other == method:
                cells.append("-")
                continue
            test = paired_test(accuracy, rows[method], rows[other])
            cells.append(f"{test.delta:+.3f} (p={test.p_value:.3f})")
        lines.append(
            f"| {method} | {estimate.value:.3f} [{estimate.low:.3f}, {estimate.high:.3f}] | "
            f"{cells[0]} | {cells[1]} |"
        )
    lines += ["", "| user | train / test pairs | " + " | ".join(METHODS) + " |"]
    lines.append("|---|---|" + "---:|" * len(METHODS))
    for user in users:
        sizes = result["users"][user]
        cells = [f"{np.mean(result['correct'][m][user]):.2f}" for m in METHODS]
        lines.append(f"| {user} | {sizes['train']} / {sizes['test']} | " + " | ".join(cells) + " |")
    lines.append("")
    for user, chosen in result.get("cohorts", {}).items():
        near = ", ".join(f"{u} ({s:.2f})" for u, s in chosen["cohort-similar"])
        lines.append(f"- {user}: random cohort {', '.join(chosen['cohort'])}; similar {near}")
    for method, values in result["seconds"].items():
        if values:
            lines.append(
                f"- {method}: {np.mean(values):.1f} s of training per adapter ({len(values)})"
            )
    return "\n".join(lines)
