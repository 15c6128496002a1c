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


def find_config(name_or_path: str | Path) -> Path:
    """A schedule config: the file at `name_or_path` if there is one, else the bundled
    config of that name (`tiny`, `demo.yaml`). The error lists the bundled names."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.name == str(name_or_path) and bundled_config(path.name).is_file():
        return bundled_config(path.name)
    raise FileNotFoundError(
        f"no config file {str(name_or_path)!r} and no bundled config of that name "
        f"(bundled: {', '.join(bundled_config_names())})"
    )
