"""Per-user PEFT LoRA adapters over one transformers model, for mixed-adapter batches.

Each adapter folder is loaded once into the shared ``PeftModel`` under a slot name of ours
(PEFT adapter names become module keys, so a user's artifact name cannot be used as is),
and kept in a bounded LRU cache; the least recently used ones are unloaded when more are
needed. One batch can then hold requests of many users: PEFT's ``adapter_names=`` routes
each row through its own adapter (``__base__``: none) in the same forward pass.

PEFT's routing is global state (forward hooks registered for the duration of a call, the
set of loaded adapters), so every model call goes through ``lock``: two threads never
interleave their hooks, and an adapter is never unloaded under a running batch.
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

# The kinds of AdapterRef this backend applies: all of them PEFT LoRA folders.
TEXT_ADAPTER_KINDS = ("lora", "task-lora", "dpo")
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def _version(folder: Path) -> str:
    """Changes when the folder's weights are rewritten (a retrained adapter keeps its name)."""
    for name in WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            stat = path.stat()
            return f"{stat.st_size}:{stat.st_mtime_ns}"
    raise FileNotFoundError(f"{folder} holds no PEFT adapter weights ({' or '.join(WEIGHT_FILES)})")


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

    def __init__(self, model: Any, capacity: int = 16) -> None:
        if capacity < 1:
            raise ValueError(f"adapter cache capacity must be at least 1, got {capacity}")
        self.base = model
        self.capacity = capacity
        self.peft: Any = None  # the PeftModel, made on the first adapter
        self.lock = threading.RLock()
        # (adapter name, folder, weights version) -> slot name, least recently used first
        self._slots: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self._counter = 0
        self.loads = 0  # adapters read from disk so far (tests and benchmarks read it)

    @property
    def model(self) -> Any:
        """What to call: the PeftModel once an adapter was loaded, else the plain model."""
        return self.peft if self.peft is not None else self.base

    def loaded(self) -> list[str]:
        """Names of the adapters in memory, least recently used first."""
        return [key[0] for key in self._slots]

    def slot_names(self, refs: Sequence[AdapterRef | None]) -> list[str] | None:
        """PEFT adapter names for one batch (``__base__`` for rows without one), loading
        what is missing; None when no row has an adapter. The caller holds ``lock`` until
        the batch has run, so nothing named here is unloaded meanwhile."""
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
        slot = f"user_adapter_{self._counter}"
        if self.peft is None:
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
                # PEFT warns that the active adapter went; we route per row, not by it
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    self.peft.delete_adapter(self._slots.pop(key))

    @contextmanager
    def base_only(self) -> Iterator[Any]:
        """The model with every adapter switched off (base-model batches, log-likelihoods)."""
        with self.lock:
            if self.peft is None:
                yield self.base
            else:
                with self.peft.disable_adapter():
                    yield self.peft
