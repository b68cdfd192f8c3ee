"""Strategies: how personalization enters generation. Importing this package registers
every built-in strategy (heavy backends load inside ``prepare``, never at import)."""

from pgen.personalize.base import (
    AdapterRef,
    AnswerRequest,
    AnyStrategy,
    ImagePlan,
    ImageRequest,
    Modality,
    NoPersonalization,
    Provenance,
    Strategy,
    TextPlan,
    TextRequest,
    Tools,
    VisionPlan,
)
from pgen.personalize.face_id import FaceIDStrategy
from pgen.personalize.keywords import ImageBaseline, KeywordsStrategy
from pgen.personalize.lora import adapter_strategies
from pgen.personalize.photo_concepts import Concepts, ConceptTokens, NoConcepts
from pgen.personalize.post import IndependentPost, JointPost
from pgen.personalize.profile import ProfileSummary
from pgen.personalize.rag import RetrievalAugmented
from pgen.personalize.registry import all_strategies, get_strategy, register, strategy_names
from pgen.personalize.shape import ShapeSubject
from pgen.personalize.speech import ChosenVoice, OwnVoice
from pgen.personalize.subject import SubjectStrategy
from pgen.personalize.subjects import SubjectsStrategy
from pgen.personalize.video import VideoBaseline, VideoSubject

BUILT_IN: tuple[AnyStrategy, ...] = (
    NoPersonalization(),
    RetrievalAugmented(),
    ProfileSummary(),
    ImageBaseline(),
    SubjectStrategy(),
    KeywordsStrategy(),
    SubjectsStrategy(),
    FaceIDStrategy(),
    *adapter_strategies(),
    NoConcepts(),
    Concepts(),
    ConceptTokens(),
    ChosenVoice(),
    OwnVoice(),
    VideoBaseline(),
    VideoSubject(),
    JointPost(),
    IndependentPost(),
    ShapeSubject(),
)
for _strategy in BUILT_IN:
    register(_strategy)

__all__ = [
    "AdapterRef",
    "AnswerRequest",
    "AnyStrategy",
    "ImagePlan",
    "ImageRequest",
    "Modality",
    "Provenance",
    "Strategy",
    "TextPlan",
    "TextRequest",
    "Tools",
    "VisionPlan",
    "all_strategies",
    "get_strategy",
    "register",
    "strategy_names",
]
