"""Checks every record passes before it is stored: ids, labels, numbers, text and paths.

Ids end up in SQL keys, folder names, tables printed on a terminal and prompts, so they
must be short, visible text: no control characters (a newline forges a row of `pgen
users`, an ANSI escape repaints the terminal), no bidirectional overrides or zero-width
characters (two ids that look the same but are not). Messages never repeat the value:
it may be 10 MB long or built to garble the terminal.
"""

from __future__ import annotations

import math
import unicodedata
from pathlib import PurePath
from typing import Any

MAX_ID = 256  # characters of an id or a label (action, kind, subject name, class word)
MAX_PATH = 4096
MAX_DEPTH = 32  # nesting of free-form JSON fields (profile, fields, attributes)
RATING_RANGE = (-1e6, 1e6)
# Unicode categories never allowed in an id: controls, format characters (bidi
# overrides, zero-width joiners, BOM), surrogates, private use, unassigned, separators.
_BAD_IN_IDS = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_URL_SCHEMES = ("http:", "https:", "ftp:", "file:", "data:", "s3:", "gs:")


def check_id(value: str) -> str:
    """A printable, non-blank id of at most ``MAX_ID`` characters."""
    if len(value) > MAX_ID:
        raise ValueError(f"must be at most {MAX_ID} characters (got {len(value)})")
    if not value.strip():
        raise ValueError("must not be empty or blank")
    for position, char in enumerate(value):
        category = unicodedata.category(char)
        if category in _BAD_IN_IDS or (category == "Zs" and char != " "):
            raise ValueError(
                f"must be printable text: character {position + 1} is U+{ord(char):04X} "
                f"({unicodedata.name(char, category)})"
            )
    if value != value.strip():
        raise ValueError("must not start or end with spaces")
    return value


def check_text(value: str) -> str:
    """Free text may hold anything Unicode can encode, not lone surrogates (invalid
    UTF-16 halves, which JSON's \\ud800 escapes can produce and UTF-8 cannot store)."""
    for position, char in enumerate(value):
        if "\ud800" <= char <= "\udfff":
            raise ValueError(f"character {position + 1} is a lone surrogate (invalid Unicode)")
    return value


def check_json(value: Any, depth: int = 0) -> Any:
    """Free-form JSON fields: bounded nesting, finite numbers, valid text throughout."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        check_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite (no NaN or Infinity)")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(str(key))
            check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json(item, depth + 1)
    return value


def check_rating(value: Any) -> Any:
    """A finite number in ``RATING_RANGE``; JSON true/false is not a rating."""
    if value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    if not math.isfinite(value):
        raise ValueError("must be a finite number (no NaN or Infinity)")
    low, high = RATING_RANGE
    if not low <= value <= high:
        raise ValueError(f"must be between {low:g} and {high:g}")
    return value


def check_media_path(value: str) -> str:
    """The form of a media path (an image): a local file path, not a URL or a device.
    Where it may point is checked at ingest (``pgen.context.media``)."""
    if not value.strip():
        raise ValueError("must not be empty")
    if len(value) > MAX_PATH:
        raise ValueError(f"must be at most {MAX_PATH} characters")
    if "\0" in value or any(unicodedata.category(c) in {"Cc", "Cs"} for c in value):
        raise ValueError("must not contain control characters")
    if value.lower().startswith(_URL_SCHEMES) or "://" in value:
        raise ValueError("must be a local file path, not a URL")
    parts = PurePath(value).parts
    if parts[:2] in {("/", "dev"), ("/", "proc"), ("/", "sys")}:
        raise ValueError("must be a regular file, not a device or a /proc or /sys entry")
    return value
