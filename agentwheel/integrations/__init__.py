"""Bridges from agentwheel's tasks, environments and rewards to other engines.

Integrations sit above `specs` (they build users and simulators from spec strings) and
never import the trainer, the flywheels or the study: an engine that trains brings its
own trainer (contract in pyproject.toml).
"""
