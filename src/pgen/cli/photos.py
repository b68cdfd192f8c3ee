"""Assistant subcommands: ``pgen ask``, ``pgen search-photos``, ``pgen bench concepts``.

Torch, transformers and PIL load inside the handlers: ``pgen --help`` must stay fast.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pgen.cli.options import positive
from pgen.config import Config, settings_from
from pgen.context.media import MEDIA_ROOT_ENV
from pgen.personalize import strategy_names

if TYPE_CHECKING:
    from pgen.context.base import ContextStore
    from pgen.engine import Engine

T = TypeVar("T")
DEFAULT_VISION_MODEL_ENV = "PGEN_VISION_MODEL"
ALLOWED_ENV = MEDIA_ROOT_ENV  # the folders ingest accepts media from serve requests too


def _allowed(args: argparse.Namespace) -> list[Path]:
    """The folders images may come from: --allow, else $PGEN_MEDIA_ROOT, else the working
    directory (a request never reads a file the operator did not open up)."""
    if args.allow:
        return [Path(p) for p in args.allow]
    env = os.environ.get(ALLOWED_ENV)
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [Path.cwd()]


def _photo_components(args: argparse.Namespace, config: Config) -> dict[str, Any]:
    """The engine's vision components as this command's flags name them (vision model,
    image embedders, allowed folders, calibration, negative pool, reply length)."""
    from pgen.config import GenerationSettings
    from pgen.factory import Lazy
    from pgen.models.face import FaceEmbedder, load_face_embedder
    from pgen.models.image_embedding import ImageEmbedder, TextImageEmbedder, load_image_embedder
    from pgen.usermodel.concepts import Calibration
    from pgen.usermodel.photo_memory import PhotoMemory

    config.apply_threads()
    spec = (
        getattr(args, "vision_model", None)
        or os.environ.get(DEFAULT_VISION_MODEL_ENV)
        or config.vision_model
    )
    device = args.device or config.device

    def vision_model() -> Any:
        from pgen.models.vision import load_vision_model

        if not spec:  # the concepts recognized answer; the answer says a VLM would describe
            return None
        return load_vision_model(spec, device=device)

    text_embedder = None
    if getattr(args, "text_image_model", None):
        loaded = load_image_embedder(args.text_image_model, device)
        if not isinstance(loaded, TextImageEmbedder) or not getattr(loaded, "has_text", False):
            raise ValueError(f"--text-image-model {args.text_image_model!r} has no text tower")
        text_embedder = loaded
    calibration = Calibration.load(Path(args.calibration)) if args.calibration else None
    face_spec = getattr(args, "face_embedder", "dlib")

    def photos(store: ContextStore) -> PhotoMemory:
        image_embedder: Lazy[ImageEmbedder] = Lazy(
            partial(load_image_embedder, args.image_embedder, device)
        )
        faces: Lazy[FaceEmbedder] | None = None
        if face_spec != "none":
            faces = Lazy(partial(load_face_embedder, face_spec, device))
        return PhotoMemory(
            store,
            image_embedder,
            allowed=_allowed(args),
            calibration=calibration,
            negative_pool=[Path(p) for p in args.negative_pool],
            text_image_embedder=None if text_embedder is None else Lazy(text_embedder),
            face_embedder=faces,
        )

    length = getattr(args, "max_new_tokens", 128)
    return {
        "vision_model": vision_model,
        "photos": photos,
        "generation": GenerationSettings.from_settings(config, max_new_tokens=length),
    }


def _run(args: argparse.Namespace, config: Config, call: Callable[[Engine], T]) -> T:
    """``call`` on an engine over the configured store whose vision components take this
    command's flags, closed afterwards."""
    from pgen.engine import Engine

    with Engine.open(config, **_photo_components(args, config)) as engine:
        return call(engine)


def cmd_ask(args: argparse.Namespace, config: Config) -> None:
    answer = _run(
        args,
        config,
        lambda e: e.answer(
            args.user, args.image, args.instruction, strategy=args.strategy, k=args.k
        ),
    )
    if args.json:
        print(json.dumps({"output_id": answer.output_id, "text": answer.text, **answer.provenance}))
        return
    print(answer.text)
    used = answer.provenance.get("subjects") or []
    print(
        f"\n[output {answer.output_id}; strategy {answer.strategy}; "
        f"concepts used: {', '.join(used) or 'none'}]"
    )


def cmd_train_concept(args: argparse.Namespace, config: Config) -> None:
    from pgen.training.concept_tokens import ConceptTokenSettings

    training = settings_from(ConceptTokenSettings, args, learning_rate=args.lr)
    folder = _run(
        args,
        config,
        lambda e: e.train_concept_tokens(args.user, args.concept, training),
    )
    meta = json.loads((folder / "concept_tokens.json").read_text())
    print(
        f"trained {args.tokens} concept tokens for {args.concept!r} of user {args.user!r}: "
        f"{len(meta['losses'])} steps, last loss {meta['losses'][-1]:.4f}\nartifact: {folder}"
    )


def cmd_search_photos(args: argparse.Namespace, config: Config) -> None:
    import sys

    hits = _run(args, config, lambda e: e.search_photos(args.user, args.query, k=args.k))
    unused = getattr(hits, "unused_words", "")
    note = (
        f"[not used: {unused!r}: searching by words needs a text-image embedder "
        "(--text-image-model, a CLIP or SigLIP id or folder); ranked by the concepts named]"
        if unused
        else ""
    )
    if args.json:
        print(json.dumps([hit.__dict__ for hit in hits]))
        if note:
            print(note, file=sys.stderr)
        return
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank:>3}. {hit.score:7.3f}  {hit.doc_id}  {hit.image_path}")
    if not hits:
        print("no photos (ingest documents of kind 'photo' with fields.image_path)")
    if note:
        print(f"\n{note}")


def cmd_bench_concepts(args: argparse.Namespace, config: Config) -> None:
    from pgen.bench.concept_recognition import (
        ConceptsBenchSettings,
        format_table,
        run_concepts_bench,
    )
    from pgen.bench.dreambench import load_dreambench
    from pgen.models.image_embedding import load_image_embedder
    from pgen.usermodel.concepts import ImageVectors

    if args.data is None:
        raise ValueError(
            "bench concepts needs --data DIR: a DreamBench folder (<subject>/*.jpg and "
            "prompts_and_classes.txt), e.g. --data ../shared/data/dreambench"
        )
    config.apply_threads()
    bench = load_dreambench(args.data, args.subjects.split(",") if args.subjects else None)
    embedder = load_image_embedder(args.image_embedder, args.device or config.device)
    run = ConceptsBenchSettings(
        references=args.references, folds=args.folds, repeats=args.repeats, seed=args.seed
    )
    result = run_concepts_bench(bench, ImageVectors(embedder), run)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out = Path(args.out) if args.out else config.home / "bench" / f"concepts-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    if args.vision_model:
        from pgen.bench.captions import run_caption_bench
        from pgen.models.base import GenerationSettings
        from pgen.models.vision import load_vision_model

        model = load_vision_model(args.vision_model, device=args.device or config.device)
        result["captions"] = run_caption_bench(
            bench,
            model,
            embedder,
            out,
            strategies=args.caption_strategies.split(","),
            references=args.references,
            token_steps=args.token_steps,
            generation=GenerationSettings(max_new_tokens=args.max_new_tokens),
        )
        result["captions"]["vision_model"] = model.name
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    # Usable as --calibration for ask and search-photos.
    (out / "calibration.json").write_text(json.dumps(result["calibration"], indent=2) + "\n")
    table = format_table(result)
    for strategy, rows in result.get("captions", {}).items():
        if isinstance(rows, dict) and "name_rate" in rows:
            for measure in ("name_rate", "prompt_rate"):
                cell = rows[measure]
                table += (
                    f"\n| caption {measure.replace('_', ' ')} ({strategy}) | {cell['value']:.3f} "
                    f"[{cell['low']:.3f}, {cell['high']:.3f}] |"
                )
    (out / "table.md").write_text(table + "\n")
    print(table)
    print(
        f"\n[{len(bench.subjects)} subjects, {result['queries']} query photos; embedder "
        f"{embedder.model_id}; results in {out}]"
    )


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--image-embedder",
        default="efficientnet-lite0",
        help="efficientnet-lite0 (offline), or a CLIP/SigLIP/DINO id or folder",
    )
    p.add_argument("--device", help="cpu, cuda ... (default: the config's device)")


def _add_assistant(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", required=True, help="whose concepts and photos")
    p.add_argument(
        "--allow",
        action="append",
        help=f"a folder images may come from (repeatable; default ${ALLOWED_ENV}, else the "
        "working directory)",
    )
    p.add_argument("--calibration", help="concept calibration JSON (default: built in)")
    p.add_argument(
        "--negative-pool",
        action="append",
        default=[],
        help="operator image for per-concept negatives (repeatable; never a user's photos)",
    )
    p.add_argument(
        "--face-embedder",
        default="dlib",
        help="recognizes the user's people (subjects of class 'person') by face: dlib "
        "(offline, the faces extra), dlib-cnn, a TorchScript ArcFace folder, or none",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_common(p)


def register(commands: Any, bench: Any) -> None:
    p = commands.add_parser("ask", help="ask about a photo, knowing the user's concepts")
    p.add_argument("instruction", help="e.g. 'what is Rex doing?'")
    p.add_argument("--image", required=True, help="the photo to ask about")
    p.add_argument("--strategy", choices=strategy_names("vision"), default="concepts", help="how")
    p.add_argument("--k", type=positive, default=2, help="concepts retrieved at most")
    p.add_argument(
        "--vision-model",
        help=f"HF id, folder or openai:MODEL@URL (default ${DEFAULT_VISION_MODEL_ENV}; without "
        "one, the answer is the concepts recognized in the photo)",
    )
    p.add_argument("--max-new-tokens", type=positive, default=128, help="answer length cap")
    _add_assistant(p)
    p.set_defaults(func=cmd_ask, reads_store=True)

    p = commands.add_parser("train-concept", help="learn a concept's tokens (Yo'LLaVA-style)")
    p.add_argument("--concept", required=True, help="the subject's name in the user's context")
    p.add_argument("--vision-model", help="HF id or folder (a transformers model)")
    p.add_argument("--tokens", type=int, default=4, help="learned tokens per concept")
    p.add_argument("--steps", type=positive, default=40, help="optimizer steps")
    p.add_argument("--lr", type=float, default=1e-2, help="learning rate")
    _add_assistant(p)
    p.set_defaults(func=cmd_train_concept, reads_store=True)

    p = commands.add_parser("search-photos", help="find the user's photos by concept and words")
    p.add_argument("query", help="e.g. 'Rex at the beach'")
    p.add_argument("--k", type=positive, default=10, help="photos to return")
    p.add_argument("--text-image-model", help="CLIP/SigLIP id or folder: search by words too")
    _add_assistant(p)
    p.set_defaults(func=cmd_search_photos, reads_store=True)

    p = bench.add_parser("concepts", help="concept recognition, identification, retrieval")
    p.add_argument("--data", type=Path, help="DreamBench folder (required)")
    p.add_argument("--subjects", help="comma-separated subject names (default: all present)")
    p.add_argument("--references", type=int, default=3, help="reference photos per subject")
    p.add_argument("--folds", type=int, default=3, help="calibration folds over subjects")
    p.add_argument("--repeats", type=int, default=5, help="fold assignments to average over")
    p.add_argument("--seed", type=int, default=0, help="fold shuffle and bootstrap seed")
    p.add_argument("--out", help="result folder (default: <home>/bench/concepts-<time>)")
    p.add_argument("--vision-model", help="also caption the query photos (HF id, folder, openai:)")
    p.add_argument(
        "--caption-strategies", default="none,concepts", help="comma-separated, for captions"
    )
    p.add_argument("--token-steps", type=int, default=40, help="concept-tokens training steps")
    p.add_argument("--max-new-tokens", type=int, default=64, help="caption length")
    _add_common(p)
    p.set_defaults(func=cmd_bench_concepts)
