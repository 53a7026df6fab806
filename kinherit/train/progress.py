"""The console during training: one tqdm bar per run, nothing else (the raw log dicts go to metrics.jsonl).

The bar counts optimizer steps (with tqdm's ETA) and shows the latest LM loss, val loss, α (knowledge
inheritance) and tokens/s in its postfix. A KI run shows its LM loss (`lm_loss`), not the mixed loss: the
mix is dominated by the KD term early, so it would look nothing like the validation loss beside it.
`train.disable_tqdm: true` turns it off. transformers' own bars (e.g. "Writing model shards" at every checkpoint) and
its known-harmless notices are silenced for the run (`hf_folder.library_console`); a tied LM head is not called
missing at resume (`KinheritTrainer._issue_warnings_after_load`). A staged run's stages share one bar.
"""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm
from transformers import TrainerCallback

POSTFIX = (
    ("loss", "loss", "{:.4f}"),
    ("val_loss", "val loss", "{:.4f}"),
    ("val_accuracy", "val acc", "{:.3f}"),
    ("alpha", "α", "{:.3f}"),
    ("tokens_per_s", "tok/s", "{:,.0f}"),
)


def postfix(latest: dict[str, Any]) -> dict[str, str]:
    """The bar's postfix from the latest logged values (keys absent from `latest` are left out); `loss` is the
    LM loss where the run logs one apart from its training loss."""
    shown = {**latest, "loss": latest["lm_loss"]} if "lm_loss" in latest else latest
    return {label: fmt.format(shown[key]) for key, label, fmt in POSTFIX if key in shown}


class ProgressBar(TrainerCallback):
    """A tqdm bar over optimizer steps, fed by the run's `MetricsJsonl` (`latest`), on the main process only."""

    def __init__(self, latest: dict[str, Any], description: str, close_at_end: bool = True):
        self.latest, self.description, self.close_at_end = latest, description, close_at_end
        self.bar: tqdm | None = None

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if (
            self.bar is None and state.is_world_process_zero and not args.disable_tqdm
        ):  # a staged run's next stage continues it
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.description, dynamic_ncols=True)

    def note(self, line: str) -> None:
        """Print one line above the bar (or alone without one), the bar continuing below it."""
        (self.bar.write if self.bar is not None else print)(line)

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
        if self.bar is not None:
            self.bar.set_postfix(postfix(self.latest), refresh=False)

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if self.bar is not None and self.close_at_end:
            self.bar.set_postfix(postfix(self.latest), refresh=False)
            self.bar.close()
            self.bar = None
