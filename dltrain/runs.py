"""Where commands find each other's outputs: run and data folders, and the files in them.

``data/<recipe>/`` holds a prepared dataset, ``runs/<recipe>/<run id>/`` one training run. Run ids
sort by creation time, so the latest run is the last one in name order. Every file name of a run
folder is defined here, once, and ``RunFolder`` joins them to a folder; ``StudyFolder`` does the
same for a tune study's folder.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dltrain.atomic import read_json, remove_stale_partials, write_json_atomic
from dltrain.errors import (
    RecipeError,
    RunError,
)
from dltrain.recipe.files import DEFAULT_RECIPE

if TYPE_CHECKING:
    from dltrain.recipe import LoadedRecipe
    from dltrain.run_info import RunInfo

# run_info.py (pydantic models: ~80 ms to build) loads only where a run.json is read, so the
# commands' --help, which import this module for its names, stay quick.

# The files and folders of a run, as `dltrain train` and `dltrain evaluate` write them.
RECIPE_FILE = "recipe.yaml"  # the fully resolved recipe, written before training starts
RUN_INFO_FILE = "run.json"  # status, versions, seed, data fingerprint, best epoch
MODEL_FILE = "model.keras"  # written last: a run holding it finished
HISTORY_FILE = "history.csv"  # one row per epoch
CURVES_FILE = "learning_curves.png"  # drawn from history.csv
SUMMARY_FILE = "model_summary.txt"
MANIFEST_FILE = "manifest.json"  # the prepared data's manifest; train keeps a copy in the run
CHECKPOINTS = "checkpoints"  # epoch-NNNN.keras, best.keras and state.json
STATE_FILE = "state.json"
BEST_FILE = "best.keras"
TENSORBOARD = "tensorboard"
SAMPLES = "samples"  # a GAN's sample grids
METRICS_FILE = "metrics.json"  # the test split's metrics, the one CI reads
THRESHOLD_FILE = "threshold.json"  # a binary classifier's chosen decision threshold
PLOTS = "plots"  # plots/<split or data label>/*.png
EXPORT_DIR = "export"
FOLDS_DIR = "folds"  # a cross-validated run's folds: folds/fold-<k>/, each a run folder
CROSS_VALIDATION_FILE = "cross_validation.json"  # its folds' held-out metrics, mean ± sd
MODEL_CARD_FILE = "MODEL_CARD.md"  # evaluate --format model-card
# A tune study's folder, runs/<recipe>/tune/<study>/, and its trials.
TUNE_DIR = "tune"
SUMMARY_JSON = "summary.json"
TRIALS_CSV = "trials.csv"
BEST_RECIPE_FILE = "best.yaml"
# What reading a run (evaluate, predict, export) needs of the recipe it saved.
RUN_READING_SECTIONS = ("name", "seed", "data", "evaluate")


def metrics_file(label: str) -> str:
    """metrics.json for the test split (the one CI reads), metrics-<label>.json otherwise."""
    return METRICS_FILE if label == "test" else f"metrics-{label}.json"


def report_file(label: str) -> str:
    """report.md for the test split, report-<label>.md otherwise (beside its metrics file)."""
    return "report.md" if label == "test" else f"report-{label}.md"


@dataclass(frozen=True)
class RunFolder:
    """One run folder, ``runs/<recipe>/<run id>/``, and the path of every file in it.

    Example:
        >>> RunFolder(Path("runs/mnist/20260101-120000-ab12")).metrics("validation").name
        'metrics-validation.json'
    """

    path: Path

    @property
    def recipe(self) -> Path:
        return self.path / RECIPE_FILE

    @property
    def info(self) -> Path:
        return self.path / RUN_INFO_FILE

    @property
    def model(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def history(self) -> Path:
        return self.path / HISTORY_FILE

    @property
    def learning_curves(self) -> Path:
        return self.path / CURVES_FILE

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def state(self) -> Path:
        return self.checkpoints / STATE_FILE

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / BEST_FILE

    def checkpoint(self, epoch: int) -> Path:
        """The checkpoint written after ``epoch`` (counted from 1)."""
        return self.checkpoints / f"epoch-{epoch:04d}.keras"

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD

    @property
    def samples(self) -> Path:
        return self.path / SAMPLES

    @property
    def threshold(self) -> Path:
        return self.path / THRESHOLD_FILE

    def metrics(self, label: str = "test") -> Path:
        """The metrics of an evaluation on ``label`` (a split, or ``data-<name>``)."""
        return self.path / metrics_file(label)

    @property
    def model_card(self) -> Path:
        return self.path / MODEL_CARD_FILE

    def report(self, label: str = "test") -> Path:
        """The Markdown report of an evaluation on ``label``."""
        return self.path / report_file(label)

    def plots(self, label: str | None = None) -> Path:
        """``plots/``, or ``plots/<label>/`` holding one evaluation's plots."""
        return self.path / PLOTS if label is None else self.path / PLOTS / label

    @property
    def export(self) -> Path:
        return self.path / EXPORT_DIR

    @property
    def cross_validation(self) -> Path:
        return self.path / CROSS_VALIDATION_FILE

    def fold(self, number: int) -> Path:
        """The run folder of fold ``number`` (1-based) of a cross-validated run."""
        return self.path / FOLDS_DIR / f"fold-{number}"

    @property
    def finished(self) -> bool:
        """Whether training finished: the model is written last."""
        return self.model.is_file()

    @property
    def resumable(self) -> bool:
        """Whether training stopped before its end but left a checkpoint to continue or finish
        from: no model yet, or a model whose run.json was never completed (a kill between the
        two), which ``train --resume`` completes."""
        if not self.state.is_file():
            return False
        if not self.finished:
            return True
        from dltrain.run_info import RunStatus

        try:
            status = self.read_info().status
        except RunError:
            return False
        return status in (RunStatus.RUNNING, RunStatus.INTERRUPTED)

    @property
    def is_tune_trial(self) -> bool:
        """Whether ``dltrain tune`` trained this run (its run.json has a ``tune`` entry)."""
        try:
            return self.read_info().is_tune_trial
        except RunError:
            return False  # no readable run.json: not known to be a trial

    def read_info(self) -> RunInfo:
        """The run's record, run.json (run_info.py).

        Raises:
            RunError: run.json is missing, not JSON, or not a run record.
        """
        from dltrain.run_info import RunInfo

        try:
            document = read_json(self.info)
        except (OSError, ValueError) as exc:
            raise RunError(
                f"{self.info} is missing or unreadable ({exc}). Every run folder written by "
                f"`dltrain train` has one; train the run again."
            ) from None
        return RunInfo.from_json(document, self.info)

    def write_info(self, info: RunInfo) -> None:
        """Write the run's record to run.json atomically."""
        write_json_atomic(self.info, info.to_json())

    def load_recipe(
        self, overrides: Sequence[tuple[str, Any]] = (), cwd: Path | None = None
    ) -> LoadedRecipe:
        """The recipe the run saved, or, if it no longer validates (another dltrain version
        wrote it), the parts reading a run needs: name, seed, data and evaluate.

        Args:
            overrides: ``(dotted.key, value)`` pairs from flags and ``--set``.
            cwd: the working directory for command-line paths.

        Raises:
            RecipeError: not even those parts validate; the message is the whole recipe's.
        """
        # the recipe package builds every pydantic model: only commands that read a recipe pay
        from dltrain.recipe.load import load_recipe_dict, read_recipe_yaml

        saved = read_recipe_yaml(self.recipe)
        try:
            return load_recipe_dict(saved, self.recipe, overrides, cwd)
        except RecipeError as original:
            kept = {k: v for k, v in saved.items() if k in RUN_READING_SECTIONS}
            try:
                return load_recipe_dict(kept, self.recipe, overrides, cwd)
            except RecipeError:
                raise original from None


@dataclass(frozen=True)
class StudyFolder:
    """One tune study's folder, ``runs/<recipe>/tune/<study>/``, and the files tune writes."""

    path: Path

    @property
    def base_recipe(self) -> Path:
        """The resolved recipe every trial starts from (its overrides applied on top)."""
        return self.path / RECIPE_FILE

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY_JSON

    @property
    def trials_csv(self) -> Path:
        return self.path / TRIALS_CSV

    @property
    def best_recipe(self) -> Path:
        """The recipe with the best trial's values, ready for `dltrain train`."""
        return self.path / BEST_RECIPE_FILE

    @property
    def trials(self) -> Path:
        return self.path / "trials"

    @property
    def mlflow(self) -> Path:
        """The study's MLflow parent run (``train.tracking: mlflow``; tracking/study.py)."""
        return self.path / "mlflow.json"

    @property
    def hparams(self) -> Path:
        """The study as TensorBoard HParams events (tuning/hparams.py)."""
        return self.path / "tensorboard"

    def trial(self, number: int) -> Path:
        """Trial ``number``'s folder: trial.json (its spec), result.json and train.log."""
        return self.trials / f"{number:05d}"

    def trial_spec(self, number: int) -> Path:
        return self.trial(number) / "trial.json"

    def trial_result(self, number: int) -> Path:
        return self.trial(number) / "result.json"

    def trial_log(self, number: int) -> Path:
        return self.trial(number) / "train.log"

    def standby_log(self, slot: int) -> Path:
        """Where a trial process waiting for its spec logs, until the trial's own log takes over."""
        return self.trials / f"standby-{slot}.log"


def data_dir(workdir: Path, name: str) -> Path:
    """The prepared dataset of recipe ``name``."""
    return workdir / "data" / name


def runs_dir(workdir: Path, name: str) -> Path:
    """The folder holding every run of recipe ``name``."""
    return workdir / "runs" / name


def new_run_dir(workdir: Path, name: str) -> Path:
    """Create a fresh, uniquely named run folder and return it."""
    return new_run_in(runs_dir(workdir, name))


def new_run_in(root: Path) -> Path:
    """Create a fresh, uniquely named run folder in ``root`` (a recipe's runs) and return it."""
    root.mkdir(parents=True, exist_ok=True)
    while True:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        path = root / f"{stamp}-{secrets.token_hex(2)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def is_tune_trial(run_dir: Path) -> bool:
    """Whether a run folder is a ``dltrain tune`` trial (its run.json has a ``tune`` entry)."""
    return RunFolder(run_dir).is_tune_trial


def run_folders(root: Path, include_trials: bool = False) -> tuple[list[Path], int]:
    """The run folders under ``root`` in creation order, and how many tune trials were left out."""
    runs = sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []
    if include_trials:
        return runs, 0
    kept = [p for p in runs if not is_tune_trial(p)]
    return kept, len(runs) - len(kept)


def _trials_note(skipped: int) -> str:
    if not skipped:
        return ""
    return (
        f" {skipped} tune trial run(s) there were left out: a trial is not your latest run; "
        f"name one with --run PATH."
    )


def latest_run(workdir: Path, name: str, *, include_trials: bool = False) -> Path:
    """The newest run of recipe ``name`` that finished with a saved model.

    Tune trials (``dltrain tune`` trains many into the same folder) are skipped unless
    ``include_trials``: "the latest run" means the user's latest ``dltrain train``.

    Raises:
        RunError: the recipe has no finished run.
    """
    root = runs_dir(workdir, name)
    runs, skipped = run_folders(root, include_trials)
    finished = [p for p in runs if RunFolder(p).finished]
    if not finished:
        started = [p for p in runs if RunFolder(p).info.is_file()]  # not tune/, lr-finder/
        found = f" ({len(started)} run(s) there, none with a saved model)" if started else ""
        raise RunError(
            f"No finished run of recipe '{name}' under {root}{found}.{_trials_note(skipped)} "
            f"evaluate needs a trained model: run `dltrain train` first, or name a run folder "
            f"with --run PATH."
        )
    return finished[-1]


def latest_unfinished_run(workdir: Path, name: str, *, include_trials: bool = False) -> Path:
    """The newest run of recipe ``name`` that stopped before finishing but left a checkpoint.

    Passed by: tune trials unless ``include_trials`` (a cut-short trial is run again by tune);
    diverged runs, which resumed as they were diverge again; and runs still training, in a
    process alive on this machine or on another machine (no telling whether it is). Each is
    taken up only when named with ``--run``.

    Raises:
        RunError: there is none.
    """
    root = runs_dir(workdir, name)
    runs, _ = run_folders(root, include_trials)
    passed_by: dict[str, list[Path]] = {"diverged": [], "still training": []}
    resumable: list[Path] = []
    for path in runs:
        files = RunFolder(path)
        if not files.resumable:
            continue
        reason = _passed_by(files)
        if reason is None:
            resumable.append(path)
        else:
            passed_by[reason].append(path)
    if not resumable:
        notes = "".join(
            f" {len(left)} {why} run(s) there were left out (the newest: {left[-1]}); resume "
            f"one anyway with --run PATH."
            for why, left in passed_by.items()
            if left
        )
        raise RunError(
            f"No unfinished run of recipe '{name}' to resume under {root}: every run there either "
            f"finished or stopped before its first epoch ended.{notes} Start one with "
            f"`dltrain train`."
        )
    return resumable[-1]


def _passed_by(files: RunFolder) -> str | None:
    """Why a plain ``--resume`` passes an unfinished run by; None when it may take it up."""
    from dltrain.run_info import RunStatus

    try:
        info = files.read_info()
    except RunError:
        return None  # resuming it says what is wrong with its record
    if info.status is RunStatus.DIVERGED:
        return "diverged"
    if info.current_status is RunStatus.RUNNING and info.owner is not None:
        return "still training"  # alive here, or on another machine: no telling
    return None


def resolve_path(given: Path, workdir: Path) -> Path:
    """A run folder given on the command line, read from the working directory.

    Raises:
        RunError: it does not exist.
    """
    path = given if given.is_absolute() else workdir / given
    if not path.is_dir():
        raise RunError(
            f"Run folder {given} does not exist. Expected a folder written by `dltrain train`, "
            f"such as runs/<recipe>/<run id>/."
        )
    return path


def resolve_recipe_and_run(
    recipe: str | None,
    run: Path | None,
    workdir: Path,
    overrides: Sequence[tuple[str, Any]] = (),
) -> tuple[LoadedRecipe, Path]:
    """The recipe and the run a run-reading command (evaluate, predict, export) works on.

    The recipe is ``recipe``, else ``dltrain.yaml`` in ``workdir``, else (when ``run`` names a
    run) the resolved recipe saved in that run, so ``dltrain evaluate --run runs/x/<id>`` works
    from any folder. The run is ``run``, else the recipe's latest finished run.

    Args:
        recipe: ``--recipe`` as typed, or ``None``.
        run: ``--run`` as typed (relative to ``workdir``), or ``None``.
        workdir: the folder holding data/ and runs/.
        overrides: ``(dotted.key, value)`` pairs from flags and ``--set``, applied in order.

    Returns:
        The loaded recipe and the run folder.

    Raises:
        RecipeError: no recipe anywhere, or one that does not validate.
        RunError: no such run, or one without a model.
    """
    if recipe is None and run is not None and not (workdir / DEFAULT_RECIPE).is_file():
        saved = RunFolder(resolve_path(run, workdir))
        if saved.recipe.is_file():
            loaded = saved.load_recipe(overrides, workdir)
            return loaded, resolve_run(saved.path, workdir, loaded.recipe.name)
    from dltrain.recipe.load import find_recipe, load_recipe

    loaded = load_recipe(find_recipe(recipe, workdir), overrides, workdir)
    return loaded, resolve_run(run, workdir, loaded.recipe.name)


def resolve_run(given: Path | None, workdir: Path, name: str) -> Path:
    """The run the user named with ``--run``, or the latest run of the recipe.

    Raises:
        RunError: the named folder does not exist or holds no model.
    """
    if given is None:
        return latest_run(workdir, name)
    path = given if given.is_absolute() else workdir / given
    if not path.is_dir():
        raise RunError(
            f"Run folder {given} does not exist. Expected a folder written by `dltrain train`, "
            f"such as runs/{name}/<run id>/; list them with `ls {runs_dir(workdir, name)}`."
        )
    if not RunFolder(path).finished:
        raise RunError(
            f"Run folder {given} holds no {MODEL_FILE}: its training did not finish. Train again "
            f"with `dltrain train`, or pick another run."
        )
    return path


# What `dltrain train` writes in a run folder, and so may find half-written there.
TRAIN_FILES = (
    RECIPE_FILE,
    RUN_INFO_FILE,
    MODEL_FILE,
    HISTORY_FILE,
    CURVES_FILE,
    SUMMARY_FILE,
    MANIFEST_FILE,
)


def remove_stale_run_partials(workdir: Path, name: str) -> list[Path]:
    """Delete what killed ``dltrain train`` processes of recipe ``name`` left half-written in
    its runs: temporaries of a run's own files, its checkpoints and a GAN's samples.

    Evaluate's and export's files in the same folders are theirs to clean; see
    ``remove_stale_partials`` for which temporaries count as left behind.
    """
    root = runs_dir(workdir, name)
    removed: list[Path] = []
    for run in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        removed += remove_stale_partials(run, TRAIN_FILES)
        removed += remove_stale_partials(run / CHECKPOINTS)
        removed += remove_stale_partials(run / SAMPLES)
    return removed
