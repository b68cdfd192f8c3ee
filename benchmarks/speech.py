"""Speech: how well the offline Whisper models transcribe, and what speech costs, on 1 thread.

No speech corpus (LibriSpeech and the like) installs offline here, so the main clips are
**synthetic**: Harvard sentences (IEEE 1969 phonetically balanced sentences) spoken by the
offline Piper voice (``joe``), clean and with white noise added at 10 dB and 0 dB SNR.
Synthetic speech from a clean studio voice is easier than real recordings (one speaker, no
accent, no room, no disfluencies): these WERs are a floor, not what voice notes from a phone
will get.

For each ASR (faster-whisper tiny.en and base, int8, greedy) and condition: corpus WER
(errors over reference words) and seconds per minute of audio, wall-clock and CPU time
(the machine is shared: CPU time is the number that does not depend on the neighbours).
For Piper: seconds per minute of speech made, and Whisper's WER on it is the clean row. STOI of the
noisy clips against the clean ones says how much the noise hurts intelligibility.

With ``--real DIR ...`` the same ASRs also read **real recordings** with known transcripts,
in rows of their own beside the synthetic ones: every WAV or FLAC in each DIR whose words are
in ``STEM.txt`` beside it, or on a line ``words (STEM)`` of a ``*.transcription`` file there
(CMU Sphinx's form; ``<s>``/``</s>`` dropped). Clips without a transcript are skipped and
counted. Nothing real is shipped with pgen: docs/benchmarks.md says where such clips come
from (the pocketsphinx sdist's ``test/data/librivox`` and ``test/data/cards``).

    python benchmarks/speech.py                       # 20 sentences, both models
    python benchmarks/speech.py --sentences 8 --models tiny.en --out per_clip.jsonl
    python benchmarks/speech.py --sentences 12 --real DIR/librivox DIR/cards
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

from pgen.bench.speech_clips import real_clips
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
    parser.add_argument(
        "--real",
        nargs="+",
        type=Path,
        default=[],
        metavar="DIR",
        help="folders of real recordings with transcripts (STEM.txt or *.transcription)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:  # refused before anything is synthesized
        real, skipped = real_clips(args.real) if args.real else ([], 0)
    except ValueError as error:
        raise SystemExit(f"--real: {error}") from None
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
        k: f"{np.mean([stoi(c, n) for c, n in zip(clean, v, strict=True)]):.3f}"
        for k, v in conditions.items()
    }
    references = {k: texts for k in conditions}
    if real:
        conditions["real"] = [clip for _, clip, _ in real]
        references["real"] = [text for _, _, text in real]
        intelligibility["real"] = "-"
    seconds_of = {k: sum(c.seconds for c in v) for k, v in conditions.items()}

    rows, per_clip = [], []
    cache = Path(tempfile.mkdtemp(prefix="pgen-speech-bench-"))
    for name in args.models:
        recognizer = load_recognizer(name, cache, threads=1)
        recognizer.transcribe(clean[0])  # warm up
        for condition, clips in conditions.items():
            errors = words = 0
            started, cpu = time.perf_counter(), time.process_time()
            for text, clip in zip(references[condition], clips, strict=True):
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
                (
                    name,
                    condition,
                    errors / words,
                    errors,
                    words,
                    seconds / seconds_of[condition] * 60,
                    used / seconds_of[condition] * 60,
                )
            )

    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores (shared), "
        "torch/ctranslate2 threads: 1"
    )
    print(
        f"clips: {len(texts)} Harvard sentences by Piper 'joe', "
        f"{minutes * 60:.1f} s of audio (synthetic)"
    )
    if real:
        print(
            f"real: {len(real)} recordings from {', '.join(str(f) for f in args.real)}, "
            f"{seconds_of['real']:.1f} s of audio ({skipped} without a transcript skipped)"
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
            f"| {name} | {condition} | {intelligibility[condition]} | {rate:.3f} "
            f"| {errors} / {words} | {cost:.1f} | {cpu_cost:.1f} |"
        )
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in per_clip))


if __name__ == "__main__":
    main()
