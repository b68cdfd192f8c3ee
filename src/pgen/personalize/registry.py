"""One registry of strategies, for every modality: CLI choices, the README table and the shared
strategy tests all come from here, so a new strategy is one ``register`` call."""

from __future__ import annotations

from pgen.personalize.base import AnyStrategy, Modality

_STRATEGIES: dict[tuple[Modality, str], AnyStrategy] = {}


def register(strategy: AnyStrategy) -> AnyStrategy:
    key = (strategy.modality, strategy.name)
    if key in _STRATEGIES:
        raise ValueError(f"a {strategy.modality} strategy {strategy.name!r} is registered already")
    _STRATEGIES[key] = strategy
    return strategy


def unregister(modality: Modality, name: str) -> None:
    """Remove a strategy (a plugin unloaded, a test's own strategy after the test)."""
    _STRATEGIES.pop((modality, name), None)


def strategy_names(modality: Modality) -> list[str]:
    """Registered names for one modality, in registration order (baseline first)."""
    return [name for (kind, name) in _STRATEGIES if kind == modality]


def get_strategy(modality: Modality, name: str) -> AnyStrategy:
    try:
        return _STRATEGIES[(modality, name)]
    except KeyError:
        choices = ", ".join(strategy_names(modality))
        raise ValueError(f"unknown {modality} strategy {name!r}; choose from {choices}") from None


def all_strategies() -> list[AnyStrategy]:
    return list(_STRATEGIES.values())


def markdown_table() -> str:
    """The README's strategy table, from the registry (a test keeps the README equal)."""
    rows = ["| modality | strategy | what it does |", "| --- | --- | --- |"]
    rows += [f"| {s.modality} | `{s.name}` | {s.description} |" for s in all_strategies()]
    return "\n".join(rows)
