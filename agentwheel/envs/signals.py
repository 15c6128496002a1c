"""Reading the agent's words: refusals, questions, confirmations, and which facts it asks for.

These classifiers are deliberately simple and public: the reward uses them for the
required signals, and the scripted user uses them to decide how to answer. Passing still
needs the right final state, so phrasing alone cannot game the reward; and a clarifying
question counts only when it names a fact the user holds (`facts_asked_for`), so a
constant "Could you tell me more?" does not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from agentwheel.core.task import UserSide

_REFUSAL = re.compile(
    r"\b(can ?not|can't|cannot|unable to|not able to|won't be able|not (?:allowed|permitted|eligible|possible)"
    r"|ineligible|must decline|have to decline|am not authori[sz]ed|against (?:our|the) polic"
    r"|policy (?:does not|doesn't) allow|no longer (?:eligible|possible))\b",
    re.IGNORECASE,
)
_PROPOSAL = re.compile(
    r"\b(shall i|should i|would you like me to|do you want me to|may i|can i go ahead|"
    r"(?:ok|okay) to proceed|proceed|go ahead)\b",
    re.IGNORECASE,
)
_CONFIRM_WORD = re.compile(r"\bconfirm", re.IGNORECASE)
_CLOSING = re.compile(r"\b(anything else|something else|further (?:help|assistance))\b", re.I)
_WORD = re.compile(r"[a-z0-9]+")


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.search(text))


def is_question(text: str) -> bool:
    return "?" in text


def proposes_action(text: str) -> bool:
    """The agent asks for the go-ahead ("Shall I cancel it?")."""
    return is_question(text) and bool(_PROPOSAL.search(text))


def asks_confirmation(text: str) -> bool:
    return proposes_action(text) or (is_question(text) and bool(_CONFIRM_WORD.search(text)))


def asks_for_information(text: str) -> bool:
    """A question that wants something from the user, not a closing "anything else?"."""
    return is_question(text) and not offers_more_help(text)


def offers_more_help(text: str) -> bool:
    return bool(_CLOSING.search(text))


def fact_phrases(name: str, aliases: Iterable[str] = ()) -> list[str]:
    """How a fact may be named in conversation: its name with words split, and aliases."""
    words = " ".join(_WORD.findall(name.lower().replace("_", " ")))
    return [words, *(a.lower() for a in aliases)]


def mentions(text: str, phrase: str) -> bool:
    """True when every word of `phrase` occurs in `text` as a word, in order."""
    text_words = " ".join(_WORD.findall(text.lower()))
    phrase_words = " ".join(_WORD.findall(phrase.lower()))
    return bool(phrase_words) and f" {phrase_words} " in f" {text_words} "


def asks_for_something(text: str) -> bool:
    """A question, or a request to provide or share something."""
    lowered = text.lower()
    return is_question(text) or "provide" in lowered or "share" in lowered


def facts_asked_for(text: str, user: UserSide) -> list[str]:
    """The user's known facts that `text` asks for, each by its name or one of its aliases."""
    if not asks_for_something(text):
        return []
    return [
        name
        for name in user.known_facts
        if any(mentions(text, p) for p in fact_phrases(name, user.aliases.get(name, [])))
    ]
