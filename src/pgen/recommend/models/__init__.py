"""Recommenders. Importing this package registers every model under its name."""

from pgen.recommend.models.base import REGISTRY, Recommender, build, load
from pgen.recommend.models.mf import BPRMF
from pgen.recommend.models.sasrec import SASRec
from pgen.recommend.models.simple import ItemKNN, Pop
from pgen.recommend.models.textaware import TextBPR

__all__ = [
    "BPRMF",
    "REGISTRY",
    "ItemKNN",
    "Pop",
    "Recommender",
    "SASRec",
    "TextBPR",
    "build",
    "load",
]
