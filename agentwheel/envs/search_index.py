"""The full-text index behind the search tools: SQLite FTS5, ranked by BM25.

Why FTS5: it ships inside Python's own `sqlite3` (no extra dependency, nothing to
download or compile), ranks with BM25 out of the box (`bm25()` with per-column weights,
so a title hit outweighs a body hit), builds 10,000 documents in memory in about a
second, and answers a query in about a millisecond. tantivy or bm25s would be a second
engine to install for the same ranking.

A collection is named by a short spec, resolved once per process and shared read-only by
every episode: `kb` / `kb?seed=1&docs=20000` (the generated company knowledge base), a
folder of .txt / .md files (the document id is the path inside the folder, the title its
first line), a JSONL file of `{"id", "title", "text"}` objects, or `api:<config.yaml>`, a
live search service (agentwheel/envs/search_api.py).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from agentwheel.core.industrial import API_COLLECTION, SearchWorld, parse_generated_spec
from agentwheel.envs.knowledge_base import generate_knowledge_base

DEFAULT_K = 5
MAX_K = 20
SNIPPET_TOKENS = 12
_TITLE_WEIGHT = 10.0  # bm25() column weights: a word in the title counts ten times
_WORD = re.compile(r"\w+", re.UNICODE)
_DOC_FILES = (".txt", ".md")


class Document(BaseModel):
    doc_id: str = Field(min_length=1)
    title: str
    text: str


class SearchHit(BaseModel):
    doc_id: str
    title: str
    snippet: str


class CollectionError(Exception):
    """A collection that could not answer (a live service failed); the message is what the
    agent is told."""


class Collection(Protocol):
    """What the search tools read: ranked hits for a query, a document by its id.
    `remote`: a live service, whose `open` may fetch only what a search returned. Both
    raise `CollectionError` when the collection cannot answer."""

    remote: bool

    def search(self, query: str, k: int = DEFAULT_K) -> list[SearchHit]: ...

    def get(self, doc_id: str) -> Document | None: ...


class SearchIndex:
    """An in-memory FTS5 index over a fixed set of documents (read-only once built)."""

    remote = False

    def __init__(self, documents: Sequence[Document]):
        # Shared by every episode of a process; the runner calls tools from one thread.
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(
            "CREATE VIRTUAL TABLE docs USING fts5("
            "doc_id UNINDEXED, title, text, tokenize='porter unicode61')"
        )
        # FTS5 indexes no column for equality, so `open` finds a document by its rowid.
        self._rowids: dict[str, int] = {}
        for rowid, d in enumerate(documents, start=1):
            self._rowids.setdefault(d.doc_id, rowid)
        self._db.executemany(
            "INSERT INTO docs (rowid, doc_id, title, text) VALUES (?, ?, ?, ?)",
            ((i, d.doc_id, d.title, d.text) for i, d in enumerate(documents, start=1)),
        )
        self._db.execute("INSERT INTO docs(docs) VALUES ('optimize')")
        self.size = self._db.execute("SELECT COUNT(*) FROM docs").fetchone()[0]

    def search(self, query: str, k: int = DEFAULT_K) -> list[SearchHit]:
        """The `k` best documents for any of the query's words, best first (BM25)."""
        expression = fts_expression(query)
        if not expression:
            return []
        rows = self._db.execute(
            "SELECT doc_id, title, snippet(docs, 2, '', '', ' … ', ?) FROM docs "
            "WHERE docs MATCH ? ORDER BY bm25(docs, 0.0, ?, 1.0) LIMIT ?",
            (SNIPPET_TOKENS, expression, _TITLE_WEIGHT, max(1, min(k, MAX_K))),
        ).fetchall()
        return [SearchHit(doc_id=r[0], title=r[1], snippet=r[2]) for r in rows]

    def get(self, doc_id: str) -> Document | None:
        rowid = self._rowids.get(doc_id)
        if rowid is None:
            return None
        row = self._db.execute(
            "SELECT doc_id, title, text FROM docs WHERE rowid = ?", (rowid,)
        ).fetchone()
        return Document(doc_id=row[0], title=row[1], text=row[2]) if row else None


def fts_expression(query: str) -> str:
    """The query's words as an FTS5 OR of quoted terms: any text is a valid query (FTS5's
    own syntax would make `"`, `*`, `AND`, `NEAR(` in a model's query a syntax error)."""
    words = _WORD.findall(query.lower())
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(words))


def read_documents(path: Path) -> list[Document]:
    """A user's documents: a JSONL file, or every .txt / .md file under a folder."""
    if path.is_file():
        return _jsonl_documents(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no document folder or JSONL file at {path}")
    documents = []
    for file in sorted(p for p in path.rglob("*") if p.suffix.lower() in _DOC_FILES):
        text = file.read_text(encoding="utf-8", errors="replace")
        first = next((line for line in text.splitlines() if line.strip()), file.stem)
        documents.append(
            Document(doc_id=file.relative_to(path).as_posix(), title=first.lstrip("# "), text=text)
        )
    if not documents:
        raise FileNotFoundError(f"no .txt or .md files under {path}")
    return documents


def _jsonl_documents(path: Path) -> list[Document]:
    documents = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            doc_id = str(record.get("id", record.get("doc_id", "")))
            documents.append(
                Document(doc_id=doc_id, title=record.get("title", ""), text=record["text"])
            )
        except (ValueError, KeyError, AttributeError) as exc:
            raise ValueError(f"{path}:{number}: not a document ({exc})") from None
    return documents


_INDEXES: dict[str, Collection] = {}


def load_collection(spec: str) -> Collection:
    """The collection of a spec, built (or connected) on first use and kept for the process."""
    if spec not in _INDEXES and SearchWorld(collection=spec).live:
        from agentwheel.envs.search_api import SearchApi, load_search_api_config

        config = load_search_api_config(Path(spec.removeprefix(API_COLLECTION)))
        _INDEXES[spec] = SearchApi(config)
    if spec not in _INDEXES:
        options = parse_generated_spec(spec, "kb")
        if options is not None and set(options) - {"seed", "docs"}:
            raise ValueError(f"{spec!r}: a generated collection takes only seed= and docs=")
        documents = (
            [Document.model_validate(d) for d in generate_knowledge_base(**options).documents]
            if options is not None
            else read_documents(Path(spec))
        )
        _INDEXES[spec] = SearchIndex(documents)
    return _INDEXES[spec]
