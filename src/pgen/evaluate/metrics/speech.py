"""Speech metrics: word error rate (intelligibility, through an ASR), speaker similarity
(cosine of speaker embeddings, generated against the references) and STOI (short-time
objective intelligibility, Taal et al. 2011, against a reference recording of the same
words). Our own implementations: WER is a word-level edit distance after a light
normalization (case, punctuation, numbers as written); STOI follows the paper's
definition (10 kHz, 1/3-octave bands from 150 Hz, 384 ms segments, -15 dB clipping,
silent frames of the reference dropped)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from pgen.models.speech_audio import Audio


def normalize_words(text: str) -> list[str]:
    """Lower case, apostrophes kept inside words, other punctuation dropped."""
    text = text.lower().replace("’", "'")
    return re.findall(r"[a-z0-9]+(?:'[a-z0-9]+)*", text)


def edit_distance(hypothesis: Sequence[str], reference: Sequence[str]) -> int:
    previous = list(range(len(reference) + 1))
    for i, word in enumerate(hypothesis, start=1):
        current = [i]
        for j, gold in enumerate(reference, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != gold))
            )
        previous = current
    return previous[-1]


def wer_counts(hypothesis: str, reference: str) -> tuple[int, int]:
    """(word errors, reference words): sums over a corpus give the corpus WER."""
    ref = normalize_words(reference)
    return edit_distance(normalize_words(hypothesis), ref), len(ref)


def wer(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus WER: all errors over all reference words (not a mean of per-clip rates)."""
    counts = [wer_counts(h, r) for h, r in zip(hypotheses, references, strict=True)]
    words = sum(n for _, n in counts)
    return sum(e for e, _ in counts) / words if words else 0.0


def speaker_similarity(generated: np.ndarray, references: np.ndarray) -> float:
    """Cosine between a generated clip's speaker embedding and the mean of the references'."""
    centre = references.mean(axis=0)
    denominator = float(np.linalg.norm(generated) * np.linalg.norm(centre))
    return float(generated @ centre / denominator) if denominator else 0.0


# -- STOI ------------------------------------------------------------------------------
STOI_RATE, FRAME, NFFT, BANDS, SEGMENT, BETA, DYNAMIC_RANGE = 10000, 256, 512, 15, 30, -15.0, 40.0


def _third_octaves() -> np.ndarray:
    freqs = np.linspace(0, STOI_RATE, NFFT + 1)[: NFFT // 2 + 1]
    centres = 150.0 * 2.0 ** (np.arange(BANDS) / 3.0)
    low, high = centres * 2.0 ** (-1 / 6), centres * 2.0 ** (1 / 6)
    matrix = np.zeros((BANDS, len(freqs)))
    for band in range(BANDS):
        lo = int(np.argmin((freqs - low[band]) ** 2))
        hi = int(np.argmin((freqs - high[band]) ** 2))
        matrix[band, lo:hi] = 1.0
    return matrix


def _frames(signal: np.ndarray) -> np.ndarray:
    window = np.hanning(FRAME + 2)[1:-1]
    starts = range(0, len(signal) - FRAME + 1, FRAME // 2)
    return np.array([signal[s : s + FRAME] * window for s in starts]).reshape(-1, FRAME)


def _drop_silence(clean: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames where the reference is 40 dB below its loudest are dropped from both."""
    a, b = _frames(clean), _frames(other)
    energy = 20 * np.log10(np.linalg.norm(a, axis=1) + np.finfo(float).eps)
    keep = energy > energy.max() - DYNAMIC_RANGE
    return a[keep], b[keep]


def stoi(clean: Audio, degraded: Audio) -> float:
    """STOI in [0, 1] (about: the share of words understood) of ``degraded`` against the
    reference ``clean``; both are cut to the shorter one."""
    x = clean.resampled(STOI_RATE).samples.astype(np.float64)
    y = degraded.resampled(STOI_RATE).samples.astype(np.float64)
    length = min(len(x), len(y))
    xf, yf = _drop_silence(x[:length], y[:length])
    if len(xf) < SEGMENT:
        raise ValueError(f"STOI needs at least {SEGMENT * 12.8:.0f} ms of speech in the reference")
    bands = _third_octaves()
    xb = np.sqrt(bands @ (np.abs(np.fft.rfft(xf, NFFT, axis=1)) ** 2).T)
    yb = np.sqrt(bands @ (np.abs(np.fft.rfft(yf, NFFT, axis=1)) ** 2).T)
    scores = []
    clip = 10 ** (-BETA / 20)
    for end in range(SEGMENT, xb.shape[1] + 1):
        xs, ys = xb[:, end - SEGMENT : end], yb[:, end - SEGMENT : end]
        scale = np.linalg.norm(xs, axis=1, keepdims=True) / (
            np.linalg.norm(ys, axis=1, keepdims=True) + np.finfo(float).eps
        )
        ys = np.minimum(ys * scale, xs * (1 + clip))
        xs = xs - xs.mean(axis=1, keepdims=True)
        ys = ys - ys.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(xs, axis=1) * np.linalg.norm(ys, axis=1) + np.finfo(float).eps
        scores.append(np.sum(xs * ys, axis=1) / norms)
    return float(np.mean(scores))
