"""Reading the agent's words: refusals, questions, confirmations, and which facts it asks for.

These classifiers are deliberately simple and public: the reward uses them for the
required signals, and the scripted user uses them to decide how to answer. Passing still
needs the right final state, so phrasing alone cannot game the reward; and a clarifying
question counts only when it names a fact the user holds (`facts_asked_for`), so a
constant "Could you tell me more?" does not, nor does a constant list of every
identifier a business might use (`identifiers_named` counts what a question asks for).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from agentwheel.core.task import Task, UserSide

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


COMMON_IDENTIFIERS = (
    "email",
    "phone number",
    "order id",
    "order number",
    "booking reference",
    "booking id",
    "confirmation number",
    "reservation number",
    "ticket number",
    "ticket id",
    "employee id",
    "member id",
    "membership number",
    "account number",
    "card number",
    "customer id",
    "date of birth",
    "flight number",
    "claim number",
    "patient id",
    "appointment id",
    "policy number",
    "passport number",
    "postcode",
    "zip code",
    "username",
    "full name",
)
"""Identifiers a customer is commonly asked for, whatever the business: a question that
names many of them asks for everything, not for what the request left out."""


def identifiers_named(text: str, task: Task) -> set[str]:
    """The distinct things `text` asks the user for: the task's facts (by name or alias),
    its tools' parameters, and the `COMMON_IDENTIFIERS`; a fact's phrases all count as
    that one fact."""
    if not asks_for_something(text):
        return set()
    vocabulary: dict[str, str] = {p: p for p in COMMON_IDENTIFIERS}
    for tool in task.tools:
        for parameter in tool.properties:
            vocabulary.update(dict.fromkeys(fact_phrases(parameter), parameter))
    for name in task.user.known_facts:
        phrases = fact_phrases(name, task.user.aliases.get(name, []))
        vocabulary.update(dict.fromkeys(phrases, name))
    return {label for phrase, label in vocabulary.items() if mentions(text, phrase)}
