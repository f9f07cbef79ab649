"""``train.calibration: temperature``: once training ends, fit one temperature on the validation
split and save the model with it as its last layer (evaluation/calibration.py), recording T in
run.json."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dltrain.backend import keras
from dltrain.errors import RecipeError
from dltrain.evaluation.calibration import fit_temperature, temperature_of, with_temperature
from dltrain.recipe.schema import Calibration, TrainSpec
from dltrain.run_info import CalibrationInfo
from dltrain.tasks import Task

if TYPE_CHECKING:  # plan.py calls check_calibration
    from dltrain.training.plan import RunPlan

CALIBRATION_SPLIT = "validation"


def check_calibration(spec: TrainSpec, task: Task, family: str) -> None:
    """Refuse calibration of a model that answers no class probabilities.

    Args:
        spec: the training settings.
        task: what the model learns.
        family: the model family, for the message.

    Raises:
        RecipeError: ``train.calibration`` set for a regression, forecasting, autoencoder or
            GAN model.
    """
    if spec.calibration is Calibration.NONE or task in (Task.BINARY, Task.MULTICLASS):
        return
    raise RecipeError(
        f"`train.calibration` is {spec.calibration.value}, but this {family} model learns a "
        f"{task.value} task: temperature scaling calibrates a classifier's class probabilities, "
        f"and this model answers none. Remove train.calibration (or set it to none)."
    )


def calibrate(plan: RunPlan, model: keras.Model) -> tuple[keras.Model, CalibrationInfo | None]:
    """The model to save: with a fitted temperature when the recipe asks for one.

    T minimises the log loss on the validation split (the split early stopping watched, never
    the test split). A model that already holds a temperature (a resumed run finishing) is
    returned as it is.

    Args:
        plan: the run's plan (its settings and prepared data).
        model: the trained classifier.

    Returns:
        The model (calibrated or not), and what run.json records of the fit; None when none.
    """
    if plan.spec.calibration is Calibration.NONE or temperature_of(model) is not None:
        return model, None
    from dltrain.evaluation.predict import predict_batches

    dataset = plan.dataset
    x, y = dataset.load_split(CALIBRATION_SPLIT)
    outputs = predict_batches(model, dataset.manifest.model_inputs(x), plan.spec.batch_size)
    fit = fit_temperature(outputs, y)
    info = CalibrationInfo(
        method=plan.spec.calibration.value,
        temperature=round(fit.temperature, 6),
        fitted_on=CALIBRATION_SPLIT,
        num_examples=fit.num_examples,
        log_loss_before=round(fit.log_loss_before, 6),
        log_loss_after=round(fit.log_loss_after, 6),
    )
    return with_temperature(model, info.temperature), info
