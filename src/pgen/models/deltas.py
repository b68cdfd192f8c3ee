"""A reply sent to a sink in deltas while it is decoded, so that the deltas join up to
exactly the reply a backend returns at the end (``reply_text`` of the whole decode)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pgen.models.base import AdapterRef, Chat, GenerationSettings, TextModel, TextSink, streams

log = logging.getLogger("pgen.models")


def whole_characters(decoded: str) -> str:
    """Decoded text without the broken character a cut leaves at its end: byte-level
    tokenizers split a CJK character or an emoji into several tokens, and decoding only
    some of them gives U+FFFD (the replacement character) in its place."""
    return decoded.rstrip("\ufffd")


def reply_text(decoded: str) -> str:
    """What a backend returns for its decoded text (max_new_tokens may cut a character)."""
    return whole_characters(decoded).strip()


class ReplyFeed:
    """One reply's sink and what it has been sent so far.

    ``show`` takes the whole text decoded so far and sends only what is new of its
    ``reply_text``: a broken character or whitespace at the end waits for what follows
    (it may complete the character, or be stripped from the reply), leading whitespace is
    never sent. ``finish`` sends the rest of the final reply. A sink that raises (its
    client went away) is dropped; the batch it shares with others goes on.
    """

    def __init__(self, sink: TextSink) -> None:
        self.sink: TextSink | None = sink
        self.sent = ""

    def show(self, decoded: str) -> None:
        self._send_up_to(reply_text(decoded))

    def finish(self, reply: str) -> None:
        if not reply.startswith(self.sent):
            # A tokenizer that rewrites earlier text as later tokens come (clean-up of
            # spaces): what was sent cannot be taken back; the caller compares at the end.
            log.warning("a streamed reply was revised after %d characters", len(self.sent))
            return
        self._send_up_to(reply)

    def _send_up_to(self, text: str) -> None:
        if self.sink is None or len(text) <= len(self.sent) or not text.startswith(self.sent):
            return
        delta, self.sent = text[len(self.sent) :], text
        try:
            self.sink(delta)
        except Exception:
            log.warning("a reply's sink failed; the reply goes on without it", exc_info=True)
            self.sink = None


def generate_to_sinks(
    model: TextModel,
    chats: list[Chat],
    settings: GenerationSettings,
    adapters: Sequence[AdapterRef | None] | None,
    sinks: Sequence[TextSink | None] | None,
) -> list[str]:
    """The model's replies; with sinks, each handed on as it is decoded, or whole at the
    end by a model whose ``generate`` takes no sinks."""
    if sinks is None or all(sink is None for sink in sinks):
        return model.generate(chats, settings, adapters)
    if streams(model):
        return model.generate(chats, settings, adapters, sinks=sinks)
    texts = model.generate(chats, settings, adapters)
    for sink, text in zip(sinks, texts, strict=True):
        if sink is not None:
            ReplyFeed(sink).finish(text)
    return texts
