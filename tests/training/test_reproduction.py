"""Whether a rerun reproduced a run: the tolerance rule, history, final logs and weights."""

from __future__ import annotations

import math

import numpy as np

from dltrain.training.reproduction import (
    Verdict,
    agree,
    check_recorded_digest,
    compare_finals,
    compare_history,
    compare_numbers,
    compare_weights,
    weights_sha256,
)


def rows(*losses: float, **extra: float) -> list[dict[str, float]]:
    return [
        {"epoch": float(i), "loss": loss, "epoch_seconds": 1.0 + i, **extra}
        for i, loss in enumerate(losses)
    ]


def by_name(checks: list) -> dict:
    return {check.name: check for check in checks}


def test_agree_is_absolute_below_one_and_relative_above() -> None:
    assert agree(0.5, 0.5 + 9e-7, 1e-6)
    assert not agree(0.5, 0.5 + 2e-6, 1e-6)
    assert agree(4.0e9, 4.0e9 + 3000.0, 1e-6)  # 7.5e-7 relative
    assert not agree(4.0e9, 4.0e9 + 5000.0, 1e-6)
    assert agree(math.nan, math.nan, 0.0) and not agree(math.nan, 1.0, 1.0)
    assert agree(math.inf, math.inf, 0.0) and not agree(math.inf, 1e308, 1.0)
    assert agree(1.0, 1.0, 0.0) and not agree(1.0, 1.0 + 1e-12, 0.0)


def test_identical_histories_ignore_timings() -> None:
    a, b = rows(0.9, 0.5), rows(0.9, 0.5)
    b[1]["epoch_seconds"] = 99.0
    checks = compare_history(a, b, 0.0)
    assert [c.name for c in checks] == ["history: epochs", "history: loss"]
    assert all(c.verdict is Verdict.IDENTICAL for c in checks)


def test_history_differences_within_and_beyond_tolerance() -> None:
    original = rows(0.9, 0.5, 0.4)
    near = rows(0.9, 0.5 + 1e-8, 0.4)
    assert by_name(compare_history(original, near, 1e-6))["history: loss"].verdict is (
        Verdict.WITHIN
    )
    far = rows(0.9, 0.51, 0.4)
    check = by_name(compare_history(original, far, 1e-6))["history: loss"]
    assert check.verdict is Verdict.DIFFERS and not check.passed
    assert "epoch 2" in check.detail
    assert check.difference is not None and abs(check.difference - 0.01) < 1e-12


def test_history_of_another_length_or_columns_differs() -> None:
    checks = by_name(compare_history(rows(0.9, 0.5), rows(0.9, 0.5, 0.4), 1e-6))
    assert checks["history: epochs"].verdict is Verdict.DIFFERS
    assert checks["history: loss"].verdict is Verdict.IDENTICAL  # the epochs both ran
    extra = by_name(compare_history(rows(0.9), rows(0.9, val_loss=1.0), 1e-6))
    assert extra["history: val_loss"].verdict is Verdict.DIFFERS


def test_finals_and_single_numbers() -> None:
    checks = by_name(
        compare_finals(
            {"loss": 0.5, "val_loss": 0.6, "epoch_seconds": 3.0},
            {"loss": 0.5, "val_loss": 0.7, "epoch_seconds": 9.0},
            1e-6,
        )
    )
    assert set(checks) == {"final: loss", "final: val_loss"}
    assert checks["final: loss"].passed and not checks["final: val_loss"].passed
    assert compare_numbers("x", None, None, 0.0).verdict is Verdict.SKIPPED
    assert compare_numbers("x", 1.0, None, 0.0).verdict is Verdict.DIFFERS


def test_weights_identical_within_and_differing() -> None:
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(3, 4)).astype(np.float32), np.zeros(4, np.float32)]
    same = compare_weights(weights, [w.copy() for w in weights], 0.0)
    assert same.verdict is Verdict.IDENTICAL and same.original == weights_sha256(weights)
    nudged = [weights[0] + np.float32(1e-7), weights[1]]
    near = compare_weights(weights, nudged, 1e-6)
    assert near.verdict is Verdict.WITHIN and near.original != near.rerun
    moved = [weights[0], weights[1] + np.float32(0.01)]
    far = compare_weights(weights, moved, 1e-6)
    assert far.verdict is Verdict.DIFFERS and abs(far.difference - 0.01) < 1e-6
    shapes = compare_weights(weights, [weights[0]], 1.0)
    assert shapes.verdict is Verdict.DIFFERS and "shapes" in shapes.detail


def test_recorded_digest_is_exact() -> None:
    digest = weights_sha256([np.ones(3, np.float32)])
    assert check_recorded_digest(digest, digest).verdict is Verdict.IDENTICAL
    tampered = check_recorded_digest("0" * 64, digest)
    assert tampered.verdict is Verdict.DIFFERS and "model.keras" in tampered.detail
    assert check_recorded_digest(None, digest).verdict is Verdict.SKIPPED


def test_checks_as_json_say_infinities_and_nans() -> None:
    check = compare_numbers("final: loss", math.inf, math.nan, 1.0)
    document = check.to_json()
    assert document["original"] == "inf" and document["rerun"] is None
    assert document["verdict"] == "differs" and document["passed"] is False


def test_verify_says_what_makes_a_rerun_inexact() -> None:
    from dltrain.run_info import Resume, RunInfo, StopReason
    from dltrain.training.verify import _notes, _overrides

    assert _notes(RunInfo(deterministic=True)) == []
    notes = _notes(
        RunInfo(deterministic=False, resumed=[Resume(at_epoch=3, when="2026-01-01T00:00:00")])
    )
    assert "not deterministic" in notes[0] and "after epoch 3" in notes[1]
    assert _overrides(RunInfo(stopped_by=StopReason.EARLY_STOPPING, epochs_run=4)) == ([], [])
    overrides, said = _overrides(RunInfo(stopped_by=StopReason.TIME_BUDGET, epochs_run=4))
    assert overrides == [("train.time_budget", None), ("train.epochs", 4)]
    assert "time budget after 4 epochs" in said[0]
