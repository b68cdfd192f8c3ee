"""Image subcommands: ``pgen generate-image``, ``pgen train-subject``, ``pgen eval-images``,
``pgen bench dreambench``."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgen.config import Config, settings_from
from pgen.personalize import strategy_names
from pgen.personalize.subject import METHODS, TRAINERS

if TYPE_CHECKING:
    from pgen.engine import Engine
    from pgen.models.image import DiffusersImageModel, ImageGenerationSettings
    from pgen.personalize.face_id import FaceIDSpec
    from pgen.personalize.subject import IPAdapterSpec
    from pgen.training.subject_artifacts import SubjectTrainingSettings

# Torch and diffusers load inside the handlers: `pgen --help` must stay fast. Choices come
# from the strategy registry and the subject methods, never copied here.


def _model(args: argparse.Namespace, config: Config) -> DiffusersImageModel:
    from pgen.factory import apply_thread_policy, build_image_model

    apply_thread_policy(config)
    overrides = {"model": args.image_model, "device": args.device, "dtype": args.dtype}
    return build_image_model(config, **overrides, config=args.image_config)


def _engine(args: argparse.Namespace, config: Config) -> Engine:
    from pgen.engine import Engine

    return Engine.open(config, image_model=lambda: _model(args, config))


def _sampling(args: argparse.Namespace) -> ImageGenerationSettings:
    from pgen.models.image import ImageGenerationSettings

    return settings_from(
        ImageGenerationSettings,
        args,
        guidance_scale=args.guidance,
        height=args.size,
        width=args.size,
        images_per_prompt=getattr(args, "images", None),
        negative_prompt=getattr(args, "negative", None),
    )


def _ip_adapter(args: argparse.Namespace, model: DiffusersImageModel) -> IPAdapterSpec:
    from pgen.personalize.subject import IPAdapterSpec

    return IPAdapterSpec.for_model(
        model,
        args.ip_adapter,
        subfolder=args.ip_adapter_subfolder,
        weight_name=args.ip_adapter_weight,
        scale=args.ip_adapter_scale,
    )


def _face_id(args: argparse.Namespace, model: DiffusersImageModel) -> FaceIDSpec:
    from pgen.personalize.face_id import FaceIDSpec

    return FaceIDSpec.for_model(
        model,
        args.ip_adapter,
        subfolder=args.ip_adapter_subfolder,
        weight_name=args.ip_adapter_weight,
        scale=args.ip_adapter_scale,
        face_model=args.face_model,
    )


def cmd_generate_image(args: argparse.Namespace, config: Config) -> None:
    from dataclasses import replace

    from pgen.components import ImageRequest
    from pgen.factory import check_image_model

    with _engine(args, config) as engine:
        request = ImageRequest(
            args.user,
            args.instruction,
            args.strategy,
            subject=args.subject,
            method=args.method,
            keywords_weight=args.weight,
        )
        # Before anything loads: the request (the user, their subject), then an image
        # model to load (none installs offline).
        engine.check(request)
        check_image_model(args.image_model or config.image_model)
        if args.strategy == "subject":
            request = replace(request, ip_adapter=_ip_adapter(args, engine.image_model))
        elif args.strategy == "face-id":
            request = replace(request, ip_adapter=_face_id(args, engine.image_model))
        result = engine.generate_image(
            request, _sampling(args), out=Path(args.out) if args.out else None
        )
    if args.json:
        record = {"output_id": result.output_id, **result.provenance.as_dict(), **result.details}
        print(json.dumps({**record, "prompt": result.prompt}, ensure_ascii=False, default=str))
        return
    print("\n".join(map(str, result.paths)))
    used = result.provenance.subjects or result.provenance.items
    print(
        f"\n[output {result.output_id}; strategy {result.strategy}; prompt {result.prompt!r}; "
        f"context used: {', '.join(used) or 'none'}]"
    )


def _training(args: argparse.Namespace) -> SubjectTrainingSettings:
    from pgen.training.subject_artifacts import SubjectTrainingSettings

    return SubjectTrainingSettings(
        steps=args.train_steps,
        learning_rate=args.lr,
        rank=args.rank,
        resolution=args.size,
        token=getattr(args, "token", None),
        prior_preservation=args.prior_preservation,
        class_images=args.class_images,
        class_steps=args.steps,  # the prior-preservation images are sampled like any other
        seed=args.seed,
    )


def cmd_train_subject(args: argparse.Namespace, config: Config) -> None:
    from pgen.training.registry import TrainRequest

    request = TrainRequest(args.user, args.method, subject=args.subject, settings=_training(args))
    with _engine(args, config) as engine:
        result = engine.train(request)
    losses = result.meta["losses"]
    print(
        f"trained {args.method} for subject {args.subject!r} of user {args.user!r}: "
        f"token {result.meta['token']!r}, {len(losses)} steps, last loss {losses[-1]:.4f}"
    )
    print(f"artifact: {result.artifact}")


def cmd_bench_dreambench(args: argparse.Namespace, config: Config) -> None:
    from pgen.bench.dreambench import (
        DreamBenchSettings,
        format_table,
        load_dreambench,
        run_dreambench,
    )

    if args.data is None:
        raise ValueError(
            "bench dreambench needs --data DIR: a DreamBench folder (<subject>/*.jpg and "
            "prompts_and_classes.txt), e.g. --data ../shared/data/dreambench"
        )
    bench = load_dreambench(args.data, args.subjects.split(",") if args.subjects else None)
    model = _model(args, config)
    device = args.device or config.device
    run = DreamBenchSettings(
        methods=tuple(args.methods.split(",")),
        prompts_per_subject=args.prompts,
        images_per_prompt=args.images_per_prompt,
        training=_training(args),
        generation=_sampling(args),
        ip_adapter=_ip_adapter(args, model),
        clip_model=args.clip_model,
        dino_model=args.dino_model,
        device=device,
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out = Path(args.out) if args.out else config.home / "bench" / f"dreambench-{stamp}"
    result = run_dreambench(bench, model, run, out)
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    table = format_table(result)
    (out / "table.md").write_text(table + "\n")
    print(table)
    print(f"\n[{len(bench.subjects)} subjects; model {model.name}; results in {out}]")


def cmd_eval_images(args: argparse.Namespace, config: Config) -> None:
    from pgen.evaluate.metrics.image import (
        ClipEncoder,
        DinoEncoder,
        FeatureEncoder,
        evaluate_folders,
    )
    from pgen.evaluate.metrics.image_inception import InceptionEncoder

    device = args.device or config.device
    prompts = None
    if args.prompts:
        lines = Path(args.prompts).read_text(encoding="utf-8").splitlines()
        prompts = [line.strip() for line in lines if line.strip()]
    encoders: list[FeatureEncoder] = []
    if args.clip_model != "none":
        encoders.append(ClipEncoder(args.clip_model, device))
    elif prompts is not None:
        raise ValueError("--prompts needs a CLIP model for CLIP-T (not --clip-model none)")
    if args.dino_model != "none":
        encoders.append(DinoEncoder(args.dino_model, device))
    if args.inception:
        encoders.append(InceptionEncoder(args.inception, device))
    result = evaluate_folders(args.real, args.generated, encoders, prompts, args.kid_subsets)
    if args.face_model != "none":
        from pgen.evaluate.metrics.face import face_similarity
        from pgen.evaluate.metrics.image import image_folder
        from pgen.models.face import load_face_embedder

        faces = load_face_embedder(args.face_model, device)
        result.update(face_similarity(image_folder(args.real), image_folder(args.generated), faces))
    if args.json:
        print(json.dumps(result))
        return
    print("| metric | value |\n| --- | ---: |")
    for name, value in result.items():
        shown = f"{int(value)}" if name in _COUNTS else f"{value:.4f}"
        print(f"| {_LABELS.get(name, name.upper().replace('_', ' '))} | {shown} |")


_COUNTS = ("images_real", "images_generated", "pairs", "faces_reference", "faces_generated")
_LABELS = {
    "clip_i": "CLIP-I",
    "dino_i": "DINO-I",
    "clip_t": "CLIP-T",
    "pairs": "SSIM/PSNR pairs",
    "face_sim": "face similarity",
    "face_detected": "generated with a face",
}


def _add_model_options(p: argparse.ArgumentParser, steps: int = 30) -> None:
    p.add_argument(
        "--image-model",
        help="diffusers pipeline: HF id, folder or .safetensors file "
        "(default: the config's image_model, env PGEN_IMAGE_MODEL)",
    )
    p.add_argument(
        "--image-config",
        help="for a single-file --image-model: pipeline folder or HF id of its family, whose "
        "component configs and tokenizers diffusers uses (needed offline)",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: the config's device)")
    p.add_argument("--dtype", default="auto", help="auto, float32, float16 or bfloat16")
    p.add_argument("--steps", type=int, default=steps, help="sampling steps")
    p.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale")
    p.add_argument("--size", type=int, help="image side in pixels (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (image k uses seed + k)")


def _add_training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train-steps", type=int, default=400, help="optimizer steps")
    p.add_argument("--lr", type=float, help="learning rate (default: the method's)")
    p.add_argument("--rank", type=int, default=4, help="LoRA rank")
    p.add_argument(
        "--prior-preservation",
        action="store_true",
        help="DreamBooth-LoRA: prior loss on generated class images",
    )
    p.add_argument("--class-images", type=int, default=100, help="prior-preservation images")


def _add_ip_adapter_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ip-adapter",
        help="IP-Adapter repo id, folder, or .safetensors/.bin file (default h94/IP-Adapter; "
        "face-id: h94/IP-Adapter-FaceID from the local cache)",
    )
    p.add_argument(
        "--ip-adapter-subfolder", help="folder of the weights in the repo (default: models)"
    )
    p.add_argument(
        "--ip-adapter-weight", help="weight file name (default: ip-adapter_sd15.safetensors)"
    )
    p.add_argument(
        "--ip-adapter-scale", type=float, default=0.6, help="IP-Adapter image conditioning weight"
    )


def register(commands: Any, bench: Any) -> None:
    p = commands.add_parser("generate-image", help="personalized images for one user")
    p.add_argument("instruction", help="what to draw, e.g. 'rex on a beach'")
    p.add_argument("--user", required=True, help="the user to draw for")
    p.add_argument(
        "--strategy", choices=strategy_names("image"), default="subject", help="how to personalize"
    )
    p.add_argument("--subject", help="subject name (default: the one the instruction names)")
    p.add_argument("--method", choices=METHODS, help="default: best trained, else ip-adapter")
    p.add_argument("--weight", type=float, default=0.3, help="keywords: preference share 0-1")
    p.add_argument("--images", type=int, default=1, help="images to generate")
    p.add_argument("--negative", help="negative prompt")
    p.add_argument(
        "--face-model",
        help="face-id: identity embedder, a TorchScript ArcFace/InsightFace folder whose size "
        "matches the FaceID weights (default: the face embedder, dlib, 128-d)",
    )
    p.add_argument("--out", help="folder for the images (default: the user's artifacts)")
    p.add_argument("--json", action="store_true", help="print the output record as JSON")
    _add_model_options(p)
    _add_ip_adapter_options(p)
    p.set_defaults(func=cmd_generate_image, reads_store=True)

    p = commands.add_parser("train-subject", help="train a user's subject (DreamBooth-LoRA, TI)")
    p.add_argument("--user", required=True, help="whose subject")
    p.add_argument("--subject", required=True, help="the subject's name in the user's context")
    p.add_argument("--method", choices=TRAINERS, default="dreambooth-lora", help="what to train")
    p.add_argument("--token", help="identifier token (default: sks, or <name> for TI)")
    _add_training_options(p)
    _add_model_options(p)
    p.set_defaults(func=cmd_train_subject, reads_store=True)

    p = commands.add_parser(
        "eval-images", help="CLIP-I, DINO-I, CLIP-T, SSIM, PSNR, FD/KD, FID/KID of two folders"
    )
    p.add_argument("--real", required=True, type=Path, help="folder of real/reference images")
    p.add_argument("--generated", required=True, type=Path, help="folder of generated images")
    p.add_argument("--prompts", help="text file: one prompt per generated image, or one for all")
    p.add_argument("--clip-model", default="openai/clip-vit-base-patch32", help="id, folder, none")
    p.add_argument("--dino-model", default="facebook/dino-vits16", help="id, folder, none")
    p.add_argument(
        "--inception",
        help="FID Inception-V3 weights (pt_inception-2015-12-05-6726825d.pth): adds FID/KID",
    )
    p.add_argument("--kid-subsets", type=int, default=100, help="KID subsets to average")
    p.add_argument(
        "--face-model",
        default="none",
        help="face similarity and detection rate: dlib (offline, the faces extra), dlib-cnn, "
        "a TorchScript ArcFace folder, or none",
    )
    p.add_argument("--device", help="cpu, cuda ... (default: the config's device)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_eval_images)

    p = bench.add_parser("dreambench", help="DreamBench: DINO, CLIP-I, CLIP-T per method")
    p.add_argument("--data", type=Path, help="DreamBench folder (required)")
    p.add_argument("--subjects", help="comma-separated subject names (default: all present)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    p.add_argument("--prompts", type=int, help="prompts per subject (default: all 25)")
    p.add_argument("--images-per-prompt", type=int, default=4, help="images per prompt")
    _add_training_options(p)
    p.add_argument(
        "--clip-model", default="openai/clip-vit-base-patch32", help="CLIP for CLIP-I/CLIP-T"
    )
    p.add_argument("--dino-model", default="facebook/dino-vits16", help="DINO for DINO-I")
    p.add_argument("--out", help="result folder (default: <home>/bench/dreambench-<time>)")
    _add_model_options(p)
    _add_ip_adapter_options(p)
    p.set_defaults(func=cmd_bench_dreambench)
