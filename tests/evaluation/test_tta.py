"""Test-time augmentation: the views, their average, the refusals, and evaluate/predict --tta."""

from __future__ import annotations

import contextlib
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dltrain.errors import UsageError
from dltrain.evaluation.tta import TtaViews, predict_views, tta_views
from tests.conftest import RecipeWriter, invoke

IMAGES = np.arange(2 * 5 * 6).reshape(2, 5, 6, 1).astype(np.uint8) + 1  # no zero pixel


def views_of(augmentation: dict[str, Any] | None, num_views: int = 4, **kw: Any) -> TtaViews:
    settings: dict[str, Any] = {
        "task": "multiclass",
        "image_shape": [5, 6, 1],
        "augmentation": augmentation,
        "fill": 0.0,
        "seed": 3,
        "run_name": "r1",
    }
    found = tta_views(num_views, **{**settings, **kw})
    assert found is not None
    return found


def test_views_flip_and_shift_by_whole_pixels_with_a_black_border() -> None:
    views = views_of({"flip": "horizontal", "crop": {"padding": 2}}, num_views=8)
    np.testing.assert_array_equal(views.view(IMAGES, 0), IMAGES)
    for k in range(1, 8):
        horizontal, vertical, dy, dx = views.transform(k)
        assert horizontal == (k % 2 == 1) and not vertical and max(abs(dy), abs(dx)) <= 2
        expected = IMAGES[:, :, ::-1] if horizontal else IMAGES
        padded = np.pad(expected, ((0, 0), (2, 2), (2, 2), (0, 0)))
        window = padded[:, 2 - dy : 2 - dy + 5, 2 - dx : 2 - dx + 6]
        np.testing.assert_array_equal(views.view(IMAGES, k), window)
    assert len({views.transform(k)[2:] for k in range(1, 8)}) > 1  # shifts differ by view
    again = views_of({"flip": "horizontal", "crop": {"padding": 2}}, num_views=8)
    assert [again.transform(k) for k in range(8)] == [views.transform(k) for k in range(8)]


def test_translation_makes_shifts_and_view_averages_are_per_image() -> None:
    views = views_of({"translation": 0.2}, num_views=5)  # 20% of 5 px: one pixel
    assert views.shift == 1 and views.flips == ((False, False),)

    def predict(images: np.ndarray) -> np.ndarray:
        # a stand-in classifier: the share of bright pixels in each image, as two classes
        bright = (images > 20).mean(axis=(1, 2, 3))
        return np.stack([bright, 1 - bright], axis=1)

    averaged = predict_views(predict, IMAGES, views)
    expected = np.mean([predict(views.view(IMAGES, k)) for k in range(5)], axis=0)
    np.testing.assert_allclose(averaged, expected, rtol=1e-6)
    one_by_one = np.concatenate([predict_views(predict, IMAGES[i : i + 1], views) for i in (0, 1)])
    np.testing.assert_allclose(one_by_one, averaged, rtol=1e-6)  # not a function of the batch
    np.testing.assert_array_equal(predict_views(predict, IMAGES, None), predict(IMAGES))


@pytest.mark.parametrize(
    ("num_views", "kw", "says"),
    [
        (0, {}, "1 (off) to 64"),
        (65, {}, "1 (off) to 64"),
        (3, {"image_shape": None, "task": "binary"}, "reads no images"),
        (3, {"task": "regression"}, "regression model"),
        (3, {"augmentation": {"rotation": 0.1}}, "no flip, crop or translation"),
        (3, {"augmentation": None}, "no flip, crop or translation"),
        (3, {"augmentation": {"flip": "horizontal"}}, "only 2 different ones"),
    ],
)
def test_tta_is_refused_where_it_cannot_work(num_views: int, kw: dict[str, Any], says: str) -> None:
    with pytest.raises(UsageError, match=says.replace("(", r"\(").replace(")", r"\)")):
        tta_views(
            num_views,
            **{
                "task": "multiclass",
                "image_shape": [5, 6, 1],
                "augmentation": {"flip": "horizontal", "crop": {"padding": 2}},
                "fill": 0.0,
                "seed": 3,
                "run_name": "r1",
                **kw,
            },
        )


def test_one_view_is_no_augmentation() -> None:
    assert (
        tta_views(
            1,
            task="regression",
            image_shape=None,
            augmentation=None,
            fill=0.0,
            seed=0,
            run_name="r",
        )
        is None
    )


@pytest.fixture
def trained(tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter) -> Path:
    write_recipe(
        idx_folder,
        data={"split": {"validation": 0.2}, "shard_rows": 16},
        model={"augmentation": {"flip": "vertical", "crop": {"padding": 1}}},
    )
    with contextlib.chdir(tmp_path):
        for command in ("prepare", "train"):
            code, _, err = invoke(command)
            assert code == 0, err
    return tmp_path


def test_evaluate_and_predict_average_the_views(trained: Path) -> None:
    from dltrain.evaluation.run_model import open_run

    images = str(next(trained.glob("raw/t10k-images*")))
    with contextlib.chdir(trained):
        code, out, err = invoke("evaluate", "--tta", "3", "--json")
        assert code == 0, err
        document = json.loads(out)
        assert document["tta"] == {
            "views": 3,
            "flips": ["none", "vertical"],
            "shift": 1,
            "seed": 7,
        }
        run_dir = Path(document["run"])
        assert json.loads((run_dir / "metrics.json").read_text())["tta"]["views"] == 3
        report = (run_dir / "report.md").read_text()  # the report says what was measured
        assert "mean over 3 views of the image (flips: none, vertical; shifts of up to 1" in report
        # the test split streamed shard by shard: the views are averaged per batch all the same
        code, out, err = invoke("evaluate", "--tta", "3", "--json", "--set", "train.input=stream")
        assert code == 0, err
        streamed = json.loads(out)
        assert document["data"]["input"]["path"] == "memory"  # auto: a tiny split
        assert streamed["data"]["input"]["path"] == "stream"
        said = " ".join(err.split())  # the line wraps at the console width
        assert "streamed from its" in said and "train.input is stream" in said
        assert streamed["data"]["input"]["shards"] > 1 and streamed["tta"] == document["tta"]
        for name, value in document["metrics"].items():
            assert streamed["metrics"][name] == pytest.approx(value, abs=1e-6), name
        code, out, _ = invoke("evaluate", "--json")
        assert json.loads(out)["tta"] is None
        assert "Test-time augmentation" not in (run_dir / "report.md").read_text()
        code, _, err = invoke("predict", "-i", images, "-o", "p.csv", "--tta", "3")
        assert code == 0, err
        code, _, err = invoke("predict", "--num-samples", "2", "-o", "g", "--tta", "3")
        assert code == 2 and "--tta 3" in err
    run = open_run(run_dir)
    model = run.load_keras()
    from tests.conftest import synthetic_images

    x = synthetic_images(60, seed=2)[0][..., None]  # the idx folder's test images
    views = run.tta_views(3)
    assert views is not None
    expected = np.mean([model.predict_on_batch(views.view(x, k)) for k in range(3)], axis=0)
    with (trained / "p.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    written = np.array([[float(r[f"probability_{c}"]) for c in "012"] for r in rows])
    np.testing.assert_allclose(written, expected, atol=2e-6)  # CSV keeps 6 digits
    plain = model.predict_on_batch(x)
    assert not np.allclose(written, plain, atol=1e-4)  # the views did change the answer
