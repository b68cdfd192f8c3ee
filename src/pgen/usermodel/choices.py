"""Choices: a preference the user shows by picking one of the options the assistant offered.

"Option 1 sounds great; the other options don't appeal to me" states no preference in a
sentence the rule set of ``pgen.usermodel.stated`` can keep: its meaning is in the options
the assistant listed one turn before. So a choice is kept as a record of its own, the option
taken and the user's words ('Chose "…" over 3 other options offered, saying: "…"'; the
whole offer when the pick cannot be placed in it), as a preference of origin ``choice``
whose source is the user's turn, and it goes into every personalized prompt like a stated
preference, however many turns later.

A turn is a choice when the assistant's turn just before it offers alternatives (a numbered
or bulleted list, or a sentence listing ways "you could" go, joined by "or") and the user's
turn picks among them ("I'll go with", "option 3", "the other options …").
``benchmarks/choice_detection.py`` measures it on PrefEval's choice
conversations against the pairs of turns of its filler chats.
"""

from __future__ import annotations

import re

from pgen.context.records import Document, Preference
from pgen.usermodel.stated import Found, found_in, sentences

OFFER_CHARS = 900  # the offer kept in the record: a list of options, not a whole essay
PICK_CHARS = 400  # the user's pick (and their reason) kept in the record
LONGEST_REPLY = 600  # a longer user turn is a pasted text or a new request, not a pick

# At least two numbered or bulleted items: "1. …", "2) …", "(3)", "- …", "• …".
_NUMBERED = re.compile(r"(?:^|\s|\()([1-9])(?:[.)]\s|\))", re.MULTILINE)
_BULLET = re.compile(r"^\s*(?:[-*•]|[A-Da-d][.)])\s+\S", re.MULTILINE)
# A sentence that lists ways to go: "You could A, B, C, or D", "options: A or B".
_OFFERING = re.compile(
    r"\b(?:you could|you can|you might|you may|options?|choices?|consider|recommend|suggest|"
    r"alternatives?|alternatively|either|ways? to|how about|what about)\b",
    re.IGNORECASE,
)
# How a pick names its option, by number or ordinal (also read by ``chosen_index``).
_OPTION_NUMBER = r"\b(?:option|number|choice)\s*#?\s*([1-9])\b"
_ORDINAL = r"\bthe (first|second|third|fourth|fifth|last) (?:one|option|choice|suggestion)\b"
_PICK = re.compile(
    r"\b(?:I|I'll|I will|I'd|I would|we'll|let's|let us|I think I'll|I'm going to)\s+"
    r"(?:\w+\s+){0,2}?(?:go with|go for|take|pick|choose|opt for|try|select)\b"
    r"|\b(?:I|we)\s+(?:\w+\s+)?(?:choose|pick|select|prefer)\s+(?:option|the (?:first|second|"
    r"third|fourth|last))\b"
    # A bare "option 2" picks, unless it says how an option went: "number 3 was useful".
    rf"|{_OPTION_NUMBER}(?!\s+(?:was|were|has been|had been|helped|worked)\b)|{_ORDINAL}"
    r"|\bthe other (?:options?|choices?|ones|suggestions?|recommendations?)\b"
    r"|\bthe others (?:don't|do not|seem|are|aren't|sound)\b"
    r"|\b(?:sounds|seems|looks) like (?:a|the) (?:great|good|best|better|perfect|right|ideal) "
    r"(?:choice|option|pick|fit)\b"
    r"|\bmy (?:choice|pick) (?:is|would be)\b"
    # "The Lunchbox sounds good", "the hiking option sounds great": a named option liked
    # (not "that sounds good", which answers anything).
    r"|^(?!(?:that|this|it|ok|okay|yes|sure|great|thanks|all)\b)(?:\w[\w\"'-]*\s+){1,12}?"
    r"(?:sounds?|seems?|looks?)\s+(?:\w+\s+)?(?:good|great|perfect|appealing|intriguing|"
    r"ideal|interesting|fun|right|best)\b"
    r"|\bwould (?:work|be)\s+(?:the\s+)?(?:best|better|a better (?:fit|choice|option)|"
    r"the best (?:option|choice|fit)|the most \w+(?: (?:option|choice|way))?)\b"
    r"|\b(?:not|n't)\s+(?:really\s+|too\s+|quite\s+)?(?:in the mood for|keen on)\b",
    re.IGNORECASE,
)


def offers_options(text: str) -> bool:
    """Whether an assistant's turn offers alternatives to choose from."""
    numbers = {int(m.group(1)) for m in _NUMBERED.finditer(text)}
    if {1, 2} <= numbers:
        return True
    if len(_BULLET.findall(text)) >= 2:
        return True
    # Prose: a sentence offering ways joined by "or", or offers over several sentences
    # ("You could consider A. B is another option. Alternatively, C").
    offering = [s.text for s in sentences(text) if _OFFERING.search(s.text)]
    return len(offering) >= 2 or any(" or " in sentence for sentence in offering)


def picks_option(text: str) -> Found | None:
    """The sentence of the user's turn that picks one of the options, if one does."""
    if len(text) > LONGEST_REPLY:
        return None  # a pasted document, not a reply to a list of options
    for sentence in sentences(text.replace("\u2019", "'")):
        if not sentence.text.rstrip().endswith("?") and _PICK.search(sentence.text):
            return sentence
    return None


def _clipped(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


_LEAD_IN = re.compile(r"\A[^\n]*:[ \t]*\n")  # "Here are some options to consider:"
# A numbered item's start: "1. ", "2) ", "(3) ", at a line's start or after a space.
_MARK = re.compile(r"(?:^|(?<=\s))\(?([1-9])[.)]\s+", re.MULTILINE)
_BULLET_ITEM = re.compile(r"^\s*[-*•]\s+(.+)$", re.MULTILINE)
# How a pick names its option: "option 2", "#3", "the first one".
_BY_NUMBER = re.compile(rf"{_OPTION_NUMBER}|#([1-9])\b", re.IGNORECASE)
_BY_ORDINAL = re.compile(_ORDINAL, re.IGNORECASE)
_NEGATED = re.compile(r"\b(?:not|no|never|nor)\b|n't\b", re.IGNORECASE)
_ORDINALS = {"first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4, "last": -1}


def listed_options(offer: str) -> list[str]:
    """The offer's items: numbered 1, 2, … in order, or bulleted lines; [] for prose."""
    marks: list[re.Match[str]] = []
    for mark in _MARK.finditer(offer):
        if int(mark.group(1)) == len(marks) + 1:
            marks.append(mark)
    if len(marks) >= 2:
        ends = [mark.start() for mark in marks[1:]] + [len(offer)]
        items = [offer[mark.end() : end] for mark, end in zip(marks, ends, strict=True)]
        items[-1] = items[-1].split("\n")[0]  # what follows the list is not its last item
    else:
        items = _BULLET_ITEM.findall(offer)
    options = [" ".join(item.split()) for item in items]
    return options if len(options) >= 2 and all(options) else []


def chosen_index(pick: str, options: list[str]) -> int | None:
    """Which of ``options`` the picking sentence names: by number, by ordinal, or (unless it
    says no to something) as the one sharing the most words with it (at least two, and more
    than any other)."""
    if number := _BY_NUMBER.search(pick):
        index = int(number.group(1) or number.group(2)) - 1
        return index if index < len(options) else None
    if ordinal := _BY_ORDINAL.search(pick):
        index = _ORDINALS[ordinal.group(1).lower()]
        return index % len(options) if index < len(options) else None
    if _NEGATED.search(pick):
        return None  # "not in the mood for period dramas": its words are the one turned down
    from pgen.usermodel.bm25 import tokenize_many

    said, *items = map(set, tokenize_many([pick, *options]))
    shared = sorted(((len(said & item), n) for n, item in enumerate(items)), reverse=True)
    best, runner_up = shared[0][0], shared[1][0]
    return shared[0][1] if best >= 2 and best > runner_up else None


def choice_text(offer: str, pick: str, picking: str) -> str:
    """The record's text: the option the user took (when the picking sentence says which)
    and their words. Only the option taken, not the ones turned down: their wording, read
    next to a later question, pulls a model towards them. When the pick cannot be placed,
    the whole offer (without a lead-in line before its list) and their words."""
    options = listed_options(offer)
    index = chosen_index(picking, options) if options else None
    said = _clipped(pick, PICK_CHARS)
    if index is not None:
        taken = _clipped(options[index], PICK_CHARS)
        others = f"{len(options) - 1} other option{'s' if len(options) > 2 else ''}"
        return f'Chose "{taken}" over {others} offered, saying: "{said}"'
    listed = _LEAD_IN.sub("", offer.strip(), count=1)
    if offers_options(listed):
        offer = listed
    return f"When offered: {_clipped(offer, OFFER_CHARS)} They chose: {said}"


def detected_choice(turn: Document, offer: str) -> Preference | None:
    """The choice the user's ``turn`` makes among the options of ``offer`` (the assistant's
    turn just before it), or None when the offer lists none or the turn picks none."""
    if not offers_options(offer):
        return None
    picked = picks_option(turn.text)
    if picked is None:
        return None
    return found_in(turn, picked, choice_text(offer, turn.text, picked.text), "choice")
