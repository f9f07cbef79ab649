"""The model card: every section is read from the run's own records (a hand-built run folder
with distinctive values), and a record the run lacks is said, not invented."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dltrain.evaluation.metrics import (
    Calibration,
    CalibrationBin,
    ClassScores,
    ConfusionMatrix,
    Interval,
    ScoreReport,
)
from dltrain.evaluation.model_card import read_card_sources, write_model_card
from dltrain.evaluation.result import BootstrapSettings, MetricsDocument
from dltrain.manifest import Cleaning, FilledColumn
from dltrain.run_info import BestEpoch, DataRef, RunInfo, RunStatus, StopReason
from dltrain.runs import RunFolder
from tests.manifests import manifest_of

CLASSES = ["cat", "dog", "emu"]
FINGERPRINT = "f1n9e3pr1n7"


def _manifest() -> dict[str, object]:
    manifest = manifest_of(
        features={
            "kind": "table",
            "columns": [
                {
                    "name": "Sale Price/m2",
                    "type": "numeric",
                    "dtype": "float32",
                    "input_name": "Sale_Price_m2",
                },
                {
                    "name": "row id",
                    "type": "identifier",
                    "dtype": "string",
                    "used": False,
                    "input_name": "row_id",
                },
            ],
            "num_features": 1,
        },
        target={"classes": CLASSES, "column": "animal"},
        splits={
            "train": {"num_examples": 80, "shards": [], "class_counts": [40, 30, 10]},
            "test": {"num_examples": 20, "shards": [], "class_counts": [10, 6, 4]},
        },
    )
    cleaning = Cleaning(
        dropped_rows={"empty": 3},
        filled=[
            FilledColumn(column="Sale Price/m2", missing=7, missing_in_train=5, strategy="median")
        ],
        notes=["target `animal` read as categories"],
    )
    document = manifest.model_copy(update={"cleaning": cleaning}).to_json()
    document["source"]["fingerprint"] = FINGERPRINT
    document["source"]["path"] = "/data/animals.csv"
    return document


def _document(run: Path) -> MetricsDocument:
    scores = ScoreReport(
        metrics={"accuracy": 0.8125, "f1_macro": 0.7321, "expected_calibration_error": 0.0456},
        per_class=[
            ClassScores("cat", 0.9, 0.95, 0.92, 10, None, None),
            ClassScores("dog", 0.8, 0.85, 0.82, 6, None, None),
            ClassScores("emu", 0.6, 0.25, 0.35, 4, None, None),
        ],
        confusion_matrix=ConfusionMatrix(
            labels=CLASSES,
            counts=[[9, 1, 0], [0, 5, 1], [0, 3, 1]],
            normalized=[[0.9, 0.1, 0.0], [0.0, 0.833, 0.167], [0.0, 0.75, 0.25]],
        ),
        calibration=Calibration(bins=15, table=[CalibrationBin(0.6, 0.667, 17, 0.6431, 0.5294)]),
    )
    return MetricsDocument(
        run=run,
        recipe="animals",
        task="multiclass",
        data={"kind": "split", "split": "test"},
        num_examples=20,
        evaluated="2026-12-06T10:00:00+00:00",
        scores=scores,
        intervals={"accuracy": Interval(0.7011, 0.9187)},
        bootstrap=BootstrapSettings(resamples=321, confidence=0.95, seed=1),
        baselines={"prior": {"accuracy": 0.5, "f1_macro": 0.22}, "gbm": {"accuracy": 0.85}},
        baseline_notes=["gbm fitted in 1.5 s"],
        warnings=["Only 20 examples in the test split: coarse", "training: best epoch was last"],
    )


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A finished run folder with a manifest copy, run.json, recipe.yaml and a data profile."""
    data = tmp_path / "data" / "animals"
    data.mkdir(parents=True)
    (data / "profile.json").write_text(json.dumps({"warnings": ["column `row id` is an id"]}))
    folder = tmp_path / "runs" / "animals" / "20261206-100000-abcd"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(_manifest()))
    recipe = {
        "name": "animals",
        "description": "Which animal, from a table.",
        "data": {"source": "animals.csv", "target": "animal"},
        "model": {"family": "mlp"},
        "train": {
            "epochs": 9,
            "batch_size": 17,
            "optimizer": {"name": "nadam", "learning_rate": 0.0123},
        },
    }
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    info = RunInfo(
        recipe="animals",
        status=RunStatus.COMPLETED,
        started="2026-12-06T09:00:00+00:00",
        data=DataRef(folder=str(data), fingerprint=FINGERPRINT),
        seed=4242,
        deterministic=True,
        device="TestDevice-7",
        versions={"tensorflow": "9.9.9"},
        seconds=12.5,
        epochs_run=6,
        stopped_by=StopReason.EARLY_STOPPING,
        parameters=31337,
        best=BestEpoch(monitor="val_loss", epoch=4, value=0.3579),
        warnings=["best epoch was last"],
    )
    RunFolder(folder).write_info(info)
    return folder


def _section(card: str, heading: str) -> str:
    """The text of one ``## heading`` section of the card."""
    return card.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]


def test_every_section_comes_from_the_run(run: Path) -> None:
    card = write_model_card(_document(run))
    assert card.path == run / "MODEL_CARD.md" and card.path.read_text() == card.text
    text = card.text
    assert "Which animal, from a table." in text and "A **multiclass** model (mlp family)" in text

    data = _section(text, "Data and splits")
    assert FINGERPRINT in data and "/data/animals.csv" in data
    assert "| train | 80 | 50.0% | 37.5% | 12.5% |" in data  # 40, 30, 10 of 80
    assert "3 empty row(s) dropped" in data and "7 missing value(s) filled (median)" in data
    assert "target `animal` read as categories" in data

    pre = _section(text, "Preprocessing")
    assert "| `Sale Price/m2` | numeric | yes | `Sale_Price_m2` |" in pre
    assert "| `row id` | identifier | no (passed through) | `row_id` |" in pre

    training = _section(text, "Model and training")
    for fact in (
        "nadam, learning rate 0.0123",
        "| batch size | 17 |",
        "| epochs asked | 9 |",
        "| epochs run | 6 |",
        "4 (val_loss 0.3579)",
        "early_stopping",
        "12.5 s",
        "TestDevice-7",
        "| seed | 4242 |",
        "31,337",
        "tensorflow 9.9.9",
    ):
        assert fact in training, fact

    metrics = _section(text, "Metrics on the test split")
    assert "321 resamples" in metrics and "| accuracy | 0.8125 | 0.7011 – 0.9187 |" in metrics
    assert "baseline: prior" in metrics and "gbm fitted in 1.5 s" in metrics

    baselines = _section(text, "Baselines")
    assert "| the class prior" in baselines and "| 0.5000 | beats it |" in baselines
    assert "| gradient boosting | 0.8500 | **loses to it** |" in baselines

    calibration = _section(text, "Calibration")
    assert "0.0456 over 15 bins" in calibration
    assert "| 0.60 – 0.67 | 17 | 0.6431 | 0.5294 | +0.1137 |" in calibration

    weak = _section(text, "Where it is weakest")
    lowest_recall = weak.split("Lowest recall:", 1)[1].split("Lowest f1:", 1)[0]
    assert lowest_recall.index("| emu |") < lowest_recall.index("| dog |")
    assert "| emu | dog | 3 | 75.0% |" in weak  # the most frequent mistake comes first
    assert weak.index("| emu | dog |") < weak.index("| cat | dog |")

    warnings = _section(text, "Warnings raised along the way")
    assert "column `row id` is an id" in warnings  # prepare's profile
    assert warnings.count("best epoch was last") == 1  # training's, not repeated by evaluate's
    assert "Only 20 examples in the test split" in warnings


def test_a_record_the_run_lacks_is_said_not_invented(run: Path) -> None:
    (run / "manifest.json").unlink()
    info = RunFolder(run).read_info()
    assert info.data is not None
    Path(info.data.folder, "profile.json").unlink()
    sources = read_card_sources(_document(run))
    assert sources.manifest is None and sources.profile_warnings == []
    card = write_model_card(_document(run)).text
    assert "Not recorded for this run: manifest.json" in card and "profile.json" in card
    assert "## Data and splits" not in card and "## Model and training" in card


def test_a_run_with_no_warnings_says_so(run: Path) -> None:
    files = RunFolder(run)
    info = files.read_info()
    info.warnings = []
    files.write_info(info)
    assert info.data is not None
    Path(info.data.folder, "profile.json").write_text(json.dumps({"warnings": []}))
    document = _document(run)
    document.warnings.clear()
    card = write_model_card(document).text
    assert "None: prepare, train and evaluate raised no warning." in card
