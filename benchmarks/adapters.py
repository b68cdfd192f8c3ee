"""Many users' LoRA adapters in one batch: throughput and latency of pgen's mixed-adapter
batches (gathered per row, pgen's default, and PEFT's ``adapter_names``) against
per-request adapter switching and merging per request (PEFT), on the real default text
model (SmolLM2-135M-Instruct), all measured in one run.

N rank-8 q/v adapters with random weights (cost does not depend on trained values; random
B matrices make each adapter change the output, as trained ones do) are saved as PEFT
folders. Requests draw their user uniformly, Zipf-skewed (s = 1.1) or all distinct.

    python benchmarks/adapters.py                       # N in 1 8 32, 32 requests
    python benchmarks/adapters.py --adapters 1 8 32 128 --requests 64
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pgen.models.base import AdapterRef, GenerationSettings
from pgen.models.text import TransformersTextModel, load_text_model
from pgen.personalize.base import chat

PROMPTS = [
    "Write a short review of a shampoo.",
    "Suggest a gift for a friend who likes hiking.",
    "Summarize why sleep matters.",
    "Describe a good morning routine.",
]


def make_adapters(model: TransformersTextModel, count: int, folder: Path) -> list[AdapterRef]:
    """``count`` random rank-8 adapters, saved the way pgen saves users' adapters."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model.path)
    config = LoraConfig(
        r=8, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    peft = get_peft_model(base, config)
    refs = []
    for i in range(count):
        torch.manual_seed(i)
        for name, param in peft.named_parameters():
            if "lora_" in name:
                torch.nn.init.normal_(param, std=0.02)
        path = folder / f"user{i}"
        peft.save_pretrained(str(path))
        refs.append(AdapterRef("lora", f"lora-user{i}", path))
    return refs


DRAWS = ("uniform", "zipf", "distinct")


def draw(kind: str, count: int, adapters: int, rng: np.random.Generator) -> list[int]:
    if kind == "distinct":
        return [i % adapters for i in range(count)]
    if kind == "zipf":
        weights = 1.0 / np.arange(1, adapters + 1) ** 1.1
        return list(rng.choice(adapters, size=count, p=weights / weights.sum()))
    return list(rng.integers(0, adapters, size=count))


def mixed(model: TransformersTextModel, chats: list[Any], refs: list[Any], gen: Any) -> list[float]:
    """One call: the backend batches (``batch_size``) with each row's adapter. Returns each
    request's latency: its batch's finish time, all requests arriving at once."""
    latencies: list[float] = []
    started = time.perf_counter()
    for start in range(0, len(chats), model.batch_size):
        model.generate(
            chats[start : start + model.batch_size], gen, refs[start : start + model.batch_size]
        )
        latencies += [time.perf_counter() - started] * len(chats[start : start + model.batch_size])
    return latencies


def one_by_one(
    model: TransformersTextModel, chats: list[Any], refs: list[Any], gen: Any, merge: bool
) -> list[float]:
    """Each request alone with its adapter active (switching), or merged into the weights
    for it and unmerged after (merging per request), queued in arrival order."""
    latencies: list[float] = []
    started = time.perf_counter()
    for request, ref in zip(chats, refs, strict=True):
        if not merge or ref is None:
            model.generate([request], gen, [ref])
        else:
            with model.adapters.lock:
                slot = model.adapters.slot_names([ref])[0]  # type: ignore[index]
                peft = model.adapters.peft
                peft.set_adapter(slot)
                peft.merge_adapter()
                try:
                    encoded = model.tokenizer(
                        [model.render(request)], return_tensors="pt", add_special_tokens=False
                    ).to(model.device)
                    with torch.inference_mode():
                        peft.generate(
                            **encoded,
                            max_new_tokens=gen.max_new_tokens,
                            do_sample=False,
                            pad_token_id=model.tokenizer.pad_token_id,
                        )
                finally:
                    peft.unmerge_adapter()
        latencies.append(time.perf_counter() - started)
    return latencies


def interleaved(repeats: int, runs: dict[str, Callable[[], list[float]]]) -> dict[str, list[float]]:
    """Each run's fastest of ``repeats``, the runs taking turns: other load on a shared
    machine only slows a run, and turns spread its drift over all of them."""
    fastest: dict[str, list[float]] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            latencies = run()
            if name not in fastest or latencies[-1] < fastest[name][-1]:
                fastest[name] = latencies
    return fastest


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--adapters", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine")
    parser.add_argument("--no-single", action="store_true", help="skip switching and merging")
    parser.add_argument(
        "--draws", nargs="+", default=list(DRAWS), choices=DRAWS, help="how requests pick users"
    )
    parser.add_argument("--repeats", type=int, default=2, help="batched runs: best of these")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_text_model("smollm2")
    assert isinstance(loaded, TransformersTextModel)
    gen = GenerationSettings(max_new_tokens=args.max_new_tokens)
    rng = np.random.default_rng(0)
    chats = [chat(PROMPTS[i % len(PROMPTS)]) for i in range(args.requests)]
    print(
        f"# SmolLM2-135M-Instruct on {args.device}, {os.cpu_count()} CPUs, "
        f"torch threads {args.threads}, "
        f"batch {args.batch_size}, {args.requests} requests x {args.max_new_tokens} new tokens"
    )
    with tempfile.TemporaryDirectory() as scratch:
        all_refs = make_adapters(loaded, max(args.adapters), Path(scratch))
        rows = []
        for count in args.adapters:
            models = {
                mixing: TransformersTextModel(
                    loaded.path,
                    name=loaded.name,
                    batch_size=args.batch_size,
                    max_adapters=max(count, args.batch_size),
                    adapter_mixing=mixing,
                    device=args.device,
                )
                for mixing in ("gathered", "peft")
            }
            model, peft = models["gathered"], models["peft"]
            load = {}
            for mixing, each in models.items():
                started = time.perf_counter()
                with each.adapters.lock:
                    for ref in all_refs[:count]:
                        each.adapters.slot_names([ref])
                load[mixing] = (time.perf_counter() - started) / count
            memory = model.adapters.megabytes  # RSS is too coarse for it
            for kind in args.draws:
                if kind == "distinct" and count < min(args.requests, args.batch_size):
                    continue
                if kind == "zipf" and count == 1:
                    continue  # one adapter: every draw is the same
                refs = [all_refs[i] for i in draw(kind, len(chats), count, rng)]
                # Base, gathered and PEFT batches in turns, best of each: a shared machine's
                # load drifts, and turns give each the same chances (the ratio is the point).
                lat = interleaved(
                    args.repeats,
                    {
                        "base": partial(mixed, model, chats, [None] * len(chats), gen),
                        "mixed": partial(mixed, model, chats, refs, gen),
                        "peft": partial(mixed, peft, chats, refs, gen),
                    },
                )
                base_rps = len(chats) / lat.pop("base")[-1]
                if not args.no_single:
                    lat["switch"] = one_by_one(peft, chats, refs, gen, merge=False)
                    lat["merge"] = one_by_one(peft, chats, refs, gen, merge=True)
                rps = {mode: len(chats) / values[-1] for mode, values in lat.items()}
                p95 = {mode: float(np.percentile(values, 95)) for mode, values in lat.items()}
                rows.append((count, kind, base_rps, rps, p95, load, memory))
    print(
        "| adapters | draw | base req/s | gathered req/s | gathered / base | PEFT mixed / base "
        "| gathered / switch | gathered / merge | p95 gathered s | p95 PEFT mixed s | "
        "p95 switch s | load s/adapter gathered / PEFT | adapter MB |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for count, kind, base_rps, rps, p95, load, memory in rows:
        switch = f"{rps['mixed'] / rps['switch']:.1f}x" if "switch" in rps else "-"
        merge = f"{rps['mixed'] / rps['merge']:.1f}x" if "merge" in rps else "-"
        print(
            f"| {count} | {kind} | {base_rps:.2f} | {rps['mixed']:.2f} | "
            f"{rps['mixed'] / base_rps:.0%} | {rps['peft'] / base_rps:.0%} | {switch} | "
            f"{merge} | {p95['mixed']:.2f} | {p95['peft']:.2f} | "
            f"{p95.get('switch', float('nan')):.2f} | "
            f"{load['gathered']:.3f} / {load['peft']:.3f} | {memory:.1f} |"
        )


if __name__ == "__main__":
    main()
