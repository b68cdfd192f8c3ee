"""Randomly initialized Stable Diffusion 1.x pipelines and IP-Adapters, built from configs.

No diffusion weights install on these machines, yet the code paths (loading, training,
adapters) and their cost do not depend on trained weights. ``tiny`` builds a pipeline of
32x32 images that runs in milliseconds on a CPU (tests); ``sd15`` has the exact shapes of
Stable Diffusion 1.5 and its ViT-H IP-Adapter (cost benchmarks on a GPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

PRESETS = ("tiny", "sd15")

_TINY_TEXT = {"hidden_size": 32, "intermediate_size": 37, "heads": 4, "layers": 2}
_SD15_TEXT = {"hidden_size": 768, "intermediate_size": 3072, "heads": 12, "layers": 12}


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes (GPT-2 / CLIP scheme)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    symbols = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def clip_byte_tokenizer(vocab_size: int | None = None, max_length: int = 77) -> Any:
    """A CLIP tokenizer from a hand-written vocabulary: every byte alone and word-final, a
    few merges so common prompt words are one token, then (like the real CLIP vocabulary)
    the two special tokens last. ``vocab_size`` pads the vocabulary with unused entries to
    match a text encoder's embedding table (49408 for SD 1.5)."""
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}
    for symbol in _byte_symbols():
        vocab[symbol] = len(vocab)
        vocab[symbol + "</w>"] = len(vocab)
    merges = ["o g</w>", "d og</w>", "a t</w>", "c at</w>", "p h", "ph o", "pho t", "phot o</w>"]
    for merge in merges:
        vocab["".join(merge.split())] = len(vocab)
    for filler in range(len(vocab), (vocab_size or 0) - 2):
        vocab[f"<unused{filler}>"] = filler
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    pairs = [tuple(merge.split()) for merge in merges]
    build: Any = CLIPTokenizer  # its stub says merges are strings; the BPE backend takes pairs
    return build(vocab=vocab, merges=pairs, model_max_length=max_length)


def text_encoder_config(preset: str, vocab_size: int, max_length: int) -> Any:
    from transformers import CLIPTextConfig

    size = _TINY_TEXT if preset == "tiny" else _SD15_TEXT
    return CLIPTextConfig(
        vocab_size=vocab_size,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        hidden_size=size["hidden_size"],
        intermediate_size=size["intermediate_size"],
        num_attention_heads=size["heads"],
        num_hidden_layers=size["layers"],
        max_position_embeddings=max_length,
        hidden_act="quick_gelu",
        projection_dim=size["hidden_size"],
    )


def image_processor(size: int) -> Any:
    """CLIP preprocessing at ``size``; the PIL implementation, so no torchvision is needed."""
    processor: Any
    try:
        from transformers.models.clip import image_processing_pil_clip

        processor = image_processing_pil_clip.CLIPImageProcessorPil
    except ImportError:  # transformers 4 has only the PIL-based one, under the plain name
        from transformers import CLIPImageProcessor

        processor = CLIPImageProcessor
    return processor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def _scheduler() -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def _tiny_vae() -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=[8, 8],
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
    )


def random_sdxl_pipeline(seed: int = 0) -> Any:
    """A tiny StableDiffusionXLPipeline (32x32 images): two text encoders whose hidden
    states concatenate into the cross-attention input, the second one's pooled projection
    and the size/crop "time ids" feeding the UNet's added conditioning, as in SDXL."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    tokenizer = clip_byte_tokenizer(max_length=32)
    config = text_encoder_config("tiny", len(tokenizer), 32)
    time_dim = 4
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=16,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=2 * config.hidden_size,
        attention_head_dim=4,
        norm_num_groups=4,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        # six time ids (original size, crop corner, target size) plus the pooled text
        projection_class_embeddings_input_dim=6 * time_dim + config.projection_dim,
    )
    return StableDiffusionXLPipeline(
        vae=_tiny_vae(),
        text_encoder=CLIPTextModel(config),
        text_encoder_2=CLIPTextModelWithProjection(config),
        tokenizer=tokenizer,
        tokenizer_2=clip_byte_tokenizer(max_length=32),
        unet=unet,
        scheduler=_scheduler(),
        image_encoder=None,
        feature_extractor=image_processor(32),
    )


def random_sd_pipeline(preset: str = "tiny", seed: int = 0) -> Any:
    """A StableDiffusionPipeline with random weights: ``tiny`` (32x32 images) or ``sd15``
    (Stable Diffusion 1.5 shapes, 512x512)."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {PRESETS}")
    torch.manual_seed(seed)
    tiny = preset == "tiny"
    cross = 32 if tiny else 768
    if tiny:
        unet = UNet2DConditionModel(
            block_out_channels=(8, 16),
            layers_per_block=1,
            sample_size=16,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=cross,
            attention_head_dim=4,
            norm_num_groups=4,
        )
        vae = _tiny_vae()
    else:  # the defaults of these classes are the SD 1.x shapes; spelled out where not
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=cross)
        vae = AutoencoderKL(
            block_out_channels=[128, 256, 512, 512],
            down_block_types=["DownEncoderBlock2D"] * 4,
            up_block_types=["UpDecoderBlock2D"] * 4,
            layers_per_block=2,
            latent_channels=4,
            sample_size=512,
        )
    max_length = 32 if tiny else 77
    tokenizer = clip_byte_tokenizer(None if tiny else 49408, max_length)
    text_encoder = CLIPTextModel(text_encoder_config(preset, len(tokenizer), max_length))
    scheduler = _scheduler()
    return StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        scheduler=scheduler,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        safety_checker=None,
        feature_extractor=image_processor(32 if tiny else 224),
        image_encoder=None,
        requires_safety_checker=False,
    )


def save_random_ip_adapter(
    unet: Any,
    folder: Path,
    preset: str = "tiny",
    seed: int = 0,
    subfolder: str = "models",
    weight_name: str = "ip-adapter_sd15.safetensors",
) -> Path:
    """An IP-Adapter laid out like h94/IP-Adapter (``<subfolder>/<weight_name>`` and
    ``<subfolder>/image_encoder``), shaped for ``unet``; ``sd15`` uses the ViT-H/14 image
    encoder of the real SD 1.5 IP-Adapter. Returns ``folder``."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    tiny = preset == "tiny"
    vision = CLIPVisionConfig(
        image_size=32 if tiny else 224,
        patch_size=8 if tiny else 14,
        hidden_size=32 if tiny else 1280,
        intermediate_size=37 if tiny else 5120,
        num_attention_heads=4 if tiny else 16,
        num_hidden_layers=2 if tiny else 32,
        projection_dim=16 if tiny else 1024,
        hidden_act="quick_gelu" if tiny else "gelu",
    )
    CLIPVisionModelWithProjection(vision).save_pretrained(folder / subfolder / "image_encoder")
    cross = unet.config.cross_attention_dim
    std = 0.1 if tiny else 0.02  # tiny layers need a visible effect in tests
    weights = {
        "image_proj.proj.weight": torch.randn(4 * cross, vision.projection_dim) * std,
        "image_proj.proj.bias": torch.zeros(4 * cross),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    # One key pair per cross-attention layer, numbered 1, 3, 5... in processor order.
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            hidden = unet.get_submodule(name.removesuffix(".processor")).to_q.out_features
            weights[f"ip_adapter.{key}.to_k_ip.weight"] = torch.randn(hidden, cross) * std
            weights[f"ip_adapter.{key}.to_v_ip.weight"] = torch.randn(hidden, cross) * std
            key += 2
    save_file(weights, str(folder / subfolder / weight_name))
    return folder


def save_random_faceid_adapter(
    unet: Any,
    path: Path,
    identity_dim: int = 8,
    seed: int = 0,
    lora_rank: int = 0,
) -> Path:
    """A random IP-Adapter-FaceID weight file shaped for ``unet``, in h94's layout: one
    ``torch.save`` dict with ``image_proj`` (``proj.0``, ``proj.2``, ``norm``: identity ->
    4 tokens) and ``ip_adapter`` (``to_k_ip``/``to_v_ip`` per cross-attention, numbered
    1, 3, 5...); ``lora_rank`` > 0 adds the LoRA h94's SD 1.5 file carries
    (``to_{q,k,v,out}_lora`` per attention processor, numbered 0, 1, 2...)."""
    torch.manual_seed(seed)
    cross = unet.config.cross_attention_dim
    hidden_ff = 2 * identity_dim  # h94: 512 -> 1024 -> 4 x cross
    std = 0.5  # tiny layers need a visible effect in tests
    image_proj = {
        "proj.0.weight": torch.randn(hidden_ff, identity_dim) * std,
        "proj.0.bias": torch.zeros(hidden_ff),
        "proj.2.weight": torch.randn(4 * cross, hidden_ff) * std,
        "proj.2.bias": torch.zeros(4 * cross),
        "norm.weight": torch.ones(cross),
        "norm.bias": torch.zeros(cross),
    }
    ip_adapter: dict[str, torch.Tensor] = {}
    for index, name in enumerate(unet.attn_processors):
        attn = unet.get_submodule(name.removesuffix(".processor"))
        hidden = attn.to_q.out_features
        if name.endswith("attn2.processor"):
            ip_adapter[f"{index}.to_k_ip.weight"] = torch.randn(hidden, cross) * std
            ip_adapter[f"{index}.to_v_ip.weight"] = torch.randn(hidden, cross) * std
        if lora_rank:
            for part, layer in (
                ("to_q", attn.to_q),
                ("to_k", attn.to_k),
                ("to_v", attn.to_v),
                ("to_out", attn.to_out[0]),
            ):
                down = torch.randn(lora_rank, layer.in_features) * std
                ip_adapter[f"{index}.{part}_lora.down.weight"] = down
                up = torch.randn(layer.out_features, lora_rank) * std
                ip_adapter[f"{index}.{part}_lora.up.weight"] = up
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"image_proj": image_proj, "ip_adapter": ip_adapter}, path)
    return path
