"""evaluate over a split streamed shard by shard scores exactly what it scores in memory: the
metrics, bootstrap intervals, baselines, chosen threshold and permutation importance."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from dltrain.evaluation.evaluate import evaluate
from dltrain.evaluation.examples import choose_evaluation_input, prepared_dataset
from dltrain.evaluation.request import EvaluationRequest
from dltrain.evaluation.run_model import open_run
from dltrain.evaluation.threshold import parse_objective
from dltrain.recipe.choices import InputMode
from dltrain.recipe.schema import EvaluateSpec
from tests.conftest import invoke


def _write_table(path: Path, rows: int = 400) -> None:
    rng = np.random.default_rng(5)
    signal, noise = rng.normal(size=rows), rng.normal(size=rows)
    colour = rng.choice(["red", "blue", "green"], rows)
    label = np.where(signal + 0.5 * rng.normal(size=rows) > 0.3, "yes", "no")
    lines = ["signal,noise,colour,label"]
    lines += [
        f"{s:.4f},{n:.4f},{c},{y}" for s, n, c, y in zip(signal, noise, colour, label, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A binary and a regression MLP trained on a table prepared in shards of 25 rows."""
    root = tmp_path_factory.mktemp("streamed-eval")
    _write_table(root / "table.csv")
    recipe = {
        "name": "cls",
        "seed": 2,
        "data": {
            "source": "table.csv",
            "target": "label",
            "shard_rows": 25,
            "split": {"validation": 0.25, "test": 0.25},
        },
        "model": {"family": "mlp", "units": [8], "dropout": 0.0},
        "train": {
            "epochs": 4,
            "batch_size": 32,
            "optimizer": {"learning_rate": 0.03},
            "tensorboard": False,
        },
    }
    (root / "cls.yaml").write_text(yaml.safe_dump(recipe))
    regression = {**recipe, "name": "reg", "data": {**recipe["data"], "target": "signal"}}
    (root / "reg.yaml").write_text(yaml.safe_dump(regression))
    with contextlib.chdir(root):
        steps = [("cls", "prepare"), ("cls", "train"), ("reg", "prepare"), ("reg", "train")]
        for name, command in steps:
            code, _, err = invoke(command, "--recipe", f"{name}.yaml")
            assert code == 0, f"{command} {name}: {err}"
        code, _, err = invoke(
            "train", "--recipe", "cls.yaml", "--set", "train.epochs=1"
        )  # a baseline
        assert code == 0, err
    return root


def _runs(project: Path, name: str) -> list[Path]:
    runs = (project / "runs" / name).iterdir()
    return sorted(p for p in runs if (p / "model.keras").is_file())


def _run(project: Path, name: str) -> Path:
    return _runs(project, name)[0]


def _evaluate(run_dir: Path, mode: InputMode, **extra: object) -> dict[str, object]:
    spec = EvaluateSpec(
        bootstrap=200, plots=False, importance=True, importance_repeats=2, importance_rows=60
    )
    request = EvaluationRequest(run_dir, spec=spec, seed=4, input=mode, **extra)  # type: ignore[arg-type]
    return evaluate(request).document.to_json()


def _same(memory: object, streamed: object) -> None:
    """Equal, numbers to float tolerance (the outputs come from differently sized calls)."""
    if isinstance(memory, dict):
        assert isinstance(streamed, dict) and memory.keys() == streamed.keys()
        for key in memory:
            _same(memory[key], streamed[key])
    elif isinstance(memory, list):
        assert isinstance(streamed, list) and len(memory) == len(streamed)
        for a, b in zip(memory, streamed, strict=True):
            _same(a, b)
    elif isinstance(memory, float):
        assert streamed == pytest.approx(memory, rel=1e-5, abs=1e-6)
    else:
        assert memory == streamed


def _verdicts(document: dict[str, object]) -> list[str]:
    notes = document["baseline_notes"]
    assert isinstance(notes, list)
    return [n for n in notes if not n.startswith("gbm ")]


@pytest.mark.parametrize("name", ["cls", "reg"])
def test_a_streamed_split_scores_as_the_split_in_memory(project: Path, name: str) -> None:
    run_dir = _run(project, name)
    extra = {"optimize_threshold": parse_objective("f1")} if name == "cls" else {}
    memory = _evaluate(run_dir, InputMode.MEMORY, **extra)
    streamed = _evaluate(run_dir, InputMode.STREAM, **extra)

    data = streamed["data"]
    assert isinstance(data, dict) and memory["data"]["input"]["path"] == "memory"  # type: ignore[index]
    assert data["input"]["path"] == "stream" and data["input"]["shards"] >= 3
    assert memory["num_examples"] == streamed["num_examples"] == 100
    assert streamed["baselines"] and "gbm" in streamed["baselines"]  # type: ignore[operator]
    assert streamed["intervals"] and streamed["importance"]
    for key in ("metrics", "intervals", "baselines", "importance"):
        _same(memory[key], streamed[key])
    # the first evaluation fitted the gradient-boosting baseline, the second read its cache
    _same(_verdicts(memory), _verdicts(streamed))
    if name == "cls":
        _same(memory["per_class"], streamed["per_class"])
        threshold = streamed["threshold"]
        assert isinstance(threshold, dict) and threshold["chosen_on"] == "validation"
        _same(memory["threshold"], threshold)
    importance = streamed["importance"]
    assert isinstance(importance, dict) and importance["num_rows"] == 60  # a sample, by shard
    top = importance["columns"][0]["column"]
    assert top == ("signal" if name == "cls" else "label")  # the label is the signal's sign
    written = json.loads((run_dir / "metrics.json").read_text())
    assert written["data"]["input"]["path"] == "stream"


def test_a_baseline_run_is_scored_on_the_streamed_split_as_in_memory(project: Path) -> None:
    first, second = _runs(project, "cls")[:2]
    spec = EvaluateSpec(plots=False)
    found = []
    for mode in (InputMode.MEMORY, InputMode.STREAM):
        request = EvaluationRequest(second, spec=spec, baseline=first, input=mode)
        found.append(evaluate(request).document.to_json())
    memory, streamed = found
    assert streamed["data"]["input"]["path"] == "stream"  # type: ignore[index]
    assert streamed["baseline"] is not None
    _same(memory["baseline"], streamed["baseline"])


def test_auto_streams_only_past_the_size_rule(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = open_run(_run(project, "cls"))
    dataset = prepared_dataset(run)
    streamed, why = choose_evaluation_input(run, dataset, "test", InputMode.AUTO)
    assert not streamed and "<=" in why
    monkeypatch.setattr("dltrain.data.streaming.MEMORY_MAX_SHARD_BYTES", 10)
    streamed, why = choose_evaluation_input(run, dataset, "test", InputMode.AUTO)
    assert streamed and "> 10" in why
    streamed, why = choose_evaluation_input(run, dataset, "test", InputMode.MEMORY)
    assert not streamed and why == "train.input is memory"
