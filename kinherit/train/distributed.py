"""How a run is spread over processes, said and checked: never a silent fallback.

A `train.fsdp` or `train.deepspeed` request is honoured only when accelerate actually runs the model that
way (`distributed_type` FSDP or DEEPSPEED); anything else (a single process, or CPU processes, where
accelerate falls back to plain DDP) is a one-line error. `run_layout` is what `run.json` records.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainingArguments

from kinherit.errors import KinheritError


def requested_sharding(args: TrainingArguments) -> str | None:
    """"FSDP" or "DEEPSPEED" when the training arguments ask for it, else None."""
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
            f"{getattr(distributed_type, 'name', distributed_type)} (on CPU it does not shard): the request would silently "
            f"become plain data parallelism; run on GPUs or remove {key}"
        )


def run_layout(args: TrainingArguments, distributed_type: Any, teacher_placement: str | None) -> dict[str, Any]:
    """The `distributed` block of run.json."""
    return {
        "world_size": args.world_size,
        "distributed_type": getattr(distributed_type, "name", str(distributed_type)),
        "requested": requested_sharding(args),
        "teacher": teacher_placement,
    }
