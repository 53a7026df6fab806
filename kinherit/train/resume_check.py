"""`--resume` continues the very run its checkpoint belongs to, or refuses in one line.

The rule: the config resolved now (defaults filled in) is compared key by key with the checkpoint run's
`config.resolved.yaml`, and the corpus fingerprint (source files with size and mtime, tokenizer, split
settings) with the one recorded in its `run.json`. Any difference is refused, naming the keys, except
for the keys in `SAFE_ON_RESUME`: they decide when to stop, log, evaluate or save and where to write,
not what one optimizer step computes, so the steps already taken stay the steps of the run being
continued. `train.max_steps` is among them (to extend or shorten a run): the LR schedule and a
fractional `teacher.steps` are then re-resolved against the new value from the resumed step on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kinherit.config import config_differences, read_recorded_config, read_yaml
from kinherit.errors import KinheritError
from kinherit.metrics.lineage import read_run_record

RESOLVED = "config.resolved.yaml"

SAFE_ON_RESUME = frozenset(
    {
        "out",
        "data.cache_dir",
        "train.max_steps",
        "train.logging_steps",
        "train.logging_first_step",
        "train.logging_dir",
        "train.eval_steps",
        "train.eval_on_start",
        "train.per_device_eval_batch_size",
        "train.save_steps",
        "train.save_total_limit",
        "train.report_to",
        "train.run_name",
        "train.disable_tqdm",
        "train.dataloader_num_workers",
    }
)
"""Keys that may differ between a run and its `--resume` (see the module docstring)."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _restoring(refused: list[tuple[str, Any, Any]]) -> str:
    """The overrides that restore the run's scalar values, e.g. ` (--train.lr_scheduler_kwargs.num_decay_steps=80)`:
    a WSD decay resolved from a fraction changes with train.max_steps, and this is how to keep the run's."""
    overrides = [
        f"--{key}={'null' if old is None else old}"
        for key, old, _ in refused
        if old is None or isinstance(old, (bool, int, float, str))
    ]
    return f" ({' '.join(overrides[:3])})" if overrides else ""


def check_resume(out: Path, resolved: str, corpus_fingerprint: str | None = None) -> list[str]:
    """Refuse to resume the run in `out` with a config (`resolved`, as `config.resolved.yaml` would hold it)
    or a corpus (`corpus_fingerprint`, None when the command has none) other than the checkpoint's.
    Prints and returns the allowed changes as `key: old -> new` lines."""
    recorded = out / RESOLVED
    if not recorded.is_file():
        raise KinheritError(
            f"--resume: {recorded} is missing, so the checkpoint's config cannot be compared with this one; "
            "restore it or start a new run in another out"
        )
    changes = config_differences(read_recorded_config(recorded), read_yaml(resolved) or {})
    refused = [(key, old, new) for key, old, new in changes if key not in SAFE_ON_RESUME]
    if refused:
        shown = ", ".join(f"{key} ({_show(old)} -> {_show(new)})" for key, old, new in refused[:6])
        more = f" and {len(refused) - 6} more" if len(refused) > 6 else ""
        raise KinheritError(
            f"--resume: this config differs from the checkpoint run's ({recorded}) in {shown}{more}; resume with the "
            f"run's values{_restoring(refused)} or start a new run in another out (only logging, evaluation, saving "
            "intervals, train.max_steps and output paths may change on resume; see docs/pretrain.md, 'Outputs')"
        )
    record = read_run_record(out)
    saved = (record or {}).get("data", {}).get("corpus")
    if corpus_fingerprint is not None and saved is not None and saved != corpus_fingerprint:
        raise KinheritError(
            f"--resume: the corpus changed since the checkpoint (fingerprint {saved} -> {corpus_fingerprint}: a "
            "source file was added, removed or modified, or the tokenizer folder changed); restore it or start a "
            "new run in another out"
        )
    notes = [f"{key}: {_show(old)} -> {_show(new)}" for key, old, new in changes]
    if notes:
        print(f"resume: continuing {out} with {'; '.join(notes)}", flush=True)
    return notes
