"""MetricHistory: building it from CSV, Lightning's tag suffixes, per-epoch rounds, alignment and its state."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from codecgan.diagnosis.history import HistoryError, MetricHistory, load_histories


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_with_steps_and_epochs_keeps_blank_cells_out(tmp_path: Path) -> None:
    history = MetricHistory.from_csv(
        write(tmp_path / "m.csv", "step,epoch,train/loss_g,val/pesq\n10,0,1.5,\n20,0,1.4,2.5\n")
    )
    assert [(p.step, p.epoch, p.value) for p in history.series("val/pesq")] == [(20, 0, 2.5)]
    assert len(history.series("train/loss_g")) == 2


def test_csv_with_only_epochs_has_no_steps(tmp_path: Path) -> None:
    history = MetricHistory.from_csv(write(tmp_path / "m.csv", "epoch,val/pesq\n1,2.0\n2,2.1\n"))
    assert [p.step for p in history.series("val/pesq")] == [None, None]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("step,epoch\n1,0\n", "no metric columns"),
        ("step,val/pesq\n1,abc\n", "'abc', not a number"),
        ("step,val/pesq\nx,2.0\n", "is not a number"),
    ],
)
def test_unreadable_csv_says_where(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(HistoryError, match=message):
        MetricHistory.from_csv(write(tmp_path / "bad.csv", text))


def test_missing_path_and_directory_without_events_are_errors(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="does not exist"):
        load_histories(str(tmp_path / "nope"))
    with pytest.raises(HistoryError, match="without TensorBoard event files"):
        load_histories(str(tmp_path))


def test_lightning_suffixes_resolve_to_the_plain_tag() -> None:
    history = MetricHistory()
    history.add("train/loss_g_step", 1.0, 1, 0)
    history.add("val/pesq_epoch", 2.0, 5, 0)
    assert history.resolve("val/pesq") == "val/pesq_epoch"
    assert history.has("train/loss_g") and not history.has("train/loss_d")


def test_per_epoch_takes_the_median_and_ignores_nan() -> None:
    history = MetricHistory()
    for step, (epoch, value) in enumerate([(0, 1.0), (0, 3.0), (0, 2.0), (1, math.nan), (1, 5.0)]):
        history.add("train/loss_d", value, step, epoch)
    rounds = history.per_epoch("train/loss_d")
    assert [(p.epoch, p.step, p.value) for p in rounds] == [(0, 2, 2.0), (1, 4, 5.0)]


def test_aligned_takes_the_median_since_the_previous_round() -> None:
    history = MetricHistory()
    for step, value in enumerate([4.0, 3.0, 2.0, 1.0, 0.5], start=1):
        history.add("train/loss_g", value, step, 0)
    history.add("val/pesq", 2.0, 2, 0)
    history.add("val/pesq", 2.1, 5, 0)
    history.add("val/pesq", 2.2, 6, 0)
    assert history.aligned("train/loss_g", history.series("val/pesq")) == [3.5, 1.0, 0.5]


def test_state_round_trip_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    history = MetricHistory(max_points=3)
    for step in range(5):
        history.add("val/pesq", 2.0 + step, step, None)
    torch.save(history.state_dict(), tmp_path / "h.pt")
    restored = MetricHistory()
    restored.load_state_dict(torch.load(tmp_path / "h.pt", weights_only=True))
    assert restored.state_dict() == history.state_dict()
    assert [p.value for p in restored.series("val/pesq")] == [4.0, 5.0, 6.0]
