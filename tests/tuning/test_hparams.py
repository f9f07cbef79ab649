"""A study in TensorBoard's HParams tab, read back with TensorBoard's own event reader."""

from __future__ import annotations

from pathlib import Path

import optuna
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata

from dltrain.tuning.hparams import write_hparams


def read(folder: Path) -> EventAccumulator:
    events = EventAccumulator(str(folder))
    events.Reload()
    return events


def study_of_three() -> optuna.Study:
    """A completed trial with two epochs, a pruned one, a failed one."""
    study = optuna.create_study(direction="maximize")
    for number in range(3):
        trial = study.ask()
        trial.suggest_float("train.optimizer.learning_rate", 1e-4, 1.0, log=True)
        trial.suggest_categorical("model.filters", ["[4, 8]", "[8]", "[4]"])
        if number == 0:
            trial.report(0.5, 1)
            trial.report(0.75, 2)
            study.tell(trial, 0.75)
        elif number == 1:
            trial.report(0.25, 1)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return study


def test_each_finished_or_pruned_trial_is_an_hparams_run_with_its_objective_curve(
    tmp_path: Path,
) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = study_of_three()
    folder = tmp_path / "tensorboard"
    params = ["train.optimizer.learning_rate", "model.filters"]
    written = write_hparams(study.trials, params, "val_accuracy", folder)
    assert written == 2  # the failed trial is left out
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["trial-0", "trial-1"]

    root = read(folder).PluginTagToContent(metadata.PLUGIN_NAME)
    (config,) = root.values()
    experiment = metadata.parse_experiment_plugin_data(config)
    assert [h.name for h in experiment.hparam_infos] == params
    assert [m.name.tag for m in experiment.metric_infos] == ["val_accuracy"]

    trial = read(folder / "trial-0")
    (start,) = trial.PluginTagToContent(metadata.PLUGIN_NAME).values()
    hparams = metadata.parse_session_start_info_plugin_data(start).hparams
    drawn = study.trials[0].params
    assert hparams["train.optimizer.learning_rate"].number_value == drawn[params[0]]
    assert hparams["model.filters"].string_value == drawn["model.filters"]
    curve = [
        (e.step, round(float(e.tensor_proto.float_val[0]), 4))
        for e in trial.Tensors("val_accuracy")
    ]
    assert curve == [(1, 0.5), (2, 0.75)]
    pruned = read(folder / "trial-1")
    assert [e.step for e in pruned.Tensors("val_accuracy")] == [1]


def test_writing_again_replaces_what_was_there(tmp_path: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = tmp_path / "tensorboard"
    (folder / "trial-9").mkdir(parents=True)
    write_hparams(study_of_three().trials, ["model.filters"], "val_accuracy", folder)
    assert not (folder / "trial-9").exists()
