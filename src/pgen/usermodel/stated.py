"""Stated preferences: finding them in a user's words, and choosing which go into a prompt.

A preference the user states ("I'm vegetarian", "I avoid hotels with a bustling nightlife")
must never be forgotten, however many turns follow it. ``find_preferences`` finds them in a
text with a rule set: first-person sentences that say what the user likes, prefers, avoids,
cannot have or always does. Requests of the moment ("I'd like a summary", "I love this
answer") and questions are not preferences. ``model_judgment`` asks a text model instead
(the likelihood of "yes" against "no"), which a caller may use to confirm the rules' hits.
``benchmarks/preference_detection.py`` measures both on PrefEval's stated preferences
against its filler turns.

Detected preferences keep their source: the document (chat turn) and the span of its text.
Their ids are a hash of the user, the source and the sentence, so ingesting the same turn
twice finds the same preference once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pgen.context.records import MAX_PREFERENCE_CHARS, Document, Preference, content_hash

if TYPE_CHECKING:
    from pgen.models.base import ChoiceModel

# Sentences: up to . ! ? or a line break (kept with the sentence), so spans stay exact.
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")
LONGEST_SENTENCE = 400  # characters: longer "sentences" are code, tables or pasted text

# Words that may sit between "I" and the verb ("I really don't like", "I'd much rather").
_ADVERBS = (
    r"(?:(?:really|strongly|much|very much|absolutely|definitely|generally|usually|always|"
    r"truly|completely|totally|deeply|just|also|firmly|personally|particularly|especially|"
    r"actually|mostly|simply|genuinely|honestly|still|typically|exclusively|strictly|"
    r"greatly|adamantly|extremely|tend to|try to|prefer to|"
    r"have to|need to|must|can only|only|would|'d|will|'ll)\s+)*"
)
_LIKES = (
    r"(?:prefer|love|like|enjoy|adore|favou?r|avoid|hate|dislike|detest|despise|loathe|"
    r"refuse|prioriti[sz]e|value|cherish|steer clear|stay away|shy away|abhor|"
    r"can(?:no|')t stand|can(?:no|')t tolerate|can(?:no|')t eat|can(?:no|')t have|"
    r"can(?:no|')t drink|(?:don't|do not|won't|will not|never|would never|can't|cannot)\s+"
    + _ADVERBS
    + r"(?:like|enjoy|eat|drink|use|consume|watch|play|wear|buy|want|care for|touch|go|"
    r"travel|fly|read|listen|drive|own|trust|support|tolerate|stand)|"
    r"only (?:use|eat|buy|wear|drink|"
    r"watch|play|read|shop|stay|travel|fly|listen|go)|follow (?:a|an)|believe in|"
    r"care (?:a lot |deeply )?about|rather|opt for|choose|seek out|look for|gravitate)"
)
_STATES = (
    r"(?:vegetarian|vegan|pescatarian|allergic|lactose|gluten|diabetic|kosher|halal|"
    r"sensitive to|intolerant|a (?:big |huge )?fan of|not (?:a |really a )?fan of|not into|"
    r"into|passionate about|(?:not |un)?interested in|committed to|averse to|"
    r"(?:not |un)?comfortable (?:with|in)|afraid of|scared of|terrified of|bored by|"
    r"tired of|sick of|picky about|particular about)"
)
_HAVE = (
    r"(?:have|'ve got|have got)\s+(?:a|an|no|some|zero|little)?\s*(?:\w+\s+){0,2}?"
    r"(?:aversion|allergy|allergies|preference|dislike|objection|intolerance|sensitivity|"
    r"fear|phobia|interest|passion|love|distaste|soft spot|weakness|tolerance)"
    r"|have\s+(?:very\s+|extremely\s+)?sensitive"
)
_FIND = (
    r"find\s+(?:[\w'-]+\s+){1,8}?(?:ineffective|boring|annoying|uncomfortable|difficult|"
    r"hard|overwhelming|distracting|unappealing|unpleasant|tedious|disorienting|stressful|"
    r"dull|useless|off-putting|nauseating|tiresome|too \w+)"
)
_BEST = r"(?:learn|work|sleep|focus|study|feel|do)\s+(?:\w+\s+){0,2}?best"
_FIRST_PERSON = re.compile(
    r"(?:^|[\s,;:(\"'])(?:I|I'm|I am|I've)\s+" + _ADVERBS + r"(?:" + _LIKES + r"\b|"
    r"(?:(?<=I'm )|(?<=I am )|am\s+)?"
    + _STATES
    + r"\b|"
    + _HAVE
    + r"\b|"
    + _FIND
    + r"\b|"
    + _BEST
    + r"\b)"
    # "I have very sensitive skin and avoid ...": the preference in the second clause.
    r"|(?:^|[\s,;:(\"'])I\s+(?:[\w'-]+\s+){1,6}?and\s+" + _ADVERBS + _LIKES + r"\b"
    r"|(?:^|[\s,;:(\"'])my\s+(?:absolute\s+)?(?:favou?rite|go-to|preferred)\b"
    r"|(?:^|[\s,;:(\"'])(?:makes?|made) me (?:feel )?"
    r"(?:nauseous|sick|dizzy|uncomfortable|anxious)\b"
    # "As someone who only uses vegan products, ...": the preference said in passing.
    r"|\bas someone who\s+" + _ADVERBS + r"(?:uses|follows|avoids|prefers|loves|likes|eats|"
    r"buys|wears|values|hates|dislikes|can't|cannot|doesn't|does not|never)\b"
    r"|(?:^|[\s,;:(\"'])(?:I'm|I am)\s+not\s+(?:really|particularly|very|much|a big)\s+"
    r"(?:into|a fan of|fan of|interested in)\b",
    re.IGNORECASE,
)
# The request of the moment, not a lasting preference: "I'd like a summary", "I want you
# to", "I like this answer", "I don't know", "I don't understand".
_NOT_A_PREFERENCE = re.compile(
    r"\bI(?:'d| would) (?:like|love) (?:to|you|a|an|the|some|it|this)\b"
    r"|\bI (?:want|need) (?:you|it|a|an|the)\b"
    r"|\bI (?:really )?(?:like|love|liked|loved|enjoy|enjoyed|prefer|hate) "
    r"(?:it|this|that|these|those|your|you|the (?:answer|response|story|code|poem|idea|"
    r"first|second|last|above|previous))\b"
    r"|\bI (?:don't|do not) (?:know|understand|get|see|think|have|mean|need|want|remember|"
    r"care|believe|agree|follow|recall)\b"
    r"|\bI (?:never|won't|will not) (?:know|forget|understand|said|say)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Found:
    """A sentence of a text that states a preference: ``text[start:end]``, trimmed."""

    start: int
    end: int
    text: str


def sentences(text: str) -> list[Found]:
    """The text's sentences with their spans, each trimmed of surrounding space."""
    found = []
    for match in _SENTENCE.finditer(text):
        raw = match.group()
        stripped = raw.strip()
        if not stripped:
            continue
        start = match.start() + (len(raw) - len(raw.lstrip()))
        found.append(Found(start, start + len(stripped), stripped))
    return found


def states_preference(sentence: str) -> bool:
    """The rule set: a first-person sentence saying what the user likes, avoids or needs,
    and not a question or a request of the moment."""
    if len(sentence) > LONGEST_SENTENCE or sentence.rstrip().endswith("?"):
        return False
    sentence = sentence.replace("\u2019", "'")  # "don’t" as "don't"
    if _NOT_A_PREFERENCE.search(sentence):
        return False
    return _FIRST_PERSON.search(sentence) is not None


# A question may open with a statement: "I avoid violent games, but do you have ideas?"
_THEN_ASKS = re.compile(
    r",\s+(?=(?:but|so|and|yet|should|could|would|can|do|does|what|how|which|where|any|is|"
    r"are)\b)",
    re.IGNORECASE,
)


def _stated_part(sentence: Found) -> Found | None:
    """The sentence if it states a preference; for a question, its opening clause (up to
    the comma before "but", "so", "should I", ...) if that does."""
    if states_preference(sentence.text):
        return sentence
    if not sentence.text.rstrip().endswith("?"):
        return None
    head = _THEN_ASKS.split(sentence.text, maxsplit=1)[0].rstrip()
    if head == sentence.text or not states_preference(head):
        return None
    return Found(sentence.start, sentence.start + len(head), head)


def find_preferences(text: str) -> list[Found]:
    """The sentences (or a question's opening clause) of ``text`` that state a preference,
    by the rule set."""
    return [found for s in sentences(text) if (found := _stated_part(s)) is not None]


JUDGE_SYSTEM = "You decide whether a message states a lasting personal preference."
JUDGE_QUESTION = (
    "Message: {message}\n\nDoes the person writing this message state a lasting personal "
    "preference of theirs (something they like, dislike, avoid, need or always do)? "
    "Answer yes or no."
)


def model_judgment(model: ChoiceModel, texts: Sequence[str]) -> list[float]:
    """The model's probability of "yes" (against "no") that each text states a lasting
    preference: its likelihood of each word as its whole reply, normalized over the two."""
    import numpy as np

    from pgen.models.base import Message

    if not texts:
        return []
    chats = [
        [Message("system", JUDGE_SYSTEM), Message("user", JUDGE_QUESTION.format(message=text))]
        for text in texts
    ]
    scores = np.asarray(model.choice_logprobs(chats, ["yes", "no"]), dtype=np.float64)
    shifted = scores - scores.max(axis=1, keepdims=True)
    probability = np.exp(shifted[:, 0]) / np.exp(shifted).sum(axis=1)
    return [float(p) for p in probability]


def preference_id(user_id: str, source: str, text: str) -> str:
    """Stable for the same sentence of the same source: found twice, stored once."""
    return f"pref-{content_hash(user_id, source, text)[:24]}"


def found_in(
    document: Document, span: Found, text: str, origin: Literal["detected", "choice"]
) -> Preference:
    """The preference ``text`` pgen found in ``document`` at ``span``, with its stable id."""
    return Preference(
        user_id=document.user_id,
        preference_id=preference_id(document.user_id, document.doc_id, text),
        text=text,
        origin=origin,
        source=document.doc_id,
        start=span.start,
        end=span.end,
        time=document.time,
    )


def detected_preferences(documents: Iterable[Document]) -> list[Preference]:
    """The preferences stated in ``documents``, each with its source and span."""
    found: dict[tuple[str, str], Preference] = {}
    for document in documents:
        for sentence in find_preferences(document.text):
            record = found_in(document, sentence, sentence.text[:MAX_PREFERENCE_CHARS], "detected")
            found[(document.user_id, record.preference_id)] = record
    return list(found.values())


def ranked(preferences: Sequence[Preference], query: str) -> list[Preference]:
    """The preferences in the order a prompt should take them: those sharing the most
    words with the request first (the ones it most needs), then the newest; those without
    a time (given by the user as such) count as newest."""
    from pgen.usermodel.bm25 import tokenize_many

    undated = [p for p in preferences if p.time is None]
    dated = sorted((p for p in preferences if p.time is not None), key=_time, reverse=True)
    newest = [*undated, *dated]
    # Stemmed terms without stopwords, as BM25 sees them: "hotels" meets "hotel".
    wanted, *terms = map(set, tokenize_many([query, *(p.text for p in newest)]))
    shared = {id(p): len(wanted & t) for p, t in zip(newest, terms, strict=True)}
    # A stable sort: among equally relevant ones, the newest order stays.
    return sorted(newest, key=lambda p: -shared[id(p)])


def _time(preference: Preference) -> datetime:
    assert preference.time is not None
    return preference.time
