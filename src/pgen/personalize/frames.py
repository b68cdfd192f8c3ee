"""Whom the model writes as, or for: the frame of a personalized text prompt.

A personalized request is one of two things, and the prompt must say which:

* **author**: the user asks for a text they will sign ("Write a short bio", "Write a blog
  post about your week", "Generate a headline for this article"). The model writes *as*
  the user, first person, from their own texts. Framed as an assistant instead, chat
  models answer "As an AI language model, I don't have a week" even with the user's posts
  in the prompt (``pgen bench attribution``, docs/benchmarks.md).
* **assistant**: the user asks the model for something ("Suggest hotels in Las Vegas",
  "What should I cook tonight?", "Write me a packing list"). The model answers *for* the
  user, and what it knows of them shapes the answer. Framed as the user, chat models
  write the user's own question back (``pgen bench prefeval``).

A third frame, **voice**, is the author frame cut down for small models: the model *is*
the user ("You are the person below"), the instruction goes in as given, and no closing
line follows the texts. SmolLM2-135M echoes the author frame's closing line or talks about
the request instead of doing it; ``voice`` is only ever asked for, never chosen.

``choose`` picks the frame from the instruction's first words, by rules a person can read;
a request may name its frame instead (``TextRequest.frame``). Strategies put the frame's
opening and closing around their own context (attributes, texts, summary).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, cast, get_args

Frame = Literal["author", "assistant", "voice"]
FRAMES: tuple[str, ...] = (*get_args(Frame), "auto")


@dataclass(frozen=True)
class Framing:
    opening: str  # first in the system message: who writes, as or for whom
    texts: str  # the heading over the user's texts (``{what}``: closest / most recent)
    closing: str  # last in the system message: what to do with all of it ("": nothing)
    # The user's turn: the instruction, for the author frame turned from a request to the
    # model ("your week") into a task done for the person ("their week"): asked directly,
    # chat models answer that they, being AIs, have no week.
    request: str = "{instruction}"
    who: str = "Who they are:\n{attributes}"  # the heading over the profile attributes
    about: str = "About them: {summary}"  # the profile strategy's summary

    def system(self, parts: list[str]) -> str:
        """The system message: the opening, a strategy's ``parts`` (who they are, their
        texts or summary), then the closing when the frame has one."""
        closing = [self.closing] if self.closing else []
        return "\n\n".join([self.opening, *parts, *closing])

    def ask(self, instruction: str) -> str:
        """The user's turn for ``instruction`` under this frame."""
        return self.request.format(instruction=instruction)


FRAMINGS: dict[str, Framing] = {
    "author": Framing(
        opening=(
            "You ghostwrite for the person below: write what they ask for as they would "
            'write it, in the first person (I, my), to publish under their name. "You" '
            "in the request means them. Never say you are an AI."
        ),
        texts="Texts they wrote ({what}):\n{documents}",
        closing="Write as them: their own topics, people, places and words, in their tone.",
        request=(
            'They ask you for this, to post as their own: "{instruction}"\n'
            "Write only that text, as them (I, my), with no placeholders such as [Your Name]."
        ),
    ),
    "assistant": Framing(
        opening="You are the personal assistant of the user below; answer their request for them.",
        texts="Their texts ({what}):\n{documents}",
        closing="Fit your answer to who they are and what they like.",
    ),
    "voice": Framing(
        opening="You are the person below. Write as yourself, in the first person.",
        texts="Texts you wrote ({what}):\n{documents}",
        closing="",
        who="Who you are:\n{attributes}",
        about="About you: {summary}",
    ),
}

# The user asks for a text of their own when the instruction opens with a writing verb
# ("please" and the like may come first) and does not ask for it to be made *for* them.
WRITING = re.compile(
    r"^\W*(?:(?:please|now|then|ok(?:ay)?|and|so),?\s+)*"
    r"(?:write|draft|compose|rewrite|re-write|continue|paraphrase|generate|create|"
    r"caption|tweet|post|blog|describe\s+(?:yourself|your|my)|introduce\s+yourself|"
    r"tell\s+(?:us|the\s+world)\s+about\s+yourself)\b",
    re.IGNORECASE,
)
FOR_ME = re.compile(r"\b(?:for\s+me|me\s+(?:a|an|some|the)\b|help\s+me)\b", re.IGNORECASE)


def choose(instruction: str) -> Frame:
    """``author`` for a request to write the user's own text, ``assistant`` otherwise
    (questions, suggestions, and texts written for the user rather than as them)."""
    text = instruction.strip()
    if WRITING.match(text) and not FOR_ME.search(text) and not text.endswith("?"):
        return "author"
    return "assistant"


def resolve(frame: str, instruction: str) -> Frame:
    """The request's frame: its own when it names one, else chosen from the instruction."""
    if frame == "auto":
        return choose(instruction)
    if frame not in FRAMINGS:
        raise ValueError(f"frame: unknown {frame!r}; use one of {', '.join(FRAMES)}")
    return cast(Frame, frame)
