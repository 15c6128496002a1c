"""Answer equivalence with math-verify, under a per-check time limit.

math-verify parses both answers to SymPy and compares them (fractions, decimals, LaTeX,
`\\boxed{}`, units and trailing words are handled on its side). SymPy can hang on
pathological input (`(10^{10^5})!`), so every check runs under a limit: on the main
thread through math-verify's own alarm-based timeout; off the main thread (where alarms
are not allowed) in a single worker process that is killed and replaced when a check
overruns. A check that times out is *not equal*, and says so.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.pool
import re
import threading
from typing import Literal

from pydantic import BaseModel, ConfigDict

MatchStatus = Literal["equal", "different", "unparsable", "timeout", "error"]

_LATEX_HINT = re.compile(r"[\\^_{}]")
_UNICODE = str.maketrans({"\u2212": "-", "\u2009": " ", "\u202f": " ", "\u00a0": " "})


class Match(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: MatchStatus

    @property
    def equal(self) -> bool:
        return self.status == "equal"


def normalize_answer(text: str) -> str:
    """Whitespace, case, unicode minus, `$` and a final full stop do not matter."""
    text = text.translate(_UNICODE).strip().strip("$").strip().rstrip(".").strip()
    return " ".join(text.lower().split())


def _as_parse_input(answer: str) -> str:
    """Bare LaTeX (`\\frac12`, `x^2`) parses only inside math delimiters; an escaped
    currency sign (`\\$12`) is dropped."""
    answer = answer.translate(_UNICODE).replace("\\$", "").strip()
    if _LATEX_HINT.search(answer) and "$" not in answer and "\\boxed" not in answer:
        return f"${answer}$"
    return answer


def _math_verify(gold: str, predicted: str, timeout_s: int) -> MatchStatus:
    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    try:
        gold_parsed = parse(_as_parse_input(gold), parsing_timeout=timeout_s, raise_on_error=True)
        pred_parsed = parse(
            _as_parse_input(predicted), parsing_timeout=timeout_s, raise_on_error=True
        )
        if not gold_parsed or not pred_parsed:
            return "unparsable"
        same = verify(gold_parsed, pred_parsed, timeout_seconds=timeout_s, raise_on_error=True)
    except TimeoutException:
        return "timeout"
    except Exception:  # SymPy raises many types on odd input: that is "not checkable", not a bug
        return "error"
    return "equal" if same else "different"


class _Worker:
    """One worker process for checks made off the main thread; replaced after a timeout."""

    def __init__(self) -> None:
        self._pool: multiprocessing.pool.Pool | None = None
        self._lock = threading.Lock()
        atexit.register(self.close)

    def run(self, gold: str, predicted: str, timeout_s: int) -> MatchStatus:
        with self._lock:
            if self._pool is None:
                self._pool = multiprocessing.get_context("spawn").Pool(1)
            pending = self._pool.apply_async(_math_verify, (gold, predicted, timeout_s))
            try:
                # the worker's own alarm fires first; the margin covers a check stuck in C code
                return pending.get(timeout=2 * timeout_s + 5)
            except multiprocessing.TimeoutError:
                self._pool.terminate()
                self._pool = None
                return "timeout"

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None


_WORKER = _Worker()


def answers_match(gold: str, predicted: str, timeout_s: int = 5) -> Match:
    """Whether `predicted` is mathematically the same answer as `gold`.

    Normalized string equality short-circuits (it also covers non-mathematical answers
    such as "Yes"); otherwise math-verify decides, within `timeout_s` seconds per parse
    and per comparison.
    """
    if not predicted.strip():
        return Match(status="unparsable")
    if normalize_answer(gold) == normalize_answer(predicted):
        return Match(status="equal")
    return Match(status=_guarded_check(gold, predicted, timeout_s))


def is_checkable(answer: str, timeout_s: int = 5) -> bool:
    """An answer math-verify can parse, so that other answers can be compared with it."""
    return bool(answer.strip()) and _guarded_check(answer, answer, timeout_s) == "equal"


def _guarded_check(gold: str, predicted: str, timeout_s: int) -> MatchStatus:
    timeout_s = max(1, int(timeout_s))
    if threading.current_thread() is threading.main_thread():
        return _math_verify(gold, predicted, timeout_s)
    return _WORKER.run(gold, predicted, timeout_s)
