"""`agentwheel view`: the browser page of a run, eval or task directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from agentwheel.cli.errors import fail
from agentwheel.core.atomic import write_text_atomic

console = Console(stderr=True)
PAGE_FILE = "view.html"


def view_command(
    directory: Annotated[
        Path,
        typer.Argument(help="A run directory (train --out), eval directory or task directory."),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help=f"Where to write the page (default: <directory>/{PAGE_FILE})."),
    ] = None,
    serve: Annotated[
        bool, typer.Option("--serve", help="Also serve the page on 127.0.0.1 until Ctrl-C.")
    ] = False,
    port: Annotated[int, typer.Option("--port", help="Port for --serve (0: a free one).")] = 0,
) -> None:
    """Browse the episodes of a run, eval or task directory in one self-contained HTML page
    (no network needed): stages, curves, filters, every turn, reward components."""
    from agentwheel.view.build import build_page_data
    from agentwheel.view.html import render_page

    if not directory.is_dir():
        raise fail(f"{directory} is not a directory: pass a run, eval or task directory")
    if not 0 <= port <= 65535:
        raise fail(f"--port {port} is out of range (0-65535)")
    try:
        data = build_page_data(directory)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    page = render_page(data)
    target = out or directory / PAGE_FILE
    if target.is_dir():
        raise fail(f"--out {target} is a directory: pass a file name such as report.html")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, page)
    size_mb = len(page.encode("utf-8")) / 1e6
    console.print(
        f"wrote {target} ({len(data.episodes)} episodes, {len(data.groups)} sets, {size_mb:.1f} MB)"
    )
    for warning in data.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if serve:
        _serve(page, port)


def _serve(page: str, port: int) -> None:
    from agentwheel.view.serve import LOOPBACK, page_server

    try:
        server = page_server(page, port)
    except OSError as exc:
        raise fail(f"cannot serve on 127.0.0.1:{port}: {exc}") from None
    bound = server.server_address[1]
    console.print(f"serving on http://{LOOPBACK}:{bound}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def register(app: typer.Typer) -> None:
    app.command("view")(view_command)
