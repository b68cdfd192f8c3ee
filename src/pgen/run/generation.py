"""Generation, for every modality: check → prepare (grouped by modality and strategy) →
execute (the modality's executor and model) → save one output with its modality, media
and provenance → the modality's result.

Every request is checked before any model loads, once: ``Engine.check`` is this
``check``, and the front ends call it rather than checking on their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pgen.context.base import UserNotFoundError
from pgen.errors import InvalidRequest
from pgen.models.base import TextSink
from pgen.models.executors import Executed
from pgen.personalize import AnyStrategy, get_strategy
from pgen.personalize.frames import FRAMES
from pgen.run.modalities import Finished, ModalitySpec, Workbench, modality_of


def check_k(k: int, what: str = "k") -> None:
    if k < 1:
        raise InvalidRequest(f"{what} must be at least 1, got {k}")


def check_instruction(instruction: str) -> None:
    if not instruction.strip():
        raise InvalidRequest("the instruction is empty")


class GenerationService:
    def __init__(self, bench: Workbench) -> None:
        self.bench = bench

    def check(self, request: Any) -> Any:
        """The request as it will run (a vision request gets its photo opened), or an
        error that names what is wrong, before any model loads."""
        spec = modality_of(request)
        self.strategy(spec, request.strategy)
        check_instruction(request.instruction)
        if hasattr(request, "k"):
            check_k(request.k)
        if hasattr(request, "retriever"):
            self.bench.retrievers.get(request.retriever)
        if getattr(request, "frame", "auto") not in FRAMES:
            raise InvalidRequest(f"frame must be one of {', '.join(FRAMES)}, got {request.frame!r}")
        if not self.bench.store.has_user(request.user_id):
            raise UserNotFoundError(request.user_id)
        return spec.check(self.bench, request)

    @staticmethod
    def strategy(spec: ModalitySpec, name: str) -> AnyStrategy:
        try:
            return get_strategy(spec.name, name)
        except ValueError as error:
            raise InvalidRequest(str(error)) from None

    def prepare(self, requests: Sequence[Any], settings: Any = None) -> list[Any]:
        """Each request's plan (model input, adapter, provenance), built by its strategy:
        one call per strategy, so strategies can batch their own model calls."""
        plans: dict[int, Any] = {}
        groups: dict[tuple[str, str], list[int]] = {}
        for index, request in enumerate(requests):
            spec = modality_of(request)
            groups.setdefault((spec.name, request.strategy), []).append(index)
        for (_, name), indexes in groups.items():
            spec = modality_of(requests[indexes[0]])
            tools = spec.tools(self.bench, self._settings(spec, settings))
            chosen = [requests[i] for i in indexes]
            built = spec.prepare(self.strategy(spec, name), chosen, tools)
            plans.update(zip(indexes, built, strict=True))
        return [plans[i] for i in range(len(requests))]

    def generate(
        self,
        requests: Sequence[Any],
        settings: Any = None,
        batch_size: int | None = None,
        checked: bool = False,
        *,
        save: bool = True,
        sinks: Sequence[TextSink | None] | None = None,
        out: Path | None = None,
        progress: bool = False,
    ) -> list[Any]:
        """One result per request, in order; requests of one modality share model batches.
        ``sinks[i]`` (when given) receives request i's text as the model decodes it.
        ``checked``: the requests come from ``check`` already (a front end checked each
        one as it arrived), so they are not checked twice."""
        if sinks is not None and len(sinks) != len(requests):
            raise InvalidRequest(f"{len(requests)} requests but {len(sinks)} sinks")
        if not checked:  # fail before any model loads
            requests = [self.check(request) for request in requests]
        checked_requests = list(requests)
        by_modality: dict[str, list[int]] = {}
        for index, request in enumerate(checked_requests):
            by_modality.setdefault(modality_of(request).name, []).append(index)
        for indexes in by_modality.values():  # impossible settings: refused before any runs
            spec = modality_of(checked_requests[indexes[0]])
            spec.check_settings(self.bench, self._settings(spec, settings))
        results: dict[int, Any] = {}
        bar = tqdm(total=len(checked_requests), desc="generating", unit="req", disable=not progress)
        for indexes in by_modality.values():
            spec = modality_of(checked_requests[indexes[0]])
            size = batch_size or spec.batch_size
            for start in range(0, len(indexes), size):
                batch = indexes[start : start + size]
                batch_sinks = None if sinks is None else [sinks[i] for i in batch]
                chosen = [checked_requests[i] for i in batch]
                done = self._run(spec, chosen, settings, save, batch_sinks, out)
                results.update(zip(batch, done, strict=True))
                bar.update(len(batch))
        bar.close()
        return [results[i] for i in range(len(checked_requests))]

    def _settings(self, spec: ModalitySpec, settings: Any) -> Any:
        if settings is None or not isinstance(settings, spec.settings_type):
            return spec.default_settings(self.bench)
        return settings

    def _run(
        self,
        spec: ModalitySpec,
        requests: list[Any],
        settings: Any,
        save: bool,
        sinks: Sequence[TextSink | None] | None,
        out: Path | None,
    ) -> list[Any]:
        chosen = self._settings(spec, settings)
        if spec.model_first:
            model = spec.load_model(self.bench)
        plans = self.prepare(requests, chosen)
        if not spec.model_first:
            model = spec.load_model(self.bench)
        executed = spec.execute(model, plans, chosen, sinks)
        results = []
        for request, plan, made in zip(requests, plans, executed, strict=True):
            plan.provenance.model = made.model
            media = self._save_media(request.user_id, made, out)
            record = spec.record(self.bench, request, plan, made)
            if made.images:
                record["images"] = list(map(str, media[: len(made.images)]))
            if made.files:
                record["files"] = list(map(str, media[len(made.images) :]))
            output_id = None
            if save or media:  # media are the user's data: always on record, so deletable
                stored = self.bench.store.save_output(
                    request.user_id,
                    request.instruction,
                    request.strategy,
                    made.text,
                    record,
                    modality=spec.name,
                    media=media,
                )
                output_id = stored.output_id
            finished = Finished(request, plan, made, output_id, media, record, spec.name)
            results.append(spec.result(finished))
        return results

    def _save_media(self, user_id: str, made: Executed, out: Path | None) -> list[Path]:
        """Images and other media (a clip) are the user's data: unless ``out`` is given they
        go into an artifact folder of the user's, which delete-user removes."""
        if not made.images and not made.files:
            return []
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        # Files name their own type and may name their artifact kind (a speech clip: speech).
        kind = getattr(made.files[0], "media_kind", "media") if made.files else "images"
        folder = out or self.bench.store.artifact_path(user_id, kind, stamp)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"{k:02d}.png" for k in range(len(made.images))]
        for image, path in zip(made.images, paths, strict=True):
            image.save(path)
        start = len(paths)
        for k, item in enumerate(made.files, start):
            paths.append(folder / f"{k:02d}{item.suffix}")
            item.save(paths[-1])
        return paths
