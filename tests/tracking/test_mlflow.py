"""MLflow tracking, read back with MLflow's own client from the embedded SQLite store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dltrain.errors import UsageError
from dltrain.tracking import default_uri, parse_track, require_mlflow
from dltrain.tracking.evaluation import evaluation_metrics, label_of
from tests.conftest import RecipeWriter, invoke

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

from dltrain.tracking.mlflow_run import MlflowRun  # noqa: E402


def test_track_flag_parses_the_store_and_refuses_anything_else() -> None:
    assert parse_track("mlflow") == ("mlflow", None)
    assert parse_track("mlflow:http://127.0.0.1:5000") == ("mlflow", "http://127.0.0.1:5000")
    for bad in ("wandb", "mlflow:", "MLflow"):
        with pytest.raises(UsageError, match="expected `mlflow`"):
            parse_track(bad)


def test_missing_mlflow_is_a_usage_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UsageError, match=r"pip install 'dltrain\[mlflow\]'"):
        require_mlflow()


def test_evaluation_metrics_are_the_documents_numbers_under_the_label() -> None:
    document = {
        "schema_version": 3,
        "num_examples": 60,
        "passed": True,
        "metrics": {"accuracy": 0.75, "per_class": [{"class": "a", "recall": 1.0}]},
        "baselines": {"prior": {"accuracy": 0.33}},
    }
    assert evaluation_metrics(document, "test") == {
        "test.num_examples": 60.0,
        "test.accuracy": 0.75,
        "test.baselines.prior.accuracy": 0.33,
    }
    assert label_of(Path("run/metrics.json")) == "test"
    assert label_of(Path("run/metrics-validation.json")) == "validation"


def test_a_run_reads_back_its_params_metrics_and_artifacts(tmp_path: Path) -> None:
    run = MlflowRun.start(None, tmp_path, "exp", "run-1", {"dltrain.run_dir": "x"})
    assert run.ref is not None and run.ref.tracking_uri == default_uri(tmp_path)
    run.log_params({f"p{i}": i for i in range(150)} | {"layers": [4, 8]})  # two batches
    for step in range(3):
        run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    (tmp_path / "note.txt").write_text("hi")
    run.log_artifact(tmp_path / "note.txt", "files")
    run.end()
    assert run.warnings == []
    client = MlflowClient(run.ref.tracking_uri)
    read = client.get_run(run.ref.run_id)
    assert read.info.status == "FINISHED" and read.info.run_name == "run-1"
    assert len(read.data.params) == 151 and read.data.params["layers"] == "[4, 8]"
    history = client.get_metric_history(run.ref.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5), (2, 1.0 / 3)]
    assert [a.path for a in client.list_artifacts(run.ref.run_id, "files")] == ["files/note.txt"]
    assert (tmp_path / "mlartifacts").is_dir()  # the embedded store's artifacts sit beside it


def test_a_store_that_is_down_is_one_warning_and_no_error(tmp_path: Path) -> None:
    started = time.perf_counter()
    run = MlflowRun.start("http://127.0.0.1:9", tmp_path, "exp", "run-1")
    run.log_metrics({"loss": 1.0}, step=0)
    run.end()
    (warning,) = run.warnings
    assert "could not start a run at http://127.0.0.1:9" in warning
    assert "The run itself goes on" in warning
    assert time.perf_counter() - started < 30  # not minutes of retries


@pytest.mark.slow
def test_train_then_evaluate_log_to_one_mlflow_run(
    tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_recipe(idx_folder, train={"epochs": 2})
    monkeypatch.chdir(tmp_path)
    assert invoke("prepare")[0] == 0
    code, _, err = invoke("train", "--track", "mlflow")
    assert code == 0, err
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    ref = json.loads((run_dir / "run.json").read_text())["mlflow"]
    assert ref["tracking_uri"] == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    client = MlflowClient(ref["tracking_uri"])
    run = client.get_run(ref["run_id"])
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "tiny"
    assert run.data.params["train.epochs"] == "2" and run.data.params["model.family"] == "cnn"
    for name in ("loss", "val_loss", "accuracy", "learning_rate", "epoch_seconds"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == [0, 1]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.keras", "learning_curves.png", "history.csv", "run.json"} <= artifacts

    code, _, err = invoke("evaluate", "--format", "model-card")  # no --track: run.json says
    assert code == 0, err
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    logged = client.get_run(ref["run_id"]).data.metrics
    assert logged["test.accuracy"] == pytest.approx(metrics["accuracy"])
    evaluated = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation/test")}
    assert {"evaluation/test/metrics.json", "evaluation/test/MODEL_CARD.md"} <= evaluated
    assert len(client.search_runs([run.info.experiment_id])) == 1  # the same run, not a new one


@pytest.mark.slow
def test_tune_logs_each_trial_as_a_child_of_the_study_run(
    tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = {"train.optimizer.learning_rate": {"log_uniform": [1.0e-3, 1.0e-2]}}
    write_recipe(idx_folder, tune={"pruner": "none", "space": space})
    monkeypatch.chdir(tmp_path)
    assert invoke("prepare")[0] == 0
    code, out, err = invoke("tune", "--track", "mlflow", "--trials", "2", "--json")
    assert code == 0, err
    parent = json.loads((tmp_path / "runs/tiny/tune/tiny/mlflow.json").read_text())
    client = MlflowClient(parent["tracking_uri"])
    children = client.search_runs(
        [parent["experiment_id"]], f"tags.mlflow.parentRunId = '{parent['run_id']}'"
    )
    assert sorted(r.info.run_name for r in children) == ["trial 0", "trial 1"]
    drawn = {t["number"]: t["params"] for t in json.loads(out)["trials"]}
    for child in children:
        number = int(child.data.tags["dltrain.trial"])
        rate = float(child.data.params["train.optimizer.learning_rate"])
        assert rate == pytest.approx(drawn[number]["train.optimizer.learning_rate"])
        assert len(client.get_metric_history(child.info.run_id, "val_accuracy")) == 1
    study = client.get_run(parent["run_id"])
    assert study.info.status == "FINISHED" and "best_val_accuracy" in study.data.metrics
    logged = {a.path for a in client.list_artifacts(parent["run_id"], "study")}
    assert {"study/summary.json", "study/trials.csv", "study/best.yaml"} <= logged
    # the same study in TensorBoard's HParams tab, read back with TensorBoard's event reader
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for number in (0, 1):
        events = EventAccumulator(str(tmp_path / f"runs/tiny/tune/tiny/tensorboard/trial-{number}"))
        events.Reload()
        assert events.PluginTagToContent("hparams")
        assert len(events.Tensors("val_accuracy")) == 1
