"""The `pgen` command. Each workflow step registers its own subcommands (see EXTENSIONS);
every handler is a thin call into ``pgen.engine.Engine``."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from pgen.cli.options import require_store
from pgen.config import SQLITE_URL, Config, load_config

# Modules with ``register(commands, bench)``: they add subcommands to ``pgen`` and to
# ``pgen bench``; each subparser sets ``func(args, config) -> int | None``. Torch and the
# model stacks load inside handlers only: `pgen --help` must stay fast.
EXTENSIONS: tuple[str, ...] = (
    "pgen.cli.context",
    "pgen.cli.compare",
    "pgen.cli.evaluate",
    "pgen.cli.images",
    "pgen.cli.recommend",
    "pgen.cli.train",
    "pgen.cli.jobs",
    "pgen.cli.photos",
    "pgen.cli.serve",
    "pgen.cli.attribution",
    "pgen.cli.speech",
    "pgen.cli.video",
    "pgen.cli.prefeval",
    "pgen.cli.rspg",
    "pgen.cli.models",
    "pgen.cli.preferences",
)

Handler = Callable[[argparse.Namespace, Config], Any]

# Settings every command takes, before or after the subcommand's name.
GLOBAL_OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--config", {"help": "TOML settings file (default: ./pgen.toml or $PGEN_CONFIG)"}),
    ("--store", {"help": "SQLite store path or URL (default: <home>/pgen.sqlite)"}),
    ("--home", {"help": "data folder for the store, caches and artifacts"}),
    ("--text-model", {"help": "smollm2, a folder, an HF id, a .gguf, or openai:M@URL"}),
    ("--embed-model", {"help": "sentence-transformers model (id or folder)"}),
    ("--threads", {"type": int, "help": "PyTorch CPU threads (0: half the cores)"}),
    ("--debug", {"action": "store_true", "help": "show tracebacks"}),
)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown in every --help, for options that have one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "%(default)" in text:
            return text
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An argument parser that names an unknown or mistyped flag (``unknown option --usr
    (did you mean --user?)``) rather than what it left missing because of it (``--user is
    required``). Subcommands' parsers are of this class too."""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> Any:
        unknown = unknown_option(self, getattr(self, "_argv", []))
        super().error(unknown or message)


def _option_strings(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """The flags ``parser`` takes, and those of the subcommand that ``argv`` names."""
    known = [flag for action in parser._actions for flag in action.option_strings]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for index, token in enumerate(argv):
                if token in action.choices:
                    return known + _option_strings(action.choices[token], argv[index + 1 :])
    return known


def unknown_option(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """``unknown option --X (did you mean --Y?)`` for the first flag of ``argv`` that the
    command does not take (exactly or as an abbreviation argparse accepts), else None."""
    import difflib

    known = _option_strings(parser, argv)
    for token in argv:
        if token == "--":
            break
        if not token.startswith("-") or token == "-" or _NUMBER.fullmatch(token):
            continue
        flag = token.split("=", 1)[0]
        if flag in known or (flag.startswith("--") and any(k.startswith(flag) for k in known)):
            continue
        near = difflib.get_close_matches(flag, [k for k in known if k.startswith("--")], 1, 0.7)
        return f"unknown option {flag}" + (f" (did you mean {near[0]}?)" if near else "")
    return None


_NUMBER = re.compile(r"-\d+(\.\d*)?([eE][-+]?\d+)?")


def _global_options(suppress: bool) -> argparse.ArgumentParser:
    """The global options as a parent parser. On subcommands their defaults are suppressed,
    so a value given before the subcommand is not reset by the subcommand's parser."""
    parent = argparse.ArgumentParser(add_help=False)
    for flag, options in GLOBAL_OPTIONS:
        settings: dict[str, Any] = dict(options)
        if suppress:
            settings["default"] = argparse.SUPPRESS
        parent.add_argument(flag, **settings)
    return parent


class _Subcommands:
    """``add_subparsers()`` that gives every subcommand the global options and the help
    formatter, so extensions need not repeat them."""

    def __init__(self, action: Any, parent: argparse.ArgumentParser) -> None:
        self._action = action
        self._parent = parent

    def add_parser(self, name: str, **options: Any) -> argparse.ArgumentParser:
        options.setdefault("formatter_class", HelpFormatter)
        # A description is printed as written, a help string %-formatted: "95%%" -> "95%".
        description = options.get("help")
        options.setdefault("description", description and description.replace("%%", "%"))
        parser: argparse.ArgumentParser = self._action.add_parser(
            name, parents=[self._parent], **options
        )
        return parser


def version() -> str:
    try:
        return metadata.version("pgen")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare tree
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="pgen",
        description="Personalized generation: context in, content for one user out.",
        parents=[_global_options(suppress=False)],
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pgen {version()}")
    inherited = _global_options(suppress=True)
    commands = _Subcommands(
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), inherited
    )
    bench_parser = commands.add_parser("bench", help="run a benchmark (see pgen bench -h)")
    bench = _Subcommands(
        bench_parser.add_subparsers(dest="bench", required=True, metavar="BENCHMARK"), inherited
    )
    for name in EXTENSIONS:
        importlib.import_module(name).register(commands, bench)
    return parser


def check_store_flag(store: str | None) -> None:
    """An explicit ``--store`` must be in a folder that exists: a typo would otherwise create
    a new, empty store somewhere unexpected (the default store's folders are created)."""
    if store is None or ("://" in store and not store.startswith(SQLITE_URL)):
        return  # another provider's URL: its store says what is wrong with it
    path = Path(store.removeprefix(SQLITE_URL)).expanduser()
    if path.is_dir():
        raise ValueError(f"--store {store}: is a directory; name the store's .sqlite file")
    if not path.parent.is_dir():
        raise ValueError(f"--store {store}: no such folder {str(path.parent)!r}")


def one_line(error: BaseException) -> str:
    """The error as one readable line: messages from libraries often span several."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 500 else text[:500] + "…"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_store_flag(args.store)
        config = load_config(
            None if args.config is None else Path(args.config),
            store=args.store,
            home=args.home,
            text_model=args.text_model,
            embed_model=args.embed_model,
            threads=args.threads,
        )
        if getattr(args, "reads_store", False):
            require_store(config)
        return int(args.func(args, config) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `pgen users | head`: the reader left; end quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as error:  # errors are for people: one line, unless --debug
        if args.debug:
            traceback.print_exc()
        else:
            print(f"pgen: error: {one_line(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
