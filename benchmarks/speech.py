"""Speech: how well the offline Whisper models transcribe, and what speech costs, on 1 thread.

No real speech recordings install offline here, so the clips are **synthetic**: Harvard
sentences (IEEE 1969 phonetically balanced sentences) spoken by the offline Piper voice
(``joe``), clean and with white noise added at 10 dB and 0 dB SNR. Synthetic speech from a
clean studio voice is easier than real recordings (one speaker, no accent, no room, no
disfluencies): these WERs are a floor, not what voice notes from a phone will get.

For each ASR (faster-whisper tiny.en and base, int8, greedy) and condition: corpus WER
(errors over reference words) and seconds per minute of audio, wall-clock and CPU time
(the machine is shared: CPU time is the number that does not depend on the neighbours).
For Piper: seconds per minute of speech made, and Whisper's WER on it is the clean row. STOI of the
noisy clips against the clean ones says how much the noise hurts intelligibility.

    python benchmarks/speech.py                       # 20 sentences, both models
    python benchmarks/speech.py --sentences 8 --models tiny.en --out per_clip.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pgen.evaluate.metrics.speech import stoi, wer_counts
from pgen.models.asr import load_recognizer
from pgen.models.speech_audio import Audio
from pgen.models.tts import PiperSynthesizer

HARVARD = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
]


def noisy(clip: Audio, snr_db: float, seed: int) -> Audio:
    power = float(np.mean(clip.samples**2))
    noise = np.random.default_rng(seed).standard_normal(len(clip.samples))
    scaled = noise * np.sqrt(power / 10 ** (snr_db / 10))
    return Audio((clip.samples + scaled).astype(np.float32), clip.rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=len(HARVARD))
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--out", type=Path, help="per-clip rows (JSONL)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    texts = HARVARD[: args.sentences]

    piper = PiperSynthesizer()
    piper.speak("warm up", "joe")
    started, cpu = time.perf_counter(), time.process_time()
    clean = [piper.speak(t, "joe") for t in texts]
    tts_seconds, tts_cpu = time.perf_counter() - started, time.process_time() - cpu
    minutes = sum(c.seconds for c in clean) / 60
    conditions = {
        "clean": clean,
        "10 dB": [noisy(c, 10, i) for i, c in enumerate(clean)],
        "0 dB": [noisy(c, 0, i) for i, c in enumerate(clean)],
    }
    intelligibility = {
        k: float(np.mean([stoi(c, n) for c, n in zip(clean, v, strict=True)]))
        for k, v in conditions.items()
    }

    rows, per_clip = [], []
    cache = Path(tempfile.mkdtemp(prefix="pgen-speech-bench-"))
    for name in args.models:
        recognizer = load_recognizer(name, cache, threads=1)
        recognizer.transcribe(clean[0])  # warm up
        for condition, clips in conditions.items():
            errors = words = 0
            started, cpu = time.perf_counter(), time.process_time()
            for text, clip in zip(texts, clips, strict=True):
                heard = recognizer.transcribe(clip, "en")
                e, n = wer_counts(heard.text, text)
                errors, words = errors + e, words + n
                per_clip.append(
                    {
                        "model": name,
                        "condition": condition,
                        "text": text,
                        "heard": heard.text,
                        "errors": e,
                    }
                )
            seconds, used = time.perf_counter() - started, time.process_time() - cpu
            rows.append(
                (name, condition, errors / words, errors, words, seconds / minutes, used / minutes)
            )

    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores (shared), "
        "torch/ctranslate2 threads: 1"
    )
    print(
        f"clips: {len(texts)} Harvard sentences by Piper 'joe', "
        f"{minutes * 60:.1f} s of audio (synthetic)"
    )
    print(
        f"Piper: {tts_seconds / minutes:.1f} s wall, {tts_cpu / minutes:.1f} s CPU "
        "per minute of speech made\n"
    )
    print(
        "| ASR | condition | STOI vs clean | WER | errors / words "
        "| wall s / audio min | CPU s / audio min |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, condition, rate, errors, words, cost, cpu_cost in rows:
        print(
            f"| {name} | {condition} | {intelligibility[condition]:.3f} | {rate:.3f} "
            f"| {errors} / {words} | {cost:.1f} | {cpu_cost:.1f} |"
        )
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in per_clip))


if __name__ == "__main__":
    main()
