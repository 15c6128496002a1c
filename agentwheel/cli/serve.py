"""`agentwheel serve`: an OpenAI-compatible HTTP server over a model spec."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from agentwheel.cli.errors import fail, in_range

console = Console(stderr=True)


def checkpoint_model_dir(spec: str) -> str:
    """`hf:<checkpoint dir>` → `hf:<checkpoint dir>/model`: a training checkpoint keeps its
    servable model in `model/`; any other spec is returned unchanged."""
    prefix = next((p for p in ("hf:", "vllm:") if spec.startswith(p)), None)
    if prefix is None:
        return spec
    target, sep, options = spec.removeprefix(prefix).partition("?")
    model_dir = Path(target).expanduser() / "model"
    if (model_dir / "config.json").is_file():
        return f"{prefix}{model_dir}{sep}{options}"
    return spec


def serve_command(
    spec: Annotated[
        str,
        typer.Argument(
            help="hf:default | hf:<model dir or checkpoint dir> | vllm:<path> (hands off to "
            "`vllm serve`); ?name=value options are chat-template keywords."
        ),
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(callback=in_range(0, 65535), help="Port (0: any free one).")
    ] = 8000,
    model_name: Annotated[
        str | None,
        typer.Option(help="The model name clients send (default: the spec as given)."),
    ] = None,
    max_batch_size: Annotated[
        int,
        typer.Option(
            callback=in_range(1), help="Sequences per model call (concurrent requests are batched)."
        ),
    ] = 32,
    dtype: Annotated[
        str, typer.Option(help="float32 | bfloat16 (hf:), or vLLM's --dtype.")
    ] = "float32",
    device: Annotated[
        str, typer.Option(help="cpu | cuda | cuda:<index> | mps (hf: models).")
    ] = "cpu",
    default_max_tokens: Annotated[
        int,
        typer.Option(
            callback=in_range(1), help="Tokens per chat reply when a request sets no max_tokens."
        ),
    ] = 512,
    max_tokens_cap: Annotated[
        int | None,
        typer.Option(
            callback=in_range(1),
            help="hf: only: no reply longer than this, whatever a request asks (BFCL's "
            "handler asks for the whole context left).",
        ),
    ] = None,
    tool_parser: Annotated[
        str, typer.Option(help="vllm: only: vLLM's tool-call parser (our templates write Hermes).")
    ] = "hermes",
    dry_run: Annotated[
        bool, typer.Option(help="vllm: only: print the vllm serve command instead of running it.")
    ] = False,
    log_requests: Annotated[bool, typer.Option(help="Log every HTTP request to stderr.")] = False,
) -> None:
    """Serve a model over the OpenAI API: /v1/models, /v1/chat/completions (tools), /v1/completions."""
    spec = checkpoint_model_dir(spec)
    name = model_name or spec
    if spec.startswith("vllm:"):
        _hand_off_to_vllm(spec, host, port, name, max_batch_size, dtype, tool_parser, dry_run)
        return
    if not spec.startswith("hf:"):
        raise fail(f"cannot serve {spec!r}: use hf:default, hf:<path> or vllm:<path>")
    from agentwheel.llm.default_model import load_hf_spec
    from agentwheel.llm.server.http import OpenAIServer
    from agentwheel.llm.server.service import ChatService

    try:
        model = load_hf_spec(spec, dtype=dtype, device=device, max_batch_size=max_batch_size)
    except Exception as exc:  # a model that cannot be loaded is a user-facing error here
        raise fail(f"could not load {spec!r}: {exc}") from None
    service = ChatService(
        model, name, max_batch_size, default_max_tokens, max_tokens_cap=max_tokens_cap
    )
    try:
        server = OpenAIServer(service, host, port, log=log_requests)
    except OSError as exc:
        service.close()
        raise fail(f"cannot listen on {host}:{port}: {exc}") from None
    console.print(f"serving [bold]{name}[/] at {server.base_url} (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")


def _hand_off_to_vllm(
    spec: str,
    host: str,
    port: int,
    name: str,
    max_batch_size: int,
    dtype: str,
    tool_parser: str,
    dry_run: bool,
) -> None:
    from agentwheel.llm.server.vllm_command import VLLMServeOptions, vllm_serve_command

    options = VLLMServeOptions(
        host=host,
        port=port,
        model_name=name,
        max_batch_size=max_batch_size,
        dtype=dtype,
        tool_parser=tool_parser,
    )
    try:
        command = vllm_serve_command(spec, options)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if dry_run:
        typer.echo(shlex.join(command))
        return
    if shutil.which(command[0]) is None:
        raise fail(
            f'`vllm` is not installed here ({sys.executable}); pip install -e ".[vllm]" on a '
            f"machine with a CUDA GPU, or run: {shlex.join(command)}"
        )
    console.print(f"handing off to: {shlex.join(command)}")
    os.execvp(command[0], command)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
