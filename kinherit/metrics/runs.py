"""A finished or running run folder, read back from its `metrics.jsonl` (for reports and plots)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinherit.errors import KinheritError
from kinherit.metrics.log import METRICS_FILE, read_metrics


@dataclass(frozen=True)
class Run:
    """One run folder's events, split into training and evaluation curves."""

    name: str
    path: Path
    train: list[dict[str, Any]]
    evals: list[dict[str, Any]]
    growths: list[dict[str, Any]] = field(default_factory=list)
    """A staged run's growth events (step, growth, student_flops, held_loss_change)."""

    def curve(self, x: str) -> list[tuple[float, float]]:
        """(x, val_loss) of every evaluation, x being `flops`, `tokens`, `time_s` or `step`."""
        return [(float(e[x]), float(e["val_loss"])) for e in self.evals]


def load_run(path: str | Path, name: str | None = None) -> Run:
    """The run in folder `path`; an error when it holds no evaluation."""
    path = Path(path)
    events = read_metrics(path / METRICS_FILE)
    evals = [e for e in events if "val_loss" in e]
    if not evals:
        raise KinheritError(f"{path} has no evaluation events in {METRICS_FILE}; is it a kinherit run folder?")
    return Run(name or path.name, path, [e for e in events if "loss" in e], evals, [e for e in events if "growth" in e])
