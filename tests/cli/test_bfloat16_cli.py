"""Mixed precision on a CPU: bfloat16 (CPUs have no fast float16), from train to export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dltrain.backend import keras
from dltrain.models.blocks import float32_copy
from dltrain.training.device import cpu_has_bfloat16
from tests.conftest import RecipeWriter, invoke


@pytest.fixture
def project(
    tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    write_recipe(idx_folder, train={"epochs": 2, "mixed_precision": "on"})
    monkeypatch.chdir(tmp_path)
    assert invoke("prepare")[0] == 0
    yield tmp_path
    # training sets Keras's global policy for its process; the tests after this one build
    # models of their own in this process
    keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision_on_a_cpu_trains_in_bfloat16_and_exports(project: Path) -> None:
    code, _, err = invoke("train")
    assert code == 0, err
    (run,) = sorted((project / "runs" / "tiny").iterdir())
    device = json.loads((run / "run.json").read_text())["device"]
    assert "CPU" in device and "mixed precision on (bfloat16" in device
    assert ("emulated" in device) is not cpu_has_bfloat16()

    keras.mixed_precision.set_global_policy("float32")  # the saved layers carry their own
    model = keras.models.load_model(run / "model.keras", compile=False)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(layer.compute_dtype == "bfloat16" for layer in convs)
    assert all(layer.variable_dtype == "float32" for layer in convs)  # the weights stay float32
    x = np.random.default_rng(0).integers(0, 256, (8, 12, 12, 1), dtype=np.uint8)
    probabilities = np.asarray(model.predict(x, verbose=0))
    assert probabilities.dtype == np.float32  # the head stays float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    # what export writes: the same weights, computing in float32 (TFLite has no bfloat16)
    copy = float32_copy(model)
    assert all(layer.compute_dtype == "float32" for layer in copy._flatten_layers())
    for theirs, ours in zip(model.get_weights(), copy.get_weights(), strict=True):
        np.testing.assert_array_equal(theirs, ours)
    # bfloat16 keeps 8 bits of mantissa: the two agree to its rounding, no closer
    np.testing.assert_allclose(copy.predict(x, verbose=0), probabilities, atol=0.02)

    code, out, err = invoke("export", "-f", "tflite", "-f", "onnx", "--json")
    assert code == 0, err
    for entry in json.loads(out)["exports"]:
        assert entry["agreement"] == 1.0, entry


def test_cpu_has_bfloat16_reads_the_cpu_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    assert cpu_has_bfloat16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n")
    assert not cpu_has_bfloat16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 amx_bf16 amx_tile\n")
    assert cpu_has_bfloat16(cpuinfo)
    assert not cpu_has_bfloat16(tmp_path / "no-such-file")  # not Linux: nothing to read
