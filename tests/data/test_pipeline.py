"""make_dataset: every example once per epoch, reshuffled each epoch, reproducible by seed."""

from __future__ import annotations

import numpy as np

from dltrain.data.pipeline import make_dataset


def epoch(dataset: object) -> tuple[list[int], list[int]]:
    sizes, order = [], []
    for x, y in dataset:  # type: ignore[attr-defined]
        sizes.append(int(y.shape[0]))
        order.extend(np.asarray(y).tolist())
        np.testing.assert_array_equal(np.asarray(x["n"]), np.asarray(y, np.float32) * 2)
    return sizes, order


def test_each_epoch_is_a_new_permutation_of_every_example() -> None:
    y = np.arange(10, dtype=np.int64)
    x = {"n": (y * 2).astype(np.float32), "s": np.array([f"r{i}" for i in y], dtype=object)}
    dataset = make_dataset(x, y, 4, shuffle=True, seed=3)
    sizes, first = epoch(dataset)
    _, second = epoch(dataset)
    assert sizes == [4, 4, 2]
    assert sorted(first) == sorted(second) == list(range(10))
    assert first != second  # reshuffled
    assert epoch(make_dataset(x, y, 4, shuffle=True, seed=3))[1] == first  # same seed, same order
    assert epoch(make_dataset(x, y, 4, shuffle=False, seed=3))[1] == list(range(10))


def test_arrays_and_tiny_splits() -> None:
    images = np.arange(3 * 2 * 2, dtype=np.uint8).reshape(3, 2, 2)
    batches = list(make_dataset(images, np.array([0, 1, 2]), 8, shuffle=False, seed=0))
    assert len(batches) == 1 and batches[0][0].shape == (3, 2, 2)
