"""The embedded store, under its first import path (see ``pgen.context.sqlite``)."""

from pgen.context.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
