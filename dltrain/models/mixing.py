"""MixUp and CutMix: training batches blended in pairs, labels blended alike.

They act on whole batches of images *and* labels, so they live in the input pipeline rather
than in the model: after batching, each image is blended with another image of its batch (the
batch in a random order) and its one-hot label with that image's label, by the same weight.

- MixUp (Zhang et al. 2018): ``x = λ·x_i + (1 − λ)·x_j``, ``y = λ·y_i + (1 − λ)·y_j``.
- CutMix (Yun et al. 2019): a box covering a fraction ``1 − λ`` of the image is pasted from
  ``x_j``; the label weight is the share of pixels actually kept after the box is clipped.

``λ ~ Beta(alpha, alpha)`` per example. With both set, each example gets one or the other with
equal chance (as timm does per batch). Both are written as one per-pixel weight map ``w`` (λ
everywhere for MixUp, 0 inside the box for CutMix): ``x = w·x_i + (1 − w)·x_j`` and the label
weight is the mean of ``w``. Images keep their dtype: 8-bit pixels are blended in float and
rounded back, an error of under half a grey level, while the labels keep the exact weights.

The randomness is stateless, drawn per batch from the run's seed, afresh each epoch: the same
recipe draws the same blends again.
"""

from __future__ import annotations

from typing import Any

from dltrain.backend import tf
from dltrain.manifest import Manifest
from dltrain.recipe.models import AugmentationSpec
from dltrain.training.hooks import TrainingHooks


class BlendingTraining(TrainingHooks):
    """An image classifier trains as a predictor, except that MixUp and CutMix
    (``model.augmentation``) blend its training batches: then every split's labels are one-hot
    rows (the loss and accuracy read one kind of label throughout) and only the training
    batches are blended. The CNN and transfer families train so."""

    @property
    def soft_labels(self) -> bool:
        return bool(self.spec.augmentation.mixes)

    def batches(
        self, batches: tf.data.Dataset, manifest: Manifest, *, training: bool, seed: int
    ) -> tf.data.Dataset:
        if not self.soft_labels:
            return batches
        batches = one_hot_labels(batches, manifest.num_classes)
        return mix_batches(batches, self.spec.augmentation, seed) if training else batches


def one_hot_labels(batches: tf.data.Dataset, num_classes: int) -> tf.data.Dataset:
    """Batches whose integer class labels became one-hot rows of ``num_classes`` floats.

    Example:
        >>> batches = tf.data.Dataset.from_tensors((tf.zeros((2, 4, 4, 1)), tf.constant([2, 0])))
        >>> next(iter(one_hot_labels(batches, 3)))[1].numpy().tolist()
        [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """

    def encode(x: Any, y: tf.Tensor) -> tuple[Any, tf.Tensor]:
        labels = tf.reshape(tf.cast(y, tf.int32), [-1])  # (batch,) or (batch, 1)
        return x, tf.one_hot(labels, num_classes, dtype=tf.float32)

    return batches.map(encode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def mix_batches(batches: tf.data.Dataset, spec: AugmentationSpec, seed: int) -> tf.data.Dataset:
    """Blend each batch of (images, one-hot labels) as ``spec.mixup`` / ``spec.cutmix`` ask.

    Args:
        batches: training batches with one-hot (or already soft) labels.
        spec: the recipe's ``model.augmentation``; without mixup and cutmix nothing changes.
        seed: the run's seed; each batch draws from (seed, its index in the run).

    Returns:
        The batches, images and labels blended; as many as before.
    """
    if not spec.mixes:
        return batches
    mixup = spec.mixup.alpha if spec.mixup is not None else None
    cutmix = spec.cutmix.alpha if spec.cutmix is not None else None

    def mix(draw: tf.Tensor, batch: tuple[Any, tf.Tensor]) -> tuple[Any, tf.Tensor]:
        x, y = batch
        return mix_batch(x, y, mixup, cutmix, tf.stack([tf.constant(seed, tf.int64), draw]))

    # One random number per batch, drawn afresh each pass (epoch) and fixed by the seed, as
    # the shuffle of data/pipeline.py is.
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip(draws, batches).map(
        mix, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )


def mix_batch(
    x: tf.Tensor,
    y: tf.Tensor,
    mixup: float | None,
    cutmix: float | None,
    seed: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
    """One batch blended: MixUp with Beta(``mixup``), CutMix with Beta(``cutmix``), or either.

    Args:
        x: images, (batch, height, width, channels).
        y: class probabilities, (batch, classes).
        mixup: MixUp's alpha, or None.
        cutmix: CutMix's alpha, or None.
        seed: a stateless seed, two int64s.

    Returns:
        The blended images (``x``'s dtype) and labels.
    """
    seeds = tf.random.experimental.stateless_split(seed, 6)
    batch = tf.shape(x)[0]
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    partner = tf.random.experimental.stateless_shuffle(tf.range(batch), seed=seeds[0])
    weights = []  # per-pixel weight maps of x, (batch, height, width, 1)
    if mixup is not None:
        lam = _beta(batch, mixup, seeds[1])
        weights.append(tf.ones((batch, height, width, 1)) * lam[:, None, None, None])
    if cutmix is not None:
        lam = _beta(batch, cutmix, seeds[2])
        weights.append(_cutmix_keep(lam, height, width, seeds[3]))
    keep = weights[0]
    if len(weights) == 2:
        use_mixup = tf.random.stateless_uniform((batch, 1, 1, 1), seeds[4]) < 0.5
        keep = tf.where(use_mixup, weights[0], weights[1])
    images = tf.cast(x, tf.float32)
    blended = keep * images + (1.0 - keep) * tf.gather(images, partner)
    if x.dtype.is_integer:
        blended = tf.round(blended)
    share = tf.reduce_mean(keep, axis=[1, 2, 3])[:, None]
    labels = tf.cast(y, tf.float32)
    mixed = share * labels + (1.0 - share) * tf.gather(labels, partner)
    return tf.cast(blended, x.dtype), mixed


def _beta(size: tf.Tensor, alpha: float, seed: tf.Tensor) -> tf.Tensor:
    """``size`` draws of Beta(alpha, alpha), as G1 / (G1 + G2) of two Gamma(alpha) draws."""
    gammas = tf.random.stateless_gamma((2, size), seed, alpha=alpha)
    return gammas[0] / tf.maximum(gammas[0] + gammas[1], 1e-12)


def _cutmix_keep(lam: tf.Tensor, height: tf.Tensor, width: tf.Tensor, seed: tf.Tensor) -> Any:
    """1 outside and 0 inside each example's box, a box of about ``1 − λ`` of the image placed
    at a uniform centre and clipped to the image (Yun et al.'s sampling)."""
    size = tf.shape(lam)[0]
    ratio = tf.sqrt(1.0 - lam)
    box_h = tf.cast(height, tf.float32) * ratio
    box_w = tf.cast(width, tf.float32) * ratio
    centres = tf.random.stateless_uniform((size, 2), seed)
    cy = centres[:, 0] * tf.cast(height, tf.float32)
    cx = centres[:, 1] * tf.cast(width, tf.float32)
    top, bottom = tf.round(cy - box_h / 2), tf.round(cy + box_h / 2)
    left, right = tf.round(cx - box_w / 2), tf.round(cx + box_w / 2)
    rows = tf.cast(tf.range(height), tf.float32)[None, :]
    cols = tf.cast(tf.range(width), tf.float32)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < bottom[:, None])  # (batch, height)
    in_cols = (cols >= left[:, None]) & (cols < right[:, None])  # (batch, width)
    inside = in_rows[:, :, None] & in_cols[:, None, :]
    return tf.cast(~inside, tf.float32)[..., None]
