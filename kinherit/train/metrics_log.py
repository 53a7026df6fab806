"""`metrics.jsonl`: one JSON object per training log or evaluation, appended by the main process.

Training events: step, tokens, flops, loss (+ any loss terms), learning_rate, grad_norm, tokens_per_s,
time_s. Evaluation events: step, tokens, flops, val_loss, val_ppl, time_s. `time_s` is cumulative
training wall time across resumes. On resume, events after the checkpoint's step are dropped first,
so the file never holds two histories.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from kinherit.errors import KinheritError
from kinherit.io import atomic_file

_SKIP = {"epoch", "total_flos", "train_runtime", "train_samples_per_second", "train_steps_per_second"}


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All events; a last line cut short by a killed process is ignored, any other bad line is an error."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    events = []
    for number, line in enumerate(lines, 1):
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise KinheritError(f"{path}:{number} is not valid JSON; the metrics file is damaged") from None
    return events


def truncate_after(path: Path, step: int) -> list[dict[str, Any]]:
    """Keep only events up to `step` (the resumed checkpoint), atomically; return what was kept."""
    kept = [event for event in read_metrics(path) if event["step"] <= step]
    if path.exists():
        with atomic_file(path) as handle:
            handle.write("".join(json.dumps(e) + "\n" for e in kept))
    return kept


class MetricsJsonl(TrainerCallback):
    """Append every log/eval event to `path`, with throughput and cumulative wall time."""

    def __init__(self, path: Path, trainer: Any, time_offset: float = 0.0):
        self.path, self.trainer, self.time_offset = Path(path), trainer, time_offset
        self._t0 = time.perf_counter()
        self._last: tuple[float, int] | None = None

    def _elapsed(self) -> float:
        return self.time_offset + time.perf_counter() - self._t0

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self._t0 = time.perf_counter()
        self._last = (self._elapsed(), state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
        if not state.is_world_process_zero or not logs:
            return
        now, step = self._elapsed(), state.global_step
        event: dict[str, Any] = {"step": step, **self.trainer.accounting(step)}
        if "eval_loss" in logs:
            event["val_loss"] = logs["eval_loss"]
            event["val_ppl"] = math.exp(min(logs["eval_loss"], 50.0))
            self._last = (now, step)  # throughput intervals exclude evaluation time
        elif "loss" in logs:
            event.update({k: v for k, v in logs.items() if k not in _SKIP and k not in event})
            if self._last is not None and step > self._last[1] and now > self._last[0]:
                tokens_done = self.trainer.accounting(step)["tokens"] - self.trainer.accounting(self._last[1])["tokens"]
                event["tokens_per_s"] = tokens_done / (now - self._last[0])
            self._last = (now, step)
        else:
            return
        event["time_s"] = now
        with self.path.open("a") as handle:
            handle.write(json.dumps(event) + "\n")
