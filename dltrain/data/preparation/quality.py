"""The recipe's data checks (``data.checks``, ``--strict``), shared by every preparation path."""

from __future__ import annotations

from typing import Any

from dltrain.data.profile import Profile
from dltrain.errors import DltrainError, ExitCode
from dltrain.recipe.data import DataSpec


class DataQualityError(DltrainError):
    """The data read fine but failed the recipe's checks (or --strict): exit 1."""

    kind = "data check failed"
    exit_code = ExitCode.FAILED

    def __init__(self, message: str, profile: dict[str, Any]) -> None:
        super().__init__(message)
        self.profile = profile  # profile.json's content, for the report


def check_quality(profile: Profile, spec: DataSpec, *, strict: bool) -> None:
    """Refuse data whose profile breaks a check of ``data.checks`` (any warning when strict).

    Args:
        profile: what preparation found in the source.
        spec: the recipe's data section.
        strict: fail on any profile warning (``--strict``).

    Raises:
        DataQualityError: naming every breach; nothing is written.
    """
    breaches = profile.breaches(spec.checks, strict=strict)
    if breaches:
        raise DataQualityError(
            f"{spec.source} failed {len(breaches)} data check(s): {'; '.join(breaches)}. "
            f"Fix the data, relax `data.checks` in the recipe, or run without --strict.",
            profile.to_json(),
        )
