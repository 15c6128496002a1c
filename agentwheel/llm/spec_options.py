"""Chat-template keywords written into a model spec: `hf:Qwen/Qwen3-1.7B?enable_thinking=false`.

Everything after the first `?` of an `hf:` or `vllm:` spec is `key=value` pairs joined by
`&`; each value is read as a YAML scalar (`false`, `1`, `0.5`, `text`). They reach the chat
template as keyword arguments, like `template_kwargs` in a config's `model` section.
"""

from __future__ import annotations

from typing import Any

import yaml

from agentwheel.core.yaml_text import load_yaml


def split_spec_options(target: str) -> tuple[str, dict[str, Any]]:
    """`"path?enable_thinking=false"` → `("path", {"enable_thinking": False})`.

    Raises ValueError naming the bad pair when one is not `identifier=value`."""
    path, sep, query = target.partition("?")
    options: dict[str, Any] = {}
    if not sep:
        return path, options
    for pair in query.split("&"):
        name, eq, raw = pair.partition("=")
        if not eq or not name.isidentifier():
            raise ValueError(
                f"model spec option {pair!r} is not name=value "
                "(e.g. hf:Qwen/Qwen3-1.7B?enable_thinking=false)"
            )
        try:
            options[name] = load_yaml(raw) if raw else ""
        except yaml.YAMLError:
            options[name] = raw
    return path, options
