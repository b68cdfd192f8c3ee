"""What every area's subcommands share: argument types, printing safely, decoding flags."""

from __future__ import annotations

import argparse
from pathlib import Path

from pgen.config import Config, GenerationSettings, settings_from


def positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def shown(text: str | None, width: int | None = None) -> str:
    """Text safe to print in a table: control characters (ANSI escapes, newlines that would
    forge a row, bidirectional overrides) shown as escapes, long text cut."""
    if text is None:
        return ""
    safe = "".join(
        c
        if c.isprintable() and c not in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
        else repr(c)[1:-1]
        for c in text
    )
    return safe if width is None or len(safe) <= width else safe[: width - 1] + "…"


def existing_file(text: str) -> Path:
    """An argparse type for files to read: "is a directory" rather than "no such file"."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a directory, expected a file")
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return path


def generation_settings(args: argparse.Namespace, config: Config) -> GenerationSettings:
    """The config's decoding settings with the command line's on top."""
    return settings_from(GenerationSettings, config, args)


def add_decoding_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-new-tokens", type=positive, help="reply length cap (config: 128)")
    p.add_argument("--temperature", type=float, help="0 is greedy (config default 0)")
    p.add_argument("--top-p", type=float, help="nucleus sampling mass, with --temperature > 0")
    p.add_argument(
        "--repetition-penalty",
        type=float,
        help=f"1.0 is off (config default {Config.repetition_penalty})",
    )
    p.add_argument(
        "--no-repeat-ngram-size",
        type=int,
        help=f"forbid repeating n-grams, 0 is off (config default {Config.no_repeat_ngram_size})",
    )
    p.add_argument(
        "--no-copy-ngram-size",
        type=int,
        help="forbid the reply any run of N tokens from its prompt (the user's texts "
        f"included), 0 is off (config default {Config.no_copy_ngram_size})",
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed")


def add_frame_option(p: argparse.ArgumentParser) -> None:
    from pgen.personalize.frames import FRAMES

    p.add_argument(
        "--frame",
        choices=FRAMES,
        default="auto",
        help="write as the user (author), answer them (assistant), be the user (voice: "
        "the author frame cut down for small models), or chosen from the instruction (auto)",
    )


def require_store(config: Config) -> None:
    """Commands that read (``users``, ``search``, ``generate``, ``outputs``, ...) never
    create a store: a mistyped ``--home`` would otherwise answer from a new, empty one."""
    try:
        path = config.store_path
    except ValueError:
        return  # another provider's store: it says what is wrong with it
    if not path.is_file():
        raise FileNotFoundError(f"no store at {path}; ingest first (pgen ingest FILE)")
