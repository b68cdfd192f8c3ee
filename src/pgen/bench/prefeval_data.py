"""PrefEval's files read into items and conversations (``pgen bench prefeval``).

An item is one stated preference, the question that tests it and its four answers
(``mcq_options/<topic>.json``: the first follows the preference, the other three violate
it). The preference reaches the conversation in one of three forms:

* ``explicit``: the user says it (``explicit_preference``; the sentence is the first turn);
* ``choice``: the user picks, among four options an assistant offered, the one that fits
  the preference and says the others don't suit them (``implicit_preference/choice-based``);
* ``persona``: a persona's chat in which the preference comes up in passing
  (``implicit_preference/persona-driven``).

Then ``N`` filler turns (a turn: one user message and the assistant's reply) from
``filtered_inter_turns.json``, real unrelated chats, in file order; each filler chat is its
own day, after the day the preference was said. The files are matched by position and
checked by (preference, question): a mismatch is an error naming the file and entry.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pgen.models.base import Role

FORMS = ("explicit", "choice", "persona")
FORM_FOLDERS = {
    "explicit": "explicit_preference",
    "choice": "implicit_preference/choice-based",
    "persona": "implicit_preference/persona-driven",
}
FILLER = "filtered_inter_turns.json"


@dataclass(frozen=True)
class Said:
    """One message of a conversation; ``states``: it is where the preference is said (or,
    in the implicit forms, shown), so it must be in the prompt for the model to follow it."""

    role: Role  # "user" or "assistant"
    text: str
    day: int  # 0: the day the preference was said; filler chat n: day n + 1
    states: bool = False


@dataclass(frozen=True)
class Item:
    topic: str
    index: int  # position in the topic's files
    preference: str
    question: str
    options: tuple[str, ...]  # options[0] follows the preference (PrefEval's order)
    forms: dict[str, tuple[Said, ...]]  # form -> the messages that carry the preference


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read PrefEval JSON: {error}") from None
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a list of entries")
    return rows


def _field(path: Path, number: int, row: dict[str, Any], name: str) -> Any:
    if not isinstance(row, dict) or name not in row:
        raise ValueError(f"{path}: entry {number}: missing field {name!r}")
    return row[name]


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 3}


def _explicit(path: Path, number: int, row: dict[str, Any]) -> tuple[Said, ...]:
    return (Said("user", str(_field(path, number, row, "preference")), 0, True),)


def _choice(path: Path, number: int, row: dict[str, Any]) -> tuple[Said, ...]:
    talk = _field(path, number, row, "conversation")
    parts = ("query", "assistant_options", "user_selection", "assistant_acknowledgment")
    roles: tuple[Role, ...] = ("user", "assistant", "user", "assistant")
    # The user's selection (and why the rest don't suit them) is what shows the preference.
    return tuple(
        Said(role, str(_field(path, number, talk, part)), 0, part == "user_selection")
        for part, role in zip(parts, roles, strict=True)
    )


def _persona(path: Path, number: int, row: dict[str, Any]) -> tuple[Said, ...]:
    talk = _field(path, number, row, "conversation")
    preference = _words(str(_field(path, number, row, "preference")))
    turns = [talk[key] for key in sorted(talk, key=int)] if isinstance(talk, dict) else []
    if not turns:
        raise ValueError(f"{path}: entry {number}: conversation has no turns")
    messages = [
        (cast(Role, role), str(_field(path, number, turn, role)))
        for turn in turns
        for role in ("user", "assistant")
        if role in turn
    ]
    # The data do not mark the turn that reveals the preference: the user message sharing
    # the most words with the preference sentence is taken as it (read per example).
    overlap = [len(preference & _words(t)) if r == "user" else -1 for r, t in messages]
    stating = overlap.index(max(overlap))
    return tuple(Said(r, t, 0, n == stating) for n, (r, t) in enumerate(messages))


READERS = {"explicit": _explicit, "choice": _choice, "persona": _persona}


def topics(data: Path) -> list[str]:
    folder = data / "mcq_options"
    names = sorted(p.stem for p in folder.glob("*.json"))
    if not names:
        raise ValueError(f"{folder}: no topic files (expected PrefEval's mcq_options/*.json)")
    return names


def load_items(data: Path, forms: tuple[str, ...], topic: str) -> list[Item]:
    """The topic's items, each with the requested preference forms."""
    unknown = sorted(set(forms) - set(FORMS))
    if unknown:
        raise ValueError(f"unknown preference form {', '.join(unknown)}: use {', '.join(FORMS)}")
    mcq_path = data / "mcq_options" / f"{topic}.json"
    mcq = _read(mcq_path)
    per_form = {}
    for form in forms:
        path = data / FORM_FOLDERS[form] / f"{topic}.json"
        rows = _read(path)
        if len(rows) != len(mcq):
            raise ValueError(f"{path}: {len(rows)} entries, but {mcq_path} has {len(mcq)}")
        per_form[form] = (path, rows)
    items = []
    for number, row in enumerate(mcq):
        options = _field(mcq_path, number, row, "classification_task_options")
        if not isinstance(options, list) or len(options) != 4:
            raise ValueError(f"{mcq_path}: entry {number}: expected 4 classification options")
        preference = str(_field(mcq_path, number, row, "preference"))
        question = str(_field(mcq_path, number, row, "question"))
        carried = {}
        for form, (path, rows) in per_form.items():
            other = rows[number]
            # The explicit file's wording differs from mcq_options' in a few entries; the
            # question is the same, and the implicit files match mcq_options exactly.
            if _field(path, number, other, "question") != question:
                raise ValueError(f"{path}: entry {number}: question differs from {mcq_path}")
            carried[form] = READERS[form](path, number, other)
        items.append(Item(topic, number, preference, question, tuple(map(str, options)), carried))
    return items


def load_filler(data: Path) -> list[tuple[Said, Said]]:
    """The filler turns (user message, assistant reply) in file order; each chat of the
    file is one day (day 1 the first)."""
    path = data / FILLER
    pairs: list[tuple[Said, Said]] = []
    for number, chat in enumerate(_read(path)):
        messages = _field(path, number, chat, "conversation")
        if not isinstance(messages, list):
            raise ValueError(f"{path}: entry {number}: conversation is not a list")
        texts = [
            (str(_field(path, number, m, "role")), str(_field(path, number, m, "content")))
            for m in messages
        ]
        # Checked just below: user, then assistant.
        for start in range(0, len(texts) - 1, 2):
            (ask_role, ask), (reply_role, reply) = texts[start], texts[start + 1]
            if (ask_role, reply_role) != ("user", "assistant"):
                raise ValueError(
                    f"{path}: entry {number}: message {start} is not a user turn and its reply"
                )
            pairs.append((Said("user", ask, number + 1), Said("assistant", reply, number + 1)))
    return pairs


def conversation(item: Item, form: str, filler: list[tuple[Said, Said]], turns: int) -> list[Said]:
    """The item's preference in ``form``, then ``turns`` filler turns."""
    if turns > len(filler):
        raise ValueError(f"{turns} filler turns asked, but {FILLER} holds {len(filler)}")
    return [*item.forms[form], *(m for pair in filler[:turns] for m in pair)]
