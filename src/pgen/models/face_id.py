"""IP-Adapter-FaceID in the image backend (torch loads inside the functions: ``pgen --help``
imports this through the strategy registry): the adapter's weight file located and read for
the identity dimension its projection takes, and a face identity vector turned into the
``ip_adapter_image_embeds`` the diffusers pipelines take.

FaceID conditions on a face-recognition embedding (InsightFace's 512-d ArcFace vector for
h94's weights) instead of CLIP image features, so no image encoder loads
(``image_encoder_folder=None``). Its projection (``image_proj.proj.0``, ``norm``) maps one
identity vector to four tokens for the UNet's extra cross-attention; the SD 1.5 weights
also carry a LoRA, which diffusers loads as the ``faceid_0`` adapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

FACEID_REPO = "h94/IP-Adapter-FaceID"
FACEID_WEIGHTS = {False: "ip-adapter-faceid_sd15.bin", True: "ip-adapter-faceid_sdxl.bin"}
PROJECTION = "proj.0.weight"  # (hidden, identity dim): its input side is the identity dim


def faceid_weights(repo: str, subfolder: str, weight_name: str) -> Path:
    """The weight file: ``<repo>/<subfolder>/<weight_name>`` in a folder, or from the local
    Hub cache for an id (never a download: the weights are the operator's to place)."""
    folder = Path(repo).expanduser()
    if folder.is_dir() or repo.startswith((".", "/", "~")):
        path = folder / subfolder / weight_name
        if not path.is_file():
            raise FileNotFoundError(f"FaceID weights {path}: no such file")
        return path
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(
        repo, weight_name if not subfolder else f"{subfolder}/{weight_name}"
    )
    if not isinstance(cached, str):
        raise FileNotFoundError(
            f"FaceID weights {repo}/{weight_name}: not a folder and not in the local Hub cache "
            "(download them first, or give a folder or file)"
        )
    return Path(cached)


def _projection(path: Path) -> tuple[int, ...]:
    """The shape of the identity projection, read without loading the whole file."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            key = f"image_proj.{PROJECTION}"
            keys = set(handle.keys())
            if key not in keys or "image_proj.norm.weight" not in keys:
                raise ValueError(f"FaceID weights {path}: not an IP-Adapter-FaceID file (no {key})")
            return tuple(handle.get_slice(key).get_shape())
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # pickle, zip and mmap errors differ by torch version
        raise ValueError(f"FaceID weights {path}: not a readable weight file ({error})") from None
    proj = state.get("image_proj") if isinstance(state, dict) else None
    if not isinstance(proj, dict) or PROJECTION not in proj or "norm.weight" not in proj:
        raise ValueError(f"FaceID weights {path}: not an IP-Adapter-FaceID file (no image_proj)")
    if any(key.startswith("perceiver_resampler.") for key in proj):
        raise ValueError(
            f"FaceID weights {path}: FaceID-Plus also needs CLIP image features; "
            "give plain IP-Adapter-FaceID weights"
        )
    return tuple(proj[PROJECTION].shape)


def faceid_identity_dim(path: Path) -> int:
    """The identity vector size the adapter's projection takes (512 for h94's weights)."""
    return int(_projection(path)[1])


def identity_embeds(
    identity: np.ndarray, guidance: bool, device: torch.device, dtype: torch.dtype
) -> list[torch.Tensor]:
    """One adapter's ``ip_adapter_image_embeds``: (batch, images, tokens, dim) with one
    image of one vector; under classifier-free guidance the unconditional half (a zero
    identity, as FaceID was trained) comes first, as the pipelines split it."""
    import torch

    vector = torch.as_tensor(np.asarray(identity, dtype=np.float32)).reshape(1, 1, 1, -1)
    if guidance:
        vector = torch.cat([torch.zeros_like(vector), vector])
    return [vector.to(device=device, dtype=dtype)]


def loaded_dim(pipe: Any) -> int:
    """The identity size of the FaceID projection loaded in ``pipe``'s UNet."""
    layer = pipe.unet.encoder_hid_proj.image_projection_layers[0]
    return int(layer.ff.net[0].proj.in_features)


def unload_faceid(pipe: Any) -> None:
    """Remove the adapter and the LoRA that FaceID weights may bring (``faceid_0``): both
    are pipeline state, and the next request must run without them."""
    pipe.unload_ip_adapter()
    if "faceid_0" in getattr(pipe.unet, "peft_config", {}):
        pipe.delete_adapters("faceid_0")
