"""A metric history: for each logged tag, its (step, epoch, value) points.

Built offline from a TensorBoard log directory or a CSV file (`codecgan diagnose`), or live by a callback from
its own measurements, so the same rules read both. `state_dict()` holds only lists and numbers, so a callback can
keep its history in a checkpoint that loads with `weights_only=True`. A TensorBoard run also gives the settings its
diagnostic callbacks ran their rules with (the text entry `diag/config`), as `run_config`.
"""

from __future__ import annotations

import bisect
import csv
import json
import math
import os
import statistics
from dataclasses import dataclass
from typing import Any, Iterable

from codecgan.diagnosis.tags import RUN_CONFIG

TENSORBOARD_EVENT_PREFIX = "events.out.tfevents"
# Lightning adds these suffixes when a metric is logged with both on_step and on_epoch.
TAG_SUFFIXES = ("", "_epoch", "_step")


class HistoryError(ValueError):
    """The path could not be read as a metric history; the message is one sentence for the user."""


@dataclass(frozen=True)
class Point:
    """One logged value: `step` is the batch counter, `epoch` the training epoch (either may be unknown)."""

    step: int | None
    epoch: int | None
    value: float


class MetricHistory:
    """Per-tag lists of points in logging order, with helpers the rules share.

    `max_points` bounds every tag's list (oldest points dropped), for a callback whose rule needs only recent points.
    `run_config` is the run's recorded diagnostic configuration (`diag/config`: {"family", "module", "rules",
    "callbacks"}), empty when the run recorded none.
    """

    def __init__(self, max_points: int | None = None) -> None:
        self.max_points = max_points
        self._series: dict[str, list[Point]] = {}
        self.run_config: dict[str, Any] = {}

    def add(self, tag: str, value: float, step: int | None = None, epoch: int | None = None) -> None:
        points = self._series.setdefault(tag, [])
        points.append(Point(step, epoch, float(value)))
        if self.max_points is not None and len(points) > self.max_points:
            del points[: len(points) - self.max_points]

    def replace(self, tag: str, points: list[Point]) -> None:
        """Set the stored points of `tag` (the exact tag, no suffix resolution): for a callback that compacts what it
        keeps."""
        self._series[tag] = list(points)

    def tags(self) -> list[str]:
        return sorted(self._series)

    def resolve(self, tag: str) -> str | None:
        """The stored tag for `tag`: itself, or Lightning's `<tag>_epoch` / `<tag>_step` variant."""
        for suffix in TAG_SUFFIXES:
            if self._series.get(tag + suffix):
                return tag + suffix
        return None

    def has(self, tag: str) -> bool:
        return self.resolve(tag) is not None

    def series(self, tag: str) -> list[Point]:
        resolved = self.resolve(tag)
        return list(self._series[resolved]) if resolved else []

    def tags_with_prefix(self, prefix: str) -> list[str]:
        return [tag for tag in self.tags() if tag.startswith(prefix) and self._series[tag]]

    def per_epoch(self, tag: str) -> list[Point]:
        """One point per epoch: the median value, at the epoch's last step. Points without an epoch stay as they are."""
        rounds: list[list[Point]] = []
        for point in self.series(tag):
            if rounds and point.epoch is not None and rounds[-1][-1].epoch == point.epoch:
                rounds[-1].append(point)
            else:
                rounds.append([point])
        return [Point(group[-1].step, group[-1].epoch, _median(p.value for p in group)) for group in rounds]

    def aligned(self, tag: str, rounds: list[Point]) -> list[float | None]:
        """For each round, the median of `tag` over the interval since the previous round.

        Intervals are compared by step when both series have steps, else by epoch. A round with no point of its
        own takes the latest earlier value (by step or epoch; logging order among equal ones); before any value it is
        None.
        """
        points = self.series(tag)
        by_step = all(p.step is not None for p in points + rounds)
        key = (lambda p: p.step) if by_step else (lambda p: p.epoch)
        if any(key(p) is None for p in points + rounds):
            return [None] * len(rounds)
        ordered = sorted(points, key=key)  # stable: logging order among equal keys
        keys = [key(p) for p in ordered]
        values: list[float | None] = []
        previous_end: float = -math.inf
        for round_point in rounds:
            end = key(round_point)
            start, stop = bisect.bisect_right(keys, previous_end), bisect.bisect_right(keys, end)
            if start < stop:
                values.append(_median(p.value for p in ordered[start:stop]))
            else:
                values.append(ordered[stop - 1].value if stop else None)
            previous_end = end
        return values

    def state_dict(self) -> dict[str, Any]:
        return {
            "max_points": self.max_points,
            "series": {tag: [[p.step, p.epoch, p.value] for p in pts] for tag, pts in self._series.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.max_points = state.get("max_points", self.max_points)
        self._series = {
            tag: [Point(_int_or_none(s), _int_or_none(e), float(v)) for s, e, v in pts]
            for tag, pts in state["series"].items()
        }

    @classmethod
    def from_csv(cls, path: str) -> "MetricHistory":
        """Columns `step` and/or `epoch` plus one column per tag; empty cells are values not logged in that row."""
        history = cls()
        try:
            with open(path, newline="") as handle:
                reader = csv.DictReader(handle)
                columns = reader.fieldnames or []
                if not set(columns) - {"step", "epoch"}:
                    raise HistoryError(f"{path} has no metric columns besides step/epoch (columns: {columns}).")
                for line, row in enumerate(reader, start=2):
                    step, epoch = _int_cell(row.get("step"), path, line), _int_cell(row.get("epoch"), path, line)
                    for tag in columns:
                        cell = (row.get(tag) or "").strip()
                        if tag in ("step", "epoch") or not cell:
                            continue
                        try:
                            history.add(tag, float(cell), step, epoch)
                        except ValueError:
                            raise HistoryError(f"{path} line {line}: column {tag!r} holds {cell!r}, not a number.")
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise HistoryError(f"Could not read {path} as a CSV file: {error}.") from error
        return history

    @classmethod
    def from_tensorboard_run(cls, run_dir: str) -> "MetricHistory":
        """The scalars of one TensorBoard run directory; epochs come from Lightning's `epoch` scalar. `run_config` is
        the latest `diag/config` text entry (a resumed run writes one at each start)."""
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        try:
            accumulator = EventAccumulator(run_dir, size_guidance={"scalars": 0, "tensors": 0})
            accumulator.Reload()
            tags = accumulator.Tags().get("scalars", [])
            scalars = {tag: accumulator.Scalars(tag) for tag in tags}
            config_tag = RUN_CONFIG + "/text_summary"
            configs = accumulator.Tensors(config_tag) if config_tag in accumulator.Tags().get("tensors", []) else []
        except Exception as error:  # tensorboard raises several types for corrupt event files
            raise HistoryError(f"Could not read the TensorBoard events in {run_dir}: {error}.") from error
        epoch_events = sorted((e.step, int(e.value)) for e in scalars.pop("epoch", []))
        epoch_steps = [step for step, _ in epoch_events]
        history = cls()
        for tag in sorted(scalars):
            for event in sorted(scalars[tag], key=lambda e: (e.step, e.wall_time)):
                index = bisect.bisect_right(epoch_steps, event.step) - 1
                epoch = epoch_events[index][1] if index >= 0 else None
                history.add(tag, event.value, event.step, epoch)
        if configs:
            latest = max(configs, key=lambda e: (e.step, e.wall_time))
            text = latest.tensor_proto.string_val[0].decode("utf-8")
            try:
                history.run_config = json.loads(text)
            except ValueError as error:
                raise HistoryError(f"The {RUN_CONFIG} entry in {run_dir} is not JSON: {error}.") from error
        return history


CONFIRM_DIR = "confirm"


def load_histories(path: str) -> list[tuple[str, MetricHistory]]:
    """(run name, history) for a CSV file, a TensorBoard run directory, or a parent directory of runs."""
    if not os.path.exists(path):
        raise HistoryError(f"{path} does not exist; give a TensorBoard log directory or a CSV file.")
    if os.path.isfile(path):
        if os.path.basename(path).startswith(TENSORBOARD_EVENT_PREFIX):
            return [(os.path.dirname(path) or ".", MetricHistory.from_tensorboard_run(os.path.dirname(path) or "."))]
        return [(os.path.basename(path), MetricHistory.from_csv(path))]
    run_dirs = []
    for root, dirs, files in os.walk(path):
        if any(f.startswith(TENSORBOARD_EVENT_PREFIX) for f in files):
            run_dirs.append(root)
            # A run's `codecgan confirm` arms are runs of their own, diagnosed by naming their folder.
            dirs[:] = [d for d in dirs if d != CONFIRM_DIR]
    run_dirs.sort()
    if not run_dirs:
        raise HistoryError(f"{path} is a directory without TensorBoard event files ({TENSORBOARD_EVENT_PREFIX}*).")
    return [(os.path.relpath(run, path), MetricHistory.from_tensorboard_run(run)) for run in run_dirs]


def _median(values: Iterable[float]) -> float:
    """The median of the finite values (NaN when there are none), so one NaN step does not poison a round."""
    finite = [v for v in values if math.isfinite(v)]
    return float(statistics.median(finite)) if finite else math.nan


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _int_cell(cell: str | None, path: str, line: int) -> int | None:
    if cell is None or not cell.strip():
        return None
    try:
        return int(float(cell))
    except ValueError:
        raise HistoryError(f"{path} line {line}: step/epoch cell {cell!r} is not a number.") from None
