"""The `agentwheel` command line: `app` is the typer application, `main` its entry point.

The application is loaded on first use, so that a part of the CLI (the config checks in
config_file.py) can be imported without the whole application and what it imports; and
`agentwheel check-config`, which only reads settings, runs without it (no torch)."""

import sys
from importlib import import_module
from typing import Any

__all__ = ["app", "main"]


def main() -> None:
    if sys.argv[1:2] == ["check-config"]:
        from agentwheel.cli.check_config import run_alone

        run_alone(sys.argv[2:])
        return
    import_module("agentwheel.cli.app").main()


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module 'agentwheel.cli' has no attribute {name!r}")
    value = getattr(import_module("agentwheel.cli.app"), name)
    # Importing the submodule `app` bound the name `app` here to it: the typer app wins.
    globals()[name] = value
    return value
