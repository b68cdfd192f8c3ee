"""A results file made readable: a markdown table and a PNG plot of every metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _digits(metric: str) -> int:
    return 2 if metric == "bleu" else 3  # BLEU is on a 0-100 scale, the rest 0-1 or ratings


def _cell(estimate: dict[str, float], metric: str) -> str:
    d = _digits(metric)
    return f"{estimate['value']:.{d}f} [{estimate['low']:.{d}f}, {estimate['high']:.{d}f}]"


def _delta(test: dict[str, Any], metric: str) -> str:
    d = _digits(metric)
    mark = " ✓" if test["better"] and test["p_value"] < 0.05 else ""
    interval = f"[{test['low']:+.{d}f}, {test['high']:+.{d}f}]"
    return f"{test['delta']:+.{d}f} {interval}, p={test['p_value']:.3f}{mark}"


def _short(text: str, limit: int = 90) -> str:
    flat = " ".join(text.split()).replace("|", "/")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _settings_table(scores: dict[str, Any], meta: dict[str, Any], metrics: list[str]) -> list[str]:
    arrows = {m["name"]: "↑" if m["higher_is_better"] else "↓" for m in scores["metrics"]}
    labelled = any(i.get("in_label_set") is not None for i in meta["settings"].values())
    chosen = meta.get("answers", "").startswith("choice")
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


def _provenance(meta: dict[str, Any]) -> str:
    """One line saying what produced the run: when, where, settings and versions."""
    packages = meta.get("packages", {})
    versions = ", ".join(f"{name} {v}" for name, v in packages.items() if v)
    bertscore = meta.get("bertscore")
    scorer = f", BERTScore {bertscore['model']} layer {bertscore['layer']}" if bertscore else ""
    return (
        f"Run {meta.get('time', '?')} on {meta.get('platform', '?')}; model spec "
        f"`{meta['model_spec']}`, embeddings `{meta.get('embed_model') or '-'}`, batch size "
        f"{meta['batch_size']}, answers `{meta['answers']}`{scorer}. Versions: {versions}."
    )


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    scores = results["scores"]
    metrics = [m["name"] for m in scores["metrics"]]
    decoding = (
        "answers chosen by likelihood"
        if meta.get("answers", "").startswith("choice")
        else f"greedy decoding, at most {meta['max_new_tokens']} new tokens"
    )
    lines = [
        f"# {meta['task']} — {meta['model']}",
        "",
        f"{scores['examples']} questions from `{', '.join(meta['data'])}` "
        f"(sha256 {meta['data_hash'][:12]}), {decoding}, "
        f"prompts capped at {meta['prompt_tokens']} tokens.",
    ]
    if meta.get("answers") == "first-label":
        lines.append(
            "Answers: the first label found in each output (`--answers first-label`), "
            "not LaMP's rule of scoring the raw text."
        )
    elif meta.get("answers") == "choice":
        lines.append(
            "Answers: the label the model finds most likely as its whole reply "
            "(`--answers choice`, log-likelihood ranking; nothing is generated), not LaMP's "
            "rule of scoring generated text."
        )
    elif meta.get("answers") == "choice-calibrated":
        lines.append(
            "Answers: the most likely label after batch calibration (`--answers "
            "choice-calibrated`: each label's probability divided by its mean over all the "
            "questions, which removes the model's preference for some labels whatever the "
            "question); nothing is generated. Not LaMP's rule of scoring generated text."
        )
    if "lamp_rouge_definition" in scores:
        lines.append(
            "ROUGE (LaMP): what LaMP's evaluator reports, the bootstrap median of the "
            "per-example F-measures (seed 0); ROUGE mean: their plain mean, with the 95% CI, "
            "and the one the paired tests compare."
        )
    if meta.get("baseline_added"):
        lines.append("`none` (no personalization) was added to the settings as the baseline.")
    if meta.get("skipped"):
        skipped = ", ".join(f"{n} × {reason}" for reason, n in sorted(meta["skipped"].items()))
        lines.append(f"Skipped records: {skipped}.")
    lines += ["", *_settings_table(scores, meta, metrics)]
    compared = [(n, e["vs_none"]) for n, e in scores["systems"].items() if "vs_none" in e]
    if compared:
        lines += ["", "Difference from `none` (paired; Δ [95% CI], p):", ""]
        lines.append("| setting | " + " | ".join(metrics) + " |")
        lines.append("|" + " --- |" * (len(metrics) + 1))
        for name, tests in compared:
            lines.append(f"| {name} | " + " | ".join(_delta(tests[m], m) for m in metrics) + " |")
        lines += ["", "✓: better than `none` at p < 0.05."]
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
    lines += ["", _provenance(meta)]
    lines += ["", "![metrics](report.png)", ""]
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
        axis.set_xticks(range(len(systems)), systems, rotation=60, ha="right", fontsize=7)
        axis.set_title(metric)
    figure.suptitle(
        f"{results['meta']['task']} — {results['meta']['model']} (95% bootstrap CI)", fontsize=9
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
