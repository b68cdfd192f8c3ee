"""Strategies: how personalization enters generation. Importing this package registers
every built-in strategy (heavy backends load inside ``prepare``, never at import)."""

from pgen.personalize.base import (
    AdapterRef,
    ImageRequest,
    Modality,
    NoPersonalization,
    Prepared,
    Provenance,
    Request,
    Strategy,
    Tools,
)
from pgen.personalize.concepts import Concepts, ConceptTokens, NoConcepts
from pgen.personalize.keywords import ImageBaseline, KeywordsStrategy
from pgen.personalize.lora import adapter_strategies
from pgen.personalize.profile import ProfileSummary
from pgen.personalize.rag import RetrievalAugmented
from pgen.personalize.registry import all_strategies, get_strategy, register, strategy_names
from pgen.personalize.subject import TRAINERS, SubjectStrategy, SubjectTrainer
from pgen.training.registry import register_trainer
from pgen.training.text_methods import text_trainers

BUILT_IN: tuple[Strategy, ...] = (
    NoPersonalization(),
    RetrievalAugmented(),
    ProfileSummary(),
    ImageBaseline(),
    SubjectStrategy(),
    KeywordsStrategy(),
    *adapter_strategies(),
    NoConcepts(),
    Concepts(),
    ConceptTokens(),
)
for _strategy in BUILT_IN:
    register(_strategy)
for _method in TRAINERS:
    register_trainer(SubjectTrainer(_method))
for _trainer in text_trainers():
    register_trainer(_trainer)

__all__ = [
    "AdapterRef",
    "ImageRequest",
    "Modality",
    "Prepared",
    "Provenance",
    "Request",
    "Strategy",
    "Tools",
    "all_strategies",
    "get_strategy",
    "register",
    "strategy_names",
]
