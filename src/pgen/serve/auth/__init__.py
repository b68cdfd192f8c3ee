"""API keys and tenants of the service."""

from pgen.serve.auth.keys import KeyInfo, KeyStore, Principal, check_tenant

__all__ = ["KeyInfo", "KeyStore", "Principal", "check_tenant"]
