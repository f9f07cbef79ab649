"""Where training runs: distribution strategy, mixed precision and XLA, decided once per run."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Any

from dltrain.backend import GPUS, keras, tf
from dltrain.errors import UsageError
from dltrain.recipe.schema import Switch, TrainSpec

MIXED_PRECISION_MIN_CAPABILITY = (7, 0)  # tensor cores: Volta and later


@dataclass(frozen=True)
class DevicePlan:
    strategy: Any  # a tf.distribute.Strategy
    mixed_precision: bool
    jit_compile: bool | None  # None: leave Keras's "auto"
    description: str


def plan_devices(spec: TrainSpec) -> DevicePlan:
    """Pick the strategy and precision for this machine and the recipe's switches.

    Several GPUs → MirroredStrategy; otherwise the default strategy. Several machines
    (``TF_CONFIG``) are refused until Keras 3 supports MultiWorkerMirroredStrategy in fit.
    Mixed precision ``auto`` is on only when every GPU has compute capability ≥ 7.0: on CPU it
    is slower. XLA ``auto`` is off on CPU, where it measured 2.5× slower for the reference CNN
    on these machines.

    Raises:
        UsageError: ``TF_CONFIG`` asks for several machines.
    """
    capabilities = [
        tf.config.experimental.get_device_details(gpu).get("compute_capability") for gpu in GPUS
    ]
    names = [
        tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in GPUS
    ]
    if os.environ.get("TF_CONFIG"):
        raise UsageError(
            "TF_CONFIG is set, which asks for training across several machines. dltrain cannot do "
            "that yet: Keras 3's model.fit fails under TensorFlow's MultiWorkerMirroredStrategy "
            "(keras-team/keras#20585, open). Unset TF_CONFIG to train on this machine, where "
            "dltrain uses every local GPU (MirroredStrategy)."
        )
    if len(GPUS) > 1:
        strategy = tf.distribute.MirroredStrategy()
        where = f"{len(GPUS)} GPUs (MirroredStrategy)"
    else:
        strategy = tf.distribute.get_strategy()
        where = "GPU" if GPUS else f"CPU ({platform.processor() or platform.machine()})"
    capable = bool(GPUS) and all(
        c is not None and tuple(c) >= MIXED_PRECISION_MIN_CAPABILITY for c in capabilities
    )
    mixed = spec.mixed_precision == Switch.ON or (spec.mixed_precision == Switch.AUTO and capable)
    jit: bool | None = {Switch.ON: True, Switch.OFF: False}.get(spec.jit_compile)
    if spec.jit_compile == Switch.AUTO and not GPUS:
        jit = False
    device = f"{where}: {', '.join(names)}" if names else where
    return DevicePlan(
        strategy=strategy,
        mixed_precision=mixed,
        jit_compile=jit,
        description=f"{device}; mixed precision {'on' if mixed else 'off'}; XLA "
        f"{'auto' if jit is None else 'on' if jit else 'off'}",
    )


def apply_precision(plan: DevicePlan) -> None:
    """Set Keras's global dtype policy for this process (before the model is built)."""
    keras.mixed_precision.set_global_policy("mixed_float16" if plan.mixed_precision else "float32")
