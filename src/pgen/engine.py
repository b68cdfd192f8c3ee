"""Engine: the one entry point that wires a store, models and strategies.

A request reads top to bottom: ``generate`` → the user's context in the store (scoped to
that user) → user model (retrieval or summary) → strategy builds the model input → the
text model → an output saved with its provenance (which context items shaped it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from pgen.config import Config
from pgen.context.sqlite import UserNotFoundError
from pgen.context.store import Store
from pgen.models.base import Chat, Embedder, GenerationConfig, TextModel
from pgen.personalize import TEXT_STRATEGIES, Prepared, Request, Strategy, Tools
from pgen.usermodel.retrievers import Retrievers


@dataclass(frozen=True)
class Generation:
    output_id: str | None  # None when not saved
    user_id: str
    strategy: str
    text: str
    provenance: list[str]  # ids of the user's documents that went into the prompt
    prompt: Chat
    details: dict[str, Any]


class Engine:
    def __init__(
        self,
        store: Store,
        text_model: TextModel | Callable[[], TextModel],
        embedder: Embedder | Callable[[], Embedder],
        *,
        prompt_tokens: int = 1024,
    ) -> None:
        self.store = store
        self._text_model = text_model
        self._embedder = embedder
        self.retrievers = Retrievers(store, self._get_embedder)
        self.prompt_tokens = prompt_tokens

    @classmethod
    def open(cls, config: Config, **options: Any) -> Engine:
        """An engine over the configured store; models load on first use."""
        from pgen.models.embedding import SentenceEmbedder
        from pgen.models.text import load_text_model

        config.apply_threads()
        return cls(
            Store(config.store_path),
            lambda: load_text_model(config.text_model, config),
            lambda: SentenceEmbedder(config.embed_model, device=config.device),
            **options,
        )

    @property
    def text_model(self) -> TextModel:
        if not isinstance(self._text_model, TextModel):
            self._text_model = self._text_model()
        return self._text_model

    def _get_embedder(self) -> Embedder:
        if not isinstance(self._embedder, Embedder):
            self._embedder = self._embedder()
        return self._embedder

    def strategy(self, name: str) -> Strategy:
        if name not in TEXT_STRATEGIES:
            raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(TEXT_STRATEGIES)}")
        return TEXT_STRATEGIES[name]

    def generate(self, user_id: str, instruction: str, **options: Any) -> Generation:
        """One personalized output. Options: strategy, k, retriever, query, generation, save."""
        generation = options.pop("generation", None)
        save = options.pop("save", True)
        request = Request(user_id=user_id, instruction=instruction, **options)
        return self.generate_many([request], generation=generation, save=save)[0]

    def generate_many(
        self,
        requests: list[Request],
        generation: GenerationConfig | None = None,
        *,
        save: bool = True,
        batch_size: int = 16,
        progress: bool = False,
    ) -> list[Generation]:
        """Outputs for many requests, the model called in batches of ``batch_size``."""
        for request in requests:  # fail before loading any model
            self.strategy(request.strategy)
            if not self.store.has_user(request.user_id):
                raise UserNotFoundError(request.user_id)
        settings = generation or GenerationConfig()
        results: list[Generation] = []
        bar = tqdm(total=len(requests), desc="generating", unit="req", disable=not progress)
        for start in range(0, len(requests), batch_size):
            batch = requests[start : start + batch_size]
            results += self._generate_batch(batch, settings, save)
            bar.update(len(batch))
        bar.close()
        return results

    def _generate_batch(
        self, requests: list[Request], settings: GenerationConfig, save: bool
    ) -> list[Generation]:
        tools = Tools(self.store, self.retrievers, self.text_model, settings, self.prompt_tokens)
        built_for: dict[int, Prepared] = {}
        by_strategy: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            by_strategy.setdefault(request.strategy, []).append(index)
        for name, indexes in by_strategy.items():
            built = self.strategy(name).prepare([requests[i] for i in indexes], tools)
            built_for.update(zip(indexes, built, strict=True))
        prepared = [built_for[i] for i in range(len(requests))]
        chats = [p.chat for p in prepared]
        texts = self.text_model.generate(chats, settings)
        results = []
        for request, item, text in zip(requests, prepared, texts, strict=True):
            output_id = None
            if save:
                provenance = {"documents": item.provenance, "k": request.k, **item.details}
                stored = self.store.save_output(
                    request.user_id, request.instruction, request.strategy, text, provenance
                )
                output_id = stored.output_id
            results.append(
                Generation(
                    output_id=output_id,
                    user_id=request.user_id,
                    strategy=request.strategy,
                    text=text,
                    provenance=item.provenance,
                    prompt=item.chat,
                    details=item.details,
                )
            )
        return results

    def delete_user(self, user_id: str) -> dict[str, int]:
        """Forget a user everywhere: store rows, files, and in-memory indexes."""
        counts = self.store.delete_user(user_id)
        self.retrievers.forget(user_id)
        return counts

    def close(self) -> None:
        self.store.close()
