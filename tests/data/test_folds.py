"""K-fold assignment (data/folds.py): stratified, grouped and time-ordered folds of the pool."""

from __future__ import annotations

import numpy as np
import pytest

from dltrain.data.folds import (
    FoldMethod,
    FoldRequest,
    assign_folds,
    choose_method,
    pool_splits,
    take_rows,
)
from dltrain.errors import DataError


def _labels(num: int, shares: tuple[float, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(len(shares), size=num, p=shares)


def _check_partition(num: int, folds: list, *, every_row_held_out: bool = True) -> None:
    held = np.concatenate([f.held_out for f in folds])
    assert len(held) == len(np.unique(held))  # no row is held out twice
    if every_row_held_out:
        assert sorted(held.tolist()) == list(range(num))
    for fold in folds:
        assert not set(fold.train.tolist()) & set(fold.held_out.tolist())
        if every_row_held_out:
            assert len(fold.train) + len(fold.held_out) == num


@pytest.mark.parametrize(
    ("classification", "time_ordered", "grouped", "expected"),
    [
        (True, False, False, FoldMethod.STRATIFIED),
        (False, False, False, FoldMethod.RANDOM),
        (True, False, True, FoldMethod.STRATIFIED_GROUP),
        (False, False, True, FoldMethod.GROUP),
        (True, True, True, FoldMethod.TIME),  # time order wins: the future never trains
        (False, True, False, FoldMethod.TIME),
    ],
)
def test_the_method_follows_the_data(
    classification: bool, time_ordered: bool, grouped: bool, expected: FoldMethod
) -> None:
    method = choose_method(
        classification=classification, time_ordered=time_ordered, grouped=grouped
    )
    assert method is expected


def test_stratified_folds_hold_each_class_out_in_its_share() -> None:
    y = _labels(300, (0.7, 0.2, 0.1))
    request = FoldRequest(num_folds=5, seed=1, method=FoldMethod.STRATIFIED, labels=y)
    folds = assign_folds(len(y), request)
    assert [f.number for f in folds] == [1, 2, 3, 4, 5]
    _check_partition(len(y), folds)
    overall = np.bincount(y, minlength=3) / len(y)
    for fold in folds:
        share = np.bincount(y[fold.held_out], minlength=3) / len(fold.held_out)
        np.testing.assert_allclose(share, overall, atol=0.02)


def test_shuffled_folds_follow_the_seed() -> None:
    y = _labels(100, (0.5, 0.5))

    def held_out(seed: int) -> list[list[int]]:
        request = FoldRequest(num_folds=4, seed=seed, method=FoldMethod.STRATIFIED, labels=y)
        return [f.held_out.tolist() for f in assign_folds(len(y), request)]

    assert held_out(3) == held_out(3)
    assert held_out(3) != held_out(4)
    random = assign_folds(100, FoldRequest(num_folds=4, seed=3, method=FoldMethod.RANDOM))
    _check_partition(100, random)
    assert random[0].held_out.tolist() != list(range(25))  # shuffled, not the first quarter


@pytest.mark.parametrize("method", [FoldMethod.GROUP, FoldMethod.STRATIFIED_GROUP])
def test_group_folds_never_split_a_group(method: FoldMethod) -> None:
    rng = np.random.default_rng(5)
    groups = rng.integers(0, 30, size=240).astype(str)  # group keys as a table's strings
    y = _labels(240, (0.6, 0.4), seed=2)
    request = FoldRequest(num_folds=3, seed=0, method=method, labels=y, groups=groups)
    folds = assign_folds(len(y), request)
    _check_partition(len(y), folds)
    for fold in folds:
        assert not set(groups[fold.train]) & set(groups[fold.held_out])


def test_time_folds_train_on_the_past_and_hold_out_what_follows() -> None:
    request = FoldRequest(num_folds=3, seed=0, method=FoldMethod.TIME, gap=2)
    folds = assign_folds(40, request)
    _check_partition(40, folds, every_row_held_out=False)
    held = np.concatenate([f.held_out for f in folds])
    assert held.min() > 0 and held.max() == 39  # the first block only trains; the last is held
    for fold in folds:
        assert fold.train.max() + 2 < fold.held_out.min()  # the gap lies between them
        assert fold.train.min() == 0  # an expanding window of the past
    assert len(folds[0].train) < len(folds[1].train) < len(folds[2].train)


def test_a_gap_longer_than_a_block_is_shrunk_rather_than_leaving_nothing_to_train() -> None:
    folds = assign_folds(12, FoldRequest(num_folds=3, seed=0, method=FoldMethod.TIME, gap=50))
    assert all(len(f.train) > 0 for f in folds)


@pytest.mark.parametrize(
    ("request_", "num", "expected"),
    [
        (FoldRequest(num_folds=5, seed=0, method=FoldMethod.RANDOM), 4, "at least 5"),
        (FoldRequest(num_folds=3, seed=0, method=FoldMethod.TIME), 5, "at least 6"),
        (
            FoldRequest(
                num_folds=4,
                seed=0,
                method=FoldMethod.GROUP,
                groups=np.array(["a", "b", "c"] * 4),
            ),
            12,
            "at least 4 groups",
        ),
        (
            FoldRequest(
                num_folds=5,
                seed=0,
                method=FoldMethod.STRATIFIED,
                labels=np.array([0] * 20 + [1] * 3),
            ),
            23,
            "smallest class has 3",
        ),
    ],
)
def test_too_little_data_for_k_folds_is_refused_with_the_fix(
    request_: FoldRequest, num: int, expected: str
) -> None:
    with pytest.raises(DataError, match=expected) as caught:
        assign_folds(num, request_)
    assert "--folds" in str(caught.value)


def test_the_pool_is_training_rows_then_validation_rows() -> None:
    train = ({"a": np.array([1.0, 2.0]), "b": np.array(["x", "y"], dtype=object)}, np.array([0, 1]))
    validation = ({"a": np.array([3.0]), "b": np.array(["z"], dtype=object)}, np.array([1]))
    x, y = pool_splits(train, validation)
    assert isinstance(x, dict)
    assert x["a"].tolist() == [1.0, 2.0, 3.0] and x["b"].tolist() == ["x", "y", "z"]
    assert y.tolist() == [0, 1, 1]
    picked = take_rows(x, np.array([2, 0]))
    assert isinstance(picked, dict) and picked["b"].tolist() == ["z", "x"]
    images, labels = pool_splits((np.zeros((2, 3, 3)), np.array([0, 1])), (np.ones((1, 3, 3)), [2]))
    assert images.shape == (3, 3, 3) and labels.tolist() == [0, 1, 2]
