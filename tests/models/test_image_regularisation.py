"""Random crop with padding, MixUp and CutMix: the layer, the blends, and training with them."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest

from dltrain.backend import tf
from dltrain.errors import RecipeError
from dltrain.models import build_model, training_hooks
from dltrain.models.blocks import RandomPaddedCrop
from dltrain.models.mixing import mix_batch, mix_batches, one_hot_labels
from dltrain.models.saving import load_model
from dltrain.recipe.models import AugmentationSpec, CnnSpec
from dltrain.recipe.schema import LossName, LossSpec
from dltrain.tasks import Task
from dltrain.training.losses import SparseFocalCrossentropy, make_loss
from tests.conftest import RecipeWriter, invoke
from tests.models.test_builders import image_io


def shift_of(image: np.ndarray, out: np.ndarray, padding: int) -> tuple[int, int] | None:
    """The (rows, columns) shift that turns ``image`` into ``out`` with a zero border, if any."""
    h, w = image.shape[:2]
    padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            if np.array_equal(padded[dy : dy + h, dx : dx + w], out):
                return dy - padding, dx - padding
    return None


def test_padded_crop_shifts_each_image_by_whole_pixels_in_training_only() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(1, 255, size=(32, 6, 6, 1)).astype("float32")  # no zeros inside
    crop = RandomPaddedCrop(2, seed=3)
    out = np.asarray(crop(images, training=True))
    shifts = [shift_of(images[i], out[i], 2) for i in range(len(images))]
    assert None not in shifts  # every output is a padded window of its own image
    assert len(set(shifts)) > 5  # drawn per image, not one shift for the batch
    assert all(max(abs(dy), abs(dx)) <= 2 for dy, dx in shifts)  # type: ignore[misc]
    np.testing.assert_array_equal(np.asarray(crop(images, training=False)), images)
    with pytest.raises(ValueError, match="padding"):
        RandomPaddedCrop(0)


def test_cnn_with_crop_fills_black_and_survives_saving(tmp_path: Path) -> None:
    spec = CnnSpec(filters=[2], augmentation=AugmentationSpec(crop={"padding": 3}))
    model = build_model(spec, image_io(offset=-0.5))  # raw 0 scales to -0.5
    layer = model.get_layer("augment_crop")
    assert layer.padding == 3 and layer.fill_value == pytest.approx(-0.5)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path, compile=False)
    images = np.random.default_rng(1).integers(0, 256, size=(2, 28, 28, 1), dtype=np.uint8)
    np.testing.assert_allclose(loaded.predict_on_batch(images), model.predict_on_batch(images))


def test_mixup_blends_images_and_labels_by_the_same_weight() -> None:
    x = np.zeros((64, 5, 5, 1), np.uint8)
    x[:32] = 200  # class 0 bright, class 1 black: an image's brightness is its class-0 share
    y = tf.one_hot(np.repeat([0, 1], 32), 2)
    images, labels = mix_batch(tf.constant(x), y, 0.4, None, tf.constant([1, 2], tf.int64))
    images, labels = np.asarray(images), np.asarray(labels)
    assert images.dtype == np.uint8
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(images.mean(axis=(1, 2, 3)) / 200, labels[:, 0], atol=0.5 / 200)
    assert 0.05 < np.mean((labels[:, 0] > 0.01) & (labels[:, 0] < 0.99)) < 1  # some blended


def test_cutmix_pastes_a_box_and_weighs_the_labels_by_its_area() -> None:
    x = np.zeros((64, 8, 8, 1), np.float32)
    x[:32] = 1.0
    y = tf.one_hot(np.repeat([0, 1], 32), 2)
    images, labels = mix_batch(tf.constant(x), y, None, 1.0, tf.constant([5, 6], tf.int64))
    images, labels = np.asarray(images), np.asarray(labels)
    np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), labels[:, 0], atol=1e-6)
    assert set(np.unique(images)) <= {0.0, 1.0}  # pasted, not blended
    for i, image in enumerate(images):  # the pixels taken from the partner form one rectangle
        taken = image[..., 0] != (1.0 if i < 32 else 0.0)
        if taken.any():
            rows, cols = np.nonzero(taken)
            area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
            assert area == taken.sum()


def test_mixed_batches_differ_each_epoch_and_repeat_with_the_seed() -> None:
    x = np.random.default_rng(0).random((16, 4, 4, 1)).astype("float32")
    batches = tf.data.Dataset.from_tensor_slices((x, np.arange(16) % 4)).batch(8)
    spec = AugmentationSpec(mixup={"alpha": 0.2}, cutmix={"alpha": 1.0})

    def epochs(seed: int) -> list[np.ndarray]:
        mixed = mix_batches(one_hot_labels(batches, 4), spec, seed)
        assert int(mixed.cardinality()) == 2
        return [np.concatenate([np.asarray(y) for _, y in mixed]) for _ in range(2)]

    first, second = epochs(7)
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(epochs(7)[0], first)
    plain = AugmentationSpec(flip="horizontal")
    assert mix_batches(batches, plain, 7) is batches


def test_losses_take_soft_labels_and_refuse_them_for_numbers() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], np.float32)
    soft = np.array([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]], np.float32)
    expected = float(np.mean(-(soft * np.log(probs)).sum(axis=1)))
    plain = make_loss(LossSpec(), Task.MULTICLASS, 3, soft_labels=True)
    assert float(plain(soft, probs)) == pytest.approx(expected, rel=1e-5)
    focal = make_loss(LossSpec(name=LossName.FOCAL, gamma=2.0), Task.MULTICLASS, 3)
    assert isinstance(focal, SparseFocalCrossentropy)
    focal_expected = -(soft * (1 - probs) ** 2 * np.log(probs)).sum(axis=1).mean()
    assert float(focal(soft, probs)) == pytest.approx(float(focal_expected), rel=1e-5)
    # one-hot rows give what the class indices give
    assert float(focal(np.eye(3)[[0, 2]], probs)) == pytest.approx(float(focal([0, 2], probs)))
    with pytest.raises(RecipeError, match="no classes to blend"):
        make_loss(LossSpec(), Task.REGRESSION, soft_labels=True)


def test_only_mixing_cnns_train_on_soft_labels_and_validation_stays_whole() -> None:
    assert not training_hooks(CnnSpec()).soft_labels
    assert not training_hooks(CnnSpec(augmentation={"crop": {"padding": 2}})).soft_labels
    hooks = training_hooks(CnnSpec(augmentation={"cutmix": {"alpha": 1.0}}))
    assert hooks.soft_labels
    manifest = image_io().manifest  # 10 classes
    x = np.random.default_rng(0).integers(0, 256, (16, 28, 28, 1), dtype=np.uint8)
    y = np.arange(16) % 10
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    xv, yv = next(iter(hooks.batches(batches, manifest, training=False, seed=1)))
    np.testing.assert_array_equal(np.asarray(yv), np.eye(10)[y])
    np.testing.assert_array_equal(np.asarray(xv), x)
    _, yt = next(iter(hooks.batches(batches, manifest, training=True, seed=1)))
    assert not np.array_equal(np.asarray(yt), np.eye(10)[y])
    with pytest.raises(ValueError, match="alpha"):
        AugmentationSpec(mixup={"alpha": 0})


@pytest.fixture
def images_project(tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter) -> Path:
    mixing = {"crop": {"padding": 2}, "mixup": {"alpha": 0.2}, "cutmix": {"alpha": 1.0}}
    write_recipe(
        idx_folder,
        data={"split": {"validation": 0.2}},
        model={"augmentation": mixing},
        train={"epochs": 2},
    )
    with contextlib.chdir(tmp_path):
        code, _, err = invoke("prepare")
    assert code == 0, err
    return tmp_path


def test_training_with_crop_mixup_and_cutmix_learns_and_refuses_class_weights(
    images_project: Path,
) -> None:
    with contextlib.chdir(images_project):
        code, _, err = invoke("train", "--set", "train.class_weight=balanced")
        assert code == 2 and "alpha: [w0, w1, ...]" in err and "Traceback" not in err
        assert not (images_project / "runs").exists()  # refused before a run folder
        code, _, err = invoke("train")
        assert code == 0, err
        run = next((images_project / "runs" / "tiny").iterdir())
        lines = (run / "history.csv").read_text().splitlines()
        last = dict(zip(lines[0].split(","), lines[-1].split(","), strict=True))
        code, out, err = invoke("evaluate", "--json")
    assert code == 0, err
    # validation is never mixed: the bands are easy, so it is read on whole images
    assert float(last["val_accuracy"]) > 0.9
    assert json.loads(out)["metrics"]["accuracy"] > 0.9
