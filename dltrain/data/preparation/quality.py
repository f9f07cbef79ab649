"""The recipe's data checks (``data.checks``, ``--strict``), shared by every preparation path."""

from __future__ import annotations

from dltrain.data.profile import Profile
from dltrain.errors import DataQualityError
from dltrain.recipe.data import DataSpec


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
