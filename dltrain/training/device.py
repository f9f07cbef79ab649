"""Where training runs: distribution strategy, mixed precision and XLA, decided once per run."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dltrain.backend import GPUS, keras, tf
from dltrain.errors import UsageError
from dltrain.recipe.schema import Switch, TrainSpec

MIXED_PRECISION_MIN_CAPABILITY = (7, 0)  # tensor cores: Volta and later
# The /proc/cpuinfo flags of CPUs that multiply bfloat16 natively (AVX-512 BF16: AMD Zen 4,
# Intel Cooper Lake; AMX: Intel Sapphire Rapids). Elsewhere oneDNN emulates bfloat16, slowly.
BFLOAT16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class Cluster:
    """This process's place in a ``TF_CONFIG`` cluster of workers."""

    num_workers: int
    task_type: str  # "worker" or "chief"
    task_index: int
    is_chief: bool  # the one worker that writes the run folder


@dataclass(frozen=True)
class DevicePlan:
    strategy: Any  # a tf.distribute.Strategy
    mixed_precision: bool
    jit_compile: bool | None  # None: leave Keras's "auto"
    description: str
    cluster: Cluster | None = None  # set when TF_CONFIG spreads training over several workers

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run folder (always, on one machine)."""
        return self.cluster is None or self.cluster.is_chief

    @property
    def precision_policy(self) -> str:
        """Keras's dtype policy: float16 on GPUs (tensor cores), bfloat16 on CPUs.

        CPUs have no fast float16 (the Fashion-MNIST recipe's CNN trained 5.8x slower in it
        than in float32), but recent ones multiply bfloat16 natively: that CNN trained 1.5x as
        fast as in float32 on an AMD EPYC with AVX-512 BF16 (benchmarks/RESULTS.md,
        "Fashion-MNIST in bfloat16 on the CPU").
        """
        if not self.mixed_precision:
            return "float32"
        return "mixed_float16" if GPUS else "mixed_bfloat16"


_multiworker_strategy: Any = None  # one per process: TensorFlow cannot configure a second


def read_cluster(text: str) -> Cluster:
    """Parse and check a ``TF_CONFIG`` value: which workers exist and which one this is.

    Example: ``{"cluster": {"worker": ["host1:2222", "host2:2222"]},
    "task": {"type": "worker", "index": 0}}``. Worker 0 is the chief unless the cluster names
    a ``chief`` of its own.

    Raises:
        UsageError: not JSON, or not a cluster of workers this process belongs to.
    """
    example = (
        '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"TF_CONFIG is set but is not valid JSON ({error.msg} at character {error.pos}): "
            f"{text[:200]!r}. It must describe the cluster and this worker's place in it, e.g. "
            f"TF_CONFIG='{example}'. Unset TF_CONFIG to train on this machine only."
        ) from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise UsageError(
            f'TF_CONFIG must hold a "cluster" mapping and a "task" mapping. Received: '
            f"{text[:200]}. Expected, e.g.: {example}. Unset TF_CONFIG to train on this "
            f"machine only."
        )
    unsupported = sorted(set(cluster) - {"worker", "chief"})
    if unsupported:
        raise UsageError(
            f"TF_CONFIG's cluster has {', '.join(repr(k) for k in unsupported)} jobs, but dltrain "
            f'trains with MultiWorkerMirroredStrategy, whose cluster has only "worker" (and '
            f'optionally one "chief") jobs; parameter servers and evaluators are not used. '
            f"Remove those jobs from TF_CONFIG."
        )
    jobs = {name: cluster.get(name) or [] for name in ("chief", "worker") if name in cluster}
    for name, hosts in jobs.items():
        if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
            raise UsageError(
                f'TF_CONFIG\'s cluster.{name} must be a list of "host:port" strings. Received: '
                f"{hosts!r}. Expected, e.g.: {example}."
            )
    if len(jobs.get("chief", [])) > 1:
        raise UsageError(
            f"TF_CONFIG's cluster names {len(jobs['chief'])} chiefs; there can be one. Make the "
            f"others workers."
        )
    task_type, task_index = task.get("type"), task.get("index", 0)
    hosts = jobs.get(task_type) if isinstance(task_type, str) else None
    if hosts is None or not isinstance(task_index, int) or not 0 <= task_index < len(hosts):
        raise UsageError(
            f"TF_CONFIG's task is {json.dumps(task)}, which is not a member of its cluster "
            f'({json.dumps(jobs)}). Expected "type" to be one of the cluster\'s jobs '
            f'({", ".join(jobs)}) and "index" a position in its list (from 0). Give every '
            f"machine the same cluster and its own task."
        )
    num_workers = sum(len(h) for h in jobs.values())
    is_chief = task_type == "chief" or ("chief" not in jobs and task_index == 0)
    return Cluster(num_workers, str(task_type), task_index, is_chief)


def cluster_from_env() -> Cluster | None:
    """The ``TF_CONFIG`` cluster this process belongs to, or None when it is unset.

    Raises:
        UsageError: ``TF_CONFIG`` is malformed.
    """
    text = os.environ.get("TF_CONFIG")
    return read_cluster(text) if text else None


def _multiworker() -> Any:
    """The process's MultiWorkerMirroredStrategy, created on first use.

    Raises:
        UsageError: TensorFlow already ran operations in this process, too late to join a cluster.
    """
    global _multiworker_strategy
    if _multiworker_strategy is None:
        try:
            _multiworker_strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except (RuntimeError, ValueError) as error:
            raise UsageError(
                f"TF_CONFIG is set, but this process had already started TensorFlow before it "
                f"could join the cluster ({error}). Run `dltrain train` as its own process on "
                f"each worker (`dltrain tune` trials cannot train across machines)."
            ) from None
    return _multiworker_strategy


def plan_devices(spec: TrainSpec) -> DevicePlan:
    """Pick the strategy and precision for this machine and the recipe's switches.

    ``TF_CONFIG`` set → MultiWorkerMirroredStrategy over its cluster (each worker's GPUs
    included); otherwise several GPUs → MirroredStrategy, or the default strategy. Mixed
    precision ``auto`` is on only when every GPU has compute capability ≥ 7.0; ``on`` computes
    in float16 on GPUs and in bfloat16 on CPUs (``DevicePlan.precision_policy``), where ``auto``
    leaves it off: only CPUs with bfloat16 instructions gain, and only compute-bound models.
    XLA ``auto`` is off on CPU, where it measured 2.5× slower for the reference CNN on these
    machines.

    Raises:
        UsageError: ``TF_CONFIG`` is malformed, or came too late in this process.
    """
    cluster = cluster_from_env()
    # first: joining a cluster must happen before TensorFlow runs anything in this process
    strategy = _multiworker() if cluster else None
    capabilities = [
        tf.config.experimental.get_device_details(gpu).get("compute_capability") for gpu in GPUS
    ]
    names = [
        tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in GPUS
    ]
    if cluster:
        role = "chief" if cluster.is_chief else "not the chief"
        where = (
            f"{cluster.num_workers} workers (MultiWorkerMirroredStrategy; this one "
            f"{cluster.task_type} {cluster.task_index}, {role}), each on "
            f"{f'{len(GPUS)} GPU(s)' if GPUS else 'CPU'}"
        )
    elif len(GPUS) > 1:
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
        description=f"{device}; mixed precision {_precision_words(mixed)}; XLA "
        f"{'auto' if jit is None else 'on' if jit else 'off'}",
        cluster=cluster,
    )


def cpu_has_bfloat16(cpuinfo: Path = CPUINFO) -> bool:
    """Whether this CPU multiplies bfloat16 natively (False where its flags cannot be read)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:  # not Linux, or no /proc: say nothing we cannot see
        return False
    lines = text.splitlines()
    flags = {word for line in lines if line.startswith("flags") for word in line.split()}
    return bool(flags & BFLOAT16_CPU_FLAGS)


def _precision_words(mixed: bool) -> str:
    """How the plan's description names the precision (so a slow emulation is not a surprise)."""
    if not mixed:
        return "off"
    if GPUS:
        return "on (float16)"
    if cpu_has_bfloat16():
        return "on (bfloat16)"
    return "on (bfloat16, emulated: this CPU has no bfloat16 instructions, so it is slower)"


def apply_precision(plan: DevicePlan) -> None:
    """Set Keras's global dtype policy for this process (before the model is built)."""
    keras.mixed_precision.set_global_policy(plan.precision_policy)
