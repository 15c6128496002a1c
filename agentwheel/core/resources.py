"""Files that ship inside the package (workflows, fixtures, reasoning seeds, configs), found
through `importlib.resources` so that they are there in a wheel installed anywhere."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def bundled(*parts: str) -> Path:
    """The path of `agentwheel/<parts...>` as installed. Package data is installed as plain
    files (the wheel is not zip-safe), so the traversable is a real directory."""
    return Path(str(resources.files("agentwheel").joinpath(*parts)))


def bundled_data(*parts: str) -> Path:
    """`agentwheel/data/<parts...>`: workflows/, fixtures/, reasoning/."""
    return bundled("data", *parts)


def bundled_config(name: str) -> Path:
    """`agentwheel/configs/<name>.yaml` (`name` with or without the suffix)."""
    return bundled("configs", name if name.endswith(".yaml") else f"{name}.yaml")


def bundled_config_names() -> list[str]:
    return sorted(p.stem for p in bundled("configs").glob("*.yaml"))
