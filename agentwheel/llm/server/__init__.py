"""`agentwheel serve`: an OpenAI-compatible HTTP server over a token chat model.

`schema` validates request bodies, `service` turns them into model calls and replies,
`batcher` merges concurrent requests into one model call, `http` is the transport and
`vllm_command` the hand-off to vLLM's own server for `vllm:` specs.
"""
