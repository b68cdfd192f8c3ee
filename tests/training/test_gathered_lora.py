"""Gathered mixed-adapter batches compute what PEFT computes: the same tokens, the same
logits, for adapters of different ranks, targets and scalings in one batch; choice
scoring through a user's adapter equals the merged model's; what they cannot compute is
refused with the setting that can."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pgen.models.base import AdapterRef, GenerationSettings
from pgen.models.text import TransformersTextModel
from pgen.personalize.base import chat

GREEDY = GenerationSettings(max_new_tokens=8)


def saved_lora(tiny_llama: Path, folder: Path, seed: int, **options: object) -> AdapterRef:
    """A random (non-zero) LoRA in plain PEFT format."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    settings = {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"], **options}
    peft = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_llama),
        LoraConfig(init_lora_weights=False, **settings),  # type: ignore[arg-type]
    )
    for name, param in peft.named_parameters():
        if "lora_" in name:
            torch.nn.init.normal_(param, std=0.2)
    peft.save_pretrained(str(folder))
    return AdapterRef("lora", f"lora-{folder.name}", folder)


@pytest.fixture
def refs(tiny_llama: Path, tmp_path: Path) -> list[AdapterRef | None]:
    return [
        saved_lora(tiny_llama, tmp_path / "q-v-r8", 1),
        saved_lora(tiny_llama, tmp_path / "o-r4", 2, r=4, target_modules=["o_proj", "v_proj"]),
        saved_lora(tiny_llama, tmp_path / "rslora", 3, use_rslora=True, lora_alpha=4),
        None,
    ]


def backend(tiny_llama: Path, mixing: str) -> TransformersTextModel:
    return TransformersTextModel(
        str(tiny_llama), name="tiny-llama", batch_size=8, adapter_mixing=mixing
    )


def test_gathered_batch_equals_peft_and_each_row_alone(
    tiny_llama: Path, refs: list[AdapterRef | None]
) -> None:
    gathered, peft = backend(tiny_llama, "gathered"), backend(tiny_llama, "peft")
    chats = [chat("write a review"), chat("hello"), chat("write a review"), chat("hi there")]
    together = gathered.generate(chats, GREEDY, refs)
    assert together == peft.generate(chats, GREEDY, refs)
    assert together == [
        gathered.generate([c], GREEDY, [r])[0] for c, r in zip(chats, refs, strict=True)
    ]
    # the adapters change the output, so equal outputs mean the right adapter per row
    assert together[0] != gathered.generate([chats[0]], GREEDY)[0]
    assert together[2] != together[0]
    assert gathered.adapters.megabytes > 0 and peft.adapters.megabytes > 0


def test_gathered_logits_equal_peft_logits(tiny_llama: Path, refs: list[AdapterRef | None]) -> None:
    gathered, peft = backend(tiny_llama, "gathered"), backend(tiny_llama, "peft")
    texts = ["one two three four", "a b", "the quick brown fox", "hello"]
    encoded = gathered.tokenizer(texts, return_tensors="pt", padding=True)
    logits = []
    for model in (gathered, peft):
        with torch.inference_mode(), model.adapters.applied(refs) as (call, routing):
            logits.append(call(**encoded, **routing).logits)
    torch.testing.assert_close(logits[0], logits[1], atol=1e-5, rtol=1e-4)


def test_choice_scores_through_the_adapter_equal_the_merged_model(
    tiny_llama: Path, refs: list[AdapterRef | None], tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref = refs[1]
    assert ref is not None and ref.path is not None
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), ref.path)
    merged.merge_and_unload().save_pretrained(tmp_path / "merged")
    AutoTokenizer.from_pretrained(tiny_llama).save_pretrained(tmp_path / "merged")

    model = backend(tiny_llama, "gathered")
    chats, labels = [chat("pick one"), chat("pick again")], ["yes", "no", "maybe later"]
    scored = model.choice_logprobs(chats, labels, [ref, None])
    expected = backend(tmp_path / "merged", "gathered").choice_logprobs(chats[:1], labels)
    assert scored[0] == pytest.approx(expected[0], abs=1e-4)
    assert scored[1] == pytest.approx(model.choice_logprobs(chats[1:], labels)[0], abs=1e-6)
    assert abs(scored[0] - model.choice_logprobs(chats[:1], labels)[0]).max() > 1e-3


def test_what_gathering_cannot_compute_is_refused(tiny_llama: Path, tmp_path: Path) -> None:
    dora = saved_lora(tiny_llama, tmp_path / "dora", 4, use_dora=True)
    with pytest.raises(ValueError, match=r'uses DoRA.*adapter_mixing = "peft"'):
        backend(tiny_llama, "gathered").generate([chat("hi")], GREEDY, [dora])
    biased = saved_lora(tiny_llama, tmp_path / "biased", 5, bias="lora_only")
    with pytest.raises(ValueError, match="uses bias=lora_only"):
        backend(tiny_llama, "gathered").generate([chat("hi")], GREEDY, [biased])
    assert backend(tiny_llama, "peft").generate([chat("hi")], GREEDY, [biased])  # PEFT serves it
    with pytest.raises(ValueError, match="adapter_mixing must be one of gathered, peft"):
        backend(tiny_llama, "merged")
