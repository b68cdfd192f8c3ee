"""``eval-speech``: how the user's speech outputs sound, one row per output.

* intelligibility: the configured ASR transcribes the clip; the WER against the words the
  output was asked to speak (its text);
* speaker similarity: the cosine of the clip's speaker embedding and the mean embedding of
  the user's voice references (their ``voice`` subject), when a speaker encoder is set;
* STOI: against a reference recording of the same words, when one is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pgen.context.base import ContextStore
from pgen.errors import InvalidRequest
from pgen.evaluate.metrics.speech import speaker_similarity, stoi, wer_counts
from pgen.models.speech_audio import AudioError, load_audio
from pgen.models.tts import SpeechModels
from pgen.personalize.speech import VOICE_SUBJECT
from pgen.run.speech import audio_file, speaker_embedding


def evaluate_outputs(
    store: ContextStore,
    load: Callable[[str], Any],
    user_id: str,
    *,
    output_ids: Sequence[str] | None = None,
    reference: str | Path | None = None,
    similarity: bool = True,
) -> list[dict[str, Any]]:
    store.user(user_id)
    outputs = (
        [store.output(user_id, o) for o in output_ids] if output_ids else store.outputs(user_id)
    )
    outputs = [o for o in outputs if o.modality == "speech"]
    if not outputs:
        raise InvalidRequest(f"user {user_id!r} has no speech outputs to evaluate")
    try:
        clean = load_audio(reference) if reference is not None else None
    except AudioError as error:
        raise InvalidRequest(str(error)) from None
    voices = [s for s in store.subjects(user_id) if s.class_word == VOICE_SUBJECT]
    models: SpeechModels | None = load("speech") if similarity and voices else None
    references = None
    if models is not None and models.encoder is not None:
        vector, _ = speaker_embedding(store, models, user_id, voices[0])
        references = vector[None, :]
    asr = load("asr")
    rows = []
    for output in outputs:
        clip = load_audio(audio_file([Path(p) for p in output.media]))
        heard = asr.transcribe(clip)
        errors, words = wer_counts(heard.text, output.text)
        row: dict[str, Any] = {
            "output_id": output.output_id,
            "strategy": output.strategy,
            "seconds": round(clip.seconds, 3),
            "transcript": heard.text,
            "wer": errors / words if words else 0.0,
            "errors": errors,
            "words": words,
        }
        if models is not None and references is not None:
            generated = models.speaker_encoder().embed([clip])[0]
            row["speaker_similarity"] = speaker_similarity(generated, references)
        if clean is not None:
            row["stoi"] = stoi(clean, clip)
        rows.append(row)
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Corpus WER (errors over words) and the means of the other metrics."""
    words = sum(r["words"] for r in rows)
    out = {
        "outputs": float(len(rows)),
        "wer": sum(r["errors"] for r in rows) / words if words else 0.0,
    }
    for key in ("speaker_similarity", "stoi"):
        values = [r[key] for r in rows if key in r]
        if values:
            out[key] = float(np.mean(values))
    return out
