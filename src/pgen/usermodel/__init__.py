"""User modeling: what is derived from one user's context for one request."""

from pgen.usermodel.retrievers import RETRIEVERS, Hit, Retriever, Retrievers

__all__ = ["RETRIEVERS", "Hit", "Retriever", "Retrievers"]
