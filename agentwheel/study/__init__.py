"""The learning study: the same SFT checkpoint, the same RL budget, RL with and without the
flywheel, evaluated side by side (run.py drives it; config.py holds its config)."""
