"""API keys and tenants of the service: one ``KeyStore`` protocol, two backends (a SQLite
file; the Postgres store's database), opened by ``open_keys(config)``."""

from pgen.serve.auth.keys import KeyInfo, KeyStore, Principal, check_tenant
from pgen.serve.auth.where import key_path, keys_location, open_keys

__all__ = [
    "KeyInfo",
    "KeyStore",
    "Principal",
    "check_tenant",
    "key_path",
    "keys_location",
    "open_keys",
]
