"""Per-user optimization: text LoRA, DPO from feedback, subject adapters, concept tokens.

Trainers are registered here (``pgen.training.registry``), by method; runners
(``pgen.training.runners``) decide where a training request runs. Importing the package
registers every built-in trainer; their loops import torch only when they train."""

from pgen.training.builtin import register_builtin_trainers

register_builtin_trainers()
