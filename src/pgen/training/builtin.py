"""The built-in trainers, registered once when ``pgen.training`` is imported."""

from __future__ import annotations

from pgen.training.registry import get_registered, register_trainer


def register_builtin_trainers() -> None:
    from pgen.personalize.subject import TRAINERS
    from pgen.training.concept_tokens import ConceptTokenTrainer
    from pgen.training.subject_trainer import SubjectTrainer
    from pgen.training.text_methods import text_trainers

    if get_registered():
        return
    for trainer in text_trainers():
        register_trainer(trainer)
    for method in TRAINERS:
        register_trainer(SubjectTrainer(method))
    register_trainer(ConceptTokenTrainer())
