"""Vision-language models: chats whose messages carry images, one protocol, two backends.

* ``TransformersVisionModel``: ``AutoModelForImageTextToText`` + ``AutoProcessor`` from a
  Hub id or a folder (LLaVA, Idefics3, Qwen2-VL, SmolVLM...), the processor's own chat
  template with image parts, left-padded batches, greedy decoding by default.
* ``OpenAIVisionModel``: an OpenAI-compatible server (vLLM, Ollama, llama.cpp), images
  sent as ``image_url`` content parts with base64 data URLs, through the text backend's
  client (``OpenAITextModel.complete_messages``).
"""

from __future__ import annotations

import base64
import inspect
import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from pgen.models.base import GenerationSettings, Role

MAX_SIDE = 1024  # images sent to a server are shrunk to this side: servers resize anyway


@dataclass(frozen=True)
class VisionMessage:
    """One message: its images come before its text (as most VLM templates expect)."""

    role: Role
    text: str
    images: tuple[Image.Image, ...] = ()


VisionChat = list[VisionMessage]


@runtime_checkable
class VisionLanguageModel(Protocol):
    name: str

    def generate(
        self, chats: Sequence[VisionChat], config: GenerationSettings | None = None
    ) -> list[str]:
        """One reply per chat."""
        ...


def _parts(message: VisionMessage) -> dict[str, Any]:
    """The message in the transformers chat-template form."""
    content: list[dict[str, Any]] = [{"type": "image", "image": im} for im in message.images]
    content.append({"type": "text", "text": message.text})
    return {"role": message.role, "content": content}


class TransformersVisionModel:
    def __init__(
        self,
        spec: str,
        *,
        name: str | None = None,
        device: str = "cpu",
        dtype: str = "auto",
        batch_size: int = 4,
    ) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from pgen.models.image import resolve_dtype
        from pgen.models.image_embedding import not_found

        local = Path(spec).expanduser()
        source = str(local) if local.exists() else spec
        self.name = name or spec
        self.device, self.batch_size = device, batch_size
        try:
            self.processor = AutoProcessor.from_pretrained(source)
            self.model = AutoModelForImageTextToText.from_pretrained(
                source, dtype=resolve_dtype(dtype, device)
            )
        except OSError as error:
            raise OSError(f"vision model {spec!r}: {not_found(error)}") from None
        # Batches are padded on the left, so every prompt ends where generation starts.
        self.processor.tokenizer.padding_side = "left"
        torch.nn.Module.to(self.model, device).eval()  # (typed as a module move)
        self._torch = torch
        # transformers 5 takes processor options in ``processor_kwargs``; 4.x took them loose.
        takes = inspect.signature(self.processor.apply_chat_template).parameters
        padding = {"padding": True}
        self._padding = {"processor_kwargs": padding} if "processor_kwargs" in takes else padding

    @property
    def placeholder(self) -> str:
        """The text that marks a soft token's slot in a prompt: the pad token, which real
        prompts never contain (a slot is a pad id inside the attention mask)."""
        tokenizer = self.processor.tokenizer
        if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
            raise ValueError(
                f"vision model {self.name}: soft tokens need a pad token distinct from eos"
            )
        return str(tokenizer.pad_token)

    @property
    def hidden_size(self) -> int:
        weight: Any = self.model.get_input_embeddings().weight
        return int(weight.shape[1])

    def encode(self, chats: Sequence[VisionChat], add_generation_prompt: bool = True) -> Any:
        """The processor's tensors for a batch of chats (left-padded)."""
        inputs = self.processor.apply_chat_template(
            [[_parts(m) for m in chat] for chat in chats],
            add_generation_prompt=add_generation_prompt,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            **self._padding,
        ).to(self.device)
        if "pixel_values" in inputs:  # images in the model's dtype (float16 on CUDA)
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        return inputs

    def with_soft_tokens(self, inputs: Any, soft: Sequence[Any | None]) -> dict[str, Any]:
        """The model's keyword arguments with ``inputs_embeds`` in place of ``input_ids``:
        each chat's placeholder slots, in order, take its rows of ``soft`` (a tensor of
        shape (slots, hidden)). The vectors exist for this call only: nothing is added to
        the shared model or tokenizer, so one user's tokens never reach another request."""
        ids = inputs["input_ids"]
        embeds = self.model.get_input_embeddings()(ids)
        slots = (ids == self.processor.tokenizer.pad_token_id) & inputs["attention_mask"].bool()
        rows = []
        for row, vectors in enumerate(soft):
            where = slots[row].nonzero().flatten()
            count = 0 if vectors is None else len(vectors)
            if len(where) != count:
                raise ValueError(f"prompt {row} has {len(where)} soft-token slots for {count}")
            rows.append(
                embeds[row]
                if vectors is None
                else embeds[row].index_put((where,), vectors.to(embeds.dtype))
            )
        out = {k: v for k, v in inputs.items() if k != "input_ids"}
        out["inputs_embeds"] = self._torch.stack(rows)
        return out

    def generate(
        self,
        chats: Sequence[VisionChat],
        config: GenerationSettings | None = None,
        soft_tokens: Sequence[Any | None] | None = None,
    ) -> list[str]:
        """One reply per chat; ``soft_tokens``: per chat, vectors for its placeholder slots."""
        from pgen.models.text import _decoding_options

        torch = self._torch
        settings = config or GenerationSettings()
        tokenizer = self.processor.tokenizer
        replies: list[str] = []
        for start in range(0, len(chats), self.batch_size):
            inputs = self.encode(chats[start : start + self.batch_size])
            kwargs: dict[str, Any] = dict(inputs)
            if soft_tokens is not None:
                kwargs = self.with_soft_tokens(inputs, soft_tokens[start : start + self.batch_size])
            torch.manual_seed(settings.seed)
            with torch.inference_mode():
                out = self.model.generate(
                    **kwargs,
                    **_decoding_options(settings),
                    pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                )
            # With input ids, generate returns prompt + reply; with embeddings, the reply.
            new = out if soft_tokens is not None else out[:, inputs["input_ids"].shape[1] :]
            replies += [
                text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True)
            ]
        return replies


def data_url(image: Image.Image) -> str:
    """The image as a JPEG data URL, no side over ``MAX_SIDE``."""
    copy = image.convert("RGB")
    copy.thumbnail((MAX_SIDE, MAX_SIDE))
    buffer = io.BytesIO()
    copy.save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def openai_messages(chat: VisionChat) -> list[dict[str, Any]]:
    """The chat in the OpenAI form: text-only messages as strings, others as part lists."""
    messages: list[dict[str, Any]] = []
    for message in chat:
        if not message.images:
            messages.append({"role": message.role, "content": message.text})
            continue
        parts: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": data_url(im)}} for im in message.images
        ]
        parts.append({"type": "text", "text": message.text})
        messages.append({"role": message.role, "content": parts})
    return messages


class OpenAIVisionModel:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 120.0,
    ) -> None:
        from pgen.models.http import OpenAITextModel

        self._client = OpenAITextModel(
            base_url, model, api_key=api_key, concurrency=concurrency, timeout=timeout
        )
        self.name = self._client.name
        self.concurrency = concurrency

    def generate(
        self, chats: Sequence[VisionChat], config: GenerationSettings | None = None
    ) -> list[str]:
        settings = config or GenerationSettings()
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(
                pool.map(
                    lambda chat: self._client.complete_messages(openai_messages(chat), settings),
                    chats,
                )
            )


def load_vision_model(spec: str, device: str = "cpu", dtype: str = "auto") -> VisionLanguageModel:
    """``openai:MODEL@BASE_URL`` for a server, else a Hub id or a local folder."""
    if spec.startswith("openai:"):
        model, sep, url = spec.removeprefix("openai:").partition("@")
        if not sep or not model or not url:
            raise ValueError(f"vision model {spec!r}: expected openai:MODEL@BASE_URL")
        return OpenAIVisionModel(url, model)
    return TransformersVisionModel(spec, device=device, dtype=dtype)
