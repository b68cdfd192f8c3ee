"""Names of the embedded store's artifacts part, under their first import path."""

from pgen.context.sqlite.artifacts import remove_path, safe_name

__all__ = ["remove_path", "safe_name"]
