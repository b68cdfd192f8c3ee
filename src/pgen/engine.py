"""Engine: the one typed API. The CLI, the HTTP service and Python users call these methods.

A request reads top to bottom: ``generate`` → the user's context in the store (scoped to
that user) → user model (retrieval or summary) → the strategy builds the model input and
names the user's adapter, if any → the model backend applies it for that request only →
an output saved with its provenance (which context items and artifacts shaped it).
``generate_image`` is the same path for images; ``train`` produces the artifacts that
strategies apply; ``recommend`` ranks catalog items; ``feedback`` closes the loop.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from pgen.config import Config
from pgen.context.base import (
    ContextStore,
    IngestStats,
    StoredOutput,
    UserNotFoundError,
    UserSummary,
)
from pgen.context.records import Feedback, Record
from pgen.factory import (
    Lazy,
    apply_thread_policy,
    build_assistant,
    build_embedder,
    build_image_model,
    build_store,
    build_text_model,
    check_components,
)
from pgen.models.base import BASE_ADAPTER, Embedder, GenerationConfig, TextModel, TextSink
from pgen.models.deltas import generate_to_sinks
from pgen.personalize import (
    ImageRequest,
    Modality,
    Prepared,
    Request,
    Strategy,
    Tools,
    get_strategy,
)
from pgen.personalize.base import render_images
from pgen.results import (
    ArtifactInfo,
    Generation,
    ImageGeneration,
    SearchHit,
    UserExport,
    UserView,
    check_instruction,
    check_k,
)
from pgen.training.registry import TrainRequest, TrainResult, get_trainer, stoppable
from pgen.usermodel.retrievers import Retrievers

__all__ = ["Engine", "Generation", "ImageGeneration", "SearchHit", "UserExport", "UserView"]

if TYPE_CHECKING:
    from pgen.assistant import Answer, Assistant, PhotoHit
    from pgen.models.image import DiffusersImageModel, ImageGenerationConfig
    from pgen.recommend.service import Recommendation


def _no_assistant(store: ContextStore) -> Assistant:
    raise ValueError("this engine has no multimodal assistant (open it with Engine.open)")


class Engine:
    def __init__(
        self,
        store: ContextStore,
        text_model: TextModel | Callable[[], TextModel],
        embedder: Embedder | Callable[[], Embedder],
        *,
        image_model: DiffusersImageModel | Callable[[], DiffusersImageModel] | None = None,
        prompt_tokens: int = 1024,
        generation: GenerationConfig | None = None,
        assistant: Callable[[ContextStore], Assistant] | None = None,
    ) -> None:
        self.store = store
        # The multimodal assistant (a VLM and an image embedder over this store), built on
        # first use: most commands never need it.
        build = assistant or _no_assistant
        self._assistant: Lazy[Assistant] = Lazy(lambda: build(store))
        self._text_model = Lazy(text_model)
        self._embedder = Lazy(embedder)
        self._image_model = None if image_model is None else Lazy(image_model)
        self.retrievers = Retrievers(store, self._embedder)
        self.prompt_tokens = prompt_tokens
        self.generation = generation or GenerationConfig()

    @classmethod
    def open(
        cls,
        config: Config,
        *,
        prompt_tokens: int | None = None,
        image_model: DiffusersImageModel | Callable[[], DiffusersImageModel] | None = None,
        assistant: Callable[[ContextStore], Assistant] | None = None,
    ) -> Engine:
        """An engine over the configured store; every component comes from the factory
        and models load on first use (local model paths are checked now)."""
        check_components(config)

        def loaded(build: Callable[[Config], Any]) -> Callable[[], Any]:
            def load() -> Any:
                apply_thread_policy(config)
                return build(config)

            return load

        return cls(
            build_store(config),
            loaded(build_text_model),
            loaded(build_embedder),
            image_model=image_model or loaded(build_image_model),
            prompt_tokens=prompt_tokens or config.prompt_tokens,
            generation=config.generation,
            assistant=assistant or (lambda store: build_assistant(config, store)),
        )

    # -- components -------------------------------------------------------------------
    @property
    def text_model(self) -> TextModel:
        return self._text_model()

    @property
    def image_model(self) -> DiffusersImageModel:
        if self._image_model is None:
            raise ValueError("this engine has no image model (set image_model in the config)")
        return self._image_model()

    def tools(
        self,
        generation: GenerationConfig | None = None,
        sampling: ImageGenerationConfig | None = None,
    ) -> Tools:
        load_image = None if self._image_model is None else self._image_model
        return Tools(
            self.store,
            self.retrievers,
            self._text_model,
            generation or self.generation,
            self.prompt_tokens,
            load_image,
            sampling,
        )

    @property
    def embedder(self) -> Embedder:
        return self._embedder()

    def strategy(self, name: str, modality: Modality = "text") -> Strategy:
        return get_strategy(modality, name)

    # -- context ----------------------------------------------------------------------
    def ingest(
        self, source: str | Path | Iterable[Record], *, progress: bool = False
    ) -> IngestStats:
        """Records, or a file of them (JSONL, LaMP questions), in one transaction."""
        from pgen.context.ingest import ingest

        if isinstance(source, str | Path):
            return ingest(self.store, source, progress=progress)
        return self.store.add(source)

    def users(self, offset: int = 0, limit: int | None = None) -> list[UserSummary]:
        if offset < 0 or (limit is not None and limit < 1):
            raise ValueError("offset must be >= 0 and limit >= 1")
        return self.store.users(offset, limit)

    def user(self, user_id: str, *, limit: int = 10) -> UserView:
        check_k(limit, "limit")
        user = self.store.user(user_id)
        documents = self.store.documents(user_id)
        return UserView(
            user=user,
            documents=documents[-limit:],
            total_documents=len(documents),
            interactions=len(self.store.interactions(user_id)),
            subjects=self.store.subjects(user_id),
            feedback=len(self.store.feedback(user_id)),
            outputs=len(self.store.outputs(user_id)),
        )

    def has_user(self, user_id: str) -> bool:
        return self.store.has_user(user_id)

    def export_user(self, user_id: str) -> UserExport:
        """Everything stored of the user: context, artifacts (by name), outputs, feedback."""
        from pgen.context.artifacts import read_meta

        user = self.store.user(user_id)
        artifacts = []
        for (kind, name), folder in sorted(self.store.artifacts(user_id).items()):
            meta = read_meta(folder)
            artifacts.append(
                ArtifactInfo(
                    kind,
                    name,
                    complete=meta is not None,
                    base_model=None if meta is None else meta.base_model,
                    created=None if meta is None else meta.created,
                )
            )
        return UserExport(
            user=user,
            documents=self.store.documents(user_id),
            interactions=self.store.interactions(user_id),
            subjects=self.store.subjects(user_id),
            artifacts=artifacts,
            outputs=self.store.outputs(user_id),
            feedback=self.store.feedback(user_id),
        )

    def search(
        self, user_id: str, query: str, *, k: int = 4, retriever: str = "bm25"
    ) -> list[SearchHit]:
        """The user's documents that best match ``query`` (only theirs, ever)."""
        check_k(k)
        check_instruction(query)
        self.store.user(user_id)
        found = self.retrievers.get(retriever)
        hits = found.retrieve(user_id, query, k)
        documents = {d.doc_id: d for d in self.store.documents(user_id, [h.doc_id for h in hits])}
        return [
            SearchHit(documents[hit.doc_id], hit.score, found.name)
            for hit in hits
            if hit.doc_id in documents
        ]

    # -- text -------------------------------------------------------------------------
    def generate(
        self,
        user_id: str,
        instruction: str,
        *,
        strategy: str = "rag",
        k: int = 4,
        retriever: str = "bm25",
        query: str | None = None,
        generation: GenerationConfig | None = None,
        save: bool = True,
    ) -> Generation:
        """One personalized output for one user."""
        request = Request(user_id, instruction, strategy, k, retriever, query)
        return self.generate_many([request], generation, save=save)[0]

    def generate_many(
        self,
        requests: list[Request],
        generation: GenerationConfig | None = None,
        *,
        save: bool = True,
        batch_size: int = 16,
        progress: bool = False,
        sinks: Sequence[TextSink | None] | None = None,
    ) -> list[Generation]:
        """Outputs for many requests (of many users), the model called in batches.
        ``sinks[i]`` (when given) receives request i's text as the model decodes it (all
        at once from a model that cannot stream), before its output is saved."""
        if sinks is not None and len(sinks) != len(requests):
            raise ValueError(f"{len(requests)} requests but {len(sinks)} sinks")
        for request in requests:  # fail before loading any model
            self.strategy(request.strategy)
            check_k(request.k)
            check_instruction(request.instruction)
            self.retrievers.get(request.retriever)
            if not self.store.has_user(request.user_id):
                raise UserNotFoundError(request.user_id)
        settings = generation or self.generation
        results: list[Generation] = []
        bar = tqdm(total=len(requests), desc="generating", unit="req", disable=not progress)
        for start in range(0, len(requests), batch_size):
            batch = requests[start : start + batch_size]
            batch_sinks = None if sinks is None else sinks[start : start + batch_size]
            results += self._generate_batch(batch, settings, save, batch_sinks)
            bar.update(len(batch))
        bar.close()
        return results

    def prepare(
        self, requests: list[Request], generation: GenerationConfig | None = None
    ) -> list[Prepared]:
        """Each request's model input, adapter and provenance, built by its strategy (one
        call per strategy, so strategies can batch their own model calls)."""
        tools = self.tools(generation)
        built_for: dict[int, Prepared] = {}
        by_strategy: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            by_strategy.setdefault(request.strategy, []).append(index)
        for name, indexes in by_strategy.items():
            built = self.strategy(name).prepare([requests[i] for i in indexes], tools)
            built_for.update(zip(indexes, built, strict=True))
        return [built_for[i] for i in range(len(requests))]

    def _generate_batch(
        self,
        requests: list[Request],
        settings: GenerationConfig,
        save: bool,
        sinks: Sequence[TextSink | None] | None = None,
    ) -> list[Generation]:
        prepared = self.prepare(requests, settings)
        chats = [p.chat for p in prepared if p.chat is not None]
        if len(chats) != len(prepared):
            raise TypeError("a text strategy prepared no chat")
        adapters = [p.adapter for p in prepared]
        # One batch whatever the users' adapters: the backend applies each to its row only.
        texts = generate_to_sinks(
            self.text_model, chats, settings, adapters if any(adapters) else None, sinks
        )
        results = []
        for request, item, text in zip(requests, prepared, texts, strict=True):
            adapter = item.adapter.name if item.adapter else BASE_ADAPTER
            item.provenance.model = f"{self.text_model.name}+{adapter}"
            output_id = None
            if save:
                record = {**item.provenance.as_dict(), "k": request.k, "details": item.details}
                stored = self.store.save_output(
                    request.user_id, request.instruction, request.strategy, text, record
                )
                output_id = stored.output_id
            results.append(
                Generation(
                    output_id=output_id,
                    user_id=request.user_id,
                    strategy=request.strategy,
                    text=text,
                    provenance=item.provenance,
                    prompt=item.chat or [],
                    details=item.details,
                )
            )
        return results

    # -- images -----------------------------------------------------------------------
    def generate_image(
        self,
        request: ImageRequest,
        sampling: ImageGenerationConfig | None = None,
        *,
        out: Path | None = None,
    ) -> ImageGeneration:
        """Images for one request, saved with their provenance. Images are the user's data:
        unless ``out`` is given they go into an artifact folder of the user's, which
        delete-user removes."""
        strategy = self.strategy(request.strategy, "image")  # fails before any model loads
        check_instruction(request.instruction)
        self.store.user(request.user_id)
        prepared = strategy.prepare([request], self.tools(sampling=sampling))[0]
        images = render_images(self.image_model, prepared, sampling)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        folder = out or self.store.artifact_path(request.user_id, "images", stamp)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"{k:02d}.png" for k in range(len(images))]
        for image, path in zip(images, paths, strict=True):
            image.save(path)
        prompt = prepared.prompt or request.instruction
        record = {
            **prepared.provenance.as_dict(),
            **prepared.details,
            "prompt": prompt,
            "images": list(map(str, paths)),
        }
        saved = self.store.save_output(
            request.user_id,
            request.instruction,
            strategy.name,
            "\n".join(map(str, paths)),
            record,
            modality="image",
            media=paths,
        )
        details = {**prepared.details, "images": record["images"]}
        return ImageGeneration(
            saved.output_id,
            request.user_id,
            strategy.name,
            prompt,
            paths,
            prepared.provenance,
            details,
        )

    # -- photos: the personal multimodal assistant -------------------------------------
    def answer(
        self,
        user_id: str,
        image: str | Path,
        instruction: str,
        *,
        strategy: str = "concepts",
        k: int = 2,
    ) -> Answer:
        """An answer about the user's photo (a caption, "is Rex in this photo?", a question)
        by a vision strategy (``none``, ``concepts``, ``concept-tokens``), saved with its
        provenance (the user's concepts that entered the prompt)."""
        return self._assistant().answer(user_id, image, instruction, strategy, k)

    def search_photos(self, user_id: str, query: str, *, k: int = 10) -> list[PhotoHit]:
        """The user's photos (documents of kind ``photo``) ranked for ``query``: by the
        concepts it names, by its words with a text-image embedder, or both."""
        check_k(k)
        check_instruction(query)
        return self._assistant().search_photos(user_id, query, k)

    def train_concept_tokens(self, user_id: str, concept: str, settings: Any = None) -> Path:
        """Yo'LLaVA-style soft tokens for one of the user's concepts (their artifact)."""
        return self._assistant().train_concept_tokens(user_id, concept, settings)

    # -- training ---------------------------------------------------------------------
    def train(self, request: TrainRequest) -> TrainResult:
        """Train a per-user artifact (a subject adapter, a text adapter): saved in a standard
        format, recorded with its base model and data fingerprint, removed by delete-user."""
        trainer = get_trainer(request.method)
        if request.steps is not None and not stoppable(trainer):
            raise ValueError(f"{request.method} takes no steps setting (its settings do)")
        self.store.user(request.user_id)  # fails with the user named before any model loads
        from pgen.training.cohorts import resolve_cohort

        # ``similar:K``: the K nearest profiles with preference pairs (the embedder loads here).
        request = resolve_cohort(self.store, request, self._embedder)
        for member in request.cohort:
            self.store.user(member)
        started = time.perf_counter()
        folder = trainer.train(request, self.tools())
        from pgen.context.artifacts import read_meta

        meta = read_meta(folder)
        return TrainResult(
            request.user_id,
            request.method,
            folder,
            time.perf_counter() - started,
            {} if meta is None else {**meta.extra, "base_model": meta.base_model},
        )

    # -- recommendation ---------------------------------------------------------------
    def recommend(
        self, user_id: str, k: int = 10, *, model: str = "sasrec", rerank: int = 0
    ) -> list[Recommendation]:
        """The user's top ``k`` unseen items from the recommender ``model`` trained on this
        store (``train_recommender``). ``rerank`` N > 0: the text model re-orders the top N
        from the user's recent items (LLM re-ranking)."""
        from pgen.recommend.service import recommend

        check_k(k)
        if rerank < 0:
            raise ValueError(f"rerank must be >= 0, got {rerank}")
        reranker = self.text_model if rerank > 0 else None
        return recommend(self.store, model, user_id, k, reranker, candidates=rerank)

    def train_recommender(
        self,
        model: str = "sasrec",
        params: dict[str, Any] | None = None,
        *,
        progress: Callable[[str], None] | None = None,
    ) -> tuple[Any, Path]:
        """Train ``model`` on every user's interactions and save it for ``recommend``."""
        from pgen.recommend.service import train_for_serving

        return train_for_serving(self.store, model, params or {}, self._embedder, progress)

    # -- feedback and outputs ---------------------------------------------------------
    def feedback(
        self,
        user_id: str,
        *,
        output_id: str | None = None,
        thumbs: int | None = None,
        prompt: str | None = None,
        chosen: str | None = None,
        rejected: str | None = None,
        feedback_id: str | None = None,
    ) -> Feedback:
        """Record thumbs on one of the user's outputs, or a chosen/rejected pair. An output
        id that is not this user's is refused as unknown, and nothing is written."""
        self.store.user(user_id)
        if output_id is not None:
            stored = self.store.output(user_id, output_id)
            prompt = prompt or stored.instruction
        record = Feedback(
            user_id=user_id,
            feedback_id=feedback_id or uuid.uuid4().hex,
            output_id=output_id,
            thumbs=thumbs,  # type: ignore[arg-type]  # validated by the record
            prompt=prompt,
            chosen=chosen,
            rejected=rejected,
            time=datetime.now(UTC),
        )
        self.store.add([record])
        return record

    def outputs(self, user_id: str) -> list[StoredOutput]:
        """The user's outputs, oldest first, each with its provenance."""
        self.store.user(user_id)
        return self.store.outputs(user_id)

    def feedback_of(self, user_id: str) -> list[Feedback]:
        """The feedback the user gave, oldest first."""
        self.store.user(user_id)
        return self.store.feedback(user_id)

    def output_image(self, user_id: str, output_id: str, index: int) -> Path:
        """The file of image ``index`` of one of the user's outputs; only files the store
        keeps (a path recorded elsewhere is "not found", never read)."""
        stored = self.store.output(user_id, output_id)
        images = stored.provenance.get("images") or []
        if not 0 <= index < len(images):
            raise FileNotFoundError(f"output {output_id} has no image {index}")
        path = Path(images[index])
        if not path.resolve().is_relative_to(self.store.artifacts_root.resolve()):
            raise FileNotFoundError(f"output {output_id} has no image {index} in the store")
        return path

    # -- forgetting -------------------------------------------------------------------
    def delete_user(self, user_id: str) -> dict[str, int]:
        """Forget a user everywhere: store rows, files, and in-memory indexes."""
        import logging

        from pgen.recommend.forgetting import forget_user
        from pgen.training.forgetting import forget_user_in_adapters

        # Saved recommenders first: they list the user even when the store no longer does
        # (a crash after an earlier delete), and the store then says "not found".
        messages = forget_user(self.store, user_id)
        # Adapters of others trained on this user's data (a shared task adapter, a cohort's
        # dpo) cannot forget one user's examples: they go, with the command that retrains.
        shared = forget_user_in_adapters(self.store, user_id)
        for message in [*messages, *shared]:
            logging.getLogger("pgen").warning(message)
        counts = self.store.delete_user(user_id)
        counts["recommenders"] = len(messages)
        counts["shared_adapters"] = len(shared)
        self.retrievers.forget(user_id)
        return counts

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
