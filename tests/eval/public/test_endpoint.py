"""The server check that runs before a benchmark starts (bfcl-eval would poll forever)."""

from __future__ import annotations

import pytest

from agentwheel.eval.public.endpoint import EndpointError, require_model, served_models
from agentwheel.eval.public.served import free_port
from tests.llm.openai_server import OpenAITestServer


def test_lists_the_served_models():
    with OpenAITestServer(models=["/models/ckpt", "other"]) as server:
        assert served_models(server.url) == ["/models/ckpt", "other"]
        require_model(server.url, "/models/ckpt")


def test_a_model_the_server_does_not_serve_is_named():
    with (
        OpenAITestServer(models=["served-name"]) as server,
        pytest.raises(EndpointError, match=r"serves served-name, not '/models/ckpt'"),
    ):
        require_model(server.url, "/models/ckpt")


def test_no_server_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(EndpointError, match=f"no server at {url}"):
        served_models(url, timeout_s=2)


def test_a_server_that_is_not_openai_compatible():
    with OpenAITestServer() as server:
        url = server.url.removesuffix("/v1") + "/nope"  # answers 404 on every path
        with pytest.raises(EndpointError, match="not an OpenAI-compatible server"):
            served_models(url)
