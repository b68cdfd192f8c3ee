"""A results file made readable: a markdown table and a PNG plot of every metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _digits(metric: str) -> int:
    return 2 if metric == "bleu" else 3  # BLEU is on a 0-100 scale, the rest 0-1 or ratings


def _cell(estimate: dict[str, float], metric: str) -> str:
    d = _digits(metric)
    return f"{estimate['value']:.{d}f} [{estimate['low']:.{d}f}, {estimate['high']:.{d}f}]"


def _significant(test: dict[str, Any]) -> bool:
    """Better than ``none`` at p < 0.05: the permutation test decides, as the report says."""
    return bool(test.get("significant", test["better"] and test["p_value"] < 0.05))


def _delta(test: dict[str, Any], metric: str) -> str:
    d = _digits(metric)
    mark = " ✓" if _significant(test) else ""
    interval = f"[{test['low']:+.{d}f}, {test['high']:+.{d}f}]"
    differ = f", differ {test['differ']}" if "differ" in test else ""
    return f"{test['delta']:+.{d}f} {interval}, p={test['p_value']:.3f}{differ}{mark}"


def _short(text: str, limit: int = 90) -> str:
    flat = " ".join(text.split()).replace("|", "/")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _settings_table(
    scores: dict[str, Any], meta: dict[str, Any], metrics: list[str], answers: str
) -> list[str]:
    arrows = {m["name"]: "↑" if m["higher_is_better"] else "↓" for m in scores["metrics"]}
    labelled = any(i.get("in_label_set") is not None for i in meta["settings"].values())
    chosen = answers.startswith("choice")
    labelled = labelled and not chosen  # a chosen answer always is a label
    # "raw answer is a label": how often the text as generated was exactly a label.
    lamp = [m for m in ("rouge-1", "rouge-L") if m in metrics and "lamp_rouge_definition" in scores]
    header = [f"{m} (LaMP) ↑" for m in lamp]
    header += [f"{m} {'mean ' if m in lamp else ''}{arrows[m]}" for m in metrics]
    header += ["docs/prompt", "s/pred"]
    if labelled:
        header.append("raw answer is a label")
    lines = ["| setting | " + " | ".join(header) + " |", "|" + " --- |" * (len(header) + 1)]
    for name, entry in scores["systems"].items():
        info = meta["settings"][name]
        cells = [f"{entry['lamp_rouge'][m]:.3f}" for m in lamp]
        cells += [_cell(entry["metrics"][m], m) for m in metrics]
        cells += [f"{info['docs_per_prompt']:.1f}", f"{info['seconds_per_prediction']:.2f}"]
        if labelled:
            cells.append(f"{info['in_label_set']:.0%}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _provenance(record: dict[str, Any]) -> str:
    """One line saying what produced the run: when, where, settings and versions."""
    packages = record.get("packages", {})
    versions = ", ".join(f"{name} {v}" for name, v in packages.items() if v)
    settings, model = record["settings"], record["model"]
    bertscore = settings.get("bertscore")
    scorer = f", BERTScore {bertscore['model']} layer {bertscore['layer']}" if bertscore else ""
    machine = record.get("machine", {})
    return (
        f"Run {record.get('time', '?')} on {machine.get('platform', '?')} "
        f"({machine.get('cpus', '?')} CPUs, {record.get('threads') or '?'} torch threads); "
        f"model spec `{model['spec']}`, embeddings `{model.get('embed_model') or '-'}`, batch "
        f"size {settings['batch_size']}, answers `{settings['answers']}`{scorer}. "
        f"Versions: {versions}."
    )


ANSWER_NOTES = {
    "first-label": "Answers: the first label found in each output (`--answers first-label`), "
    "not LaMP's rule of scoring the raw text.",
    "choice": "Answers: the label the model finds most likely as its whole reply "
    "(`--answers choice`, log-likelihood ranking; nothing is generated), not LaMP's rule of "
    "scoring generated text.",
    "choice-calibrated": "Answers: the most likely label after batch calibration (`--answers "
    "choice-calibrated`: each label's probability divided by its mean over all the "
    "questions, which removes the model's preference for some labels whatever the "
    "question); nothing is generated. Not LaMP's rule of scoring generated text.",
}


def _no_label_note(meta: dict[str, Any], answers: str) -> list[str]:
    """Under LaMP's rule an answer that is not exactly a label is wrong: when none is, the
    setting's score says nothing, and the report must say so (and what to do instead)."""
    if answers != "raw":
        return []
    none = [n for n, i in meta["settings"].items() if i.get("in_label_set") == 0]
    if not none:
        return []
    which = "every setting" if len(none) == len(meta["settings"]) else ", ".join(none)
    return [
        f"**0% of the raw answers of {which} are a label.** Under LaMP's rule (the raw text "
        "must be exactly a label) all of them score as wrong, so these scores are the same "
        "whatever the setting and say nothing about personalization. Re-score the same "
        "outputs with `--answers first-label` (the first label in each answer; nothing is "
        "generated again, and the files go beside these), or let the model choose among the "
        "labels with `--answers choice` (or `choice-calibrated`)."
    ]


def _counts(counted: dict[str, int]) -> str:
    return ", ".join(f"{n} × {reason}" for reason, n in sorted(counted.items()))


def decoding_text(decoding: dict[str, Any], max_new_tokens: int) -> str:
    """How the answers were decoded, in words ("greedy decoding, repetition penalty 1.2,
    at most 128 new tokens"); a record without decoding settings was plain greedy."""
    temperature = decoding.get("temperature", 0.0)
    parts = [
        f"sampled at temperature {temperature}, top-p {decoding.get('top_p', 1.0)}, "
        f"seed {decoding.get('seed', 0)}"
        if temperature > 0
        else "greedy decoding"
    ]
    if decoding.get("repetition_penalty", 1.0) != 1.0:
        parts.append(f"repetition penalty {decoding['repetition_penalty']}")
    if decoding.get("no_repeat_ngram_size", 0):
        parts.append(f"no repeated {decoding['no_repeat_ngram_size']}-grams")
    if decoding.get("no_copy_ngram_size", 0):
        parts.append(f"no {decoding['no_copy_ngram_size']}-token runs copied from the prompt")
    return ", ".join([*parts, f"at most {max_new_tokens} new tokens"])


def markdown(results: dict[str, Any]) -> str:
    record, meta, scores = results["record"], results["meta"], results["scores"]
    settings = record["settings"]
    answers = settings["answers"]
    metrics = [m["name"] for m in scores["metrics"]]
    decoding = (
        "answers chosen by likelihood"
        if answers.startswith("choice")
        else decoding_text(settings.get("decoding") or {}, settings["max_new_tokens"])
    )
    lines = [
        f"# {record['task']} — {record['model']['loaded']}",
        "",
        f"{scores['examples']} questions from `{', '.join(record['data']['paths'])}` "
        f"(sha256 {record['data']['sha256'][:12]}), {decoding}, "
        f"prompts capped at {settings['prompt_tokens']} tokens.",
    ]
    if answers in ANSWER_NOTES:
        lines.append(ANSWER_NOTES[answers])
    if "lamp_rouge_definition" in scores:
        lines.append(
            "ROUGE (LaMP): what LaMP's evaluator reports, the bootstrap median of the "
            "per-example F-measures (seed 0); ROUGE mean: their plain mean, with the 95% CI, "
            "and the one the paired tests compare."
        )
    if settings.get("baseline_added"):
        lines.append("`none` (no personalization) was added to the settings as the baseline.")
    if meta.get("skipped"):
        lines.append(f"Skipped records: {_counts(meta['skipped'])}.")
    if meta.get("excluded"):
        lines.append(
            f"Profile documents removed from these questions' profiles (they would give the "
            f"answer away): {_counts(meta['excluded'])}."
        )
    else:
        lines.append(
            "Leakage guard: no profile document of these questions repeated the gold output "
            "or the question's text."
        )
    lines += _no_label_note(meta, answers)
    lines += ["", *_settings_table(scores, meta, metrics, answers)]
    compared = [(n, e["vs_none"]) for n, e in scores["systems"].items() if "vs_none" in e]
    if compared:
        lines += ["", "Difference from `none` (paired; Δ [95% CI], p, examples that differ):", ""]
        lines.append("| setting | " + " | ".join(metrics) + " |")
        lines.append("|" + " --- |" * (len(metrics) + 1))
        for name, tests in compared:
            lines.append(f"| {name} | " + " | ".join(_delta(tests[m], m) for m in metrics) + " |")
        marks = scores["statistics"].get("marks", "✓: better than `none` at p < 0.05.")
        lines += ["", marks]
    first = meta.get("first_example")
    if first:
        lines += [
            "",
            f"Outputs for the first question (`{first['id']}`, gold: "
            f"`{_short(first['gold'], 60)}`):",
            "",
        ]
        lines += [
            f"- {name}: `{_short(info['first_output'])}`" for name, info in meta["settings"].items()
        ]
    lines += ["", "Metric definitions:", ""]
    lines += [f"- **{m['name']}**: {m['definition']}" for m in scores["metrics"]]
    if "lamp_rouge_definition" in scores:
        lines.append(f"- **rouge-1, rouge-L (LaMP)**: {scores['lamp_rouge_definition']}")
    lines += ["", f"Intervals: {scores['statistics']['ci']}. Test: {scores['statistics']['test']}."]
    lines += ["", _provenance(record)]
    plot_name = "report.png" if answers == "raw" else f"report.{answers}.png"
    lines += ["", f"![metrics]({plot_name})", ""]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = results["scores"]
    metrics = [m["name"] for m in scores["metrics"]]
    systems = list(scores["systems"])
    figure, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2), squeeze=False)
    for axis, metric in zip(axes[0], metrics, strict=True):
        values = [scores["systems"][s]["metrics"][metric] for s in systems]
        centers = [v["value"] for v in values]
        errors = [
            [c - v["low"] for c, v in zip(centers, values, strict=True)],
            [v["high"] - c for c, v in zip(centers, values, strict=True)],
        ]
        colors = ["0.6" if s == "none" else "C0" if s.startswith("rag") else "C1" for s in systems]
        axis.bar(range(len(systems)), centers, yerr=errors, color=colors, capsize=3)
        # The marks follow the permutation test against none (as the report's ✓ does).
        for index, system in enumerate(systems):
            test = scores["systems"][system].get("vs_none", {}).get(metric)
            if test is not None and _significant(test):
                top = values[index]["high"]
                axis.annotate("*", (index, top), ha="center", va="bottom", fontsize=12)
        axis.set_xticks(range(len(systems)), systems, rotation=60, ha="right", fontsize=7)
        axis.set_title(metric)
    record = results["record"]
    figure.suptitle(
        # Two lines: one would be cut off on a figure of two metrics.
        f"{record['task']} — {record['model']['loaded']}\n95% bootstrap CI; * better than "
        "none, permutation p < 0.05",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
