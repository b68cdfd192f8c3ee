"""The video model backend: diffusers' ``AnimateDiffPipeline`` built from the configured image
pipeline's own components plus a ``MotionAdapter`` (a Hub id, a folder or one weight file).

AnimateDiff turns a personalized text-to-image model into a video model by adding a motion
module, so the user's subject artifact (DreamBooth-LoRA, textual inversion) loads into the
video pipeline exactly as it loads into the image pipeline: through the image backend's
own loaders (``DiffusersImageModel.applied``), under the image model's lock, because the
two pipelines share the tokenizer, the text encoder and the VAE.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PIL import Image

from pgen.models.base import BASE_ADAPTER, AdapterRef, TextSink
from pgen.models.executors import Executed

if TYPE_CHECKING:
    import torch

    from pgen.models.image import DiffusersImageModel

DEFAULT_MOTION_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-2"
WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


@dataclass(frozen=True)
class VideoGenerationSettings:
    """Sampling settings of every frame (frames, fps and seed are the request's own)."""

    steps: int = 25
    guidance_scale: float = 7.5
    height: int | None = None  # None: the image model's native resolution
    width: int | None = None
    negative_prompt: str | None = None


@dataclass
class Video:
    """Frames and their rate; saved as MP4 when an encoder is installed (imageio-ffmpeg,
    the ``video`` extra), else as an animated GIF (Pillow)."""

    frames: list[Image.Image]
    fps: int

    @property
    def suffix(self) -> str:
        return ".mp4" if mp4_encoder() else ".gif"

    def save(self, path: Path) -> None:
        if path.suffix == ".mp4":
            _save_mp4(self.frames, self.fps, path)
        else:
            duration = max(1, round(1000 / self.fps))  # ms per frame
            first, *rest = self.frames
            first.save(path, save_all=True, append_images=rest, duration=duration, loop=0)


def mp4_encoder() -> str | None:
    """The ffmpeg binary imageio-ffmpeg bundles (no system ffmpeg is needed), or None."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError:  # the package without its binary
        return None


def _save_mp4(frames: Sequence[Image.Image], fps: int, path: Path) -> None:
    import imageio_ffmpeg
    import numpy as np

    width, height = frames[0].size
    # yuv420p (what every player reads) needs even sides; macro_block_size=1 keeps the
    # frame as it is, so tiny test videos of odd sizes are padded by one pixel instead.
    even = (width + width % 2, height + height % 2)
    writer = imageio_ffmpeg.write_frames(
        str(path), even, fps=fps, codec="libx264", pix_fmt_out="yuv420p", macro_block_size=1
    )
    writer.send(None)  # start the encoder
    try:
        for frame in frames:
            canvas = Image.new("RGB", even)
            canvas.paste(frame.convert("RGB"))
            writer.send(np.ascontiguousarray(np.asarray(canvas)))
    finally:
        writer.close()


def read_frames(path: Path) -> list[Image.Image]:
    """The frames of a saved video (MP4 through imageio-ffmpeg, GIF through Pillow)."""
    if path.suffix == ".mp4":
        import imageio_ffmpeg
        import numpy as np

        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        width, height = meta["size"]
        return [
            Image.fromarray(np.frombuffer(raw, np.uint8).reshape(height, width, 3))
            for raw in reader
        ]
    with Image.open(path) as gif:
        frames = []
        for index in range(getattr(gif, "n_frames", 1)):
            gif.seek(index)
            frames.append(gif.convert("RGB"))
        return frames


class VideoModel(Protocol):
    """A text-to-video model: one prompt in, frames out, with one request's adapter applied
    for that request only."""

    name: str
    motion_adapter: str
    max_frames: int

    def render(
        self,
        prompt: str,
        frames: int,
        seed: int,
        settings: VideoGenerationSettings | None = None,
        adapter: AdapterRef | None = None,
    ) -> list[Image.Image]: ...


def looks_local(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~")) or spec.endswith(WEIGHT_SUFFIXES)


def check_motion_adapter(spec: str) -> None:
    """A motion adapter named by a path must be there (said before any model loads)."""
    path = Path(spec).expanduser()
    if looks_local(spec) and not path.exists():
        raise FileNotFoundError(f"motion adapter {spec!r}: no such file or folder")
    if path.is_dir() and not (path / "config.json").is_file():
        raise ValueError(f"motion adapter {path}: not a diffusers MotionAdapter folder")


def load_motion_adapter(spec: str, dtype: torch.dtype) -> Any:
    """A ``MotionAdapter`` from a Hub id, a ``save_pretrained`` folder or one weight file
    (the original AnimateDiff ``mm_sd_v15_v2.ckpt`` layout, read by ``from_single_file``)."""
    from diffusers import MotionAdapter

    check_motion_adapter(spec)
    path = Path(spec).expanduser()
    if path.is_file():
        return MotionAdapter.from_single_file(str(path), torch_dtype=dtype)
    return MotionAdapter.from_pretrained(str(path) if path.is_dir() else spec, torch_dtype=dtype)


class AnimateDiffVideoModel:
    """The image model's pipeline with a motion module: the frames model is a
    ``DiffusersImageModel`` over the AnimateDiff pipeline (its LoRA / textual-inversion
    loaders), sharing the image model's lock."""

    def __init__(self, image_model: DiffusersImageModel, motion_adapter: str) -> None:
        from diffusers import AnimateDiffPipeline

        from pgen.models.image import DiffusersImageModel

        if image_model.is_sdxl:
            raise ValueError(
                f"video: image model {image_model.name} is SDXL; AnimateDiff here takes an SD "
                "1.x/2.x pipeline (its motion adapters are trained for SD 1.5)"
            )
        adapter = load_motion_adapter(motion_adapter, image_model.dtype)
        with image_model.lock:  # from_pipe reads the shared components
            pipe = AnimateDiffPipeline.from_pipe(image_model.pipe, motion_adapter=adapter)
        pipe.set_progress_bar_config(disable=True)
        self.frames_model = DiffusersImageModel(pipe.to(image_model.device), image_model.name)
        self.frames_model.lock = image_model.lock  # shared tokenizer, text encoder and VAE
        self.name = image_model.name  # the base model subject artifacts were trained on
        self.motion_adapter = motion_adapter
        self.max_frames = int(adapter.config.motion_max_seq_length)

    def render(
        self,
        prompt: str,
        frames: int,
        seed: int,
        settings: VideoGenerationSettings | None = None,
        adapter: AdapterRef | None = None,
    ) -> list[Image.Image]:
        if not 1 <= frames <= self.max_frames:
            raise ValueError(
                f"frames must be between 1 and {self.max_frames} (the motion adapter's "
                f"longest sequence), got {frames}"
            )
        import torch

        settings = settings or VideoGenerationSettings()
        model = self.frames_model
        with model.applied(adapter):
            result = model.pipe(
                prompt=prompt,
                negative_prompt=settings.negative_prompt,
                num_frames=frames,
                num_inference_steps=settings.steps,
                guidance_scale=settings.guidance_scale,
                height=settings.height or model.resolution,
                width=settings.width or model.resolution,
                # CPU generators give the same noise on every device for the same seed.
                generator=torch.Generator("cpu").manual_seed(seed),
                output_type="pil",
            )
        return list(result.frames[0])


_VIDEO_MODELS: weakref.WeakKeyDictionary[Any, dict[str, AnimateDiffVideoModel]] = (
    weakref.WeakKeyDictionary()
)
_BUILD = threading.Lock()


def video_model(image_model: DiffusersImageModel, motion_adapter: str) -> AnimateDiffVideoModel:
    """The video model of this image model and motion adapter, built once and kept while
    the image model lives (the motion UNet is a copy of the image UNet: built per request,
    it would cost a UNet's memory and a copy each time)."""
    with _BUILD:
        built = _VIDEO_MODELS.setdefault(image_model, {})
        if motion_adapter not in built:
            built[motion_adapter] = AnimateDiffVideoModel(image_model, motion_adapter)
        return built[motion_adapter]


class VideoPromptPlan(Protocol):
    prompt: str
    adapter: AdapterRef | None
    frames: int
    fps: int
    seed: int
    motion_adapter: str


def execute_video(
    image_model: DiffusersImageModel,
    plans: Sequence[VideoPromptPlan],
    settings: VideoGenerationSettings | None,
    sinks: Sequence[TextSink | None] | None = None,
) -> list[Executed]:
    """One clip per plan, one plan at a time (a clip must not depend on its batch mates);
    the output's text is the prompt, its media the encoded clip."""
    done = []
    for plan in plans:
        model = video_model(image_model, plan.motion_adapter)
        frames = model.render(plan.prompt, plan.frames, plan.seed, settings, plan.adapter)
        applied = plan.adapter.name if plan.adapter else BASE_ADAPTER
        name = f"{model.name}+{applied} (motion adapter {model.motion_adapter})"
        done.append(Executed(plan.prompt, name, files=[Video(frames, plan.fps)]))
    return done
