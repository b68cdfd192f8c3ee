"""The `pgen` command: ``main`` and one module per area (see ``pgen.cli.main``)."""

from pgen.cli.main import main

__all__ = ["main"]
