"""A finished run as evaluate, predict and export see it: its model, task, classes and inputs."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from dltrain.data.readers.model_input import ModelInput
from dltrain.errors import DataError, RunError
from dltrain.manifest import ImageFeatures, ImagePreprocessing, Manifest, read_manifest
from dltrain.models import family_task
from dltrain.run_info import RunInfo
from dltrain.runs import MANIFEST_FILE, MODEL_FILE, RunFolder, data_dir

if TYPE_CHECKING:
    import keras

    from dltrain.evaluation.tta import TtaViews


@dataclass(frozen=True)
class RunModel:
    """A run folder with a saved model, and the manifest of the data it was trained on."""

    run_dir: Path
    info: RunInfo  # run.json
    manifest: Manifest
    data_folder: Path | None  # None when the manifest came from the run folder itself
    data_problem: str = ""  # with no data folder: why the prepared data cannot be used

    @property
    def files(self) -> RunFolder:
        """The paths of the run's files."""
        return RunFolder(self.run_dir)

    @property
    def task(self) -> str:
        """What the model answers: the data's task, or the one its family learns whatever the
        data's labels (``reconstruction`` for an autoencoder, ``generation`` for a GAN)."""
        if self.info.task:
            return self.info.task
        fixed = family_task(self.model_family)
        return (fixed or self.manifest.task).value

    @property
    def model_family(self) -> str | None:
        family = self.model_settings().get("family")
        return None if family is None else str(family)

    def model_settings(self) -> dict[str, Any]:
        """The ``model`` section of the recipe the run saved (plain YAML)."""
        section = self._recipe().get("model")
        return section if isinstance(section, dict) else {}

    def _recipe(self) -> dict[str, Any]:
        """The resolved recipe the run saved (read as plain YAML: old runs need not validate)."""
        return self._saved_recipe

    @functools.cached_property
    def _saved_recipe(self) -> dict[str, Any]:
        # read once: task and is_classifier ask for it per batch (predict) and per request
        # (serve), where parsing the YAML each time cost ~30 ms
        try:
            recipe = yaml.safe_load(self.files.recipe.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return {}
        return recipe if isinstance(recipe, dict) else {}

    def evaluate_settings(self) -> dict[str, Any]:
        """The ``evaluate`` section of the recipe the run saved (plain YAML)."""
        section = self._recipe().get("evaluate")
        return section if isinstance(section, dict) else {}

    def _recipe_data(self) -> dict[str, Any]:
        data = self._recipe().get("data")
        return data if isinstance(data, dict) else {}

    @property
    def is_classifier(self) -> bool:
        return self.task in ("binary", "multiclass")

    @property
    def classes(self) -> list[str]:
        return self.manifest.classes if self.is_classifier else []

    @property
    def target_names(self) -> list[str]:
        return self.manifest.target_names

    @property
    def model_input(self) -> ModelInput:
        """The model's raw input, read with the CSV settings the run's recipe trained with.

        Raises:
            RunError: the saved recipe's ``data.csv`` no longer validates.
        """
        from pydantic import ValidationError

        from dltrain.recipe.data import CsvSpec

        try:
            csv = CsvSpec.model_validate(self._recipe_data().get("csv") or {})
        except ValidationError as exc:
            raise RunError(
                f"The recipe saved in {self.run_dir} has `data.csv` settings this dltrain cannot "
                f"read ({exc.errors()[0]['msg']}). Fix them in its recipe.yaml, or train the run "
                f"again."
            ) from None
        return ModelInput.from_manifest(self.manifest, csv=csv)

    @property
    def recipe_name(self) -> str:
        return self.info.recipe or self.run_dir.parent.name

    def predict(self, model: keras.Model, x: Any, batch_size: int, tta: int = 1) -> Any:
        """``model``'s outputs for examples as prepare stores them (a table's rows keyed by
        column name), ``batch_size`` at a time: keyed by the model's input names first.

        With ``tta`` > 1, an image classifier's probabilities averaged over ``tta`` views of
        each image (evaluation/tta.py).

        Raises:
            UsageError: ``tta`` > 1 for a run that does not allow it (``tta_views``).
        """
        from dltrain.evaluation.predict import predict_batches
        from dltrain.evaluation.tta import AveragedViews

        views = self.tta_views(tta)
        predictor = model if views is None else AveragedViews(model, views)
        return predict_batches(predictor, self.manifest.model_inputs(x), batch_size)

    def tta_views(self, num_views: int) -> TtaViews | None:
        """The views of ``--tta num_views`` for this run's model, None for 1.

        Raises:
            UsageError: not an image classifier, no flips or shifts in the run's recipe, or
                more views than it can make.
        """
        from dltrain.evaluation.tta import tta_views

        features = self.manifest.features
        shape = features.shape if isinstance(features, ImageFeatures) else None
        fill = 0.0
        if shape is not None:
            fill = min(self.manifest.preprocessing_as(ImagePreprocessing).pixel_range)
        augmentation = self.model_settings().get("augmentation")
        seed = self._recipe().get("seed", 0)
        return tta_views(
            num_views,
            task=self.task,
            image_shape=shape,
            augmentation=augmentation if isinstance(augmentation, dict) else None,
            fill=fill,
            seed=seed if isinstance(seed, int) else 0,
            run_name=self.run_dir.name,
        )

    def load_keras(self) -> keras.Model:
        """The saved Keras model, uncompiled: evaluation and prediction need no optimizer.

        Raises:
            RunError: the file cannot be loaded.
        """
        from dltrain.models.saving import load_model  # registers dltrain's custom layers first

        path = self.files.model
        try:
            model = load_model(path, compile=False)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise RunError(
                f"Cannot load {path} ({exc}). The file is damaged or was written by another "
                f"Keras version; train the run again."
            ) from None
        self._check_inputs(model)
        return model

    def _check_inputs(self, model: keras.Model) -> None:
        """Refuse a model whose raw inputs are not the ones this run's data describes.

        Raises:
            RunError: the file holds another run's model (copied over, or the run overwritten).
        """
        expected = self.model_input
        taken: object
        if isinstance(getattr(model, "input", None), dict):
            taken = sorted(model.input)
            keys = self.manifest.model_inputs({name: None for name, _ in expected.columns})
            wanted: object = sorted(keys)  # a table's input names (dltrain/input_names.py)
        elif expected.shape and len(getattr(model, "inputs", None) or []) == 1:
            taken = tuple(model.inputs[0].shape[1:])
            wanted = expected.shape
        else:
            return  # texts, and families whose model is not a plain functional one (GANs)
        if taken != wanted:
            raise RunError(
                f"{self.files.model} takes the inputs {taken}, but run {self.run_dir.name} was "
                f"trained on data whose inputs are {wanted}: the file holds another run's "
                f"model (copied or overwritten). Restore the run's own model.keras, or train "
                f"the run again."
            )


def open_run(run_dir: Path) -> RunModel:
    """Read a run folder's run.json and its data's manifest; the model is loaded on demand.

    The manifest (task, classes, input shape) is looked for in the run folder, then in the data
    folder run.json names, then in data/<recipe>/ next to the runs/ folder (a moved project).

    Raises:
        RunError: no model, an unreadable run.json, or no manifest anywhere.
    """
    files = RunFolder(run_dir)
    if not files.finished:
        raise RunError(
            f"Run folder {run_dir} holds no {MODEL_FILE}: its training did not finish (or this "
            f"is not a run folder). Train again with `dltrain train`, or pick another run."
        )
    info = files.read_info()
    recorded = info.data.folder if info.data is not None else None
    # The prepared data the run was trained on (with its splits) comes first; the run's own copy
    # of the manifest still describes the model's inputs when that data is gone.
    candidates: list[tuple[Path, Path | None]] = []
    if recorded:
        candidates.append((Path(recorded) / MANIFEST_FILE, Path(recorded)))
    recipe = info.recipe or run_dir.parent.name
    if len(run_dir.parents) >= 3:
        moved = data_dir(run_dir.parents[2], str(recipe))
        candidates.append((moved / MANIFEST_FILE, moved))
    candidates.append((files.manifest, None))
    unreadable: DataError | None = None
    problems: list[str] = []  # why each prepared-data folder could not be used, in order
    for path, folder in candidates:
        if not path.is_file():
            if folder is not None:
                problems.append(f"{folder} holds no prepared dataset (no {MANIFEST_FILE})")
            continue
        try:
            manifest = read_manifest(path)
        except DataError as exc:
            unreadable = unreadable or exc
            problems.append(exc.message)
            continue
        if folder is not None and manifest.source.fingerprint != info.data_fingerprint:
            problems.append(f"{folder} was prepared again from another source since")
            continue
        return RunModel(run_dir, info, manifest, folder, problems[0] if problems else "")
    if unreadable is not None:
        raise RunError(
            f"Run {run_dir} cannot be used: {unreadable.message} A model keeps the "
            f"preprocessing of the data it was trained on, so prepare the data again and train "
            f"a new run (`dltrain prepare --force`, then `dltrain train`)."
        )
    raise RunError(
        f"Run {run_dir} was trained on the prepared data in {recorded or 'an unknown folder'}, "
        f"whose manifest.json (class names, input shape) is gone or was rebuilt from another "
        f"source. Prepare the data again with the run's own recipe "
        f"(`dltrain prepare --recipe {files.recipe}`), or restore the folder."
    )
