"""Personalized captions on a DreamBench-layout folder: does the answer name the concept?

One user holds every subject as a concept under a personal name (Rex, Mochi, ...: a name a
caption cannot contain by chance, unlike the class word), with the first ``references``
photos as references. Each remaining photo is captioned by each strategy; the **name
rate** is the share of captions that contain the photo's concept name, and for
``concepts`` the **prompt rate** is the share whose prompt carried the right concept
(what retrieval got right, whatever the VLM did with it). 95% bootstrap intervals over
photos. The numbers mean something only with real VLM weights; none install here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pgen.bench.dreambench import DreamBench
from pgen.models.base import GenerationSettings
from pgen.models.image_embedding import ImageEmbedder
from pgen.models.vision import VisionLanguageModel

NAMES = ("Rex", "Mochi", "Kiki", "Bruno", "Luna", "Pip", "Otto", "Nala", "Ziggy", "Coco")
USER = "caption-bench"


def _named(text: str, name: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE) is not None


def run_caption_bench(
    bench: DreamBench,
    model: VisionLanguageModel,
    embedder: ImageEmbedder,
    work: Path,
    strategies: Sequence[str] = ("none", "concepts"),
    references: int = 3,
    instruction: str = "Describe this photo.",
    token_steps: int = 40,
    seed: int = 0,
    generation: GenerationSettings | None = None,
) -> dict[str, Any]:
    from pgen.bench.concept_recognition import _mean_interval
    from pgen.context.records import Subject, User
    from pgen.engine import Engine
    from pgen.factory import store_at
    from pgen.training.concept_tokens import ConceptTokenSettings
    from pgen.usermodel.photo_memory import PhotoMemory

    if len(bench.subjects) > len(NAMES):
        raise ValueError(f"caption bench names at most {len(NAMES)} subjects")
    names = {s.name: NAMES[i] for i, s in enumerate(bench.subjects)}
    store = store_at(work / "captions.sqlite")
    try:
        store.add(
            [
                User(user_id=USER),
                *[
                    Subject(
                        user_id=USER,
                        name=names[s.name],
                        class_word=s.class_word,
                        image_paths=[str(p) for p in s.images[:references]],
                    )
                    for s in bench.subjects
                ],
            ]
        )
        allowed = [bench.root.resolve()]

        def no_text_model() -> Any:
            raise ValueError("the caption benchmark uses no text model")

        assistant = Engine(
            store,
            no_text_model,
            no_text_model,
            vision_model=model,
            photos=lambda kept: PhotoMemory(kept, lambda: embedder, allowed=allowed),
            generation=generation,
        )
        if "concept-tokens" in strategies:
            for subject in bench.subjects:
                training = ConceptTokenSettings(steps=token_steps, seed=seed)
                assistant.train_concept_tokens(USER, names[subject.name], training)
        queries = [(names[s.name], p) for s in bench.subjects for p in s.images[references:]]
        result: dict[str, Any] = {"instruction": instruction, "photos": len(queries)}
        for strategy in strategies:
            named, prompted, captions = [], [], []
            for name, path in queries:
                answer = assistant.answer(USER, path, instruction, strategy=strategy)
                named.append(_named(answer.text, name))
                prompted.append(name in answer.provenance.get("subjects", []))
                captions.append({"photo": str(path), "concept": name, "text": answer.text})
            result[strategy] = {
                "name_rate": _mean_interval(np.array(named, dtype=float), seed),
                "prompt_rate": _mean_interval(np.array(prompted, dtype=float), seed),
                "captions": captions,
            }
        return result
    finally:
        store.close()
