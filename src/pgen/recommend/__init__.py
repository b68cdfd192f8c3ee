"""Recommendation: data sets into the store, the leave-one-out protocol, and recommenders."""

from pgen.recommend.arrays import Sequences, Split, leave_one_out, sequences_from_store
from pgen.recommend.data import RecData, ingest, load_data
from pgen.recommend.protocol import EvalResult, evaluate

__all__ = [
    "EvalResult",
    "RecData",
    "Sequences",
    "Split",
    "evaluate",
    "ingest",
    "leave_one_out",
    "load_data",
    "sequences_from_store",
]
