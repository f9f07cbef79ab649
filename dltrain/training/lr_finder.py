"""The learning-rate range test: sweep the rate up exponentially and watch the loss.

Leslie Smith's test (2017), as fastai's ``lr_find`` runs it: a copy of the model trains on
batches of the training split while the rate grows from ``start`` to ``end``; the sweep stops
once the (running) smoothed loss has risen to ``divergence_factor`` × its minimum.

The curve is then smoothed without lag (an exponential moving average run forwards and then
backwards), and two rates are read off it:

- **minimum ÷ 10**, the suggestion: a tenth of the rate where the loss was lowest, Smith's and
  fastai's original rule. It is the fastest rate that stays clear of the blow-up.
- **steepest descent**: where the loss falls fastest against log(rate), reported as the cautious
  alternative. The sweep also trains while it climbs, so the loss first falls fastest while the
  model is still fresh, which puts this point low, and it moves more from run to run. On the
  bundled MNIST demo (Adam, batch 64) it was 1e-4 to 1.5e-4 while minimum ÷ 10 was 0.0017 both
  times; three-epoch runs at 1.5e-4, 0.0017, 0.002 (the recipe's) and 0.017 reached 0.965,
  0.986, 0.988 and 0.990 validation accuracy (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dltrain.atomic import atomic_path, write_json_atomic
from dltrain.backend import keras, tf
from dltrain.data.store import PreparedDataset
from dltrain.errors import RecipeError
from dltrain.recipe import LoadedRecipe
from dltrain.recipe.schema import Recipe, TrainSpec
from dltrain.runs import runs_dir

# runs/<recipe>/lr-finder/, beside the recipe's runs (as tune/ is); it holds no model, so commands
# looking for a finished run pass it by.
FOLDER = "lr-finder"
PLOT_FILE = "lr_finder.png"
CURVE_FILE = "lr_finder.json"

StepCallback = Callable[[int, float, float], None]  # (step, learning rate, loss)
# Compiles the probe as its family trains, with an optimizer whose rate is a plain float.
ProbeCompiler = Callable[[keras.Model], None]


@dataclass(frozen=True)
class RangeTestSpec:
    """How the sweep runs.

    Defaults are fastai's range (1e-7 to 10); 200 steps, 25 per decade, give a readable curve
    in under a minute for small models on a CPU.
    """

    start_learning_rate: float = 1e-7
    end_learning_rate: float = 10.0
    num_steps: int = 200
    smoothing: float = 0.9  # EMA weight of the past, for both the stop rule and the curve
    divergence_factor: float = 4.0

    def __post_init__(self) -> None:
        if not 0 < self.start_learning_rate < self.end_learning_rate:
            raise ValueError(
                "The range test needs 0 < start_learning_rate < end_learning_rate. Received: "
                f"{self.start_learning_rate}, {self.end_learning_rate}"
            )
        if self.num_steps < 10:
            raise ValueError(f"`num_steps` must be >= 10. Received: {self.num_steps}")
        if not 0 <= self.smoothing < 1:
            raise ValueError(f"`smoothing` must be in [0, 1). Received: {self.smoothing}")
        if self.divergence_factor <= 1:
            raise ValueError(f"`divergence_factor` must be > 1. Received: {self.divergence_factor}")

    def rate_at(self, step: int) -> float:
        """The rate of sweep step ``step`` (0-based): exponential from start to end."""
        ratio = self.end_learning_rate / self.start_learning_rate
        return float(self.start_learning_rate * ratio ** (step / (self.num_steps - 1)))


@dataclass(frozen=True)
class RangeTestResult:
    """The curve and what it suggests."""

    learning_rates: list[float]
    losses: list[float]  # each batch's own loss, at that step's rate
    smoothed_losses: list[float]  # the lag-free smoothed curve the suggestions are read from
    stopped: str  # "completed", "diverged" (smoothed loss blew up) or "non_finite"
    minimum_learning_rate: float | None  # where the smoothed loss was lowest
    steepest_learning_rate: float | None  # where it fell fastest; None when it never fell

    @property
    def suggestion(self) -> float | None:
        """A tenth of the minimum's rate, or None when the loss never fell."""
        if self.minimum_learning_rate is None or self.steepest_learning_rate is None:
            return None
        return self.minimum_learning_rate / 10

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "suggestion": self.suggestion, "rule": "minimum / 10"}


def range_test(
    model: keras.Model,
    batches: Iterable[tuple[Any, Any]],
    *,
    compile_probe: ProbeCompiler,
    spec: RangeTestSpec,
    class_weight: dict[int, float] | None = None,
    on_step: StepCallback | None = None,
) -> RangeTestResult:
    """Run the LR range test on a copy of ``model``; the model itself is left untouched.

    Args:
        model: the (built) model to probe; its weights are copied, never changed.
        batches: at least ``spec.num_steps`` (examples, labels) batches of the training split.
        compile_probe: compiles the copy with the training loss and a fresh optimizer whose
            learning rate is a plain float, which the sweep sets.
        spec: the sweep.
        class_weight: as for ``model.fit``.
        on_step: called after each step with (step, rate, loss), for a progress display.

    Returns:
        The curve and the suggestions.
    """
    probe = keras.models.clone_model(model)
    probe.set_weights(model.get_weights())
    compile_probe(probe)
    rates: list[float] = []
    losses: list[float] = []
    average = 0.0
    best = math.inf
    stopped = "completed"
    for step, (x, y) in enumerate(batches):
        if step >= spec.num_steps:
            break
        rate = spec.rate_at(step)
        probe.optimizer.learning_rate = rate
        # Each batch's own loss: Keras reports the running mean over calls otherwise.
        probe.reset_metrics()
        logs = probe.train_on_batch(x, y, class_weight=class_weight, return_dict=True)
        value = float(logs["loss"])
        if on_step is not None:
            on_step(step, rate, value)
        if not math.isfinite(value):
            stopped = "non_finite"
            break
        rates.append(rate)
        losses.append(value)
        # The stop rule can only look back: a running (causal) average, bias-corrected.
        average = spec.smoothing * average + (1 - spec.smoothing) * value
        running = average / (1 - spec.smoothing ** (step + 1))
        best = min(best, running)
        if step > 0 and running > spec.divergence_factor * best:
            stopped = "diverged"
            break
    smoothed = smooth(losses, spec.smoothing)
    steepest, minimum = read_curve(rates, smoothed)
    return RangeTestResult(rates, losses, smoothed, stopped, minimum, steepest)


def smooth(values: list[float], beta: float) -> list[float]:
    """A bias-corrected exponential moving average run forwards, then backwards: no lag."""

    def ema(series: np.ndarray) -> np.ndarray:
        out = np.empty_like(series)
        average = 0.0
        for i, value in enumerate(series):
            average = beta * average + (1 - beta) * value
            out[i] = average / (1 - beta ** (i + 1))
        return out

    array = np.asarray(values, dtype="float64")
    if array.size == 0:
        return []
    return [float(v) for v in ema(ema(array)[::-1])[::-1]]


def read_curve(rates: list[float], smoothed: list[float]) -> tuple[float | None, float | None]:
    """The steepest-descent rate and the minimum's rate of a smoothed loss curve.

    The steepest descent is searched up to the minimum (beyond it the loss rises), skipping the
    first tenth of the curve, whose ends the smoothing leans on least.

    Returns:
        (steepest, minimum); both None when the loss never fell.
    """
    if len(rates) < 5:
        return None, None
    values = np.asarray(smoothed)
    lowest = int(np.argmin(values))
    skip = max(1, len(values) // 10)
    if lowest <= skip or values[lowest] >= values[0]:
        return None, None
    slopes = np.gradient(values, np.log10(np.asarray(rates)))
    steepest = skip + int(np.argmin(slopes[skip : lowest + 1]))
    if slopes[steepest] >= 0:
        return None, None
    return float(rates[steepest]), float(rates[lowest])


def plot_range_test(result: RangeTestResult, path: Path, title: str) -> Path:
    """Draw loss against learning rate (log axis) with the suggestions marked, as a PNG.

    The file is written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=110)
    try:
        axes.plot(result.learning_rates, result.losses, color="0.75", lw=0.8, label="batch loss")
        axes.plot(result.learning_rates, result.smoothed_losses, color="C0", lw=2, label="smoothed")
        marks = [
            (result.suggestion, "C3", "suggested (minimum ÷ 10)"),
            (result.steepest_learning_rate, "C1", "steepest descent"),
        ]
        for rate, colour, label in marks:
            if rate is not None:
                value = float(
                    np.interp(np.log(rate), np.log(result.learning_rates), result.smoothed_losses)
                )
                axes.plot([rate], [value], "o", color=colour, ms=8, label=f"{label}: {rate:.2g}")
        axes.set_xscale("log")
        if result.smoothed_losses:
            low = min(result.smoothed_losses)
            high = max(result.smoothed_losses[0], low) * 1.5
            axes.set_ylim(low - 0.05 * (high - low), high)
        axes.set_xlabel("learning rate")
        axes.set_ylabel("training loss")
        axes.set_title(title)
        axes.grid(True, which="major", alpha=0.3)
        axes.legend()
        figure.tight_layout()
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png")
    finally:
        plt.close(figure)
    return path


def finder_dir(workdir: Path, name: str) -> Path:
    """Where the range test of recipe ``name`` writes its plot and curve."""
    return runs_dir(workdir, name) / FOLDER


@dataclass(frozen=True)
class LrFinderReport:
    """Where the range test of a recipe wrote its plot and curve, and what it found."""

    recipe: str  # the recipe's name
    folder: Path
    plot: Path
    curve: Path
    result: RangeTestResult
    batch_size: int
    optimizer: str


def find_learning_rate(
    loaded: LoadedRecipe,
    workdir: Path,
    spec: RangeTestSpec,
    on_step: StepCallback | None = None,
) -> LrFinderReport:
    """Run the range test for a recipe's model, optimizer, loss and batch size on its data.

    The model's family decides what the sweep learns, as in training (training/hooks.py): an
    autoencoder's copy learns to reconstruct its input, a predictor's the data's target.
    Writes ``runs/<recipe>/lr-finder/lr_finder.png`` and ``lr_finder.json`` (replacing the
    previous test's). The recipe's schedule is not used: the sweep sets the rate itself.

    Args:
        loaded: the validated recipe.
        workdir: the folder holding data/ and runs/.
        spec: the sweep.
        on_step: progress hook, called with (step, rate, loss).

    Raises:
        DataError: no usable prepared dataset.
        RecipeError: a family the test cannot probe (a GAN), or a loss or class weighting that
            does not fit the data.
    """
    from dltrain.models import build_model, training_hooks
    from dltrain.models.io import ModelIO
    from dltrain.training.compile import CompileParts, class_weights
    from dltrain.training.losses import make_loss, on_target_scale
    from dltrain.training.optimizers import make_optimizer
    from dltrain.training.plan import open_prepared

    recipe = loaded.recipe
    train = recipe.train
    hooks = training_hooks(recipe.model)
    if hooks.range_test_reason is not None:
        raise RecipeError(
            f"The LR range test cannot probe recipe {loaded.path}'s {recipe.model.family} "
            f"model: {hooks.range_test_reason}. Expected a family that learns one loss (mlp, cnn, "
            f"rnn, text, transfer, autoencoder). Search its learning rates with `dltrain tune` "
            f"instead, or train a few epochs at the recipe's rates and compare."
        )
    dataset = open_prepared(loaded, workdir)
    manifest = dataset.manifest
    task = hooks.task(dataset)
    num_classes = manifest.num_classes if task.is_classification else None
    parts = CompileParts(
        optimizer=make_optimizer(train.optimizer, spec.start_learning_rate),
        loss=on_target_scale(
            make_loss(train.loss, task, num_classes, soft_labels=hooks.soft_labels),
            task,
            manifest,
        ),
        metrics=[],  # the sweep reads the loss alone
        class_weight=class_weights(
            train.class_weight, task, manifest, soft_labels=hooks.soft_labels
        ),
    )

    keras.utils.set_random_seed(recipe.seed)
    batches = sweep_batches(dataset, train, hooks.labels, recipe.seed)
    batches = hooks.batches(batches, manifest, training=True, seed=recipe.seed)
    model = build_model(recipe.model, ModelIO(manifest))
    result = range_test(
        model,
        batches.repeat(),
        compile_probe=lambda probe: hooks.compile(probe, parts, train),
        spec=spec,
        class_weight=parts.class_weight,
        on_step=on_step,
    )
    return write_range_test(finder_dir(workdir, recipe.name), recipe, spec, result)


def sweep_batches(
    dataset: PreparedDataset,
    train: TrainSpec,
    labels: Callable[[np.ndarray], np.ndarray],
    seed: int,
) -> tf.data.Dataset:
    """The training split's batches, shuffled, in memory or streamed as ``train.input`` says."""
    from dltrain.data.pipeline import make_dataset
    from dltrain.data.streaming import InputPath, StreamRequest, choose_input, stream_split

    if choose_input(dataset, train.input)[0] is InputPath.STREAM:
        request = StreamRequest(
            split="train", batch_size=train.batch_size, shuffle=True, seed=seed, labels=labels
        )
        return stream_split(dataset, request)
    x, y = dataset.load_split("train")
    x = dataset.manifest.model_inputs(x)  # keyed as the model's inputs are
    return make_dataset(x, labels(y), train.batch_size, shuffle=True, seed=seed)


def write_range_test(
    folder: Path, recipe: Recipe, spec: RangeTestSpec, result: RangeTestResult
) -> LrFinderReport:
    """Write the range test's plot and curve into ``folder``, replacing an earlier test's.

    Args:
        folder: the recipe's lr-finder folder (``finder_dir``).
        recipe: the recipe tested (its name, optimizer and batch size label the files).
        spec: the sweep.
        result: the curve and its suggestions.

    Returns:
        Where the files are, and the result.
    """
    train = recipe.train
    folder.mkdir(parents=True, exist_ok=True)
    title = (
        f"LR range test · {recipe.name} · {train.optimizer.name.value}, batch {train.batch_size}"
    )
    plot = plot_range_test(result, folder / PLOT_FILE, title)
    curve = folder / CURVE_FILE
    write_json_atomic(
        curve,
        {
            "recipe": recipe.name,
            "optimizer": train.optimizer.name.value,
            "batch_size": train.batch_size,
            "sweep": asdict(spec),
            **result.to_json(),
        },
    )
    return LrFinderReport(
        recipe=recipe.name,
        folder=folder,
        plot=plot,
        curve=curve,
        result=result,
        batch_size=train.batch_size,
        optimizer=train.optimizer.name.value,
    )
