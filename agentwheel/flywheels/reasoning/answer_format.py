"""Pulling a policy's final answer out of its text, in the answer format it was asked for
(`AnswerFormat`, agentwheel/settings/answer_format.py).

The default asks for the final answer inside `\\boxed{}`. A completion *follows the
format* when the wrapper is there with something in it; when it is not, a lenient
format still extracts an answer (an "answer is X" phrase, else the last number) so that
a correct result in the wrong wrapper counts as correct, and only the format component
of the reward is lost.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from agentwheel.settings.answer_format import AnswerFormat

ExtractionMethod = Literal["format", "phrase", "last_number", "none"]

_BOX_OPENERS = re.compile(r"\\(?:boxed|fbox)\s*\{")
_HASH_LINE = re.compile(r"####\s*([^\n]+)")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_ANSWER_PHRASE = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*:?\s*(.+?)(?=\.\s|\.$|\n|$)",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+)?")


class Extraction(BaseModel):
    """The final answer found in a completion (None when there is none)."""

    model_config = ConfigDict(frozen=True)

    answer: str | None
    followed_format: bool
    method: ExtractionMethod


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (braces balanced), or None."""
    found: str | None = None
    for match in _BOX_OPENERS.finditer(text):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    found = text[start:i]
                    break
    return found


def _clean(answer: str) -> str:
    answer = answer.strip().strip("*").strip()
    if answer.startswith("$") and answer.endswith("$") and len(answer) > 1:
        answer = answer.strip("$").strip()
    return answer.rstrip(".,;:").strip()


def _phrase_answer(phrase: str) -> str | None:
    """The value an "answer is ..." phrase states, or None when it states none.

    "2 + 5 = 7" states 7; a phrase with no digit states a value only when it is one word
    ("yes"), so that "the answer is step by step" falls through to the last number."""
    answer = _clean(phrase)
    if "=" in answer:
        answer = _clean(answer.rsplit("=", 1)[1])
    if not answer or ("\\" in answer and not any(c.isdigit() for c in answer)):
        return None
    if any(c.isdigit() for c in answer) or len(answer.split()) == 1:
        return answer
    return None


def _wrapped(fmt: AnswerFormat, text: str) -> str | None:
    if fmt.name == "boxed":
        return last_boxed(text)
    if fmt.name == "hash":
        lines = _HASH_LINE.findall(text)
        return lines[-1] if lines else None
    tags = _ANSWER_TAG.findall(text)
    return tags[-1] if tags else None


def extract_answer(fmt: AnswerFormat, text: str) -> Extraction:
    """The final answer `text` states in the format `fmt` (leniently, when it allows)."""
    wrapped = _wrapped(fmt, text)
    if wrapped is not None and _clean(wrapped):
        return Extraction(answer=_clean(wrapped), followed_format=True, method="format")
    if not fmt.lenient:
        return Extraction(answer=None, followed_format=False, method="none")
    for phrase in reversed(_ANSWER_PHRASE.findall(text)):
        answer = _phrase_answer(phrase)
        if answer is not None:
            return Extraction(answer=answer, followed_format=False, method="phrase")
    numbers = _NUMBER.findall(text)
    if numbers:
        return Extraction(answer=numbers[-1].strip(), followed_format=False, method="last_number")
    return Extraction(answer=None, followed_format=False, method="none")
