"""The PostgreSQL backend, for many machines: psycopg 3 with a connection pool, one schema
per store (one per tenant in the service), composed parts (connection, schema, records,
derived data, artifacts) behind the narrow store protocols of ``pgen.context.base``.
Installed with the ``postgres`` extra (``pip install 'pgen[postgres]'``)."""

from pgen.context.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
