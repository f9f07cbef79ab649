"""A run's model card, ``MODEL_CARD.md``: what the model was trained on and how, how it scored
beside its baselines, where it is weak, and every warning raised on the way there.

``evaluate --format model-card`` writes it from the evaluation just made and the run's own
records, read through their typed classes: the run's copy of the manifest (data, splits,
preprocessing), ``run.json`` (:class:`RunInfo`: training), the run's ``recipe.yaml`` (model and
optimizer), the metrics document (:class:`MetricsDocument`) and the prepared data's
``profile.json`` (prepare's warnings). Nothing in the card is written by hand; a record a run
lacks (an older run, a moved data folder) is said as missing. Light: no TensorFlow.

Example:
    >>> card = write_model_card(evaluation.document)
    >>> card.path.name
    'MODEL_CARD.md'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dltrain.atomic import read_json, write_text_atomic
from dltrain.errors import DataError
from dltrain.manifest import Manifest, read_manifest
from dltrain.runs import MANIFEST_FILE, RunFolder

if TYPE_CHECKING:
    from dltrain.evaluation.result import MetricsDocument
    from dltrain.recipe.schema import Recipe
    from dltrain.run_info import RunInfo

PROFILE_FILE = "profile.json"  # data/store.py's name, repeated: that module loads NumPy


@dataclass(frozen=True)
class CardSources:
    """Everything a model card is built from, each read through its own class."""

    document: MetricsDocument
    info: RunInfo
    recipe: Recipe | None  # None: the saved recipe no longer validates in full
    manifest: Manifest | None  # None: neither the run nor its data folder holds one
    profile_warnings: list[str] = field(default_factory=list)  # prepare's, from profile.json
    missing: list[str] = field(default_factory=list)  # records the run lacks, said in the card


@dataclass(frozen=True)
class ModelCard:
    """A written model card: where it is, and its Markdown."""

    path: Path
    text: str


def read_card_sources(document: MetricsDocument) -> CardSources:
    """Read the run's records a model card needs, beside the evaluation's document.

    Args:
        document: the evaluation just made of the run at ``document.run``.

    Returns:
        The sources; a record the run lacks is named in ``missing`` rather than raised.

    Raises:
        RunError: run.json is not a run record.
    """
    files = RunFolder(document.run)
    info = files.read_info()
    missing: list[str] = []
    data_folder = Path(info.data.folder) if info.data is not None else None
    manifest = _read_manifest(files, data_folder, missing)
    profile_warnings = _profile_warnings(data_folder, missing)
    loaded = files.load_recipe()
    # load_recipe keeps only the run-reading sections of a recipe another version wrote; the
    # model and training it would then show are defaults, not the run's
    full = loaded.recipe.model_fields_set >= {"model", "train"}
    if not full:
        missing.append(f"{files.recipe.name} (model and optimizer settings)")
    return CardSources(
        document=document,
        info=info,
        recipe=loaded.recipe if full else None,
        manifest=manifest,
        profile_warnings=profile_warnings,
        missing=missing,
    )


def _read_manifest(
    files: RunFolder, data_folder: Path | None, missing: list[str]
) -> Manifest | None:
    """The run's copy of the manifest, else its data folder's; None (and noted) without either."""
    candidates = [files.manifest] + ([data_folder / MANIFEST_FILE] if data_folder else [])
    for path in candidates:
        if path.is_file():
            try:
                return read_manifest(path)
            except DataError:
                continue  # another version's manifest: try the next, else say it is missing
    missing.append(f"{MANIFEST_FILE} (data, splits and preprocessing)")
    return None


def _profile_warnings(data_folder: Path | None, missing: list[str]) -> list[str]:
    """prepare's profile warnings, from the data folder's profile.json."""
    path = data_folder / PROFILE_FILE if data_folder is not None else None
    try:
        document = read_json(path) if path is not None else None
    except (OSError, ValueError):
        document = None
    if not isinstance(document, dict):
        missing.append(f"{PROFILE_FILE} (prepare's warnings)")
        return []
    warnings = document.get("warnings", [])
    return [str(w) for w in warnings] if isinstance(warnings, list) else []


def write_model_card(document: MetricsDocument) -> ModelCard:
    """Build the run's model card and write it as ``MODEL_CARD.md`` in the run folder.

    Args:
        document: the evaluation just made of the run at ``document.run``.

    Returns:
        The card's path and text.

    Raises:
        RunError: run.json is not a run record.
        FileSystemError: the run folder cannot be written.
    """
    from dltrain.evaluation.model_card_sections import render_model_card

    text = render_model_card(read_card_sources(document))
    path = RunFolder(document.run).model_card
    write_text_atomic(path, text)
    return ModelCard(path=path, text=text)
