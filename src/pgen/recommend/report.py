"""Reports of `pgen bench rec`: a table on screen, a JSON result file, a training plot."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SHOWN = ("hr@10", "ndcg@10", "mrr@10", "recall@10", "hr@20", "ndcg@20")


def table(result: dict[str, Any]) -> str:
    """Markdown rows: one per evaluation, its mode and user count spelled out."""
    header = ["scorer", "phase", "mode", "users", *SHOWN]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in result["results"]:
        metrics = row["metrics"]
        values = []
        for name in SHOWN:
            # Sampled-mode keys carry their label; look the metric up under it.
            key = next((k for k in metrics if k == name or k.startswith(name + "[")), None)
            values.append(f"{metrics[key]:.4f}" if key else "-")
        cells = [row["scorer"], row["phase"], row["mode"], str(row["n_users"]), *values]
        lines.append("| " + " | ".join(cells) + " |")
    training = result.get("training") or {}
    if training.get("epochs"):
        lines.append(
            f"\ntraining: {len(training['epochs'])} epochs, best epoch {training['best_epoch']}, "
            f"{training['seconds_per_epoch']:.2f} s/epoch, {training['seconds_to_best']:.1f} s "
            f"to best, {result['record']['threads']} threads"
        )
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> Path | None:
    """Validation NDCG@10 and loss per epoch; None when matplotlib is not installed."""
    epochs = [row for row in (result.get("training") or {}).get("epochs", [])]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    if epochs:
        evaluated = [row for row in epochs if "valid_ndcg10" in row]
        left.plot([r["epoch"] for r in evaluated], [r["valid_ndcg10"] for r in evaluated], "o-")
        right.plot([r["epoch"] for r in epochs], [r["loss"] for r in epochs], "o-")
    left.set(xlabel="epoch", ylabel="valid NDCG@10 (full ranking)", title=result["model"])
    right.set(xlabel="epoch", ylabel="training loss")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """``<out>/rec-<data>-<model>-<time>.{json,md,png}``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    name = result["data"].get("name") or "store"
    stem = out_dir / f"rec-{name}-{result['model']}-{stamp}"
    paths = {"json": stem.with_suffix(".json"), "table": stem.with_suffix(".md")}
    paths["json"].write_text(json.dumps(result, indent=1, default=str))
    paths["table"].write_text(table(result) + "\n")
    picture = plot(result, stem.with_suffix(".png"))
    if picture is not None:
        paths["plot"] = picture
    return paths
