"""Engine: the one entry point that wires a store, models and strategies.

A request reads top to bottom: ``generate`` → the user's context in the store (scoped to
that user) → user model (retrieval or summary) → strategy builds the model input → the
text model → an output saved with its provenance (which context items shaped it).
``generate_image`` does the same for images (subjects or interacted items → the image
model), and ``recommend`` ranks items for a user with a trained recommender.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from pgen.config import Config
from pgen.context.base import UserNotFoundError
from pgen.context.base import ContextStore
from pgen.models.base import Chat, Embedder, GenerationConfig, TextModel
from pgen.personalize import TEXT_STRATEGIES, Prepared, Request, Strategy, Tools
from pgen.usermodel.retrievers import Retrievers

if TYPE_CHECKING:
    from pgen.models.image import DiffusersImageModel, ImageGenerationConfig
    from pgen.personalize.keywords import KeywordsConfig
    from pgen.personalize.subject import IPAdapterSpec
    from pgen.recommend.service import Recommendation

IMAGE_STRATEGIES = ("none", "subject", "keywords")


@dataclass(frozen=True)
class Generation:
    output_id: str | None  # None when not saved
    user_id: str
    strategy: str
    text: str
    provenance: list[str]  # ids of the user's documents that went into the prompt
    prompt: Chat
    details: dict[str, Any]


@dataclass(frozen=True)
class ImageGeneration:
    output_id: str
    user_id: str
    strategy: str
    prompt: str  # what the image model was given
    paths: list[Path]
    provenance: dict[str, Any]  # the subjects, items and artifacts that shaped the images


class Engine:
    def __init__(
        self,
        store: ContextStore,
        text_model: TextModel | Callable[[], TextModel],
        embedder: Embedder | Callable[[], Embedder],
        *,
        image_model: DiffusersImageModel | Callable[[], DiffusersImageModel] | None = None,
        prompt_tokens: int = 1024,
    ) -> None:
        self.store = store
        self._text_model = text_model
        self._embedder = embedder
        self._image_model = image_model
        self.retrievers = Retrievers(store, self._get_embedder)
        self.prompt_tokens = prompt_tokens

    @classmethod
    def open(cls, config: Config, **options: Any) -> Engine:
        """An engine over the configured store; models load on first use."""
        from pgen.models.embedding import SentenceEmbedder
        from pgen.models.image import load_image_model
        from pgen.models.text import load_text_model

        config.apply_threads()
        options.setdefault(
            "image_model", lambda: load_image_model(config.image_model, device=config.device)
        )
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

    @property
    def image_model(self) -> DiffusersImageModel:
        from pgen.models.image import DiffusersImageModel

        if self._image_model is None:
            raise ValueError("this engine has no image model (set image_model in the config)")
        if not isinstance(self._image_model, DiffusersImageModel):
            self._image_model = self._image_model()
        return self._image_model

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

    def prepare(
        self, requests: list[Request], generation: GenerationConfig | None = None
    ) -> list[Prepared]:
        """Each request's model input (chat) and provenance, built by its strategy; the
        text model is only called by strategies that need it (a profile summary)."""
        settings = generation or GenerationConfig()
        tools = Tools(self.store, self.retrievers, self.text_model, settings, self.prompt_tokens)
        built_for: dict[int, Prepared] = {}
        by_strategy: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            by_strategy.setdefault(request.strategy, []).append(index)
        for name, indexes in by_strategy.items():
            built = self.strategy(name).prepare([requests[i] for i in indexes], tools)
            built_for.update(zip(indexes, built, strict=True))
        return [built_for[i] for i in range(len(requests))]

    def _generate_batch(
        self, requests: list[Request], settings: GenerationConfig, save: bool
    ) -> list[Generation]:
        prepared = self.prepare(requests, settings)
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

    def generate_image(
        self,
        user_id: str,
        instruction: str,
        *,
        strategy: str = "none",
        sampling: ImageGenerationConfig | None = None,
        subject: str | None = None,
        method: str | None = None,
        ip_adapter: IPAdapterSpec | None = None,
        keywords: KeywordsConfig | None = None,
        out: Path | None = None,
    ) -> ImageGeneration:
        """Images for one request, saved with their provenance.

        ``subject``: the user's subject (named, or the one the instruction mentions) by a
        trained ``method`` or IP-Adapter; ``keywords``: preferences drawn from the items
        the user interacted with. Images are the user's data: unless ``out`` is given they
        go into an artifact folder of the user's, which delete-user removes.
        """
        from pgen.models.image import ImageOutput

        if strategy not in IMAGE_STRATEGIES:
            raise ValueError(
                f"unknown image strategy {strategy!r}; choose from {', '.join(IMAGE_STRATEGIES)}"
            )
        self.store.user(user_id)  # fails with the user named before any model loads
        if strategy == "subject":
            from pgen.personalize.subject import generate_subject

            output = generate_subject(
                self.store,
                user_id,
                instruction,
                self.image_model,
                sampling,
                subject_name=subject,
                method=method,
                ip_adapter=ip_adapter,
            )
        elif strategy == "keywords":
            from pgen.personalize.keywords import generate_keywords

            output = generate_keywords(
                self.store,
                user_id,
                instruction,
                self.text_model,
                self.image_model,
                sampling,
                keywords,
            )
        else:
            images = self.image_model.generate([instruction], sampling)
            output = ImageOutput(images, instruction, "none", {})
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        folder = out or self.store.artifact_path(user_id, "images", stamp)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"{k:02d}.png" for k in range(len(output.images))]
        for image, path in zip(output.images, paths, strict=True):
            image.save(path)
        provenance = {**output.provenance, "prompt": output.prompt, "images": list(map(str, paths))}
        saved = self.store.save_output(
            user_id, instruction, output.strategy, "\n".join(map(str, paths)), provenance
        )
        return ImageGeneration(
            saved.output_id, user_id, output.strategy, output.prompt, paths, provenance
        )

    def recommend(
        self, user_id: str, k: int = 10, *, model: str = "sasrec", rerank: int = 0
    ) -> list[Recommendation]:
        """The user's top ``k`` unseen items from the recommender ``model`` trained on this
        store (`pgen recommend --train`). ``rerank`` N > 0: the text model re-orders the
        top N from the user's recent items (LLM re-ranking)."""
        from pgen.recommend.service import recommend

        reranker = self.text_model if rerank > 0 else None
        return recommend(self.store, model, user_id, k, reranker, candidates=rerank)

    def delete_user(self, user_id: str) -> dict[str, int]:
        """Forget a user everywhere: store rows, files, and in-memory indexes."""
        counts = self.store.delete_user(user_id)
        self.retrievers.forget(user_id)
        return counts

    def close(self) -> None:
        self.store.close()
