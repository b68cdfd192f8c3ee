"""Feasibility probe for the ``3d`` modality (issue 23, item 2), not a feature: can diffusers'
``ShapEImg2ImgPipeline`` be built from tiny random parts and run on a CPU?

Findings (CPU, 1 thread, shared 2-core machine, diffusers 0.42.1; docs/benchmarks.md):
- it builds tiny (prior 1 layer, CLIP vision 1 layer, renderer MLP 32 wide) once the shapes
  agree: the prior's ``clip_embed_dim`` is twice ``embedding_dim`` (mean and variance), its
  ``num_embeddings`` is the sum of the renderer's parameter rows, and ``frame_size`` must make
  20 x frame_size^2 rays a multiple of the renderer's ray batch (4096): 32, not 8 or 16;
- rendering the 20 views of 2 prior steps took 204 s: the NeRF renderer marches 64 + 128
  samples per ray whatever the model's width, so a tiny model is not a fast one (too slow for
  a unit test here);
- ``output_type="mesh"`` failed in this configuration, in the renderer (ValueError), so no
  PLY/GLB came out. Not debugged further: the 3D modality is not built.

    python benchmarks/shap_e_probe.py
"""

from __future__ import annotations

import time
import traceback

import torch
from PIL import Image


def tiny_pipeline() -> object:
    from diffusers import HeunDiscreteScheduler, PriorTransformer, ShapEImg2ImgPipeline
    from diffusers.pipelines.shap_e import ShapERenderer
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    emb, width = 16, 32
    prior = PriorTransformer(
        num_attention_heads=2,
        attention_head_dim=16,
        embedding_dim=emb,
        num_embeddings=4 * width,  # the renderer's four parameter blocks, row by row
        embedding_proj_dim=16,
        time_embed_dim=64,
        num_layers=1,
        clip_embed_dim=2 * emb,  # the prediction and its variance
        additional_embeddings=0,
        time_embed_act_fn="gelu",
        norm_in_type="layer",
        embedding_proj_norm_type="layer",
        encoder_hid_proj_type=None,
        added_emb_type=None,
    )
    vision = CLIPVisionConfig(
        hidden_size=16,
        image_size=32,
        projection_dim=16,
        intermediate_size=24,
        num_attention_heads=2,
        num_hidden_layers=1,
        patch_size=8,
    )
    processor = CLIPImageProcessor(
        crop_size=32, size=32, image_mean=[0.5] * 3, image_std=[0.5] * 3, resample=3
    )
    renderer = ShapERenderer(
        param_shapes=((width, 93), (width, width), (width, width), (width, width)),
        d_latent=emb,
        d_hidden=width,
        n_output=12,
        background=(0.1, 0.1, 0.1),
    )
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


def main() -> None:
    torch.set_num_threads(1)
    pipe: object = tiny_pipeline()
    image = Image.new("RGB", (32, 32), (200, 30, 30))
    for output_type in ("pil", "mesh"):
        start = time.perf_counter()
        try:
            out = pipe(  # type: ignore[operator]
                image,
                num_inference_steps=2,
                frame_size=32,
                output_type=output_type,
                generator=torch.Generator().manual_seed(0),
            )
            first = out.images[0]
            shown = f"{len(first)} views" if output_type == "pil" else type(first).__name__
            print(f"{output_type}: {shown} in {time.perf_counter() - start:.1f} s")
        except Exception:  # a probe: say what broke, then go on
            print(f"{output_type}: failed after {time.perf_counter() - start:.1f} s")
            traceback.print_exc(limit=-2)


if __name__ == "__main__":
    main()
