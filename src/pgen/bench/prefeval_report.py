"""The PrefEval report: accuracy against N per setting and preference form (95% bootstrap
intervals; paired permutation tests against ``none`` on the same items), preference
recall for the settings that carry the conversation, prompt tokens and pgen's overhead
per question, and the model's seconds per example. Every table names its scoring mode."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from pgen.evaluate.metrics.base import Metric, mean_of_rows, mean_rows
from pgen.evaluate.stats import bootstrap, paired_test

ACCURACY = Metric(
    "accuracy",
    True,
    lambda p, g: mean_rows([]),
    mean_of_rows,
    "share of items where the preference-following answer won",
)
MODE_NAMES = {
    "letter": "letter mode: the most likely letter A-D after the lettered options",
    "option": "option mode: the answer text the model finds most likely (summed log-prob)",
}


def _key(row: dict[str, Any]) -> tuple[str, int]:
    return row["topic"], row["item"]


def _cell(values: list[float], baseline: list[float] | None) -> str:
    rows = mean_rows(values)
    estimate = bootstrap(ACCURACY, rows)
    text = f"{estimate.value:.2f} [{estimate.low:.2f}, {estimate.high:.2f}]"
    if baseline is not None:
        test = paired_test(ACCURACY, rows, mean_rows(baseline))
        text += f" Δ{test.delta:+.2f} p={test.p_value:.2f}"
    return text


def accuracy_tables(rows: list[dict[str, Any]]) -> list[str]:
    rows = [r for r in rows if "correct" in r]  # a recall-only run scores nothing
    if not rows:
        return ["(recall only: no answers scored)"]
    lines: list[str] = []
    for mode in sorted({r["mode"] for r in rows}):
        of_mode = [r for r in rows if r["mode"] == mode]
        none = {_key(r): r["correct"] for r in of_mode if r["setting"] == "none"}
        turns = sorted({r["turns"] for r in of_mode if r["turns"] is not None})
        forms = sorted({r["form"] for r in of_mode if r["form"] is not None})
        settings = list(dict.fromkeys(r["setting"] for r in of_mode if r["setting"] != "none"))
        lines += [f"#### Accuracy, {MODE_NAMES[mode]}", ""]
        if none:
            values = list(none.values())
            lines.append(
                f"none (the question alone, any N): {_cell(values, None)}, n={len(values)}"
            )
            lines.append("")
        header = "| form | setting | " + " | ".join(f"N={n}" for n in turns) + " |"
        lines += [header, "|---|---|" + "---|" * len(turns)]
        for form in forms:
            for setting in settings:
                cells = []
                for n in turns:
                    group = [
                        r
                        for r in of_mode
                        if (r["form"], r["setting"], r["turns"]) == (form, setting, n)
                    ]
                    values = [r["correct"] for r in group]
                    paired = [none[_key(r)] for r in group] if none and group else None
                    cells.append(_cell(values, paired) if group else "-")
                lines.append(f"| {form} | {setting} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("Cells: accuracy [95% bootstrap CI], Δ against none on the same items, p of a")
    lines.append("paired permutation test. Chance is 0.25.")
    return lines


def recall_table(rows: list[dict[str, Any]]) -> list[str]:
    """Preference recall per (form, setting) and N, from one mode's rows (the prompt does
    not depend on the mode's scoring, only on what the setting put in it)."""
    carrying = [r for r in rows if "recalled" in r]
    if not carrying:
        return []
    mode = sorted({r["mode"] for r in carrying})[0]
    carrying = [r for r in carrying if r["mode"] == mode]
    turns = sorted({r["turns"] for r in carrying})
    lines = [
        "#### Preference recall: a stating turn, or a preference found in it, is in the prompt",
        "",
    ]
    lines += ["| form | setting | " + " | ".join(f"N={n}" for n in turns) + " |"]
    lines.append("|---|---|" + "---|" * len(turns))
    groups: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in carrying:
        groups[(r["form"], r["setting"])][r["turns"]].append(r["recalled"])
    for (form, setting), by_n in groups.items():
        cells = []
        for n in turns:
            values = by_n.get(n, [])
            if not values:
                cells.append("-")
                continue
            estimate = bootstrap(ACCURACY, mean_rows(values))
            cells.append(f"{estimate.value:.2f} [{estimate.low:.2f}, {estimate.high:.2f}]")
        lines.append(f"| {form} | {setting} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def cost_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["#### Prompt tokens and time per question", ""]
    lines += ["| setting | N | prompt tokens (mean) | pgen ms p50 / p95 | model s per example |"]
    lines.append("|---|---|---|---|---|")
    keys = sorted(
        {(r["setting"], r["turns"]) for r in rows},
        key=lambda k: (k[0], -1 if k[1] is None else k[1]),
    )
    for setting, n in keys:
        group = [r for r in rows if (r["setting"], r["turns"]) == (setting, n)]
        tokens = np.mean([r["prompt_tokens"] for r in group])
        p50, p95 = np.percentile([r["prepare_ms"] for r in group], [50, 95])
        seconds = np.mean([r["model_s"] for r in group])
        label = "any" if n is None else str(n)
        lines.append(
            f"| {setting} | {label} | {tokens:.0f} | {p50:.1f} / {p95:.1f} | {seconds:.2f} |"
        )
    return [*lines, ""]


def report(rows: list[dict[str, Any]], title: str) -> str:
    items = len({_key(r) for r in rows})
    scored = sum("correct" in r for r in rows)
    lines = [f"### {title}", "", f"{items} items; {len(rows)} prompts, {scored} scored.", ""]
    lines += [*accuracy_tables(rows), "", *recall_table(rows), *cost_table(rows)]
    return "\n".join(lines)
