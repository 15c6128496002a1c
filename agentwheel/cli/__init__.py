"""The `agentwheel` command line: `app` is the typer application, `main` its entry point."""

from agentwheel.cli.app import app, main

__all__ = ["app", "main"]
