"""A live search API as a document collection: the collection spec `api:<config.yaml>`.

The config is OpenAI-style: where the service is, which environment variable holds its
key (never the key itself), and how long a request may take.

    base_url: http://127.0.0.1:8888      # a SearXNG instance, or any service alike
    api_key_env: SEARCH_API_KEY          # optional; sent as `Authorization: Bearer …`
    timeout_s: 10

`search(query, k)` is `GET {base_url}{search_path}?q=<query>&format=json` (SearXNG's
JSON API; `search_path`, `query_param` and `extra_params` adapt it to a service alike)
and reads `results: [{title, url, content}]`; the url is the hit's doc_id. `open(doc_id)`
fetches that url and returns the page's text (HTML reduced to its visible text). The key
goes only to `base_url`, never to the pages opened.

Bounds: each response must arrive whole within `timeout_s` (checked once the headers
are in and after every read of the body, and connecting and each read wait at most
`timeout_s`, so a slow or trickling server is cut off within twice that), its body is read decompressed up to `max_response_bytes` and refused past
it (a small gzip body can inflate to gigabytes), and a page's text is cut to
`max_page_chars`. Every failure (unreachable, timeout, HTTP error, a body that is too
large, not JSON or without results) is a `CollectionError` whose message the search
tools hand the agent as an `api_error`.

Tasks over a live API cannot be gold-verified offline: the pages change, so the gate's
replay of a normal path proves nothing. `agentwheel eval` scores them answer-only
(docs/industrial.md).
"""

from __future__ import annotations

import codecs
import json
import os
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentwheel.core.yaml_text import load_yaml
from agentwheel.envs.search_index import DEFAULT_K, CollectionError, Document, SearchHit

SNIPPET_CHARS = 300
_MAX_REDIRECTS = 5


class SearchApiConfig(BaseModel):
    """Where a search API is and how it is asked (YAML; unknown keys are refused)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="The service's root, http:// or https://.")
    api_key_env: str | None = Field(
        default=None, description="Environment variable holding the API key (sent as Bearer)."
    )
    timeout_s: float = Field(default=10.0, gt=0, description="Seconds a whole response may take.")
    max_response_bytes: int = Field(
        default=2_000_000, ge=1024, description="Largest body read, decompressed."
    )
    max_page_chars: int = Field(default=20_000, ge=100, description="Text `open` returns, at most.")
    search_path: str = Field(default="/search", description="Path of the search endpoint.")
    query_param: str = Field(default="q", description="The query's parameter name.")
    extra_params: dict[str, str] = Field(
        default_factory=lambda: {"format": "json"}, description="Sent with every search."
    )
    results_key: str = Field(default="results", description="The JSON key of the result list.")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
            raise ValueError(f"base_url must be an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")


def load_search_api_config(path: Path) -> SearchApiConfig:
    """The config at `path`; a `ValueError` naming the file and the field when it is bad."""
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"search API config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"search API config {path}: not YAML ({exc})") from None
    try:
        return SearchApiConfig.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"search API config {path}: {problems}") from None


class SearchApi:
    """A live search service behind the search tools' collection interface."""

    remote = True  # `open` takes only urls a search of the same episode returned

    def __init__(self, config: SearchApiConfig):
        self.config = config
        self._headers: dict[str, str] = {}
        if config.api_key_env:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise ValueError(f"${config.api_key_env} (the search API key) is not set")
            self._headers["Authorization"] = f"Bearer {key}"
        self._client = httpx2.Client(
            timeout=config.timeout_s, follow_redirects=True, max_redirects=_MAX_REDIRECTS
        )

    def search(self, query: str, k: int = DEFAULT_K) -> list[SearchHit]:
        """The service's first `k` results with a url, in its order."""
        url = self.config.base_url + self.config.search_path
        params = {**self.config.extra_params, self.config.query_param: query}
        body, _ = self._get(url, params, self._headers)
        results = _json(body, url).get(self.config.results_key) if body else None
        if not isinstance(results, list):
            raise CollectionError(f"the search API's reply has no {self.config.results_key!r} list")
        hits = []
        for result in results:
            if isinstance(result, dict) and isinstance(result.get("url"), str) and result["url"]:
                hits.append(_hit(result))
            if len(hits) == k:
                break
        return hits

    def get(self, doc_id: str) -> Document | None:
        """The page at url `doc_id` as text; None when it is not an http(s) url."""
        if urlsplit(doc_id).scheme not in ("http", "https"):
            return None
        body, content_type = self._get(doc_id, {}, {})
        text = body.decode(_charset(content_type), errors="replace")
        title = ""
        if "html" in content_type or text.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
            title, text = html_text(text)
        elif not content_type.startswith(("text/", "application/json")) and content_type:
            raise CollectionError(f"{_host(doc_id)} sent {content_type}, not a text page")
        text = " ".join(text.split())
        if len(text) > self.config.max_page_chars:
            text = text[: self.config.max_page_chars] + " …(cut)"
        return Document(doc_id=doc_id, title=title or doc_id, text=text)

    def _get(self, url: str, params: dict[str, str], headers: dict[str, str]) -> tuple[bytes, str]:
        """The body (decompressed, capped) and content type of a GET, or a CollectionError."""
        limit, timeout = self.config.max_response_bytes, self.config.timeout_s
        deadline = time.monotonic() + timeout
        host = _host(url)
        try:
            with self._client.stream("GET", url, params=params, headers=headers) as response:
                parts, size = [], 0
                for part in _chunks(response):
                    size += len(part)
                    if size > limit:
                        raise CollectionError(f"{host}'s response is over {limit:,} bytes")
                    if time.monotonic() > deadline:
                        raise CollectionError(
                            f"{host}'s response did not arrive within {timeout:g}s"
                        )
                    parts.append(part)
                body = b"".join(parts)
                status, reason = response.status_code, response.reason_phrase
                content_type = response.headers.get("content-type", "").lower()
        except httpx2.TimeoutException:
            raise CollectionError(f"no response from {host} within {timeout:g}s") from None
        except httpx2.TooManyRedirects:
            raise CollectionError(f"{host} redirected more than {_MAX_REDIRECTS} times") from None
        except httpx2.RequestError as exc:
            raise CollectionError(f"could not reach {host}: {type(exc).__name__}") from None
        if status >= 400:
            from agentwheel.llm.openai_client import server_message  # imports the openai SDK

            message = server_message(body.decode("utf-8", "replace"), reason)
            raise CollectionError(f"HTTP {status} from {host}: {message}")
        return body, content_type

    def close(self) -> None:
        self._client.close()


def _chunks(response: httpx2.Response) -> Iterator[bytes]:
    """The body's decompressed chunks, after an empty one for the headers: so the
    deadline is checked once the headers are in, before the first body read waits."""
    yield b""
    yield from response.iter_bytes()


def _json(body: bytes, url: str) -> dict:
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise CollectionError(f"{_host(url)}'s reply is not JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise CollectionError(f"{_host(url)}'s reply is not a JSON object")
    return parsed


def _hit(result: dict) -> SearchHit:
    snippet = result.get("content") or result.get("snippet") or result.get("description") or ""
    snippet = " ".join(str(snippet).split())
    if len(snippet) > SNIPPET_CHARS:
        snippet = snippet[:SNIPPET_CHARS] + " …"
    return SearchHit(doc_id=result["url"], title=str(result.get("title") or ""), snippet=snippet)


def _host(url: str) -> str:
    return urlsplit(url).netloc or url[:80]


def _charset(content_type: str) -> str:
    for part in content_type.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "charset" and value:
            try:
                return codecs.lookup(value.strip('"')).name
            except LookupError:
                break
    return "utf-8"


class _VisibleText(HTMLParser):
    _HIDDEN = frozenset({"script", "style", "noscript", "template", "svg", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: list[str] = []
        self.text: list[str] = []
        self._hidden = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._in_title = self._in_title or tag == "title"
        self._hidden += tag in self._HIDDEN

    def handle_endtag(self, tag: str) -> None:
        self._in_title = self._in_title and tag != "title"
        if tag in self._HIDDEN and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._hidden:
            self.text.append(data)


def html_text(html: str) -> tuple[str, str]:
    """An HTML page's title and visible text (scripts, styles and the head left out)."""
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return " ".join("".join(parser.title).split()), " ".join(" ".join(parser.text).split())
