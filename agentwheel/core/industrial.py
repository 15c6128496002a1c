"""The worlds and answers of industrial tasks: questions answered with tools, not workflows.

A *search* task names a document collection (`SearchWorld`); an *analysis* task names a
set of tables and the gold query whose result is the answer (`AnalysisWorld`). Both are
judged by an `AnswerSpec` in the task's evaluation: the answer the agent submitted must
match the gold value under the spec's rule, and the evidence must have been seen (the
supporting documents opened, or a query whose result holds the answer run).

These live beside `Task` as optional fields, left out of a task's JSON when absent, so a
workflow task written before they existed keeps its bytes.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, model_validator

AnswerKind = Literal["text", "number", "set", "list", "absent"]
WorldKind = Literal["search", "analysis"]
ANSWER_TOOL = "submit_answer"
NOT_IN_DATA = "not in the data"
"""The gold answer of a question the data cannot answer (`kind="absent"`)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnswerSpec(_Strict):
    """The gold answer and how a submitted answer is compared with it.

    - `text`: equal after normalization (case, punctuation, articles, spaces);
    - `number`: the first number in the answer is within `tolerance` (absolute) of `value`;
    - `set` / `list`: the answer's comma- or newline-separated items equal `value`'s items,
      in any order (set) or in order (list);
    - `absent`: the answer says the data does not hold it (`NOT_IN_DATA` or a close phrase).

    `evidence_docs` (search): documents the agent must have opened. Analysis evidence is a
    successful `run_sql` / `run_python` whose output holds the gold value.
    """

    kind: AnswerKind
    value: float | str | list[float | str]
    tolerance: float = Field(default=0.01, ge=0)
    evidence_docs: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _value_fits_kind(self) -> AnswerSpec:
        many = isinstance(self.value, list)
        if self.kind in ("set", "list") and not many:
            raise ValueError(f"a {self.kind} answer needs a list value")
        if self.kind not in ("set", "list") and many:
            raise ValueError(f"a {self.kind} answer needs a single value")
        if self.kind == "number" and not isinstance(self.value, int | float):
            raise ValueError("a number answer needs a numeric value")
        return self


API_COLLECTION = "api:"
"""The prefix of a live search service's collection spec: `api:<config.yaml>`."""


class SearchWorld(_Strict):
    """A document collection: `kb` (the generated company knowledge base, optionally
    `kb?seed=1&docs=20000`), a folder of .txt/.md files, a JSONL file of documents, or
    `api:<config.yaml>`, a live search service (whose answers cannot be gold-verified
    offline: `live`)."""

    collection: str = "kb"

    @property
    def live(self) -> bool:
        return self.collection.startswith(API_COLLECTION)


class AnalysisWorld(_Strict):
    """Tables and the gold query. `dataset`: `shop` (generated, optionally `shop?seed=1`) or
    a folder of CSV / parquet files (one table per file, named by the file's stem)."""

    dataset: str = "shop"
    gold_sql: str = Field(min_length=1)


def parse_generated_spec(spec: str, name: str) -> dict[str, int] | None:
    """`name` or `name?key=int&...` as keyword integers; None when the spec is not `name`."""
    base, _, query = spec.partition("?")
    if base != name:
        return None
    try:
        return {k: int(v) for k, v in parse_qsl(query, strict_parsing=bool(query))}
    except ValueError:
        raise ValueError(f"{spec!r}: options must be key=integer pairs") from None
