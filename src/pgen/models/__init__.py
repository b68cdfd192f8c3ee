"""Foundation model backends: text, embedding (and image, behind the same protocols)."""

from pgen.models.base import Chat, Embedder, GenerationConfig, Message, TextModel

__all__ = ["Chat", "Embedder", "GenerationConfig", "Message", "TextModel"]
