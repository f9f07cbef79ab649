"""measure_model: `train --dry-run` sizes every family without allocating a weight, and refuses a
model this machine cannot train."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from dltrain.errors import RecipeError
from dltrain.models import build_model
from dltrain.recipe.models import (
    MAX_WIDTH,
    AutoencoderSpec,
    CnnSpec,
    GanSpec,
    MlpSpec,
    RnnSpec,
    TextSpec,
    TransferSpec,
)
from dltrain.recipe.schema import TrainSpec
from dltrain.training import dryrun
from dltrain.training.dryrun import MemoryBudget, format_bytes, measure_model
from tests.models.test_builders import image_io
from tests.models.test_families import stub


def peak_rss() -> int:
    """This process's peak resident memory so far, in bytes (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/self/status")


@pytest.mark.parametrize(
    ("spec", "io"),
    [
        (CnnSpec(filters=[4, 8], dense=[16], batch_norm=True), image_io()),
        (MlpSpec(units=[16, 8]), image_io()),
        (AutoencoderSpec(architecture="dense", units=[16], latent_dim=4), image_io()),
        (AutoencoderSpec(architecture="conv", filters=[4, 8], latent_dim=4), image_io()),
        (GanSpec(latent_dim=8, filters=[16, 8]), image_io(scale=2 / 255, offset=-1.0)),
        (TransferSpec(image_size=32, dense=[8]), image_io()),
        (RnnSpec(cell="lstm", units=[8, 4]), stub("sequence", (10, 2), "float32")),
        (
            TextSpec(encoder="attention"),
            stub("text", (12,), "int64", vocabulary_size=50, sequence_length=12),
        ),
    ],
    ids=["cnn", "mlp", "autoencoder-dense", "autoencoder-conv", "gan", "transfer", "rnn", "text"],
)
def test_every_family_is_measured_as_built(spec: Any, io: Any) -> None:
    size = measure_model(spec, TrainSpec(), io, mixed_precision=False)
    model = build_model(spec, io)
    assert size.parameters == model.count_params() > 0
    assert size.weight_bytes == 4 * size.parameters
    assert size.training_bytes > size.weight_bytes and size.activation_bytes > 0
    assert any("Total params" in line for line in size.summary)


def test_a_model_of_terabytes_is_measured_without_allocating_it() -> None:
    """Three layers at the width limit on 784 inputs: 8.6 billion weights, 32 GiB."""
    spec = MlpSpec(units=[MAX_WIDTH, MAX_WIDTH, MAX_WIDTH])
    before = peak_rss()
    started = time.perf_counter()
    with pytest.raises(RecipeError) as refused:
        measure_model(spec, TrainSpec(), image_io(), mixed_precision=False)
    assert time.perf_counter() - started < 30
    assert peak_rss() - before < 300 * 2**20  # not one of its 32 GiB
    message = " ".join(refused.value.message.split())
    assert "8,642,166,794 parameters (32.2 GiB" in message, message
    assert "cannot be trained on this machine" in message and "The largest layers:" in message


def test_the_refusal_weighs_the_optimizer_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adam keeps two values per weight, SGD none: the same model fits with one and not the
    other when memory lies between."""
    spec, io = MlpSpec(units=[256]), image_io()
    sgd = TrainSpec(optimizer={"name": "sgd", "learning_rate": 0.1})
    light = measure_model(spec, sgd, io, mixed_precision=False)
    weights = light.weight_bytes
    assert light.training_bytes - light.activation_bytes == 2 * weights  # weights and gradients
    between = MemoryBudget(light.training_bytes + weights // 2, "a test's budget")
    monkeypatch.setattr(dryrun, "memory_budget", lambda: between)
    assert measure_model(spec, sgd, io, mixed_precision=False).memory is between
    with pytest.raises(RecipeError, match="adam holds the weights, their gradients and 2"):
        measure_model(spec, TrainSpec(), io, mixed_precision=False)


def test_sizes_read_in_binary_units() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * 2**30) == "3.0 GiB"
    assert format_bytes(32 * 2**40) == "32.0 TiB"
