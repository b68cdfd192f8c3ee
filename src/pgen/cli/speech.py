"""Speech subcommands: ``pgen transcribe`` (a clip's transcript; with ``--user``, kept as
the user's voice note) and ``pgen eval-speech`` (intelligibility, speaker similarity and
STOI of the user's speech outputs). Speaking is ``pgen generate --modality speech``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pgen.cli.options import existing_file, shown
from pgen.config import Config


def cmd_transcribe(args: argparse.Namespace, config: Config) -> int:
    from pgen.engine import Engine
    from pgen.run.voice_notes import describe

    data = args.audio.read_bytes()
    with Engine.open(config) as engine:
        options = {"user_id": args.user, "doc_id": args.doc_id, "language": args.language}
        note = engine.transcribe(data, str(args.audio), **options)
    found = describe(note)
    if args.json:
        print(json.dumps(found, indent=2, ensure_ascii=False))
        return 0
    for segment in found["segments"]:
        print(f"[{segment['start']:7.2f} - {segment['end']:7.2f}] {shown(segment['text'])}")
    kept = f"; kept as {args.user}'s document {found['doc_id']}" if found["doc_id"] else ""
    print(f"({found['language']}, {found['duration']:.1f} s, {found['model']}{kept})")
    return 0


def cmd_eval_speech(args: argparse.Namespace, config: Config) -> int:
    from pgen.engine import Engine
    from pgen.run.speech_eval import summary

    with Engine.open(config) as engine:
        rows = engine.evaluate_speech(
            args.user, output_ids=args.output or None, reference=args.reference
        )
    if args.json:
        print(json.dumps({"outputs": rows, "summary": summary(rows)}, indent=2))
        return 0
    print("| output | strategy | seconds | WER | speaker sim. | STOI |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        similarity = row.get("speaker_similarity")
        stoi = row.get("stoi")
        print(
            f"| {row['output_id']} | {row['strategy']} | {row['seconds']:.2f} | {row['wer']:.3f} "
            f"| {'' if similarity is None else f'{similarity:.3f}'} "
            f"| {'' if stoi is None else f'{stoi:.3f}'} |"
        )
    totals = summary(rows)
    print(f"corpus WER {totals['wer']:.3f} over {int(totals['outputs'])} outputs")
    return 0


def register(commands: Any, bench: Any) -> None:
    p = commands.add_parser("transcribe", help="transcribe a clip (--user: keep as a voice note)")
    p.add_argument("audio", type=existing_file, help="a WAV (or, extra 'speech', FLAC/MP3/Ogg/M4A)")
    p.add_argument("--user", help="keep the clip as this user's voice note")
    p.add_argument("--doc-id", help="the voice note's document id (default: from its content)")
    p.add_argument("--language", help="the spoken language (default: detected)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_transcribe)

    p = commands.add_parser("eval-speech", help="WER, speaker similarity, STOI of speech outputs")
    p.add_argument("--user", required=True, help="whose speech outputs")
    p.add_argument("--output", action="append", help="an output id (repeatable; default: all)")
    p.add_argument("--reference", type=existing_file, help="a recording of the same words: STOI")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_eval_speech, reads_store=True)
