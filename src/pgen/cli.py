"""The `pgen` command. Each workflow step registers its own subcommands (see EXTENSIONS)."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pgen.config import Config, load_config

# Modules with ``register(commands, bench)``: they add subcommands to ``pgen`` and to
# ``pgen bench``; each subparser sets ``func(args, config) -> int | None``.
EXTENSIONS: tuple[str, ...] = (
    "pgen.commands",
    "pgen.evaluate.cli",
    "pgen.image_cli",
    "pgen.recommend.cli",
)

Handler = Callable[[argparse.Namespace, Config], Any]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgen", description="Personalized generation: context in, content for one user out."
    )
    parser.add_argument("--config", help="TOML settings file (default: ./pgen.toml)")
    parser.add_argument("--store", help="SQLite store path (default: in the user data dir)")
    parser.add_argument("--home", help="data folder for the store, caches and artifacts")
    parser.add_argument(
        "--text-model", help="smollm2, a folder, an HF id, a .gguf, or openai:M@URL"
    )
    parser.add_argument("--embed-model", help="sentence-transformers model (id or folder)")
    parser.add_argument("--threads", type=int, help="PyTorch CPU threads (0: half the cores)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench_parser = commands.add_parser("bench", help="run a benchmark (see pgen bench -h)")
    bench = bench_parser.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    for name in EXTENSIONS:
        importlib.import_module(name).register(commands, bench)
    return parser


def one_line(error: BaseException) -> str:
    """The error as one readable line: messages from libraries often span several."""
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # ``--debug`` is accepted anywhere (``pgen generate ... --debug`` too), not only before
    # the subcommand where argparse would put it.
    args, unknown = parser.parse_known_args(argv)
    if unknown and set(unknown) == {"--debug"}:
        args.debug = True
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        config = load_config(
            None if args.config is None else Path(args.config),
            store=args.store,
            home=args.home,
            text_model=args.text_model,
            embed_model=args.embed_model,
            threads=args.threads,
        )
        return int(args.func(args, config) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # errors are for people: one line, unless --debug
        if args.debug:
            traceback.print_exc()
        else:
            print(f"pgen: error: {one_line(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
