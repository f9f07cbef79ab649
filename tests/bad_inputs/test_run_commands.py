"""Misusing the commands that read runs and prepared data: evaluate, export, runs, find-lr,
train and tune, on damaged run folders and with flags that do not fit.

The cases run in a copy of the trained fixture project: a failed command must leave every run
(model, record, history), every prepared dataset and every earlier output as it was.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.bad_inputs.corpus import (
    RUN_ID,
    Case,
    case,
    check,
    copy_run,
    in_run,
    model_of,
    model_without_config,
    other_version,
    params,
    run_folder,
    write,
)
from tests.conftest import invoke

HOUSE = "house_id,rooms,area,district,price\n"
TUNED = "tune:\n  space:\n    model.dropout: {uniform: [0.1, 0.5]}\n"


def prepared_again(project: Path) -> None:
    """Prepare data/tiny/ again in the copy, so train and find-lr find data made from the copy's
    own source (the template's was made from the template's)."""
    with contextlib.chdir(project):
        code, _, err = invoke("prepare", "--force")
    assert code == 0, err


def evaluated(project: Path) -> None:
    """An earlier evaluation's metrics.json in the latest tiny run, for runs --metric."""
    (run_folder(project) / "metrics.json").write_text(
        json.dumps({"task": "multiclass", "metrics": {"accuracy": 0.9, "f1_macro": 0.8}})
    )


EVALUATE = [
    case(
        "gate with a misspelt metric",
        "evaluate --require acuracy>=0.9",
        "`acuracy`",
        "Did you mean `accuracy`?",
    ),
    case(
        "gate for a class the model lacks",
        "evaluate --require recall[zebra]>=0.5",
        "class 'zebra'",
        "Its classes: 0, 1, 2",
    ),
    case(
        "gate that does not parse",
        "evaluate --require accuracy=>0.9",
        "'accuracy=>0.9'",
        "Expected `metric OP number`",
    ),
    case(
        "--baseline missing",
        "evaluate --baseline runs/tiny/nope",
        "runs/tiny/nope",
        "`dltrain runs` lists them",
    ),
    case(
        "--baseline not a run",
        "evaluate --baseline raw",
        ["raw holds no model.keras"],
        "pick another run",
    ),
    case(
        "--baseline the runs folder",
        "evaluate --baseline runs/house",
        ["runs/house holds no model.keras"],
        "pick another run",
    ),
    case(
        "--optimize-threshold for three classes",
        "evaluate --optimize-threshold f1",
        ["--optimize-threshold", "multiclass model with 3 classes"],
        "Drop --optimize-threshold",
    ),
    case(
        "--optimize-threshold f2",
        "evaluate -r bin.yaml --optimize-threshold f2",
        "'f2'",
        "Expected one of: f1, accuracy",
    ),
    case(
        "--optimize-threshold beyond 1",
        "evaluate -r bin.yaml --optimize-threshold recall@precision=2",
        "'recall@precision=2'",
        "bounds between 0 and 1",
    ),
    case(
        "--data missing",
        "evaluate --data nope",
        ["nope", "does not exist"],
        "--set data.source=PATH",
    ),
    case(
        "--data without labels",
        "evaluate --data u.npz",
        ["u.npz", "holds the arrays x"],
        "Rename the arrays",
        write("u.npz", lambda p: np.savez(p, x=np.zeros((5, 12, 12)))),
    ),
    case(
        "--data of another shape",
        "evaluate --data u.npz",
        ["u.npz", "shape (6, 6, 1)"],
        "laid out like the training source",
        write(
            "u.npz", lambda p: np.savez(p, x=np.zeros((5, 6, 6), np.uint8), y=np.zeros(5, np.int64))
        ),
    ),
    case(
        "--data labels the run lacks",
        "evaluate --data u.npz",
        ["u.npz", "labels from 7 to 7"],
        "labelled like the training source",
        write(
            "u.npz",
            lambda p: np.savez(p, x=np.zeros((5, 12, 12), np.uint8), y=np.full(5, 7, np.int64)),
        ),
    ),
    case(
        "--data table without the target",
        "evaluate -r house.yaml --data new.csv",
        ["new.csv", "no target column price"],
        "use `dltrain predict`",
        write("new.csv", "house_id,rooms,area,district\nh1,3,50,north\n"),
    ),
    case(
        "--data table target of words",
        "evaluate -r house.yaml --data new.csv",
        ["new.csv", "'cheap'"],
        "the target in its own units",
        write("new.csv", HOUSE + "h1,3,50,north,cheap\nh2,2,50,south,dear\n"),
    ),
    case(
        "--data table target inf",
        "evaluate -r house.yaml --data new.csv",
        ["new.csv", "price", "inf"],
        "finite",
        write("new.csv", HOUSE + "h1,3,50,north,inf\nh2,2,50,south,3\n"),
    ),
    case(
        "--data table target missing",
        "evaluate -r house.yaml --data new.csv",
        ["new.csv", "1 row(s) have no target value"],
        "Drop them",
        write("new.csv", HOUSE + "h1,3,50,north,\nh2,2,50,south,3\n"),
    ),
    case(
        "model.keras of bytes",
        "evaluate",
        ["model.keras is not a .keras archive"],
        "train the run again",
        in_run("model.keras", b"PK\x03\x04 cut"),
    ),
    case(
        "run.json a list",
        "evaluate",
        ["run.json", "not a run record"],
        "fix the file by hand",
        in_run("run.json", "[]"),
    ),
    case(
        "run.json absent",
        "evaluate",
        ["run.json is missing"],
        "train the run again",
        lambda project: (run_folder(project) / "run.json").unlink(),
    ),
    case(
        "both manifests of another version",
        "evaluate",
        ["data/tiny/manifest.json", "version: Extra inputs are not permitted"],
        "`dltrain prepare --force`",
        other_version("data/tiny/manifest.json", "runs/tiny/*/manifest.json"),
    ),
    case(
        "prepared shard changed",
        "evaluate",
        ["test-00000-of-00001.npz", "changed since"],
        "`dltrain prepare --force`",
        lambda project: (project / "data/tiny/test-00000-of-00001.npz").write_bytes(b"junk"),
    ),
    case(
        "threshold.json not JSON",
        "evaluate -r bin.yaml",
        ["threshold.json is unreadable"],
        "--optimize-threshold f1",
        in_run("threshold.json", "{bad", "bin"),
    ),
    case(
        "--run a prepared dataset",
        "evaluate --run data/tiny",
        ["data/tiny holds no model.keras"],
        "pick another run",
    ),
    case(
        "prepared manifest of another version",
        "evaluate",
        ["data/tiny/manifest.json"],
        "`dltrain prepare --force`",
        other_version("data/tiny/manifest.json"),
    ),
    case(
        "prepared dataset deleted",
        "evaluate",
        ["data/tiny"],
        "dltrain prepare",
        lambda project: shutil.rmtree(project / "data/tiny"),
    ),
    case(
        "model.keras of another run",
        "evaluate",
        ["model.keras", "house"],
        "train the run again",
        model_of("house"),
    ),
]

EXPORT = [
    case(
        "--output with two formats",
        "export -f tflite -f onnx -o m.bin",
        ["--output names one path but 2 formats"],
        "export them one at a time",
    ),
    case(
        "tflite --output named .onnx",
        "export -f tflite -o m.onnx",
        ["m.onnx", "'.onnx'"],
        "such as model.tflite",
    ),
    case(
        "tflite --output over a run's model.keras",
        f"export -f tflite -o runs/tiny/{RUN_ID}/model.keras",
        ["model.keras", "'.keras'"],
        "such as model.tflite",
        copy_run(),
    ),
    case(
        "saved_model --output over a run's checkpoints",
        f"export -f saved_model -o runs/tiny/{RUN_ID}/checkpoints",
        ["checkpoints is part of run folder"],
        "leave --output out",
        copy_run(),
    ),
    case(
        "saved_model --output the run folder",
        f"export -f saved_model -o runs/tiny/{RUN_ID}",
        ["would replace the run folder"],
        "pick a new path",
        copy_run(),
    ),
    case(
        "saved_model --output an existing file",
        "export -f saved_model -o old.txt",
        ["old.txt exists and is a file"],
        "Pick another path",
        write("old.txt", "keep me"),
    ),
    case(
        "export model.keras of bytes",
        "export",
        ["model.keras is not a .keras archive"],
        "train the run again",
        in_run("model.keras", b"junk"),
    ),
    case(
        "export model.keras without a model",
        "export",
        ["model.keras", "'config.json'"],
        "train the run again",
        model_without_config,
    ),
    case("export --run missing", "export --run runs/tiny/none", "runs/tiny/none", "`ls"),
]

RUNS = [
    case("runs --sort unknown", "runs --sort bogus", "'bogus'", "Expected one of: best, epochs"),
    case(
        "runs --metric misspelt",
        "runs --metric acuracy",
        "'acuracy'",
        "Did you mean 'accuracy'?",
        evaluated,
    ),
    case(
        "runs with a metrics.json of another shape",
        "runs",
        ["metrics.json"],
        "evaluate the run again",
        in_run("metrics.json", json.dumps({"schema": 99, "metrics": "x"})),
    ),
]

FIND_LR = [
    case(
        "find-lr start above end",
        "find-lr --start-lr 1 --end-lr 0.1",
        ["Received: 1.0, 0.1"],
        "0 < --start-lr < --end-lr",
    ),
    case(
        "find-lr negative start",
        "find-lr --start-lr -1",
        ["Received: -1.0, 10.0"],
        "0 < --start-lr < --end-lr",
    ),
    case(
        "find-lr one step",
        "find-lr --steps 1",
        ["`num_steps`", "Received: 1"],
        "--steps of at least 10",
    ),
    case("find-lr end inf", "find-lr --end-lr inf", ["--end-lr inf"], "must be finite"),
    case("find-lr start nan", "find-lr --start-lr nan", ["--start-lr nan"], "must be finite"),
    case(
        "find-lr without prepared data",
        "find-lr --steps 10",
        ["data/tiny", "no manifest.json"],
        "Run `dltrain prepare`",
        lambda project: shutil.rmtree(project / "data/tiny"),
    ),
    case(
        "find-lr on stale data",
        "find-lr --steps 10",
        ["data/tiny was made with a different data section"],
        "run `dltrain prepare`",
    ),
]

TRAIN = [
    case(
        "train without prepared data",
        "train",
        ["data/tiny", "no manifest.json"],
        "Run `dltrain prepare`",
        lambda project: shutil.rmtree(project / "data/tiny"),
    ),
    case(
        "train on stale data",
        "train",
        ["data/tiny was made with a different data section"],
        "run `dltrain prepare`",
    ),
    case(
        "train on a corrupt manifest",
        "train",
        ["data/tiny/manifest.json is unreadable"],
        "`dltrain prepare --force`",
        prepared_again,
        write("data/tiny/manifest.json", "{"),
    ),
    case(
        "train on a manifest of another version",
        "train",
        ["data/tiny/manifest.json", "version: Extra inputs are not permitted"],
        "`dltrain prepare --force`",
        prepared_again,
        other_version("data/tiny/manifest.json"),
    ),
    case(
        "train on a changed shard",
        "train",
        ["train-00000-of-00001.npz", "changed since"],
        "`dltrain prepare --force`",
        prepared_again,
        lambda project: (project / "data/tiny/train-00000-of-00001.npz").write_bytes(b"junk"),
    ),
    case(
        "train a text model on images",
        ["train", "--set", "model={family: text}"],
        ["Model family 'text' takes texts", "holds images"],
        "`model.family`",
        prepared_again,
    ),
    case(
        "train --resume with --set",
        "train --resume --set train.epochs=3",
        ["Received also: --set"],
        "Drop those flags",
    ),
    case(
        "train --resume with nothing to resume",
        "train --resume",
        ["No unfinished run of recipe 'tiny'"],
        "Start one with `dltrain train`",
    ),
    case(
        "train --resume a missing run",
        "train --resume --run runs/tiny/none",
        "runs/tiny/none",
        "Expected a folder written by `dltrain train`",
    ),
]

TUNE = [
    case(
        "tune without a tune section",
        "tune --dry-run",
        ["has no `tune:` section"],
        "Add one naming the objective",
    ),
    case(
        "tune an objective nobody logs",
        "tune --trials 1",
        ["val_acc"],
        "val_accuracy",
        write(
            "dltrain.yaml", lambda p: p.write_text(p.read_text() + TUNED + "  objective: val_acc\n")
        ),
        prepared_again,
        may_write=("runs/tiny/tune/*",),
    ),
]


@pytest.mark.parametrize("item", params(EVALUATE + EXPORT + RUNS + FIND_LR + TRAIN + TUNE))
def test_bad_run_command(item: Case, trained_project: Path) -> None:
    check(item, trained_project)
