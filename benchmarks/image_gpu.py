"""Cost of personalized image generation: seconds per training step and per image, and the
cost per subject of DreamBooth-LoRA (optionally with prior preservation, whose class images
are generated once per class and base model), textual inversion and IP-Adapter.

The pipeline is randomly initialized with the exact shapes of Stable Diffusion 1.5 (and the
ViT-H/14 image encoder of its IP-Adapter): cost does not depend on trained weights. It is
saved and loaded back through pgen's backend, then trained and sampled by pgen's own code.

    python benchmarks/image_gpu.py                 # SD-1.5 shapes, CUDA when available
    python benchmarks/image_gpu.py --tiny          # tiny shapes: a CPU smoke run
    python benchmarks/image_gpu.py --class-images 100   # adds the prior-preservation row
    python benchmarks/image_gpu.py --video-frames 16    # adds the AnimateDiff clip rows
    python benchmarks/image_gpu.py --shape-steps 64     # adds the Shap-E image-to-3D row

The video rows: an AnimateDiff clip (a random motion adapter of guoyww's v1-5-2 shapes, or the
tiny one) built from the same pipeline by pgen's video backend, with no adapter and with the
DreamBooth-LoRA trained above: seconds per clip (sampling, then MP4/GIF encoding) and memory.

The 3D row: a random Shap-E image-to-3D pipeline with the shapes of openai/shap-e-img2img
(846 M parameters) through pgen's 3D backend, at Shap-E's own decoding settings (mesh on a
128^3 grid, 20 views of 64 px, 64 + 128 samples a ray): seconds for the latent, the mesh and
the views, and memory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The random-model builders live in the test tree (tests/builders), not in the installed
# package: run from anywhere, the repository root is on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from PIL import Image

from pgen.context.records import Subject
from pgen.models.image import DiffusersImageModel, ImageGenerationSettings, load_image_model
from pgen.training.dreambooth import (
    class_image_folder,
    class_images,
    train_dreambooth_lora,
)
from pgen.training.subject_artifacts import SubjectTrainingSettings
from pgen.training.textual_inversion import train_textual_inversion
from tests.builders.image_models import random_sd_pipeline, save_random_ip_adapter
from tests.builders.shape_models import save_random_shap_e
from tests.builders.video_models import save_random_motion_adapter


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(device: str, fn: Callable[[], Any]) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def peak_gib(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    return torch.cuda.max_memory_allocated() / 2**30


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def reference_images(folder: Path, count: int, size: int) -> list[str]:
    """Random photos standing in for a subject (DreamBench subjects have 4-6)."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        path = folder / f"ref{i}.png"
        Image.fromarray(pixels).resize((size, size), Image.Resampling.BICUBIC).save(path)
        paths.append(str(path))
    return paths


def per_step(
    device: str,
    train: Callable[..., Any],
    model: DiffusersImageModel,
    subject: Subject,
    folder: Path,
    warmup: int,
    steps: int,
    resolution: int,
    **extra: Any,
) -> float:
    """Seconds per step: the difference of two runs cancels the fixed setup (latents, and
    class images, which the first run generates or finds cached and the second reuses)."""
    short = timed(device, lambda: train(model, subject, folder, _cfg(warmup, resolution, extra)))
    long = timed(
        device, lambda: train(model, subject, folder, _cfg(warmup + steps, resolution, extra))
    )
    return (long - short) / steps


def _cfg(steps: int, resolution: int, extra: dict[str, Any]) -> SubjectTrainingSettings:
    return SubjectTrainingSettings(steps=steps, resolution=resolution, **extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (CPU smoke run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="auto", help="auto: float16 on CUDA, else float32")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads (1: no oversubscription)"
    )
    parser.add_argument("--steps", type=int, default=30, help="sampling steps per image")
    parser.add_argument("--images", type=int, default=4, help="timed images per measurement")
    parser.add_argument("--train-steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps")
    parser.add_argument("--lora-steps", type=int, default=400, help="DreamBooth-LoRA steps/subject")
    parser.add_argument(
        "--ti-steps", type=int, default=3000, help="textual inversion steps/subject"
    )
    parser.add_argument("--references", type=int, default=5, help="reference images/subject")
    parser.add_argument(
        "--class-images",
        type=int,
        default=0,
        help="prior preservation: class images to generate (0: no prior-preservation row)",
    )
    parser.add_argument(
        "--video-frames", type=int, default=0, help="frames per clip (0: no video rows)"
    )
    parser.add_argument("--clips", type=int, default=2, help="timed clips per video row")
    parser.add_argument(
        "--shape-steps", type=int, default=0, help="Shap-E sampling steps (0: no 3D row)"
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    preset = "tiny" if args.tiny else "sd15"
    work = Path(tempfile.mkdtemp(prefix="pgen-image-bench-"))
    build = time.perf_counter()
    pipe = random_sd_pipeline(preset)
    pipe.save_pretrained(work / "pipeline")
    save_random_ip_adapter(pipe.unet, work / "ip-adapter", preset)
    del pipe
    model = load_image_model(str(work / "pipeline"), device=args.device, dtype=args.dtype)
    build = time.perf_counter() - build
    size = model.resolution
    subject = Subject(
        user_id="bench",
        name="rex",
        class_word="dog",
        image_paths=reference_images(work, args.references, size),
    )
    sampling = ImageGenerationSettings(steps=args.steps)
    prompt = ["a photo of a dog on a beach"]
    results: dict[str, dict[str, Any]] = {}

    def sample(n: int, **extra: Any) -> float:
        model.generate(prompt, ImageGenerationSettings(steps=2), **extra)  # warm-up
        reset_peak(args.device)
        return (
            timed(
                args.device, lambda: [model.generate(prompt, sampling, **extra) for _ in range(n)]
            )
            / n
        )

    results["base"] = {"image_s": sample(args.images), "image_gib": peak_gib(args.device)}

    for name, train, steps in (
        ("dreambooth-lora", train_dreambooth_lora, args.lora_steps),
        ("textual-inversion", train_textual_inversion, args.ti_steps),
    ):
        folder = work / name
        folder.mkdir()
        reset_peak(args.device)
        step_s = per_step(
            args.device, train, model, subject, folder, args.warmup, args.train_steps, size
        )
        row = {"step_s": step_s, "steps": steps, "train_gib": peak_gib(args.device)}
        if name == "dreambooth-lora":
            row["load_s"] = timed(args.device, lambda f=folder: model.load_lora(f))
            row["image_s"] = sample(args.images)
            model.unload_lora()
        else:
            tokens: list[str] = []
            row["load_s"] = timed(
                args.device,
                lambda f=folder, tokens=tokens: tokens.extend(
                    model.load_textual_inversion(f / "learned_embeds.safetensors")
                ),
            )
            row["image_s"] = sample(args.images)
            model.unload_textual_inversion(tokens)
        results[name] = row

    if args.class_images > 0:
        # Prior preservation: the class images (drawn once per class and base model, then
        # cached), then training steps on instance + class batches (twice the images).
        prior = {
            "prior_preservation": True,
            "class_images": args.class_images,
            "class_steps": args.steps,
        }
        folder = work / "dreambooth-lora-prior"
        folder.mkdir()
        cfg = _cfg(0, size, prior)
        cache = class_image_folder(model, subject.class_word, folder / "class_images", cfg)
        reset_peak(args.device)
        class_s = timed(args.device, lambda: class_images(model, subject.class_word, cache, cfg))
        step_s = per_step(
            args.device,
            train_dreambooth_lora,
            model,
            subject,
            folder,
            args.warmup,
            args.train_steps,
            size,
            **prior,
        )
        results["dreambooth-lora+prior"] = {
            **results["dreambooth-lora"],
            "step_s": step_s,
            "class_s": class_s,
            "train_gib": peak_gib(args.device),
        }

    ip = str(work / "ip-adapter")
    load_s = timed(
        args.device, lambda: model.load_ip_adapter(ip, "models", "ip-adapter_sd15.safetensors")
    )
    refs = [Image.open(p) for p in subject.image_paths]
    results["ip-adapter"] = {
        "step_s": 0.0,
        "steps": 0,
        "load_s": load_s,
        "image_s": sample(args.images, ip_adapter_images=refs),
        "image_gib": peak_gib(args.device),
    }
    model.unload_ip_adapter()

    videos = video_rows(args, model, work, preset) if args.video_frames > 0 else []
    shape = shape_row(args, work, preset) if args.shape_steps > 0 else None
    results.update(two_subject_rows(args, model, work, sample_s=results["base"]["image_s"]))

    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    print(
        f"\npreset {preset} ({size}x{size}), device {args.device} ({device_name}), dtype "
        f"{model.dtype}, threads {args.threads}, {args.steps} sampling steps, batch 1; "
        f"build+save+load {build:.1f} s"
    )
    print(
        "\n| method | s/train step | steps/subject | train s/subject | class images s | load s "
        "| s/image | setup s/subject | peak GiB train | peak GiB sample |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, row in results.items():
        train_s = row.get("step_s", 0.0) * row.get("steps", 0)
        class_s = row.get("class_s", 0.0)  # paid once per class and base model
        setup = train_s + class_s + row.get("load_s", 0.0)
        gib_t = row.get("train_gib")
        gib_s = row.get("image_gib") or results["base"]["image_gib"]
        print(
            f"| {name} | {row.get('step_s', 0.0):.3f} | {row.get('steps', 0)} | {train_s:.1f} "
            f"| {class_s:.1f} | {row.get('load_s', 0.0):.2f} | {row['image_s']:.3f} | {setup:.1f} "
            f"| {'–' if gib_t is None else f'{gib_t:.1f}'} "
            f"| {'–' if gib_s is None else f'{gib_s:.1f}'} |"
        )
    if shape is not None:
        st = shape["settings"]
        print(
            f"\n| 3D asset ({shape['preset']} Shap-E, {shape['params_m']:.1f} M params; {st.steps} "
            f"steps, grid {st.grid_size}, 20 views of {st.view_size} px) | latent s | mesh s "
            "| views s | total s | peak GiB |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        total = shape["latent_s"] + shape["mesh_s"] + shape["views_s"]
        gib = shape["gib"]
        print(
            f"| subject | {shape['latent_s']:.2f} | {shape['mesh_s']:.2f} | {shape['views_s']:.2f} "
            f"| {total:.2f} | {'–' if gib is None else f'{gib:.1f}'} |"
        )
    if videos:
        print(
            f"\n| clip ({args.video_frames} frames, {args.steps} steps) | build s | s/clip "
            "| encode s/clip | peak GiB |"
        )
        print("| --- | ---: | ---: | ---: | ---: |")
        for row in videos:
            gib = row["gib"]
            print(
                f"| {row['name']} | {row['build_s']:.1f} | {row['clip_s']:.2f} "
                f"| {row['encode_s']:.3f} | {'–' if gib is None else f'{gib:.1f}'} |"
            )


def shape_row(args: argparse.Namespace, work: Path, preset: str) -> dict[str, Any]:
    """Seconds per 3D asset through pgen's Shap-E backend, split into its three parts."""
    from pgen.models.shape import ShapEModel, ShapeSettings

    folder = save_random_shap_e(work / "shap-e", preset="tiny" if preset == "tiny" else "shap-e")
    model = ShapEModel(str(folder), device=args.device)
    tiny = preset == "tiny"
    settings = ShapeSettings(
        steps=args.shape_steps,
        grid_size=32 if tiny else 128,
        view_size=16 if tiny else 64,
        coarse_samples=16 if tiny else 64,
        fine_samples=16 if tiny else 128,
    )
    image = Image.new("RGB", (256, 256), (200, 60, 40))
    model.make(
        image,
        0,
        ShapeSettings(steps=1, grid_size=16, view_size=8, coarse_samples=4, fine_samples=4),
    )
    reset_peak(args.device)
    latent: list[Any] = []
    latent_s = timed(args.device, lambda: latent.append(model.latent(image, 0, settings)))
    mesh_s = timed(args.device, lambda: model.mesh(latent[0], settings))
    views_s = timed(args.device, lambda: model.views(latent[0], settings))
    pipe = model.pipe
    params = sum(
        p.numel()
        for part in (pipe.prior, pipe.image_encoder, pipe.shap_e_renderer)
        for p in part.parameters()
    )
    return {
        "preset": "tiny random" if tiny else "img2img-shaped random",
        "params_m": params / 1e6,
        "latent_s": latent_s,
        "mesh_s": mesh_s,
        "views_s": views_s,
        "gib": peak_gib(args.device),
        "settings": settings,
    }


def two_subject_rows(
    args: argparse.Namespace, model: DiffusersImageModel, work: Path, sample_s: float
) -> dict[str, dict[str, Any]]:
    """Seconds per image of two subjects (the DreamBooth-LoRA above, stacked twice as two
    subjects: the cost does not depend on what they learned): ``stack`` (both adapters at
    once) and ``regions`` (the stacked image, then one inpainting pass per subject)."""
    from pgen.models.base import AdapterRef
    from pgen.models.regions import Region, render_subjects

    lora = AdapterRef("dreambooth-lora", "bench/rex", work / "dreambooth-lora")
    regions = [
        Region("rex", "a sks dog", lora, (0.0, 0.5)),
        Region("mug", "a sks cup", lora, (0.5, 1.0)),
    ]
    prompt = "a sks dog and a sks cup on a beach"
    sampling = ImageGenerationSettings(steps=args.steps)
    rows = {}
    for method in ("stack", "regions"):
        render_subjects(
            model, prompt, regions, [0.5, 0.5], method, ImageGenerationSettings(steps=2)
        )
        reset_peak(args.device)
        seconds = timed(
            args.device,
            lambda m=method: [
                render_subjects(model, prompt, regions, [0.5, 0.5], m, sampling)
                for _ in range(args.images)
            ],
        )
        rows[f"two subjects: {method}"] = {
            "image_s": seconds / args.images,
            "image_gib": peak_gib(args.device),
        }
    return rows


def video_rows(
    args: argparse.Namespace, model: DiffusersImageModel, work: Path, preset: str
) -> list[dict[str, Any]]:
    """Seconds per AnimateDiff clip through pgen's video backend, plain and with the
    DreamBooth-LoRA trained above (applied per clip, as a request would)."""
    from pgen.models.base import AdapterRef
    from pgen.models.video import Video, VideoGenerationSettings, video_model

    frames = args.video_frames
    motion = save_random_motion_adapter(work / "motion", preset, max_frames=max(frames, 8))
    reset_peak(args.device)
    build_s = timed(args.device, lambda: video_model(model, str(motion)))
    video = video_model(model, str(motion))
    settings = VideoGenerationSettings(steps=args.steps)
    lora = AdapterRef("dreambooth-lora", "bench/rex", work / "dreambooth-lora")
    rows = []
    for name, adapter in (("animatediff", None), ("animatediff + dreambooth-lora", lora)):
        video.render("a dog", 2, 0, VideoGenerationSettings(steps=2), adapter)  # warm-up
        reset_peak(args.device)
        made: list[Any] = []
        clip_s = (
            timed(
                args.device,
                lambda a=adapter, made=made: made.extend(
                    video.render("a photo of a dog running on a beach", frames, k, settings, a)
                    for k in range(args.clips)
                ),
            )
            / args.clips
        )
        gib = peak_gib(args.device)
        start = time.perf_counter()
        for k, clip in enumerate(made):
            clip_file = Video(clip, 8)
            clip_file.save(work / f"clip{k}{clip_file.suffix}")
        encode_s = (time.perf_counter() - start) / len(made)
        rows.append(
            {"name": name, "build_s": build_s, "clip_s": clip_s, "encode_s": encode_s, "gib": gib}
        )
    return rows


if __name__ == "__main__":
    main()
