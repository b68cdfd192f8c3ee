"""Per-user PEFT LoRA adapters over one transformers model, for mixed-adapter batches.

Each adapter folder is loaded once and kept in a bounded LRU cache; the least recently
used ones are unloaded when more are needed. One batch can then hold requests of many
users, each row through its own adapter (``__base__``: none) in the same forward pass, in
one of two ways (``mixing``):

* ``gathered`` (default): every row's factors stacked once per batch and applied with two
  batched matmuls per layer (``pgen.models.lora_gather``), a cost that does not grow with
  the number of distinct users in the batch;
* ``peft``: PEFT's own mixed-adapter inference (``adapter_names=``), which loops over the
  batch's distinct adapters in every layer, and serves any adapter PEFT can load.

Both are global model state for the duration of a call (forward hooks, the set of loaded
adapters), so every model call goes through ``lock``: two threads never interleave their
hooks, and an adapter is never unloaded under a running batch.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pgen.models.base import BASE_ADAPTER, AdapterRef
from pgen.models.lora_gather import GatheredLora, read_lora, rows_applied

# The kinds of AdapterRef this backend applies, all of them PEFT LoRA folders: the adapter
# kinds of the registered text trainers (pgen.training.registry registers each here).
TEXT_ADAPTER_KINDS: list[str] = []
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
MIXING = ("gathered", "peft")


def _version(folder: Path) -> str:
    """Changes when the folder's weights are rewritten (a retrained adapter keeps its name)."""
    for name in WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            stat = path.stat()
            return f"{stat.st_size}:{stat.st_mtime_ns}"
    raise FileNotFoundError(f"{folder} holds no PEFT adapter weights ({' or '.join(WEIGHT_FILES)})")


def register_adapter_kind(kind: str) -> None:
    """Let text models apply adapters of ``kind`` (PEFT LoRA folders)."""
    if kind not in TEXT_ADAPTER_KINDS:
        TEXT_ADAPTER_KINDS.append(kind)


def check_ref(ref: AdapterRef) -> Path:
    """The adapter's folder, or a clear error for one this backend cannot apply."""
    if ref.kind not in TEXT_ADAPTER_KINDS:
        raise ValueError(
            f"a text model applies {', '.join(TEXT_ADAPTER_KINDS)} adapters, not {ref.kind!r} "
            f"({ref.name})"
        )
    if ref.path is None or not (Path(ref.path) / "adapter_config.json").is_file():
        raise FileNotFoundError(f"adapter {ref.name}: no PEFT adapter folder at {ref.path}")
    return Path(ref.path)


class AdapterCache:
    """LoRA adapters loaded into one model, at most ``capacity`` of them at a time."""

    def __init__(self, model: Any, capacity: int = 16, mixing: str = "gathered") -> None:
        if capacity < 1:
            raise ValueError(f"adapter cache capacity must be at least 1, got {capacity}")
        if mixing not in MIXING:
            raise ValueError(f"adapter_mixing must be one of {', '.join(MIXING)}, not {mixing!r}")
        self.base = model
        self.capacity = capacity
        self.mixing = mixing
        self.peft: Any = None  # the PeftModel (mixing "peft"), made on the first adapter
        self.lock = threading.RLock()
        # (adapter name, folder, weights version) -> slot name, least recently used first
        self._slots: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self._gathered: dict[str, GatheredLora] = {}  # slot -> factors (mixing "gathered")
        self._counter = 0
        self.loads = 0  # adapters read from disk so far (tests and benchmarks read it)

    @property
    def model(self) -> Any:
        """What to call: the PeftModel once an adapter was loaded, else the plain model."""
        return self.peft if self.peft is not None else self.base

    def loaded(self) -> list[str]:
        """Names of the adapters in memory, least recently used first."""
        return [key[0] for key in self._slots]

    @contextmanager
    def applied(self, refs: Sequence[AdapterRef | None]) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Under the lock, for one batch: the model to call and the extra keyword arguments
        of its ``generate`` / forward, row i through ``refs[i]``'s adapter. One ref for a
        call of several rows applies to all of them (a prompt's repeated cache)."""
        with self.lock:
            names = self.slot_names(refs)
            if names is None:
                with self.base_only() as model:
                    yield model, {}
            elif self.mixing == "peft":
                yield self.peft, {"adapter_names": names}
            else:
                rows = [self._gathered.get(name) for name in names]
                with rows_applied(self.base, rows):
                    yield self.base, {}

    @property
    def megabytes(self) -> float:
        """Memory of the adapter weights loaded."""
        if self.mixing == "gathered":
            return sum(weights.megabytes for weights in self._gathered.values())
        if self.peft is None:
            return 0.0
        tensors = [p for n, p in self.peft.named_parameters() if "lora_" in n]
        return sum(t.numel() * t.element_size() for t in tensors) / 2**20

    def slot_names(self, refs: Sequence[AdapterRef | None]) -> list[str] | None:
        """Slot names for one batch (``__base__`` for rows without one), loading what is
        missing; None when no row has an adapter. The caller holds ``lock`` until the
        batch has run, so nothing named here is unloaded meanwhile."""
        if all(ref is None for ref in refs):
            return None
        wanted: dict[tuple[str, str, str], AdapterRef] = {}
        for ref in refs:
            if ref is not None:
                folder = check_ref(ref)
                wanted.setdefault((ref.name, str(folder), _version(folder)), ref)
        for key in wanted:
            if key in self._slots:
                self._slots.move_to_end(key)
            else:
                self._load(key)
        self._evict(keep=set(wanted))
        names = []
        for ref in refs:
            if ref is None:
                names.append(BASE_ADAPTER)
            else:
                folder = Path(str(ref.path))
                names.append(self._slots[(ref.name, str(folder), _version(folder))])
        return names

    def _load(self, key: tuple[str, str, str]) -> None:
        from peft import PeftModel

        self._counter += 1
        # PEFT adapter names become module keys: a user's artifact name cannot be one.
        slot = f"user_adapter_{self._counter}"
        if self.mixing == "gathered":
            self._gathered[slot] = read_lora(Path(key[1]), self.base)
        elif self.peft is None:
            self.peft = PeftModel.from_pretrained(self.base, key[1], adapter_name=slot)
            self.peft.eval()
        else:
            self.peft.load_adapter(key[1], adapter_name=slot)
        self._slots[key] = slot
        self.loads += 1

    def _evict(self, keep: set[tuple[str, str, str]]) -> None:
        """Unload least recently used adapters beyond capacity, never one the batch needs
        (a batch with more distinct adapters than ``capacity`` keeps them all until done)."""
        for key in list(self._slots):
            if len(self._slots) <= self.capacity:
                break
            if key not in keep:
                slot = self._slots.pop(key)
                if self.mixing == "gathered":
                    del self._gathered[slot]
                    continue
                # PEFT warns that the active adapter went; we route per row, not by it
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    self.peft.delete_adapter(slot)

    @contextmanager
    def base_only(self) -> Iterator[Any]:
        """The model with every adapter switched off (base-model batches, log-likelihoods)."""
        with self.lock:
            if self.peft is None:
                yield self.base
            else:
                with self.peft.disable_adapter():
                    yield self.peft
