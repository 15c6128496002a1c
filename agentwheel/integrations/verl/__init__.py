"""agentwheel episodes inside verl's agent loop (verl 0.9.x, the `verl` extra).

- `episode`: verl-free pieces — the chat model that generates through an async token
  server, one episode run by our own `EpisodeRunner`, and its conversion to the ids,
  mask, log-probs and reward verl trains on.
- `token_server`: a stand-in for verl's server manager backed by any of our chat models
  (CPU checks, and running the loop without vLLM).
- `agent_loop`: the `AgentLoopBase` subclass registered as `agentwheel_agent` (imports
  verl; load it only where verl is installed).
- `reward_fn`: the reward function to name in verl's config for agentwheel rows.
"""
