"""Strategies: how personalization enters generation."""

from pgen.personalize.base import NoPersonalization, Prepared, Request, Strategy, Tools
from pgen.personalize.profile import ProfileSummary
from pgen.personalize.rag import RetrievalAugmented

TEXT_STRATEGIES: dict[str, Strategy] = {
    s.name: s for s in (NoPersonalization(), RetrievalAugmented(), ProfileSummary())
}

__all__ = ["TEXT_STRATEGIES", "Prepared", "Request", "Strategy", "Tools"]
