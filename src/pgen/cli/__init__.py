"""The `pgen` command: ``pgen.cli.main`` and one module per area, with shared options."""
