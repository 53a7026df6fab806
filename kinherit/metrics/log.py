"""`metrics.jsonl`, the record of a run: one JSON object per training log or evaluation, appended by the
main process. This module owns the format: writing, reading, and truncating on resume.

Training events: step, tokens, flops [, teacher_flops] [, selection_flops], loss (+ the objective's loss terms, e.g.
lm_loss, kd_loss, alpha, ce, kd), learning_rate, grad_norm, tokens_per_s, time_s. Evaluation events: step, tokens,
flops [, teacher_flops] [, selection_flops], val_loss [, val_ppl for language models] (+ every other `eval_<name>`
metric as `val_<name>`, e.g. val_accuracy), time_s. `time_s` is cumulative training wall time across resumes. On
resume, events after the checkpoint's step are dropped first, so the file never holds two histories.
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

METRICS_FILE = "metrics.jsonl"
_SKIP = {"epoch", "total_flos", "train_runtime", "train_samples_per_second", "train_steps_per_second"}
_EVAL_SKIP = {"eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch"}


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


def append_event(path: Path, event: dict[str, Any]) -> None:
    """Append one event (e.g. a growth inside a staged run: step, growth, student_flops, held_loss_change)."""
    with Path(path).open("a") as handle:
        handle.write(json.dumps(event) + "\n")


def truncate_after(path: Path, step: int) -> list[dict[str, Any]]:
    """Keep only events up to `step` (the resumed checkpoint), atomically; return what was kept."""
    kept = [event for event in read_metrics(path) if event["step"] <= step]
    if path.exists():
        with atomic_file(path) as handle:
            handle.write("".join(json.dumps(e) + "\n" for e in kept))
    return kept


def start_log(path: Path, resumed_step: int | None) -> float:
    """Prepare `path` for a run: a fresh start drops any old file (a run that died before its first
    checkpoint starts over), a resume keeps the events up to its checkpoint. Returns the wall time already spent."""
    if resumed_step is None:
        path.unlink(missing_ok=True)
        return 0.0
    return time_spent(truncate_after(path, resumed_step))


def time_spent(events: list[dict[str, Any]]) -> float:
    """The wall time a run's events say it has spent: their largest `time_s` (0 without one)."""
    return max((event.get("time_s", 0.0) for event in events), default=0.0)


class MetricsJsonl(TrainerCallback):
    """Append every log/eval event to `path`, with throughput and cumulative wall time.

    `trainer.accounting(step)` supplies tokens and FLOPs; `perplexity` adds val_ppl = exp(val_loss).
    `latest` holds the last value of every logged key (for the progress bar).
    """

    def __init__(self, path: Path, trainer: Any, time_offset: float = 0.0, perplexity: bool = True):
        self.path, self.trainer, self.time_offset, self.perplexity = Path(path), trainer, time_offset, perplexity
        self._t0 = time.perf_counter()
        self._last: tuple[float, int] | None = None
        self.latest: dict[str, Any] = {}

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
            if self.perplexity:
                event["val_ppl"] = math.exp(min(logs["eval_loss"], 50.0))
            event.update(
                {
                    "val_" + k.removeprefix("eval_"): v
                    for k, v in logs.items()
                    if k.startswith("eval_") and k != "eval_loss" and k not in _EVAL_SKIP
                }
            )
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
        self.latest.update(event)
        with self.path.open("a") as handle:
            handle.write(json.dumps(event) + "\n")
