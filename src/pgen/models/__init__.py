"""Foundation model backends: text, embedding (and image, behind the same protocols)."""

from pgen.models.base import Chat, Embedder, GenerationSettings, Message, TextModel

__all__ = ["Chat", "Embedder", "GenerationSettings", "Message", "TextModel"]
