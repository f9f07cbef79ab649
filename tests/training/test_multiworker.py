"""Training across machines: reading TF_CONFIG, and two real workers on localhost ports."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dltrain.errors import UsageError
from dltrain.training.device import read_cluster
from tests.conftest import RecipeWriter, invoke


def tf_config(cluster: dict[str, list[str]], task_type: str, index: int) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


def test_worker_zero_is_the_chief_unless_the_cluster_names_one() -> None:
    workers = {"worker": ["h1:1", "h2:1", "h3:1"]}
    first, third = (read_cluster(tf_config(workers, "worker", i)) for i in (0, 2))
    assert (first.num_workers, first.is_chief, third.is_chief) == (3, True, False)
    with_chief = {**workers, "chief": ["h0:1"]}
    chief, worker = (
        read_cluster(tf_config(with_chief, "chief", 0)),
        read_cluster(tf_config(with_chief, "worker", 0)),
    )
    assert (chief.num_workers, chief.is_chief, worker.is_chief) == (4, True, False)
    assert (worker.task_type, worker.task_index) == ("worker", 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1, 2]", 'a "cluster" mapping'),
        (json.dumps({"cluster": {"worker": "h1:1"}, "task": {"type": "worker"}}), "a list of"),
        (tf_config({"worker": ["h1:1"], "chief": ["a:1", "b:1"]}, "chief", 0), "2 chiefs"),
        (tf_config({"worker": ["h1:1"]}, "chief", 0), "not a member"),
        (tf_config({"worker": ["h1:1"], "evaluator": ["h2:1"]}, "worker", 0), "'evaluator'"),
    ],
)
def test_a_cluster_this_process_cannot_join_says_why(text: str, expected: str) -> None:
    with pytest.raises(UsageError, match="TF_CONFIG") as raised:
        read_cluster(text)
    assert expected in raised.value.message


def test_a_tuning_trial_is_refused_across_machines(monkeypatch: pytest.MonkeyPatch) -> None:
    from dltrain.training.multiworker import check_supported

    recipe = cnn_recipe(pace="epochs")
    check_supported(recipe, trial=True)  # no TF_CONFIG: nothing to refuse
    monkeypatch.setenv("TF_CONFIG", tf_config({"worker": ["h1:1", "h2:1"]}, "worker", 1))
    check_supported(recipe)
    with pytest.raises(UsageError, match="Unset TF_CONFIG for dltrain tune"):
        check_supported(recipe, trial=True)


def test_a_schedule_paced_by_each_workers_clock_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dltrain.training.multiworker import check_supported

    paced = cnn_recipe(pace="time_budget")
    check_supported(paced)  # one machine: one clock
    monkeypatch.setenv("TF_CONFIG", tf_config({"worker": ["h1:1", "h2:1"]}, "worker", 0))
    with pytest.raises(UsageError, match="own clock"):
        check_supported(paced)


def cnn_recipe(pace: str) -> Any:
    """What check_supported reads of a recipe: the family and the schedule's pace."""
    schedule = SimpleNamespace(pace=pace)
    return SimpleNamespace(
        model=SimpleNamespace(family="cnn"), train=SimpleNamespace(lr_schedule=schedule)
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def train_two_workers(folder: Path, scratch: Path) -> list[tuple[str, str]]:
    """``dltrain train --json`` in ``folder`` by two workers on localhost; their outputs."""
    scratch.mkdir()
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "dltrain", "train", "--json"],
            cwd=folder,
            env={
                **os.environ,
                "TF_CONFIG": tf_config(cluster, "worker", i),
                "TMPDIR": str(scratch),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outputs = [worker.communicate(timeout=150) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()  # a worker whose peer failed would wait for it forever
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    return outputs


@pytest.mark.slow  # two TensorFlow processes that must meet: about a minute on 2 cores
def test_two_workers_train_in_step_and_only_the_chief_writes_the_run(
    tmp_path: Path,
    idx_folder: Path,
    write_recipe: RecipeWriter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_recipe(idx_folder, train={"epochs": 2, "early_stopping": {"monitor": "val_loss"}})
    monkeypatch.chdir(tmp_path)
    assert invoke("prepare")[0] == 0
    scratch = tmp_path / "scratch"  # where the non-chief's private run folder goes, then goes
    outputs = train_two_workers(tmp_path, scratch)
    chief, other = (json.loads(out) for out, _ in outputs)

    assert chief["workers"] == {**other["workers"], "chief": True}
    assert other["workers"]["chief"] is False and other["run"] is None
    assert chief["workers"]["num_workers"] == 2
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):  # logs are all-reduced
        assert chief["final"][key] == other["final"][key], key
    (run,) = (tmp_path / "runs" / "tiny").iterdir()  # the other worker wrote nothing here
    assert Path(chief["run"]) == run and not list(scratch.iterdir())

    # the chief's saved model holds the weights both workers reported
    from dltrain.models.saving import load_model
    from dltrain.training.multiworker import weights_digest

    assert weights_digest(load_model(run / "model.keras")) == chief["workers"]["weights_sha256"]
    info: dict[str, Any] = json.loads((run / "run.json").read_text())
    assert info["distribution"]["num_workers"] == 2 and "2 workers" in info["device"]
    assert info["distribution"]["weights_sha256"] == chief["workers"]["weights_sha256"]
    with (run / "history.csv").open() as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert (run / "checkpoints" / "state.json").is_file()


@pytest.mark.slow  # two TensorFlow processes that must meet: about a minute on 2 cores
def test_two_workers_streaming_read_disjoint_shard_files_and_stay_in_step(
    tmp_path: Path,
    idx_folder: Path,
    write_recipe: RecipeWriter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_recipe(
        idx_folder,
        # 192 training images: 5 files; 48 validation images: 2 files, of 40 and 8
        data={"source": str(idx_folder), "shard_rows": 40},
        train={"epochs": 2, "input": "stream", "early_stopping": {"monitor": "val_loss"}},
    )
    monkeypatch.chdir(tmp_path)
    assert invoke("prepare")[0] == 0
    chief, other = (json.loads(out) for out, _ in train_two_workers(tmp_path, tmp_path / "s"))

    assert chief["workers"]["weights_sha256"] == other["workers"]["weights_sha256"]
    for key in ("loss", "val_loss"):  # all-reduced over both workers' batches
        assert chief["final"][key] == other["final"][key], key
    run = Path(chief["run"])
    recorded = json.loads((run / "run.json").read_text())["input"]
    assert (recorded["path"], recorded["shard_policy"]) == ("stream", "file")
    first, second = recorded["worker_shards"]
    assert recorded["train_shards"] == first  # the chief is worker 0 and read its own files
    splits = json.loads((run / "manifest.json").read_text())["splits"]
    shards = splits["train"]["shards"]
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(s["file"] for s in shards) and len(shards) == 5
    # validation too: each worker evaluated its own file, and the metrics summed both
    assert recorded["validation_policy"] == "file"
    first, second = recorded["worker_validation_shards"]
    assert recorded["validation_shards"] == first and not set(first) & set(second)
    assert sorted(first + second) == sorted(s["file"] for s in splits["validation"]["shards"])

    # the combined metrics are those of one process evaluating the whole split, same weights
    from dltrain.data.store import open_store
    from dltrain.models.saving import load_model

    x, y = open_store(tmp_path / "data" / "tiny").load_split("validation")
    alone = load_model(run / "model.keras").evaluate(x, y, batch_size=32, return_dict=True)
    with (run / "history.csv").open() as handle:
        best = list(csv.DictReader(handle))[chief["best"]["epoch"] - 1]  # the saved weights'
    for key in ("loss", "accuracy"):
        assert float(best[f"val_{key}"]) == pytest.approx(alone[key], rel=1e-5), key
