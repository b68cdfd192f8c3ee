"""The 3D model backend: diffusers' Shap-E image-to-3D pipeline (``ShapEImg2ImgPipeline``,
``openai/shap-e-img2img``), one image in, one textured mesh and its turntable views out.

The pipeline runs once, to the latent (the implicit function's weights); the renderer then
decodes that latent twice: to a mesh (signed distance on a grid, marching cubes, a colour
per vertex) and to the 20 pan views that CLIP scores against the user's references. Each
decode writes the latent into the renderer's MLP, so each runs under the model's lock.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

from pgen.models.executors import Executed

if TYPE_CHECKING:
    import torch

DEFAULT_SHAPE_MODEL = "openai/shap-e-img2img"
PAN_VIEWS = 20  # diffusers' pan cameras: 20 views around the object, 30 degrees up
# The PLY rows pgen writes and reads: a vertex (xyz floats, rgb bytes), a triangle.
_PLY_VERTEX = np.dtype([("xyz", "<f4", 3), ("rgb", "u1", 3)])
_PLY_FACE = np.dtype([("n", "u1"), ("v", "<i4", 3)])


@dataclass(frozen=True)
class ShapeSettings:
    """Sampling and decoding settings (the defaults are Shap-E's own)."""

    steps: int = 64
    guidance_scale: float = 3.0
    grid_size: int = 128  # the signed-distance grid the mesh is cut from, per side
    view_size: int = 64  # pixels per side of each rendered view
    coarse_samples: int = 64  # NeRF samples per ray (stratified, then importance)
    fine_samples: int = 128


@dataclass
class Mesh:
    """Vertices (n, 3) in the unit box, triangles (m, 3) and a colour per vertex (n, 3,
    0-255); saved as binary PLY, which Blender, MeshLab and trimesh read."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray

    suffix = ".ply"

    def save(self, path: Path) -> None:
        header = "\n".join(
            [
                "ply",
                "format binary_little_endian 1.0",
                "comment made by pgen (Shap-E image-to-3D)",
                f"element vertex {len(self.vertices)}",
                "property float x",
                "property float y",
                "property float z",
                "property uchar red",
                "property uchar green",
                "property uchar blue",
                f"element face {len(self.faces)}",
                "property list uchar int vertex_indices",
                "end_header",
            ]
        )
        rows = np.empty(len(self.vertices), dtype=_PLY_VERTEX)
        rows["xyz"], rows["rgb"] = self.vertices, self.colors
        triangles = np.empty(len(self.faces), dtype=_PLY_FACE)
        triangles["n"], triangles["v"] = 3, self.faces
        with path.open("wb") as out:
            out.write(header.encode("ascii") + b"\n")
            out.write(rows.tobytes())
            out.write(triangles.tobytes())


def read_ply(path: Path) -> Mesh:
    """A mesh as ``Mesh.save`` writes it (binary PLY: xyz floats, rgb bytes, triangles)."""
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    elements = [line.split() for line in header if line.startswith("element")]
    counts = {name: int(count) for _, name, count in elements}
    rows = np.frombuffer(data, dtype=_PLY_VERTEX, count=counts["vertex"], offset=end)
    start = end + counts["vertex"] * _PLY_VERTEX.itemsize
    triangles = np.frombuffer(data, dtype=_PLY_FACE, count=counts["face"], offset=start)
    if start + counts["face"] * _PLY_FACE.itemsize != len(data) or (triangles["n"] != 3).any():
        raise ValueError(f"{path}: not a triangle mesh as pgen writes it")
    return Mesh(rows["xyz"].copy(), triangles["v"].copy(), rows["rgb"].copy())


@dataclass
class Asset:
    """One generated 3D asset: the mesh and its rendered views."""

    mesh: Mesh
    views: list[Image.Image]


class ShapeModel(Protocol):
    """An image-to-3D model: one image in, one asset out."""

    name: str
    defaults: ShapeSettings

    def make(self, image: Image.Image, seed: int, settings: ShapeSettings) -> Asset: ...


def _ray_batch(rays: int, most: int = 4096) -> int:
    """The largest divisor of ``rays`` up to ``most``: diffusers renders
    ``rays // batch`` batches and would drop a remainder (a view with missing rows)."""
    return max(d for d in range(1, min(rays, most) + 1) if rays % d == 0)


class ShapEModel:
    """Shap-E's image-to-3D pipeline from a Hub id or a ``save_pretrained`` folder;
    ``defaults``: its sampling and decoding settings (a config table's ``settings``), used
    where a request's call gives none."""

    def __init__(self, source: str, device: str = "cpu", **defaults: Any) -> None:
        from dataclasses import fields

        from diffusers import ShapEImg2ImgPipeline

        from pgen.models.quiet import quiet_third_party

        known = {f.name for f in fields(ShapeSettings)}
        if set(defaults) - known:
            unknown = ", ".join(sorted(set(defaults) - known))
            raise ValueError(f"shape_model settings: unknown {unknown}; known: {', '.join(known)}")
        self.defaults = ShapeSettings(**defaults)

        with quiet_third_party(diffusers=True):
            pipe = ShapEImg2ImgPipeline.from_pretrained(source)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(device)
        self.name = source
        self.device = device
        self.lock = threading.Lock()

    def make(self, image: Image.Image, seed: int, settings: ShapeSettings) -> Asset:
        latents = self.latent(image, seed, settings)
        return Asset(self.mesh(latents, settings), self.views(latents, settings))

    def latent(self, image: Image.Image, seed: int, settings: ShapeSettings) -> torch.Tensor:
        """The sampled latent: the weights of the asset's implicit function."""
        import torch

        with self.lock, torch.no_grad():
            latents: torch.Tensor = self.pipe(
                image.convert("RGB"),
                num_inference_steps=settings.steps,
                guidance_scale=settings.guidance_scale,
                output_type="latent",
                # CPU generators give the same noise on every device for the same seed.
                generator=torch.Generator("cpu").manual_seed(seed),
            ).images[:1]
        return latents

    def mesh(self, latents: torch.Tensor, settings: ShapeSettings) -> Mesh:
        import torch

        renderer = self.pipe.shap_e_renderer
        with self.lock, torch.no_grad():  # decoding writes the latent into the renderer
            decoded = renderer.decode_to_mesh(latents, self.device, grid_size=settings.grid_size)
        channels = decoded.vertex_channels
        linear = np.stack([channels[c].float().cpu().numpy() for c in "RGB"], axis=-1)
        return Mesh(
            decoded.verts.float().cpu().numpy(),
            decoded.faces.cpu().numpy().astype(np.int32),
            (np.clip(_linear_to_srgb(linear), 0.0, 1.0) * 255).round().astype(np.uint8),
        )

    def views(self, latents: torch.Tensor, settings: ShapeSettings) -> list[Image.Image]:
        import torch

        size = settings.view_size
        with self.lock, torch.no_grad():  # decoding writes the latent into the renderer
            frames = self.pipe.shap_e_renderer.decode_to_image(
                latents,
                self.device,
                size=size,
                ray_batch_size=_ray_batch(PAN_VIEWS * size * size),
                n_coarse_samples=settings.coarse_samples,
                n_fine_samples=settings.fine_samples,
            )
        pixels = (frames.float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
        return [Image.fromarray(view) for view in pixels]


def _linear_to_srgb(u: np.ndarray) -> np.ndarray:
    """diffusers hands vertex colours back in linear light; files hold sRGB."""
    return np.where(u <= 0.0031308, 12.92 * u, 1.055 * np.power(np.maximum(u, 0), 1 / 2.4) - 0.055)


class ShapePlanLike(Protocol):
    image: str  # the path of the image the asset is made from
    seed: int


def execute_shape(
    model: ShapeModel,
    plans: Sequence[ShapePlanLike],
    settings: ShapeSettings | None,
    sinks: Sequence[Any] | None = None,
) -> list[Executed]:
    """One asset per plan, one plan at a time: the mesh as the output's file, the views as
    its images; the output's text names the image it was made from."""
    from pgen.models.image_input import open_image

    settings = settings or model.defaults
    done = []
    for plan in plans:
        asset = model.make(open_image(plan.image), plan.seed, settings)
        text = f"a 3D asset from {Path(plan.image).name}"
        done.append(Executed(text, model.name, images=asset.views, files=[asset.mesh]))
    return done
