"""dltrain predict through the real CLI: each input format, both output formats, thresholds, and
bad input that leaves an earlier output untouched."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dltrain.backend import keras
from tests.cli.eval_projects import copy_project, invoke, runs_of


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = copy_project(tmp_path)
    monkeypatch.chdir(path)
    return path


def keras_probabilities(run: Path, x: np.ndarray) -> np.ndarray:
    """The saved model's own answer, computed without dltrain's prediction code."""
    model = keras.models.load_model(run / "model.keras", compile=False)
    return np.asarray(model(x, training=False))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_npz_to_csv_with_ids_passing_through(project: Path) -> None:
    x = np.load(project / "binary.npz")["x"][:45]
    ids = np.arange(1000, 1045)
    np.savez(project / "batch.npz", x=x, customer_id=ids)
    code, out, err = invoke(
        "predict", "-i", "batch.npz", "-o", "out/predictions.csv", "--batch-size", "16", "--json"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["num_examples"] == 45 and summary["input_format"] == "npz"
    rows = read_csv(project / "out" / "predictions.csv")
    assert list(rows[0]) == [
        "row",
        "customer_id",
        "prediction",
        "probability",
        "probability_0",
        "probability_1",
        "probability_2",
    ]
    assert [int(r["customer_id"]) for r in rows] == ids.tolist()
    expected = keras_probabilities(runs_of(project)[-1], x[..., None])
    assert [r["prediction"] for r in rows] == [str(i) for i in expected.argmax(axis=1)]
    got = np.array([[float(r[f"probability_{c}"]) for c in "012"] for r in rows])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert sum(summary["counts"].values()) == 45


def test_image_folder_to_json_lines(project: Path) -> None:
    x = np.load(project / "binary.npz")["x"]
    folder = project / "images"
    (folder / "more").mkdir(parents=True)
    Image.fromarray(x[0]).save(folder / "a.png")  # already the model's size and mode
    Image.fromarray(x[1]).resize((36, 36)).convert("RGB").save(folder / "more" / "b.jpg")
    Image.fromarray(x[2]).convert("RGBA").save(folder / "c.webp", lossless=True)
    (folder / "notes.txt").write_text("not an image, skipped")
    code, _, err = invoke("predict", "--recipe", "bin.yaml", "-i", "images", "-o", "p.jsonl")
    assert code == 0, err
    lines = [json.loads(line) for line in (project / "p.jsonl").read_text().splitlines()]
    assert [line["file"] for line in lines] == ["a.png", "c.webp", "more/b.jpg"]
    for line in lines:
        assert set(line["probabilities"]) == {"ham", "spam"}
        assert sum(line["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert line["score"] == line["probabilities"]["spam"]
    # the PNG and the lossless WebP hold the exact training pixels: same answer as Keras
    expected = keras_probabilities(runs_of(project, "bin")[-1], x[[0, 2], ..., None])
    for line, probabilities in zip([lines[0], lines[1]], expected, strict=True):
        assert line["probabilities"]["spam"] == pytest.approx(probabilities[1], abs=1e-5)


def test_idx_file_and_binary_thresholds(project: Path) -> None:
    code, _, err = invoke("predict", "-i", "raw/t10k-images-idx3-ubyte.gz", "-o", "idx.csv")
    assert code == 0, err
    assert len(read_csv(project / "idx.csv")) == 60
    run = runs_of(project, "bin")[-1]
    np.savez(project / "few.npz", x=np.load(project / "binary.npz")["x"][:20])
    code, _, err = invoke(
        "predict", "-r", "bin.yaml", "-i", "few.npz", "-o", "all.csv", "--threshold", "0"
    )
    assert code == 0, err
    assert {r["prediction"] for r in read_csv(project / "all.csv")} == {"spam"}
    (run / "threshold.json").write_text(json.dumps({"kind": "binary_decision", "threshold": 1.01}))
    code, out, err = invoke(
        "predict", "-r", "bin.yaml", "-i", "few.npz", "-o", "none.csv", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["threshold"] == 1.01  # the stored threshold is the default
    assert {r["prediction"] for r in read_csv(project / "none.csv")} == {"ham"}


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:300])


@pytest.mark.parametrize(
    ("make_input", "args", "needles"),
    [
        (
            lambda p: (p / "bad.png").write_text("garbage"),
            ["-i", "bad.png"],
            ["not a readable image"],
        ),
        (lambda p: None, ["-i", "missing.npz"], ["does not exist"]),
        (
            lambda p: np.savez(p / "wide.npz", x=np.zeros((3, 28, 28), np.uint8)),
            ["-i", "wide.npz"],
            ["(28, 28, 1)", "schema differs"],
        ),
        (
            lambda p: np.savez(p / "scaled.npz", x=np.full((3, 12, 12), 0.5)),
            ["-i", "scaled.npz"],
            ["raw uint8 values"],
        ),
        (lambda p: None, ["-i", "binary.npz", "--threshold", "0.3"], ["binary classifiers"]),
        (lambda p: None, ["-i", "binary.npz", "-o", "x.json"], [".jsonl"]),
        (
            lambda p: (p / "x.npz").write_bytes(b"PK\x03\x04junk"),
            ["-i", "x.npz"],
            ["not a readable"],
        ),
        (
            # a model file cut short (a full disk, a copy killed half way)
            lambda p: _truncate(runs_of(p, "tiny")[-1] / "model.keras"),
            ["-i", "raw/t10k-images-idx3-ubyte.gz"],
            ["model.keras is not a .keras archive", "train the run again"],
        ),
    ],
)
def test_bad_input_exits_2_and_keeps_the_old_output(
    project: Path, make_input, args: list[str], needles: list[str]
) -> None:
    make_input(project)
    (project / "old.csv").write_text("earlier predictions\n")
    if "-o" not in args:
        args = [*args, "-o", "old.csv"]
    code, out, err = invoke("predict", *args)
    assert code == 2, err
    assert "Traceback" not in err and out == ""
    for needle in needles:
        assert needle in err, err
    assert "File not found" not in err
    assert (project / "old.csv").read_text() == "earlier predictions\n"
    assert not list(project.glob(".old.partial-*"))


def test_table_rows_with_ids_gaps_and_unseen_categories(project: Path) -> None:
    from tests.cli.eval_projects import write_houses

    write_houses(project / "new.csv", 12, seed=9)
    text = (project / "new.csv").read_text().replace(",east,", ",atlantis,", 1)
    (project / "new.csv").write_text(text.replace("price", "asking_price", 1))
    code, _, err = invoke("predict", "-r", "house.yaml", "-i", "new.csv", "-o", "prices.csv")
    assert code == 0, err
    rows = read_csv(project / "prices.csv")
    assert [r["house_id"] for r in rows] == [f"h{i:04d}" for i in range(12)]
    assert rows[0]["asking_price"]  # a column the model does not know passes through
    # the model's own answer on the same raw columns, fed by hand
    lines = [line.split(",") for line in (project / "new.csv").read_text().splitlines()[1:]]
    raw = {
        "house_id": np.array([r[0] for r in lines], dtype=object),
        "rooms": np.array([float(r[1]) if r[1] else np.nan for r in lines], np.float32),
        "area": np.array([float(r[2]) for r in lines], np.float32),
        "district": np.array([r[3] for r in lines], dtype=object),
    }
    model = keras.models.load_model(runs_of(project, "house")[-1] / "model.keras")
    expected = np.asarray(model.predict_on_batch(raw)).ravel()
    assert np.isnan(raw["rooms"][0]) and "atlantis" in raw["district"]
    np.testing.assert_allclose([float(r["prediction"]) for r in rows], expected, rtol=1e-5)


def test_missing_values_and_unseen_categories_are_reported_per_column(project: Path) -> None:
    from tests.cli.eval_projects import write_houses

    write_houses(project / "new.csv", 12, seed=9)
    text = (project / "new.csv").read_text().replace(",east,", ",atlantis,", 1)
    (project / "new.csv").write_text(text)
    empty_rooms = sum(line.split(",")[1] == "" for line in text.splitlines()[1:])
    args = ("predict", "-r", "house.yaml", "-i", "new.csv", "-o", "prices.csv", "--json")
    code, out, err = invoke(*args)
    assert code == 0, err
    report = {c["column"]: c for c in json.loads(out)["inputs"]}
    assert report["district"] == {"column": "district", "missing": 0, "unseen": 1}
    assert report["rooms"]["missing"] == empty_rooms > 0 and report["rooms"]["unseen"] == 0
    assert "house_id" not in report  # an identifier the model ignores
    assert "atlantis" not in err and "district" in err and "unseen categories" in err


def test_predict_and_evaluate_remove_what_killed_ones_left(project: Path) -> None:
    from dltrain.atomic import HOST_TAG
    from tests.cli.test_machine_faults import dead_pid, plant_foreign

    # what a predict and an evaluate killed mid-write leave: their temporaries, writer gone
    stale_output = project / f".idx.partial-{HOST_TAG}-{dead_pid()}-abcdef.csv"
    run = runs_of(project, "tiny")[-1]
    stale_metrics = run / f".metrics.partial-{HOST_TAG}-{dead_pid()}-abcdef.json"
    for path in (stale_output, stale_metrics):
        path.write_text("half written")
    foreign = plant_foreign(project, "idx", ".csv") + plant_foreign(run, "model", ".keras")
    code, _, err = invoke("predict", "-i", "raw/t10k-images-idx3-ubyte.gz", "-o", "idx.csv")
    assert code == 0, err
    code, _, err = invoke("evaluate")
    assert code == 0, err
    assert not stale_output.exists() and not stale_metrics.exists()
    assert all(p.exists() for p in foreign)  # live writers', other machines', others' files
