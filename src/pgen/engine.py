"""Engine: the one typed API, typed verbs only; the CLI, the service and Python users call
them and none reaches past it. Each verb delegates to a run service (``pgen.run``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgen import results as r
from pgen.components import AnswerRequest, ImageRequest, TextRequest
from pgen.config import Config, GenerationSettings
from pgen.context.base import ContextStore, IngestStats, StoredOutput, UserSummary
from pgen.context.records import Document, Feedback, Interaction, Preference, Record
from pgen.factory import Lazy, build_store, check_components, component_loader
from pgen.models.base import Embedder, TextModel, TextSink
from pgen.run import conversation, deletion, uploads, voice_notes
from pgen.run import preferences as stated
from pgen.run import userdata as services
from pgen.run.generation import GenerationService
from pgen.run.modalities import Components, Workbench
from pgen.run.training_service import Runner, TrainingService
from pgen.training.registry import TrainRequest, TrainResult
from pgen.usermodel.retrievers import Retrievers

if TYPE_CHECKING:
    from pgen.models.image import DiffusersImageModel, ImageGenerationSettings
    from pgen.results import Recommendation
    from pgen.run.conversation import MemorySettings
    from pgen.usermodel.photo_memory import PhotoMemory

from pgen.results import Generation, ImageGeneration, SearchHit

__all__ = ["Engine", "Generation", "ImageGeneration", "SearchHit"]


class Engine:
    def __init__(
        self,
        store: ContextStore,
        text_model: TextModel | Callable[[], TextModel],
        embedder: Embedder | Callable[[], Embedder],
        *,
        image_model: DiffusersImageModel | Callable[[], DiffusersImageModel] | None = None,
        prompt_tokens: int = 1024,
        generation: GenerationSettings | None = None,
        vision_model: Any = None,
        photos: Callable[[ContextStore], PhotoMemory] | None = None,
        components: Callable[[str], Any] | None = None,
        runner: Runner | None = None,
        stale_adapters: str = "serve",
        motion_adapters: tuple[str, ...] | None = None,
        measure_effect: bool = True,
    ) -> None:
        """``components(role)``: any other role's component; ``runner``: where training runs;
        ``motion_adapters``: the only ones video requests may name (None: any);
        ``measure_effect``: what each new lora / dpo adapter changes (benchmarks measure
        by their own metrics and skip it)."""
        self.store = store  # for benchmark runners; front ends use the verbs
        self.generation = generation or GenerationSettings()
        self._embedder = Lazy(embedder)
        self.retrievers = Retrievers(store, self._embedder)
        given = {"text": text_model, "image": image_model, "vision": vision_model}
        loaders = {role: Lazy(made) for role, made in given.items() if made is not None}
        if photos is not None:
            loaders["photos"] = Lazy(lambda: photos(store))
        self._components = Components({**loaders, "embedder": self._embedder}, components)
        load, settings = self._components.load, self.generation
        self.bench = Workbench(
            store, self.retrievers, load, settings, prompt_tokens, stale_adapters, motion_adapters
        )
        self._generation = GenerationService(self.bench)
        self._training = TrainingService(
            store, self.bench.tools, self._embedder, runner, measure_effect=measure_effect
        )

    @classmethod
    def open(cls, config: Config, **options: Any) -> Engine:
        """An engine over the configured store; components load on first use."""
        check_components(config)
        load = component_loader(config)
        defaults: dict[str, Any] = {
            "image_model": lambda: load("image"),
            "vision_model": lambda: load("vision"),
            "photos": lambda store: load("photos", store),
            "prompt_tokens": config.prompt_tokens,
            "stale_adapters": config.stale_adapters,
            "generation": config.generation,
            "components": load,
        }
        defaults.update({k: v for k, v in options.items() if v is not None})
        return cls(build_store(config), lambda: load("text"), lambda: load("embedder"), **defaults)

    @property
    def text_model(self) -> TextModel:
        return self._components.load("text")

    @property
    def image_model(self) -> DiffusersImageModel:
        return self._components.load("image")

    @property
    def embedder(self) -> Embedder:
        return self._embedder()

    @property
    def prompt_tokens(self) -> int:
        """The cap on prompt length that text strategies fit their prompts to."""
        return self.bench.prompt_tokens

    @prompt_tokens.setter
    def prompt_tokens(self, value: int) -> None:
        self.bench.prompt_tokens = value

    @property
    def location(self) -> str:
        """Where the store is (a path, or a server's address)."""
        return self.store.location

    def ingest(
        self, source: str | Path | Iterable[Record], *, progress: bool = False
    ) -> IngestStats:
        """Records, or a file of them (JSONL, LaMP questions), in one transaction; voice
        notes (``fields.audio_path``) are transcribed first."""
        hook = voice_notes.VoiceNoteHook(self.store, partial(self._components.load, "asr"))
        return services.ingest(self.store, source, progress, hook)

    def transcribe(self, data: bytes, filename: str, **options: Any) -> voice_notes.VoiceNote:
        """An audio clip's transcript; with ``user_id=``, kept as the user's voice note
        (``doc_id``, ``language``, ``title``: see ``pgen.run.voice_notes.transcribe``)."""
        asr = partial(self._components.load, "asr")
        return voice_notes.transcribe(self.store, asr, data, filename, **options)

    def evaluate_speech(self, user_id: str, **options: Any) -> list[dict[str, Any]]:
        """Speaker similarity, intelligibility and STOI of the user's speech outputs."""
        from pgen.run.speech_eval import evaluate_outputs

        return evaluate_outputs(self.store, self._components.load, user_id, **options)

    def ingest_uploaded(self, path: Path, source: str) -> IngestStats:
        """A JSONL file whose images are uploads (``upload:<id>``), as the service takes."""
        return uploads.ingest_file(self.store, path, source)

    def save_upload(
        self, data: bytes, user_id: str | None, *, audio: str | None = None
    ) -> dict[str, Any]:
        """An uploaded image: the user's (or, without a user, the catalog's); with
        ``audio`` (its file name), a clip of the user's voice."""
        if audio is not None and user_id is not None:
            return uploads.save_audio(self.store, data, user_id, audio)
        return uploads.save_image(self.store, data, user_id)

    def ingest_interactions(self, data: str | Path) -> IngestStats:
        """A recommendation data set (MovieLens, RecBole, Amazon) as items, users and
        interactions, in one transaction."""
        from pgen.recommend.data import ingest, load_data

        return ingest(self.store, load_data(data))

    def users(self, offset: int = 0, limit: int | None = None) -> list[UserSummary]:
        return services.users(self.store, offset, limit)

    def user(self, user_id: str, *, limit: int = 10) -> r.UserView:
        return services.user_view(self.store, user_id, limit)

    def has_user(self, user_id: str) -> bool:
        return self.store.has_user(user_id)

    def documents(self, user_id: str, doc_ids: Sequence[str] | None = None) -> list[Document]:
        """The user's documents (those named, when ``doc_ids`` is given), oldest first."""
        self.store.user(user_id)
        return self.store.documents(user_id, doc_ids)

    def export_user(self, user_id: str) -> r.UserExport:
        """Everything stored of the user: context, artifacts (by name), outputs, feedback."""
        return services.export_user(self.store, user_id)

    def search(
        self, user_id: str, query: str, *, k: int = 4, retriever: str = "bm25"
    ) -> list[r.SearchHit]:
        """The user's documents that best match ``query`` (only theirs, ever)."""
        return services.search(self.store, self.retrievers, user_id, query, k, retriever)

    def check(self, request: Any) -> Any:
        """The request validated once, before any model loads (the front ends call it)."""
        if isinstance(request, TrainRequest):
            return self._training.check(request)
        return self._generation.check(request)

    def generate(
        self,
        request: Any,
        instruction: str | None = None,
        *,
        generation: Any = None,
        save: bool = True,
        out: Path | None = None,
        **options: Any,
    ) -> Any:
        """One personalized output: ``generate(request)`` for any modality's request, or
        ``generate(user_id, instruction, strategy=..., k=...)`` for text."""
        if isinstance(request, str):
            request = TextRequest(request, instruction or "", **options)
        return self._generation.generate([request], generation, save=save, out=out)[0]

    def generate_many(
        self,
        requests: Sequence[Any],
        generation: Any = None,
        *,
        save: bool = True,
        batch_size: int | None = None,
        progress: bool = False,
        sinks: Sequence[TextSink | None] | None = None,
        checked: bool = False,
    ) -> list[Any]:
        """Outputs for many users' requests in shared batches; ``sinks[i]`` gets request
        i's text as it is decoded; ``checked``: every request came from ``check``."""
        options: dict[str, Any] = {"save": save, "sinks": sinks, "progress": progress}
        return self._generation.generate(requests, generation, batch_size, checked, **options)

    def prepare(self, requests: Sequence[Any], generation: Any = None) -> list[Any]:
        """Each request's plan, built by its strategy (nothing generated or saved)."""
        return self._generation.prepare([self.check(q) for q in requests], generation)

    def generate_image(
        self,
        request: ImageRequest,
        sampling: ImageGenerationSettings | None = None,
        *,
        out: Path | None = None,
    ) -> r.ImageGeneration:
        """Images for one request, saved with their provenance (``generate`` for images)."""
        return self._generation.generate([request], sampling, out=out)[0]

    def answer(
        self,
        user_id: str,
        image: str | Path,
        instruction: str,
        *,
        strategy: str = "concepts",
        k: int = 2,
    ) -> r.Answer:
        """An answer about the user's photo (``generate`` for the vision modality)."""
        request = AnswerRequest(user_id, str(image), instruction, strategy, k)
        return self._generation.generate([request])[0]

    def search_photos(self, user_id: str, query: str, *, k: int = 10) -> r.PhotoSearch:
        """The user's photos ranked for ``query``, by the concepts it names and its words."""
        photos = partial(self._components.load, "photos")
        return services.search_photos(self.store, photos, user_id, query, k)

    def train(self, request: TrainRequest, *, checked: bool = False) -> TrainResult:
        """A per-user artifact in a standard format (``checked``: it came from ``check``)."""
        return self._training.train([request], checked=checked)[0]

    def stale_adapters(self, methods: Sequence[str] | None = None) -> list[r.StaleAdapter]:
        """Every user's lora / dpo adapter that is behind its data: what to retrain."""
        return self._training.stale(methods)

    def train_many(
        self,
        requests: Sequence[TrainRequest],
        *,
        batch_users: int | None = None,
        progress: Callable[[Any], None] | None = None,
    ) -> list[TrainResult]:
        """Many users' artifacts, on the engine's runner; lora and dpo users trained
        gathered, ``batch_users`` at a time (1: each alone), ``progress`` told how far."""
        return self._training.train(requests, batch_users=batch_users, progress=progress)

    def fan_out(self, requests: Sequence[TrainRequest], runner: Any = None, **options: Any) -> Any:
        """Many users, each trained or reported (``pgen.run.fanout``; runner: ``LocalFanOut``
        or ``RayRunner``); fresh adapters skipped. Options: ``retries``, ``progress``,
        ``retrain`` (nothing skipped)."""
        return self._training.fan_out(requests, runner, **options)

    def train_concept_tokens(self, user_id: str, concept: str, settings: Any = None) -> Path:
        """Yo'LLaVA-style soft tokens for one of the user's concepts (``concept-tokens``)."""
        request = TrainRequest(user_id, "concept-tokens", concept, settings=settings)
        return self.train(request).artifact

    def recommend(
        self, user_id: str, k: int = 10, *, model: str = "sasrec", rerank: int = 0
    ) -> list[Recommendation]:
        """The user's top ``k`` unseen items; ``rerank`` N > 0: the text model re-orders
        the top N from the user's recent items (LLM re-ranking)."""
        return services.recommend(self.store, lambda: self.text_model, user_id, k, model, rerank)

    def train_recommender(
        self,
        model: str = "sasrec",
        params: dict[str, Any] | None = None,
        *,
        progress: Callable[[str], None] | None = None,
    ) -> tuple[Any, Path]:
        """Train ``model`` on every user's interactions and save it for ``recommend``."""
        return services.train_recommender(self.store, model, params, self._embedder, progress)

    def feedback(self, user_id: str, **fields: Any) -> Feedback | Interaction:
        """Thumbs on one of the user's outputs (``output_id``) or a recommended item
        (``item_id``), or a ``chosen``/``rejected`` pair. Another user's output or an
        unknown item is refused, and nothing is written."""
        return services.feedback(self.store, user_id, **fields)

    def outputs(self, user_id: str) -> list[StoredOutput]:
        """The user's outputs, oldest first, each with its modality, media and provenance."""
        return self.store.outputs(self.store.user(user_id).user_id)

    def feedback_of(self, user_id: str) -> list[Feedback]:
        return self.store.feedback(self.store.user(user_id).user_id)

    def output_image(self, user_id: str, output_id: str, index: int) -> Path:
        """The file of image ``index`` of one of the user's outputs (files the store keeps)."""
        return services.output_image(self.store, user_id, output_id, index)

    def remember(self, user_id: str, turns: list[Document], offered: str | None = None) -> int:
        """Conversation turns stored as the user's documents (new ones only); ``offered``
        is the assistant's message the first turn answers, when it is not among the turns
        (a choice among its options is kept as a preference)."""
        return conversation.remember(self.store, user_id, turns, offered)

    def recall(
        self, user_id: str, query: str, k: int, settings: MemorySettings | None = None
    ) -> list[Document]:
        """The user's ``k`` remembered turns for ``query`` (the ``memory`` retriever)."""
        return conversation.recall_turns(self.retrievers, user_id, query, k, settings)

    def preferences(self, user_id: str) -> list[Preference]:
        """The user's stated preferences, oldest first, each with the turn it came from."""
        return stated.preferences(self.store, user_id)

    def add_preference(self, user_id: str, text: str) -> Preference:
        return stated.add_preference(self.store, user_id, text)

    def edit_preference(self, user_id: str, preference_id: str, text: str) -> Preference:
        """Another user's preference id is not found, and nothing is written."""
        return stated.edit_preference(self.store, user_id, preference_id, text)

    def remove_preference(self, user_id: str, preference_id: str) -> Preference:
        return stated.remove_preference(self.store, user_id, preference_id)

    def delete_user(self, user_id: str) -> dict[str, int]:
        """Forget a user everywhere: store rows, files, recommenders, in-memory indexes."""
        return deletion.forget_user(self.store, self.retrievers, user_id)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
