"""``pgen preferences list|add|edit|remove --user U``: the user's stated preferences, seen
and changed through the Engine (``Engine.preferences`` and its siblings)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pgen.cli.options import shown
from pgen.config import Config
from pgen.context.records import Preference
from pgen.engine import Engine


def _line(preference: Preference) -> str:
    when = preference.time.date().isoformat() if preference.time else "undated"
    source = ""
    if preference.source is not None:
        span = f" {preference.start}-{preference.end}" if preference.start is not None else ""
        source = f"  (from {shown(preference.source, 40)}{span})"
    return (
        f"[{shown(preference.preference_id, 40)}] {when} {preference.origin:<8} "
        f"{shown(preference.text, 100)}{source}"
    )


def cmd_preferences(args: argparse.Namespace, config: Config) -> None:
    needs_text = args.action in ("add", "edit")
    needs_id = args.action in ("edit", "remove")
    if needs_id and not args.id:
        raise ValueError(f"pgen preferences {args.action} needs --id (from pgen preferences list)")
    if needs_text and args.text is None:
        raise ValueError(f"pgen preferences {args.action} needs --text (the preference)")
    if not needs_text and args.text is not None:
        raise ValueError(f"pgen preferences {args.action} takes no --text")
    with Engine.open(config) as engine:  # loads no model: only the store
        if args.action == "list":
            found = engine.preferences(args.user)
            if args.json:
                print(json.dumps([p.model_dump(mode="json") for p in found], ensure_ascii=False))
                return
            for preference in found:
                print(_line(preference))
            print(f"{len(found)} stated preferences of user {shown(args.user)}")
            return
        if args.action == "add":
            done = engine.add_preference(args.user, args.text)
        elif args.action == "edit":
            done = engine.edit_preference(args.user, args.id, args.text)
        else:
            done = engine.remove_preference(args.user, args.id)
    verb = {"add": "added", "edit": "edited", "remove": "removed"}[args.action]
    print(f"{verb} {_line(done)}")


def register(commands: Any, bench: Any) -> None:
    p = commands.add_parser(
        "preferences", help="a user's stated preferences: list, add, edit or remove them"
    )
    p.add_argument("action", choices=["list", "add", "edit", "remove"], help="what to do")
    p.add_argument("--text", help="add, edit: the preference, in the user's words")
    p.add_argument("--user", required=True, help="whose preferences")
    p.add_argument("--id", help="edit, remove: the preference's id")
    p.add_argument("--json", action="store_true", help="list: print them as JSON")
    p.set_defaults(func=cmd_preferences, reads_store=True)
