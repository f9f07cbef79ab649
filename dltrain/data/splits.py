"""Assigning examples to train / validation / test: random, stratified, by time, by group or hash.

Every method is seeded (the hash method is stable across seeds on purpose: a row keeps its split
as the source grows). Shares are of the whole pool, so validation 0.1 and test 0.1 give exactly
80/10/10 for the random, stratified and time methods; group and hash splits are as close as the
group sizes allow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dltrain.data.hashing import unit_interval
from dltrain.errors import DataError
from dltrain.recipe.data import SplitMethod, SplitSpec

TRAIN, VALIDATION, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "validation", "test")


def resolve_method(spec: SplitSpec, *, classification: bool) -> SplitMethod:
    """``auto`` → stratified for classes (unless ``stratify: false``), random otherwise."""
    if spec.method != SplitMethod.AUTO:
        return spec.method
    return SplitMethod.STRATIFIED if classification and spec.stratify else SplitMethod.RANDOM


@dataclass(frozen=True, eq=False, kw_only=True)
class SplitRequest:
    """How to split a pool of examples: the recipe's shares, the seed, the method and what it
    splits by.

    Attributes:
        spec: the recipe's ``data.split``.
        seed: the recipe's seed.
        method: a resolved method (not ``auto``).
        has_test: the source brings its own test set, so the pool gives none.
        source: named in error messages.
        labels: class indices of the examples; stratified splits use them, others ignore them.
        class_names: names of the classes, for error messages.
        order: time (or any sortable) values, for time splits.
        keys: 64-bit hashes of the group/hash column, for group and hash splits.

    Example:
        ``split_indices(len(y), SplitRequest(spec=recipe.data.split, seed=42,
        method=SplitMethod.STRATIFIED, has_test=False, source="x.npz", labels=y))`` gives the
        rows of train, validation and test.
    """

    spec: SplitSpec
    seed: int
    method: SplitMethod
    has_test: bool
    source: str
    labels: np.ndarray | None = None
    class_names: list[str] | None = None
    order: np.ndarray | None = None
    keys: np.ndarray | None = None

    @property
    def stratify(self) -> np.ndarray | None:
        """The labels when the split is stratified, else None."""
        return self.labels if self.method == SplitMethod.STRATIFIED else None


def assign_splits(num: int, request: SplitRequest) -> np.ndarray:
    """The split (TRAIN, VALIDATION or TEST) of each of ``num`` pooled examples.

    Args:
        num: examples in the pool (a source's own test set is not part of it).
        request: how to split them; its per-example arrays have ``num`` entries.

    Returns:
        An int8 array of ``num`` split codes.

    Raises:
        DataError: too few examples, or a class too small to stratify.
    """
    splits = np.full(num, TRAIN, dtype=np.int8)
    for split, rows in enumerate(split_indices(num, request)):
        splits[rows] = split
    return splits


def split_indices(num: int, request: SplitRequest) -> list[np.ndarray]:
    """The rows of the train, validation and test splits (see ``assign_splits``).

    Random and stratified splits come in scikit-learn's shuffled order, as prepare has always
    stored them; the other methods in row order.

    Args:
        num: examples in the pool.
        request: how to split them.

    Returns:
        The row indices of train, validation and test, in that order.

    Raises:
        DataError: too few examples, or a class too small to stratify.
    """
    spec, seed, method = request.spec, request.seed, request.method
    num_test, num_validation = _split_sizes(num, request)
    rows = np.arange(num)
    if method in (SplitMethod.GROUP, SplitMethod.HASH):
        if request.keys is None:
            raise ValueError("group and hash splits need keys")
        u = unit_interval(request.keys, seed if method == SplitMethod.GROUP else 0)
        test_share = 0.0 if request.has_test else spec.test
        return [
            rows[u >= test_share + spec.validation],
            rows[(u >= test_share) & (u < test_share + spec.validation)],
            rows[u < test_share],
        ]
    if method == SplitMethod.TIME:
        if request.order is None:
            raise ValueError("time splits need an order")
        ranked = np.argsort(request.order, kind="stable")
        cut = num - num_test - num_validation
        return [
            np.sort(ranked[:cut]),
            np.sort(ranked[cut : num - num_test]),
            np.sort(ranked[num - num_test :]),
        ]
    stratify, source = request.stratify, request.source
    if stratify is not None:
        _check_stratifiable(stratify, request.class_names, source)
    pool, test_rows = rows, rows[:0]
    if num_test:
        pool, test_rows = _hold_out(rows, num_test, seed, stratify, source)
    pool_labels = stratify[pool] if stratify is not None else None
    train_rows, validation_rows = _hold_out(pool, num_validation, seed + 1, pool_labels, source)
    return [train_rows, validation_rows, test_rows]


def _split_sizes(num: int, request: SplitRequest) -> tuple[int, int]:
    """How many of ``num`` pooled examples go to test and to validation.

    Raises:
        DataError: too few examples to leave any for training.
    """
    spec, has_test, source = request.spec, request.has_test, request.source
    num_test = 0 if has_test else max(1, round(spec.test * num))
    num_validation = max(1, round(spec.validation * num))
    if num - num_test - num_validation < 1:
        raise DataError(
            f"{source} has {num} usable example(s): too few to hold out {num_validation} for "
            f"validation{'' if has_test else f' and {num_test} for test'} and still train. "
            f"Use more data or smaller `data.split` shares."
        )
    return num_test, num_validation


def _check_stratifiable(labels: np.ndarray, class_names: list[str] | None, source: str) -> None:
    _check_class_sizes(np.bincount(labels), class_names, source)


def _check_class_sizes(counts: np.ndarray, class_names: list[str] | None, source: str) -> None:
    rare = [
        class_names[i] if class_names and i < len(class_names) else str(i)
        for i, c in enumerate(counts)
        if c == 1
    ]
    if rare:
        raise DataError(
            f"Cannot stratify the split of {source}: class(es) {', '.join(rare)} have a "
            f"single example, which cannot be in two splits. Add examples, drop the class, or "
            f"set `data.split.stratify: false`."
        )


CHUNK_ROWS = 1 << 20  # rows per step of assign_in_chunks
SKLEARN_LIMIT = 200_000  # above this many rows, our own (equally exact) split is 20x faster
FEW_CLASSES = 32


def _hold_out(
    indices: np.ndarray, count: int, seed: int, labels: np.ndarray | None, source: str
) -> tuple[np.ndarray, np.ndarray]:
    if len(indices) > SKLEARN_LIMIT:
        return _fast_hold_out(indices, count, seed, labels)
    # Imported here: scikit-learn costs ~1 s of CPU and 80 MB to import, which a large table's
    # prepare (our own split above) never needs.
    from sklearn.model_selection import train_test_split

    try:
        kept, held = train_test_split(indices, test_size=count, random_state=seed, stratify=labels)
    except ValueError as exc:
        raise DataError(
            f"Cannot hold out {count} of {len(indices)} examples of {source}: {exc}. "
            f"Use more data, a different `data.split` share, or `data.split.stratify: false`."
        ) from None
    return np.asarray(kept), np.asarray(held)


HASH_TABLE_LIMIT = 2_000_000  # beyond, sort instead: a hash table of 10M keys costs ~400 MB


def leaking_counts(feature_hashes: np.ndarray, splits: np.ndarray) -> dict[str, int]:
    """How many validation and test rows have exactly the features of some training row."""
    train_hashes = feature_hashes[splits == TRAIN]
    small = len(feature_hashes) <= HASH_TABLE_LIMIT
    # pandas' hash table is 5x faster than sorting 1M uint64 (numpy's unique/isin 20x slower)
    train: pd.Series | np.ndarray = pd.Series(train_hashes) if small else np.sort(train_hashes)
    counts = {}
    for s in (VALIDATION, TEST):
        rows = feature_hashes[splits == s]
        if not len(rows):
            continue
        if isinstance(train, pd.Series):
            counts[SPLIT_NAMES[s]] = int(pd.Series(rows).isin(train).sum())
        elif len(train):
            at = np.minimum(np.searchsorted(train, rows), len(train) - 1)
            counts[SPLIT_NAMES[s]] = int((train[at] == rows).sum())
        else:
            counts[SPLIT_NAMES[s]] = 0
    return counts


def first_occurrences(hashes: np.ndarray) -> np.ndarray:
    """A mask of the rows whose hash appears for the first time (in row order)."""
    if len(hashes) <= HASH_TABLE_LIMIT:
        return np.asarray(~pd.Series(hashes).duplicated(keep="first").to_numpy())
    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    first = np.ones(len(hashes), bool)
    first[1:] = ordered[1:] != ordered[:-1]
    del ordered
    mask = np.zeros(len(hashes), bool)
    mask[order[first]] = True
    return mask


def _fast_hold_out(
    indices: np.ndarray, count: int, seed: int, labels: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``count`` rows at random, per class in proportion when ``labels`` are given
    (largest remainders, so the total is exact), as scikit-learn does but without its
    per-class Python loops over the whole array."""
    rng = np.random.default_rng(seed)
    if labels is None:
        shuffled = rng.permutation(indices)
        return shuffled[count:], shuffled[:count]
    classes = int(labels.max()) + 1 if len(labels) else 0
    if classes <= FEW_CLASSES:  # a pass per class beats sorting a million random keys
        sizes = np.bincount(labels, minlength=classes)
        quota = sizes * count / len(indices)
        take = np.floor(quota).astype(np.int64)
        short = count - int(take.sum())
        if short:
            take[np.argsort(-(quota - take), kind="stable")[:short]] += 1
        held_mask = np.zeros(len(indices), bool)
        for c in range(classes):
            if take[c]:
                members = np.flatnonzero(labels == c)
                held_mask[rng.choice(members, int(take[c]), replace=False)] = True
        return indices[~held_mask], indices[held_mask]
    inverse = labels.astype(np.int64, copy=False)  # class indices 0 … k-1
    sizes = np.bincount(inverse)
    present = sizes > 0
    inverse = (np.cumsum(present) - 1)[inverse]  # drop absent classes
    sizes = sizes[present]
    quota = sizes * count / len(indices)
    take = np.floor(quota).astype(np.int64)
    short = count - int(take.sum())
    if short:
        take[np.argsort(-(quota - take), kind="stable")[:short]] += 1
    order = np.argsort(inverse + rng.random(len(indices)))  # by class, then at random within
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(len(indices), np.int64)
    rank[order] = np.arange(len(indices)) - np.repeat(starts, sizes)
    held = rank < take[inverse]
    return indices[~held], indices[held]


def _largest_remainders(sizes: np.ndarray, count: int) -> np.ndarray:
    """``count`` split over classes in proportion to ``sizes``, exactly (largest remainders)."""
    total = int(sizes.sum())
    quota = sizes * count / total if total else np.zeros(len(sizes))
    take = np.floor(quota).astype(np.int64)
    remainder = np.where(sizes > 0, quota - take, -1.0)  # an absent class never gets one
    short = count - int(take.sum())
    if short:
        take[np.argsort(-remainder, kind="stable")[:short]] += 1
    return take


def assign_in_chunks(pool: np.ndarray, out: np.ndarray, request: SplitRequest) -> None:
    """Random or stratified splits of a large pool, written into ``out`` a chunk at a time.

    The same exact shares per class as ``split_indices`` (largest remainders), but where it
    indexes the whole pool (8 bytes a row, several times over), this keeps memory at one
    chunk: each chunk's rows of a class get their share of what the class has left to give
    from a multivariate hypergeometric draw, in random order. That is the distribution of a
    uniformly random choice of the class's test and validation rows, drawn sequentially.

    Args:
        pool: per row, whether it takes part (rows outside keep their ``out`` value).
        out: per row (int8), receives TRAIN, VALIDATION or TEST for the pooled rows.
        request: a random or stratified split; its labels (stratified) are per row, not per
            pooled row.

    Raises:
        DataError: too few examples, or a class too small to stratify.
    """
    labels = request.stratify
    sizes = _pooled_class_sizes(pool, labels)
    num_classes = len(sizes)
    num_test, num_validation = _split_sizes(int(sizes.sum()), request)
    if labels is not None:
        _check_class_sizes(sizes, request.class_names, request.source)
    test = _largest_remainders(sizes, num_test) if num_test else np.zeros(num_classes, np.int64)
    validation = _largest_remainders(sizes - test, num_validation)
    left = np.stack([sizes - test - validation, validation, test], axis=1)
    rng = np.random.default_rng(request.seed)
    chunk = CHUNK_ROWS
    for start in range(0, len(pool), chunk):
        rows = np.flatnonzero(pool[start : start + chunk])
        if not len(rows):
            continue
        part = (
            labels[start : start + chunk][rows].astype(np.int64)
            if labels is not None
            else np.zeros(len(rows), np.int64)
        )
        out[start + rows] = _draw_chunk(part, left, rng)


def _pooled_class_sizes(pool: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """How many pooled rows each class has (one count for an unstratified split), by chunks."""
    chunk = CHUNK_ROWS
    sizes = np.zeros(1, np.int64)
    for start in range(0, len(pool), chunk):
        inside = pool[start : start + chunk]
        if labels is None:
            sizes[0] += int(inside.sum())
        else:
            part = np.bincount(labels[start : start + chunk][inside])
            if len(part) > len(sizes):
                sizes = np.concatenate([sizes, np.zeros(len(part) - len(sizes), np.int64)])
            sizes[: len(part)] += part
    return sizes


def _draw_chunk(part: np.ndarray, left: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The splits of one chunk's pooled rows (class ``part``), taken from what each class has
    ``left`` to give (per class: train, validation, test counts, updated in place)."""
    codes = np.array([TRAIN, VALIDATION, TEST], np.int8)
    order = np.argsort(part, kind="stable")  # the rows of each class, together
    counts = np.bincount(part, minlength=len(left))
    assigned = np.empty(len(part), np.int8)
    position = 0
    for c in np.flatnonzero(counts).tolist():
        members = int(counts[c])
        draw = rng.multivariate_hypergeometric(left[c], members)
        left[c] -= draw
        values = np.repeat(codes, draw)
        rng.shuffle(values)
        assigned[order[position : position + members]] = values
        position += members
    return assigned
