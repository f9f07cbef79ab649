"""The base of every recipe section (light: pydantic only)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A recipe section: unknown keys are errors that name the key, not settings silently
    ignored; inf passes bounds such as gt=0 (and nan fails them with a puzzling message), and
    every number a recipe holds is finite, so both are refused as what they are."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
