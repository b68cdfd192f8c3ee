"""Recommenders. Importing this package registers every model under its name."""

from pgen.recommend.recommenders.base import (
    REGISTRY,
    Recommender,
    TrainableRecommender,
    build,
    load,
)
from pgen.recommend.recommenders.mf import BPRMF
from pgen.recommend.recommenders.sasrec import SASRec
from pgen.recommend.recommenders.simple import ItemKNN, Pop
from pgen.recommend.recommenders.textaware import TextBPR

__all__ = [
    "BPRMF",
    "REGISTRY",
    "ItemKNN",
    "Pop",
    "Recommender",
    "SASRec",
    "TextBPR",
    "TrainableRecommender",
    "build",
    "load",
]
