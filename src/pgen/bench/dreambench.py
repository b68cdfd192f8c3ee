"""DreamBench (Ruiz et al., 2023): subject-driven generation on 30 subjects x 25 prompts.

Reads the data set's own layout: ``<subject>/*.jpg`` reference images and
``prompts_and_classes.txt`` (subject classes, the object prompts and the live-subject
prompts, with ``{0}`` the unique token and ``{1}`` the class). Each method personalizes the
model on each subject through the ``subject`` strategy (the same code users run), generates
``images_per_prompt`` images per prompt, and is scored as in the paper: DINO and CLIP-I
against the subject's real images, CLIP-T against the prompt. The "real images" row is the
same similarity between a subject's real images (pairs of an image with itself left out).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image

from pgen.context import Subject, User
from pgen.evaluate.metrics.image import (
    DEFAULT_CLIP,
    DEFAULT_DINO,
    ClipEncoder,
    DinoEncoder,
    clip_i,
    clip_t,
    dino_i,
    image_folder,
    mean_pairwise_cosine,
)
from pgen.evaluate.run_record import run_record
from pgen.factory import store_at
from pgen.models.image import DiffusersImageModel, ImageGenerationSettings
from pgen.personalize.subject import (
    METHODS,
    TRAINERS,
    IPAdapterSpec,
    subject_adapter,
)
from pgen.training.subject_artifacts import SubjectTrainingSettings
from pgen.training.subject_trainer import train_subject

PROMPTS_FILE = "prompts_and_classes.txt"
LIVE_CLASSES = frozenset({"cat", "dog"})  # DreamBench's live subjects are its cats and dogs
REAL = "real images"
USER = "dreambench"
_TEMPLATE = re.compile(r"'([^']*)'\.format\(\s*unique_token\s*,\s*class_token\s*\)")


@dataclass(frozen=True)
class BenchSubject:
    name: str
    class_word: str
    images: list[Path]

    @property
    def live(self) -> bool:
        return self.class_word in LIVE_CLASSES


@dataclass(frozen=True)
class DreamBench:
    root: Path
    subjects: list[BenchSubject]
    object_prompts: list[str]  # templates: {0} unique token, {1} class word
    live_prompts: list[str]

    def templates(self, subject: BenchSubject) -> list[str]:
        return self.live_prompts if subject.live else self.object_prompts


def load_dreambench(root: str | Path, subjects: Sequence[str] | None = None) -> DreamBench:
    """The subjects present under ``root`` (all, or the named ones) and the prompt lists."""
    root = Path(root)
    path = root / PROMPTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; expected the DreamBench layout")
    text = path.read_text(encoding="utf-8")
    classes = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([\w-]+),([\w ]+)", line.strip())
        if match and match.group(1) != "subject_name":
            classes[match.group(1)] = match.group(2).strip()
    object_part, marker, live_part = text.partition("Live Subject Prompts")
    object_prompts = _TEMPLATE.findall(object_part)
    live_prompts = _TEMPLATE.findall(live_part)
    if not classes or not marker or not object_prompts or not live_prompts:
        raise ValueError(
            f"{path}: expected 'subject_name,class' lines and the Object / Live Subject "
            "prompt lists"
        )
    wanted = list(subjects) if subjects is not None else sorted(classes)
    unknown = [name for name in wanted if name not in classes]
    if unknown:
        raise ValueError(f"{path}: no subjects {unknown}; known: {sorted(classes)}")
    found = [
        BenchSubject(name, classes[name], image_folder(root / name))
        for name in wanted
        if (root / name).is_dir()
    ]
    if subjects is not None and len(found) < len(wanted):
        missing = sorted(set(wanted) - {s.name for s in found})
        raise ValueError(f"{root}: no image folders for {missing}")
    if not found:
        raise ValueError(f"{root}: none of the DreamBench subject folders is present")
    return DreamBench(root, found, object_prompts, live_prompts)


@dataclass(frozen=True)
class DreamBenchSettings:
    methods: tuple[str, ...] = METHODS
    prompts_per_subject: int | None = None  # None: all 25
    images_per_prompt: int = 4
    training: SubjectTrainingSettings = field(default_factory=SubjectTrainingSettings)
    generation: ImageGenerationSettings = field(default_factory=ImageGenerationSettings)
    ip_adapter: IPAdapterSpec | None = None  # None: h94/IP-Adapter for the model's family
    clip_model: str = DEFAULT_CLIP
    dino_model: str = DEFAULT_DINO
    device: str = "cpu"


def _fill(template: str, token: str, class_word: str) -> str:
    return " ".join(template.format(token, class_word).split())


def data_hash(bench: DreamBench) -> str:
    """sha256 of the prompt file and the images run (each named by subject and file)."""
    digest = hashlib.sha256((bench.root / PROMPTS_FILE).read_bytes())
    for subject in bench.subjects:
        for path in subject.images:
            digest.update(f"{subject.name}/{path.name}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def run_dreambench(
    bench: DreamBench,
    model: DiffusersImageModel,
    config: DreamBenchSettings,
    work_dir: str | Path,
) -> dict[str, Any]:
    """Personalize, generate and score every method on every subject. Images go under
    ``work_dir/images/<method>/<subject>/``; trained artifacts in a store in ``work_dir``."""
    unknown = [m for m in config.methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; expected some of {list(METHODS)}")
    work = Path(work_dir)
    store = store_at(work / "dreambench.sqlite")  # a benchmark's own store
    store.add(
        [
            User(user_id=USER),
            *(
                Subject(
                    user_id=USER,
                    name=s.name,
                    class_word=s.class_word,
                    image_paths=[str(p) for p in s.images],
                )
                for s in bench.subjects
            ),
        ]
    )
    clip = ClipEncoder(config.clip_model, config.device)
    dino = DinoEncoder(config.dino_model, config.device)
    per_subject: dict[str, dict[str, dict[str, float]]] = {REAL: {}}
    for subject in bench.subjects:
        clip_real, dino_real = clip.images(subject.images), dino.images(subject.images)
        per_subject[REAL][subject.name] = {
            "dino": mean_pairwise_cosine(dino_real, dino_real, same_set=True),
            "clip_i": mean_pairwise_cosine(clip_real, clip_real, same_set=True),
        }
    timings: dict[str, dict[str, float]] = {}
    for method in config.methods:
        per_subject[method], timings[method] = {}, {"train_s": 0.0, "generate_s": 0.0}
        for subject in bench.subjects:
            record = next(s for s in store.subjects(USER) if s.name == subject.name)
            start = time.perf_counter()
            if method in TRAINERS:
                train_subject(store, USER, subject.name, model, method, config.training)
            timings[method]["train_s"] += time.perf_counter() - start
            start = time.perf_counter()
            templates = bench.templates(subject)[: config.prompts_per_subject]
            folder = work / "images" / method / subject.name
            folder.mkdir(parents=True, exist_ok=True)
            images: list[Image.Image] = []
            adapter, token, _ = subject_adapter(
                store, USER, record, method, model.name, config.ip_adapter
            )
            prompts = [_fill(t, token, subject.class_word) for t in templates]
            sampling = replace(config.generation, images_per_prompt=config.images_per_prompt)
            for p, prompt in enumerate(prompts):
                made = model.render(prompt, sampling, adapter)
                for k, image in enumerate(made):
                    image.save(folder / f"{p:02d}-{k}.png")
                images += made
            timings[method]["generate_s"] += time.perf_counter() - start
            # CLIP-T reads the prompt without the learned token, which CLIP cannot know.
            texts = [_fill(t, "", subject.class_word) for t in templates]
            texts = [text for text in texts for _ in range(config.images_per_prompt)]
            per_subject[method][subject.name] = {
                "dino": dino_i(images, subject.images, dino),
                "clip_i": clip_i(images, subject.images, clip),
                "clip_t": clip_t(images, texts, clip),
                "images": float(len(images)),
            }
    rows = {
        name: {
            metric: _mean([scores[metric] for scores in subjects.values()])
            for metric in next(iter(subjects.values()))
        }
        for name, subjects in per_subject.items()
    }
    for method, spent in timings.items():
        rows[method]["images"] = sum(s["images"] for s in per_subject[method].values())
        rows[method].update(spent)
    return {
        "record": run_record(
            task="dreambench",
            data=[bench.root],
            data_sha256=data_hash(bench),
            settings={"subjects": [s.name for s in bench.subjects], **asdict(config)},
            model={
                "image_model": model.name,
                "clip_model": config.clip_model,
                "dino_model": config.dino_model,
            },
            packages=("diffusers", "peft", "Pillow"),
        ),
        "rows": rows,
        "per_subject": per_subject,
    }


def format_table(result: dict[str, Any]) -> str:
    """The paper's table: DINO, CLIP-I, CLIP-T per method, real images first."""
    lines = [
        "| method | DINO | CLIP-I | CLIP-T | images | train s | generate s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in result["rows"].items():
        cells = [f"{row[m]:.3f}" if m in row else "–" for m in ("dino", "clip_i", "clip_t")]
        count = f"{int(row['images'])}" if "images" in row else "–"
        spent = [f"{row[k]:.1f}" if k in row else "–" for k in ("train_s", "generate_s")]
        lines.append(f"| {name} | {' | '.join(cells)} | {count} | {' | '.join(spent)} |")
    return "\n".join(lines)
