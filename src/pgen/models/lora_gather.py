"""Many users' LoRA adapters in one batch, gathered per row (the Punica / S-LoRA idea).

PEFT's mixed-adapter inference loops over the distinct adapters of a batch inside every
LoRA layer: the rows of one adapter are gathered, multiplied, scattered back, once per
adapter per layer per decoding step. Its cost grows with the number of distinct users in
a batch (32 users: 60–80% of the base model's throughput here). This module instead
stacks, once per batch, every row's low-rank factors into two tensors per target layer,
and each forward pass adds ``x @ A_row @ B_row`` for all rows with two batched matmuls: the
cost is the same whether the batch holds one adapter or one per row.

Adapters are read from their PEFT folders (the user's artifact stays plain PEFT); only
what PEFT's own LoRA layers compute is supported here (``nn.Linear`` targets, plain or
rank-stabilized scaling, no DoRA, no bias, no extra trained modules): anything else is
refused with the setting that serves it through PEFT.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True)
class GatheredLora:
    """One adapter's factors per target module, scaling folded in: ``delta = x @ a @ b``
    with ``a`` of shape (in, r) and ``b`` of shape (r, out)."""

    factors: dict[str, tuple[Any, Any]]

    @property
    def megabytes(self) -> float:
        tensors = [t for pair in self.factors.values() for t in pair]
        return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def _unsupported(config: dict[str, Any]) -> str | None:
    """Why PEFT would compute something this module does not, or None."""
    if config.get("peft_type", "LORA") != "LORA":
        return f"peft_type {config.get('peft_type')}"
    if config.get("use_dora"):
        return "DoRA"
    if config.get("bias", "none") != "none":
        return f"bias={config['bias']}"
    if config.get("lora_bias"):
        return "lora_bias"
    if config.get("modules_to_save"):
        return "modules_to_save"
    if config.get("fan_in_fan_out"):
        return "fan_in_fan_out"
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        return "per-module rank or alpha patterns"
    return None


def adapter_weights(folder: Path) -> dict[str, Any]:
    import torch

    safetensors = folder / "adapter_model.safetensors"
    if safetensors.is_file():
        from safetensors.torch import load_file

        return dict(load_file(str(safetensors)))
    loaded = torch.load(folder / "adapter_model.bin", map_location="cpu", weights_only=True)
    return dict(loaded)


def read_lora(folder: Path, model: Any) -> GatheredLora:
    """The adapter in ``folder`` as factors for ``model``'s modules, on its device and dtype."""
    import torch

    config = json.loads((folder / "adapter_config.json").read_text())
    reason = _unsupported(config)
    if reason is not None:
        raise ValueError(
            f"adapter {folder} uses {reason}, which gathered batches do not compute; "
            'serve it with the text model setting adapter_mixing = "peft"'
        )
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    modules = dict(model.named_modules())
    tensors = adapter_weights(folder)
    factors: dict[str, tuple[Any, Any]] = {}
    for key, down in tensors.items():
        if not key.endswith(".lora_A.weight"):
            continue
        name = key.removeprefix(PEFT_PREFIX).removesuffix(".lora_A.weight")
        up = tensors.get(key.replace(".lora_A.", ".lora_B."))
        layer = modules.get(name)
        if up is None or not isinstance(layer, torch.nn.Linear):
            raise ValueError(f"adapter {folder}: {name} is not a linear layer of the model")
        like = layer.weight
        factors[name] = (
            down.t().contiguous().to(like.device, like.dtype),  # (in, r)
            (up.t() * scale).contiguous().to(like.device, like.dtype),  # (r, out)
        )
    if not factors:
        raise ValueError(f"adapter {folder} holds no LoRA weights")
    return GatheredLora(factors)


def _stacked(rows: Sequence[GatheredLora | None], name: str, layer: Any) -> tuple[Any, Any]:
    """Per-row factors of one module, zero-padded to the batch's largest rank (a zero
    factor adds nothing: rows without an adapter, or whose adapter skips this module)."""
    import torch

    ranks = [row.factors[name][0].shape[1] for row in rows if row and name in row.factors]
    rank = max(ranks)
    like = layer.weight
    down = torch.zeros(len(rows), layer.in_features, rank, device=like.device, dtype=like.dtype)
    up = torch.zeros(len(rows), rank, layer.out_features, device=like.device, dtype=like.dtype)
    for i, row in enumerate(rows):
        if row is not None and name in row.factors:
            a, b = row.factors[name]
            down[i, :, : a.shape[1]] = a
            up[i, : b.shape[0]] = b
    return down, up


@contextmanager
def rows_applied(model: Any, rows: Sequence[GatheredLora | None]) -> Iterator[None]:
    """``model`` with row i of every batch it runs going through ``rows[i]``'s adapter
    (None: the base). A single row applies to every row of the call (one prompt's cache
    repeated over several continuations). The caller holds the model's lock."""
    names = sorted({name for row in rows if row is not None for name in row.factors})
    modules = dict(model.named_modules())
    handles = []
    try:
        for name in names:
            down, up = _stacked(rows, name, modules[name])

            def add_delta(
                _module: Any, inputs: Any, output: Any, down: Any = down, up: Any = up
            ) -> Any:
                x = inputs[0]
                a, b = down, up
                if a.shape[0] != x.shape[0]:
                    if a.shape[0] != 1:
                        raise ValueError(
                            f"a batch of {x.shape[0]} rows for {a.shape[0]} adapter rows"
                        )
                    a, b = a.expand(x.shape[0], -1, -1), b.expand(x.shape[0], -1, -1)
                return output + (x @ a) @ b

            handles.append(modules[name].register_forward_hook(add_delta))
        yield
    finally:
        for handle in handles:
            handle.remove()
