"""A tiny random Shap-E image-to-3D pipeline (diffusers' ``ShapEImg2ImgPipeline``) saved to a
folder, for the ``3d`` modality's tests.

Two things a random Shap-E lacks and the released weights carry:
- the marching-cubes lookup table. diffusers keeps it as buffers of the renderer's mesh
  decoder (``cases``, ``masks``), zeros until the checkpoint fills them, so a random
  renderer yields no triangle (``decode_to_mesh`` then fails on an empty list). The table
  here is derived, case by case, from scikit-image's classic (Lorensen) marching cubes on
  one cube, and written in diffusers' edge numbering;
- a surface. The signed distance of a random MLP has one sign nearly everywhere; a small
  positive bias on its output puts a closed surface inside the unit box, shaped by the
  latent (so by the input image).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import torch

# diffusers' edge numbering of one cube (renderer._create_flat_edge_indices): four edges
# along x at (y, z) = (0,0) (1,0) (0,1) (1,1), then four along y at (x, z), then along z
# at (x, y), in the same order.
_EDGES = {
    **{(0, a, b): i for i, (a, b) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)])},
    **{(1, a, b): 4 + i for i, (a, b) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)])},
    **{(2, a, b): 8 + i for i, (a, b) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)])},
}


def _edge(vertex: np.ndarray) -> int:
    """The edge a marching-cubes vertex of one cube lies on (its one half coordinate)."""
    axis = int(np.argmin(np.abs(vertex - 0.5)))
    others = [round(float(v)) for i, v in enumerate(vertex) if i != axis]
    return _EDGES[(axis, others[0], others[1])]


def marching_cubes_table() -> tuple[torch.Tensor, torch.Tensor]:
    """(cases (256, 5, 3), masks (256, 5)): the triangles of each corner pattern, as
    diffusers' ``MeshDecoder`` reads them (corner bit x + 2y + 4z set where the field > 0)."""
    from skimage.measure import marching_cubes

    cases = torch.zeros(256, 5, 3, dtype=torch.long)
    masks = torch.zeros(256, 5, dtype=torch.bool)
    for case in range(1, 255):
        field = np.empty((2, 2, 2), dtype=np.float32)
        for x, y, z in itertools.product((0, 1), repeat=3):
            field[x, y, z] = 1.0 if case >> (x + 2 * y + 4 * z) & 1 else -1.0
        verts, faces, _, _ = marching_cubes(field, level=0.0, method="lorensen")
        for t, face in enumerate(faces):
            cases[case, t] = torch.tensor([_edge(verts[v]) for v in face])
            masks[case, t] = True
    return cases, masks


def random_shap_e(seed: int = 0, sdf_bias: float = 0.3, preset: str = "tiny") -> Any:
    """``tiny`` (prior 1 layer, renderer MLP 32 wide: a test's), or ``shap-e``: the shapes of
    ``openai/shap-e-img2img`` (prior 24 x 1024, CLIP ViT-L/14 image encoder, renderer 256
    wide), for what cost does not need trained weights for (benchmarks/image_gpu.py)."""
    from diffusers import HeunDiscreteScheduler, PriorTransformer, ShapEImg2ImgPipeline
    from diffusers.pipelines.shap_e import ShapERenderer
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    full = preset == "shap-e"
    # latent rows x width: the prior's tokens are the renderer's four parameter blocks, row
    # by row (so num_embeddings = 4 x width), each a d_latent vector.
    emb, width, vision_width = (1024, 256, 1024) if full else (16, 32, 16)
    prior = PriorTransformer(
        num_attention_heads=16 if full else 2,
        attention_head_dim=64 if full else 16,
        embedding_dim=emb,
        num_embeddings=4 * width,
        embedding_proj_dim=vision_width,  # the image encoder's patch features
        time_embed_dim=4 * emb if full else 64,
        num_layers=24 if full else 1,
        clip_embed_dim=2 * emb,  # the prediction and its variance
        additional_embeddings=0,
        time_embed_act_fn="gelu",
        norm_in_type="layer",
        embedding_proj_norm_type="layer",
        encoder_hid_proj_type=None,
        added_emb_type=None,
    )
    size = 224 if full else 32
    vision = CLIPVisionConfig(
        hidden_size=vision_width,
        image_size=size,
        projection_dim=768 if full else 16,
        intermediate_size=4096 if full else 24,
        num_attention_heads=16 if full else 2,
        num_hidden_layers=24 if full else 1,
        patch_size=14 if full else 8,
    )
    processor = CLIPImageProcessor(
        crop_size=size, size=size, image_mean=[0.5] * 3, image_std=[0.5] * 3, resample=3
    )
    renderer = ShapERenderer(
        param_shapes=((width, 93), (width, width), (width, width), (width, width)),
        d_latent=emb,
        d_hidden=width,
        n_output=12,
        background=(0.1, 0.1, 0.1),
    )
    cases, masks = marching_cubes_table()
    with torch.no_grad():
        renderer.mesh_decoder.cases.copy_(cases)
        renderer.mesh_decoder.masks.copy_(masks)
        renderer.mlp.mlp[-1].bias[0] = sdf_bias
    scheduler = HeunDiscreteScheduler(
        beta_schedule="exp",
        num_train_timesteps=1024,
        prediction_type="sample",
        use_karras_sigmas=True,
        clip_sample=True,
        clip_sample_range=1.0,
    )
    return ShapEImg2ImgPipeline(
        prior=prior,
        image_encoder=CLIPVisionModel(vision),
        image_processor=processor,
        shap_e_renderer=renderer,
        scheduler=scheduler,
    )


def save_random_shap_e(folder: Path, seed: int = 0, preset: str = "tiny") -> Path:
    random_shap_e(seed, preset=preset).save_pretrained(folder)
    return folder
