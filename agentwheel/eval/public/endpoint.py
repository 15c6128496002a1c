"""Is an OpenAI-compatible server up, and does it serve the model a benchmark will ask for?

Checked before a benchmark starts because the tools handle a missing server badly:
bfcl-eval's local-model handler polls `/models` forever, and tau2 turns every failed call
into a failed task after its retries.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

PLACEHOLDER_API_KEY = "EMPTY"


class EndpointError(RuntimeError):
    """The server is not reachable, not OpenAI-compatible, or does not serve the model."""


def served_models(
    base_url: str, api_key: str = PLACEHOLDER_API_KEY, timeout_s: float = 10.0
) -> list[str]:
    """The model ids `GET {base_url}/models` lists."""
    url = base_url.rstrip("/") + "/models"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise EndpointError(
            f"{url} answered HTTP {exc.code}: not an OpenAI-compatible server?"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EndpointError(f"no server at {base_url} ({reason})") from None
    except ValueError:
        raise EndpointError(
            f"{url} did not answer JSON: not an OpenAI-compatible server?"
        ) from None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise EndpointError(
            f"{url} answered without a `data` list: not an OpenAI-compatible server?"
        )
    return [str(item.get("id")) for item in data if isinstance(item, dict)]


def require_model(base_url: str, model: str, api_key: str = PLACEHOLDER_API_KEY) -> None:
    """Raise `EndpointError` unless the server at `base_url` lists `model`."""
    models = served_models(base_url, api_key)
    if model not in models:
        listed = ", ".join(models) or "nothing"
        raise EndpointError(
            f"{base_url} serves {listed}, not {model!r} (the name the benchmark will request)"
        )


def wait_for_server(
    base_url: str,
    timeout_s: float,
    still_starting: Callable[[], bool] = lambda: True,
    poll_s: float = 0.5,
) -> list[str]:
    """Poll `/models` until it answers (its model ids) or `timeout_s` passes; stop early
    when `still_starting()` turns false (the server process died)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return served_models(base_url, timeout_s=poll_s * 4)
        except EndpointError:
            if time.monotonic() > deadline or not still_starting():
                raise
        time.sleep(poll_s)
