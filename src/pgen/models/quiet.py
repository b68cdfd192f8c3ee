"""Third-party noise a user cannot act on (deprecation warnings, info lines and load
messages of transformers, diffusers, TRL, torchvision and the Hub), silenced while a model
loads or trains; pgen's own messages, bars and log say what happens."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

NOISY = r"(trl|transformers|diffusers|accelerate|torchvision|huggingface_hub|peft)(\.|$)"


@contextmanager
def quiet_third_party(diffusers: bool = False) -> Iterator[None]:
    """``diffusers``: its logging too (it is imported for that: only where it loads)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    diffusers_logging = _diffusers_logging() if diffusers else None
    diffusers_level = diffusers_logging.get_verbosity() if diffusers_logging else None
    if diffusers_logging:
        diffusers_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", module=NOISY)
            yield
    finally:
        hf_logging.set_verbosity(level)
        if diffusers_logging and diffusers_level is not None:
            diffusers_logging.set_verbosity(diffusers_level)


def _diffusers_logging():  # type: ignore[no-untyped-def]
    try:
        from diffusers.utils import logging as diffusers_logging
    except ImportError:
        return None
    return diffusers_logging
