"""Metrics for personalized generation (text metrics here; image metrics in their own module)."""

from pgen.evaluate.metrics.base import Metric
from pgen.evaluate.metrics.labels import accuracy, lamp2_labels, macro_f1, mae, rmse
from pgen.evaluate.metrics.overlap import bleu, lamp_rouge_bootstrap_mid, meteor, rouge

__all__ = [
    "Metric",
    "accuracy",
    "bleu",
    "lamp2_labels",
    "lamp_rouge_bootstrap_mid",
    "macro_f1",
    "mae",
    "meteor",
    "rmse",
    "rouge",
]
