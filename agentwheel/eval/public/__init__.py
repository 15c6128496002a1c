"""Public benchmarks run with their official packages: BFCL v4 multi-turn (`bfcl`) and
τ²-bench (`tau2`), each in a virtualenv of its own (`tool_env`), against a model behind an
OpenAI-compatible server (`served`, `endpoint`)."""
