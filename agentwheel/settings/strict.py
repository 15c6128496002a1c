"""The base of every settings section: unknown keys and non-finite numbers are errors."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    # No knob of a run means anything at inf or nan (YAML reads `.inf` and `.nan`).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def reject_unknown_fields(cls: type, value: Any) -> Any:
    """Pydantic ignores unknown keys of a stdlib dataclass; a typo in a knob must fail."""
    if isinstance(value, dict):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {unknown}")
    return value
