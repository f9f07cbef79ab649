"""Field types that several recipe sections share."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field

from dltrain.recipe.durations import parse_duration

# A recipe field holding a duration; null (no limit) is allowed where the field says `| None`.
Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
