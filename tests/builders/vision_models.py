"""Randomly initialized vision-language models, saved as ordinary model folders.

No VLM weights install on these machines, yet loading, chat templates with image parts,
batching and generation do not depend on trained weights. ``save_tiny_vlm`` writes a
2-layer LLaVA (CLIP vision tower + Llama) with a byte-level tokenizer and a chat template,
which ``AutoProcessor`` / ``AutoModelForImageTextToText`` load like any Hub folder;
``save_tiny_idefics3`` does the same for the Idefics3 / SmolVLM family (SigLIP-style vision
tower, pixel shuffle, image tokens framed by ``<fake_token_around_image>``). Qwen2-VL is
not built: its processor requires a video processor, which needs torchvision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.builders.image_models import _byte_symbols, image_processor

IMAGE_TOKEN = "<image>"
SPECIAL = ("<pad>", "<s>", "</s>", IMAGE_TOKEN, "<|im_start|>", "<|im_end|>")
# Messages are "<|im_start|>role\n...<|im_end|>\n"; an image part becomes the image token,
# which the processor expands to one token per image patch.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for p in m['content'] %}{% if p['type'] == 'image' %}<image>"
    "{% elif p['type'] == 'text' %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_tokenizer(extra: tuple[str, ...] = ()) -> Any:
    """A byte-level BPE tokenizer without merges: every string encodes, nothing to train.
    ``extra``: more special tokens a model family's processor expects."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {symbol: i for i, symbol in enumerate(_byte_symbols())}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL[3:])})
    if extra:
        tokenizer.add_tokens(list(extra), special_tokens=True)
    return tokenizer


def save_tiny_vlm(folder: Path, image_size: int = 32, patch: int = 8, seed: int = 0) -> Path:
    """A tiny random LLaVA in ``folder`` (weights, config, processor, chat template)."""
    import torch
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = byte_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=image_size,
        patch_size=patch,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    processor = LlavaProcessor(
        image_processor=image_processor(image_size),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, which "default" drops again
        chat_template=CHAT_TEMPLATE,
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


IDEFICS3_TOKENS = (
    "<fake_token_around_image>",
    "<end_of_utterance>",
    "<global-img>",
    *(f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)),
)


def save_tiny_idefics3(folder: Path, image_size: int = 32, patch: int = 8, seed: int = 0) -> Path:
    """A tiny random Idefics3 in ``folder``: one image becomes (32/8)^2 / 2^2 = 4 tokens."""
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import (
        Idefics3ImageProcessorPil,
    )

    tokenizer = byte_tokenizer(IDEFICS3_TOKENS)
    tokenizer.chat_template = CHAT_TEMPLATE
    scale = 2
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessorPil(
            do_image_splitting=False,
            size={"longest_edge": image_size},
            max_image_size={"longest_edge": image_size},
        ),
        tokenizer=tokenizer,
        image_seq_len=(image_size // patch) ** 2 // scale**2,
        chat_template=CHAT_TEMPLATE,
    )
    config = Idefics3Config(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": image_size,
            "patch_size": patch,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        scale_factor=scale,
    )
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    Idefics3ForConditionalGeneration(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
