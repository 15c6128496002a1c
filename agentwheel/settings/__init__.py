"""What a run is, as data: the settings models a run, a round, a trainer and an eval are
configured with, loaded from YAML and saved beside a run.

Every module here is a leaf: it imports pydantic, yaml and `agentwheel.core`, never torch,
transformers or an implementation (trainers, flywheels, environments, evals). So reading
and checking a config imports none of them (tests/settings, and an import-linter contract
in pyproject.toml). A round kind's implementation is looked up by its `kind:` name only
when a round runs (agentwheel/train/rounds/registry.py).
"""
