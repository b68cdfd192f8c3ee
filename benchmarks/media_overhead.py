"""pgen's own cost per video and post request against the models' time, on tiny random
diffusion models (CPU): what ``Engine.generate`` adds around the pipeline call (the check,
the strategy's plan, the subject adapter's load and unload, encoding, saving the media and
the output record).

    python benchmarks/media_overhead.py                # video rows (tiny SD + motion adapter)
    python benchmarks/media_overhead.py --posts        # adds post rows (SmolLM2-135M captions)
    python benchmarks/media_overhead.py --shape        # adds the 3d row (tiny random Shap-E)

Posts: ``joint`` (image prompted from the caption) against ``independent`` (caption and
image apart from the same instruction), their caption-image agreement (CLIP-T) printed per
example. With random diffusion and CLIP weights that agreement is plumbing only: it says
the two parts are paired and scored, not that either agrees with the other.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from PIL import Image

from pgen.components import PostRequest, ShapeRequest, VideoRequest
from pgen.config import Config
from pgen.context import Subject, User
from pgen.context.records import Document, Interaction, Item
from pgen.engine import Engine
from pgen.models.video import Video, VideoGenerationSettings, video_model
from pgen.training.subject_artifacts import SubjectTrainingSettings
from pgen.training.subject_trainer import train_subject
from tests.builders.image_models import random_sd_pipeline
from tests.builders.shape_models import save_random_shap_e
from tests.builders.video_models import save_random_clip, save_random_motion_adapter


def median_s(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def context(work: Path) -> list[Any]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        path = work / f"ref{i}.png"
        pixels = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((32, 32)).save(path)
        paths.append(str(path))
    return [
        User(user_id="ana"),
        Subject(user_id="ana", name="rex", class_word="dog", image_paths=paths),
        Document(
            user_id="ana", doc_id="d1", text="We hiked the ridge at dawn; windy, cold, worth it."
        ),
        Document(user_id="ana", doc_id="d2", text="Baked a lemon tart for the team on Friday."),
        Item(item_id="i1", title="Alpine poster", text="snowy peaks in pale blue tones"),
        Interaction(user_id="ana", item_id="i1", rating=5.0),
    ]


def video_rows(engine: Engine, motion: str, frames: int, steps: int, repeats: int) -> None:
    settings = VideoGenerationSettings(steps=steps, guidance_scale=2.0)
    video = video_model(engine.image_model, motion)
    print(
        f"\n| video ({frames} frames, {steps} steps) | engine s/request | pipeline s | encode s "
        "| pgen overhead s | overhead share |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for strategy in ("none", "subject"):
        request = VideoRequest(
            "ana", "rex on a beach", strategy, frames=frames, motion_adapter=motion
        )
        plan = engine.prepare([request])[0]  # the same prompt and adapter the engine uses
        engine.generate(request, generation=settings)  # warm-up: the video pipeline is built
        total = median_s(lambda r=request: engine.generate(r, generation=settings), repeats)

        def render(plan: Any = plan) -> list[Image.Image]:
            return video.render(plan.prompt, frames, 0, settings, plan.adapter)

        pipeline = median_s(render, repeats)
        clip = Video(render(), 8)
        folder = Path(tempfile.mkdtemp())
        encode = median_s(lambda c=clip, f=folder: c.save(f / f"c{c.suffix}"), repeats)
        overhead = total - pipeline
        print(
            f"| {strategy} | {total:.3f} | {pipeline:.3f} | {encode:.3f} | {overhead:.3f} "
            f"| {overhead / total:.0%} |"
        )


def shape_rows(engine: Engine, repeats: int) -> None:
    """The 3d modality on a tiny random Shap-E: the engine's request (check, typical
    reference from the concept memory's vectors, mesh and views saved, output recorded)
    against the model's own ``make`` on the same image."""
    from pgen.models.image_input import open_image
    from pgen.models.shape import ShapeSettings

    settings = ShapeSettings(
        steps=4, grid_size=32, view_size=16, coarse_samples=16, fine_samples=16
    )
    request = ShapeRequest("ana", "rex as a figurine")
    engine.generate(request, generation=settings)  # warm-up: Shap-E and the embedder load
    total = median_s(lambda: engine.generate(request, generation=settings), repeats)
    plan = engine.prepare([request])[0]
    model = engine.bench.load("shape")
    image = open_image(plan.image)
    pipeline = median_s(lambda: model.make(image, 0, settings), repeats)
    overhead = total - pipeline
    print(
        "\n| 3d (4 steps, grid 32, 20 views of 16 px) | engine s/request | model s "
        "| pgen overhead s | overhead share |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| subject | {total:.3f} | {pipeline:.3f} | {overhead:.3f} | {overhead / total:.0%} |")


def post_rows(engine: Engine, repeats: int, clip_model: str) -> None:
    from pgen.evaluate.metrics.image import ClipEncoder
    from pgen.evaluate.metrics.video import post_agreement

    instructions = ["my weekend hike", "the tart I baked", "a cold morning on the ridge"]
    print("\n| post | caption | image | engine s/request |")
    print("| --- | --- | --- | ---: |")
    made: dict[str, list[Any]] = {}
    for strategy in ("joint", "independent"):
        for caption in ("rag", "profile"):
            requests = [
                PostRequest("ana", text, strategy, caption, "keywords") for text in instructions
            ]
            engine.generate(requests[0])  # warm-up
            start = time.perf_counter()
            made[f"{strategy}/{caption}"] = [engine.generate(r) for r in requests]
            seconds = (time.perf_counter() - start) / len(requests)
            print(f"| {strategy} | {caption} | keywords | {seconds:.2f} |")
    encoder = ClipEncoder(clip_model)
    print("\n| post | caption | agreement CLIP-T (per example) |\n| --- | --- | --- |")
    for name, posts in made.items():
        images = [Image.open(p.media[0]).convert("RGB") for p in posts]
        scores = [
            post_agreement([i], [p.text], encoder) for i, p in zip(images, posts, strict=True)
        ]
        strategy, caption = name.split("/")
        print(f"| {strategy} | {caption} | {', '.join(f'{s:.3f}' for s in scores)} |")
    for name, posts in made.items():
        for post in posts[:1]:
            print(
                f"\n{name}: caption {post.text!r}\n  image prompt {post.details['image_prompt']!r}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--posts", action="store_true", help="post rows (loads SmolLM2-135M)")
    parser.add_argument(
        "--clip-model", help="CLIP id or folder for the posts' agreement (default: tiny random)"
    )
    parser.add_argument("--no-video", action="store_true", help="skip the video rows")
    parser.add_argument("--shape", action="store_true", help="the 3d row (tiny random Shap-E)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="pgen-media-bench-"))
    os.environ["PGEN_MEDIA_ROOT"] = str(work)  # the references live here
    random_sd_pipeline("tiny").save_pretrained(work / "sd")
    motion = str(save_random_motion_adapter(work / "motion", max_frames=max(8, args.frames)))
    shape = str(save_random_shap_e(work / "shap-e"))
    config = Config(
        home=work / "home",
        image_model=str(work / "sd"),
        shape_model=shape,
        threads=args.threads,
        max_new_tokens=32,
    )
    with Engine.open(config) as engine:
        engine.ingest(context(work))
        train = SubjectTrainingSettings(steps=2, learning_rate=1e-2)
        train_subject(engine.store, "ana", "rex", engine.image_model, "dreambooth-lora", train)
        print(
            f"CPU, torch threads {torch.get_num_threads()}, tiny SD 1.x (32x32), "
            f"median of {args.repeats}"
        )
        if not args.no_video:
            video_rows(engine, motion, args.frames, args.steps, args.repeats)
        if args.shape:
            shape_rows(engine, args.repeats)
        if args.posts:
            clip = args.clip_model or str(save_random_clip(work / "clip"))
            post_rows(engine, args.repeats, clip)


if __name__ == "__main__":
    main()
