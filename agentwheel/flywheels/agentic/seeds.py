"""Stable sub-seeds: the same (seed, names) give the same stream on every run and machine
(Python's `hash()` of a string changes per process, so it is never used for seeding)."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *parts: object) -> int:
    text = "\x1f".join([str(seed), *(str(p) for p in parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
