"""The embedded SQLite backend: one file, composed parts (connection, schema, records,
derived data, artifacts) behind the narrow store protocols of ``pgen.context.base``."""

from pgen.context.sqlite.artifacts import SQLiteArtifacts, remove_path, safe_name
from pgen.context.sqlite.connection import Database, make_private_dir
from pgen.context.sqlite.derived import SQLiteDerived
from pgen.context.sqlite.records import SQLiteRecords
from pgen.context.sqlite.store import SQLiteStore

__all__ = [
    "Database",
    "SQLiteArtifacts",
    "SQLiteDerived",
    "SQLiteRecords",
    "SQLiteStore",
    "make_private_dir",
    "remove_path",
    "safe_name",
]
