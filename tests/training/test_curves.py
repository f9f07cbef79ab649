"""The one learning-curve plotter, drawn by train and, for runs from before it did, by evaluate."""

from __future__ import annotations

from pathlib import Path

from dltrain.training.curves import plot_learning_curves

HISTORY = (
    "epoch,accuracy,epoch_seconds,learning_rate,loss,val_accuracy,val_loss\n"
    "0,0.5,1.2,0.01,0.9,0.55,0.8\n"
    "1,0.7,1.1,0.005,0.6,,0.7\n"  # an empty cell: no value that epoch, still drawn
)


def test_every_logged_quantity_is_drawn_to_a_png(tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    history.write_text(HISTORY)
    png = tmp_path / "learning_curves.png"
    assert plot_learning_curves(history, png, "tiny · run") == png
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # atomic write


def test_a_missing_or_empty_history_draws_nothing(tmp_path: Path) -> None:
    png = tmp_path / "learning_curves.png"
    assert plot_learning_curves(tmp_path / "history.csv", png) is None
    (tmp_path / "history.csv").write_text("epoch,loss\n")
    assert plot_learning_curves(tmp_path / "history.csv", png) is None
    assert not png.exists()


def test_a_learning_rate_with_no_positive_value_draws_without_a_log_axis_warning(
    tmp_path: Path,
) -> None:
    import warnings

    history = tmp_path / "history.csv"
    history.write_text("epoch,learning_rate,loss\n0,0.0,0.9\n")  # one warm-up epoch at rate 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns when a log axis has nothing positive
        assert plot_learning_curves(history, tmp_path / "c.png") == tmp_path / "c.png"
