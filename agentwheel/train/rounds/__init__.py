"""RL rounds: what every round does (base.py), one module per round kind, the registry."""
