"""The embedded SQLite backend: one file, composed parts (connection, schema, records,
derived data, artifacts) behind the narrow store protocols of ``pgen.context.base``."""

from pgen.context.sqlite.artifact_folders import SQLiteArtifacts, remove_path, safe_name
from pgen.context.sqlite.connection import Database, make_private_dir
from pgen.context.sqlite.derived_tables import SQLiteDerived
from pgen.context.sqlite.record_tables import SQLiteRecords
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
