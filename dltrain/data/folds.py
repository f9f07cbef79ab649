"""K-fold cross-validation folds over the training pool (train + validation), never the test split.

Which splitter scikit-learn lends depends on the data: time-ordered folds for a series or a table
split by time (each fold trains on the past and holds out what follows), group folds when the
recipe splits by a group column (a group's rows stay together), stratified folds for classes, and
shuffled folds otherwise. Shuffled splitters are seeded with the recipe's seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    TimeSeriesSplit,
)

from dltrain.data.store import Features
from dltrain.errors import DataError


class FoldMethod(StrEnum):
    """How the pool is cut into folds: the scikit-learn splitter used."""

    RANDOM = "random"  # KFold, shuffled
    STRATIFIED = "stratified"  # StratifiedKFold, shuffled
    GROUP = "group"  # GroupKFold
    STRATIFIED_GROUP = "stratified_group"  # StratifiedGroupKFold, shuffled
    TIME = "time"  # TimeSeriesSplit: expanding past, the next block held out


def choose_method(*, classification: bool, time_ordered: bool, grouped: bool) -> FoldMethod:
    """The fold method for the data: time order first, then groups, then classes.

    Args:
        classification: the target is classes.
        time_ordered: the pool is in time order (a series' windows, or a table split by time).
        grouped: the recipe splits by a group column, whose values are known for each row.

    Example:
        >>> choose_method(classification=True, time_ordered=False, grouped=False).value
        'stratified'
    """
    if time_ordered:
        return FoldMethod.TIME
    if grouped:
        return FoldMethod.STRATIFIED_GROUP if classification else FoldMethod.GROUP
    return FoldMethod.STRATIFIED if classification else FoldMethod.RANDOM


@dataclass(frozen=True)
class FoldRequest:
    """How to cut a pool of examples into folds.

    Attributes:
        num_folds: K, at least 2.
        seed: the recipe's seed, for the shuffled splitters.
        method: the splitter.
        labels: class indices of the pool's examples (stratified methods).
        groups: the group key of each example (group methods).
        gap: time-ordered folds: examples left out between a fold's training rows and its
            held-out rows (a forecaster's horizon beyond one step would otherwise see targets
            that the held-out windows predict).
    """

    num_folds: int
    seed: int
    method: FoldMethod
    labels: np.ndarray | None = None
    groups: np.ndarray | None = None
    gap: int = 0


@dataclass(frozen=True)
class Fold:
    """One fold: the pool's rows it trains on and the rows it holds out (its validation)."""

    number: int  # 1-based
    train: np.ndarray
    held_out: np.ndarray


def assign_folds(num: int, request: FoldRequest) -> list[Fold]:
    """Cut ``num`` pooled examples into ``request.num_folds`` folds.

    Every example is held out by exactly one fold, except under time order, where the first block
    only ever trains (nothing earlier could predict it).

    Args:
        num: examples in the pool.
        request: how to cut them.

    Returns:
        The folds, numbered from 1.

    Raises:
        DataError: too few examples, groups or (stratified) members of a class for K folds.

    Example:
        >>> folds = assign_folds(10, FoldRequest(num_folds=5, seed=0, method=FoldMethod.RANDOM))
        >>> sorted(np.concatenate([f.held_out for f in folds]).tolist()) == list(range(10))
        True
    """
    k, method = request.num_folds, request.method
    if k < 2:
        raise ValueError(f"K-fold cross-validation needs num_folds >= 2. Received: {k}")
    least = 2 * k if method == FoldMethod.TIME else k
    if num < least:
        raise DataError(
            f"Cross-validation with {k} folds needs at least {least} training and validation "
            f"examples; the prepared dataset has {num}. Use fewer folds (--folds), or more data."
        )
    _check_groups(k, request)
    _check_classes(k, request)
    x = np.zeros((num, 1))
    if method == FoldMethod.TIME:
        pairs = TimeSeriesSplit(n_splits=k, gap=_time_gap(num, k, request.gap)).split(x)
    elif method == FoldMethod.GROUP:
        pairs = GroupKFold(n_splits=k).split(x, groups=request.groups)
    elif method == FoldMethod.STRATIFIED_GROUP:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=request.seed)
        pairs = splitter.split(x, request.labels, groups=request.groups)
    elif method == FoldMethod.STRATIFIED:
        splitter_s = StratifiedKFold(n_splits=k, shuffle=True, random_state=request.seed)
        pairs = splitter_s.split(x, request.labels)
    else:
        pairs = KFold(n_splits=k, shuffle=True, random_state=request.seed).split(x)
    return [
        Fold(number=i, train=np.asarray(train), held_out=np.asarray(held))
        for i, (train, held) in enumerate(pairs, start=1)
    ]


def pool_splits(
    train: tuple[Features, np.ndarray], validation: tuple[Features, np.ndarray]
) -> tuple[Features, np.ndarray]:
    """The training and validation splits as one pool, training rows first (time order kept).

    Args:
        train: the training split's ``(x, y)``, as stored (not resampled).
        validation: the validation split's ``(x, y)``.

    Returns:
        The pooled ``(x, y)``.
    """
    (x_train, y_train), (x_val, y_val) = train, validation
    y = np.concatenate([y_train, y_val])
    if isinstance(x_train, dict):
        assert isinstance(x_val, dict)
        return {k: np.concatenate([x_train[k], x_val[k]]) for k in x_train}, y
    assert not isinstance(x_val, dict)
    return np.concatenate([x_train, x_val]), y


def take_rows(x: Features, rows: np.ndarray) -> Features:
    """The examples ``rows`` of features ``x`` (an array, or a table's dict of columns)."""
    if isinstance(x, dict):
        return {k: v[rows] for k, v in x.items()}
    return x[rows]


def _check_groups(k: int, request: FoldRequest) -> None:
    if request.method not in (FoldMethod.GROUP, FoldMethod.STRATIFIED_GROUP):
        return
    if request.groups is None:
        raise ValueError("group folds need the groups")
    num_groups = len(np.unique(request.groups))
    if num_groups < k:
        raise DataError(
            f"Group cross-validation with {k} folds needs at least {k} groups (each fold holds "
            f"whole groups out); the training and validation rows have {num_groups}. Use at most "
            f"{num_groups} folds (--folds), or split by another column."
        )


def _check_classes(k: int, request: FoldRequest) -> None:
    if request.method not in (FoldMethod.STRATIFIED, FoldMethod.STRATIFIED_GROUP):
        return
    if request.labels is None:
        raise ValueError("stratified folds need the labels")
    _, counts = np.unique(request.labels, return_counts=True)
    if counts.min() < k:
        raise DataError(
            f"Stratified cross-validation with {k} folds needs every class at least {k} times in "
            f"the training and validation rows, so each fold holds each class out; the smallest "
            f"class has {counts.min()}. Use at most {max(2, int(counts.min()))} folds (--folds), "
            f"or merge rare classes."
        )


def _time_gap(num: int, k: int, gap: int) -> int:
    """The gap, shrunk where it would leave a fold nothing to train on."""
    block = num // (k + 1)
    return max(0, min(gap, block - 1))
