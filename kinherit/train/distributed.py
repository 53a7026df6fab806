"""How a run is spread over processes, said and checked: never a silent fallback.

A `train.fsdp` or `train.deepspeed` request is honoured only when accelerate actually runs the model that
way (`distributed_type` FSDP or DEEPSPEED); anything else (a single process, or CPU processes, where
accelerate falls back to plain DDP) is a one-line error. `run_layout` is what `run.json` records: with
`train.fsdp`, also the fsdp_config as transformers resolved it (`config.resolved.yaml` keeps the user's) and the
FSDP plugin accelerate runs with.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

from transformers import TrainingArguments

from kinherit.errors import KinheritError


def requested_sharding(args: TrainingArguments) -> str | None:
    """`"FSDP"` or `"DEEPSPEED"` when the training arguments ask for it, else None."""
    if args.fsdp:
        return "FSDP"
    if args.deepspeed:
        return "DEEPSPEED"
    return None


def check_distributed_request(args: TrainingArguments, distributed_type: Any = None) -> None:
    """Refuse a sharding request the stack will not honour: before the Trainer exists (`distributed_type` None)
    a single process is refused; once it exists, the accelerator's `distributed_type` must be the one asked for."""
    wanted = requested_sharding(args)
    if wanted is None:
        return
    key = "train.fsdp" if wanted == "FSDP" else "train.deepspeed"
    if args.world_size < 2:
        raise KinheritError(
            f"{key} asks for {wanted}, which shards over several processes, but this run has 1; launch it with "
            f"torchrun --nproc_per_node N or accelerate launch, or remove {key}"
        )
    if distributed_type is not None and getattr(distributed_type, "name", str(distributed_type)) != wanted:
        raise KinheritError(
            f"{key} asks for {wanted}, but accelerate runs these {args.world_size} processes as "
            f"{getattr(distributed_type, 'name', distributed_type)} (on CPU it does not shard): the request would "
            f"silently become plain data parallelism; run on GPUs or remove {key}"
        )


def run_layout(
    args: TrainingArguments, distributed_type: Any, teacher_placement: str | None, fsdp_plugin: Any = None
) -> dict[str, Any]:
    """The `distributed` block of run.json; with `train.fsdp`, the resolved fsdp_config and accelerate's plugin."""
    layout = {
        "world_size": args.world_size,
        "distributed_type": getattr(distributed_type, "name", str(distributed_type)),
        "requested": requested_sharding(args),
        "teacher": teacher_placement,
    }
    if args.fsdp:
        layout["fsdp_config"] = dict(args.fsdp_config or {})
        layout["fsdp_plugin"] = plugin_settings(fsdp_plugin) if fsdp_plugin is not None else None
    return layout


def plugin_settings(plugin: Any) -> dict[str, Any]:
    """The settings of an accelerate plugin (a dataclass) that JSON can hold: plain values, enums by name, lists
    of those; objects (policies, callables) are left out."""
    out = {}
    for field in dataclasses.fields(plugin):
        value = getattr(plugin, field.name)
        value = value.name if isinstance(value, Enum) else value
        if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float, bool)) for v in value):
            out[field.name] = list(value)
        elif value is None or isinstance(value, (str, int, float, bool)):
            out[field.name] = value
    return out
