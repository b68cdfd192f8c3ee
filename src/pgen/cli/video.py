"""Video, post and 3D subcommands: ``pgen generate-video``, ``pgen generate-post``,
``pgen eval-videos``, ``pgen eval-3d`` (a 3D output is made by ``pgen generate --modality
3d``). Each builds its modality's request and calls ``Engine.generate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pgen.cli.images import _add_model_options, _engine
from pgen.cli.options import generation_settings
from pgen.config import Config
from pgen.personalize import strategy_names
from pgen.personalize.subject import TRAINERS


def _show(result: Any, as_json: bool) -> None:
    if as_json:
        record = {"output_id": result.output_id, "text": result.text, **result.details}
        record.update(provenance=result.provenance.as_dict(), media=list(map(str, result.media)))
        print(json.dumps(record, ensure_ascii=False, default=str))
        return
    print(result.text)
    print("\n".join(map(str, result.media)))
    used = result.provenance.subjects + result.provenance.documents + result.provenance.items
    print(
        f"\n[output {result.output_id}; strategy {result.strategy}; "
        f"context used: {', '.join(used) or 'none'}]"
    )


def cmd_generate_video(args: argparse.Namespace, config: Config) -> None:
    from pgen.components import VideoRequest
    from pgen.factory import check_image_model
    from pgen.models.video import VideoGenerationSettings

    request = VideoRequest(
        args.user,
        args.instruction,
        args.strategy,
        args.subject,
        args.method,
        args.frames,
        args.fps,
        args.seed,
        args.motion_adapter,
    )
    sampling = VideoGenerationSettings(
        args.steps, args.guidance, args.size, args.size, args.negative
    )
    with _engine(args, config) as engine:
        checked = engine.check(request)  # the user, the subject, the frames: before loading
        check_image_model(args.image_model or config.image_model)
        result = engine.generate(checked, generation=sampling)
    _show(result, args.json)


def cmd_generate_post(args: argparse.Namespace, config: Config) -> None:
    from pgen.components import PostRequest
    from pgen.models.base import ImageGenerationSettings
    from pgen.models.post import PostSettings

    request = PostRequest(
        args.user,
        args.instruction,
        args.strategy,
        args.caption,
        args.image,
        args.subject,
        args.k,
        args.retriever,
        args.seed,
    )
    sampling = ImageGenerationSettings(args.steps, args.guidance, args.size, args.size, args.seed)
    settings = PostSettings(generation_settings(args, config), sampling)
    with _engine(args, config) as engine:
        checked = engine.check(request)
        result = engine.generate(checked, generation=settings)
    _show(result, args.json)


def cmd_eval_videos(args: argparse.Namespace, config: Config) -> None:
    from pgen.evaluate.metrics.image import ClipEncoder, DinoEncoder, image_folder
    from pgen.evaluate.metrics.video import TransformersVideoNetwork, evaluate_clips

    clips = _clips(args.clips, "--clips")
    if bool(args.fvd_network) != bool(args.real_clips):
        raise ValueError("FVD takes both --fvd-network and --real-clips")
    real = _clips(args.real_clips, "--real-clips") if args.real_clips else []
    references = image_folder(args.references) if args.references else []
    prompts = None
    if args.prompts:
        lines = Path(args.prompts).read_text(encoding="utf-8").splitlines()
        prompts = [line.strip() for line in lines if line.strip()]
    device = args.device or config.device
    clip = ClipEncoder(args.clip_model, device) if args.clip_model != "none" else None
    dino = DinoEncoder(args.dino_model, device) if args.dino_model != "none" else None
    network = TransformersVideoNetwork(args.fvd_network, device) if args.fvd_network else None
    result = evaluate_clips(clips, prompts, references, clip, dino, network, real)
    _print_metrics(result, args.json)
    if network is None and not args.json:
        print("\n[FVD: not computed; give --fvd-network (a video encoder) and --real-clips]")


def _print_metrics(result: dict[str, float], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    print("| metric | value |\n| --- | ---: |")
    for name, value in result.items():
        print(f"| {name} | {value:.4f} |")


def _clips(folder: Path, flag: str) -> list[Path]:
    clips = sorted(p for p in folder.iterdir() if p.suffix in (".mp4", ".gif"))
    if not clips:
        raise ValueError(f"{flag} {folder}: no .mp4 or .gif files")
    return clips


def cmd_eval_3d(args: argparse.Namespace, config: Config) -> None:
    """A stored 3D output's views against its subject's references and its instruction."""
    from pgen.engine import Engine
    from pgen.errors import NotFound
    from pgen.evaluate.metrics.image import ClipEncoder, DinoEncoder, open_images
    from pgen.evaluate.metrics.video import asset_metrics

    with Engine.open(config) as engine:
        try:
            output = engine.store.output(args.user, args.output)
        except NotFound:
            output = None
    if output is None or output.modality != "3d":
        raise ValueError(f"user {args.user!r} has no 3d output {args.output!r}")
    views = open_images([p for p in output.media if p.endswith(".png")])
    references = open_images(list(output.provenance["details"]["reference_scores"]))
    device = args.device or config.device
    clip = ClipEncoder(args.clip_model, device)
    dino = DinoEncoder(args.dino_model, device) if args.dino_model != "none" else None
    _print_metrics(asset_metrics(views, output.instruction, references, clip, dino), args.json)


def register(commands: Any, bench: Any) -> None:
    p = commands.add_parser("generate-video", help="a personalized clip (AnimateDiff)")
    p.add_argument("instruction", help="what to animate, e.g. 'rex running on a beach'")
    p.add_argument("--user", required=True, help="the user to animate for")
    p.add_argument(
        "--strategy",
        choices=strategy_names("video"),
        default="subject",
        help="subject: the user's subject animated; none: the instruction alone",
    )
    p.add_argument("--subject", help="subject name (default: the one the instruction names)")
    p.add_argument("--method", choices=TRAINERS, help="default: the best trained one")
    p.add_argument("--frames", type=int, default=16, help="frames in the clip")
    p.add_argument("--fps", type=int, default=8, help="frames per second of the saved clip")
    p.add_argument(
        "--motion-adapter",
        help="AnimateDiff motion adapter: Hub id, folder or weight file "
        "(default: $PGEN_MOTION_ADAPTER, else guoyww/animatediff-motion-adapter-v1-5-2)",
    )
    p.add_argument("--negative", help="negative prompt")
    p.add_argument("--json", action="store_true", help="print the output record as JSON")
    _add_model_options(p, steps=25)
    p.set_defaults(func=cmd_generate_video, reads_store=True)

    p = commands.add_parser("generate-post", help="a caption and an image in one post")
    p.add_argument("instruction", help="what the post is about, e.g. 'my weekend hike'")
    p.add_argument("--user", required=True, help="whose post")
    p.add_argument(
        "--strategy",
        choices=strategy_names("post"),
        default="joint",
        help="joint: the image prompted from the caption; independent: both from the request",
    )
    p.add_argument("--caption", default="rag", help="text strategy of the caption")
    p.add_argument("--image", default="keywords", help="image strategy: none, keywords, subject")
    p.add_argument("--subject", help="the subject for --image subject")
    p.add_argument("--k", type=int, default=4, help="documents retrieved for the caption")
    p.add_argument("--retriever", default="bm25", help="retriever of the caption strategy")
    p.add_argument("--max-new-tokens", type=int, help="caption length cap")
    p.add_argument("--json", action="store_true", help="print the output record as JSON")
    _add_model_options(p)
    p.set_defaults(func=cmd_generate_post, reads_store=True)

    p = commands.add_parser(
        "eval-videos", help="per-frame CLIP-I, DINO-I, CLIP-T, temporal consistency of clips"
    )
    p.add_argument("--clips", required=True, type=Path, help="folder of .mp4 / .gif clips")
    p.add_argument("--references", type=Path, help="folder of the subject's reference images")
    p.add_argument("--prompts", help="text file: one prompt per clip, or one for all")
    p.add_argument("--clip-model", default="openai/clip-vit-base-patch32", help="id, folder, none")
    p.add_argument("--dino-model", default="facebook/dino-vits16", help="id, folder, none")
    p.add_argument(
        "--fvd-network", help="FVD's video encoder: a transformers VideoMAE id or folder"
    )
    p.add_argument("--real-clips", type=Path, help="folder of real .mp4 / .gif clips for FVD")
    p.add_argument("--device", help="cpu, cuda ... (default: the config's device)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_eval_videos)

    p = commands.add_parser(
        "eval-3d", help="a 3D output's views: CLIP-I and DINO-I to the references, CLIP-T"
    )
    p.add_argument("--user", required=True, help="whose output")
    p.add_argument("--output", required=True, help="the output id (pgen generate --modality 3d)")
    p.add_argument("--clip-model", default="openai/clip-vit-base-patch32", help="id or folder")
    p.add_argument("--dino-model", default="facebook/dino-vits16", help="id, folder, none")
    p.add_argument("--device", help="cpu, cuda ... (default: the config's device)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_eval_3d, reads_store=True)
